//! Schedules on the wire: creating, patching and showing one, and cron previews.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::jobs::json_value;
use crate::clock::rfc3339;
use crate::schedule::{MissedPolicy, Schedule, Trigger};
use crate::server::extract::integral;

/// `POST /v1/schedules`: a cron schedule (`cron`, optional `timezone`) or a one-shot delay
/// (`delay_seconds`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The factory of the jobs it makes.
    pub job: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, deserialize_with = "integral::i32")]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Five fields: minute hour day-of-month month day-of-week, e.g. `*/5 * * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA zone the cron expression is read in (default UTC), e.g. `Europe/Zurich`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A one-shot delay item: one job this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Default true.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Slots missed while no scheduler ran: `run_once` (default: one job for the missed
    /// period) or `skip`.
    #[serde(default)]
    pub missed: MissedView,
}

fn default_true() -> bool {
    true
}

/// `PATCH /v1/schedules/{id}`: only the fields given change. A new `cron` or `timezone`, or
/// `active: true` on an inactive schedule, reschedules it from now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_i32")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `UTC` to go back to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedView>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedView {
    #[default]
    RunOnce,
    Skip,
}

impl From<MissedView> for MissedPolicy {
    fn from(m: MissedView) -> Self {
        match m {
            MissedView::RunOnce => MissedPolicy::RunOnce,
            MissedView::Skip => MissedPolicy::Skip,
        }
    }
}

impl From<MissedPolicy> for MissedView {
    fn from(m: MissedPolicy) -> Self {
        match m {
            MissedPolicy::RunOnce => MissedView::RunOnce,
            MissedPolicy::Skip => MissedView::Skip,
        }
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub job: String,
    #[schema(value_type = Object)]
    pub input: Value,
    pub queue: String,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout_seconds: Option<f64>,
    /// Set for cron schedules.
    pub cron: Option<String>,
    /// The cron expression's zone; `null` is UTC.
    pub timezone: Option<String>,
    /// Set for one-shot delay items.
    pub delay_seconds: Option<f64>,
    pub active: bool,
    pub missed: MissedView,
    /// When it fires next; `null` when inactive or a delay item that has fired.
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    pub last_job_id: Option<String>,
    /// Why the last slot made no job, if it made none.
    pub last_error: Option<String>,
    /// Jobs made so far.
    pub runs: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        let (cron, timezone, delay_seconds) = match &s.trigger {
            Trigger::Cron { expr, timezone } => (Some(expr.clone()), timezone.clone(), None),
            Trigger::Delay { delay_ms } => (None, None, Some(*delay_ms as f64 / 1000.0)),
        };
        ScheduleView {
            id: s.id.to_string(),
            job: s.factory.clone(),
            input: json_value(&s.input),
            queue: s.queue.clone(),
            priority: s.priority,
            max_attempts: s.max_attempts,
            timeout_seconds: s.timeout_ms.map(|ms| ms as f64 / 1000.0),
            cron,
            timezone,
            delay_seconds,
            active: s.active,
            missed: s.missed.into(),
            next_run_at: s.next_run_at.filter(|_| s.active).map(rfc3339),
            last_run_at: s.last_run_at.map(rfc3339),
            last_job_id: s.last_job_id.map(|id| id.to_string()),
            last_error: s.last_error.clone(),
            runs: s.runs,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// `GET /v1/cron/next`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CronTimes {
    /// RFC 3339 UTC, strictly after `after`, increasing.
    pub times: Vec<String>,
}

/// `GET /v1/cron/check` (answered, never read back: no `Deserialize`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CronCheck {
    /// As `GET /v1/cron/next` gives them; empty when `error` is set.
    pub times: Vec<String>,
    /// The error `GET /v1/cron/next` would answer with; `null` when the expression is good.
    pub error: Option<crate::server::error::ErrorDetail>,
}
