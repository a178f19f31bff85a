//! One conformance suite for every store backend: each test below runs against the embedded
//! store and against PostgreSQL (`conformance!` makes a `sled` and a `postgres` test of each),
//! so a behaviour cannot exist in one and not the other. The stores are real: sled in a
//! temporary directory, PostgreSQL in a schema of its own.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use jobhost::clock::{Micros, SystemClock};
use jobhost::job::{
    AttemptToken, Callback, JobId, NewJob, NewMembership, NewParent, OnFailure, Outcome, Progress,
    ScheduleId, Status, Upon, DEFAULT_QUEUE,
};
use jobhost::limits::{Limit, Rate, Scope};
use jobhost::schedule::{MissedPolicy, Schedule, Trigger};
use jobhost::store::{
    Cancelled, ClaimFilter, Claimed, Created, Finished, Keyed, LeaseTerms, ListFilter, Once, QueuePause,
    Removal, Report, Store, StoreError,
};
use jobhost_tests::stores::{Backend, TestStore};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $( #[test] fn $name() { super::$name(&jobhost_tests::stores::TestStore::new(jobhost_tests::stores::Backend::Sled)) } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if jobhost_tests::stores::postgres_skipped(concat!("postgres::", stringify!($name))) {
                    return;
                }
                super::$name(&jobhost_tests::stores::TestStore::new(jobhost_tests::stores::Backend::Postgres))
            } )*
        }
    };
}

conformance!(
    jobs_are_stored_listed_filtered_and_paged_by_id,
    a_unique_key_returns_its_pending_holder_until_it_finishes,
    a_batch_is_stored_whole_and_in_order,
    claims_take_higher_priority_first_then_the_order_added,
    claims_filter_by_queue_and_factory_and_count_each_attempt_once,
    outcomes_complete_retry_later_or_fail_and_stale_tokens_change_nothing,
    cancel_ends_a_waiting_job_at_once_and_a_running_one_when_it_returns,
    retry_sends_a_finished_job_back_with_fresh_attempts_unless_its_key_is_held,
    held_and_scheduled_jobs_start_when_asked_or_when_due,
    leases_are_renewed_by_their_holder_only_and_progress_likewise,
    released_jobs_go_back_uncounted_and_keep_their_place,
    expired_leases_are_recovered_and_counted,
    removal_takes_only_finished_jobs_and_honours_retention,
    lists_follow_status_changes_in_either_order_and_removal_takes_a_queue_or_factory,
    schedules_are_stored_updated_listed_and_removed,
    a_schedule_slot_fires_once_however_many_race_for_it,
    concurrent_claimers_never_take_the_same_job,
    counts_stay_exact_while_hosts_add_claim_and_finish_at_once,
    an_idempotency_key_creates_once_however_many_race_and_lapses_after_its_window,
    a_dependent_waits_for_every_parent_then_queues,
    a_failed_parent_cancels_its_chain_and_its_retry_revives_it,
    a_batch_submits_a_graph_by_position_and_parents_are_checked,
    a_waiting_job_cancelled_by_hand_cancels_its_dependents_for_good,
    a_parent_finishing_while_its_dependent_is_added_never_strands_it,
    a_group_is_stored_with_its_batch_counted_and_lasts_as_long_as_its_first_job,
    a_concurrency_limit_passes_jobs_over_without_costing_attempts,
    a_per_key_limit_counts_each_key_and_a_rate_spaces_starts,
    claimers_racing_under_a_limit_never_start_more_than_it_allows,
    a_finished_job_stays_while_a_job_that_depends_on_it_has_not_finished,
    a_queue_pause_is_kept_with_who_and_when_until_resumed,
    history_rows_add_up_across_hosts_and_are_kept_seven_days,
    jobs_of_a_factory_are_counted_within_a_queue_and_up_to_a_cap,
);

const LEASE: LeaseTerms = LeaseTerms { duration: Duration::from_secs(30) };
const ANY: ClaimFilter<'static> = ClaimFilter { queue: None, factory: None };
const SEC: Micros = 1_000_000;

fn now() -> Micros {
    SystemClock.now_micros()
}

fn new_job(input: u32) -> NewJob {
    NewJob {
        factory: "echo".into(),
        input: input.to_string(),
        queue: DEFAULT_QUEUE.into(),
        priority: 0,
        max_attempts: 3,
        ..NewJob::default()
    }
}

fn add(store: &dyn Store, new: NewJob, at: Micros) -> JobId {
    store.add(new, at).unwrap().job.id
}

fn status(store: &dyn Store, id: JobId) -> Status {
    store.get(id).unwrap().unwrap().status
}

fn claim_one(store: &dyn Store, at: Micros) -> Claimed {
    store.claim(&ANY, at, LEASE).unwrap().expect("a job to claim")
}

fn finish(store: &dyn Store, claimed: &Claimed, outcome: Outcome, at: Micros) -> Finished {
    store.finish(Report { started_at: None, id: claimed.job.id, token: claimed.token, outcome }, at).unwrap()
}

fn completed() -> Outcome {
    Outcome::Completed { result: "\"done\"".into() }
}

fn ids(jobs: &[jobhost::job::Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

fn count(store: &dyn Store, queue: &str, status: Status) -> u64 {
    store.counts().unwrap().get(queue).and_then(|c| c.get(&status)).copied().unwrap_or(0)
}

fn jobs_are_stored_listed_filtered_and_paged_by_id(store: &TestStore) {
    let t = now();
    let a = add(&**store, new_job(1), t);
    let b = add(&**store, NewJob { queue: "other".into(), ..new_job(2) }, t);
    let c = add(&**store, NewJob { factory: "sleep".into(), ..new_job(3) }, t);
    assert!(a < b && b < c, "ids grow");
    let job = store.get(a).unwrap().unwrap();
    assert_eq!((job.input.as_str(), job.status, job.attempts, job.created_at), ("1", Status::Queued, 0, t));
    assert_eq!(store.get(JobId(c.0 + 1000)).unwrap(), None);

    let all = ListFilter { limit: 10, ..ListFilter::default() };
    assert_eq!(ids(&store.list(&all).unwrap()), vec![a, b, c]);
    let page = store.list(&ListFilter { limit: 2, ..all.clone() }).unwrap();
    assert_eq!(ids(&page), vec![a, b]);
    let next = store.list(&ListFilter { after: Some(b), ..all.clone() }).unwrap();
    assert_eq!(ids(&next), vec![c]);
    let by_queue = store.list(&ListFilter { queue: Some("other".into()), ..all.clone() }).unwrap();
    assert_eq!(ids(&by_queue), vec![b]);
    let by_factory = store.list(&ListFilter { factory: Some("sleep".into()), ..all.clone() }).unwrap();
    assert_eq!(ids(&by_factory), vec![c]);
    // (Across queues the order is the backend's own: the processor claims queue by queue.)
    let claimed =
        store.claim(&ClaimFilter { queue: Some(DEFAULT_QUEUE), factory: None }, t, LEASE).unwrap().unwrap();
    let running = store.list(&ListFilter { statuses: vec![Status::Processing], ..all.clone() }).unwrap();
    assert_eq!(ids(&running), vec![claimed.job.id]);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Queued), 1);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Processing), 1);
    assert_eq!(count(&**store, "other", Status::Queued), 1);
}

fn a_unique_key_returns_its_pending_holder_until_it_finishes(store: &TestStore) {
    let t = now();
    let keyed = |n| NewJob { unique_key: Some("k".into()), ..new_job(n) };
    let first = store.add(keyed(1), t).unwrap();
    assert!(!first.existing);
    let again = store.add(keyed(2), t).unwrap();
    assert!(again.existing);
    assert_eq!((again.job.id, again.job.input.as_str()), (first.job.id, "1"), "the holder, unchanged");
    // Another factory's key of the same text is another key.
    let other = store.add(NewJob { factory: "sleep".into(), ..keyed(3) }, t).unwrap();
    assert!(!other.existing);
    // Running, it still holds the key; finished, it gives it up.
    let claimed =
        store.claim(&ClaimFilter { factory: Some("echo"), queue: None }, t, LEASE).unwrap().unwrap();
    assert_eq!(claimed.job.id, first.job.id);
    assert!(store.add(keyed(4), t).unwrap().existing);
    finish(&**store, &claimed, completed(), t);
    let after = store.add(keyed(5), t).unwrap();
    assert!(!after.existing);
    assert_ne!(after.job.id, first.job.id);
}

fn a_batch_is_stored_whole_and_in_order(store: &TestStore) {
    let t = now();
    let jobs = store.add_batch((0..50).map(new_job).collect(), t).unwrap();
    assert_eq!(jobs.len(), 50);
    assert!(jobs.windows(2).all(|w| w[0].id < w[1].id), "ids in order");
    for (n, job) in jobs.iter().enumerate() {
        assert_eq!(store.get(job.id).unwrap().unwrap().input, n.to_string());
    }
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Queued), 50);
    assert!(store.add_batch(Vec::new(), t).unwrap().is_empty());
}

fn claims_take_higher_priority_first_then_the_order_added(store: &TestStore) {
    let t = now();
    let low1 = add(&**store, new_job(1), t);
    let high = add(&**store, NewJob { priority: 5, ..new_job(2) }, t + 1);
    let low2 = add(&**store, new_job(3), t + 2);
    let future = add(&**store, NewJob { run_at: Some(t + 3600 * SEC), priority: 9, ..new_job(4) }, t);
    let order: Vec<JobId> = (0..3).map(|_| claim_one(&**store, t + 10).job.id).collect();
    assert_eq!(order, vec![high, low1, low2]);
    assert!(store.claim(&ANY, t + 10, LEASE).unwrap().is_none(), "the scheduled job is not due");
    assert_eq!(status(&**store, future), Status::Scheduled);
    // A batch claim takes them in the same order, up to its size.
    let more: Vec<JobId> = (0..5).map(|n| add(&**store, new_job(10 + n), t + 20)).collect();
    let batch = store.claim_batch(&ANY, t + 30, LEASE, 3).unwrap();
    assert_eq!(batch.iter().map(|c| c.job.id).collect::<Vec<_>>(), more[..3].to_vec());
}

fn claims_filter_by_queue_and_factory_and_count_each_attempt_once(store: &TestStore) {
    let t = now();
    let other = add(&**store, NewJob { queue: "other".into(), ..new_job(1) }, t);
    let sleep = add(&**store, NewJob { factory: "sleep".into(), ..new_job(2) }, t);
    let by_queue =
        store.claim(&ClaimFilter { queue: Some("other"), factory: None }, t, LEASE).unwrap().unwrap();
    assert_eq!(by_queue.job.id, other);
    assert!(store.claim(&ClaimFilter { queue: Some("other"), factory: None }, t, LEASE).unwrap().is_none());
    let by_factory =
        store.claim(&ClaimFilter { queue: None, factory: Some("sleep") }, t, LEASE).unwrap().unwrap();
    assert_eq!(by_factory.job.id, sleep);
    let job = store.get(sleep).unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.started_at), (Status::Processing, 1, Some(t)));
    let lease = job.lease.expect("a lease");
    assert_eq!((lease.token, lease.expires_at), (by_factory.token, t + 30 * SEC));
    assert_ne!(by_queue.token, by_factory.token);
}

fn outcomes_complete_retry_later_or_fail_and_stale_tokens_change_nothing(store: &TestStore) {
    let t = now();
    let [done, retried, failed] = [1, 2, 3].map(|n| add(&**store, new_job(n), t));
    let claims = store.claim_batch(&ANY, t, LEASE, 3).unwrap();
    assert_eq!(claims.len(), 3);
    let stale = Report {
        started_at: None,
        id: done,
        token: AttemptToken(claims[0].token.0 ^ 1),
        outcome: completed(),
    };
    let reports = vec![
        stale,
        Report { started_at: None, id: done, token: claims[0].token, outcome: completed() },
        Report {
            started_at: None,
            id: retried,
            token: claims[1].token,
            outcome: Outcome::Retry { error: "later".into(), retry_at: t + 60 * SEC, backtrace: None },
        },
        Report {
            started_at: None,
            id: failed,
            token: claims[2].token,
            outcome: Outcome::Failed { error: "no".into(), backtrace: None },
        },
    ];
    let finished = store.finish_batch(&reports, t + SEC).unwrap();
    assert_eq!(finished[0], Finished::Stale);
    assert!(matches!(&finished[1], Finished::Applied(j) if j.status == Status::Completed));
    let job = store.get(done).unwrap().unwrap();
    assert_eq!(
        (job.status, job.result.as_deref(), job.finished_at, job.lease),
        (Status::Completed, Some("\"done\""), Some(t + SEC), None)
    );
    let job = store.get(retried).unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.run_at), (Status::Queued, 1, t + 60 * SEC));
    assert!(job.errors[0].ends_with("] later"), "{:?}", job.errors);
    assert!(store.claim(&ANY, t + 59 * SEC, LEASE).unwrap().is_none(), "waits for its retry time");
    assert!(store.next_due().unwrap().is_some_and(|at| at <= t + 60 * SEC));
    let again = claim_one(&**store, t + 60 * SEC);
    assert_eq!((again.job.id, again.job.attempts), (retried, 2));
    let job = store.get(failed).unwrap().unwrap();
    assert_eq!((job.status, job.finished_at), (Status::Error, Some(t + SEC)));
    // Reporting again with a spent token changes nothing.
    assert_eq!(store.finish(reports[1].clone(), t + 2 * SEC).unwrap(), Finished::Stale);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Completed), 1);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Error), 1);
}

fn cancel_ends_a_waiting_job_at_once_and_a_running_one_when_it_returns(store: &TestStore) {
    let t = now();
    let waiting = add(&**store, NewJob { run_at: Some(t + 60 * SEC), ..new_job(1) }, t);
    assert!(matches!(store.cancel(waiting, t).unwrap(), Cancelled::Now(j) if j.status == Status::Cancelled));
    assert!(matches!(store.cancel(waiting, t), Err(StoreError::Refused(_))), "cancelled is final for cancel");
    let running = add(&**store, new_job(2), t);
    let claimed = claim_one(&**store, t);
    assert_eq!(claimed.job.id, running);
    assert!(matches!(store.cancel(running, t).unwrap(), Cancelled::Requested(j) if j.cancel_requested));
    assert_eq!(status(&**store, running), Status::Processing);
    finish(&**store, &claimed, completed(), t + SEC);
    assert_eq!(status(&**store, running), Status::Cancelled, "a requested cancel wins over the outcome");
    assert!(matches!(store.cancel(JobId(999_999), t), Err(StoreError::NotFound(_))));
}

fn retry_sends_a_finished_job_back_with_fresh_attempts_unless_its_key_is_held(store: &TestStore) {
    let t = now();
    let keyed = |n| NewJob { unique_key: Some("k".into()), max_attempts: 1, ..new_job(n) };
    let id = add(&**store, keyed(1), t);
    assert!(matches!(store.retry(id, None, t), Err(StoreError::Refused(_))), "a queued job is not retried");
    let claimed = claim_one(&**store, t);
    finish(&**store, &claimed, Outcome::Failed { error: "broken".into(), backtrace: None }, t);
    let job = store.retry(id, Some(5), t + SEC).unwrap();
    assert_eq!((job.status, job.attempts, job.max_attempts, job.errors.len()), (Status::Queued, 0, 5, 1));
    assert_eq!(store.get(id).unwrap().unwrap().finished_at, None);
    // Failed again; meanwhile a new job took the key: the retry would duplicate it.
    let claimed = claim_one(&**store, t + SEC);
    finish(&**store, &claimed, Outcome::Failed { error: "again".into(), backtrace: None }, t + SEC);
    let holder = add(&**store, keyed(2), t + 2 * SEC);
    match store.retry(id, None, t + 3 * SEC) {
        Err(StoreError::KeyHeld { id: refused, holder: h, .. }) => assert_eq!((refused, h), (id, holder)),
        other => panic!("expected KeyHeld, got {other:?}"),
    }
    assert_eq!(status(&**store, id), Status::Error, "unchanged");
}

fn held_and_scheduled_jobs_start_when_asked_or_when_due(store: &TestStore) {
    let t = now();
    let held = add(&**store, NewJob { hold: true, ..new_job(1) }, t);
    let scheduled = add(&**store, NewJob { run_at: Some(t + 60 * SEC), ..new_job(2) }, t);
    let later = add(&**store, NewJob { run_at: Some(t + 120 * SEC), ..new_job(3) }, t);
    assert_eq!((status(&**store, held), status(&**store, scheduled)), (Status::Held, Status::Scheduled));
    assert!(store.claim(&ANY, t, LEASE).unwrap().is_none(), "neither is claimable");
    assert_eq!(store.next_due().unwrap(), Some(t + 60 * SEC));
    assert_eq!(store.start(held, t).unwrap().status, Status::Queued);
    assert!(matches!(store.start(held, t), Err(StoreError::Refused(_))));
    assert_eq!(claim_one(&**store, t).job.id, held);
    assert_eq!(store.promote_due(t + 60 * SEC).unwrap(), 1);
    assert_eq!(status(&**store, scheduled), Status::Queued);
    assert_eq!(status(&**store, later), Status::Scheduled);
    // A claim promotes what is due by itself.
    assert_eq!(claim_one(&**store, t + 60 * SEC).job.id, scheduled);
    assert_eq!(claim_one(&**store, t + 120 * SEC).job.id, later);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Scheduled), 0);
}

fn leases_are_renewed_by_their_holder_only_and_progress_likewise(store: &TestStore) {
    let t = now();
    let id = add(&**store, new_job(1), t);
    let claimed = claim_one(&**store, t);
    assert!(store.heartbeat(id, claimed.token, t + 10 * SEC, LEASE).unwrap());
    assert_eq!(store.get(id).unwrap().unwrap().lease.unwrap().expires_at, t + 40 * SEC);
    let wrong = AttemptToken(claimed.token.0 ^ 1);
    assert!(!store.heartbeat(id, wrong, t + 20 * SEC, LEASE).unwrap());
    let progress = Progress { fraction: 0.5, message: "half".into() };
    store.set_progress(id, wrong, progress.clone()).unwrap();
    assert_eq!(store.get(id).unwrap().unwrap().progress, None, "a stale attempt reports nothing");
    store.set_progress(id, claimed.token, progress.clone()).unwrap();
    assert_eq!(store.get(id).unwrap().unwrap().progress, Some(progress));
    // Still held: not recovered before the renewed expiry.
    assert!(store.recover_expired(t + 35 * SEC).unwrap().is_empty());
}

fn released_jobs_go_back_uncounted_and_keep_their_place(store: &TestStore) {
    let t = now();
    let [a, b] = [1, 2].map(|n| add(&**store, new_job(n), t));
    let claims = store.claim_batch(&ANY, t, LEASE, 2).unwrap();
    let wrong = (b, AttemptToken(claims[1].token.0 ^ 1));
    assert_eq!(store.release_batch(&[(a, claims[0].token), wrong], t + SEC).unwrap(), 1);
    let job = store.get(a).unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.lease), (Status::Queued, 0, None));
    assert_eq!(status(&**store, b), Status::Processing, "a stale token releases nothing");
    let later = add(&**store, new_job(3), t + 2 * SEC);
    assert_eq!(claim_one(&**store, t + 3 * SEC).job.id, a, "back in its place, before later jobs");
    assert!(store.release(b, claims[1].token, t + 3 * SEC).unwrap());
    assert_eq!(claim_one(&**store, t + 3 * SEC).job.id, b);
    assert_eq!(claim_one(&**store, t + 3 * SEC).job.id, later);
}

fn expired_leases_are_recovered_and_counted(store: &TestStore) {
    let t = now();
    let again = add(&**store, new_job(1), t);
    let last = add(&**store, NewJob { max_attempts: 1, ..new_job(2) }, t);
    store.claim_batch(&ANY, t, LEASE, 2).unwrap();
    assert!(store.recover_expired(t + 29 * SEC).unwrap().is_empty());
    let recovered: BTreeSet<JobId> = store.recover_expired(t + 31 * SEC).unwrap().into_iter().collect();
    assert_eq!(recovered, BTreeSet::from([again, last]));
    let job = store.get(again).unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.lease), (Status::Queued, 1, None));
    assert!(job.errors[0].contains("worker lost"), "{:?}", job.errors);
    assert_eq!(status(&**store, last), Status::Error, "its only attempt was spent");
    assert_eq!(claim_one(&**store, t + 32 * SEC).job.attempts, 2);
}

fn removal_takes_only_finished_jobs_and_honours_retention(store: &TestStore) {
    let t = now();
    let ids: Vec<JobId> = (0..4).map(|n| add(&**store, new_job(n), t)).collect();
    let early = claim_one(&**store, t);
    finish(&**store, &early, completed(), t + SEC);
    let late = claim_one(&**store, t);
    finish(&**store, &late, completed(), t + 100 * SEC);
    let failed = claim_one(&**store, t);
    finish(&**store, &failed, Outcome::Failed { error: "x".into(), backtrace: None }, t + SEC);
    let removed = store
        .remove(&Removal {
            statuses: vec![Status::Completed],
            finished_before: Some(t + 50 * SEC),
            ..Removal::default()
        })
        .unwrap();
    assert_eq!(removed.get(&Status::Completed), Some(&1));
    assert_eq!(store.get(early.job.id).unwrap(), None);
    assert!(store.get(late.job.id).unwrap().is_some(), "finished after the cutoff");
    assert!(store.get(failed.job.id).unwrap().is_some(), "another status");
    let removed = store.remove(&Removal::default()).unwrap();
    assert_eq!((removed.get(&Status::Completed), removed.get(&Status::Error)), (Some(&1), Some(&1)));
    assert!(store.get(ids[3]).unwrap().is_some(), "a queued job is never removed");
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Completed), 0);
    // Ids are never reused after a removal.
    assert!(add(&**store, new_job(9), t) > ids[3]);
}

fn lists_follow_status_changes_in_either_order_and_removal_takes_a_queue_or_factory(store: &TestStore) {
    let t = now();
    let in_queue =
        |queue: &str, factory: &str, n| NewJob { queue: queue.into(), factory: factory.into(), ..new_job(n) };
    // Interleaved across two queues and two factories, so a merge must keep id order.
    let jobs: Vec<JobId> = (0..8)
        .map(|n| {
            let queue = if n % 2 == 0 { "even" } else { "odd" };
            let factory = if n < 4 { "echo" } else { "sleep" };
            add(&**store, in_queue(queue, factory, n), t)
        })
        .collect();
    let failing = ClaimFilter { queue: Some("even"), factory: None };
    let mut failed = Vec::new();
    for _ in 0..3 {
        let c = store.claim(&failing, t, LEASE).unwrap().unwrap();
        finish(&**store, &c, Outcome::Failed { error: "no".into(), backtrace: None }, t + SEC);
        failed.push(c.job.id);
    }
    let list = |f: ListFilter| ids(&store.list(&ListFilter { limit: 100, ..f }).unwrap());
    let error = || ListFilter { statuses: vec![Status::Error], ..ListFilter::default() };
    assert_eq!(list(error()), failed);
    assert_eq!(
        list(ListFilter { newest_first: true, ..error() }),
        failed.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(list(ListFilter { queue: Some("odd".into()), ..error() }), vec![]);
    let queued_odd = vec![jobs[1], jobs[3], jobs[5], jobs[7]];
    assert_eq!(list(ListFilter { queue: Some("odd".into()), ..ListFilter::default() }), queued_odd);
    // Newest first, paged: the cursor continues downwards.
    let newest = ListFilter { newest_first: true, limit: 3, ..ListFilter::default() };
    let first = ids(&store.list(&newest).unwrap());
    assert_eq!(first, vec![jobs[7], jobs[6], jobs[5]]);
    let second = ids(&store.list(&ListFilter { after: Some(jobs[5]), ..newest.clone() }).unwrap());
    assert_eq!(second, vec![jobs[4], jobs[3], jobs[2]]);
    // Every status, one factory, newest first: a merge of the factory's status ranges.
    let sleep = ListFilter { factory: Some("sleep".into()), newest_first: true, ..ListFilter::default() };
    assert_eq!(list(sleep.clone()), vec![jobs[7], jobs[6], jobs[5], jobs[4]]);
    let sleep_failed = list(ListFilter { statuses: vec![Status::Error], ..sleep });
    assert_eq!(sleep_failed, failed.iter().rev().filter(|id| **id >= jobs[4]).copied().collect::<Vec<_>>());
    // A retried job leaves `error` for `queued` in every listing.
    store.retry(failed[0], None, t + 2 * SEC).unwrap();
    assert_eq!(list(error()), failed[1..].to_vec());
    assert!(list(ListFilter {
        statuses: vec![Status::Queued],
        queue: Some("even".into()),
        ..ListFilter::default()
    })
    .contains(&failed[0]));
    // Removal of one factory's failed jobs leaves the other's.
    let removed = store
        .remove(&Removal {
            statuses: vec![Status::Error],
            factory: Some("echo".into()),
            ..Removal::default()
        })
        .unwrap();
    let echo_failed = failed[1..].iter().filter(|id| **id < jobs[4]).count() as u64;
    assert_eq!(removed.get(&Status::Error).copied().unwrap_or(0), echo_failed);
    let left = list(error());
    assert!(left.iter().all(|id| *id >= jobs[4]) && left.len() as u64 == 2 - echo_failed, "{left:?}");
    let removed = store.remove(&Removal { queue: Some("odd".into()), ..Removal::default() }).unwrap();
    assert!(removed.values().all(|n| *n == 0), "the odd queue has no finished job: {removed:?}");
    assert_eq!(list(error()), left);
}

fn schedule(next: Micros) -> Schedule {
    Schedule {
        id: ScheduleId(0),
        factory: "echo".into(),
        input: "{}".into(),
        queue: DEFAULT_QUEUE.into(),
        priority: 0,
        max_attempts: None,
        timeout_ms: None,
        trigger: Trigger::Cron { expr: "* * * * *".into(), timezone: None },
        active: true,
        missed: MissedPolicy::default(),
        next_run_at: Some(next),
        last_run_at: None,
        last_job_id: None,
        last_error: None,
        runs: 0,
        created_at: next,
        updated_at: next,
    }
}

fn schedules_are_stored_updated_listed_and_removed(store: &TestStore) {
    let t = now();
    let a = store.add_schedule(schedule(t + 60 * SEC)).unwrap();
    let b = store.add_schedule(schedule(t + 30 * SEC)).unwrap();
    assert!(a.id < b.id);
    assert_eq!(store.get_schedule(a.id).unwrap().unwrap(), a);
    assert_eq!(store.list_schedules().unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), vec![a.id, b.id]);
    assert_eq!(store.next_schedule_due().unwrap(), Some(t + 30 * SEC));
    assert!(store.due_schedules(t, 10).unwrap().is_empty());
    let due = store.due_schedules(t + 60 * SEC, 10).unwrap();
    assert_eq!(due.iter().map(|s| s.id).collect::<Vec<_>>(), vec![b.id, a.id], "earliest first");
    let paused = store.update_schedule(b.id, &|s: &mut Schedule| s.active = false).unwrap();
    assert!(!paused.active);
    assert_eq!(store.next_schedule_due().unwrap(), Some(t + 60 * SEC), "a paused schedule is not due");
    assert!(matches!(
        store.update_schedule(ScheduleId(9_999), &|_: &mut Schedule| {}),
        Err(StoreError::ScheduleNotFound(_))
    ));
    assert!(store.remove_schedule(a.id).unwrap());
    assert!(!store.remove_schedule(a.id).unwrap());
    assert_eq!(store.get_schedule(a.id).unwrap(), None);
}

fn a_schedule_slot_fires_once_however_many_race_for_it(store: &TestStore) {
    let t = now();
    let slot = t + 60 * SEC;
    let id = store.add_schedule(schedule(slot)).unwrap().id;
    // Four schedulers (on PostgreSQL, four hosts) race for the slot.
    let stores: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| if store.backend == Backend::Postgres { store.another_host() } else { store.store.clone() })
        .collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let fired: Vec<bool> = std::thread::scope(|s| {
        let racers: Vec<_> = stores
            .iter()
            .map(|racer| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let job = NewJob { schedule_id: Some(id), ..new_job(1) };
                    racer.fire_schedule(id, slot, Some(job), Some(slot + 60 * SEC), slot).unwrap().is_some()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(fired.iter().filter(|f| **f).count(), 1, "{fired:?}");
    let after = store.get_schedule(id).unwrap().unwrap();
    assert_eq!((after.runs, after.next_run_at, after.last_run_at), (1, Some(slot + 60 * SEC), Some(slot)));
    let jobs = store.list(&ListFilter { limit: 10, ..ListFilter::default() }).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((after.last_job_id, jobs[0].schedule_id), (Some(jobs[0].id), Some(id)));
    // The slot gone, firing it again makes nothing.
    assert!(store.fire_schedule(id, slot, Some(new_job(2)), None, slot).unwrap().is_none());
}

fn concurrent_claimers_never_take_the_same_job(store: &TestStore) {
    let t = now();
    let added = store.add_batch((0..300).map(new_job).collect(), t).unwrap();
    let claimers: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| if store.backend == Backend::Postgres { store.another_host() } else { store.store.clone() })
        .collect();
    let claimed: Vec<JobId> = std::thread::scope(|s| {
        let threads: Vec<_> = claimers
            .iter()
            .map(|claimer| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let batch = claimer.claim_batch(&ANY, t, LEASE, 7).unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch.into_iter().map(|c| c.job.id));
                    }
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    let unique: BTreeSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 300, "every job claimed once");
    assert_eq!(unique, ids(&added).into_iter().collect::<BTreeSet<_>>());
    for id in unique {
        assert_eq!(store.get(id).unwrap().unwrap().attempts, 1);
    }
}

fn counts_stay_exact_while_hosts_add_claim_and_finish_at_once(store: &TestStore) {
    let t = now();
    let hosts: Vec<Arc<dyn Store>> = (0..3)
        .map(|_| if store.backend == Backend::Postgres { store.another_host() } else { store.store.clone() })
        .collect();
    std::thread::scope(|s| {
        for (n, host) in hosts.iter().enumerate() {
            s.spawn(move || {
                for round in 0..20u32 {
                    let queue = if round % 2 == 0 { DEFAULT_QUEUE } else { "other" };
                    let news = (0..10).map(|i| NewJob { queue: queue.into(), ..new_job(i) }).collect();
                    host.add_batch(news, t).unwrap();
                    let filter = ClaimFilter { queue: Some(queue), factory: None };
                    for claimed in host.claim_batch(&filter, t, LEASE, 4 + n).unwrap() {
                        let outcome = if claimed.job.id.0 % 3 == 0 {
                            Outcome::Failed { error: "x".into(), backtrace: None }
                        } else {
                            completed()
                        };
                        host.finish(
                            Report { started_at: None, id: claimed.job.id, token: claimed.token, outcome },
                            t,
                        )
                        .unwrap();
                    }
                }
            });
        }
    });
    let jobs = store.list(&ListFilter { limit: 10_000, ..ListFilter::default() }).unwrap();
    assert_eq!(jobs.len(), 600);
    let mut expected = std::collections::BTreeMap::new();
    for job in &jobs {
        *expected
            .entry(job.queue.clone())
            .or_insert_with(std::collections::BTreeMap::new)
            .entry(job.status)
            .or_insert(0u64) += 1;
    }
    assert_eq!(store.counts().unwrap(), expected);
    // After a removal, too.
    store.remove(&Removal { statuses: vec![Status::Completed], ..Removal::default() }).unwrap();
    for counts in store.counts().unwrap().values() {
        assert_eq!(counts.get(&Status::Completed), None);
    }
}

fn an_idempotency_key_creates_once_however_many_race_and_lapses_after_its_window(store: &TestStore) {
    let t = now();
    let once = |key: &str, expires_at: Micros| Once { key: key.into(), fingerprint: "f".into(), expires_at };
    // Eight requests with one key (on PostgreSQL, from four hosts) race: one job.
    let stores: Vec<Arc<dyn Store>> = (0..8)
        .map(|i| {
            if store.backend == Backend::Postgres && i % 2 == 1 {
                store.another_host()
            } else {
                store.store.clone()
            }
        })
        .collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let key = once("race", t + 60 * SEC);
    let answers: Vec<Keyed<_>> = std::thread::scope(|s| {
        let racers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, racer)| {
                let (barrier, key) = (barrier.clone(), key.clone());
                s.spawn(move || {
                    barrier.wait();
                    racer.add_keyed(new_job(i as u32), t, &key).unwrap()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let made: Vec<JobId> = answers
        .iter()
        .filter_map(|a| match a {
            Keyed::New(added) => Some(added.job.id),
            Keyed::Before(_) => None,
        })
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    for answer in &answers {
        if let Keyed::Before(record) = answer {
            assert_eq!(record.created, Created::Job { id: made[0].0, existing: false });
        }
    }
    assert_eq!(store.list(&ListFilter { limit: 100, ..ListFilter::default() }).unwrap().len(), 1);

    // A unique key's holder is what a keyed add with that unique key made.
    let unique = NewJob { unique_key: Some("u".into()), ..new_job(50) };
    let Keyed::New(holder) = store.add_keyed(unique.clone(), t, &once("u1", t + 60 * SEC)).unwrap() else {
        panic!("not new")
    };
    let Keyed::New(again) = store.add_keyed(unique, t, &once("u2", t + 60 * SEC)).unwrap() else {
        panic!("not new")
    };
    assert!(again.existing && again.job.id == holder.job.id);
    assert_eq!(
        store.remembered("u2", t).unwrap().unwrap().created,
        Created::Job { id: holder.job.id.0, existing: true }
    );

    // Batches and schedules likewise.
    let Keyed::New(jobs) =
        store.add_batch_keyed(vec![new_job(60), new_job(61)], t, &once("batch", t + SEC)).unwrap()
    else {
        panic!("not new")
    };
    let again = store.add_batch_keyed(vec![new_job(62)], t, &once("batch", t + SEC)).unwrap();
    assert_eq!(again, Keyed::Before(store.remembered("batch", t).unwrap().unwrap()));
    let ids: Vec<u64> = jobs.iter().map(|j| j.id.0).collect();
    assert_eq!(store.remembered("batch", t).unwrap().unwrap().created, Created::Batch { ids });
    let Keyed::New(made) =
        store.add_schedule_keyed(schedule(t + 60 * SEC), t, &once("schedule", t + SEC)).unwrap()
    else {
        panic!("not new")
    };
    let again = store.add_schedule_keyed(schedule(t + 60 * SEC), t, &once("schedule", t + SEC)).unwrap();
    let Keyed::Before(record) = again else { panic!("a second schedule") };
    assert_eq!(record.created, Created::Schedule { id: made.id.0 });
    assert_eq!(store.list_schedules().unwrap().len(), 1);

    // Past its window a key is not answered, makes anew, and the expired ones are swept.
    let later = t + 2 * SEC;
    assert_eq!(store.remembered("batch", later).unwrap(), None);
    assert!(matches!(
        store.add_batch_keyed(vec![new_job(63)], later, &once("batch", later + 60 * SEC)).unwrap(),
        Keyed::New(_)
    ));
    assert_eq!(store.forget_keys(later, 100).unwrap(), 1, "the schedule's key");
    assert!(store.remembered("batch", later).unwrap().is_some());
    assert!(store.remembered("race", later).unwrap().is_some());
}

fn after(parents: &[JobId], on_failure: OnFailure) -> Vec<NewParent> {
    parents.iter().map(|&id| NewParent { upon: Upon::Job(id), on_failure }).collect()
}

fn dependent(n: u32, parents: &[JobId]) -> NewJob {
    NewJob { depends_on: after(parents, OnFailure::Cancel), ..new_job(n) }
}

/// Claims the next job, which must be `id`, and ends it with `outcome`.
fn run(store: &dyn Store, id: JobId, outcome: Outcome, at: Micros) {
    let claimed = claim_one(store, at);
    assert_eq!(claimed.job.id, id, "the next job to run");
    assert!(matches!(finish(store, &claimed, outcome, at), Finished::Applied(_)));
}

fn a_dependent_waits_for_every_parent_then_queues(store: &TestStore) {
    let t = now();
    let a = add(&**store, new_job(1), t);
    let b = add(&**store, new_job(2), t);
    let c = add(&**store, dependent(3, &[a, b]), t);
    let job = store.get(c).unwrap().unwrap();
    assert_eq!(job.status, Status::Waiting);
    assert_eq!(job.parents.iter().map(|p| p.id).collect::<Vec<_>>(), [a, b], "read with its parents");
    assert_eq!(store.parents(c).unwrap(), job.parents);
    let deps = job.deps.expect("its dependencies");
    assert_eq!((deps.total, deps.left, deps.failed), (2, 2, 0));
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Waiting), 1);
    run(&**store, a, completed(), t);
    assert_eq!(status(&**store, c), Status::Waiting, "one parent left");
    assert_eq!(store.get(c).unwrap().unwrap().deps.unwrap().left, 1);
    // The waiting job is not claimable: only b is.
    let claimed = claim_one(&**store, t);
    assert_eq!(claimed.job.id, b);
    assert!(store.claim(&ANY, t, LEASE).unwrap().is_none(), "a waiting job is never claimed");
    finish(&**store, &claimed, completed(), t + SEC);
    let job = store.get(c).unwrap().unwrap();
    assert_eq!((job.status, job.deps.unwrap().left), (Status::Queued, 0));
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Waiting), 0);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Queued), 1);
    run(&**store, c, completed(), t + 2 * SEC);
    // A job depending on one that already completed queues at once.
    let d = add(&**store, dependent(4, &[c]), t + 3 * SEC);
    assert_eq!(status(&**store, d), Status::Queued);
}

fn a_failed_parent_cancels_its_chain_and_its_retry_revives_it(store: &TestStore) {
    let t = now();
    let a = add(&**store, NewJob { max_attempts: 1, ..new_job(1) }, t);
    let b = add(&**store, dependent(2, &[a]), t);
    let c = add(&**store, dependent(3, &[b]), t);
    let anyway = add(&**store, NewJob { depends_on: after(&[a], OnFailure::Run), ..new_job(4) }, t);
    run(&**store, a, Outcome::Failed { error: "broken".into(), backtrace: None }, t);
    let job_b = store.get(b).unwrap().unwrap();
    assert_eq!(job_b.status, Status::Cancelled);
    assert!(
        job_b.errors.last().unwrap().contains(&format!("depends on job {a}, which ended error")),
        "{:?}",
        job_b.errors
    );
    assert_eq!(job_b.deps.as_ref().unwrap().blocked_by, Some(a));
    let job_c = store.get(c).unwrap().unwrap();
    assert_eq!(job_c.status, Status::Cancelled, "down the chain");
    assert!(job_c.errors.last().unwrap().contains(&format!("depends on job {b}, which ended cancelled")));
    assert_eq!(status(&**store, anyway), Status::Queued, "`run` edges run whatever the parent did");
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Cancelled), 2);

    // Retrying the parent brings the chain back to waiting; its completion runs it.
    store.retry(a, None, t + SEC).unwrap();
    assert_eq!((status(&**store, b), status(&**store, c)), (Status::Waiting, Status::Waiting));
    let job_b = store.get(b).unwrap().unwrap();
    assert_eq!((job_b.finished_at, job_b.deps.as_ref().unwrap().blocked_by), (None, None));
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Cancelled), 0);
    assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Waiting), 2);
    assert_eq!(status(&**store, anyway), Status::Queued, "already released: unchanged");
    run(&**store, anyway, completed(), t + SEC);
    run(&**store, a, completed(), t + 2 * SEC);
    assert_eq!((status(&**store, b), status(&**store, c)), (Status::Queued, Status::Waiting));
    run(&**store, b, completed(), t + 3 * SEC);
    run(&**store, c, completed(), t + 4 * SEC);
    let removed = store.remove(&Removal::default()).unwrap();
    assert_eq!(removed.get(&Status::Completed), Some(&4));
}

fn a_batch_submits_a_graph_by_position_and_parents_are_checked(store: &TestStore) {
    let t = now();
    let item = |i: usize| NewParent { upon: Upon::Item(i), on_failure: OnFailure::Cancel };
    // A child listed before its parent, and a fan-in.
    let jobs = store
        .add_batch(
            vec![
                NewJob { depends_on: vec![item(1)], ..new_job(0) },
                new_job(1),
                NewJob { depends_on: vec![item(0), item(1)], ..new_job(2) },
            ],
            t,
        )
        .unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.status).collect::<Vec<_>>(),
        [Status::Waiting, Status::Queued, Status::Waiting]
    );
    let parents: Vec<JobId> = jobs[2].parents().iter().map(|p| p.id).collect();
    assert_eq!(parents, [jobs[0].id, jobs[1].id], "positions resolved to the batch's ids");
    run(&**store, jobs[1].id, completed(), t);
    run(&**store, jobs[0].id, completed(), t);
    run(&**store, jobs[2].id, completed(), t);

    // An unknown parent refuses the whole batch.
    let before = store.list(&ListFilter { limit: 100, ..ListFilter::default() }).unwrap().len();
    let unknown = JobId(jobs[2].id.0 + 1_000_000);
    match store.add_batch(vec![new_job(5), dependent(6, &[unknown])], t) {
        Err(StoreError::UnknownParent(id)) => assert_eq!(id, unknown),
        other => panic!("expected UnknownParent, got {other:?}"),
    }
    match store.add(dependent(7, &[unknown]), t) {
        Err(StoreError::UnknownParent(id)) => assert_eq!(id, unknown),
        other => panic!("expected UnknownParent, got {other:?}"),
    }
    assert_eq!(store.list(&ListFilter { limit: 100, ..ListFilter::default() }).unwrap().len(), before);

    // A parent that already failed: cancelled at once, and so is its own dependent in the batch.
    let failed = add(&**store, NewJob { max_attempts: 1, ..new_job(8) }, t);
    run(&**store, failed, Outcome::Failed { error: "x".into(), backtrace: None }, t);
    let jobs = store
        .add_batch(vec![dependent(9, &[failed]), NewJob { depends_on: vec![item(0)], ..new_job(10) }], t)
        .unwrap();
    assert_eq!(jobs.iter().map(|j| j.status).collect::<Vec<_>>(), [Status::Cancelled, Status::Cancelled]);
    store.retry(failed, None, t).unwrap();
    let revived: Vec<Status> = jobs.iter().map(|j| status(&**store, j.id)).collect();
    assert_eq!(revived, [Status::Waiting, Status::Waiting]);
}

fn a_waiting_job_cancelled_by_hand_cancels_its_dependents_for_good(store: &TestStore) {
    let t = now();
    let a = add(&**store, new_job(1), t);
    let b = add(&**store, dependent(2, &[a]), t);
    let c = add(&**store, dependent(3, &[b]), t);
    assert!(matches!(store.cancel(b, t).unwrap(), Cancelled::Now(j) if j.status == Status::Cancelled));
    assert_eq!(status(&**store, c), Status::Cancelled);
    run(&**store, a, completed(), t);
    assert_eq!(
        (status(&**store, b), status(&**store, c)),
        (Status::Cancelled, Status::Cancelled),
        "not revived"
    );
    // Retrying the dependent by hand runs it now, and releases its own dependents' wait.
    let job = store.retry(b, None, t).unwrap();
    assert_eq!(job.status, Status::Queued);
    assert_eq!(status(&**store, c), Status::Waiting);
    run(&**store, b, completed(), t);
    assert_eq!(status(&**store, c), Status::Queued);
}

fn a_parent_finishing_while_its_dependent_is_added_never_strands_it(store: &TestStore) {
    // Hosts finishing parents while others add their dependents: whichever commits first, a
    // dependent ends queued once its parent completed.
    let t = now();
    let mut children = Vec::new();
    for round in 0..40 {
        let parent = add(&**store, new_job(round), t);
        let parents = ClaimFilter { queue: Some(DEFAULT_QUEUE), factory: None };
        let claimed = store.claim(&parents, t, LEASE).unwrap().expect("the parent");
        assert_eq!(claimed.job.id, parent);
        let barrier = Barrier::new(2);
        let child = std::thread::scope(|s| {
            let adder = s.spawn(|| {
                barrier.wait();
                // In a queue of their own: the next round claims its parent, not them.
                add(&**store, NewJob { queue: "children".into(), ..dependent(1000 + round, &[parent]) }, t)
            });
            barrier.wait();
            finish(&**store, &claimed, completed(), t);
            adder.join().unwrap()
        });
        children.push(child);
    }
    for child in children {
        assert_eq!(status(&**store, child), Status::Queued, "job {child} stranded");
    }
}

fn a_group_is_stored_with_its_batch_counted_and_lasts_as_long_as_its_first_job(store: &TestStore) {
    let t = now();
    let member =
        |n| NewJob { group: Some(NewMembership { name: Some("g".into()), callback: None }), ..new_job(n) };
    let callback = NewJob {
        group: Some(NewMembership { name: Some("g".into()), callback: Some(Callback::OnComplete) }),
        depends_on: (0..2).map(|i| NewParent { upon: Upon::Item(i), on_failure: OnFailure::Run }).collect(),
        ..new_job(9)
    };
    let jobs = store.add_batch(vec![member(1), member(2), callback], t).unwrap();
    let id = jobs[0].id;
    assert!(jobs.iter().all(|j| j.group.is_some_and(|m| m.group == id)));
    let state = store.group(id).unwrap().expect("the group");
    assert_eq!(state.group.members, [jobs[0].id, jobs[1].id]);
    assert_eq!(state.group.callbacks, [(Callback::OnComplete, jobs[2].id)]);
    assert_eq!(state.group.name.as_deref(), Some("g"));
    assert_eq!(state.members.get(&Status::Queued), Some(&2));
    assert_eq!(state.callbacks, [(Callback::OnComplete, jobs[2].id, Some(Status::Waiting))]);
    assert!(store.group(jobs[1].id).unwrap().is_none(), "a group is known by its first job's id");
    assert_eq!(store.dependents(id, None, 10).unwrap(), [jobs[2].id]);
    assert_eq!(store.dependents(id, Some(jobs[2].id), 10).unwrap(), []);
    run(&**store, jobs[0].id, completed(), t);
    run(&**store, jobs[1].id, Outcome::Failed { error: "x".into(), backtrace: None }, t);
    let state = store.group(id).unwrap().unwrap();
    assert_eq!(
        (state.members.get(&Status::Completed), state.members.get(&Status::Error)),
        (Some(&1), Some(&1))
    );
    assert_eq!(state.callbacks[0].2, Some(Status::Queued), "on_complete runs whatever the members did");
    run(&**store, jobs[2].id, completed(), t);
    store.remove(&Removal { id: Some(jobs[1].id), ..Removal::default() }).unwrap();
    assert_eq!(store.group(id).unwrap().unwrap().removed, 1);
    store.remove(&Removal { id: Some(id), ..Removal::default() }).unwrap();
    assert!(store.group(id).unwrap().is_none(), "gone with its first job");
}

fn limit(scope: Scope, concurrency: Option<u32>, per_key: Option<u32>, rate: Option<Rate>) -> Limit {
    Limit { scope, concurrency, per_key, rate }
}

fn a_concurrency_limit_passes_jobs_over_without_costing_attempts(store: &TestStore) {
    let t = now();
    let default = || Scope::Queue(DEFAULT_QUEUE.into());
    store.set_limit(limit(default(), Some(2), None, None)).unwrap();
    let ids: Vec<JobId> = (0..5).map(|n| add(&**store, new_job(n), t)).collect();
    let first = store.claim_batch(&ANY, t, LEASE, 10).unwrap();
    assert_eq!(first.iter().map(|c| c.job.id).collect::<Vec<_>>(), ids[..2], "two at once, in order");
    assert!(store.claim_batch(&ANY, t, LEASE, 10).unwrap().is_empty(), "the limit is full");
    let passed_over = store.get(ids[2]).unwrap().unwrap();
    assert_eq!((passed_over.status, passed_over.attempts), (Status::Queued, 0), "no attempt spent");
    finish(&**store, &first[0], completed(), t);
    let next = store.claim_batch(&ANY, t, LEASE, 10).unwrap();
    assert_eq!(next.iter().map(|c| c.job.id).collect::<Vec<_>>(), [ids[2]]);
    // Another queue is not limited; a limit changed at run time applies to the next claim.
    let other = add(&**store, NewJob { queue: "other".into(), ..new_job(9) }, t);
    assert_eq!(claim_one(&**store, t).job.id, other);
    store.set_limit(limit(default(), Some(4), None, None)).unwrap();
    assert_eq!(store.claim_batch(&ANY, t, LEASE, 10).unwrap().len(), 2);
    assert_eq!(store.limits().unwrap().len(), 1);
    assert!(store.remove_limit(&default()).unwrap());
    assert!(!store.remove_limit(&default()).unwrap());
    assert!(store.limits().unwrap().is_empty());
}

fn a_per_key_limit_counts_each_key_and_a_rate_spaces_starts(store: &TestStore) {
    let t = now();
    let keyed = |n, key: Option<&str>| NewJob { limit_key: key.map(str::to_owned), ..new_job(n) };
    store.set_limit(limit(Scope::Factory("echo".into()), None, Some(1), None)).unwrap();
    let a1 = add(&**store, keyed(1, Some("acme")), t);
    let a2 = add(&**store, keyed(2, Some("acme")), t);
    let b = add(&**store, keyed(3, Some("zenith")), t);
    let none = add(&**store, keyed(4, None), t);
    let claimed: Vec<JobId> =
        store.claim_batch(&ANY, t, LEASE, 10).unwrap().iter().map(|c| c.job.id).collect();
    assert_eq!(claimed, [a1, b, none], "acme's second waits for its first");
    assert_eq!(status(&**store, a2), Status::Queued);
    // A backlog of one key at its limit, deeper than a claim's candidates (512), hides
    // neither the other keys' jobs behind it nor those without a key.
    store.add_batch((0..600).map(|n| keyed(100 + n, Some("acme"))).collect(), t).unwrap();
    let c = add(&**store, keyed(5, Some("cobalt")), t);
    let plain = add(&**store, keyed(6, None), t);
    let claimed: Vec<JobId> =
        store.claim_batch(&ANY, t, LEASE, 10).unwrap().iter().map(|c| c.job.id).collect();
    assert_eq!(claimed, [c, plain], "behind acme's 601 waiting jobs");
    assert!(store.remove_limit(&Scope::Factory("echo".into())).unwrap());

    // Two starts a second: one every 500 ms, however many are ready and asked for.
    let queue = || Scope::Queue("paced".into());
    store.set_limit(limit(queue(), None, None, Some(Rate { starts: 2, per_ms: 1000 }))).unwrap();
    for n in 0..10 {
        add(&**store, NewJob { queue: "paced".into(), ..new_job(10 + n) }, t);
    }
    let paced = ClaimFilter { queue: Some("paced"), factory: None };
    let at = |ms: i64| store.claim_batch(&paced, t + ms * 1000, LEASE, 10).unwrap().len();
    assert_eq!(at(0), 1);
    assert_eq!(at(0), 0);
    assert_eq!(at(499), 0);
    assert_eq!(at(500), 1);
    assert_eq!(at(5_000), 1, "an idle spell saves up no burst");
    assert_eq!(at(5_000), 0);
    let state = store.limits().unwrap().into_iter().find(|l| l.limit.scope == queue()).unwrap();
    assert_eq!(state.next_start, t + 5_500_000, "the pace is kept in the store");
}

fn claimers_racing_under_a_limit_never_start_more_than_it_allows(store: &TestStore) {
    // Hosts claiming at once (threads here; on PostgreSQL each on a connection of its own):
    // the limit counts every claim's jobs, whoever made it.
    let t = now();
    store.set_limit(limit(Scope::Queue(DEFAULT_QUEUE.into()), Some(3), None, None)).unwrap();
    for n in 0..200 {
        add(&**store, new_job(n), t);
    }
    for round in 0..8 {
        let barrier = Barrier::new(8);
        let claimed: Vec<Claimed> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        (0..3).flat_map(|_| store.claim_batch(&ANY, t, LEASE, 4).unwrap()).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(claimed.len(), 3, "round {round}");
        assert_eq!(count(&**store, DEFAULT_QUEUE, Status::Processing), 3);
        for c in &claimed {
            finish(&**store, c, completed(), t);
        }
    }
}

fn a_finished_job_stays_while_a_job_that_depends_on_it_has_not_finished(store: &TestStore) {
    let t = now();
    let a = add(&**store, new_job(1), t);
    let b = add(&**store, new_job(2), t);
    let c = add(&**store, dependent(3, &[a, b]), t);
    run(&**store, a, completed(), t);
    // Retention and bulk removal pass over `a`: `c` reads its result when it runs.
    let removed =
        store.remove(&Removal { finished_before: Some(t + 10 * SEC), ..Removal::default() }).unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    assert!(store.remove(&Removal { id: Some(a), ..Removal::default() }).unwrap().is_empty());
    run(&**store, b, completed(), t);
    run(&**store, c, completed(), t);
    let removed = store.remove(&Removal::default()).unwrap();
    assert_eq!(removed.get(&Status::Completed), Some(&3), "once it finished, all go");
}

fn jobs_of_a_factory_are_counted_within_a_queue_and_up_to_a_cap(store: &TestStore) {
    let t = now();
    for (i, (factory, queue)) in
        [("a", "q1"), ("a", "q1"), ("a", "q2"), ("b", "q1"), ("a", "q2")].iter().enumerate()
    {
        let job =
            NewJob { factory: (*factory).into(), queue: (*queue).into(), hold: i == 4, ..new_job(i as u32) };
        add(&**store, job, t);
    }
    let count = |factory: &str, queue: Option<&str>, statuses: &[Status], cap| {
        store.count_of_factory(factory, queue, statuses, cap).unwrap()
    };
    assert_eq!(count("a", None, &[], 100), 4);
    assert_eq!(count("a", Some("q1"), &[], 100), 2);
    assert_eq!(count("a", Some("q2"), &[Status::Queued], 100), 1);
    assert_eq!(count("a", None, &[Status::Queued, Status::Held], 100), 4);
    assert_eq!(count("a", None, &[], 3), 3, "up to the cap");
    assert_eq!(count("b", Some("q2"), &[], 100), 0);
    assert_eq!(count("nobody", None, &[], 100), 0);
}

fn history_rows_add_up_across_hosts_and_are_kept_seven_days(store: &TestStore) {
    use jobhost::history::{History, Row, KEEP_MINUTES};
    let t = now();
    let minute = t.div_euclid(60 * SEC);
    let count = |queue: &str, status, ms, at| {
        let h = History::default();
        h.record(queue, status, Duration::from_millis(ms), Duration::from_millis(1), at);
        h.take()
    };
    assert!(store.history(minute - KEEP_MINUTES).unwrap().is_empty());
    // Two hosts (on the embedded store, two writes) add to the same minute and queue.
    let other = if store.schema().is_some() { store.another_host() } else { store.store.clone() };
    store.add_history(&count("mail", Status::Completed, 10, t), t).unwrap();
    other.add_history(&count("mail", Status::Error, 5_000, t), t).unwrap();
    store.add_history(&count("bulk", Status::Queued, 1, t - 60 * SEC), t).unwrap();
    let rows = other.history(minute - 1).unwrap();
    let keys: Vec<(i64, &str)> = rows.iter().map(|r| (r.minute, r.queue.as_str())).collect();
    assert_eq!(keys, [(minute - 1, "bulk"), (minute, "mail")]);
    let mail = &rows[1].counts;
    assert_eq!((mail.completed, mail.failed, mail.retried), (1, 1, 0));
    assert_eq!((mail.run.count(), mail.run.max), (2, 5_000_000));
    assert_eq!(mail.run.buckets.iter().filter(|&&c| c == 1).count(), 2, "{mail:?}");
    assert_eq!(store.history(minute).unwrap().len(), 1, "from a minute on");
    // A write 7 days and a minute later forgets both minutes, keeps its own.
    let later = t + (KEEP_MINUTES + 2) * 60 * SEC;
    store.add_history(&count("mail", Status::Completed, 1, later), later).unwrap();
    let kept: Vec<Row> = store.history(0).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].minute, later.div_euclid(60 * SEC));

    // A minute holds at most MAX_QUEUES_PER_MINUTE queues, whichever writes (and hosts) bring
    // them: the rest are counted under OTHER_QUEUES.
    use jobhost::history::{MAX_QUEUES_PER_MINUTE, OTHER_QUEUES};
    let many = MAX_QUEUES_PER_MINUTE + 7;
    for chunk in (0..many).collect::<Vec<_>>().chunks(100) {
        let h = History::default();
        for i in chunk {
            h.record(&format!("q{i:04}"), Status::Completed, Duration::ZERO, Duration::ZERO, later);
        }
        let writer = if chunk[0] % 200 == 0 { &other } else { &store.store };
        writer.add_history(&h.take(), later).unwrap();
    }
    let rows: Vec<Row> = store.history(later.div_euclid(60 * SEC)).unwrap();
    assert_eq!(rows.len(), MAX_QUEUES_PER_MINUTE + 1, "the bound, and the others' row");
    let others = rows.iter().find(|r| r.queue == OTHER_QUEUES).expect("the others' row");
    let total: u64 = rows.iter().map(|r| r.counts.completed).sum();
    assert_eq!((others.counts.completed, total), (8, many as u64 + 1), "nothing is lost");
}

fn a_queue_pause_is_kept_with_who_and_when_until_resumed(store: &TestStore) {
    let t = now();
    assert!(store.pauses().unwrap().is_empty());
    let pause = |queue: &str, by: &str, at| QueuePause { queue: queue.into(), by: by.into(), at };
    assert_eq!(store.pause(&pause("mail", "host-a", t)).unwrap(), pause("mail", "host-a", t));
    // Paused again (another host, later): the first record stands.
    assert_eq!(store.pause(&pause("mail", "host-b", t + SEC)).unwrap(), pause("mail", "host-a", t));
    store.pause(&pause("bulk", "host-b", t)).unwrap();
    // Seen by every host of the store.
    let other = if store.schema().is_some() { store.another_host() } else { store.store.clone() };
    let seen: Vec<String> = other.pauses().unwrap().into_iter().map(|p| p.queue).collect();
    assert_eq!(seen, ["bulk", "mail"]);
    // Claims pass a paused queue's jobs over, named or not, whichever host claims.
    let mail = add(&**store, NewJob { queue: "mail".into(), ..new_job(1) }, t);
    let mail_only = ClaimFilter { queue: Some("mail"), factory: None };
    assert!(other.claim(&mail_only, t, LEASE).unwrap().is_none());
    assert!(store.claim_batch(&ANY, t, LEASE, 10).unwrap().is_empty());
    assert_eq!(status(&**store, mail), Status::Queued);
    assert!(other.resume("mail").unwrap());
    assert!(!store.resume("mail").unwrap(), "resumed already");
    assert_eq!(store.pauses().unwrap(), [pause("bulk", "host-b", t)]);
    assert_eq!(claim_one(&**store, t).job.id, mail, "resumed: claimed");
}
