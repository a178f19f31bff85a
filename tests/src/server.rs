//! The real `jobhost serve` in a child process, for the tests that need the binary (signals,
//! crashes, the CLI, config files). It listens on a free port (`--listen 127.0.0.1:0`), the
//! address read from the line it prints on stdout; requests go through [`Client`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::jobhost_cmd;

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    client: Client,
}

impl std::ops::Deref for Server {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Server {
    /// Starts `jobhost serve` on `data_dir` with `plugin_dir` and `extra` flags, and waits until
    /// it listens.
    pub fn start(data_dir: &Path, plugin_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_token(data_dir, plugin_dir, extra, None)
    }

    pub fn start_with_token(
        data_dir: &Path,
        plugin_dir: &Path,
        extra: &[&str],
        token: Option<&str>,
    ) -> Server {
        Server::start_listening(data_dir, plugin_dir, "127.0.0.1:0", extra, token)
    }

    /// Like [`Server::start_with_token`], listening on `listen` (e.g. `localhost:0`).
    pub fn start_listening(
        data_dir: &Path,
        plugin_dir: &Path,
        listen: &str,
        extra: &[&str],
        token: Option<&str>,
    ) -> Server {
        Server::launch(data_dir, plugin_dir, listen, extra, token, &[])
    }

    /// Like [`Server::start`], with more environment variables (e.g. `LD_PRELOAD`).
    pub fn start_with_env(
        data_dir: &Path,
        plugin_dir: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Server {
        Server::launch(data_dir, plugin_dir, "127.0.0.1:0", extra, None, env)
    }

    fn launch(
        data_dir: &Path,
        plugin_dir: &Path,
        listen: &str,
        extra: &[&str],
        token: Option<&str>,
        env: &[(&str, &Path)],
    ) -> Server {
        let log = data_dir.with_extension(format!("{}.log", std::process::id()));
        let stderr = File::create(&log).expect("server log file");
        let mut child = jobhost_cmd()
            .envs(env.iter().copied())
            .env("JOBHOST_LOG", "info")
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("jobhost serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("jobhost listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Server {
            child: Some(child),
            client: Client::new(&url, token),
            url,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("server running")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which it cannot outlive (we reap it).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Waits for the server to exit; its exit code (`None` if killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("server running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            assert!(Instant::now() < deadline, "server did not exit within {within:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
