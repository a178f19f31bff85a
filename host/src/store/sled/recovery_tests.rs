//! Unit tests of what protects a store from silent loss: the state file at open, backups and
//! restores, the offline check. The damaged files and the CLI are tested end to end in
//! `tests/e2e/disk.rs`.

use std::path::Path;

use super::backup;
use super::keys;
use super::options::{OnLoss, StoreOptions};
use super::store::SledStore;
use super::tx::ready_key;
use crate::job::{JobId, NewJob, Outcome, ScheduleId, Status, DEFAULT_QUEUE};
use crate::schedule::{MissedPolicy, Schedule, Trigger};
use crate::store::error::StoreError;
use crate::store::traits::{JobStore, Report, ScheduleStore, WorkStore};
use crate::store::types::{ClaimFilter, Finished, LeaseTerms, ListFilter, Removal};

const LEASE: LeaseTerms = LeaseTerms { duration: std::time::Duration::from_secs(30) };

fn new_job(n: u32) -> NewJob {
    NewJob {
        factory: "echo".into(),
        input: n.to_string(),
        queue: DEFAULT_QUEUE.into(),
        priority: 0,
        max_attempts: 3,
        ..NewJob::default()
    }
}

fn open_with(dir: &Path, on_loss: OnLoss) -> Result<SledStore, StoreError> {
    SledStore::open(dir, StoreOptions { on_loss, ..StoreOptions::default() })
}

fn open(dir: &Path) -> SledStore {
    open_with(dir, OnLoss::Refuse).unwrap()
}

/// Claims the next job and completes it at `now`.
fn run_next(store: &SledStore, now: i64) -> JobId {
    let claimed = store.claim(&ClaimFilter::default(), now, LEASE).unwrap().expect("a job is ready");
    let report = Report {
        started_at: None,
        id: claimed.job.id,
        token: claimed.token,
        outcome: Outcome::Completed { result: "null".into() },
    };
    assert!(matches!(store.finish(report, now).unwrap(), Finished::Applied(_)));
    claimed.job.id
}

/// Deletes jobs behind the store's back, as a truncated file would lose them.
fn lose_jobs(dir: &Path, ids: &[u64]) {
    let store = open(dir);
    let live = store.live().unwrap();
    for id in ids {
        let job = store.get(JobId(*id)).unwrap().unwrap();
        live.trees.ready.remove(ready_key(&job)).unwrap();
        live.trees.jobs.remove(keys::id_key(*id)).unwrap();
    }
    live.db.flush().unwrap();
    // Dropped without its last checkpoint noticing: the state file keeps the higher mark
    // because progress only grows, and this store's own high-water marks were not raised.
}

#[test]
fn a_store_that_lost_its_newest_jobs_is_refused_until_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=10 {
            store.add(new_job(n), 0).unwrap();
        }
    }
    lose_jobs(dir.path(), &[8, 9, 10]);
    let err = open_with(dir.path(), OnLoss::Refuse).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Behind { .. }), "{text}");
    assert!(text.contains("job ids up to 10 were issued, it holds ids up to 7"), "{text}");
    assert!(text.contains("--accept-data-loss"), "{text}");

    // Looking changes nothing: still refused afterwards.
    drop(open_with(dir.path(), OnLoss::Inspect).unwrap());
    assert!(open_with(dir.path(), OnLoss::Refuse).is_err());

    {
        let store = open_with(dir.path(), OnLoss::Accept).unwrap();
        assert_eq!(store.add(new_job(11), 0).unwrap().job.id, JobId(11), "no id issued twice");
    }
    let store = open(dir.path());
    assert_eq!(store.add(new_job(12), 0).unwrap().job.id, JobId(12));
}

#[test]
fn a_lost_outcome_is_a_loss_but_a_removed_or_retried_latest_finish_is_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=3 {
            store.add(new_job(n), 0).unwrap();
        }
        run_next(&store, 1_000);
        run_next(&store, 2_000);
    }
    // (Each close writes the state file down.) The latest finish, removed: not a loss.
    {
        let store = open(dir.path());
        assert_eq!(
            store.remove(&Removal { statuses: vec![Status::Completed], ..Removal::default() }).unwrap()
                [&Status::Completed],
            2
        );
    }
    let claimed = {
        let store = open(dir.path());
        let claimed = store.claim(&ClaimFilter::default(), 3_000, LEASE).unwrap().unwrap();
        let failed = Outcome::Failed { error: "no".into(), backtrace: None };
        store
            .finish(
                Report { started_at: None, id: claimed.job.id, token: claimed.token, outcome: failed },
                3_000,
            )
            .unwrap();
        claimed
    };
    // The latest finish, retried: not a loss either.
    open(dir.path()).retry(claimed.job.id, None, 4_000).unwrap();
    drop(open(dir.path()));
    {
        let store = open(dir.path());
        run_next(&store, 5_000);
    }
    // The outcome of job 3 vanishes (its record goes back to queued, as a cut-off log does).
    {
        let store = open(dir.path());
        let live = store.live().unwrap();
        let mut job = store.get(JobId(3)).unwrap().unwrap();
        live.trees.finished.remove(keys::time_key(job.finished_at.unwrap(), 3u64)).unwrap();
        job.status = Status::Queued;
        job.finished_at = None;
        live.trees.jobs.insert(keys::id_key(3u64), super::codec::encode(&job)).unwrap();
        live.trees.ready.insert(ready_key(&job), job.factory.as_bytes()).unwrap();
        live.db.flush().unwrap();
    }
    let err = open_with(dir.path(), OnLoss::Refuse).err().expect("refused").to_string();
    assert!(err.contains("job 3 finished at"), "{err}");
}

#[test]
fn a_backup_restores_every_job_and_schedule_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 1..=20 {
        store.add(new_job(n), 0).unwrap();
    }
    run_next(&store, 1_000);
    store.cancel(JobId(5), 2_000).unwrap();
    let running = store.claim(&ClaimFilter::default(), 3_000, LEASE).unwrap().unwrap();
    let schedule = Schedule {
        id: ScheduleId(0),
        factory: "echo".into(),
        input: "null".into(),
        queue: DEFAULT_QUEUE.into(),
        priority: 0,
        max_attempts: None,
        timeout_ms: None,
        trigger: Trigger::Delay { delay_ms: 60_000 },
        active: true,
        missed: MissedPolicy::RunOnce,
        next_run_at: Some(60_000_000),
        last_run_at: None,
        last_job_id: None,
        last_error: None,
        runs: 0,
        created_at: 0,
        updated_at: 0,
    };
    store.add_schedule(schedule).unwrap();

    let mut file = Vec::new();
    let summary = store.backup_to(&mut file).unwrap();
    assert_eq!((summary.jobs, summary.schedules, summary.bytes), (20, 1, file.len() as u64));
    let backup = dir.path().join("the.backup");
    std::fs::write(&backup, &file).unwrap();
    assert_eq!(backup::inspect(&backup).unwrap(), summary);

    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("restored");
    assert_eq!(backup::restore(&backup, &restored_dir).unwrap(), summary);
    let restored = open(&restored_dir);
    let all = ListFilter { limit: 1000, ..Default::default() };
    assert_eq!(restored.list(&all).unwrap(), store.list(&all).unwrap());
    assert_eq!(restored.list_schedules().unwrap(), store.list_schedules().unwrap());
    assert_eq!(restored.get(running.job.id).unwrap().unwrap().status, Status::Processing);
    let report = restored.check().unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.jobs[&Status::Queued], 17);
    // The restored store goes on from the backup's ids.
    assert_eq!(restored.add(new_job(21), 0).unwrap().job.id, JobId(21));

    // Never into a store that is there; never from a damaged file.
    let err = backup::restore(&backup, &restored_dir).unwrap_err().to_string();
    assert!(err.contains("is not empty"), "{err}");
    // One byte of a record's value (a factory name): only the checksum can tell.
    let mut damaged = file.clone();
    let inside = file.windows(4).rposition(|w| w == b"echo").unwrap();
    damaged[inside] ^= 1;
    std::fs::write(&backup, &damaged).unwrap();
    let elsewhere = target.path().join("elsewhere");
    let err = backup::restore(&backup, &elsewhere).unwrap_err().to_string();
    assert!(err.contains("checksum does not match"), "{err}");
    assert!(!elsewhere.exists(), "nothing written from a damaged backup");
    std::fs::write(&backup, &file[..file.len() - 10]).unwrap();
    let err = backup::restore(&backup, &elsewhere).unwrap_err().to_string();
    assert!(err.contains("ends too early"), "{err}");
}

#[test]
fn a_backup_taken_while_jobs_are_added_is_one_consistent_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path()));
    let adder = {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 0..2_000 {
                store.add(new_job(n), 0).unwrap();
                if n % 3 == 0 {
                    let _ = store.claim(&ClaimFilter::default(), 0, LEASE).unwrap();
                }
            }
        })
    };
    let target = tempfile::tempdir().unwrap();
    let mut backups = 0;
    while !adder.is_finished() || backups == 0 {
        let mut file = Vec::new();
        store.backup_to(&mut file).unwrap();
        let path = target.path().join(format!("{backups}.backup"));
        std::fs::write(&path, &file).unwrap();
        let restored_dir = target.path().join(format!("restored-{backups}"));
        backup::restore(&path, &restored_dir).unwrap();
        let report = open(&restored_dir).check().unwrap();
        assert!(report.ok(), "backup {backups}: {report:?}");
        backups += 1;
    }
    adder.join().unwrap();
}

#[test]
fn the_check_names_an_index_entry_that_went_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 1..=3 {
        store.add(new_job(n), 0).unwrap();
    }
    assert!(store.check().unwrap().ok());
    let job = store.get(JobId(2)).unwrap().unwrap();
    store.live().unwrap().trees.ready.remove(ready_key(&job)).unwrap();
    let report = store.check().unwrap();
    assert!(!report.ok());
    assert_eq!(report.problems, ["job 2 (queued): neither in `ready` nor in `waiting`"], "{report:?}");
    // An entry no job calls for.
    let mut stray = job.clone();
    stray.id = JobId(99);
    store.live().unwrap().trees.ready.insert(ready_key(&stray), b"echo").unwrap();
    let report = store.check().unwrap();
    assert_eq!(report.problems[1], "`ready` holds 3 entries, the jobs call for 2", "{report:?}");
}

#[test]
fn a_store_whose_indexes_disagree_with_its_records_is_refused_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=3 {
            store.add(new_job(n), 0).unwrap();
        }
        let job = store.get(JobId(2)).unwrap().unwrap();
        store.live().unwrap().trees.ready.remove(ready_key(&job)).unwrap();
    }
    let err = open_with(dir.path(), OnLoss::Refuse).err().expect("refused").to_string();
    assert!(err.contains("is damaged: its indexes disagree with its records (`ready` and `waiting` hold 2 entries for 3 queued and scheduled jobs)"), "{err}");
    // The check still looks at it, and names the job.
    let report = open_with(dir.path(), OnLoss::Inspect).unwrap().check().unwrap();
    assert_eq!(report.problems, ["job 2 (queued): neither in `ready` nor in `waiting`"]);
}

#[test]
fn a_wiped_db_file_without_its_state_file_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=10 {
            store.add(new_job(n), 0).unwrap();
        }
    }
    std::fs::remove_file(dir.path().join(super::state_file::FILE_NAME)).unwrap();
    // Every byte zeroed, as a device that lost its blocks returns them.
    let db = dir.path().join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0u8; len]).unwrap();
    let err = open_with(dir.path(), OnLoss::Refuse).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Wiped { .. }), "{text}");
    assert!(text.contains("--accept-data-loss") && text.contains("state file"), "{text}");
    // Accepted, it starts over, and says so.
    let store = open_with(dir.path(), OnLoss::Accept).unwrap();
    assert_eq!(store.add(new_job(1), 0).unwrap().job.id, JobId(1));
}

#[test]
fn a_new_store_and_a_store_whose_state_file_was_removed_open_as_before() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.add(new_job(1), 0).unwrap();
    }
    std::fs::remove_file(dir.path().join(super::state_file::FILE_NAME)).unwrap();
    let store = open(dir.path());
    assert_eq!(store.add(new_job(2), 0).unwrap().job.id, JobId(2));
}
