//! Flow control: limits on the jobs of a queue or of a factory — how many run at once (across
//! every host sharing the store), how many run at once per key (`limit_key`, say one per
//! customer), how many start per interval — and the gate a claim passes its candidates through.
//!
//! The rate is a generic cell rate (GCRA): a scope's next start is due one interval (`per /
//! starts`) after the previous one's slot, so starts are spread evenly. A start late (a worker
//! woke or claimed late, hosts took turns) keeps the schedule for up to [`CATCH_UP`]
//! intervals, the next ones coming sooner until it is back on it, so the rate over a minute
//! holds on several hosts; after an idle spell (no start for [`IDLE`] and those intervals) the
//! schedule restarts from the next start: an idle spell saves up no burst. The state is one
//! time per limit, kept in the store and changed in the claim's transaction, so every host
//! sharing a store keeps one pace.
//!
//! **Invariant:** a claim starts a job only if every limit covering it admits it, counted
//! against the jobs `processing` in the store when the claim's transaction reads them (a
//! store serializes claims under limits); a job refused stays `queued` with its attempts
//! untouched.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Micros;
use crate::job::Job;

/// What a limit covers: the jobs of one queue, or of one factory (in any queue).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Queue(String),
    Factory(String),
}

impl Scope {
    pub fn covers(&self, job: &Job) -> bool {
        match self {
            Scope::Queue(q) => *q == job.queue,
            Scope::Factory(f) => *f == job.factory,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Queue(_) => "queue",
            Scope::Factory(_) => "factory",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Scope::Queue(n) | Scope::Factory(n) => n,
        }
    }

    /// `queue/NAME` or `factory/NAME`: the store's key for it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// The scope named by `kind` (`queue` or `factory`) and `name`.
    pub fn parse(kind: &str, name: &str) -> Result<Scope, String> {
        match kind {
            "queue" => Ok(Scope::Queue(name.to_owned())),
            "factory" => Ok(Scope::Factory(name.to_owned())),
            other => Err(format!("`{}`: a limit is on a `queue` or a `factory`", crate::text::clip(other))),
        }
    }
}

/// At most `starts` starts per `per_ms`, evenly spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub starts: u32,
    pub per_ms: u64,
}

impl Rate {
    /// The time between two starts, in microseconds (at least 1).
    pub fn interval(self) -> Micros {
        ((self.per_ms as i128 * 1000) / i128::from(self.starts.max(1))).clamp(1, i64::MAX as i128) as Micros
    }
}

/// A limit as set: each part optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub scope: Scope,
    /// Jobs of the scope running at once, on every host together.
    pub concurrency: Option<u32>,
    /// Jobs of the scope with one `limit_key` running at once.
    pub per_key: Option<u32>,
    pub rate: Option<Rate>,
}

/// A limit and its rate's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    pub limit: Limit,
    /// When the next start is due (the rate's theoretical arrival time); 0 before the first.
    pub next_start: Micros,
}

/// How many intervals of lateness a schedule makes up: the most starts that come at once to
/// catch up, beyond the one due. Three hosts sharing a PostgreSQL store at 100 starts a second
/// are late by 20–50 ms now and then; making up two intervals (not four) lost a quarter of the
/// rate (72–78/s).
pub const CATCH_UP: i64 = 4;

/// How long a scope may go without a due start before its schedule restarts (an idle spell),
/// if that is longer than [`CATCH_UP`] intervals.
pub const IDLE: Micros = 250_000;

/// A running job as the gate counts it: its queue, factory and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub queue: String,
    pub factory: String,
    pub limit_key: Option<String>,
}

impl Running {
    pub fn of(job: &Job) -> Running {
        Running { queue: job.queue.clone(), factory: job.factory.clone(), limit_key: job.limit_key.clone() }
    }

    fn as_job_like(&self) -> (&str, &str) {
        (&self.queue, &self.factory)
    }
}

/// One claim's passage through the limits: what runs now, counted, and each limit's pace.
#[derive(Debug, Clone)]
pub struct Gate {
    pub limits: Vec<LimitState>,
    /// Running jobs per limit (by position), and per (limit, key).
    running: HashMap<usize, u32>,
    /// Per limit (by position): running jobs per key, looked up by `&str` (a claim's scan asks
    /// once per ready entry with a key, without allocating).
    by_key: Vec<HashMap<String, u32>>,
}

impl Gate {
    pub fn new(limits: Vec<LimitState>, running: &[Running]) -> Gate {
        let by_key = vec![HashMap::new(); limits.len()];
        let mut gate = Gate { limits, running: HashMap::new(), by_key };
        for job in running {
            let (queue, factory) = job.as_job_like();
            for i in 0..gate.limits.len() {
                if covers(&gate.limits[i].limit.scope, queue, factory) {
                    *gate.running.entry(i).or_insert(0) += 1;
                    if let Some(key) = &job.limit_key {
                        *gate.by_key[i].entry(key.clone()).or_insert(0) += 1;
                    }
                }
            }
        }
        gate
    }

    /// Whether any limit covers `job`'s queue and factory.
    pub fn applies(&self, job: &Job) -> bool {
        self.limits.iter().any(|l| l.limit.scope.covers(job))
    }

    /// Whether `job` may start at `now`: every limit covering it has room (and, for a rate, its
    /// next start is due). If so it is counted as running and each rate's next start moves on.
    pub fn admit(&mut self, job: &Job, now: Micros) -> bool {
        let covering: Vec<usize> =
            (0..self.limits.len()).filter(|&i| self.limits[i].limit.scope.covers(job)).collect();
        for &i in &covering {
            let state = &self.limits[i];
            let running = self.running.get(&i).copied().unwrap_or(0);
            if state.limit.concurrency.is_some_and(|c| running >= c) {
                return false;
            }
            if let (Some(per_key), Some(key)) = (state.limit.per_key, &job.limit_key) {
                if self.key_running(i, key) >= per_key {
                    return false;
                }
            }
            if state.limit.rate.is_some() && state.next_start > now {
                return false;
            }
        }
        for &i in &covering {
            *self.running.entry(i).or_insert(0) += 1;
            if let Some(key) = &job.limit_key {
                *self.by_key[i].entry(key.clone()).or_insert(0) += 1;
            }
            let state = &mut self.limits[i];
            if let Some(rate) = state.limit.rate {
                // The first start ever, or one after an idle spell, has no schedule to catch up
                // with: the next is one interval after it.
                let slot = if idle(state.next_start, now, rate) {
                    now
                } else {
                    state.next_start.max(now.saturating_sub(catch_up(rate)))
                };
                state.next_start = slot.saturating_add(rate.interval());
            }
        }
        true
    }

    /// Whether a job of `queue` and `factory` with `key` has a place under every per-key limit
    /// covering it; if so the place is taken (a claim's scan counts the candidates it keeps, so
    /// it keeps no more of one key than could start).
    pub fn take_key_place(&mut self, queue: &str, factory: &str, key: &str) -> bool {
        let keyed = |l: &LimitState| l.limit.per_key.filter(|_| covers(&l.limit.scope, queue, factory));
        if self
            .limits
            .iter()
            .enumerate()
            .any(|(i, l)| keyed(l).is_some_and(|per_key| self.key_running(i, key) >= per_key))
        {
            return false;
        }
        for i in 0..self.limits.len() {
            if keyed(&self.limits[i]).is_some() {
                *self.by_key[i].entry(key.to_owned()).or_insert(0) += 1;
            }
        }
        true
    }

    /// The keys at their per-key limit now, with the scope of that limit: a claim's query
    /// passes their jobs over.
    pub fn full_keys(&self) -> Vec<(Scope, String)> {
        self.limits
            .iter()
            .zip(&self.by_key)
            .flat_map(|(l, keys)| {
                keys.iter()
                    .filter(|(_, &n)| l.limit.per_key.is_some_and(|per_key| n >= per_key))
                    .map(|(key, _)| (l.limit.scope.clone(), key.clone()))
            })
            .collect()
    }

    fn key_running(&self, limit: usize, key: &str) -> u32 {
        self.by_key[limit].get(key).copied().unwrap_or(0)
    }

    /// Factories none of whose jobs may start now: a factory limit at its concurrency, or
    /// whose next start is not due (a claim leaves their jobs unread).
    pub fn closed_factories(&self, now: Micros) -> Vec<String> {
        (0..self.limits.len())
            .filter_map(|i| {
                let state = &self.limits[i];
                let Scope::Factory(name) = &state.limit.scope else { return None };
                let full =
                    state.limit.concurrency.is_some_and(|c| self.running.get(&i).copied().unwrap_or(0) >= c);
                let early = state.limit.rate.is_some() && state.next_start > now;
                (full || early).then(|| name.clone())
            })
            .collect()
    }

    /// How many jobs of `queue` the limits on the queue itself let start now, if any bound
    /// them (a rate: its due starts; a concurrency: its free places), so that a claim reads no
    /// more candidates than it could start. `None` when a per-key limit covers the queue (a
    /// claim then reads past keys at their limit) or nothing bounds it.
    pub fn room(&self, queue: &str, now: Micros) -> Option<usize> {
        let mut room: Option<usize> = None;
        for (i, state) in self.limits.iter().enumerate() {
            if state.limit.per_key.is_some() {
                return None;
            }
            let Scope::Queue(q) = &state.limit.scope else { continue };
            if q != queue {
                continue;
            }
            if let Some(c) = state.limit.concurrency {
                let free = c.saturating_sub(self.running.get(&i).copied().unwrap_or(0)) as usize;
                room = Some(room.map_or(free, |r| r.min(free)));
            }
            if let Some(rate) = state.limit.rate {
                let due = if state.next_start > now {
                    0
                } else if idle(state.next_start, now, rate) {
                    1
                } else {
                    (1 + (now - state.next_start) / rate.interval()).min(CATCH_UP + 1) as usize
                };
                room = Some(room.map_or(due, |r| r.min(due)));
            }
        }
        room
    }

    /// Whether the limit on `queue` lets nothing start now.
    pub fn queue_closed(&self, queue: &str, now: Micros) -> bool {
        self.limits.iter().enumerate().any(|(i, state)| {
            matches!(&state.limit.scope, Scope::Queue(q) if q == queue)
                && (state.limit.concurrency.is_some_and(|c| self.running.get(&i).copied().unwrap_or(0) >= c)
                    || (state.limit.rate.is_some() && state.next_start > now))
        })
    }
}

/// The lateness a rate's schedule makes up.
fn catch_up(rate: Rate) -> Micros {
    rate.interval().saturating_mul(CATCH_UP)
}

/// Whether a rate's schedule was idle so long before `now` that it restarts (or never started).
fn idle(next_start: Micros, now: Micros, rate: Rate) -> bool {
    next_start == 0 || now.saturating_sub(next_start) > catch_up(rate).max(IDLE)
}

fn covers(scope: &Scope, queue: &str, factory: &str) -> bool {
    match scope {
        Scope::Queue(q) => q == queue,
        Scope::Factory(f) => f == factory,
    }
}

/// How long after a rate's slot an idle worker still looks at it: a worker passed over by a
/// rate that asks a moment after the slot came (its claim took that long) claims again at
/// once rather than sleeping the poll interval; one on an empty queue stops looking soon.
const SLOT_GRACE: Micros = 20_000;

/// The earliest rate slot still to take among `limits` (when an idle worker should look
/// again): one ahead of `now`, or one that came within the last 20 ms.
pub fn next_start_after(limits: &[LimitState], now: Micros) -> Option<Micros> {
    limits
        .iter()
        .filter(|l| l.limit.rate.is_some() && l.next_start > now.saturating_sub(SLOT_GRACE))
        .map(|l| l.next_start)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, NewJob};

    fn job(queue: &str, factory: &str, key: Option<&str>) -> Job {
        let new = NewJob {
            factory: factory.into(),
            queue: queue.into(),
            max_attempts: 1,
            limit_key: key.map(str::to_owned),
            ..NewJob::default()
        };
        Job::new(JobId(1), new, 0)
    }

    fn limit(scope: Scope, concurrency: Option<u32>, per_key: Option<u32>, rate: Option<Rate>) -> LimitState {
        LimitState { limit: Limit { scope, concurrency, per_key, rate }, next_start: 0 }
    }

    #[test]
    fn concurrency_counts_what_runs_everywhere_and_what_this_claim_starts() {
        let running = [Running::of(&job("q", "echo", None))];
        let mut gate = Gate::new(vec![limit(Scope::Queue("q".into()), Some(2), None, None)], &running);
        assert!(gate.admit(&job("q", "echo", None), 0));
        assert!(!gate.admit(&job("q", "echo", None), 0), "two running: one before, one now");
        assert!(gate.admit(&job("other", "echo", None), 0), "another queue is not limited");
        assert!(gate.queue_closed("q", 0));
    }

    #[test]
    fn per_key_limits_each_key_alone_and_a_factory_limit_closes_it() {
        let mut gate = Gate::new(
            vec![limit(Scope::Factory("mail".into()), Some(3), Some(1), None)],
            &[Running::of(&job("a", "mail", Some("acme")))],
        );
        assert!(!gate.admit(&job("b", "mail", Some("acme")), 0), "acme has its one");
        assert!(gate.admit(&job("b", "mail", Some("zenith")), 0));
        assert!(gate.admit(&job("b", "mail", None), 0), "no key: only the concurrency counts");
        assert_eq!(gate.closed_factories(0), ["mail"], "three running");
        assert!(!gate.admit(&job("b", "mail", Some("other")), 0));
    }

    #[test]
    fn a_rate_spreads_starts_evenly_keeps_its_pace_when_late_and_bursts_little_after_idle() {
        let rate = Rate { starts: 100, per_ms: 1000 };
        assert_eq!(rate.interval(), 10_000);
        let mut gate = Gate::new(vec![limit(Scope::Queue("q".into()), None, None, Some(rate))], &[]);
        let j = job("q", "echo", None);
        assert!(gate.admit(&j, 1_000_000));
        assert!(!gate.admit(&j, 1_000_000), "one start per 10 ms");
        assert!(!gate.admit(&j, 1_009_999));
        assert!(gate.admit(&j, 1_010_000));
        assert_eq!(next_start_after(&gate.limits, 1_010_000), Some(1_020_000));
        // A minute (or a third of a second) idle: one start, then one per interval; no burst.
        let burst = (0..100).filter(|_| gate.admit(&j, 61_000_000)).count();
        assert_eq!(burst, 1);
        assert!(!gate.admit(&j, 61_009_999) && gate.admit(&j, 61_010_000));
        // A claim 15 ms late keeps the schedule: it takes the slots of 20 and 30 ms, then one
        // every 10 ms again.
        assert!(gate.admit(&j, 61_035_000) && gate.admit(&j, 61_035_000));
        assert!(!gate.admit(&j, 61_035_000) && gate.admit(&j, 61_040_000));
        assert!(!gate.admit(&j, 61_049_999) && gate.admit(&j, 61_050_000));
        // A third of a second without a start is an idle spell too.
        assert_eq!((0..100).filter(|_| gate.admit(&j, 61_400_000)).count(), 1);
        // Late by 60 ms (hosts took turns): four intervals are made up, not six.
        assert_eq!((0..100).filter(|_| gate.admit(&j, 61_470_000)).count(), CATCH_UP as usize + 1);
        // In any second, at most CATCH_UP + 1 starts more than the rate.
        let mut gate = Gate::new(vec![limit(Scope::Queue("q".into()), None, None, Some(rate))], &[]);
        let mut starts = Vec::new();
        for ms in 0..5_000i64 {
            // Claims that sometimes stall up to 25 ms, then take what is due.
            if ms % 97 < 72 || ms % 97 == 96 {
                while gate.admit(&j, ms * 1000) {
                    starts.push(ms);
                }
            }
        }
        let most =
            (0..4_000).map(|from| starts.iter().filter(|&&t| t >= from && t < from + 1000).count()).max();
        assert!(most.unwrap() <= 100 + CATCH_UP as usize + 1, "{most:?}");
        // Claims coming late (every 15 ms, each taking what is due) keep the rate.
        let mut gate = Gate::new(vec![limit(Scope::Queue("q".into()), None, None, Some(rate))], &[]);
        let late: usize = (0..67).map(|k| (0..3).filter(|_| gate.admit(&j, k * 15_000)).count()).sum();
        assert!((100..=102).contains(&late), "{late} starts in a second at 100/s");
        // Starts over a second of claims every millisecond: 100.
        let mut gate = Gate::new(vec![limit(Scope::Queue("q".into()), None, None, Some(rate))], &[]);
        let started = (0..1000).filter(|ms| gate.admit(&j, ms * 1000)).count();
        assert_eq!(started, 100);
    }
}
