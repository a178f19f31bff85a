//! Dependencies inside a store's transaction: a new dependent admitted against its parents,
//! and a job's change reaching the jobs that wait for it, level by level. Both stores run
//! this same walk over their own reads and writes ([`Graph`]), so they move dependents alike;
//! the rules of a move are `crate::job`'s (see `Job::parent_moved`).
//!
//! **Invariant:** called in the transaction that changed the parents, so a dependent is never
//! released before its parents' completion is stored, nor left waiting after it is.

use std::collections::BTreeMap;

use crate::clock::Micros;
use crate::job::{Job, JobId, NewJob, Parent, Standing, Status};
use crate::store::types::{Group, GroupState};

/// The reads and writes the walk needs, inside one transaction of a store.
pub trait Graph {
    type Error;
    /// The edges leaving `parents`: each `(parent, child)` with what the parent's failure does
    /// to the child.
    fn children_of(&mut self, parents: &[JobId]) -> Result<Vec<(Parent, JobId)>, Self::Error>;
    /// The records of `ids` that exist (locked for update, where the store locks).
    fn load(&mut self, ids: &[JobId]) -> Result<Vec<Job>, Self::Error>;
    /// Writes dependents that changed, each `(before, after)`, with whatever index entries
    /// their new statuses imply.
    fn save(&mut self, changed: &[(Job, Job)], now: Micros) -> Result<(), Self::Error>;
}

/// A job whose status changed from `before` to `after` in this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub id: JobId,
    pub before: Status,
    pub after: Status,
}

impl Moved {
    pub fn of(before: Status, job: &Job) -> Moved {
        Moved { id: job.id, before, after: job.status }
    }
}

/// Tells the dependents of every job in `moved` whose standing changed (pending, completed,
/// failed), then theirs, until nothing more moves. Returns each dependent that changed status,
/// with its status before (for the store's counts and wake-ups).
pub fn propagate<G: Graph>(
    graph: &mut G,
    moved: &[Moved],
    now: Micros,
) -> Result<Vec<(Status, Job)>, G::Error> {
    let mut level: Vec<Moved> =
        moved.iter().copied().filter(|m| Standing::of(m.before) != Standing::of(m.after)).collect();
    let mut changed: Vec<(Status, Job)> = Vec::new();
    while !level.is_empty() {
        let parents: Vec<JobId> = level.iter().map(|m| m.id).collect();
        let edges = graph.children_of(&parents)?;
        if edges.is_empty() {
            break;
        }
        let mut ids: Vec<JobId> = edges.iter().map(|&(_, child)| child).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut children: BTreeMap<JobId, (Job, Job)> =
            graph.load(&ids)?.into_iter().map(|job| (job.id, (job.clone(), job))).collect();
        for (parent, child) in edges {
            let (Some(m), Some((_, job))) =
                (level.iter().find(|m| m.id == parent.id), children.get_mut(&child))
            else {
                continue; // a dependent removed since
            };
            job.parent_moved(parent, Standing::of(m.before), Standing::of(m.after), m.after, now);
        }
        let saved: Vec<(Job, Job)> =
            children.into_values().filter(|(before, after)| before != after).collect();
        graph.save(&saved, now)?;
        let mut next = Vec::new();
        for (before, after) in saved {
            if before.status != after.status {
                next.push(Moved::of(before.status, &after));
                changed.push((before.status, after));
            }
        }
        level = next.into_iter().filter(|m| Standing::of(m.before) != Standing::of(m.after)).collect();
    }
    Ok(changed)
}

/// New jobs, some with parents (existing jobs, or others among `jobs`), learn where their
/// parents stand, in an order where a parent among them comes first (a batch's graph is
/// acyclic, checked at submission). `existing` gives the status of each parent outside
/// `jobs`; a parent found in neither is refused by the caller before this.
pub fn admit(jobs: &mut [Job], existing: &BTreeMap<JobId, Status>, now: Micros) {
    let index: BTreeMap<JobId, usize> = jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    for i in topological(jobs, &index) {
        if jobs[i].deps.is_none() {
            continue;
        }
        let statuses: Vec<(JobId, Status)> = jobs[i]
            .parents()
            .iter()
            .map(|p| {
                let status = match index.get(&p.id) {
                    Some(&j) => jobs[j].status,
                    None => existing.get(&p.id).copied().unwrap_or(Status::Queued),
                };
                (p.id, status)
            })
            .collect();
        jobs[i].admit_parents(&statuses, now);
    }
}

/// The positions of `jobs` with every parent among them before its dependents (Kahn's
/// order); positions on a cycle (refused at submission) come last, in their own order.
fn topological(jobs: &[Job], index: &BTreeMap<JobId, usize>) -> Vec<usize> {
    let n = jobs.len();
    let mut pending = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, job) in jobs.iter().enumerate() {
        for p in job.parents() {
            if let Some(&j) = index.get(&p.id) {
                pending[i] += 1;
                children[j].push(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let i = order[next];
        next += 1;
        for &c in &children[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                order.push(c);
            }
        }
    }
    if order.len() < n {
        let placed: std::collections::BTreeSet<usize> = order.iter().copied().collect();
        order.extend((0..n).filter(|i| !placed.contains(i)));
    }
    order
}

/// The group a batch makes, if its jobs say they belong to one: its id is the first job's,
/// its members the jobs that are not callbacks.
pub fn new_group(news: &[NewJob], ids: &[JobId], now: Micros) -> Option<Group> {
    let first = news.iter().find_map(|n| n.group.as_ref())?;
    let (&id, _) = ids.split_first()?;
    let mut group =
        Group { id, name: first.name.clone(), created_at: now, members: Vec::new(), callbacks: Vec::new() };
    for (new, &job) in news.iter().zip(ids) {
        match new.group.as_ref().and_then(|m| m.callback) {
            Some(callback) => group.callbacks.push((callback, job)),
            None => group.members.push(job),
        }
    }
    Some(group)
}

/// A group with the statuses its jobs have (`None`: removed), counted.
pub fn group_state(group: Group, status_of: impl Fn(JobId) -> Option<Status>) -> GroupState {
    let mut members = BTreeMap::new();
    let mut removed = 0;
    for &id in &group.members {
        match status_of(id) {
            Some(status) => *members.entry(status).or_insert(0) += 1,
            None => removed += 1,
        }
    }
    let callbacks = group.callbacks.iter().map(|&(c, id)| (c, id, status_of(id))).collect();
    GroupState { group, members, removed, callbacks }
}
