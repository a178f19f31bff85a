//! A worker's output (its log records, and whatever its plugins and their children print) into
//! the host's log: each line a record of the host's own, never a line of its making; every
//! line bounded ([`MAX_LINE`]) and every job's output bounded ([`Budget`]), the rest dropped
//! and counted, so a plugin that prints without end costs the host neither memory nor its log.
//!
//! **Invariant:** the forwarding thread holds at most one line ([`MAX_LINE`] bytes) of a
//! worker's output at a time, whatever the worker writes.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar};
use std::time::{Duration, Instant};

use super::death::Tail;
use crate::sync;

/// What a job may print before the rest of its output is dropped (`worker_limits.output_per_job`).
pub const DEFAULT_OUTPUT_PER_JOB: u64 = 1024 * 1024;

/// How long a job's start waits for the output of the job before to be read (a job that
/// printed much may leave up to a pipe's worth behind when it ends).
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// The line a worker writes to its output where a job's output ends, when some of it is still
/// unread (followed by the job's id): a job sent ahead starts at once, so its output follows in
/// the same pipe, and this is where the budget passes to it. A plugin could print one too;
/// only the marker of the job running, once, counts, so at worst it moves the rest of its own
/// output to the next job's budget.
pub(super) const END_MARKER: &str = "\u{1}jobhost: end of job ";

/// A worker's output allowance for the job it runs now, and what went over it.
pub(super) struct Budget {
    limit: u64,
    pid: u32,
    state: std::sync::Mutex<Spent>,
    /// Signalled when the forwarder has read everything written so far.
    drained: Condvar,
}

#[derive(Default)]
struct Spent {
    /// The job the output is counted against (the last one sent).
    job: Option<u64>,
    used: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// The forwarder has read everything written so far (the pipe was empty).
    caught_up: bool,
    /// The pipe the forwarder reads (while it does).
    pipe: Option<RawFd>,
    /// Job `.0` ended with its output partly unread and job `.1`, sent ahead, runs now: the
    /// budget passes to `.1` at `.0`'s end marker.
    switch: Option<(u64, u64)>,
    /// The end marker of this job was read before the host learnt which job runs next: output
    /// from there on is counted (with `job` unknown) against the next.
    after: Option<u64>,
}

impl Budget {
    pub(super) fn new(limit: u64, pid: u32) -> Budget {
        Budget { limit, pid, state: Default::default(), drained: Condvar::new() }
    }

    /// Job `id` starts: its output is counted from zero. What the last job wrote (all of it
    /// before it ended: the worker kills what the job started before it reports) is read
    /// first, within a bound, so that it is not counted against this one.
    pub(super) fn start_job(&self, id: u64) {
        let deadline = Instant::now() + DRAIN_WAIT;
        let mut spent = sync::lock(&self.state);
        // The forwarder waits for more, and nothing is in the pipe (it may not have woken up
        // for the last bytes yet): looked at again every few milliseconds.
        while !(spent.caught_up && spent.pipe.is_none_or(|fd| pending(fd) == 0)) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let step = (deadline - now).min(Duration::from_millis(5));
            spent = sync::wait_timeout(&self.drained, spent, step);
        }
        self.count_for(&mut spent, Some(id));
    }

    /// Job `next`, sent ahead, runs now: job `ended` answered before it, saying whether it
    /// wrote its end marker (some of its output was still unread). Without one, all of
    /// `ended`'s output had reached the forwarder (at most a buffer of it not yet counted), and
    /// the budget passes now. Never waits: the next job may be printing already.
    pub(super) fn switch_job(&self, ended: u64, next: u64, marked: bool) {
        let mut spent = sync::lock(&self.state);
        if spent.after == Some(ended) {
            // Its marker was read already: what came since is the next job's.
            spent.after = None;
            spent.job = Some(next);
            return;
        }
        if let Some((_, earlier)) = spent.switch.take() {
            // The last marker never came (cut into a line a plugin left unfinished).
            self.count_for(&mut spent, Some(earlier));
        }
        if marked {
            spent.switch = Some((ended, next));
        } else {
            self.count_for(&mut spent, Some(next));
        }
    }

    /// The forwarder read job `ended`'s end marker.
    fn marker(&self, ended: u64) {
        let mut spent = sync::lock(&self.state);
        match spent.switch {
            Some((job, next)) if job == ended => self.count_for(&mut spent, Some(next)),
            _ if spent.job == Some(ended) && spent.after.is_none() => {
                self.count_for(&mut spent, None);
                spent.after = Some(ended);
            }
            _ => {} // not the running job's: a plugin's imitation
        }
    }

    /// What was dropped so far noted; output from here counted against `job`.
    fn count_for(&self, spent: &mut Spent, job: Option<u64>) {
        self.note(spent);
        let (caught_up, pipe) = (spent.caught_up, spent.pipe);
        *spent = Spent { job, caught_up, pipe, ..Spent::default() };
    }

    /// The forwarder reads `pipe`, until it ends (`None`).
    fn reads(&self, pipe: Option<RawFd>) {
        sync::lock(&self.state).pipe = pipe;
    }

    /// The forwarder found the pipe empty (`true`), or read more (`false`).
    fn caught_up(&self, caught_up: bool) {
        let mut spent = sync::lock(&self.state);
        if spent.caught_up != caught_up {
            spent.caught_up = caught_up;
            if caught_up {
                self.drained.notify_all();
            }
        }
    }

    /// The job ended: what it had dropped is noted now (output it wrote last, still in the
    /// pipe, is counted against it all the same).
    pub(super) fn end_job(&self) {
        self.note(&mut sync::lock(&self.state));
    }

    /// Whether a line of `bytes` bytes may be logged; if not, it is counted as dropped.
    fn admit(&self, bytes: usize) -> bool {
        let mut spent = sync::lock(&self.state);
        let bytes = bytes as u64 + 1;
        if spent.used + bytes <= self.limit {
            spent.used += bytes;
            return true;
        }
        spent.used = self.limit;
        spent.dropped_lines += 1;
        spent.dropped_bytes += bytes;
        false
    }

    /// Logs (once) what was dropped since the last note.
    fn note(&self, spent: &mut Spent) {
        if spent.dropped_lines == 0 {
            return;
        }
        let whose = spent.job.map_or_else(|| "its output".to_owned(), |id| format!("job {id}'s output"));
        log::warn!(
            target: "jobhost::worker", worker = self.pid;
            "{} line(s) ({} bytes) of {whose} dropped: over worker_limits.output_per_job ({} bytes)",
            spent.dropped_lines, spent.dropped_bytes, self.limit
        );
        spent.dropped_lines = 0;
        spent.dropped_bytes = 0;
    }
}

/// The longest line of a worker's output forwarded whole; the rest of a longer one is
/// dropped, and the line says how much.
pub const MAX_LINE: usize = 16 * 1024;

/// Carries a worker's output (its log records, and whatever its plugins print) into the host's
/// log as it comes, each line a record of the host's own (target `jobhost::worker`, with the
/// worker's pid as a field), keeping the last lines to explain a death. A worker logs JSON
/// lines: one is re-logged at its level with its text; anything else (a plugin's `println!`,
/// a panic message) is logged at info as it is. Control characters are escaped, so no output
/// can forge a host line, rewrite a terminal or break `log_format = "json"`. Bytes that are not UTF-8 are
/// replaced (they never stop the forwarding), and a line is cut at [`MAX_LINE`], so one huge
/// line costs the host no more memory than a short one. Past the job's [`Budget`] lines are
/// dropped and counted (a note says how many when the job ends); they still reach the tail,
/// so a death after much output is still explained.
pub(super) fn forward_output(
    output: std::process::ChildStderr,
    pid: u32,
    tail: Arc<Tail>,
    budget: Arc<Budget>,
) {
    let forwarded = tail.clone();
    let spawned = std::thread::Builder::new().name(format!("worker-{pid}-output")).spawn(move || {
        let fd = output.as_raw_fd();
        budget.reads(Some(fd));
        let idle = budget.clone();
        let mut lines = Lines {
            reader: BufReader::new(output),
            line: Vec::new(),
            dropped: 0,
            idle: Some((fd, Box::new(move |caught_up| idle.caught_up(caught_up)))),
        };
        while let Some(line) = lines.next_line() {
            if let Some(ended) = line.strip_prefix(END_MARKER).and_then(|id| id.parse::<u64>().ok()) {
                budget.marker(ended);
                continue;
            }
            let said = Said::parse(&line);
            if budget.admit(line.len()) {
                log::log!(
                    target: "jobhost::worker", said.level, worker = pid, from = said.from.as_str();
                    "{}", said.text
                );
            }
            forwarded.push(said.text);
        }
        budget.end_job();
        budget.reads(None);
        budget.caught_up(true);
        forwarded.close();
    });
    if let Err(e) = spawned {
        log::warn!("worker process {pid}: cannot forward its output: {e}");
        tail.close();
    }
}

/// Told whether the reader has read all that was written (`true`) or read more (`false`).
type Idle = Box<dyn FnMut(bool) + Send>;

/// Lines of at most [`MAX_LINE`] bytes from a stream, read without holding more.
struct Lines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    dropped: usize,
    /// The stream's descriptor, and whom to tell when nothing is left to read.
    idle: Option<(RawFd, Idle)>,
}

/// Bytes waiting in the pipe `fd`.
fn pending(fd: RawFd) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass, which is ours.
    let ok = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut bytes) } == 0;
    if ok {
        bytes.max(0) as usize
    } else {
        1
    }
}

impl<R: std::io::Read> Lines<R> {
    /// The next line (lossily decoded, cut with a note), or `None` at the end of the stream.
    fn next_line(&mut self) -> Option<String> {
        loop {
            let drained = self.reader.buffer().is_empty();
            if let Some((fd, idle)) = self.idle.as_mut().filter(|_| drained) {
                // About to wait for more: tell whether everything written so far was read.
                idle(pending(*fd) == 0);
            }
            let filled = self.reader.fill_buf();
            if let Some((_, idle)) = self.idle.as_mut().filter(|_| drained) {
                idle(false);
            }
            let available = match filled {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return self.finish(),
            };
            if available.is_empty() {
                return self.finish();
            }
            let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.dropped += chunk.len().saturating_sub(room);
            let used = newline.unwrap_or(chunk.len());
            self.reader.consume(used);
            if newline.is_some() {
                return Some(self.take());
            }
        }
    }

    fn finish(&mut self) -> Option<String> {
        (!self.line.is_empty() || self.dropped > 0).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" … ({} more bytes of this line dropped)", self.dropped));
        }
        self.line.clear();
        self.dropped = 0;
        text
    }
}

/// One line of a worker's output, as the host logs it.
#[derive(Debug, PartialEq)]
pub(super) struct Said {
    pub level: log::Level,
    /// The target of the worker's record (a plugin's module, `jobhost`), or `output` for
    /// anything printed.
    pub from: String,
    /// Its text, control characters escaped.
    pub text: String,
}

impl Said {
    pub fn parse(line: &str) -> Said {
        let record = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok();
        let field = |name: &str| record.as_ref().and_then(|r| r.get(name)).and_then(|v| v.as_str());
        match (field("level").and_then(|l| l.parse::<log::Level>().ok()), field("message")) {
            (Some(level), Some(message)) => Said {
                level,
                from: escape_controls(field("target").unwrap_or("worker")),
                text: escape_controls(message),
            },
            _ => Said { level: log::Level::Info, from: "output".to_owned(), text: escape_controls(line) },
        }
    }
}

/// `text` with control characters (carriage returns, escape sequences, NULs, ...) written as
/// escapes.
pub(super) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

#[cfg(test)]
mod said_tests {
    use super::*;

    #[test]
    fn a_workers_json_record_keeps_its_level_and_anything_else_is_output_with_controls_escaped() {
        let record = r#"{"ts":"x","level":"WARN","target":"echo","message":"careful","job":3}"#;
        assert_eq!(
            Said::parse(record),
            Said { level: log::Level::Warn, from: "echo".into(), text: "careful".into() }
        );
        let printed = Said::parse("2026-12-03T00:00:00Z ERROR jobhost] fake\r\x1b[2K");
        assert_eq!((printed.level, printed.from.as_str()), (log::Level::Info, "output"));
        assert_eq!(printed.text, "2026-12-03T00:00:00Z ERROR jobhost] fake\\r\\u{1b}[2K");
        // A JSON line that is not a record is output too.
        assert_eq!(Said::parse("[1,2]").from, "output");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut lines =
            Lines { reader: BufReader::with_capacity(64, input), line: Vec::new(), dropped: 0, idle: None };
        std::iter::from_fn(|| lines.next_line()).collect()
    }

    #[test]
    fn a_jobs_output_past_its_budget_is_dropped_and_counted_and_the_next_job_starts_afresh() {
        let budget = Budget::new(10, 1);
        budget.start_job(1);
        assert!(budget.admit(4)); // 5 bytes with its newline
        assert!(budget.admit(4));
        assert!(!budget.admit(0), "the 11th byte");
        assert!(!budget.admit(1));
        {
            let spent = sync::lock(&budget.state);
            assert_eq!((spent.dropped_lines, spent.dropped_bytes), (2, 3));
        }
        budget.end_job();
        assert!(!budget.admit(0), "still job 1's output");
        budget.start_job(2);
        let spent = sync::lock(&budget.state);
        assert_eq!((spent.job, spent.used, spent.dropped_lines), (Some(2), 0, 0));
    }

    #[test]
    fn a_job_sent_ahead_takes_over_the_budget_at_the_end_marker_of_the_job_before() {
        let budget = Budget::new(10, 1);
        let state = |budget: &Budget| {
            let spent = sync::lock(&budget.state);
            (spent.job, spent.used)
        };
        // The host learns job 2 runs before the forwarder reads job 1's marker: what comes
        // before the marker is still job 1's.
        budget.start_job(1);
        assert!(budget.admit(4));
        budget.switch_job(1, 2, true);
        assert!(budget.admit(4));
        assert!(!budget.admit(4), "job 1's, past its 10 bytes");
        budget.marker(7); // an imitation: not the running job's
        assert_eq!(state(&budget), (Some(1), 10));
        budget.marker(1);
        assert_eq!(state(&budget), (Some(2), 0));
        assert!(budget.admit(4));
        // The other way round: job 2's marker is read first; what follows it waits, counted,
        // for the host to say which job it is.
        budget.marker(2);
        assert!(budget.admit(4));
        assert_eq!(state(&budget), (None, 5));
        budget.switch_job(2, 3, true);
        assert_eq!(state(&budget), (Some(3), 5));
        // No marker (all of job 3's output was read when it ended): job 4's budget starts now.
        budget.switch_job(3, 4, false);
        assert_eq!(state(&budget), (Some(4), 0));
    }

    #[test]
    fn output_lines_survive_bad_bytes_and_huge_lines_are_cut() {
        let mut input = b"first\nbad \xff\xfe bytes\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nlast without newline");
        let got = lines(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], "first");
        assert_eq!(got[1], "bad \u{fffd}\u{fffd} bytes");
        assert!(
            got[2].starts_with(&"x".repeat(MAX_LINE))
                && got[2].ends_with("(10 more bytes of this line dropped)")
        );
        assert_eq!(got[3], "last without newline");
    }
}
