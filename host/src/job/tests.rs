//! The state machine against its table of transitions.

use super::*;

fn job(status: Status) -> Job {
    let new =
        NewJob { factory: "echo".into(), queue: DEFAULT_QUEUE.into(), max_attempts: 2, ..NewJob::default() };
    Job { status, ..Job::new(JobId(1), new, 0) }
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
        if from == Status::Processing {
            let outcomes = [
                Outcome::Completed { result: "1".into() },
                Outcome::Retry { error: "again".into(), retry_at: 50 },
                Outcome::Failed { error: "no".into() },
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
