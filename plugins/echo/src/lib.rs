//! The `echo` example plugin: returns its input unchanged.

use jobhost_plugin_api::prelude::*;
use serde_json::Value;

fn echo(input: Value, ctx: &Context) -> JobResult<Value> {
    log::debug!("echoing input of job {}", ctx.job_id());
    Ok(input)
}

export_plugin! {
    name: "echo",
    factories: [
        Factory::new("echo", echo)
            .description("Returns its input unchanged.")
            .example(r#"{"foo": "bar"}"#),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobhost_plugin_api::testing::TestHost;

    #[test]
    fn returns_its_input() {
        let out = TestHost::new().run(&Factory::new("echo", echo), r#"{"foo":"bar"}"#).unwrap();
        assert_eq!(out, serde_json::json!({"foo": "bar"}));
    }
}
