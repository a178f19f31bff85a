//! Finding out why jobs fail, through the API a dashboard and a script use: lists carry each
//! job's latest error, and `error=` / `input=` search the lists (bounded per page, saying how
//! far they searched, and going on with `next`).

use std::time::Duration;

use jobhost_tests::server::Server;
use jobhost_tests::{plugin_dir, EXAMPLE_PLUGINS};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

fn ids(page: &Value) -> Vec<String> {
    page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn failed_lists_show_the_latest_error_and_search_by_error_text_and_input_field() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let failed = |customer: &str| {
        let answer =
            server.post("/v1/jobs", &json!({"job": "error", "input": {"customer": customer, "n": 5}}));
        answer.body["id"].as_str().unwrap().to_owned()
    };
    let (acme, zeta) = (failed("acme"), failed("zeta"));
    let slow = server
        .post("/v1/jobs", &json!({"job": "sleep", "input": 30, "timeout_seconds": 1, "max_attempts": 1}));
    let slow = slow.body["id"].as_str().unwrap().to_owned();
    for id in [&acme, &zeta, &slow] {
        assert_eq!(server.wait_finished(id, LONG)["status"], "error");
    }

    let list = server.get("/v1/jobs/summaries?status=error");
    let last: Vec<&str> =
        list.body["jobs"].as_array().unwrap().iter().map(|j| j["last_error"].as_str().unwrap()).collect();
    assert_eq!(last.len(), 3);
    assert!(last[0].contains("An error occurred."), "{last:?}");
    assert!(last[2].contains("timed out"), "{last:?}");
    assert_eq!(list.body.get("searched"), None, "no search, no count of it");

    // Any case; the full list and the summaries alike.
    for path in ["/v1/jobs", "/v1/jobs/summaries"] {
        let found = server.get(&format!("{path}?error=TIMED%20OUT"));
        assert_eq!((ids(&found.body), &found.body["searched"]), (vec![slow.clone()], &json!(3)), "{found:?}");
    }
    let found = server.get("/v1/jobs?input=customer%3Dacme");
    assert_eq!(ids(&found.body), std::slice::from_ref(&acme));
    assert_eq!(ids(&server.get("/v1/jobs?input=n%3D5&order=newest").body), [zeta.clone(), acme.clone()]);
    assert_eq!(ids(&server.get("/v1/jobs?input=customer%3Dacme&error=occurred&status=error").body), [acme]);
    assert!(ids(&server.get("/v1/jobs?input=customer%3Dnobody").body).is_empty());
    // A page of one match goes on after it.
    let first = server.get("/v1/jobs?input=n%3D5&limit=1");
    assert_eq!(first.body["next"], json!(ids(&first.body)[0]));

    for (query, says) in [
        ("input=customer", "is not `field=value`"),
        ("input=%3Dacme", "is not `field=value`"),
        (&*format!("error={}", "x".repeat(201)), "longer than 200"),
    ] {
        let refused = server.get(&format!("/v1/jobs?{query}"));
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{query}: {refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(says), "{refused:?}");
    }
}

#[test]
fn a_search_examines_at_most_ten_thousand_jobs_a_page_and_goes_on_with_next() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    for batch in 0..2 {
        let jobs: Vec<Value> = (0..5_001)
            .map(|i| json!({"job": "echo", "hold": true, "input": {"n": batch * 5_001 + i}}))
            .collect();
        assert_eq!(server.post("/v1/jobs/batch", &json!({"jobs": jobs})).status, 201);
    }
    // The one match is the 10,002nd job: the first page stops at the bound, the next finds it.
    let first = server.get("/v1/jobs/summaries?input=n%3D10001");
    assert_eq!((ids(&first.body).len(), &first.body["searched"]), (0, &json!(10_000)), "{:?}", first.body);
    let next = first.body["next"].as_str().expect("a search stopped at its bound goes on").to_owned();
    let second = server.get(&format!("/v1/jobs/summaries?input=n%3D10001&after={next}"));
    assert_eq!(
        (ids(&second.body), &second.body["searched"], &second.body["next"]),
        (vec!["10002".to_owned()], &json!(2), &Value::Null)
    );
}
