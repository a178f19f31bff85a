//! What a worker process (and everything its plugins start) may not do, enforced by the kernel
//! before any plugin code runs: a seccomp filter that refuses, with `EPERM`, signalling the
//! host (its pid, its process group, every process at once with `kill(-1, …)`) and tracing or
//! reading the memory of any process (`ptrace`, `process_vm_readv`/`writev`). Threads of the
//! host other than its first cannot be named by a filter (their ids are unknown here), so
//! `tkill`, which targets a thread alone, is refused outright (glibc uses `tgkill`).
//!
//! Other workers of the same host are not protected by the filter (their pids are not known
//! when a worker starts); run workers as another user (`worker_user`) for that.
//!
//! **Invariant:** the filter is installed on every thread of the worker before it loads a
//! plugin, and children inherit it; it only refuses, never kills, so a plugin sees an error.

use std::collections::BTreeMap;
use std::convert::TryInto;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// Installs the filter protecting `host` (the worker's parent) and its process group.
pub fn restrict(host: i32, host_group: i32) -> Result<(), String> {
    let program = filter(host, host_group)?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

fn filter(host: i32, host_group: i32) -> Result<BpfProgram, String> {
    let error = |e: seccompiler::BackendError| format!("cannot build the seccomp filter: {e}");
    // An argument of type pid_t compared as the 32-bit pattern the kernel sees.
    let pid = |index: u8, value: i32| {
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, u64::from(value as u32))
            .map_err(error)
    };
    let rule = |conditions: Vec<SeccompCondition>| SeccompRule::new(conditions).map_err(error);
    let targets = |index: u8| -> Result<Vec<SeccompRule>, String> {
        let mut rules = vec![rule(vec![pid(index, host)?])?, rule(vec![pid(index, -1)?])?];
        if host_group > 1 {
            rules.push(rule(vec![pid(index, -host_group)?])?);
        }
        Ok(rules)
    };
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [
        (libc::SYS_kill, targets(0)?),
        (libc::SYS_tgkill, vec![rule(vec![pid(0, host)?])?]),
        (libc::SYS_rt_sigqueueinfo, vec![rule(vec![pid(0, host)?])?]),
        (libc::SYS_rt_tgsigqueueinfo, vec![rule(vec![pid(0, host)?])?]),
        (libc::SYS_pidfd_open, vec![rule(vec![pid(0, host)?])?]),
        // Unconditional: an empty rule list matches every call.
        (libc::SYS_tkill, vec![]),
        (libc::SYS_ptrace, vec![]),
        (libc::SYS_process_vm_readv, vec![]),
        (libc::SYS_process_vm_writev, vec![]),
    ]
    .into_iter()
    .collect();
    let arch = std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| error(e))?;
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(error)?
        .try_into()
        .map_err(|e: seccompiler::BackendError| error(e))
}
