//! Limits on the wire: `PUT /v1/limits/{kind}/{name}` and how `GET /v1/limits` shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::limits::LimitState;
use crate::server::extract::{integral, object};

/// `PUT /v1/limits/{kind}/{name}`: each part optional, at least one given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// Jobs of the queue or factory running at once, on every host sharing the store.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub concurrency: Option<u32>,
    /// Jobs with one `limit_key` running at once (a job without a key is not counted by it).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub per_key: Option<u32>,
    /// Starts per interval, spread evenly (no bursts).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::opt")]
    pub rate: Option<RateView>,
}

/// `starts` jobs per `per_seconds`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateView {
    #[serde(deserialize_with = "integral::u32")]
    #[schema(minimum = 1)]
    pub starts: u32,
    /// 0.001 to 86,400.
    pub per_seconds: f64,
}

/// A limit as set, and its pace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimitView {
    /// `queue` or `factory`.
    pub kind: String,
    pub name: String,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295_u64)]
    pub concurrency: Option<u32>,
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295_u64)]
    pub per_key: Option<u32>,
    pub rate: Option<RateView>,
    /// When the rate lets the next job start (`null` before the first, or without a rate).
    pub next_start: Option<String>,
}

impl From<&LimitState> for LimitView {
    fn from(s: &LimitState) -> Self {
        let l = &s.limit;
        LimitView {
            kind: l.scope.kind().to_owned(),
            name: l.scope.name().to_owned(),
            concurrency: l.concurrency,
            per_key: l.per_key,
            rate: l.rate.map(|r| RateView { starts: r.starts, per_seconds: r.per_ms as f64 / 1000.0 }),
            next_start: (l.rate.is_some() && s.next_start > 0).then(|| rfc3339(s.next_start)),
        }
    }
}
