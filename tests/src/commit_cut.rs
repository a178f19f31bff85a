//! A fault-injecting TCP proxy in front of PostgreSQL that loses the answer to a COMMIT: it
//! forwards the COMMIT of a transaction that wrote an idempotency key (so the server commits)
//! and then cuts the client's connection before the answer comes back. This is the fault a
//! network drop at commit makes, which a real server cannot be asked to produce.
//!
//! It reads the frontend protocol just enough: the untyped start-up messages, then typed
//! messages, remembering which prepared statements insert an idempotency key and whether the
//! current transaction bound one.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The proxy: connections to `port` go to the server; `arm` makes it cut commits.
pub struct CommitCutter {
    pub port: u16,
    armed: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
}

impl CommitCutter {
    /// Listens on a free loopback port, forwarding to `upstream` (host:port).
    pub fn start(upstream: String) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicUsize::new(0));
        let (a, c) = (armed.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let (a, c) = (a.clone(), c.clone());
                std::thread::spawn(move || relay(client, server, &a, &c));
            }
        });
        CommitCutter { port, armed, cut }
    }

    /// Cuts the next `n` commits of transactions that store an idempotency key.
    pub fn arm(&self, n: usize) {
        self.armed.store(n, Ordering::SeqCst);
    }

    /// Commits cut so far.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

fn relay(mut client: TcpStream, server: TcpStream, armed: &AtomicUsize, cut: &AtomicUsize) {
    let mut to_server = server.try_clone().unwrap();
    let (mut from_server, mut to_client) = (server, client.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut started = false;
    let mut keyed_statements: HashMap<Vec<u8>, bool> = HashMap::new();
    let mut keyed_transaction = false;
    loop {
        // Start-up messages (SSL or GSS requests, then the start-up packet) have no type byte.
        let kind = if started {
            let mut kind = [0u8];
            if client.read_exact(&mut kind).is_err() {
                break;
            }
            Some(kind[0])
        } else {
            None
        };
        let mut length = [0u8; 4];
        if client.read_exact(&mut length).is_err() {
            break;
        }
        let body_len = (u32::from_be_bytes(length) as usize).saturating_sub(4);
        let mut body = vec![0u8; body_len];
        if client.read_exact(&mut body).is_err() {
            break;
        }
        let mut message = Vec::with_capacity(5 + body_len);
        message.extend(kind);
        message.extend_from_slice(&length);
        message.extend_from_slice(&body);
        match kind {
            // The start-up packet proper (protocol 3.0) ends the untyped part.
            None => started = body.get(..4) == Some(&[0, 3, 0, 0]),
            // Parse: statement name, then its text.
            Some(b'P') => {
                let mut parts = body.split(|b| *b == 0);
                let (name, text) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let keyed = String::from_utf8_lossy(text).contains("INTO idempotency_keys");
                keyed_statements.insert(name.to_vec(), keyed);
            }
            // Bind: portal, then statement name.
            Some(b'B') => {
                let mut parts = body.split(|b| *b == 0);
                let statement = parts.nth(1).unwrap_or_default();
                keyed_transaction |= keyed_statements.get(statement).copied().unwrap_or(false);
            }
            Some(b'Q') => {
                let text = String::from_utf8_lossy(&body).to_ascii_uppercase();
                if text.starts_with("COMMIT") {
                    let cut_now = keyed_transaction
                        && armed
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    keyed_transaction = false;
                    if cut_now {
                        // The server gets the COMMIT; the client never hears its answer.
                        // Counted before the cut: the client answers its caller as soon as the
                        // connection drops, and the caller may read the count at once.
                        cut.fetch_add(1, Ordering::SeqCst);
                        let _ = to_server.write_all(&message);
                        let _ = client.shutdown(Shutdown::Both);
                        std::thread::sleep(Duration::from_secs(1));
                        let _ = to_server.shutdown(Shutdown::Both);
                        return;
                    }
                } else if text.starts_with("ROLLBACK") || text.starts_with("BEGIN") {
                    keyed_transaction = false;
                }
            }
            Some(b'X') => {
                let _ = to_server.write_all(&message);
                break;
            }
            _ => {}
        }
        if to_server.write_all(&message).is_err() {
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}
