//! The one record codec: bincode 2 (serde, standard config) behind a leading format-version
//! byte. Switching encodings later (postcard, wincode) is a change to this file only.
//!
//! Records of older formats stay readable: [`decode_job`] upgrades them as it reads (writes are
//! always the current format), so a store never needs a migration pass.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::clock::Micros;
use crate::job::{Job, JobId, Lease, Progress, Status};

/// The record format this build writes.
pub const FORMAT_VERSION: u8 = 4;
/// The format before panic backtraces: job records without `backtrace`; other records as today.
const FORMAT_3: u8 = 3;
/// The format before dependencies: job records without `deps`; other records as today.
const FORMAT_2: u8 = 2;
/// The oldest format this build still reads.
pub const OLDEST_READABLE: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the record is empty")]
    Empty,
    #[error("the record has format version {0}, newer than this build understands ({FORMAT_VERSION}); upgrade jobhost")]
    Newer(u8),
    #[error("the record has unknown format version {0}")]
    Unknown(u8),
    #[error("the record does not decode: {0}")]
    Corrupt(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Encoding our own plain structs into a Vec cannot fail: no I/O, no unsupported types.
    bincode::serde::encode_into_std_write(value, &mut out, config()).expect("records encode");
    out
}

/// A record of the current format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        // Formats 3 and 4 changed job records only: every other record of format 2 or 3
        // reads as is.
        FORMAT_VERSION | FORMAT_3 | FORMAT_2 => decode_body(body),
        v if v > FORMAT_VERSION => Err(CodecError::Newer(v)),
        v => Err(CodecError::Unknown(v)),
    }
}

/// A job record of any readable format.
pub fn decode_job(bytes: &[u8]) -> Result<Job, CodecError> {
    match bytes.first() {
        Some(1) => decode_body::<JobV1>(&bytes[1..]).map(Job::from),
        Some(&FORMAT_2) => decode_body::<JobV2>(&bytes[1..]).map(Job::from),
        Some(&FORMAT_3) => decode_body::<JobV3>(&bytes[1..]).map(Job::from),
        _ => decode(bytes),
    }
}

/// The fields every job record format (1 to 4) starts with, borrowed from its bytes: what
/// opening a store needs of each job, read without allocating its input, result or errors.
#[derive(Debug, Deserialize, PartialEq)]
pub struct JobHead<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub factory: &'a str,
    #[serde(borrow)]
    pub queue: &'a str,
    pub priority: i32,
    #[serde(borrow)]
    pub input: &'a str,
    pub status: Status,
}

/// A job record's [`JobHead`]; the rest of the record is not read (a record damaged past its
/// head is found when it is read whole).
pub fn decode_job_head(bytes: &[u8]) -> Result<JobHead<'_>, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        v if v > FORMAT_VERSION => Err(CodecError::Newer(v)),
        v if v < OLDEST_READABLE => Err(CodecError::Unknown(v)),
        _ => bincode::serde::borrow_decode_from_slice(body, config())
            .map(|(head, _)| head)
            .map_err(|e| CodecError::Corrupt(e.to_string())),
    }
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Corrupt(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

/// A job as format 1 stored it (before unique keys and schedules).
#[derive(Deserialize)]
struct JobV1 {
    id: u64,
    factory: String,
    queue: String,
    priority: i32,
    input: String,
    status: Status,
    result: Option<String>,
    errors: Vec<String>,
    attempts: u32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    created_at: Micros,
    started_at: Option<Micros>,
    finished_at: Option<Micros>,
    run_at: Micros,
    progress: Option<Progress>,
    lease: Option<Lease>,
    cancel_requested: bool,
}

/// A job as format 3 stored it (before panic backtraces): format 4's fields but `backtrace`.
#[derive(Deserialize)]
struct JobV3 {
    id: JobId,
    factory: String,
    queue: String,
    priority: i32,
    input: String,
    status: Status,
    result: Option<String>,
    errors: Vec<String>,
    attempts: u32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    created_at: Micros,
    started_at: Option<Micros>,
    finished_at: Option<Micros>,
    run_at: Micros,
    progress: Option<Progress>,
    lease: Option<Lease>,
    cancel_requested: bool,
    unique_key: Option<String>,
    schedule_id: Option<crate::ids::ScheduleId>,
    deps: Option<crate::job::Deps>,
    group: Option<crate::job::Membership>,
    limit_key: Option<String>,
}

impl From<JobV3> for Job {
    fn from(v: JobV3) -> Job {
        Job {
            id: v.id,
            factory: v.factory,
            queue: v.queue,
            priority: v.priority,
            input: v.input,
            status: v.status,
            result: v.result,
            errors: v.errors,
            attempts: v.attempts,
            max_attempts: v.max_attempts,
            timeout_ms: v.timeout_ms,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            run_at: v.run_at,
            progress: v.progress,
            lease: v.lease,
            cancel_requested: v.cancel_requested,
            unique_key: v.unique_key,
            schedule_id: v.schedule_id,
            deps: v.deps,
            group: v.group,
            limit_key: v.limit_key,
            backtrace: None,
            parents: Vec::new(),
        }
    }
}

/// A job as format 2 stored it (before dependencies): format 3's fields but `deps`.
#[derive(Deserialize)]
struct JobV2 {
    id: JobId,
    factory: String,
    queue: String,
    priority: i32,
    input: String,
    status: Status,
    result: Option<String>,
    errors: Vec<String>,
    attempts: u32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    created_at: Micros,
    started_at: Option<Micros>,
    finished_at: Option<Micros>,
    run_at: Micros,
    progress: Option<Progress>,
    lease: Option<Lease>,
    cancel_requested: bool,
    unique_key: Option<String>,
    schedule_id: Option<crate::ids::ScheduleId>,
}

impl From<JobV2> for Job {
    fn from(v: JobV2) -> Job {
        Job {
            id: v.id,
            factory: v.factory,
            queue: v.queue,
            priority: v.priority,
            input: v.input,
            status: v.status,
            result: v.result,
            errors: v.errors,
            attempts: v.attempts,
            max_attempts: v.max_attempts,
            timeout_ms: v.timeout_ms,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            run_at: v.run_at,
            progress: v.progress,
            lease: v.lease,
            cancel_requested: v.cancel_requested,
            unique_key: v.unique_key,
            schedule_id: v.schedule_id,
            deps: None,
            group: None,
            limit_key: None,
            backtrace: None,
            parents: Vec::new(),
        }
    }
}

impl From<JobV1> for Job {
    fn from(v: JobV1) -> Job {
        Job {
            id: JobId(v.id),
            factory: v.factory,
            queue: v.queue,
            priority: v.priority,
            input: v.input,
            status: v.status,
            result: v.result,
            errors: v.errors,
            attempts: v.attempts,
            max_attempts: v.max_attempts,
            timeout_ms: v.timeout_ms,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            run_at: v.run_at,
            progress: v.progress,
            lease: v.lease,
            cancel_requested: v.cancel_requested,
            unique_key: None,
            schedule_id: None,
            deps: None,
            group: None,
            limit_key: None,
            backtrace: None,
            parents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let value = (7u64, "x".to_owned(), Some(-3i64));
        let bytes = encode(&value);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Option<i64>)>(&bytes), Ok(value));

        assert_eq!(decode::<u64>(&[]), Err(CodecError::Empty));
        assert_eq!(decode::<u64>(&[FORMAT_VERSION + 1, 0]), Err(CodecError::Newer(FORMAT_VERSION + 1)));
        assert_eq!(decode::<u64>(&[0, 0]), Err(CodecError::Unknown(0)));
        assert_eq!(decode::<u64>(&[1, 0]), Err(CodecError::Unknown(1)), "only jobs have format 1");
        assert_eq!(decode::<u64>(&[2, 5]), Ok(5), "format 2 changed nothing but jobs");
        assert_eq!(decode::<u64>(&[3, 5]), Ok(5), "format 3 changed nothing but jobs");
        assert!(matches!(decode::<String>(&[FORMAT_VERSION, 200]), Err(CodecError::Corrupt(_))));
        let mut trailing = encode(&1u8);
        trailing.push(9);
        assert!(matches!(decode::<u8>(&trailing), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn a_job_head_reads_the_same_from_every_format() {
        let job = Job::new(
            JobId(9),
            crate::job::NewJob { input: "{\"a\":1}".into(), queue: "q".into(), ..Default::default() },
            5,
        );
        let bytes = encode(&job);
        let head = decode_job_head(&bytes).unwrap();
        assert_eq!(
            (head.id, head.factory, head.queue, head.input, head.status),
            (9, "", "q", "{\"a\":1}", Status::Queued)
        );
        let v1 = (
            (7u64, "echo".to_owned(), "default".to_owned(), 0i32, "{}".to_owned(), Status::Completed),
            (Some("{}".to_owned()), Vec::<String>::new(), 1u32, 3u32, None::<u64>, 10i64),
            (Some(11i64), Some(12i64), 10i64, None::<Progress>, None::<Lease>, false),
        );
        let mut bytes = vec![1u8];
        bincode::serde::encode_into_std_write(&v1, &mut bytes, config()).unwrap();
        let head = decode_job_head(&bytes).unwrap();
        assert_eq!((head.id, head.factory, head.status), (7, "echo", Status::Completed));
        assert_eq!(decode_job_head(&[FORMAT_VERSION + 1, 0]), Err(CodecError::Newer(FORMAT_VERSION + 1)));
        assert!(matches!(decode_job_head(&[FORMAT_VERSION, 200]), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn format_1_jobs_are_upgraded_on_read() {
        // A format-1 record: the fields of `JobV1` in order, as the previous build wrote them.
        let v1 = (
            (7u64, "echo".to_owned(), "default".to_owned(), 0i32, "{}".to_owned(), Status::Completed),
            (Some("{}".to_owned()), Vec::<String>::new(), 1u32, 3u32, None::<u64>, 10i64),
            (Some(11i64), Some(12i64), 10i64, None::<Progress>, None::<Lease>, false),
        );
        let mut bytes = vec![1u8];
        bincode::serde::encode_into_std_write(&v1, &mut bytes, config()).unwrap();
        let job = decode_job(&bytes).unwrap();
        assert_eq!(
            (job.id, job.status, job.finished_at, job.unique_key.clone()),
            (JobId(7), Status::Completed, Some(12), None)
        );
        // Written back, it is the current format and reads the same.
        assert_eq!(decode_job(&encode(&job)).unwrap(), job);
    }
}
