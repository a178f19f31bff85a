//! One worker process, from the host's side: spawning it (the same binary's hidden `worker`
//! command, the socket as its fd 3, dying with the thread that spawned it), the handshake,
//! running its jobs (one at a time, the next possibly sent ahead), stopping and reaping it
//! (`death` says how it died).
//!
//! **Invariant:** a worker process never outlives the host: `PR_SET_PDEATHSIG` kills it when
//! the thread that spawned it ends (the worker slot that owns it), and it exits at once when
//! its socket closes. Its pid is signalled only while it has not been reaped, so a reused pid
//! is never hit.

use std::io::BufReader;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::death::{Death, Tail};
use super::fds::{place_fds, DATA_FD};
use super::orphans;
use super::output::{forward_output, Budget, DEFAULT_OUTPUT_PER_JOB};
use super::protocol::{self, FromWorker, RunJob, ToWorker, WireFailure, PROTOCOL_VERSION};
use super::sandbox;
use super::spec::Spec;
use super::tree;
use crate::plugins::Catalog;
use crate::sync;

/// How long a new worker may take to load its plugins and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start a worker process ({exe}): {error}")]
    Start { exe: String, error: std::io::Error },
    #[error("the {death} before it was ready")]
    Died { death: Death },
    #[error("the worker process did not say hello: {0}")]
    Handshake(String),
}

/// The part of a worker that other threads reach: the supervisor cancels the running job
/// through it, or kills the process.
pub struct Control {
    pid: i32,
    /// The control socket.
    writer: Mutex<UnixStream>,
    /// Reaped (the pid may be reused: never signal it again), and whether the host killed it.
    state: Mutex<(bool, bool)>,
}

impl Control {
    /// Asks the running job to stop (its cooperative flag); best effort.
    pub fn cancel(&self, id: u64) {
        let mut writer = sync::lock(&self.writer);
        let _ = protocol::write_frame(&mut *writer, &ToWorker::Cancel { id });
    }

    /// SIGKILL to the worker and everything it started, unless already reaped; remembered,
    /// so its death reads as the host's doing.
    pub fn kill(&self) {
        let mut state = sync::lock(&self.state);
        if !state.0 {
            state.1 = true;
            // While it lives, whatever its plugins started is in its tree (it is a subreaper).
            tree::kill_descendants(self.pid);
            // SAFETY: kill(2) on our own child and its process group, which cannot have been
            // reaped (checked under the lock the reaper takes), so the ids are still ours.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }

    /// Takes back job `id`, sent ahead, unless it has started; best effort. The worker answers
    /// `Withdrawn` on the data socket (see [`WorkerProcess::receive`]) if it had not.
    pub fn withdraw(&self, id: u64) {
        let mut writer = sync::lock(&self.writer);
        let _ = protocol::write_frame(&mut *writer, &ToWorker::Withdraw { id });
    }

    pub fn killed_by_host(&self) -> bool {
        sync::lock(&self.state).1
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// How a job sent to a worker process ended there.
#[derive(Debug)]
pub enum Received {
    /// It ran: its result, and when it started (by the worker's word, on this host's
    /// monotonic clock, read the moment the answer arrived).
    Done { result: Result<String, WireFailure>, started: Instant },
    /// It was sent ahead and withdrawn before it started: it did not run.
    Withdrawn,
}

/// A running worker process, owned by one worker slot.
pub struct WorkerProcess {
    child: Child,
    /// Readable once the process has ended: its death is seen from the process itself, even
    /// while something else still holds its socket open.
    pidfd: Option<OwnedFd>,
    /// Removed when the worker is dropped (after it was reaped).
    _scratch: tempfile::TempDir,
    /// The data socket, read buffered (a frame's length and body in one read).
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    control: Arc<Control>,
    tail: Arc<Tail>,
    /// What the job it runs may still print.
    output: Arc<Budget>,
    /// The last job it answered `Done`, and whether its output ended with a marker.
    last_done: (u64, bool),
    /// What it loaded.
    pub catalog: Catalog,
    /// The plugin generation it loaded (a reload starts a new one).
    pub generation: u64,
}

impl WorkerProcess {
    /// Starts a worker and waits for its hello.
    pub fn spawn(spec: &Spec, generation: u64) -> Result<WorkerProcess, SpawnError> {
        let start = |error| SpawnError::Start { exe: spec.exe.display().to_string(), error };
        let (data, worker_data) = UnixStream::pair().map_err(start)?;
        let (control, worker_control) = UnixStream::pair().map_err(start)?;
        // The two sockets on 3 and 4, then each plugin image on 5, 6, ... (`Spec::args`).
        let mut fds = vec![worker_data.as_raw_fd(), worker_control.as_raw_fd()];
        fds.extend(spec.images().iter().map(|image| image.fd()));
        let end = DATA_FD + fds.len() as i32;
        // SAFETY: getpid has no preconditions.
        let host_pid = unsafe { libc::getpid() };
        // Its own scratch directory (its TMPDIR), writable whatever the filesystem policy, and
        // removed with it.
        let scratch = tempfile::Builder::new().prefix("jobhost-worker-").tempdir().map_err(start)?;
        let mut command = Command::new(&spec.exe);
        if let Some(run_as) = spec.fs.run_as {
            run_as.give(scratch.path()).map_err(start)?;
            run_as.apply(&mut command);
        }
        command.args(spec.args()).arg("--scratch").arg(scratch.path());
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        sandbox::worker_environment(&mut command, &spec.env);
        command.env("TMPDIR", scratch.path());
        // SAFETY: between fork and exec only async-signal-safe calls: fcntl, dup2, close,
        // prctl, getppid, _exit.
        unsafe {
            command.pre_exec(move || {
                place_fds(&mut fds, DATA_FD)?;
                // Die with the thread that spawned us; and if the host is already gone, now.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // No set-user-id program a plugin runs gains privileges.
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A session (and process group) of its own: what its plugins start is killed
                // with it, a terminal's Ctrl-C reaches the host alone, and no process of the
                // worker can join the host's group (another session's) to signal it as one.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // No descriptor the host inherited (or opened without close-on-exec) but the
                // worker's own: its two sockets and its standard streams.
                libc::syscall(libc::SYS_close_range, end as u32, u32::MAX, 0u32);
                if libc::getppid() != host_pid {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = orphans::spawn_registered(&mut command, Some(scratch.path())).map_err(start)?;
        drop((worker_data, worker_control));
        let pidfd = open_pidfd(child.id() as i32);
        let tail = Arc::new(Tail::default());
        let limit = spec.limits.output_per_job.unwrap_or(DEFAULT_OUTPUT_PER_JOB);
        let output = Arc::new(Budget::new(limit, child.id()));
        match child.stderr.take() {
            Some(stderr) => forward_output(stderr, child.id(), tail.clone(), output.clone()),
            None => tail.close(),
        }
        let reader = BufReader::new(data.try_clone().map_err(start)?);
        let control = Arc::new(Control {
            pid: child.id() as i32,
            writer: Mutex::new(control),
            state: Mutex::new((false, false)),
        });
        let mut process = WorkerProcess {
            child,
            pidfd,
            _scratch: scratch,
            reader,
            writer: data,
            control,
            tail,
            output,
            last_done: (0, false),
            catalog: Catalog::default(),
            generation,
        };
        match process.hello() {
            Ok(catalog) => {
                process.catalog = catalog;
                Ok(process)
            }
            Err(e) => {
                let death = process.reap_after_kill();
                match e {
                    None => Err(SpawnError::Died { death }),
                    Some(message) => Err(SpawnError::Handshake(message)),
                }
            }
        }
    }

    /// The worker's hello: its catalog. `Err(None)` if it died first.
    fn hello(&mut self) -> Result<Catalog, Option<String>> {
        let _ = self.reader.get_ref().set_read_timeout(Some(HELLO_TIMEOUT));
        let hello = protocol::read_frame::<FromWorker>(&mut self.reader);
        let _ = self.reader.get_ref().set_read_timeout(None);
        match hello {
            Ok(Some(FromWorker::Hello { protocol, catalog, .. })) if protocol == PROTOCOL_VERSION => {
                Ok(catalog)
            }
            Ok(Some(FromWorker::Hello { protocol, .. })) => {
                Err(Some(format!("it speaks protocol {protocol}, this host {PROTOCOL_VERSION}")))
            }
            Ok(Some(other)) => Err(Some(format!("it sent {other:?} first"))),
            Ok(None) => Err(None),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(Some(format!("no hello within {HELLO_TIMEOUT:?}")))
            }
            Err(_) => Err(None),
        }
    }

    /// Whether the process has ended (crashed or exited on its own), without reaping it.
    pub fn has_ended(&self) -> bool {
        !sync::lock(&self.control.state).0 && ended(self.control.pid)
    }

    /// Reaps a process that has ended: how it died.
    pub fn reap_ended(mut self) -> Death {
        self.reap()
    }

    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    pub fn pid(&self) -> i32 {
        self.control.pid
    }

    /// Sends a job to run next; its output is counted against a fresh budget from here.
    pub fn send(&mut self, job: RunJob) -> Result<(), Death> {
        self.output.start_job(job.id);
        if self.send_ahead(job).is_err() {
            return Err(self.reap_after_kill());
        }
        Ok(())
    }

    /// Sends a job to run after the one running (see [`WorkerProcess::started_ahead`]). An
    /// error means the process is ending: the running job's `receive` tells how.
    pub fn send_ahead(&mut self, job: RunJob) -> std::io::Result<()> {
        protocol::write_frame(&mut self.writer, &ToWorker::Run(job))
    }

    /// Job `id`, sent ahead, runs now (the one before it is done): its output is counted
    /// against a fresh budget from here.
    pub fn started_ahead(&mut self, id: u64) {
        let (ended, marked) = self.last_done;
        self.output.switch_job(ended, id, marked);
    }

    /// The result of job `id`, the oldest sent and not done, relaying its progress meanwhile;
    /// `Withdrawn` if it was sent ahead and withdrawn before it started. A job sent ahead of
    /// it and withdrawn meanwhile is passed to `withdrawn`.
    pub fn receive(
        &mut self,
        id: u64,
        progress: &mut dyn FnMut(f64, &str),
        withdrawn: &mut dyn FnMut(u64),
    ) -> Result<Received, Death> {
        loop {
            if self.reader.buffer().is_empty() && !self.wait_for_data() {
                // Ended, and nothing more to read: it died (whoever holds its socket).
                return Err(self.reap());
            }
            match protocol::read_frame::<FromWorker>(&mut self.reader) {
                Ok(Some(FromWorker::Progress { id: of, fraction, message })) if of == id => {
                    progress(fraction, &message)
                }
                Ok(Some(FromWorker::Done { id: of, result, started_ns, marked })) if of == id => {
                    self.output.end_job();
                    self.last_done = (of, marked);
                    // Converted now: a conversion later would date the start later by however
                    // long the caller took to get to it.
                    let now = Instant::now();
                    let ago = Duration::from_nanos(protocol::monotonic_ns().saturating_sub(started_ns));
                    let started = now.checked_sub(ago).unwrap_or(now);
                    return Ok(Received::Done { result, started });
                }
                Ok(Some(FromWorker::Withdrawn { id: of })) if of == id => return Ok(Received::Withdrawn),
                Ok(Some(FromWorker::Withdrawn { id: of })) => withdrawn(of),
                Ok(Some(other)) => {
                    log::error!("worker process {}: unexpected message {other:?}; stopping it", self.pid());
                    return Err(self.reap_after_kill());
                }
                // Closed or broken: it died (or is dying).
                Ok(None) | Err(_) => return Err(self.reap()),
            }
        }
    }

    /// Waits until the socket has something to read (true) or the process ended with nothing
    /// left to read (false). Without a pidfd (an old kernel), only the socket tells.
    fn wait_for_data(&self) -> bool {
        let Some(pidfd) = &self.pidfd else { return true };
        let mut fds = [
            libc::pollfd { fd: self.reader.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        loop {
            // SAFETY: poll on two descriptors we own, with an array of their length.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return true; // let the read tell
            }
            if fds[0].revents != 0 {
                return true;
            }
            if fds[1].revents != 0 {
                return false;
            }
        }
    }

    /// Asks the worker to exit and waits for it (killing it after `grace`); for rolls and
    /// stopping queues, between jobs.
    pub fn stop(mut self, grace: Duration) {
        {
            let mut writer = sync::lock(&self.control.writer);
            let _ = protocol::write_frame(&mut *writer, &ToWorker::Stop);
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_reap() {
                log::debug!("worker process {} stopped ({status})", self.pid());
                return;
            }
            if Instant::now() >= deadline {
                self.reap_after_kill();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process, which has closed its socket and is ending.
    fn reap(&mut self) -> Death {
        // Its socket closed: it is exiting. Give it a moment, then make sure.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(status) = self.try_reap() {
                return self.death(Some(status));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.reap_after_kill()
    }

    fn reap_after_kill(&mut self) -> Death {
        self.control.kill();
        let status = self.child.wait().ok();
        sync::lock(&self.control.state).0 = true;
        orphans::forget(self.control.pid);
        self.death(status)
    }

    fn try_reap(&mut self) -> Option<ExitStatus> {
        let mut state = sync::lock(&self.control.state);
        if !state.0 && ended(self.control.pid) {
            // Ended but not reaped: its process group id is still its own, so what its plugins
            // started in the group goes with it. (Detached ones went to the host's orphan
            // sweep, `serve` being a subreaper.)
            // SAFETY: kill(2) on the process group of our own unreaped child.
            unsafe { libc::kill(-self.control.pid, libc::SIGKILL) };
        }
        let status = self.child.try_wait().ok().flatten();
        if status.is_some() {
            state.0 = true;
            orphans::forget(self.control.pid);
        }
        status
    }

    fn death(&self, status: Option<ExitStatus>) -> Death {
        // What it wrote just before dying (an allocation failure's message) may still be in the
        // pipe: wait for the forwarder to read to its end.
        let tail = self.tail.lines_once_closed(Duration::from_millis(500));
        Death { status, killed_by_host: self.control.killed_by_host(), tail }
    }
}

/// Whether our child `pid` has ended, without reaping it.
fn ended(pid: i32) -> bool {
    // SAFETY: waitid with WNOWAIT on our own child reaps nothing; `info` is ours.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
            == 0
            && info.si_pid() != 0
    }
}

/// A descriptor that becomes readable when `pid` ends (Linux 5.3 and later).
fn open_pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a descriptor the call just opened for us alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !sync::lock(&self.control.state).0 {
            self.reap_after_kill();
        }
    }
}
