//! Where a job's panic happened: a panic hook, installed once per plugin (each plugin library
//! has its own copy of std, so its own hook), notes the location and a backtrace of a panic
//! on a thread running a job; the runner hands them over with the failure, the host fetches
//! them through [`PANIC_SYMBOL`](crate::ffi::PANIC_SYMBOL) on the same thread.
//!
//! The hook before it (std's, printing to stderr) still runs, so what a plugin printed before
//! is printed still.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::sync::Once;

use abi_stable::std_types::RString;

/// The most of a backtrace kept, in bytes (the host keeps at most as much).
pub const MAX_BACKTRACE: usize = 16 * 1024;

static HOOK: Once = Once::new();

thread_local! {
    /// This thread runs a job (only such panics are noted: others are not the job's).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
    /// The latest panic of the job on this thread, until taken.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook (once), and marks this thread as running a job until dropped; what an
/// earlier job left is forgotten.
pub(crate) struct JobPanics;

impl JobPanics {
    pub(crate) fn enter() -> JobPanics {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if IN_JOB.with(Cell::get) {
                    let location =
                        info.location().map_or_else(|| "an unknown place".to_owned(), |l| l.to_string());
                    let frames = job_frames(&Backtrace::force_capture().to_string());
                    let text = format!("panicked at {location}\n{frames}");
                    LAST.with(|last| *last.borrow_mut() = Some(bounded(text)));
                }
                previous(info);
            }));
        });
        IN_JOB.with(|j| j.set(true));
        forget();
        JobPanics
    }
}

impl Drop for JobPanics {
    fn drop(&mut self) {
        IN_JOB.with(|j| j.set(false));
    }
}

/// Takes the latest panic noted on this thread.
pub(crate) fn take() -> Option<String> {
    LAST.with(|last| last.borrow_mut().take())
}

/// Forgets the latest panic (a job that caught its own panic and then failed otherwise).
pub(crate) fn forget() {
    LAST.with(|last| last.borrow_mut().take());
}

/// [`PANIC_SYMBOL`](crate::ffi::PANIC_SYMBOL): the latest panic of the job on this thread, or
/// empty text; taken, so asking twice gives it once.
#[doc(hidden)]
pub fn take_for_host() -> RString {
    take().unwrap_or_default().into()
}

/// The frames of a backtrace that are the job's: without the capture, the hook and the panic
/// machinery before them (everything up to the last frame of std's or core's panicking, however
/// a build names or inlines the frames above it), and without the SDK's runner and everything
/// that called it (from its `catch_unwind` on) after them. Numbered from 0 again. A backtrace
/// in another shape is kept as it is.
fn job_frames(backtrace: &str) -> String {
    const PANICKING: [&str; 5] = [
        "std::panicking",
        "core::panicking",
        "rust_begin_unwind",
        "__rust_end_short_backtrace",
        "begin_panic",
    ];
    // A frame is its numbered line (`  7: fatal::fatal`) and the `at …` lines after it.
    let mut frames: Vec<(String, Vec<&str>)> = Vec::new();
    for line in backtrace.lines() {
        match line.trim_start().split_once(": ") {
            Some((n, name)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                frames.push((name.to_owned(), Vec::new()))
            }
            _ => match frames.last_mut() {
                Some(frame) => frame.1.push(line),
                None => return backtrace.to_owned(),
            },
        }
    }
    let end = frames.iter().position(|f| f.0.contains("catch_unwind")).unwrap_or(frames.len());
    let start = frames[..end]
        .iter()
        .rposition(|f| PANICKING.iter().any(|m| f.0.contains(m)))
        .map_or(0, |last| last + 1);
    let mut out = String::new();
    for (i, (name, at)) in frames[start..end].iter().enumerate() {
        out.push_str(&format!("{i:4}: {name}\n"));
        for line in at {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_BACKTRACE {
        let mut end = MAX_BACKTRACE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::testing::TestHost;

    fn panics(_: Value, _: &Context) -> JobResult<Value> {
        panic!("An error occurred.");
    }

    fn catches_then_fails(_: Value, _: &Context) -> JobResult<Value> {
        let _ = std::panic::catch_unwind(|| panic!("inner"));
        Err(Failure::retryable("outer"))
    }

    #[test]
    fn a_panic_keeps_its_message_and_brings_where_it_happened() {
        let host = TestHost::new();
        let failure = host.run(&Factory::new("p", panics), "null").unwrap_err();
        assert_eq!((failure.kind(), failure.message()), (FailureKind::Retryable, "An error occurred."));
        let backtrace = failure.backtrace().expect("a backtrace");
        assert!(backtrace.starts_with("panicked at plugin-api/src/panics.rs:"), "{backtrace}");
        let first = backtrace.lines().nth(1).unwrap_or_default();
        assert!(
            first.contains("0: jobhost_plugin_api::panics::tests::panics"),
            "the job's frame first: {backtrace}"
        );
        assert!(!backtrace.contains("catch_unwind"), "not the runner's frames: {backtrace}");
        assert!(backtrace.len() <= super::MAX_BACKTRACE);
        // Taken with the failure: nothing is left for the next one.
        assert_eq!(super::take(), None);
        // A panic the job caught itself is not its failure's.
        let failure = host.run(&Factory::new("c", catches_then_fails), "null").unwrap_err();
        assert_eq!((failure.message(), failure.backtrace()), ("outer", None));
        // Frames named as an optimised build names them: the capture's own and the hook's
        // before std's panicking are left out too.
        let raw = "   0: std::backtrace::Backtrace::create\n   1: jobhost_plugin_api::panics::hook\n   2: std::panicking::rust_panic_with_hook\n   3: core::panicking::panic_fmt\n   4: fatal::fatal\n             at ./src/lib.rs:21:5\n   5: std::panicking::catch_unwind\n   6: main\n";
        assert_eq!(super::job_frames(raw), "   0: fatal::fatal\n             at ./src/lib.rs:21:5\n");
        assert_eq!(super::job_frames("no frames here"), "no frames here");
        // Outside a job, a panic is not noted.
        let _ = std::panic::catch_unwind(|| panic!("not a job's"));
        assert_eq!(super::take(), None);
    }
}
