//! The `fatal` example plugin: panics, so the job is retried (m01.remote's FatalErrorJob).
//! With `{"abort": true}` it aborts the whole process, which tests use to prove crash recovery.

use std::time::Duration;

use jobhost_plugin_api::prelude::*;
use serde_json::Value;

#[derive(Deserialize, JsonSchema, Default)]
struct Input {
    /// Abort the whole process instead of panicking.
    #[serde(default)]
    abort: bool,
}

fn fatal(input: Option<Input>, _ctx: &Context) -> JobResult<Value> {
    if input.unwrap_or_default().abort {
        log::error!("aborting the process, as asked");
        std::process::abort();
    }
    panic!("An error occurred.");
}

export_plugin! {
    name: "fatal",
    factories: [
        Factory::new("fatal", fatal)
            .description("Panics with `An error occurred.` (retried); `{\"abort\": true}` aborts the process.")
            .retry_delay(Duration::from_secs(1)),
    ],
}
