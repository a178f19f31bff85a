//! Adding jobs: what a caller asks for ([`AddJob`]), the checks against the registry and the
//! limits, the defaults filled in, and storing one job or a whole batch.
//!
//! **Invariant:** nothing is stored unless every check passed; a batch is stored whole or not
//! at all.

use std::time::Duration;

use super::error::HostError;
use super::host::Host;
use crate::clock::Micros;
use crate::job::{Job, NewJob, NewMembership, NewParent, ScheduleId, Upon, DEFAULT_QUEUE, MAX_NAME_LEN};
use crate::store::Added;
use crate::text::clip;

/// A request to add a job.
#[derive(Debug, Clone, Default)]
pub struct AddJob {
    pub factory: String,
    /// JSON text; `None` is `null`.
    pub input: Option<String>,
    pub queue: Option<String>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    /// Not before this time (the job is `scheduled` until then).
    pub run_at: Option<Micros>,
    /// Add it `held`: it waits for `start`.
    pub hold: bool,
    /// While a job of the same factory with this key is pending, return that job instead.
    pub unique_key: Option<String>,
    /// The schedule making this job (set by the scheduler).
    pub schedule_id: Option<ScheduleId>,
    /// The jobs it waits for (`Upon::Item`: another job of the same batch, by position).
    pub depends_on: Vec<NewParent>,
    /// In a batch with a group: its part in the group.
    pub group: Option<NewMembership>,
    /// What a limit's `per_key` counts it by.
    pub limit_key: Option<String>,
}

/// Most parents one job may name.
pub const MAX_PARENTS: usize = 10_000;

/// Longest unique key (it is part of an index key).
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

impl Host {
    /// Validates and stores a job; returns once it is durable (or the pending job holding its
    /// unique key). Blocking: async callers use `spawn_blocking`. Wakes the job's queue,
    /// starting it if it is new and autostarts.
    pub fn add(&self, req: AddJob) -> Result<Added, HostError> {
        if req.depends_on.iter().any(|p| matches!(p.upon, Upon::Item(_))) {
            return Err(HostError::Dependencies(
                "a `ref` names another job of the same batch: only in a batch".into(),
            ));
        }
        let new = self.validate(req)?;
        let added = self.inner.shared.store.add(new, self.now())?;
        if !added.existing {
            self.announce(&added.job);
        }
        Ok(added)
    }

    /// Validates every job, then stores them all in one transaction and one flush, or none.
    /// Unique keys are refused in batches (the answer would differ job by job).
    pub fn add_batch(&self, reqs: Vec<AddJob>) -> Result<Vec<Job>, HostError> {
        let news = self.add_batch_check(reqs)?;
        let jobs = self.inner.shared.store.add_batch(news, self.now())?;
        self.announce_batch(&jobs);
        Ok(jobs)
    }

    /// Tells the listeners of each new job and wakes each queue once.
    pub(super) fn announce_batch(&self, jobs: &[Job]) {
        let mut queues: Vec<&str> = Vec::new();
        for job in jobs {
            self.inner.shared.events.publish(job);
            if !queues.contains(&job.queue.as_str()) {
                queues.push(&job.queue);
            }
        }
        for name in queues {
            self.inner.pool.wake(name);
        }
    }

    /// Checks every job of a batch; `InvalidBatch` lists each refused one by index.
    pub fn add_batch_check(&self, reqs: Vec<AddJob>) -> Result<Vec<NewJob>, HostError> {
        let total = reqs.len();
        let mut news = Vec::with_capacity(total);
        let mut items = Vec::new();
        let edges: Vec<Vec<usize>> = reqs
            .iter()
            .map(|r| {
                r.depends_on
                    .iter()
                    .filter_map(|p| if let Upon::Item(i) = p.upon { Some(i) } else { None })
                    .collect()
            })
            .collect();
        if let Some(cycle) = first_cycle(&edges) {
            let path: Vec<String> = cycle.iter().map(|i| format!("jobs[{i}]")).collect();
            let message = format!("the batch's jobs wait for each other in a cycle: {}", path.join(" → "));
            items.push((cycle[0], HostError::Dependencies(message)));
        }
        for (index, req) in reqs.into_iter().enumerate() {
            if let Some(i) = edges[index].iter().find(|&&i| i >= total) {
                items.push((
                    index,
                    HostError::Dependencies(format!("refers to jobs[{i}]; the batch has {total} jobs")),
                ));
                continue;
            }
            if req.unique_key.is_some() {
                let message = "not accepted in a batch; add jobs with unique keys one at a time";
                items.push((index, HostError::invalid("unique_key", message)));
                continue;
            }
            match self.validate(req) {
                Ok(new) => news.push(new),
                Err(e) => items.push((index, e)),
            }
        }
        if items.is_empty() {
            Ok(news)
        } else {
            Err(HostError::InvalidBatch { total, items })
        }
    }

    /// Checks a request against the registry and the limits, and fills in the defaults.
    pub fn validate(&self, req: AddJob) -> Result<NewJob, HostError> {
        check_parents(&req)?;
        let catalog = self.inner.shared.catalog();
        let factory = catalog.factory(&req.factory).ok_or_else(|| HostError::UnknownFactory {
            name: req.factory.clone(),
            known: catalog.factory_names().iter().map(|s| s.to_string()).collect(),
        })?;
        let queue = req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        validate_name("queue", &queue)?;
        let input = req.input.unwrap_or_else(|| "null".to_owned());
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(HostError::invalid("input", format!("not valid JSON: {e}")));
        }
        let input = self
            .inner
            .shared
            .schemas
            .admit(factory, input)
            .map_err(|errors| HostError::InvalidInput { factory: factory.name.clone(), errors })?;
        let max_attempts = req
            .max_attempts
            .or(factory.defaults.max_attempts)
            .unwrap_or(self.inner.shared.config.default_max_attempts);
        if max_attempts == 0 {
            return Err(HostError::invalid("max_attempts", "must be at least 1"));
        }
        if let Some(key) = &req.limit_key {
            if key.is_empty() || key.chars().count() > MAX_UNIQUE_KEY_LEN || key.contains('\0') {
                return Err(HostError::invalid(
                    "limit_key",
                    format!("must be 1 to {MAX_UNIQUE_KEY_LEN} characters long, without NUL"),
                ));
            }
        }
        if let Some(key) = &req.unique_key {
            // Characters, as the API document's `maxLength` counts them.
            if key.is_empty() || key.chars().count() > MAX_UNIQUE_KEY_LEN {
                return Err(HostError::invalid(
                    "unique_key",
                    format!("must be 1 to {MAX_UNIQUE_KEY_LEN} characters long"),
                ));
            }
            // PostgreSQL's text cannot hold it: refused on every store alike.
            if key.contains('\0') {
                return Err(HostError::invalid("unique_key", "must not contain the NUL character"));
            }
        }
        Ok(NewJob {
            factory: req.factory,
            input,
            queue,
            priority: req.priority,
            max_attempts,
            timeout_ms: req.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            run_at: req.run_at,
            hold: req.hold,
            unique_key: req.unique_key,
            schedule_id: req.schedule_id,
            depends_on: req.depends_on,
            group: req.group,
            limit_key: req.limit_key,
        })
    }
}

/// A job's parents: not too many, none twice, and not with what waiting for them would
/// contradict (a hold, which waits for a person; a unique key, held from submission).
fn check_parents(req: &AddJob) -> Result<(), HostError> {
    let parents = &req.depends_on;
    if parents.is_empty() {
        return Ok(());
    }
    if parents.len() > MAX_PARENTS {
        return Err(HostError::Dependencies(format!("{} jobs; at most {MAX_PARENTS}", parents.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in parents {
        if !seen.insert(p.upon) {
            let which = match p.upon {
                Upon::Job(id) => format!("job {id}"),
                Upon::Item(i) => format!("jobs[{i}]"),
            };
            return Err(HostError::Dependencies(format!("names {which} twice")));
        }
    }
    if req.hold {
        return Err(HostError::invalid(
            "hold",
            "a job with depends_on waits for its parents, not for a start",
        ));
    }
    if req.unique_key.is_some() {
        return Err(HostError::invalid("unique_key", "not accepted with depends_on"));
    }
    Ok(())
}

/// A cycle among a batch's jobs (`edges[i]`: the positions job `i` depends on), as the
/// positions along it, the first repeated at the end; `None` if there is none.
pub fn first_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Iterative depth-first search: 0 unvisited, 1 on the current path, 2 done.
    let n = edges.len();
    let mut state = vec![0u8; n];
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let Some(&child) = edges[node].get(*next) else {
                state[node] = 2;
                path.pop();
                continue;
            };
            *next += 1;
            if child >= n {
                continue;
            }
            match state[child] {
                0 => {
                    state[child] = 1;
                    path.push((child, 0));
                }
                1 => {
                    let from = path.iter().position(|&(p, _)| p == child).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|&(p, _)| p).collect();
                    cycle.push(child);
                    return Some(cycle);
                }
                _ => {}
            }
        }
    }
    None
}

fn validate_name(field: &'static str, name: &str) -> Result<(), HostError> {
    if crate::job::is_valid_name(name) {
        Ok(())
    } else {
        Err(HostError::invalid(
            field,
            format!(
                "{:?}: use 1 to {MAX_NAME_LEN} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`",
                clip(name)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::first_cycle;

    #[test]
    fn cycles_are_found_and_named_along_their_path() {
        assert_eq!(first_cycle(&[vec![], vec![0], vec![0, 1]]), None);
        assert_eq!(first_cycle(&[vec![0]]), Some(vec![0, 0]));
        assert_eq!(first_cycle(&[vec![2], vec![0], vec![1]]), Some(vec![0, 2, 1, 0]));
        assert_eq!(first_cycle(&[vec![], vec![2], vec![3], vec![1]]), Some(vec![1, 2, 3, 1]));
        // A long chain is no cycle, and needs no deep recursion.
        let chain: Vec<Vec<usize>> =
            (0..100_000).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
        assert_eq!(first_cycle(&chain), None);
    }
}
