//! The rules that span keys, or that serde's types cannot say.

use std::time::Duration;

use super::file::Config;

/// The shortest `lease`: renewed every third of it by a supervisor that looks every 25 ms,
/// a lease must outlast a store flush and a scheduling hiccup many times over.
const MIN_LEASE: Duration = Duration::from_secs(1);
const MIN_POLL: Duration = Duration::from_millis(10);
const MIN_KILL_GRACE: Duration = Duration::from_millis(100);
const MIN_LOAD_TIMEOUT: Duration = Duration::from_millis(100);
const MIN_FLUSH: Duration = Duration::from_millis(1);

/// The longest `limits.max_wait`.
const MAX_LONG_POLL: Duration = Duration::from_secs(3600);
/// The smallest `store.cache_bytes`.
const MIN_CACHE_BYTES: u64 = 1 << 20;

/// The smallest `worker_limits.address_space`: below it a worker process cannot start.
const MIN_ADDRESS_SPACE: u64 = 64 << 20;

impl Config {
    /// Rules that span keys or that serde's types cannot say (checked when a file is read, and
    /// again once command-line flags have overridden it).
    pub fn check(&self) -> Result<(), String> {
        for name in self.queues.keys() {
            if !crate::job::is_valid_name(name) {
                return Err(format!(
                    "queues.{name}: invalid queue name; use 1 to {} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`",
                    crate::job::MAX_NAME_LEN
                ));
            }
        }
        let positive = [
            ("lease", self.lease),
            ("poll_interval", self.poll_interval),
            ("retry.base", self.retry.base),
            ("retry.cap", self.retry.cap),
            ("retention.sweep_interval", self.retention.sweep_interval),
            ("store.flush_interval", self.store.flush_interval),
            ("kill_grace", self.kill_grace),
            ("plugin_load_timeout", self.plugin_load_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
            ("idempotency_window", self.idempotency_window),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{key}: must be longer than zero"));
        }
        check_write_paths("worker_sandbox.write_paths", &self.worker_sandbox.write_paths)?;
        for (plugin, sandbox) in &self.worker_sandbox.plugins {
            if plugin.trim().is_empty() {
                return Err("worker_sandbox.plugins: a plugin's name must not be empty".to_owned());
            }
            check_write_paths(&format!("worker_sandbox.plugins.{plugin}.write_paths"), &sandbox.write_paths)?;
        }
        if self.worker_run_as()?.is_some() {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err(
                    "worker_user: only a host started as root can run its workers as another user".to_owned()
                );
            }
        }
        if self.retry.cap < self.retry.base {
            return Err("retry.cap: must not be shorter than retry.base".to_owned());
        }
        // Settings that only make sense against each other or against the supervisor, which
        // looks at running jobs every 25 ms.
        let floors = [
            (
                "lease",
                self.lease,
                MIN_LEASE,
                "a running job's lease is renewed every third of it; a shorter one expires under a job that is still running",
            ),
            ("poll_interval", self.poll_interval, MIN_POLL, "idle workers would spin"),
            ("kill_grace", self.kill_grace, MIN_KILL_GRACE, "a job needs time to see its cancellation flag"),
            ("plugin_load_timeout", self.plugin_load_timeout, MIN_LOAD_TIMEOUT, "a process must start and load a library"),
            ("store.flush_interval", self.store.flush_interval, MIN_FLUSH, "every flush is a disk sync"),
            (
                "limits.header_timeout",
                self.limits.header_timeout,
                Duration::from_secs(1),
                "a request's head may come in several packets",
            ),
        ];
        for (key, value, floor, why) in floors {
            if value < floor {
                return Err(format!(
                    "{key}: at least {} ({why}), not {}",
                    humantime::format_duration(floor),
                    humantime::format_duration(value)
                ));
            }
        }
        if self.limits.max_wait > MAX_LONG_POLL {
            return Err(format!(
                "limits.max_wait: at most {} (a long poll holds a connection), not {}",
                humantime::format_duration(MAX_LONG_POLL),
                humantime::format_duration(self.limits.max_wait)
            ));
        }
        if self.store.cache_bytes < MIN_CACHE_BYTES {
            return Err(format!(
                "store.cache_bytes: at least {MIN_CACHE_BYTES} (1 MiB; the embedded store reads through its page cache), not {}",
                self.store.cache_bytes
            ));
        }
        if let Some(name) = &self.host_name {
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                return Err(format!(
                    "host_name: 1 to 64 characters without control characters, not {:?}",
                    crate::text::clip(name)
                ));
            }
        }
        if self.lease <= self.poll_interval {
            return Err(format!(
                "lease: must be longer than poll_interval ({}), or idle workers could not renew it in time",
                humantime::format_duration(self.poll_interval)
            ));
        }
        let limits = &self.worker_limits;
        if limits.address_space.is_some_and(|b| b < MIN_ADDRESS_SPACE) {
            return Err(format!(
                "worker_limits.address_space: at least {} (a worker process needs room to start)",
                crate::workers::format_bytes(MIN_ADDRESS_SPACE)
            ));
        }
        if limits.cpu_time.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(
                "worker_limits.cpu_time: at least 1s (the kernel counts CPU time in seconds)".to_owned()
            );
        }
        if limits.open_files.is_some_and(|n| n < 16) {
            return Err(
                "worker_limits.open_files: at least 16 (a worker process needs a few itself)".to_owned()
            );
        }
        for (name, value) in &self.worker_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("worker_env.{name}: not a variable name (no `=` or NUL)"));
            }
            if value.contains('\0') {
                return Err(format!("worker_env.{name}: a value cannot hold NUL"));
            }
        }
        for (name, file) in &self.factories {
            if !crate::job::is_valid_name(name) {
                return Err(format!("factories.{name}: not a factory name"));
            }
            if file.trim().is_empty() {
                return Err(format!("factories.{name}: name the plugin file that provides it"));
            }
        }
        Ok(())
    }
}

/// Each of `paths` (the value of `key`) must be an existing absolute path.
fn check_write_paths(key: &str, paths: &[std::path::PathBuf]) -> Result<(), String> {
    for path in paths {
        if !path.is_absolute() || !path.exists() {
            return Err(format!(
                "{key}: {} {}; list existing absolute paths",
                path.display(),
                if path.is_absolute() { "does not exist" } else { "is not an absolute path" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("listn = \"127.0.0.1:1\"", "listn"),
            ("[queues.fast]\nconcurency = 2", "concurency"),
            ("[queues.fast]\nconcurrency = 0", "concurrency"),
            ("[queues.fast]\nconcurrency = \"two\"", "concurrency"),
            ("lease = \"soon\"", "lease"),
            ("lease = \"0s\"", "lease"),
            ("[limits]\nheader_timeout = \"0s\"", "limits.header_timeout"),
            ("[limits]\nmax_wait = \"100000d\"", "limits.max_wait"),
            ("[store]\ncache_bytes = 0", "store.cache_bytes"),
            ("shutdown_timeout = \"0s\"", "shutdown_timeout"),
            ("role = \"boss\"", "role"),
            ("listen = \"localhost\"", "listen"),
            ("listen = \"no such host.invalid:80\"", "listen"),
            ("[retry]\nbase = \"10m\"\ncap = \"1m\"", "retry.cap"),
            ("[queues.\"bad name\"]", "queues.bad name"),
            ("[limits]\nmax_body_bytes = -1", "max_body_bytes"),
            ("isolation = \"thread\"", "isolation"),
            ("kill_grace = \"0s\"", "kill_grace"),
            ("lease = \"10ms\"", "lease: at least 1s"),
            ("lease = \"1ns\"", "lease: at least 1s"),
            ("lease = \"2s\"\npoll_interval = \"5s\"", "lease: must be longer than poll_interval"),
            ("poll_interval = \"1ms\"", "poll_interval: at least 10ms"),
            ("kill_grace = \"1ms\"", "kill_grace: at least 100ms"),
            ("plugin_load_timeout = \"0s\"", "plugin_load_timeout"),
            ("[worker_env]\n\"A=B\" = \"x\"", "worker_env.A=B"),
            ("plugin_load_timeout = \"1ms\"", "plugin_load_timeout: at least 100ms"),
            ("max_workers = 0", "max_workers"),
            ("[worker_limits]\naddress_space = \"1MiB\"", "worker_limits.address_space"),
            ("[worker_limits]\naddress_space = \"lots\"", "address_space"),
            ("[worker_limits]\ncpu_time = \"100ms\"", "worker_limits.cpu_time"),
            ("[worker_limits]\nopen_files = 3", "worker_limits.open_files"),
            ("[factories]\n\"no name\" = \"libx.so\"", "factories.no name"),
            ("idempotency_window = \"0s\"", "idempotency_window"),
            ("idempotency_window = \"forever\"", "idempotency_window"),
            ("[worker_sandbox]\nwrite_paths = [\"relative\"]", "worker_sandbox.write_paths: relative"),
            (
                "[worker_sandbox.plugins.thumbs]\nwrite_paths = [\"/no/such/dir\"]",
                "worker_sandbox.plugins.thumbs.write_paths: /no/such/dir does not exist",
            ),
            ("[worker_sandbox.plugins.thumbs]\nwrite_path = []", "write_path"),
            ("[worker_sandbox.plugins.\" \"]", "worker_sandbox.plugins: a plugin's name"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).expect_err(text);
            assert!(err.contains(key), "error for {text:?} should name {key:?}: {err}");
        }
    }
}
