//! The state machine against its table of transitions.

use super::*;

fn job(status: Status) -> Job {
    let new =
        NewJob { factory: "echo".into(), queue: DEFAULT_QUEUE.into(), max_attempts: 2, ..NewJob::default() };
    Job { status, ..Job::new(JobId(1), new, 0) }
}

/// A `cancel` edge from `id`.
fn edge(id: JobId) -> Parent {
    Parent { id, on_failure: OnFailure::Cancel }
}

/// A new job waiting for `parents` (each with a `cancel` edge).
fn dependent(parents: &[JobId]) -> Job {
    let depends_on =
        parents.iter().map(|&id| NewParent { upon: Upon::Job(id), on_failure: OnFailure::Cancel }).collect();
    let new = NewJob {
        factory: "echo".into(),
        queue: DEFAULT_QUEUE.into(),
        max_attempts: 2,
        depends_on,
        ..NewJob::default()
    };
    Job::new(JobId(10), new, 0)
}

/// A dependent's counters follow its parents in any order, and its status follows them.
#[test]
fn a_dependent_follows_its_parents_counters_and_all() {
    let (a, b) = (JobId(1), JobId(2));
    let mut j = dependent(&[a, b]);
    assert_eq!(j.status, Status::Waiting);
    j.admit_parents(&[(a, Status::Queued), (b, Status::Processing)], 1);
    let counters = |j: &Job| j.deps.as_ref().map(|d| (d.left, d.failed, d.blocked_by));
    assert_eq!((j.status, counters(&j)), (Status::Waiting, Some((2, 0, None))));
    // A move within a standing changes nothing; a parent not its own changes nothing.
    assert!(!j.parent_moved(edge(a), Standing::Pending, Standing::Pending, Status::Processing, 2));
    assert!(!j.parent_moved(edge(a), Standing::Pending, Standing::Completed, Status::Completed, 2));
    assert_eq!(counters(&j), Some((1, 0, None)));
    // b fails: cancelled, naming it.
    assert!(j.parent_moved(edge(b), Standing::Pending, Standing::Failed, Status::Error, 3));
    assert_eq!((j.status, counters(&j)), (Status::Cancelled, Some((0, 1, Some(b)))));
    assert_eq!(
        j.errors.last().map(String::as_str).map(|e| e.ends_with("it depends on job 2, which ended error")),
        Some(true)
    );
    // b retried: waiting again, for b.
    assert!(j.parent_moved(edge(b), Standing::Failed, Standing::Pending, Status::Queued, 4));
    assert_eq!((j.status, counters(&j), j.finished_at), (Status::Waiting, Some((1, 0, None)), None));
    assert!(j.parent_moved(edge(b), Standing::Pending, Standing::Completed, Status::Completed, 5));
    assert_eq!((j.status, j.run_at), (Status::Queued, 5), "released now: its place in line is now");
    // Cancelled by hand, it is not revived by a parent's retry.
    let mut j = dependent(&[a]);
    j.admit_parents(&[(a, Status::Queued)], 1);
    j.cancel(2).unwrap();
    assert!(!j.parent_moved(edge(a), Standing::Pending, Standing::Failed, Status::Error, 3));
    assert!(!j.parent_moved(edge(a), Standing::Failed, Standing::Pending, Status::Queued, 4));
    assert_eq!(j.status, Status::Cancelled);
    // A `run` edge: a failed parent releases it like a completed one.
    let mut j = Job { parents: vec![Parent { id: a, on_failure: OnFailure::Run }], ..dependent(&[a]) };
    j.admit_parents(&[(a, Status::Cancelled)], 1);
    assert_eq!(j.status, Status::Queued);
}

fn lease() -> Lease {
    Lease { token: AttemptToken(9), expires_at: 100 }
}

/// Every transition method, from every status it accepts, lands on a listed transition
/// (`become_` asserts it) and sets what its new status implies.
#[test]
fn every_transition_is_listed_and_sets_what_its_status_implies() {
    let mut seen = Vec::new();
    for from in Status::ALL {
        let mut record = |j: &Job| seen.push((from, j.status));
        let mut j = job(from);
        if j.start(5).is_ok() {
            assert_eq!((j.status, j.run_at), (Status::Queued, 5));
            record(&j);
        }
        let mut j = job(from);
        if j.promote() {
            record(&j);
        }
        let mut j = job(from);
        if let Ok(effect) = j.cancel(5) {
            match effect {
                CancelEffect::Now => {
                    assert_eq!((j.status, j.finished_at), (Status::Cancelled, Some(5)));
                    record(&j);
                }
                // Not a change of status: the attempt's end decides.
                CancelEffect::Requested => assert!(j.cancel_requested && j.status == Status::Processing),
            }
        }
        let mut j = Job { attempts: 2, errors: vec!["x".into()], ..job(from) };
        if j.retry(Some(4), 5).is_ok() {
            assert_eq!((j.status, j.attempts, j.max_attempts, j.finished_at), (Status::Queued, 0, 4, None));
            assert_eq!(j.errors.len(), 1, "the history is kept");
            record(&j);
        }
        if from == Status::Queued {
            let mut j = job(from);
            j.claim(lease(), 5);
            assert_eq!(
                (j.status, j.attempts, j.started_at, j.lease),
                (Status::Processing, 1, Some(5), Some(lease()))
            );
            record(&j);
            for attempts in [1, 2] {
                let mut j = job(from);
                j.count_lost_claim(attempts, "lost", 5);
                record(&j);
            }
        }
        if from == Status::Waiting {
            let parent = JobId(7);
            for (parent_status, run_at, to) in [
                (Status::Completed, 0, Status::Queued),
                (Status::Completed, 50, Status::Scheduled),
                (Status::Error, 0, Status::Cancelled),
            ] {
                let mut j = Job { run_at, ..dependent(&[parent]) };
                j.admit_parents(&[(parent, parent_status)], 5);
                assert_eq!(j.status, to);
                assert_eq!(j.finished_at.is_some(), to.is_finished());
                record(&j);
            }
        }
        if from == Status::Cancelled {
            // Cancelled for a failed parent, which was retried: waiting again.
            let parent = JobId(7);
            let mut j = dependent(&[parent]);
            j.admit_parents(&[(parent, Status::Error)], 5);
            assert!(j.parent_moved(edge(parent), Standing::Failed, Standing::Pending, Status::Queued, 6));
            assert_eq!((j.status, j.finished_at), (Status::Waiting, None));
            record(&j);
        }
        if from == Status::Processing {
            let outcomes = [
                Outcome::Completed { result: "1".into() },
                Outcome::Retry { error: "again".into(), retry_at: 50, backtrace: None },
                Outcome::Failed { error: "no".into(), backtrace: None },
            ];
            for outcome in &outcomes {
                let mut j = Job { attempts: 1, lease: Some(lease()), ..job(from) };
                j.end_attempt(outcome, 5);
                assert!(j.lease.is_none());
                assert_eq!(j.finished_at.is_some(), j.status.is_finished(), "{j:?}");
                record(&j);
            }
            for attempts in [1, 2] {
                let mut j = Job { attempts, lease: Some(lease()), ..job(from) };
                j.lose_worker("gone", 5);
                assert_eq!(j.status, if attempts == 2 { Status::Error } else { Status::Queued });
                record(&j);
            }
            let mut j = Job { attempts: 1, lease: Some(lease()), ..job(from) };
            j.release(5);
            assert_eq!((j.status, j.attempts), (Status::Queued, 0), "a released attempt does not count");
            record(&j);
            let mut j = Job { cancel_requested: true, ..job(from) };
            j.end_attempt(&Outcome::Completed { result: "1".into() }, 5);
            assert_eq!(j.status, Status::Cancelled, "a requested cancel wins over the outcome");
            record(&j);
        }
    }
    // And every listed transition is made by some method.
    for pair in TRANSITIONS {
        assert!(seen.contains(pair), "no method makes {pair:?}");
    }
    for pair in &seen {
        assert!(pair.0.may_become(pair.1), "{pair:?} is not listed");
    }
}

#[test]
fn refused_transitions_name_the_job_its_status_and_the_action() {
    let mut done = job(Status::Completed);
    assert_eq!(done.cancel(1).unwrap_err().to_string(), "job 1 is completed; cannot cancel it");
    assert_eq!(done.retry(None, 1).unwrap_err().to_string(), "job 1 is completed; cannot retry it");
    assert_eq!(job(Status::Queued).start(1).unwrap_err().to_string(), "job 1 is queued; cannot start it");
}
