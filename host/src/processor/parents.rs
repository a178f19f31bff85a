//! What a dependent is told of its parents when it runs: each one's status and result, read
//! from the store as the attempt starts (see `ffi::PARENTS_SYMBOL` for the plugin's side).

use serde_json::{json, Value};

use super::shared::Shared;
use crate::job::Job;

/// Most bytes of parents' results handed to one attempt: past it, parents are listed with
/// their status only (a fan-in of 10,000 large results would otherwise make one attempt's
/// message as large as all of them).
pub const MAX_PARENT_RESULTS: usize = 64 << 20;

/// `[{"id", "status", "result"}]` for a job with parents, in the order it named them; `None`
/// for a job without. A parent removed since is `removed`; one the store cannot read now is
/// `unknown` (the attempt runs: its parents completed before it was queued).
pub fn parent_outcomes(shared: &Shared, job: &Job) -> Option<String> {
    job.deps.as_ref()?;
    let parents = match shared.store.parents(job.id) {
        Ok(parents) => parents,
        Err(e) => {
            log::warn!("job {}: its parents cannot be read: {e}", job.id);
            return Some("[]".to_owned());
        }
    };
    let mut budget = MAX_PARENT_RESULTS;
    let mut cut = 0usize;
    let list: Vec<Value> = parents
        .iter()
        .map(|p| match shared.store.get(p.id) {
            Ok(Some(parent)) => {
                let result = parent.result.as_deref().filter(|r| {
                    let fits = r.len() <= budget;
                    if fits {
                        budget -= r.len();
                    } else {
                        cut += 1;
                    }
                    fits
                });
                let result: Value = result.and_then(|r| serde_json::from_str(r).ok()).unwrap_or(Value::Null);
                json!({"id": p.id.to_string(), "status": parent.status.as_str(), "result": result})
            }
            Ok(None) => json!({"id": p.id.to_string(), "status": "removed", "result": null}),
            Err(e) => {
                log::warn!("job {}: parent {} cannot be read for it: {e}", job.id, p.id);
                json!({"id": p.id.to_string(), "status": "unknown", "result": null})
            }
        })
        .collect();
    if cut > 0 {
        log::warn!(
            "job {}: the results of {cut} of its {} parents are left out (over {} MiB in all)",
            job.id,
            parents.len(),
            MAX_PARENT_RESULTS >> 20
        );
    }
    Some(Value::Array(list).to_string())
}
