//! Index key encodings. Every key is built so that sled's byte order is the order we scan in:
//! big-endian integers, the sign bit flipped for signed ones, the queue name length-prefixed.

use crate::clock::Micros;
use crate::job::{JobId, OnFailure, ScheduleId};

/// The key of a record by id (jobs and schedules alike), and the value of id-valued entries.
pub fn id_key(id: impl Into<u64>) -> [u8; 8] {
    id.into().to_be_bytes()
}

pub fn id_from(bytes: &[u8]) -> Option<JobId> {
    Some(JobId(u64::from_be_bytes(bytes.try_into().ok()?)))
}

pub fn schedule_id_from(bytes: &[u8]) -> Option<ScheduleId> {
    id_from(bytes).map(|id| ScheduleId(id.0))
}

// Keys of the `meta` tree.

pub const META_FORMAT: &[u8] = b"format_version";
/// The highest job id ever deleted, so that deleting the newest jobs never lets their ids be
/// issued again after a restart (the others are found in the `jobs` tree).
pub const META_ID_HIGH_WATER: &[u8] = b"id_high_water";
/// The last schedule id issued (schedules are few: the counter lives in the store).
pub const META_SCHEDULE_ID: &[u8] = b"schedule_last_id";
/// The latest `finished` index key ever taken out of the index (a removal or a retry), so the
/// latest finish the store has seen never goes back (see `state_file`).
pub const META_FINISHED_HIGH_WATER: &[u8] = b"finished_high_water";
/// Present once the `finished` index covers every finished job (stores older than it get it
/// built at open).
pub const META_FINISHED_INDEX: &[u8] = b"finished_index";

/// A paused queue's record (`QueuePause`) is under this prefix and the queue's name.
pub const META_PAUSE_PREFIX: &[u8] = b"pause/";

pub fn pause_key(queue: &str) -> Vec<u8> {
    [META_PAUSE_PREFIX, queue.as_bytes()].concat()
}

/// A history row's key in the `history` tree: its minute (in order) and queue.
pub fn history_key(minute: i64, queue: &str) -> Vec<u8> {
    [&ordered_i64(minute)[..], queue.as_bytes()].concat()
}

/// The minute and queue of a `history` key; `None` for a damaged key.
pub fn history_of_key(key: &[u8]) -> Option<(i64, String)> {
    let (minute, queue) = key.split_first_chunk::<8>()?;
    let minute = (u64::from_be_bytes(*minute) ^ (1 << 63)) as i64;
    Some((minute, String::from_utf8(queue.to_vec()).ok()?))
}

/// Signed → unsigned preserving order.
fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered_i64(bytes: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(bytes.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// The prefix of every ready key of one queue.
pub fn queue_prefix(queue: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + queue.len() + 24);
    // Queue names are at most 64 bytes (validated on add), so the length fits in u16.
    key.extend_from_slice(&(queue.len() as u16).to_be_bytes());
    key.extend_from_slice(queue.as_bytes());
    key
}

/// Ready index: (queue, priority descending, ready time, id). The first key under a queue's
/// prefix is the job to run next: highest priority, then earliest, then first submitted.
pub fn ready_key(queue: &str, priority: i32, ready_at: Micros, id: JobId) -> Vec<u8> {
    let mut key = queue_prefix(queue);
    // Descending priority: the highest sorts first.
    key.extend_from_slice(&(!((priority as u32) ^ (1 << 31))).to_be_bytes());
    key.extend_from_slice(&ordered_i64(ready_at));
    key.extend_from_slice(&id_key(id));
    key
}

/// The queue name and job id of a ready key.
pub fn parse_ready_key(key: &[u8]) -> Option<(&str, JobId)> {
    let len = u16::from_be_bytes(key.get(..2)?.try_into().ok()?) as usize;
    let queue = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let id = id_from(key.get(key.len().checked_sub(8)?..)?)?;
    Some((queue, id))
}

/// A ready entry's value: the job's factory, then NUL and its limit key if it has one (neither
/// holds a NUL), so that a claim under per-key limits passes over the jobs of a key at its
/// limit in the index alone. Entries written before keys were kept hold the factory alone.
pub fn ready_value(factory: &str, limit_key: Option<&str>) -> Vec<u8> {
    let mut value = factory.as_bytes().to_vec();
    if let Some(key) = limit_key {
        value.push(0);
        value.extend_from_slice(key.as_bytes());
    }
    value
}

/// The factory and limit key of a ready entry's value.
pub fn parse_ready_value(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    match value.iter().position(|&b| b == 0) {
        Some(nul) => (&value[..nul], Some(&value[nul + 1..])),
        None => (value, None),
    }
}

/// Time index (scheduled jobs and retry waits; leases by expiry; finished jobs; schedules by
/// next run): (time, id).
pub fn time_key(at: Micros, id: impl Into<u64>) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&ordered_i64(at));
    key[8..].copy_from_slice(&id_key(id));
    key
}

/// The time and job id of a time key.
pub fn parse_time_key(key: &[u8]) -> Option<(Micros, JobId)> {
    Some((from_ordered_i64(key.get(..8)?)?, id_from(key.get(8..16)?)?))
}

/// All time keys at or before `at` sort below this bound.
pub fn time_upper_bound(at: Micros) -> [u8; 16] {
    time_key(at, u64::MAX)
}

/// `idempotency_expiry` index: (expiry time, the key's bytes).
pub fn expiry_key(at: Micros, key: &str) -> Vec<u8> {
    let mut out = ordered_i64(at).to_vec();
    out.extend_from_slice(key.as_bytes());
    out
}

/// The key of an `idempotency_expiry` entry.
pub fn expiry_key_name(entry: &[u8]) -> Option<&[u8]> {
    entry.get(8..)
}

/// `unique` index: factory, a NUL (never in a factory name), the caller's key.
pub fn unique_key(factory: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(factory.len() + 1 + key.len());
    out.extend_from_slice(factory.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

/// One entry of a parent's `dependents` list: the child's id, then 1 if the parent's failure
/// lets it run (`on_failure: run`), else 0.
pub fn edge_entry(child: JobId, on_failure: OnFailure) -> [u8; 9] {
    let mut entry = [0u8; 9];
    entry[..8].copy_from_slice(&id_key(child));
    entry[8] = u8::from(on_failure == OnFailure::Run);
    entry
}

/// The entries of a `dependents` list, in order.
pub fn edges(list: &[u8]) -> impl Iterator<Item = (JobId, OnFailure)> + '_ {
    list.chunks_exact(9).filter_map(|entry| {
        let on_failure = if entry[8] == 1 { OnFailure::Run } else { OnFailure::Cancel };
        id_from(&entry[..8]).map(|id| (id, on_failure))
    })
}

/// Where the `dependents` tree keeps a dependent's parents: `P` and its id (9 bytes, never a
/// parent's 8-byte key).
pub fn parents_key(dependent: JobId) -> [u8; 9] {
    let mut key = [b'P'; 9];
    key[1..].copy_from_slice(&id_key(dependent));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_keys_sort_by_queue_then_priority_desc_then_time_then_id() {
        let mut keys = [
            ready_key("b", 0, 0, JobId(1)),
            ready_key("a", -5, 0, JobId(2)),
            ready_key("a", 10, 50, JobId(3)),
            ready_key("a", 10, -7, JobId(9)),
            ready_key("a", 0, 5, JobId(4)),
            ready_key("a", 0, 5, JobId(3)),
            ready_key("a", i32::MAX, 0, JobId(8)),
            ready_key("a", i32::MIN, 0, JobId(7)),
        ];
        keys.sort();
        let ids: Vec<_> = keys.iter().map(|k| parse_ready_key(k).unwrap().1 .0).collect();
        assert_eq!(ids, [8, 9, 3, 3, 4, 2, 7, 1]);
        assert_eq!(parse_ready_key(&ready_key("queue", 3, 4, JobId(77))), Some(("queue", JobId(77))));
    }

    #[test]
    fn time_keys_sort_by_time_including_negative() {
        assert!(time_key(-1, 5u64) < time_key(0, 1u64));
        assert!(time_key(10, 1u64) < time_key(10, 2u64));
        assert!(time_key(10, u64::MAX) < time_key(11, 0u64));
        assert_eq!(parse_time_key(&time_key(-42, JobId(7))), Some((-42, JobId(7))));
    }
}
