//! Scheduling in process, on a real store with the real plugins and an injected clock: delayed,
//! held and unique jobs, cron and delay schedules, racing scheduler loops, restarts.

use std::sync::Arc;
use std::time::Duration;

use jobhost::clock::{Clock, ManualClock, Micros};
use jobhost::job::{JobId, ScheduleId, Status};
use jobhost::service::{AddJob, ClaimFilter, Host, ListFilter, NewSchedule, SchedulePatch};
use jobhost_tests::{harness, job, manual_config, open, Harness};
use serde_json::json;

const ANY: ClaimFilter<'static> = ClaimFilter { queue: None, factory: None };
const MINUTE: Duration = Duration::from_secs(60);

/// 2026-11-22T00:00:00Z, a Sunday: whole minutes and hours line up with cron slots.
fn midnight() -> Micros {
    chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z").unwrap().timestamp_micros()
}

fn status(host: &Host, id: JobId) -> Status {
    host.get(id).unwrap().expect("job exists").status
}

fn all_jobs(host: &Host) -> Vec<jobhost::job::Job> {
    host.list(&ListFilter { limit: 100_000, ..Default::default() }).unwrap()
}

fn cron(expr: &str) -> NewSchedule {
    NewSchedule {
        factory: "echo".into(),
        input: Some(json!({"from": "schedule"}).to_string()),
        cron: Some(expr.into()),
        active: true,
        ..NewSchedule::default()
    }
}

fn setup() -> (Harness, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(midnight()));
    (harness(manual_config(1), clock.clone()), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_is_scheduled_until_its_time() {
    let (h, clock) = setup();
    let delayed = AddJob { run_at: Some(clock.now() + 10_000_000), ..job("echo", json!(1)) };
    let id = h.host.add(delayed).unwrap().job.id;
    assert_eq!(status(&h.host, id), Status::Scheduled);

    clock.advance(Duration::from_secs(9));
    assert!(h.host.process_next(ANY).await.unwrap().is_none(), "not due at t+9 s");
    h.host.run_due().unwrap();
    assert_eq!(status(&h.host, id), Status::Scheduled);

    clock.advance(Duration::from_secs(1));
    // The scheduler makes it `queued` even when no worker claims from its queue.
    h.host.run_due().unwrap();
    assert_eq!(status(&h.host, id), Status::Queued);
    let done = h.host.process_next(ANY).await.unwrap().unwrap();
    assert_eq!((done.id, done.status), (id, Status::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_job_runs_only_when_started() {
    let (h, clock) = setup();
    let id = h.host.add(AddJob { hold: true, ..job("echo", json!(1)) }).unwrap().job.id;
    assert_eq!(status(&h.host, id), Status::Held);
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(h.host.process_next(ANY).await.unwrap().is_none());
    assert_eq!(status(&h.host, id), Status::Held);

    assert_eq!(h.host.start(id).unwrap().status, Status::Queued);
    assert_eq!(h.host.process_next(ANY).await.unwrap().unwrap().status, Status::Completed);
    let again = h.host.start(id).unwrap_err().to_string();
    assert_eq!(again, format!("job {id} is completed; cannot start it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_returns_the_pending_job_until_it_finishes() {
    let (h, _clock) = setup();
    let keyed = |factory: &str| AddJob { unique_key: Some("invoice-42".into()), ..job(factory, json!(1)) };
    let first = h.host.add(keyed("echo")).unwrap();
    assert!(!first.existing);
    let again = h.host.add(keyed("echo")).unwrap();
    assert_eq!((again.existing, again.job.id), (true, first.job.id));
    // The key is per factory.
    let other = h.host.add(keyed("sleep")).unwrap();
    assert!(!other.existing && other.job.id != first.job.id);
    // Held and scheduled jobs hold their key too.
    h.host.cancel(other.job.id).unwrap();
    let held = h.host.add(AddJob { hold: true, ..keyed("sleep") }).unwrap();
    assert!(!held.existing);
    assert!(h.host.add(keyed("sleep")).unwrap().existing);

    let done =
        h.host.process_next(ClaimFilter { queue: None, factory: Some("echo") }).await.unwrap().unwrap();
    assert_eq!((done.id, done.status), (first.job.id, Status::Completed));
    let after = h.host.add(keyed("echo")).unwrap();
    assert!(!after.existing, "a finished job no longer holds its key");
    assert_eq!(after.job.id, JobId(held.job.id.0 + 1), "ids stay consecutive");
}

/// lovely.remotetask's "Creating Cron Jobs": minutes 10 and 13, then rescheduled to 11 and 13.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lovely_remotetask_cron_scenario_and_reschedule() {
    let (h, clock) = setup();
    let scheduler = h.host.clone();
    let schedule = scheduler.add_schedule(cron("10,13 * * * *")).unwrap();
    assert_eq!(schedule.next_run_at, Some(midnight() + 10 * 60_000_000));

    let at = |minutes: u64| {
        clock.set(midnight() + (minutes * 60_000_000) as i64);
        scheduler.run_due().unwrap().len()
    };
    assert_eq!(at(0), 0, "too early");
    assert_eq!(at(10), 1);
    assert_eq!(at(11), 0);
    assert_eq!(at(13), 1);

    let rescheduled = scheduler
        .update_schedule(
            schedule.id,
            SchedulePatch { cron: Some("11,13 * * * *".into()), ..Default::default() },
        )
        .unwrap();
    assert_eq!(rescheduled.next_run_at, Some(midnight() + 71 * 60_000_000), "next fire time moved to 01:11");
    assert_eq!(at(70), 0, "not at the old minute 10");
    assert_eq!(at(71), 1, "at the new minute 11");

    let shown = scheduler.get_schedule(schedule.id).unwrap();
    assert_eq!(shown.runs, 3);
    assert_eq!(shown.last_run_at, Some(midnight() + 71 * 60_000_000));
    let jobs = all_jobs(&h.host);
    assert_eq!(jobs.len(), 3);
    assert_eq!(shown.last_job_id, Some(jobs[2].id));
    assert!(jobs.iter().all(|j| j.schedule_id == Some(schedule.id) && j.input == r#"{"from":"schedule"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_schedule_makes_nothing_and_a_reactivated_one_resumes_from_now() {
    let (h, clock) = setup();
    let scheduler = h.host.clone();
    let id = scheduler.add_schedule(cron("0 * * * *")).unwrap().id;
    scheduler.update_schedule(id, SchedulePatch { active: Some(false), ..Default::default() }).unwrap();
    for hour in 1..=5 {
        clock.set(midnight() + hour * 3_600_000_000);
        assert!(scheduler.run_due().unwrap().is_empty());
    }
    clock.advance(MINUTE * 30); // 05:30
    let resumed =
        scheduler.update_schedule(id, SchedulePatch { active: Some(true), ..Default::default() }).unwrap();
    assert_eq!(resumed.next_run_at, Some(midnight() + 6 * 3_600_000_000), "from now, not the missed hours");
    assert!(all_jobs(&h.host).is_empty());
    // An inactive schedule added as such makes nothing either.
    let mut off = cron("* * * * *");
    off.active = false;
    scheduler.add_schedule(off).unwrap();
    clock.advance(MINUTE * 10);
    assert!(scheduler.run_due().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_item_fires_once() {
    let (h, clock) = setup();
    let scheduler = h.host.clone();
    let item = NewSchedule { cron: None, delay: Some(Duration::from_secs(10)), ..cron("") };
    let id = scheduler.add_schedule(item).unwrap().id;
    clock.advance(Duration::from_secs(9));
    assert!(scheduler.run_due().unwrap().is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(scheduler.run_due().unwrap().len(), 1);
    clock.advance(Duration::from_secs(3600));
    assert!(scheduler.run_due().unwrap().is_empty());
    let done = scheduler.get_schedule(id).unwrap();
    assert_eq!((done.runs, done.next_run_at), (1, None));
    assert_eq!(all_jobs(&h.host).len(), 1);
}

/// Two scheduler loops on one store, racing on every pass: each slot makes exactly one job.
#[test]
fn two_racing_scheduler_loops_make_exactly_one_job_per_slot() {
    let (h, clock) = setup();
    let a = h.host.clone();
    let b = h.host.clone();
    let race = |a: &Host, b: &Host| {
        std::thread::scope(|s| {
            let left = s.spawn(|| a.run_due().unwrap().len());
            let right = s.spawn(|| b.run_due().unwrap().len());
            left.join().unwrap() + right.join().unwrap()
        })
    };

    // 100 slots of one schedule, one a minute.
    let every_minute = a.add_schedule(cron("* * * * *")).unwrap().id;
    let mut made = 0;
    for _ in 0..100 {
        clock.advance(MINUTE);
        made += race(&a, &b);
    }
    assert_eq!(made, 100);
    assert_eq!(all_jobs(&h.host).len(), 100);
    assert_eq!(a.get_schedule(every_minute).unwrap().runs, 100);
    b.update_schedule(every_minute, SchedulePatch { active: Some(false), ..Default::default() }).unwrap();

    // 100 schedules due at the same moment.
    for _ in 0..100 {
        b.add_schedule(NewSchedule { cron: None, delay: Some(Duration::from_secs(1)), ..cron("") }).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(race(&a, &b), 100);
    let jobs = all_jobs(&h.host);
    assert_eq!(jobs.len(), 200);
    let mut by_schedule: Vec<ScheduleId> = jobs[100..].iter().map(|j| j.schedule_id.unwrap()).collect();
    by_schedule.dedup();
    assert_eq!(by_schedule.len(), 100, "one job per delay item");
}

#[test]
fn a_restart_mid_period_loses_no_slot_and_doubles_none() {
    let clock = Arc::new(ManualClock::new(midnight()));
    let h = harness(manual_config(1), clock.clone());
    let (store_dir, plugins) = (h.store_dir, h.plugins);
    let id = h.host.add_schedule(cron("*/5 * * * *")).unwrap().id;
    drop((h.host, h.store));

    let reopen = || open(store_dir.path(), plugins.path(), manual_config(1), clock.clone());
    let fires = |minute: u64| {
        clock.set(midnight() + (minute * 60_000_000) as i64);
        let (host, store) = reopen();
        let made = host.run_due().unwrap().len();
        drop((host, store));
        made
    };
    assert_eq!(fires(5), 1);
    assert_eq!(fires(7), 0, "restarted inside the period: nothing new");
    assert_eq!(fires(7), 0, "and again");
    assert_eq!(fires(10), 1);
    // Down from 00:11 to 00:33: slots 15, 20, 25 and 30 were missed; by the default policy
    // they make one job, and the next slot is in the future.
    assert_eq!(fires(33), 1);
    let (host, store) = reopen();
    let schedule = host.get_schedule(id).unwrap();
    assert_eq!(schedule.next_run_at, Some(midnight() + 35 * 60_000_000));
    assert_eq!(all_jobs(&host).len(), 3);
    drop((host, store));
}

#[test]
fn schedule_input_is_checked_like_a_job_and_cron_errors_name_the_field() {
    let (h, _clock) = setup();
    let scheduler = h.host.clone();
    let err = |s: NewSchedule| scheduler.add_schedule(s).unwrap_err().to_string();
    assert!(
        err(cron("* * 32 * *")).contains("invalid cron: field 3 (day of month) `32`"),
        "{}",
        err(cron("* * 32 * *"))
    );
    assert!(err(NewSchedule { timezone: Some("Mars/Base".into()), ..cron("* * * * *") })
        .contains("unknown time zone `Mars/Base`"));
    assert!(
        err(NewSchedule { factory: "nope".into(), ..cron("* * * * *") }).contains("known factories: echo")
    );
    assert!(err(cron("0 0 30 2 *")).contains("never matches"));
    assert!(err(NewSchedule { cron: None, ..cron("") }).contains("needs cron or delay_seconds"));
    assert!(scheduler.list_schedules().unwrap().is_empty(), "nothing stored");
}
