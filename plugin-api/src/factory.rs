//! The author-facing factory builder, and the typed runner that turns an ordinary Rust
//! function over serde types into the ABI's [`JobRunner`].

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    sabi_types::RRef,
    std_types::{RResult, RStr, RString},
};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};

use crate::failure::{self, duration_ms};
use crate::ffi::{FactoryInfo, FfiFactory, FfiFailure, HostJob_TO, JobRunner, JobRunner_TO};
use crate::logging;
use crate::{Context, Failure, JobResult};

/// A job type: a name, a description, optional defaults, and the function that runs a job.
///
/// ```
/// use jobhost_plugin_api::prelude::*;
/// use std::time::Duration;
///
/// fn shout(input: String, _ctx: &Context) -> JobResult<String> {
///     Ok(input.to_uppercase())
/// }
///
/// let factory = Factory::new("shout", shout)
///     .description("Upper-cases a string.")
///     .max_attempts(5)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(factory.name(), "shout");
/// ```
pub struct Factory {
    name: String,
    description: String,
    example: Option<String>,
    max_attempts: Option<u32>,
    timeout: Option<Duration>,
    retry_delay: Option<Duration>,
    input_schema: String,
    output_schema: String,
    runner: JobRunner_TO<'static, abi_stable::std_types::RBox<()>>,
}

impl Factory {
    /// `run` receives the job's input deserialized into `I` and returns a result serialized
    /// from `O`. Both derive their JSON Schema (`#[derive(Deserialize, JsonSchema)]`): the
    /// host checks every submission against the input's schema before it stores the job, and
    /// publishes both schemas. Input that does not fit `I` anyway (a schema looser than the
    /// type) is a permanent failure `invalid input: ...`. A factory taking any JSON takes
    /// [`Value`](serde_json::Value), whose schema accepts everything.
    pub fn new<I, O, F>(name: &str, run: F) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(I, &Context<'_>) -> JobResult<O> + Send + Sync + 'static,
    {
        let runner = TypedRunner { run, _types: PhantomData };
        Factory {
            name: name.to_owned(),
            description: String::new(),
            example: None,
            max_attempts: None,
            timeout: None,
            retry_delay: None,
            input_schema: schema_text::<I>(),
            output_schema: schema_text::<O>(),
            runner: JobRunner_TO::from_value(runner, TD_Opaque),
        }
    }

    /// The JSON Schema of the factory's input, as JSON text.
    pub fn input_schema(&self) -> &str {
        &self.input_schema
    }

    /// The JSON Schema of the factory's result, as JSON text.
    pub fn output_schema(&self) -> &str {
        &self.output_schema
    }

    /// One line saying what the factory does.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// An example input, as JSON text.
    pub fn example(mut self, input_json: &str) -> Self {
        self.example = Some(input_json.to_owned());
        self
    }

    /// Default number of attempts for jobs of this type (the host's default otherwise).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Default time limit per attempt; past it the host sets the cancellation flag.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Base delay before a retry (the host adds exponential backoff and jitter).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn runner(&self) -> &JobRunner_TO<'static, abi_stable::std_types::RBox<()>> {
        &self.runner
    }

    /// Hands the factory over to the ABI. Leaks one small struct per factory per load, which
    /// is intended: plugins are never unloaded.
    #[doc(hidden)]
    pub fn into_ffi(self) -> FfiFactory {
        let info = FactoryInfo {
            name: leak(self.name),
            description: leak(self.description),
            example: self.example.map(leak).into(),
            max_attempts: self.max_attempts.into(),
            timeout_ms: self.timeout.map(duration_ms).into(),
            retry_delay_ms: self.retry_delay.map(duration_ms).into(),
        };
        FfiFactory { info: info.leak_into_prefix(), runner: self.runner }
    }
}

struct TypedRunner<F, I, O> {
    run: F,
    // `fn(I) -> O` keeps the runner Send + Sync whatever I and O are: it never holds either.
    _types: PhantomData<fn(I) -> O>,
}

impl<F, I, O> JobRunner for TypedRunner<F, I, O>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(I, &Context<'_>) -> JobResult<O> + Send + Sync,
{
    fn run<'a>(&self, host: HostJob_TO<'a, RRef<'a, ()>>, input: RStr<'_>) -> RResult<RString, FfiFailure> {
        let ctx = Context::new(host);
        let _job = logging::JobScope::enter(ctx.job_id());
        let _panics = crate::panics::JobPanics::enter();
        // Nothing may unwind across the ABI: an unwinding panic there ends the host process
        // (abi_stable's shims do not catch it), so it is caught here, inside the plugin.
        let outcome = catch_unwind(AssertUnwindSafe(|| -> JobResult<String> {
            let input: I = serde_json::from_str(input.as_str())
                .map_err(|e| Failure::permanent(format!("invalid input: {e}")))?;
            let output = (self.run)(input, &ctx)?;
            serde_json::to_string(&output).map_err(|e| Failure::permanent(format!("invalid output: {e}")))
        }));
        match outcome {
            Ok(Ok(json)) => RResult::ROk(json.into()),
            Ok(Err(failure)) => {
                // A panic the job caught itself is not this failure's.
                crate::panics::forget();
                RResult::RErr(failure.into_ffi())
            }
            Err(payload) => {
                let message = failure::panic_message(payload.as_ref());
                // A payload whose destructor panics must not escape either.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                RResult::RErr(Failure::retryable(message).into_ffi())
            }
        }
    }
}

/// `T`'s JSON Schema (draft 2020-12, as schemars writes it), as JSON text.
fn schema_text<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_else(|_| "true".to_owned())
}

fn leak(s: String) -> RStr<'static> {
    RStr::from_str(Box::leak(s.into_boxed_str()))
}
