//! The stored byte format, pinned: a job record, schedules of both triggers, the claims
//! journal's records and the index keys, as this build writes them. Reordering a field of
//! `Job` or a variant of `Status` would still pass every other test and make every existing
//! store unreadable; here it fails. A format change must be deliberate: a new
//! `codec::FORMAT_VERSION`, an upgrade of the old records as they are read (as `decode_job`
//! does for format 1), and new golden bytes beside the old ones (which must still decode).

use super::claim_journal;
use super::codec;
use super::keys;
use crate::ids::{AttemptToken, JobId, ScheduleId};
use crate::job::{Callback, Deps, Job, Lease, Membership, Progress, Status};
use crate::schedule::{MissedPolicy, Schedule, Trigger};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A job with every field set (and every optional one present).
fn job() -> Job {
    Job {
        id: JobId(258),
        factory: "echo".into(),
        queue: "default".into(),
        priority: -2,
        input: r#"{"a":1}"#.into(),
        status: Status::Processing,
        result: Some("2".into()),
        errors: vec!["[2026-12-03T00:00:00.000000+00:00] boom".into()],
        attempts: 2,
        max_attempts: 3,
        timeout_ms: Some(1500),
        created_at: 1_764_720_000_000_000,
        started_at: Some(1_764_720_000_000_001),
        finished_at: Some(1_764_720_000_000_002),
        run_at: 1_764_720_000_000_003,
        progress: Some(Progress { fraction: 0.5, message: "half".into() }),
        lease: Some(Lease { token: AttemptToken(7), expires_at: 1_764_720_000_000_004 }),
        cancel_requested: true,
        unique_key: Some("k".into()),
        schedule_id: Some(ScheduleId(9)),
        deps: None,
        group: None,
        limit_key: None,
        backtrace: None,
        parents: Vec::new(),
    }
}

/// A dependent with every field of its dependencies set.
fn dependent() -> Job {
    Job {
        status: Status::Cancelled,
        deps: Some(Deps { total: 2, left: 1, failed: 1, blocked_by: Some(JobId(5)) }),
        group: Some(Membership { group: JobId(5), callback: Some(Callback::OnSuccess) }),
        limit_key: Some("acme".into()),
        ..job()
    }
}

const JOB_V2: &str = "02fb0201046563686f0764656661756c7403077b2261223a317d0301013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b0109";

const JOB_V3: &str = "03fb0201046563686f0764656661756c7403077b2261223a317d0301013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b0109000000";
const DEPENDENT_V3: &str = "03fb0201046563686f0764656661756c7403077b2261223a317d0601013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b010901020101010501050101010461636d65";

const JOB_V4: &str = "04fb0201046563686f0764656661756c7403077b2261223a317d0301013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b010900000000";
const DEPENDENT_V4: &str = "04fb0201046563686f0764656661756c7403077b2261223a317d0601013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b010901020101010501050101010461636d6500";
/// A job that panicked: its backtrace, the one field format 4 added.
const PANICKED_V4: &str = "04fb0201046563686f0764656661756c7403077b2261223a317d0301013201275b323032362d31322d30335430303a30303a30302e3030303030302b30303a30305d20626f6f6d020301fbdc05fd00c074c9018a0c0001fd02c074c9018a0c0001fd04c074c9018a0c00fd06c074c9018a0c0001000000000000e03f0468616c660107fd08c074c9018a0c000101016b0109000000013d5b323032362d31322d30355430303a30303a30302e3030303030302b30303a30305d2070616e69636b6564206174207372632f6c69622e72733a313a31";
const BACKTRACE: &str = "[2026-12-05T00:00:00.000000+00:00] panicked at src/lib.rs:1:1";

#[test]
fn a_job_record_keeps_its_bytes() {
    let bytes = codec::encode(&job());
    assert_eq!(hex(&bytes), JOB_V4, "the job record format changed: see this file's header");
    assert_eq!(codec::decode_job(&unhex(JOB_V4)).unwrap(), job());
    let bytes = codec::encode(&dependent());
    assert_eq!(hex(&bytes), DEPENDENT_V4, "the job record format changed: see this file's header");
    assert_eq!(codec::decode_job(&unhex(DEPENDENT_V4)).unwrap(), dependent());
    let panicked = Job { backtrace: Some(BACKTRACE.into()), ..job() };
    assert_eq!(hex(&codec::encode(&panicked)), PANICKED_V4, "the job record format changed");
    assert_eq!(codec::decode_job(&unhex(PANICKED_V4)).unwrap(), panicked);
    // Format 3 (before backtraces) still reads, as a job that never panicked.
    assert_eq!(codec::decode_job(&unhex(JOB_V3)).unwrap(), job());
    assert_eq!(codec::decode_job(&unhex(DEPENDENT_V3)).unwrap(), dependent());
    // Format 2 (before dependencies) still reads, as a job without any.
    assert_eq!(codec::decode_job(&unhex(JOB_V2)).unwrap(), job());
}

#[test]
fn every_status_keeps_its_tag() {
    // bincode writes an enum variant as its index: the order of `Status` is stored.
    let tags: Vec<(Status, u8)> = [
        Status::Queued,
        Status::Scheduled,
        Status::Held,
        Status::Processing,
        Status::Completed,
        Status::Error,
        Status::Cancelled,
        Status::Waiting,
    ]
    .into_iter()
    .map(|status| (status, codec::encode(&status)[1]))
    .collect();
    let expected: Vec<(Status, u8)> = vec![
        (Status::Queued, 0),
        (Status::Scheduled, 1),
        (Status::Held, 2),
        (Status::Processing, 3),
        (Status::Completed, 4),
        (Status::Error, 5),
        (Status::Cancelled, 6),
        (Status::Waiting, 7),
    ];
    assert_eq!(tags, expected);
}

fn schedules() -> [Schedule; 2] {
    let cron = Schedule {
        id: ScheduleId(3),
        factory: "echo".into(),
        input: "null".into(),
        queue: "default".into(),
        priority: 1,
        max_attempts: Some(4),
        timeout_ms: Some(60_000),
        trigger: Trigger::Cron { expr: "*/5 * * * *".into(), timezone: Some("Europe/Paris".into()) },
        active: true,
        missed: MissedPolicy::Skip,
        next_run_at: Some(1_764_720_300_000_000),
        last_run_at: Some(1_764_720_000_000_000),
        last_job_id: Some(JobId(41)),
        last_error: Some("factory gone".into()),
        runs: 12,
        created_at: 1_764_000_000_000_000,
        updated_at: 1_764_000_000_000_001,
    };
    let delay = Schedule {
        id: ScheduleId(4),
        trigger: Trigger::Delay { delay_ms: 2_000 },
        active: false,
        missed: MissedPolicy::RunOnce,
        max_attempts: None,
        timeout_ms: None,
        next_run_at: None,
        last_run_at: None,
        last_job_id: None,
        last_error: None,
        runs: 0,
        ..cron.clone()
    };
    [cron, delay]
}

const SCHEDULES_V2: [&str; 2] = [
    "0203046563686f046e756c6c0764656661756c7402010401fb60ea000b2a2f35202a202a202a202a010c4575726f70652f5061726973010101fd000638ed018a0c0001fd00c074c9018a0c000129010c666163746f727920676f6e650cfd0080c482b2880c00fd0280c482b2880c00",
    "0204046563686f046e756c6c0764656661756c7402000001fbd00700000000000000fd0080c482b2880c00fd0280c482b2880c00",
];

#[test]
fn schedule_records_keep_their_bytes() {
    for (schedule, golden) in schedules().iter().zip(SCHEDULES_V2) {
        // Formats 3 and 4 changed job records only: a schedule's bytes are format 2's under
        // the new version byte, and those of formats 2 and 3 still read.
        let v3 = format!("03{}", &golden[2..]);
        let v4 = format!("04{}", &golden[2..]);
        assert_eq!(hex(&codec::encode(schedule)), v4, "the schedule format changed: see this file's header");
        assert_eq!(&codec::decode::<Schedule>(&unhex(&v4)).unwrap(), schedule);
        assert_eq!(&codec::decode::<Schedule>(&unhex(&v3)).unwrap(), schedule);
        assert_eq!(&codec::decode::<Schedule>(&unhex(golden)).unwrap(), schedule);
    }
}

#[test]
fn claims_journal_records_keep_their_bytes() {
    // id 258, attempts 3: u64 LE, u32 LE, CRC-32 of those 12 bytes LE.
    const RECORD: &str = "020100000000000003000000de28d544";
    assert_eq!(hex(&claim_journal::golden_record(JobId(258), 3)), RECORD);
}

#[test]
fn index_keys_keep_their_bytes() {
    assert_eq!(hex(&keys::id_key(258u64)), "0000000000000102");
    assert_eq!(
        hex(&keys::ready_key("q", -2, 1_764_720_000_000_000, JobId(258))),
        "0001718000000180064500e4ba60000000000000000102"
    );
    assert_eq!(hex(&keys::time_key(1_764_720_000_000_000, 258u64)), "80064500e4ba60000000000000000102");
    assert_eq!(hex(&keys::unique_key("echo", "k")), "6563686f006b");
}
