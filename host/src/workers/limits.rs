//! Resource limits of a worker process (`[worker_limits]`), applied with `setrlimit` in the
//! worker before it loads any plugin, and how a limit shows when a job exceeds it.
//!
//! - `address_space` (RLIMIT_AS): an allocation past it fails, which Rust answers by aborting
//!   ("memory allocation of N bytes failed"): the job ends with that line and the limit named.
//! - `cpu_time` (RLIMIT_CPU): per job, not per process: before each job the worker sets its
//!   soft limit to the CPU time it has used so far plus the limit; past it the kernel sends
//!   SIGXCPU, which ends the worker, and the job records the limit.
//! - `open_files` (RLIMIT_NOFILE): opening one file too many fails with "Too many open files",
//!   which the plugin reports as its failure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of one worker process; `None` leaves the inherited limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of address space.
    pub address_space: Option<u64>,
    /// CPU time of one job.
    pub cpu_time: Option<Duration>,
    /// Open file descriptors.
    pub open_files: Option<u64>,
    /// Jobs a worker process runs before the host replaces it (not a kernel limit: the host
    /// counts).
    #[serde(default)]
    pub max_jobs: Option<u64>,
    /// Bytes of output one job may add to the host's log (the host counts); `None`: the
    /// default, [`super::output::DEFAULT_OUTPUT_PER_JOB`].
    #[serde(default)]
    pub output_per_job: Option<u64>,
}

impl Limits {
    /// The hidden `worker` command's flags for these limits.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(bytes) = self.address_space {
            args.push(format!("--address-space={bytes}"));
        }
        if let Some(cpu) = self.cpu_time {
            args.push(format!("--cpu-time-ms={}", cpu.as_millis()));
        }
        if let Some(files) = self.open_files {
            args.push(format!("--open-files={files}"));
        }
        args
    }

    /// Applies the address-space and open-files limits to this process (a worker, before it
    /// loads plugins). The CPU limit is per job: see [`Limits::limit_cpu_for_next_job`].
    pub fn apply(&self) -> std::io::Result<()> {
        if let Some(bytes) = self.address_space {
            set(libc::RLIMIT_AS, bytes)?;
        }
        if let Some(files) = self.open_files {
            set(libc::RLIMIT_NOFILE, files)?;
        }
        Ok(())
    }

    /// Sets the soft CPU limit to the CPU time used so far plus `cpu_time` (no-op without one).
    pub fn limit_cpu_for_next_job(&self) -> std::io::Result<()> {
        let Some(limit) = self.cpu_time else { return Ok(()) };
        // SAFETY: getrusage writes into the zeroed struct we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let used = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1;
        let soft = u64::try_from(used).unwrap_or(0).saturating_add(limit.as_secs().max(1));
        let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut current) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let soft = soft.min(current.rlim_max);
        let new = libc::rlimit { rlim_cur: soft, rlim_max: current.rlim_max };
        // SAFETY: a valid resource and struct; lowering or raising the soft limit below the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_CPU, &new) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Why a worker that died this way did: the limit it points to, if any (`tail`: its last
    /// lines of output).
    pub fn explain(&self, signal: Option<i32>, tail: &[String]) -> Option<String> {
        if signal == Some(libc::SIGXCPU) {
            return self.cpu_time.map(|t| {
                format!(
                    "the job used more CPU time than worker_limits.cpu_time ({})",
                    humantime::format_duration(t)
                )
            });
        }
        let oom = tail.iter().rev().find(|l| l.contains("memory allocation of"))?;
        let line = oom.trim();
        Some(match self.address_space {
            Some(bytes) => format!("{line} (worker_limits.address_space is {})", format_bytes(bytes)),
            None => line.to_owned(),
        })
    }
}

fn set(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write structs we own.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let value = value.min(current.rlim_max);
    let new = libc::rlimit { rlim_cur: value, rlim_max: value };
    if unsafe { libc::setrlimit(resource, &new) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `"512MiB"`, `"2GiB"`, `"1000000"` (bytes), `"64k"`: a size from the config file.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("invalid size {text:?} (write e.g. \"512MiB\", \"2GiB\")"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("invalid size {text:?}: unknown unit {other:?} (use KiB, MiB, GiB)")),
    };
    number.checked_mul(scale).ok_or_else(|| format!("invalid size {text:?}: too large"))
}

pub fn format_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units_and_refuse_nonsense() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("99999999999TiB").is_err());
        assert_eq!(format_bytes(256 << 20), "256 MiB");
    }

    #[test]
    fn a_death_names_the_limit_it_points_to() {
        let limits = Limits {
            address_space: Some(256 << 20),
            cpu_time: Some(Duration::from_secs(2)),
            open_files: None,
            max_jobs: None,
            output_per_job: None,
        };
        let tail = vec!["memory allocation of 1073741824 bytes failed".to_owned()];
        assert_eq!(
            limits.explain(Some(libc::SIGABRT), &tail).unwrap(),
            "memory allocation of 1073741824 bytes failed (worker_limits.address_space is 256 MiB)"
        );
        assert!(limits.explain(Some(libc::SIGXCPU), &[]).unwrap().contains("worker_limits.cpu_time (2s)"));
        assert_eq!(limits.explain(Some(libc::SIGSEGV), &["unrelated".to_owned()]), None);
    }
}
