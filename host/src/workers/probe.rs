//! Trying each plugin file in a throwaway process before any worker (or the host) loads it:
//! loading a library runs its code (static constructors, the root module's init), and a file
//! that crashes or hangs there would take down whatever loads it. Each file is read once into a
//! sealed image (`plugins::Image`), which gets a process of its own (`jobhost worker --probe
//! FILE`, the image on descriptor 3), all at once, with one deadline; a file whose probe
//! crashes, hangs past the deadline or exits with an error is rejected with its path and the
//! cause, and the rest load as usual. Clean refusals (not a plugin, an incompatible SDK) are
//! not the probe's business: the real load reports them with their reason.
//!
//! **Invariant:** the probing process never loads plugin code itself; every probe is killed
//! (with anything it started) by the deadline.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::death::signal_name;
use super::limits::Limits;
use super::orphans;
use super::sandbox::{self, Sandbox};
use super::tree;
use crate::plugins::{scan_dir, Image, Rejected};

/// The default time a plugin file may take to load.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What probing found: the images of the files any process may load, in load order, and the
/// files it must not.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    pub files: Vec<Arc<Image>>,
    pub rejected: Vec<Rejected>,
}

/// How to probe: the binary, and what its workers are given.
pub struct Prober<'a> {
    pub exe: &'a Path,
    pub allow_insecure: bool,
    pub limits: Limits,
    pub timeout: Duration,
    /// `[worker_env]`: a probe gets a worker's environment.
    pub env: &'a BTreeMap<String, String>,
    /// `[worker_sandbox]`: and its filesystem policy (no scratch directory).
    pub fs: &'a Sandbox,
}

impl Prober<'_> {
    /// Probes every plugin file in `dirs` (each scanned non-recursively, files sorted by name,
    /// as a worker would load them; a file named directly is taken as it is). A directory that
    /// cannot be read is rejected whole.
    pub fn probe_dirs(&self, dirs: &[PathBuf]) -> Probed {
        let mut probed = Probed::default();
        let mut files = Vec::new();
        for dir in dirs {
            if dir.is_file() {
                files.push(dir.clone());
                continue;
            }
            match scan_dir(dir) {
                Ok(found) => files.extend(found),
                Err(reason) => {
                    probed.rejected.push(Rejected { path: dir.clone(), reason: reason.to_string() })
                }
            }
        }
        // Each file is read once, into its image: the probe tries those bytes, and workers load
        // them, whatever happens to the file meanwhile.
        let mut images = Vec::new();
        for file in files {
            match Image::seal(&file, self.allow_insecure) {
                Ok(image) => images.push(Arc::new(image)),
                Err(reason) => probed.rejected.push(Rejected { path: file, reason: reason.to_string() }),
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut running: Vec<(Arc<Image>, Result<Child, String>)> =
            images.into_iter().map(|image| (image.clone(), self.start(&image))).collect();
        for (image, child) in &mut running {
            let outcome =
                child.as_mut().map_err(|e| e.clone()).and_then(|child| self.finish(child, deadline));
            if let Ok(child) = child {
                orphans::forget(child.id() as i32);
            }
            match outcome {
                Ok(()) => probed.files.push(image.clone()),
                Err(reason) => probed.rejected.push(Rejected { path: image.path.clone(), reason }),
            }
        }
        probed
    }

    fn start(&self, image: &Image) -> Result<Child, String> {
        let mut command = Command::new(self.exe);
        // The image on descriptor 3, the only one it keeps.
        command.arg("worker").arg("--probe").arg(&image.path);
        command.arg(format!("--plugin-image=3={}", image.path.display()));
        if self.allow_insecure {
            command.arg("--allow-insecure-plugins");
        }
        command
            .args(self.limits.args())
            .args(self.fs.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sandbox::worker_environment(&mut command, self.env);
        if let Some(run_as) = self.fs.run_as {
            run_as.apply(&mut command);
        }
        let mut fds = [image.fd()];
        // SAFETY: between fork and exec only fcntl, dup2, close, prctl, setsid and close_range:
        // async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                super::fds::place_fds(&mut fds, 3)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
                    || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
                    || libc::setsid() < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
                Ok(())
            });
        }
        // Registered like a worker, so that `serve`'s orphan sweep leaves it alone.
        orphans::spawn_registered(&mut command, None)
            .map_err(|e| format!("cannot start a process to try loading it: {e}"))
    }

    /// Waits for one probe until `deadline`; `Err` says why the file must not be loaded.
    fn finish(&self, child: &mut Child, deadline: Instant) -> Result<(), String> {
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) | Err(_) => {
                    kill(child);
                    return Err(format!(
                        "did not finish loading within {} (plugin_load_timeout); not loaded",
                        humantime::format_duration(self.timeout)
                    ));
                }
            }
        };
        // Exit status 0 is not enough: a constructor may call `exit(0)`. The probe says it
        // got through the load on stdout, last.
        if status.code() == Some(0) && said_loaded(child) {
            return Ok(());
        }
        // Whatever it started while loading goes with it, before its output is read (a process
        // it left could hold the pipe open forever).
        // SAFETY: kill(2) on the process group our own probe led (its leader is reaped, but the
        // group id cannot be reused while any member lives).
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let said = last_line(child);
        let cause = match (status.code(), status.signal()) {
            (Some(0), _) => "ended the process while loading (exit status 0, before it finished)".to_owned(),
            (_, Some(signal)) => {
                format!("crashed while loading (killed by signal {signal} ({}))", signal_name(signal))
            }
            (Some(code), _) => format!("ended the process while loading (exit status {code})"),
            _ => format!("ended the process while loading ({status})"),
        };
        Err(match said {
            Some(line) => format!("{cause}; its last words: {line}"),
            None => format!("{cause}; not loaded"),
        })
    }
}

fn kill(child: &mut Child) {
    let pid = child.id() as i32;
    tree::kill_descendants(pid);
    // SAFETY: kill(2) on our own unreaped child and its process group.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// The line a probe prints once the file loaded (see `child::probe`).
pub const PROBE_LOADED: &str = "jobhost-probe: loaded";

/// Whether the probe printed [`PROBE_LOADED`] (all it prints on stdout).
fn said_loaded(child: &mut Child) -> bool {
    let Some(stdout) = child.stdout.take() else { return false };
    nonblocking(&stdout);
    let mut text = Vec::new();
    let _ = stdout.take(4096).read_to_end(&mut text);
    String::from_utf8_lossy(&text).lines().any(|l| l == PROBE_LOADED)
}

/// Sets O_NONBLOCK: read what is in a pipe now, not what a process it left may write later.
fn nonblocking(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fd = fd.as_raw_fd();
        libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
    }
}

/// The last line the probe wrote to stderr (its panic or abort message), clipped.
fn last_line(child: &mut Child) -> Option<String> {
    let stderr = child.stderr.take()?;
    nonblocking(&stderr);
    let mut text = Vec::new();
    let _ = stderr.take(64 * 1024).read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    // A log record (JSON) by its text; a panic or abort message as it is.
    let said = super::output::Said::parse(line.trim());
    Some(crate::text::clip(said.text.trim()).to_string())
}
