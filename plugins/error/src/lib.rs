//! The `error` example plugin: always fails permanently (m01.remote's ErrorJob).

use jobhost_plugin_api::prelude::*;
use serde_json::Value;

fn error(_input: Value, _ctx: &Context) -> JobResult<Value> {
    Err(Failure::permanent("An error occurred."))
}

export_plugin! {
    name: "error",
    factories: [
        Factory::new("error", error).description("Always fails permanently with `An error occurred.`"),
    ],
}
