//! `jobhost store check`: reads every record and index entry of a store and says what does not
//! hold. A job's record decides which index entry it has (see `tx`), so each record is checked
//! for its entry, and each index for exactly as many entries as records that need one: together,
//! every entry belongs to exactly one record.

use std::collections::BTreeMap;

use super::damage;
use super::keys;
use super::state_file::{Progress, StateFile};
use super::store::SledStore;
use super::tx::{decode_job, decode_schedule, ready_key, schedule_due_key, unique_index_key};
use crate::job::Status;
use crate::store::error::{StoreError, StoreResult};

/// What a check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Readable jobs per status.
    pub jobs: BTreeMap<Status, u64>,
    pub schedules: u64,
    pub progress: Progress,
    /// What the state file says the store lacks, if anything (see `state_file`).
    pub lost: Option<String>,
    /// Everything else that does not hold, one line each (at most 100).
    pub problems: Vec<String>,
    /// Problems beyond the ones listed.
    pub more_problems: u64,
}

/// Problems listed one by one; beyond that, counted.
const MAX_PROBLEMS: usize = 100;

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.lost.is_none() && self.problems.is_empty()
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        } else {
            self.more_problems += 1;
        }
    }
}

/// Index entries the records call for, per index.
#[derive(Default)]
struct Expected {
    ready: u64,
    waiting: u64,
    leases: u64,
    finished: u64,
    unique: u64,
}

impl SledStore {
    /// Reads the whole store. A panic inside sled (a page it cannot read) is a problem found,
    /// not a crash.
    pub fn check(&self) -> StoreResult<CheckReport> {
        match damage::contain(|| self.check_all()) {
            Ok(report) => report,
            Err(panic) => Err(StoreError::Damaged {
                path: self.path.clone(),
                detail: format!("sled cannot read all of it ({panic})"),
            }),
        }
    }

    fn check_all(&self) -> StoreResult<CheckReport> {
        let live = self.live()?;
        let trees = &live.trees;
        let mut report = CheckReport { progress: trees.progress()?, ..CheckReport::default() };
        if let Some(recorded) = StateFile::new(&self.path).read()? {
            report.lost = report.progress.missing(&recorded.progress);
        }
        let mut expected = Expected::default();
        for entry in trees.jobs.iter() {
            let (key, bytes) = entry?;
            let Some(id) = keys::id_from(&key) else {
                report.problem(format!("jobs: a key of {} bytes is not a job id", key.len()));
                continue;
            };
            let job = match decode_job(id, &bytes) {
                Ok(job) => job,
                Err(e) => {
                    report.problem(format!("job {id}: {e}"));
                    continue;
                }
            };
            *report.jobs.entry(job.status).or_insert(0) += 1;
            let has = |tree: &sled::Tree, key: &[u8]| tree.contains_key(key);
            let missing = match job.status {
                Status::Queued => {
                    let ready = has(&trees.ready, &ready_key(&job))?;
                    let waiting = has(&trees.waiting, &keys::time_key(job.run_at, id))?;
                    expected.ready += u64::from(ready);
                    expected.waiting += u64::from(waiting);
                    match (ready, waiting) {
                        (false, false) => Some("neither in `ready` nor in `waiting`"),
                        (true, true) => Some("both in `ready` and in `waiting`"),
                        _ => None,
                    }
                }
                Status::Scheduled => {
                    expected.waiting += 1;
                    (!has(&trees.waiting, &keys::time_key(job.run_at, id))?).then_some("not in `waiting`")
                }
                Status::Processing => {
                    expected.leases += 1;
                    match job.lease {
                        Some(lease) => (!has(&trees.leases, &keys::time_key(lease.expires_at, id))?)
                            .then_some("not in `leases`"),
                        None => Some("running without a lease"),
                    }
                }
                status if status.is_finished() => {
                    expected.finished += 1;
                    match job.finished_at {
                        Some(at) => {
                            (!has(&trees.finished, &keys::time_key(at, id))?).then_some("not in `finished`")
                        }
                        None => Some("finished without a finish time"),
                    }
                }
                _ => None,
            };
            if let Some(missing) = missing {
                report.problem(format!("job {id} ({}): {missing}", job.status.as_str()));
            }
            // A waiting job that its parent does not list would wait forever.
            if job.status == Status::Waiting {
                for parent in job.parents() {
                    let listed = trees
                        .dependents
                        .get(keys::id_key(parent.id))?
                        .is_some_and(|list| keys::edges(&list).any(|(child, _)| child == id));
                    if !listed {
                        report.problem(format!(
                            "job {id} (waiting): not among the dependents of job {}",
                            parent.id
                        ));
                    }
                }
            }
            if let Some(key) = unique_index_key(&job).filter(|_| job.is_pending()) {
                expected.unique += 1;
                if trees.unique.get(&key)?.and_then(|v| keys::id_from(&v)) != Some(id) {
                    report.problem(format!("job {id}: its unique key is not held for it in `unique`"));
                }
            }
        }
        for (name, tree, wanted) in [
            ("ready", &trees.ready, expected.ready),
            ("waiting", &trees.waiting, expected.waiting),
            ("leases", &trees.leases, expected.leases),
            ("finished", &trees.finished, expected.finished),
            ("unique", &trees.unique, expected.unique),
        ] {
            let found = tree.len() as u64;
            if found != wanted {
                report.problem(format!("`{name}` holds {found} entries, the jobs call for {wanted}"));
            }
        }
        let mut due = 0;
        for entry in trees.schedules.iter() {
            let (key, bytes) = entry?;
            let Some(id) = keys::schedule_id_from(&key) else {
                report.problem(format!("schedules: a key of {} bytes is not a schedule id", key.len()));
                continue;
            };
            match decode_schedule(id, &bytes) {
                Ok(schedule) => {
                    report.schedules += 1;
                    if let Some(key) = schedule_due_key(&schedule) {
                        due += 1;
                        if !trees.schedules_due.contains_key(key)? {
                            report.problem(format!("schedule {id}: not in `schedules_due`"));
                        }
                    }
                }
                Err(e) => report.problem(format!("schedule {id}: {e}")),
            }
        }
        let found = trees.schedules_due.len() as u64;
        if found != due {
            report.problem(format!("`schedules_due` holds {found} entries, the schedules call for {due}"));
        }
        Ok(report)
    }
}
