//! What a worker that died left behind. While a worker lives, whatever its plugins start is in
//! its tree (it is a subreaper), and the worker or the host kills that tree. A worker that dies
//! on its own (a crash, a kill from outside) cannot: its detached processes move up to the
//! nearest subreaper, which `serve` makes itself ([`adopt`]), and a sweep kills every child of
//! the host that is not a live worker. Workers are spawned through [`spawn_registered`], under
//! the lock the sweep holds, so a worker just started is never taken for an orphan.
//!
//! When `serve` ends, [`end_all`] kills whatever workers are still alive (a stop signal does not
//! wait for every worker slot to wind down) and removes their scratch directories.
//!
//! **Invariant:** the sweep runs only in a process that called [`adopt`] (`serve`), whose only
//! children are its workers; it never touches a live worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::tree;
use crate::sync;

/// The workers alive (spawned and not yet reaped), with their scratch directories.
static LIVE: Mutex<BTreeMap<i32, Option<PathBuf>>> = Mutex::new(BTreeMap::new());

/// Spawns a worker (with its scratch directory, if it has one) and registers it as live in
/// one step.
pub fn spawn_registered(command: &mut Command, scratch: Option<&Path>) -> std::io::Result<Child> {
    let mut live = sync::lock(&LIVE);
    let child = command.spawn()?;
    live.insert(child.id() as i32, scratch.map(Path::to_path_buf));
    Ok(child)
}

/// Kills every worker still alive, with everything it started, and removes their scratch
/// directories: the last thing `serve` does, so that a stop leaves no process and no files.
pub fn end_all() {
    let mut live = sync::lock(&LIVE);
    for (pid, scratch) in std::mem::take(&mut *live) {
        tree::kill_descendants(pid);
        // SAFETY: kill(2) and waitpid on our own child and its process group. It was live a
        // moment ago; its slot may reap it this instant, but the host is exiting and starts
        // nothing more, so no other process can have taken its pid.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        if let Some(dir) = scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A worker was reaped: its pid may be reused from now on.
pub fn forget(pid: i32) {
    sync::lock(&LIVE).remove(&pid);
}

/// Makes this process a child subreaper and sweeps the orphans that come to it every half
/// second: what dead workers left behind is killed within about a second.
pub fn adopt() -> std::io::Result<()> {
    // SAFETY: prctl on this process's own attribute.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::thread::Builder::new().name("orphan-sweeper".to_owned()).spawn(|| loop {
        std::thread::sleep(Duration::from_millis(500));
        sweep();
    })?;
    Ok(())
}

/// Kills and reaps every child of this process that is not a live worker.
fn sweep() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let live = sync::lock(&LIVE);
    for pid in tree::children(me) {
        if live.contains_key(&pid) {
            continue;
        }
        // SAFETY: waitpid and kill(2) on our own child, not reaped yet (it is listed under
        // us), so its pid is still ours; WNOHANG: one stuck in the kernel is reaped next time.
        if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid {
            continue; // it had ended by itself
        }
        let killed = tree::kill_descendants(pid);
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
        }
        log::warn!("killed process {pid} (and {killed} below it), left behind by a worker process that died");
    }
}
