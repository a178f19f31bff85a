//! The worker process itself: the hidden `jobhost worker` command a host starts. It applies its
//! resource limits, loads the plugin directories (private copies, so the files can be replaced
//! under it), says hello with the catalog of what it loaded, then runs the jobs the host sends
//! on its data socket, one at a time and in order (the host may send the next before the last
//! is done), while a thread of its own reads the control socket for cancels, withdrawals of a
//! job sent ahead, and stops.
//!
//! **Invariant:** the worker exits as soon as its control socket closes or its host dies,
//! whatever its job is doing, and nothing its plugins started outlives the job that started
//! it or the worker (`contain`); plugin output never reaches a socket (stdout goes to stderr,
//! which the host forwards to its log).

use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use super::fds::{CONTROL_FD, DATA_FD};
use super::limits::Limits;
use super::protocol::{self, FromWorker, ToWorker, WireFailure, PROTOCOL_VERSION};
use super::sandbox::{self, Sandbox};
use super::tree;
use crate::plugins::{LoadOptions, ProgressSink, Registry, RunContext};
use crate::sync;

/// The command line a host gives its workers (see `process::Spec`).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Load exactly these sealed images (of the files probing accepted), each given as the
    /// descriptor the host handed it on and the file it was read from; not the directories.
    #[arg(long = "plugin-image", value_parser = image_arg)]
    pub plugin_images: Vec<(i32, PathBuf)>,
    #[arg(long)]
    pub files_only: bool,
    /// Only try loading this one file, then exit 0 (see `probe`): no socket, no jobs.
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// The filesystem as the host's user has it (`worker_sandbox.filesystem = "unrestricted"`).
    #[arg(long)]
    pub fs_unrestricted: bool,
    #[arg(long = "write-path")]
    pub write_paths: Vec<PathBuf>,
    /// This worker's scratch directory (also its TMPDIR), writable whatever the policy.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    #[arg(long = "pin", value_parser = pair)]
    pub pins: Vec<(String, String)>,
    #[arg(long = "keep", value_parser = pair)]
    pub keep: Vec<(String, String)>,
    #[arg(long)]
    pub address_space: Option<u64>,
    #[arg(long)]
    pub cpu_time_ms: Option<u64>,
    #[arg(long)]
    pub open_files: Option<u64>,
}

fn image_arg(text: &str) -> Result<(i32, PathBuf), String> {
    let (fd, path) = pair(text)?;
    let fd = fd.parse::<i32>().map_err(|e| format!("{text:?}: descriptor: {e}"))?;
    Ok((fd, PathBuf::from(path)))
}

fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("{text:?}: expected NAME=VALUE"))
}

/// Runs the worker; the process's exit code.
pub fn run(args: &WorkerArgs, allow_insecure: bool) -> u8 {
    if let Some(file) = &args.probe {
        return probe(args, file, allow_insecure);
    }
    // Plugins that print must not corrupt anything: their stdout joins stderr, which the host
    // reads line by line into its log.
    // SAFETY: dup2 on the standard descriptors.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
    // SAFETY: the host passed our ends of its two sockets as these descriptors; nothing else
    // owns them.
    let (data, control) = unsafe { (UnixStream::from_raw_fd(DATA_FD), UnixStream::from_raw_fd(CONTROL_FD)) };
    let images: Vec<i32> = args.plugin_images.iter().map(|(fd, _)| *fd).collect();
    if let Err(e) = contain(&images) {
        log::error!("worker: cannot contain what its plugins start: {e}");
        return 1;
    }
    if let Err(e) = confine(args) {
        log::error!("worker: {e}");
        return 1;
    }
    let Some(limits) = apply_limits(args) else { return 1 };
    let options = LoadOptions {
        allow_insecure,
        private_copies: true,
        pins: args.pins.iter().cloned().collect(),
        keep: args.keep.iter().map(|(n, p)| (n.clone(), PathBuf::from(p))).collect::<BTreeMap<_, _>>(),
    };
    let registry = if args.files_only {
        let mut registry = Registry::new(options);
        for (fd, path) in &args.plugin_images {
            registry.add_image(*fd, path);
        }
        registry
    } else {
        Registry::load_dirs(options, &args.plugin_dirs)
    };
    let (reader, writer) = match data.try_clone() {
        Ok(reader) => (BufReader::new(reader), Arc::new(Mutex::new(data))),
        Err(e) => {
            log::error!("worker: its socket is unusable: {e}");
            return 1;
        }
    };
    let hello = FromWorker::Hello {
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        catalog: registry.catalog(),
    };
    if protocol::write_frame(&mut *sync::lock(&writer), &hello).is_err() {
        return 0; // the host is gone
    }
    let current: Current = Arc::new(Mutex::new(Jobs::default()));
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let (current, stopping, writer) = (current.clone(), stopping.clone(), writer.clone());
        let spawned = std::thread::Builder::new()
            .name("worker-control".to_owned())
            .spawn(move || obey(control, writer, current, stopping));
        if let Err(e) = spawned {
            log::error!("worker: cannot start its control thread: {e}");
            return 1;
        }
    }
    let code = run_jobs(reader, writer, current, stopping, registry, limits);
    tree::kill_descendants(own_pid());
    code
}

fn own_pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Keeps whatever the plugins start inside this worker's reach, so that it ends with the job
/// or with the worker:
/// - the host's sockets (and the plugin images) are close-on-exec, so a program a plugin runs
///   never holds them (the host would not see this worker die while it lived);
/// - this worker is a child subreaper: a plugin's process that detaches (`setsid`, a double
///   fork) stays in its tree, where `tree::kill_descendants` finds it;
/// - the host's death (its thread that started this worker, in fact) sends SIGTERM, whose
///   handler wakes a thread of ours (through a pipe: a handler may do little) that kills the
///   tree and exits. A handler, not a blocked signal: programs a plugin runs inherit the
///   signal mask, and must still take SIGTERM as usual.
fn contain(images: &[i32]) -> std::io::Result<()> {
    let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
    let mut pipe = [0; 2];
    // SAFETY: getppid, fcntl, prctl and pipe2 on this process's own state.
    let parent = unsafe {
        let parent = libc::getppid();
        for fd in [DATA_FD, CONTROL_FD].into_iter().chain(images.iter().copied()) {
            check(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
        }
        check(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1))?;
        check(libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC))?;
        parent
    };
    HOST_GONE.store(pipe[1], Ordering::SeqCst);
    let read_end = pipe[0];
    std::thread::Builder::new().name("worker-guard".to_owned()).spawn(move || {
        let mut byte = 0u8;
        // SAFETY: a read into our own byte from the pipe's read end.
        while unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) } < 0 {}
        tree::kill_descendants(own_pid());
        // SAFETY: _exit ends the process at once: the host is gone.
        unsafe { libc::_exit(1) };
    })?;
    // SAFETY: sigaction with a handler that only writes one byte to a pipe (async-signal-safe);
    // prctl and getppid on this process's own state.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        check(libc::sigemptyset(&mut action.sa_mask))?;
        check(libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut()))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM))?;
        // The host may have died between our start and the line above: then no signal comes.
        if libc::getppid() != parent {
            on_sigterm(libc::SIGTERM);
        }
    }
    Ok(())
}

/// The write end of the pipe the SIGTERM handler wakes the guard thread through.
static HOST_GONE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigterm(_: libc::c_int) {
    let fd = HOST_GONE.load(Ordering::SeqCst);
    // SAFETY: write(2) is async-signal-safe; one byte from a static.
    unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

/// Applies the resource limits the host gave (before any plugin loads); `None` if it could not.
fn apply_limits(args: &WorkerArgs) -> Option<Limits> {
    let limits = Limits {
        address_space: args.address_space,
        cpu_time: args.cpu_time_ms.map(Duration::from_millis),
        open_files: args.open_files,
        max_jobs: None,
        output_per_job: None,
    };
    match limits.apply() {
        Ok(()) => Some(limits),
        Err(e) => {
            log::error!("worker: cannot apply its resource limits: {e}");
            None
        }
    }
}

/// Loads one plugin file with the limits a worker has, then exits 0: what `probe` runs, so
/// that a file that crashes or hangs while loading does so in a process of its own. A file
/// refused cleanly also exits 0: the real load reports why.
fn probe(args: &WorkerArgs, file: &std::path::Path, allow_insecure: bool) -> u8 {
    if apply_limits(args).is_none() {
        return 1;
    }
    if let Err(e) = confine(args) {
        log::error!("worker: {e}");
        return 1;
    }
    let options = LoadOptions { allow_insecure, private_copies: true, ..LoadOptions::default() };
    match args.plugin_images.first() {
        Some((fd, path)) => Registry::new(options).add_image(*fd, path),
        None => Registry::new(options).add_file(file),
    };
    println!("{}", super::probe::PROBE_LOADED);
    0
}

/// The kernel's limits on what this process and its children may do (see `sandbox`), set
/// before any plugin code runs. The host is our parent.
fn confine(args: &WorkerArgs) -> Result<(), String> {
    let policy = Sandbox {
        read_only: !args.fs_unrestricted,
        write_paths: args.write_paths.clone(),
        per_plugin: Default::default(),
        run_as: None,
    };
    sandbox::restrict_access(&policy, args.scratch.as_deref())?;
    sandbox::drop_capabilities()?;
    // SAFETY: getppid and getpgid have no preconditions.
    let (host, host_group) = unsafe {
        let host = libc::getppid();
        (host, libc::getpgid(host))
    };
    sandbox::restrict(host, host_group)
}

/// The job running now (its id and cooperative flag), jobs cancelled or withdrawn before they
/// started, and the last jobs taken up (run or skipped).
type Current = Arc<Mutex<Jobs>>;

#[derive(Default)]
struct Jobs {
    running: Option<(u64, Arc<AtomicBool>)>,
    cancelled: std::collections::HashSet<u64>,
    withdrawn: std::collections::HashSet<u64>,
    /// The last [`RECENT`] jobs taken up: a withdrawal arriving after its job was taken up is
    /// too late, and must not be answered `Withdrawn`.
    recent: std::collections::VecDeque<u64>,
}

/// The host sends at most one job ahead of the running one, so a withdrawal that comes too
/// late names one of the last two jobs taken up; a few more are kept for safety.
const RECENT: usize = 8;

impl Jobs {
    /// The job thread takes up job `id`: false if it was withdrawn (it is skipped).
    fn take_up(&mut self, id: u64) -> bool {
        if self.withdrawn.remove(&id) {
            return false;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        true
    }

    /// A withdrawal of job `id`: true if it had not been taken up (it will be skipped).
    fn withdraw(&mut self, id: u64) -> bool {
        !self.recent.contains(&id) && self.withdrawn.insert(id)
    }
}

/// The control thread: cancels reach the running job at once; a job sent ahead is withdrawn
/// if not started; a stop ends the worker once idle; a closed socket (the host is gone) ends
/// it now, whatever its job is doing.
fn obey(
    mut control: UnixStream,
    writer: Arc<Mutex<UnixStream>>,
    current: Current,
    stopping: Arc<AtomicBool>,
) {
    loop {
        match protocol::read_frame::<ToWorker>(&mut control) {
            Ok(Some(ToWorker::Withdraw { id })) => {
                // Under the lock the job thread takes a job up with: either it never starts
                // and the host hears so, or it runs and the host hears its `Done`.
                let mut current = sync::lock(&current);
                if current.withdraw(id) {
                    current.cancelled.remove(&id);
                    let withdrawn = FromWorker::Withdrawn { id };
                    if protocol::write_frame(&mut *sync::lock(&writer), &withdrawn).is_err() {
                        exit_now(0);
                    }
                }
            }
            Ok(Some(ToWorker::Cancel { id })) => {
                let mut current = sync::lock(&current);
                match &current.running {
                    Some((running, cancel)) if *running == id => cancel.store(true, Ordering::Relaxed),
                    // Sent and not started yet (the host sends the next jobs ahead): it will not
                    // start. Ids only grow within a worker's life, so the set stays small.
                    _ => {
                        current.cancelled.insert(id);
                    }
                }
            }
            Ok(Some(ToWorker::Stop)) => {
                // Under the lock the job thread sets the job it starts: idle now means no job.
                let current = sync::lock(&current);
                stopping.store(true, Ordering::SeqCst);
                if current.running.is_none() {
                    exit_now(0);
                }
            }
            Ok(Some(ToWorker::Run(job))) => {
                log::error!("worker: job {} sent on the control socket; ignored", job.id);
            }
            Ok(None) => exit_now(0),
            Err(e) => {
                log::error!("worker: unreadable control message from the host: {e}");
                exit_now(1)
            }
        }
    }
}

/// Ends the process without waiting for its other threads (a job may be stuck in a plugin).
fn exit_now(code: i32) -> ! {
    tree::kill_descendants(own_pid());
    #[allow(clippy::disallowed_methods)] // a worker may end with its job still running
    std::process::exit(code)
}

/// The job loop, on the thread that reads the data socket: each job runs right here, with no
/// hand-off, and is reported before the next is read.
fn run_jobs(
    mut reader: BufReader<UnixStream>,
    writer: Arc<Mutex<UnixStream>>,
    current: Current,
    stopping: Arc<AtomicBool>,
    registry: Registry,
    limits: Limits,
) -> u8 {
    loop {
        let job = match protocol::read_frame::<ToWorker>(&mut reader) {
            Ok(Some(ToWorker::Run(job))) => job,
            Ok(Some(other)) => {
                log::error!("worker: {other:?} sent on the data socket; ignored");
                continue;
            }
            Ok(None) => return 0,
            Err(e) => {
                log::error!("worker: unreadable message from the host: {e}");
                return 1;
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let progress_state: Arc<Mutex<ProgressState>> = Arc::default();
        let cancelled_before = {
            let mut current = sync::lock(&current);
            if !current.take_up(job.id) {
                continue; // withdrawn: the host was told, and runs it elsewhere
            }
            current.running = Some((job.id, cancel.clone()));
            current.cancelled.remove(&job.id)
        };
        let started_ns = protocol::monotonic_ns();
        if let Err(e) = limits.limit_cpu_for_next_job() {
            log::warn!("worker: cannot set the CPU limit for job {}: {e}", job.id);
        }
        let result = match registry.get(&job.factory) {
            // The host ends a cancelled job `cancelled` whatever it reports.
            _ if cancelled_before => Err(WireFailure {
                permanent: true,
                message: "cancelled before it started".to_owned(),
                retry_after_ms: None,
                backtrace: None,
            }),
            Some(factory) => {
                let sink =
                    SocketProgress { id: job.id, writer: writer.clone(), state: progress_state.clone() };
                let ctx = RunContext {
                    job_id: job.id,
                    attempt: job.attempt,
                    cancel: &cancel,
                    progress: &sink,
                    parents: job.parents.as_deref(),
                };
                factory.run(&ctx, &job.input).map_err(WireFailure::from)
            }
            None => Err(WireFailure {
                permanent: true,
                message: format!("unknown job factory `{}`: no loaded plugin provides it", job.factory),
                retry_after_ms: None,
                backtrace: None,
            }),
        };
        sync::lock(&current).running = None;
        // Nothing the job started outlives it: what it left running is killed, what ended is
        // reaped (before its outcome is sent, so the next job starts clean).
        // One `waitid` on the common path; `kill_descendants` reaps as it goes.
        let left = if tree::has_children() { tree::kill_descendants(own_pid()) } else { 0 };
        if left > 0 {
            log::info!("worker: job {} left {left} process(es) running; killed", job.id);
        }
        // A result the frame cannot carry is a failure that says so, not a lost worker.
        let result = match result {
            Ok(text) if text.len() > MAX_RESULT => Err(WireFailure {
                permanent: true,
                message: format!("result too large ({} bytes, limit {MAX_RESULT})", text.len()),
                retry_after_ms: None,
                backtrace: None,
            }),
            other => other,
        };
        sink_flush(&writer, job.id, &progress_state);
        // Where the job's output ends, if the host has not read all of it: the next job may
        // start printing into the same pipe at once.
        let marked = output_unread() && mark_end(job.id);
        let done = FromWorker::Done { id: job.id, result, started_ns, marked };
        if protocol::write_frame(&mut *sync::lock(&writer), &done).is_err() {
            return 0;
        }
        if stopping.load(Ordering::SeqCst) {
            return 0;
        }
    }
}

/// Whether output this worker wrote is still in its pipe to the host.
fn output_unread() -> bool {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass, which is ours; fd 2 is the pipe
    // the host reads (stdout joins it).
    unsafe { libc::ioctl(libc::STDERR_FILENO, libc::FIONREAD, &mut bytes) == 0 && bytes > 0 }
}

/// Writes job `id`'s end marker to the output (one write: a pipe never splits it).
fn mark_end(id: u64) -> bool {
    use std::io::Write;
    let marker = format!("{}{id}\n", super::output::END_MARKER);
    std::io::stderr().write_all(marker.as_bytes()).is_ok()
}

/// The largest result a worker sends back (JSON text): far past any result a job system should
/// carry, well within a frame. A larger one fails the job, saying so.
pub const MAX_RESULT: usize = 64 << 20;

/// Progress reports are sent at most every [`PROGRESS_EVERY`]; the latest one in between waits
/// for the next report or the job's end, so a plugin that reports a million times costs the
/// host ten writes a second, not a million.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The longest progress message sent; a longer one is cut (on a character boundary).
pub const MAX_PROGRESS_MESSAGE: usize = 1024;

fn clip_message(message: &str) -> String {
    if message.len() <= MAX_PROGRESS_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_PROGRESS_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[derive(Default)]
struct ProgressState {
    last_sent: Option<std::time::Instant>,
    pending: Option<(f64, String)>,
}

/// Progress goes to the host (possibly from a thread of the plugin's), coalesced.
struct SocketProgress {
    id: u64,
    writer: Arc<Mutex<UnixStream>>,
    state: Arc<Mutex<ProgressState>>,
}

impl ProgressSink for SocketProgress {
    fn report(&self, fraction: f64, message: &str) {
        // A fraction in [0, 1] (NaN as 0) and a message of at most MAX_PROGRESS_MESSAGE bytes.
        let fraction = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        let message = clip_message(message);
        let message = message.as_str();
        let now = std::time::Instant::now();
        let mut state = sync::lock(&self.state);
        if state.last_sent.is_some_and(|at| now.duration_since(at) < PROGRESS_EVERY) {
            state.pending = Some((fraction, message.to_owned()));
            return;
        }
        state.last_sent = Some(now);
        state.pending = None;
        drop(state);
        send_progress(&self.writer, self.id, fraction, message);
    }
}

/// Sends the report still waiting, if any (the job ended).
fn sink_flush(writer: &Arc<Mutex<UnixStream>>, id: u64, state: &Arc<Mutex<ProgressState>>) {
    let pending = sync::lock(state).pending.take();
    if let Some((fraction, message)) = pending {
        send_progress(writer, id, fraction, &message);
    }
}

fn send_progress(writer: &Arc<Mutex<UnixStream>>, id: u64, fraction: f64, message: &str) {
    let progress = FromWorker::Progress { id, fraction, message: message.to_owned() };
    let _ = protocol::write_frame(&mut *sync::lock(writer), &progress);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_withdrawn_before_it_is_taken_up_is_skipped_and_one_taken_up_cannot_be_withdrawn() {
        let mut jobs = Jobs::default();
        // Sent ahead, withdrawn before the job thread got to it: skipped, answered once.
        assert!(jobs.withdraw(2));
        assert!(!jobs.withdraw(2), "a second withdrawal of the same job is not answered again");
        assert!(!jobs.take_up(2));
        // Taken up first: too late to withdraw, whether it still runs or is done.
        assert!(jobs.take_up(3));
        assert!(!jobs.withdraw(3));
        for id in 4..4 + RECENT as u64 - 1 {
            assert!(jobs.take_up(id));
        }
        assert!(!jobs.withdraw(3), "still among the last {RECENT} taken up");
        assert!(jobs.withdrawn.is_empty());
    }
}
