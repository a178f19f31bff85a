//! A process and everything it started: found through `/proc` (each process's parent), and
//! killed together. A worker process is a child subreaper, so whatever its plugins start stays
//! in its tree even when they detach (`setsid`, double fork): killing the tree from the top,
//! again until nothing is left, gets processes that were forking meanwhile too, since a killed
//! process's children move up to the subreaper.
//!
//! **Invariant:** only descendants of the given root are signalled, never the root's
//! ancestors or unrelated processes; a pid is read from `/proc` just before it is signalled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The parent of each process now running, from `/proc/PID/stat`.
fn parents() -> HashMap<i32, i32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return parents };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses: read after the last.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The CPU time each of `roots` and everything it started have used: the root's own (user and
/// system), its reaped children's, and that of its descendants still running. One pass over
/// `/proc` for all roots.
pub fn cpu_times(roots: &[i32]) -> HashMap<i32, Duration> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut stats: HashMap<i32, (i32, u64, u64)> = HashMap::new(); // pid → (ppid, own, reaped)
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        // After COMM: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from 0.
        let fields: Vec<&str> = after.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let Some(ppid) = fields.get(1).and_then(|p| p.parse::<i32>().ok()) else { continue };
        stats.insert(pid, (ppid, number(11) + number(12), number(13) + number(14)));
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &(ppid, ..)) in &stats {
        children.entry(ppid).or_default().push(pid);
    }
    let mut times = HashMap::new();
    for &root in roots {
        let Some(&(_, own, reaped)) = stats.get(&root) else { continue };
        let mut total = own + reaped;
        let mut next = vec![root];
        let mut seen = vec![root];
        while let Some(pid) = next.pop() {
            for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
                if !seen.contains(&child) {
                    seen.push(child);
                    next.push(child);
                    total += stats.get(&child).map_or(0, |s| s.1);
                }
            }
        }
        times.insert(root, Duration::from_secs_f64(total as f64 / ticks));
    }
    times
}

/// The children of `parent` now running (or ended and not reaped).
pub fn children(parent: i32) -> Vec<i32> {
    parents().into_iter().filter(|&(_, ppid)| ppid == parent).map(|(pid, _)| pid).collect()
}

/// Every descendant of `root` now running (not `root` itself), parents before children.
pub fn descendants(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if child != root && !found.contains(&child) {
                found.push(child);
                next.push(child);
            }
        }
    }
    found
}

/// SIGKILLs every descendant of `root`, looking again until none is left alive (a process
/// forking while its parent is killed leaves children that move up to the subreaper), for at
/// most two seconds. Returns how many were killed. `root` itself is left alone. When `root` is
/// this process, its ended children are reaped as it goes, so a process that forks and exits
/// in a loop leaves no pile of zombies.
pub fn kill_descendants(root: i32) -> usize {
    // SAFETY: getpid has no preconditions.
    let own = root == unsafe { libc::getpid() };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed = 0;
    loop {
        if own {
            reap_ended_children();
        }
        let alive: Vec<i32> = descendants(root).into_iter().filter(|&pid| !is_zombie(pid)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in alive {
            // SAFETY: kill(2) on a pid that was a live descendant of `root` a moment ago; its
            // pid cannot be reused before it is reaped, and only its parent (the subreaper,
            // `root` or below) reaps it.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    if own {
        reap_ended_children();
    }
    killed
}

/// Whether `pid` is a zombie (dead, waiting for its parent to reap it), or gone.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// Whether this process has any child, running or ended: one system call, so a job that
/// started nothing costs its worker no look through `/proc`. (Every descendant still running
/// has a live parent chain up to a child of ours, or was handed to us as the subreaper.)
pub fn has_children() -> bool {
    // SAFETY: waitid with WNOWAIT reaps nothing; it fills `info`, which we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) == 0
    }
}

/// Reaps every child of this process that has ended, without waiting (a worker after its job:
/// what its plugin started and did not wait for).
fn reap_ended_children() {
    loop {
        // SAFETY: waitpid with WNOHANG on any child; the status is ours to discard.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_tree_is_found_and_killed_whole_and_nothing_else() {
        // sh → sleep, sh → sh → sleep: three levels under the shell we start.
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 600 & sh -c 'sleep 600 & wait' & wait"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let root = shell.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while descendants(root).len() < 3 {
            assert!(std::time::Instant::now() < deadline, "the tree never grew: {:?}", descendants(root));
            std::thread::sleep(Duration::from_millis(20));
        }
        let me = std::process::id() as i32;
        let found = descendants(root);
        assert!(!found.contains(&me) && !found.contains(&root));
        assert!(kill_descendants(root) >= 3);
        // The root was not signalled: its `wait` returned once its children were gone, and it
        // exited by itself.
        let status = shell.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), None, "{status:?}");
        assert!(descendants(root).is_empty());
    }
}
