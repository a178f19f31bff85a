//! The settings of the parts the service is made of, from the config: the processor's, the
//! worker processes' limits, the embedded store's options.

use super::file::Config;
use super::sections::QueueTable;
use crate::processor::{ProcessorConfig, QueueConfig, RetryPolicy};
use crate::store::StoreOptions;

impl Config {
    pub fn processor(&self) -> ProcessorConfig {
        let queue = |t: &QueueTable| QueueConfig { concurrency: t.concurrency.get(), autostart: t.autostart };
        ProcessorConfig {
            lease: self.lease,
            poll_interval: self.poll_interval,
            retry: RetryPolicy { base: self.retry.base, cap: self.retry.cap },
            default_max_attempts: self.default_max_attempts.get(),
            queues: self.queues.iter().map(|(name, t)| (name.clone(), queue(t))).collect(),
            default_queue: queue(&self.default_queue),
            retention: self.retention,
            kill_grace: self.kill_grace,
            max_workers: self.max_workers.get(),
            claim_batch: self.claim_batch.get(),
            log_summary_interval: self.log_summary_interval,
            host_name: self.host_name.clone(),
            max_result_bytes: self.limits.max_result_bytes.get(),
            idempotency_window: self.idempotency_window,
        }
    }

    pub fn worker_limits(&self) -> crate::workers::Limits {
        crate::workers::Limits {
            address_space: self.worker_limits.address_space,
            cpu_time: self.worker_limits.cpu_time,
            open_files: self.worker_limits.open_files,
            max_jobs: self.worker_limits.max_jobs.map(std::num::NonZeroU64::get),
            output_per_job: self.worker_limits.output_per_job,
        }
    }

    /// Whom workers run as (`worker_user`, `worker_group`).
    pub fn worker_run_as(&self) -> Result<Option<crate::workers::RunAs>, String> {
        match (&self.worker_user, &self.worker_group) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("worker_group: needs worker_user".to_owned()),
            (Some(user), group) => crate::workers::RunAs::resolve(user, group.as_deref())
                .map(Some)
                .map_err(|e| format!("worker_user: {e}")),
        }
    }

    /// What workers may write (`[worker_sandbox]`).
    pub fn worker_fs(&self) -> crate::workers::Sandbox {
        crate::workers::Sandbox {
            read_only: self.worker_sandbox.filesystem == super::sections::FilesystemAccess::ReadOnly,
            write_paths: self.worker_sandbox.write_paths.clone(),
            per_plugin: self
                .worker_sandbox
                .plugins
                .iter()
                .map(|(name, sandbox)| (name.clone(), sandbox.write_paths.clone()))
                .collect(),
            // Checked when the file was read (`check`).
            run_as: self.worker_run_as().ok().flatten(),
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            cache_bytes: self.store.cache_bytes,
            flush_interval_ms: u64::try_from(self.store.flush_interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            claims: self.store.claims,
            on_loss: crate::store::OnLoss::Refuse,
        }
    }
}
