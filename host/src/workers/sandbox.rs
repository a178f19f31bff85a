//! What a worker process (and everything its plugins start) may not do, enforced by the kernel
//! before any plugin code runs.
//!
//! The environment ([`worker_environment`]): a few of the host's variables, allowlisted, and
//! `[worker_env]`; never the host's secrets.
//!
//! The filesystem ([`Sandbox`]): by default read-only, but for the worker's scratch directory,
//! `/dev` and the configured write paths, through Landlock where the kernel offers it (on an
//! older kernel the policy is logged as not enforced): a plugin cannot write the store, the
//! claims journal or the host's files.
//!
//! Capabilities: none ([`drop_capabilities`]), even when the host runs as root.
//!
//! Signals and tracing: a seccomp filter that refuses, with `EPERM`, signalling the
//! host (its pid, its process group, every process at once with `kill(-1, …)`) and tracing or
//! reading the memory of any process (`ptrace`, `process_vm_readv`/`writev`). Threads of the
//! host other than its first cannot be named by a filter (their ids are unknown here), so
//! `tkill`, which targets a thread alone, is refused outright (glibc uses `tgkill`).
//!
//! Other workers of the same host are not named by the filter (their pids are not known when a
//! worker starts): each worker's own Landlock domain scopes its signals instead
//! ([`restrict_access`]; kernel 6.12 and later), so a worker and what it starts can signal only
//! processes it started. On an older kernel run workers as another user (`worker_user`).
//!
//! **Invariant:** the filter is installed on every thread of the worker before it loads a
//! plugin, and children inherit it; it only refuses, never kills, so a plugin sees an error.

use std::collections::BTreeMap;
use std::convert::TryInto;
use std::path::{Path, PathBuf};
use std::process::Command;

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// The host's environment variables a worker keeps: what programs need to run and to read
/// text (`LC_*` too), nothing that could be a secret (`PGPASSWORD`, `JOBHOST_TOKEN`, cloud keys).
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "MALLOC_ARENA_MAX",
    "JOBHOST_LOG",
    "JOBHOST_LOG_FORMAT",
];

/// A worker's (or probe's) environment: the allowlisted variables of the host's, then `extra`.
pub fn worker_environment(command: &mut Command, extra: &BTreeMap<String, String>) {
    command.env_clear();
    for (name, value) in std::env::vars_os() {
        let keep = name.to_str().is_some_and(|n| ALLOWED_ENV.contains(&n) || n.starts_with("LC_"));
        if keep {
            command.env(name, value);
        }
    }
    command.envs(extra);
}

/// What workers may write, and whose user they run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Read-only but for the scratch directory, `/dev` and `write_paths`; false: unrestricted.
    pub read_only: bool,
    pub write_paths: Vec<PathBuf>,
    /// More paths by plugin name (`[worker_sandbox.plugins.NAME]`), writable only by workers
    /// dedicated to that plugin (see `Spec::dedicated`).
    pub per_plugin: BTreeMap<String, Vec<PathBuf>>,
    /// The user and group workers (and probes) run as (`worker_user`, `worker_group`), for a
    /// host started as root; `None`: the host's.
    pub run_as: Option<RunAs>,
}

/// A user and group to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Has `command` run as this user and group, with no supplementary groups.
    pub fn apply(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        // As root with a uid set, the standard library also drops supplementary groups.
        command.uid(self.uid).gid(self.gid);
    }

    /// Hands `path` (a worker's scratch directory) to this user.
    pub fn give(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
    }
}

impl RunAs {
    /// `user` (a name or a numeric id) and `group` (likewise; default: the user's primary
    /// group), looked up in the system's user database.
    pub fn resolve(user: &str, group: Option<&str>) -> Result<RunAs, String> {
        let (uid, primary) = lookup_user(user)?;
        let gid = match group {
            Some(group) => lookup_group(group)?,
            None => primary,
        };
        Ok(RunAs { uid, gid })
    }
}

fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("{name:?}: not a user name"))?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r writes into `entry` and `buffer`, both ours and of the sizes given.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    unsafe { libc::getpwnam_r(c.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if !found.is_null() {
        return Ok((entry.pw_uid, entry.pw_gid));
    }
    match name.parse::<u32>() {
        Ok(uid) => Ok((uid, uid)),
        Err(_) => Err(format!("no user {name:?} on this system")),
    }
}

fn lookup_group(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("{name:?}: not a group name"))?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getgrnam_r writes into `entry` and `buffer`, both ours and of the sizes given.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    unsafe { libc::getgrnam_r(c.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if !found.is_null() {
        return Ok(entry.gr_gid);
    }
    name.parse::<u32>().map_err(|_| format!("no group {name:?} on this system"))
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox { read_only: true, write_paths: Vec::new(), per_plugin: BTreeMap::new(), run_as: None }
    }
}

impl Sandbox {
    /// The hidden `worker` command's flags for this policy.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.read_only {
            args.push("--fs-unrestricted".to_owned());
        }
        for path in &self.write_paths {
            args.push("--write-path".to_owned());
            args.push(path.display().to_string());
        }
        args
    }
}

/// The device files every program may write (not the rest of `/dev`: `/dev/shm` would let a
/// plugin leave files behind; add it to `write_paths` for POSIX shared memory).
const WRITABLE_DEVICES: [&str; 6] =
    ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/random", "/dev/urandom"];

/// Restricts this process (and everything it starts) with Landlock: its filesystem access to
/// `policy`, with `scratch` writable too, and, whatever the policy, its signals to its own
/// domain: processes it started. Every worker restricts itself separately, so no worker can
/// signal the host or another worker (kernel 6.12 and later; older kernels rely on the
/// seccomp filter, which protects the host only). Paths that do not exist are left out (a
/// rule needs an open file).
pub fn restrict_access(policy: &Sandbox, scratch: Option<&Path>) -> Result<(), String> {
    let abi = ABI::V5;
    let fail = |e: landlock::RulesetError| format!("cannot restrict its access (Landlock): {e}");
    let mut ruleset = Ruleset::default().scope(Scope::Signal).map_err(fail)?;
    if policy.read_only {
        ruleset = ruleset.handle_access(AccessFs::from_all(abi)).map_err(fail)?;
    }
    let mut created = ruleset.create().map_err(fail)?;
    if policy.read_only {
        let writable: Vec<&Path> = scratch
            .into_iter()
            .chain(WRITABLE_DEVICES.iter().map(Path::new))
            .chain(policy.write_paths.iter().map(PathBuf::as_path))
            .filter(|p| p.exists())
            .collect();
        created = created
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
            .and_then(|r| r.add_rules(path_beneath_rules(writable, AccessFs::from_all(abi))))
            .map_err(fail)?;
    }
    let status = created.restrict_self().map_err(fail)?;
    match status.ruleset {
        RulesetStatus::NotEnforced if policy.read_only => {
            log::warn!("worker: this kernel has no Landlock: the read-only filesystem is not enforced")
        }
        RulesetStatus::NotEnforced | RulesetStatus::PartiallyEnforced => log::debug!(
            "worker: this kernel's Landlock cannot scope signals: other workers are not protected from this one"
        ),
        RulesetStatus::FullyEnforced => {}
    }
    Ok(())
}

/// Drops every capability this process has (a host started as root would hand its workers
/// all of them: reading any process's memory, signalling any process, overriding file
/// permissions), so that even a root worker is held by the same checks as any user.
pub fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    // SAFETY: prctl on this process's own capability sets, and capset with a header and two
    // data words of the layout the kernel's _LINUX_CAPABILITY_VERSION_3 expects, all ours.
    unsafe {
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for cap in 0..64 {
            // EINVAL past the last capability this kernel knows; EPERM without CAP_SETPCAP.
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        let mut header = Header { version: VERSION_3, pid: 0 };
        let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
        if libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) != 0 {
            return Err(format!("cannot drop its capabilities: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Installs the filter protecting `host` (the worker's parent) and its process group.
pub fn restrict(host: i32, host_group: i32) -> Result<(), String> {
    let install = |program: BpfProgram| {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| format!("cannot install the seccomp filter: {e}"))
    };
    install(filter(host, host_group)?)?;
    install(no_clone3()?)
}

/// `clone3` answered `ENOSYS`, as on a kernel before 5.3: its flags are in memory, where a
/// filter cannot look, so `CLONE_PARENT` could hide there. The C library and Rust's standard
/// library then fall back to `clone`, whose flags the main filter checks.
fn no_clone3() -> Result<BpfProgram, String> {
    let error = |e: seccompiler::BackendError| format!("cannot build the seccomp filter: {e}");
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, vec![])].into_iter().collect();
    let arch = std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| error(e))?;
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch)
        .map_err(error)?
        .try_into()
        .map_err(|e: seccompiler::BackendError| error(e))
}

fn filter(host: i32, host_group: i32) -> Result<BpfProgram, String> {
    let error = |e: seccompiler::BackendError| format!("cannot build the seccomp filter: {e}");
    // An argument of type pid_t compared as the 32-bit pattern the kernel sees.
    let pid = |index: u8, value: i32| {
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, u64::from(value as u32))
            .map_err(error)
    };
    let rule = |conditions: Vec<SeccompCondition>| SeccompRule::new(conditions).map_err(error);
    // clone's flags (its first argument on every architecture jobhost builds for).
    let clone_parent = || {
        let flag = libc::CLONE_PARENT as u64;
        SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag).map_err(error)
    };
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
        // A process started with CLONE_PARENT is its parent's sibling: a job's process could
        // hop out of the tree that is killed at the job's end (a child of the worker's own
        // parent, the host, only the orphan sweep would find), one hop per clone.
        (libc::SYS_clone, vec![rule(vec![clone_parent()?])?]),
        // Unconditional: an empty rule list matches every call.
        (libc::SYS_tkill, vec![]),
        // A pidfd can come from opening /proc/PID: no signals through pidfds at all.
        (libc::SYS_pidfd_send_signal, vec![]),
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
