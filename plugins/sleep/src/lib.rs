//! The `sleep` example plugin: sleeps, reporting progress and stopping early when cancelled.

use std::time::Duration;

use jobhost_plugin_api::prelude::*;

/// `{"seconds": 1.5}` or a bare `1.5`: how long to sleep.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Input {
    Bare(#[schemars(range(min = 0))] f64),
    Object {
        /// Seconds to sleep, 0 or more.
        #[schemars(range(min = 0))]
        seconds: f64,
    },
}

#[derive(Serialize, JsonSchema)]
struct Slept {
    /// The seconds slept.
    slept: f64,
}

/// Progress is reported about this often.
const PROGRESS_STEP: Duration = Duration::from_millis(250);

fn sleep(input: Input, ctx: &Context) -> JobResult<Slept> {
    let seconds = match input {
        Input::Bare(s) | Input::Object { seconds: s } => s,
    };
    let total = Duration::try_from_secs_f64(seconds).map_err(|_| {
        Failure::permanent(format!("invalid input: seconds must be a finite number >= 0, got {seconds}"))
    })?;
    let mut left = total;
    while !left.is_zero() {
        let step = left.min(PROGRESS_STEP);
        // Context::sleep polls the cancellation flag every 25 ms.
        ctx.sleep(step)?;
        left -= step;
        let done = (total - left).as_secs_f64();
        ctx.progress(done / seconds, &format!("slept {done:.2} of {seconds} s"));
    }
    Ok(Slept { slept: seconds })
}

export_plugin! {
    name: "sleep",
    factories: [
        Factory::new("sleep", sleep)
            .description("Sleeps for the given seconds, stopping early when cancelled.")
            .example(r#"{"seconds": 0.5}"#),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobhost_plugin_api::testing::TestHost;

    #[test]
    fn accepts_a_bare_number_or_an_object() {
        let host = TestHost::new();
        let factory = Factory::new("sleep", sleep);
        assert_eq!(host.run(&factory, "0").unwrap()["slept"], 0.0);
        assert_eq!(host.run(&factory, r#"{"seconds": 0.01}"#).unwrap()["slept"], 0.01);
    }

    #[test]
    fn refuses_negative_seconds_permanently() {
        let err = TestHost::new().run(&Factory::new("sleep", sleep), "-1").unwrap_err();
        assert_eq!(err.kind(), FailureKind::Permanent);
        assert!(err.message().contains("seconds must be"), "{err}");
    }

    #[test]
    fn stops_when_cancelled() {
        let host = TestHost::new();
        host.cancel();
        let err = host.run(&Factory::new("sleep", sleep), "10").unwrap_err();
        assert_eq!(err, Failure::cancelled());
    }

    use jobhost_plugin_api::FailureKind;
}
