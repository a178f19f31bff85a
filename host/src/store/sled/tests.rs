//! Unit tests of the sled store's internals: index costs, the finished index, ids, corrupt
//! records, the claims journal at recovery, counts, flush pacing and combined claims. The
//! behaviour every backend shares is tested end to end in `tests/`.

use std::collections::BTreeMap;
use std::path::Path;

use super::claim_journal::{self, ClaimJournal};
use super::codec::{self, FORMAT_VERSION};
use super::keys::{self, META_FINISHED_INDEX, META_FORMAT};
use super::options::{ClaimDurability, StoreOptions};
use super::store::SledStore;
use super::tx::ready_key;
use crate::job::{
    AttemptToken, Job, JobId, NewJob, Outcome, Status, DEFAULT_QUEUE, WORKER_LOST_HOST_STOPPED,
};
use crate::store::error::StoreError;
use crate::store::traits::{JobStore, Report, WorkStore};
use crate::store::types::{Cancelled, ClaimFilter, Finished, LeaseTerms, ListFilter, Removal};

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

fn open(dir: &Path) -> SledStore {
    SledStore::open(dir, StoreOptions::default()).unwrap()
}

/// Writes `n` queued jobs straight into the trees (no per-job flush: a fixture, not a test
/// of `add`).
fn fill(store: &SledStore, n: u64) {
    let mut jobs = sled::Batch::default();
    let mut ready = sled::Batch::default();
    for id in 1..=n {
        let job = Job::new(JobId(id), new_job(id as u32), id as i64);
        jobs.insert(&keys::id_key(id), codec::encode(&job));
        ready.insert(ready_key(&job), job.factory.as_bytes());
    }
    store.live().unwrap().trees.jobs.apply_batch(jobs).unwrap();
    store.live().unwrap().trees.ready.apply_batch(ready).unwrap();
}

#[test]
fn claiming_inspects_one_index_entry_whether_10_or_100_000_jobs_wait() {
    for depth in [10, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        fill(&store, depth);
        let (found, inspected) = store.next_ready(&ClaimFilter::default()).unwrap();
        assert_eq!((found.map(|(_, id)| id), inspected), (Some(JobId(1)), 1), "depth {depth}");
        let lease = LeaseTerms { duration: std::time::Duration::from_secs(30) };
        let claimed = store.claim(&ClaimFilter::default(), 1_000_000, lease).unwrap().unwrap();
        assert_eq!((claimed.job.id, claimed.job.attempts), (JobId(1), 1));
        let (next, inspected) = store.next_ready(&ClaimFilter::default()).unwrap();
        assert_eq!((next.map(|(_, id)| id), inspected), (Some(JobId(2)), 1), "depth {depth}");
    }
}

#[test]
fn removal_reads_the_finished_index_which_older_stores_get_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=4 {
            store.add(new_job(n), 0).unwrap();
        }
        store.cancel(JobId(1), 10).unwrap();
        store.cancel(JobId(2), 20).unwrap();
        // Retention: only what finished before the cut-off.
        assert_eq!(
            store.remove(&Removal { finished_before: Some(15), ..Removal::default() }).unwrap(),
            BTreeMap::from([(Status::Cancelled, 1)])
        );
        // A store written before the index existed: no entries, no marker.
        store.live().unwrap().trees.finished.clear().unwrap();
        store.live().unwrap().trees.meta.remove(META_FINISHED_INDEX).unwrap();
        store.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.remove(&Removal { statuses: vec![Status::Cancelled], ..Removal::default() }).unwrap(),
        BTreeMap::from([(Status::Cancelled, 1)])
    );
    assert_eq!(store.live().unwrap().trees.finished.len(), 0);
    // Retried jobs leave the index; queued ones never enter it.
    store.cancel(JobId(3), 30).unwrap();
    store.retry(JobId(3), None, 31).unwrap();
    assert_eq!(store.live().unwrap().trees.finished.len(), 0);
    assert!(store.remove(&Removal::default()).unwrap().is_empty());
    assert_eq!(store.get(JobId(3)).unwrap().unwrap().status, Status::Queued);
}

#[test]
fn ids_are_consecutive_and_never_reused_across_restarts_or_removals() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let ids: Vec<JobId> = (1..=3).map(|n| store.add(new_job(n), 0).unwrap().job.id).collect();
        assert_eq!(ids, [JobId(1), JobId(2), JobId(3)]);
    }
    let store = open(dir.path());
    assert_eq!(store.add(new_job(4), 0).unwrap().job.id, JobId(4), "no jump after a restart");
    // Finish and remove the newest job: its id stays spent.
    assert!(matches!(store.cancel(JobId(4), 0).unwrap(), Cancelled::Now(_)));
    assert_eq!(
        store.remove(&Removal { statuses: vec![Status::Cancelled], ..Removal::default() }).unwrap()
            [&Status::Cancelled],
        1
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.add(new_job(5), 0).unwrap().job.id, JobId(5));
}

#[test]
fn a_corrupt_record_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = store.add(new_job(1), 0).unwrap().job.id;
    store.live().unwrap().trees.jobs.insert(keys::id_key(id), &[FORMAT_VERSION, 0xff, 0xff]).unwrap();
    let err = store.get(id).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("stored record job {id} is unreadable: the record does not decode")),
        "{err}"
    );
    let err = store.list(&ListFilter { limit: 10, ..Default::default() }).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }));
    let claim =
        store.claim(&ClaimFilter::default(), 0, LeaseTerms { duration: std::time::Duration::from_secs(1) });
    assert!(matches!(claim, Err(StoreError::Corrupt { .. })));
}

#[test]
fn a_store_written_by_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .live()
            .unwrap()
            .db
            .open_tree("meta")
            .unwrap()
            .insert(META_FORMAT, &[FORMAT_VERSION + 1])
            .unwrap();
        store.live().unwrap().db.flush().unwrap();
    }
    let err = SledStore::open(dir.path(), StoreOptions::default()).err().expect("refused");
    assert!(
        err.to_string().contains(&format!("was written by a newer jobhost (format {};", FORMAT_VERSION + 1)),
        "{err}"
    );
}
const LEASE: LeaseTerms = LeaseTerms { duration: std::time::Duration::from_secs(30) };

/// A claim the process died with: in the journal, never flushed to the store (written
/// here by hand, because an in-process drop of the store flushes it).
fn lose_claim(dir: &Path, id: JobId, attempts: u32) {
    ClaimJournal::open(dir).unwrap().append(&[(id, attempts)]).unwrap();
}

#[test]
fn a_journaled_claim_that_never_reached_the_store_counts_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.add(NewJob { max_attempts: 2, ..new_job(1) }, 0).unwrap();
        store.add(NewJob { max_attempts: 1, unique_key: Some("k".into()), ..new_job(2) }, 0).unwrap();
        store.add(new_job(3), 0).unwrap();
    }
    lose_claim(dir.path(), JobId(1), 1);
    lose_claim(dir.path(), JobId(2), 1);
    lose_claim(dir.path(), JobId(3), 5); // not the next attempt: the store's record stands
    lose_claim(dir.path(), JobId(99), 1); // a job since removed
    let store = open(dir.path());
    assert_eq!(store.recover_all(100).unwrap(), [JobId(1), JobId(2)]);
    // Recovery checkpointed: what the journal said is in the store now.
    assert_eq!(std::fs::metadata(store.journal.path()).unwrap().len(), 0);
    let one = store.get(JobId(1)).unwrap().unwrap();
    assert_eq!((one.status, one.attempts), (Status::Queued, 1));
    assert!(one.errors[0].ends_with(WORKER_LOST_HOST_STOPPED), "{:?}", one.errors);
    let two = store.get(JobId(2)).unwrap().unwrap();
    assert_eq!((two.status, two.attempts, two.finished_at), (Status::Error, 1, Some(100)));
    assert_eq!(store.get(JobId(3)).unwrap().unwrap().attempts, 0);
    // Job 2 left the ready index and gave up its unique key; job 1 kept its place in line.
    assert_eq!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().unwrap().job.id, JobId(1));
    assert_eq!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().unwrap().job.id, JobId(3));
    assert!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().is_none());
    assert!(!store.add(NewJob { unique_key: Some("k".into()), ..new_job(4) }, 300).unwrap().existing);
    let counts = store.counts().unwrap();
    assert_eq!(counts[DEFAULT_QUEUE][&Status::Error], 1);
}

#[test]
fn transitions_counted_out_of_order_still_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A worker claims and finishes a job before its adder counts it in.
    let job = Job::new(JobId(1), NewJob { queue: "q".into(), ..new_job(1) }, 0);
    store.counts.count(&job, Some(Status::Queued), Some(Status::Processing));
    store.counts.count(&job, Some(Status::Processing), Some(Status::Completed));
    assert_eq!(store.counts().unwrap()["q"], BTreeMap::from([(Status::Completed, 1)]));
    store.counts.count(&job, None, Some(Status::Queued));
    assert_eq!(store.counts().unwrap()["q"], BTreeMap::from([(Status::Completed, 1)]));
    // And the listing shows it once, as completed.
    let listed = store.counts.listed(&[], Some("q"), None, None, false, 10);
    assert_eq!(listed, [JobId(1)]);
    assert_eq!(store.counts.listed(&[Status::Queued], Some("q"), None, None, false, 10), []);
}

#[test]
fn counts_stay_exact_while_jobs_are_added_and_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    const JOBS: u32 = 300;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..JOBS {
                store.add(new_job(n), 0).unwrap();
            }
        });
        // One worker claims and finishes job by job, the other claims and finishes in
        // batches, as the processor's workers and recorder do.
        for batched in [false, true] {
            let store = &store;
            scope.spawn(move || loop {
                let claimed = store
                    .claim_batch(&ClaimFilter::default(), 1, LEASE, if batched { 7 } else { 1 })
                    .unwrap();
                if claimed.is_empty() {
                    if store.get(JobId(u64::from(JOBS))).unwrap().is_some_and(|j| j.status.is_finished()) {
                        break;
                    }
                    std::thread::yield_now();
                    continue;
                }
                let reports: Vec<Report> = claimed
                    .iter()
                    .map(|c| Report {
                        started_at: None,
                        id: c.job.id,
                        token: c.token,
                        outcome: Outcome::Completed { result: String::new() },
                    })
                    .collect();
                for finished in store.finish_batch(&reports, 2).unwrap() {
                    assert!(matches!(finished, Finished::Applied(_)), "a lease was lost");
                }
            });
        }
    });
    let done = store.live().unwrap().trees.jobs.iter().filter(|e| e.is_ok()).count() as u64;
    assert_eq!(done, u64::from(JOBS));
    assert_eq!(store.counts().unwrap()[DEFAULT_QUEUE], BTreeMap::from([(Status::Completed, done)]));
}

#[test]
fn a_release_or_retry_supersedes_the_claim_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.add(new_job(1), 0).unwrap();
        store.add(new_job(2), 0).unwrap();
        let first = store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
        let failed = Outcome::Failed { error: "no".into(), backtrace: None };
        store
            .finish(Report { started_at: None, id: first.job.id, token: first.token, outcome: failed }, 2)
            .unwrap();
        store.retry(first.job.id, None, 3).unwrap(); // attempts back to 0
        let second = store.claim(&ClaimFilter::default(), 4, LEASE).unwrap().unwrap();
        assert_eq!(second.job.id, JobId(2));
        assert!(store.release(second.job.id, second.token, 5).unwrap()); // attempts back to 0
        assert!(std::fs::metadata(store.journal.path()).unwrap().len() > 0);
    }
    let store = open(dir.path());
    assert!(store.recover_all(10).unwrap().is_empty());
    for id in [JobId(1), JobId(2)] {
        let job = store.get(id).unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (Status::Queued, 0), "{job:?}");
    }
}

#[test]
fn with_flushed_claims_the_journal_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SledStore::open(dir.path(), StoreOptions { claims: ClaimDurability::Flush, ..Default::default() })
            .unwrap();
    store.add(new_job(1), 0).unwrap();
    store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
    assert_eq!(std::fs::metadata(store.journal.path()).unwrap().len(), 0);
}
#[test]
fn a_journaled_claim_flushes_only_once_the_interval_has_passed() {
    let last_flush = |store: &SledStore| store.live().unwrap().flushes.last();
    for (interval_ms, flushes) in [(3_600_000, false), (1, true)] {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { flush_interval_ms: interval_ms, ..Default::default() };
        let store = SledStore::open(dir.path(), options).unwrap();
        store.add(new_job(1), 0).unwrap();
        let before = last_flush(&store);
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
        assert_eq!(last_flush(&store) > before, flushes, "interval {interval_ms} ms");
    }
}
#[test]
fn an_unopenable_claims_journal_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(claim_journal::FILE_NAME)).unwrap();
    let err = SledStore::open(dir.path(), StoreOptions::default()).err().expect("refused").to_string();
    let path = dir.path().join(claim_journal::FILE_NAME);
    assert!(err.starts_with(&format!("claims journal {}: ", path.display())), "{err}");
}

#[test]
fn a_batch_claim_takes_jobs_in_queue_order_and_counts_each_attempt_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 1..=4 {
            store.add(new_job(n), 0).unwrap();
        }
        store.add(NewJob { priority: 5, ..new_job(5) }, 0).unwrap();
        let claimed = store.claim_batch(&ClaimFilter::default(), 1, LEASE, 3).unwrap();
        let ids: Vec<u64> = claimed.iter().map(|c| c.job.id.0).collect();
        assert_eq!(ids, [5, 1, 2], "priority first, then the order added");
        for c in &claimed {
            assert_eq!((c.job.status, c.job.attempts), (Status::Processing, 1));
            assert_eq!(store.get(c.job.id).unwrap().unwrap().lease.map(|l| l.token), Some(c.token));
        }
        let tokens: std::collections::HashSet<_> = claimed.iter().map(|c| c.token).collect();
        assert_eq!(tokens.len(), 3, "a lease token of its own each");
        let counts = &store.counts().unwrap()[DEFAULT_QUEUE];
        assert_eq!(counts, &BTreeMap::from([(Status::Queued, 2), (Status::Processing, 3)]));
        // What is left, however many are asked for.
        assert_eq!(store.claim_batch(&ClaimFilter::default(), 1, LEASE, 10).unwrap().len(), 2);
        assert!(store.claim_batch(&ClaimFilter::default(), 1, LEASE, 10).unwrap().is_empty());
    }
    // The claims were journaled: a host that died now counts each attempt.
    let store = open(dir.path());
    store.recover_all(10).unwrap();
    for n in 1..=5 {
        assert_eq!(store.get(JobId(n)).unwrap().unwrap().attempts, 1, "job {n}");
    }
}

#[test]
fn a_batch_of_outcomes_applies_each_and_a_stale_token_changes_only_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 1..=3 {
        store.add(new_job(n), 0).unwrap();
    }
    let claimed = store.claim_batch(&ClaimFilter::default(), 1, LEASE, 3).unwrap();
    let stale = AttemptToken(claimed[1].token.0.wrapping_add(1).max(1));
    let reports = [
        Report {
            started_at: None,
            id: claimed[0].job.id,
            token: claimed[0].token,
            outcome: Outcome::Completed { result: "1".into() },
        },
        Report {
            started_at: None,
            id: claimed[1].job.id,
            token: stale,
            outcome: Outcome::Completed { result: "2".into() },
        },
        Report {
            started_at: None,
            id: claimed[2].job.id,
            token: claimed[2].token,
            outcome: Outcome::Retry { error: "again".into(), retry_at: 5, backtrace: None },
        },
    ];
    let finished = store.finish_batch(&reports, 2).unwrap();
    assert!(matches!(&finished[0], Finished::Applied(j) if j.status == Status::Completed));
    assert!(matches!(finished[1], Finished::Stale));
    assert!(matches!(&finished[2], Finished::Applied(j) if j.status == Status::Queued));
    assert_eq!(store.get(JobId(2)).unwrap().unwrap().status, Status::Processing, "stale: unchanged");
    let counts = &store.counts().unwrap()[DEFAULT_QUEUE];
    assert_eq!(
        counts,
        &BTreeMap::from([(Status::Queued, 1), (Status::Processing, 1), (Status::Completed, 1)])
    );
}

#[test]
fn claimed_jobs_given_back_are_not_counted_and_keep_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 1..=3 {
        store.add(new_job(n), 0).unwrap();
    }
    let claimed = store.claim_batch(&ClaimFilter::default(), 1, LEASE, 3).unwrap();
    let back: Vec<(JobId, AttemptToken)> = claimed.iter().skip(1).map(|c| (c.job.id, c.token)).collect();
    assert_eq!(store.release_batch(&back, 2).unwrap(), 2);
    assert_eq!(store.release_batch(&back, 2).unwrap(), 0, "stale tokens now");
    for id in [2, 3] {
        let job = store.get(JobId(id)).unwrap().unwrap();
        assert_eq!((job.status, job.attempts), (Status::Queued, 0), "job {id}");
    }
    let again = store.claim_batch(&ClaimFilter::default(), 3, LEASE, 5).unwrap();
    assert_eq!(again.iter().map(|c| c.job.id.0).collect::<Vec<_>>(), [2, 3], "in their order");
}

#[test]
fn an_idempotency_key_creates_once_survives_a_backup_and_is_swept_after_its_window() {
    use crate::store::types::{Created, Keyed, Once};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let once = Once { key: "k".into(), fingerprint: "f".into(), expires_at: 1_000 };
    let Keyed::New(first) = store.add_keyed(new_job(1), 0, &once).unwrap() else { panic!("not new") };
    // A repeat (even with another job) stores nothing and names the first.
    let again = store.add_keyed(new_job(2), 10, &once).unwrap();
    let Keyed::Before(record) = again else { panic!("created twice: {again:?}") };
    assert_eq!(record.created, Created::Job { id: first.job.id.0, existing: false });
    assert_eq!(record.fingerprint, "f");
    assert_eq!(store.list(&ListFilter { limit: 10, ..Default::default() }).unwrap().len(), 1);
    let batch = Once { key: "b".into(), fingerprint: "g".into(), expires_at: 2_000 };
    let Keyed::New(jobs) = store.add_batch_keyed(vec![new_job(3), new_job(4)], 0, &batch).unwrap() else {
        panic!("not new")
    };
    let ids: Vec<u64> = jobs.iter().map(|j| j.id.0).collect();
    assert_eq!(store.remembered("b", 10).unwrap().unwrap().created, Created::Batch { ids });

    // Kept by a backup and its restore.
    let mut file = Vec::new();
    store.backup_to(&mut file).unwrap();
    let backup = dir.path().join("keys.backup");
    std::fs::write(&backup, &file).unwrap();
    let restored_dir = dir.path().join("restored");
    super::backup::restore(&backup, &restored_dir).unwrap();
    assert_eq!(open(&restored_dir).remembered("k", 10).unwrap(), Some(record));

    // Past its window the key is not answered, may be used anew, and is swept.
    assert_eq!(store.remembered("k", 1_000).unwrap(), None);
    assert_eq!(store.forget_keys(1_500, 10).unwrap(), 1);
    assert_eq!(store.live().unwrap().trees.idempotency.len(), 1);
    let renewed = Once { expires_at: 5_000, ..once };
    assert!(matches!(store.add_keyed(new_job(5), 1_500, &renewed).unwrap(), Keyed::New(_)));
    assert_eq!(store.forget_keys(4_000, 10).unwrap(), 1, "only b");
    assert!(store.remembered("k", 4_000).unwrap().is_some());
    assert_eq!(store.live().unwrap().trees.idempotency_expiry.len(), 1);
}

#[test]
fn an_unreadable_pause_record_is_an_error_naming_it_and_claims_say_so_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.live().unwrap().trees.meta.insert(keys::pause_key("mail"), &b"\xff\xff"[..]).unwrap();
    let err = store.pauses().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("pause \"pause/mail\""), "{err}");
    // A claim needs no record's content, only the queue's name: it passes the queue over.
    store.add(NewJob { queue: "mail".into(), ..new_job(1) }, 0).unwrap();
    let mail = ClaimFilter { queue: Some("mail"), factory: None };
    assert!(store
        .claim(&mail, 0, LeaseTerms { duration: std::time::Duration::from_secs(30) })
        .unwrap()
        .is_none());
}
