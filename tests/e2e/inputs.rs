//! Typed inputs: a real plugin built against the SDK (nested, optional, enum and array fields)
//! publishes its input schema, and every submission path refuses an input that does not match
//! it, naming each field by JSON pointer, before anything is stored.

use std::time::Duration;

use jobhost_tests::server::Server;
use jobhost_tests::{artefacts, jobhost, library_file, plugin_dir};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(30);

fn serve(dir: &TempDir) -> (Server, TempDir) {
    let plugins = plugin_dir(&["echo", "sleep"]);
    std::fs::copy(artefacts().fixture("typed"), plugins.path().join(library_file("typed"))).unwrap();
    (Server::start(&dir.path().join("data"), plugins.path(), &[]), plugins)
}

fn order() -> Value {
    json!({
        "customer": {"name": "Ada", "age": 36},
        "items": [{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 1}],
        "priority": "high",
        "note": null
    })
}

/// The pointers an `invalid_input` error names.
fn pointers(error: &Value) -> Vec<String> {
    error["fields"].as_array().unwrap().iter().map(|f| f["pointer"].as_str().unwrap().to_owned()).collect()
}

fn count(server: &Server) -> usize {
    server.get("/v1/jobs?limit=100").body["jobs"].as_array().unwrap().len()
}

#[test]
fn every_submission_path_refuses_an_input_its_schema_refuses_naming_each_field() {
    let dir = TempDir::new().unwrap();
    let (server, plugins) = serve(&dir);

    // The schema is published; free-form factories say they take any JSON.
    let pack = server.get("/v1/factories/pack").body;
    assert_eq!(pack["typed"], true, "{pack}");
    assert_eq!(pack["input_schema"]["properties"]["items"]["minItems"], 1, "{pack}");
    assert!(pack["output_schema"]["properties"]["units"].is_object(), "{pack}");
    let echo = server.get("/v1/factories/echo").body;
    assert_eq!(echo["typed"], false, "{echo}");
    assert!(echo["input_schema"].get("type").is_none(), "{echo}");
    assert_eq!(server.get("/v1/factories/nope").code(), "unknown_job");
    let sleep = server.get("/v1/factories/sleep").body;
    assert_eq!(sleep["typed"], true, "{sleep}");

    // A good order runs.
    let id = server.post("/v1/jobs", &json!({"job": "pack", "input": order()})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.wait_finished(&id, LONG)["result"], json!({"lines": 2, "units": 3}));

    // Each bad one is refused with the field's pointer.
    let cases: [(Value, &str); 7] = [
        (json!({"customer": {"name": 5}}), "/customer/name"),
        (json!({"items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 0}]}), "/items/1/quantity"),
        (json!({"items": []}), "/items"),
        (json!({"priority": "urgent"}), "/priority"),
        (json!({"customer": {"name": "Kid", "age": 12}}), "/customer/age"),
        (json!({"surprise": true}), ""),
        (json!({"note": 7}), "/note"),
    ];
    for (change, pointer) in cases {
        let mut input = order();
        for (key, value) in change.as_object().unwrap() {
            input[key] = value.clone();
        }
        let refused = server.post("/v1/jobs", &json!({"job": "pack", "input": input}));
        assert_eq!((refused.status, refused.code()), (400, "invalid_input"), "{refused:?}");
        assert_eq!(pointers(&refused.body["error"]), [pointer], "{refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(pointer), "{refused:?}");
    }
    let missing = server.post("/v1/jobs", &json!({"job": "pack", "input": {"items": []}}));
    assert_eq!(missing.code(), "invalid_input", "{missing:?}");
    // Each missing field by its own pointer.
    let named = pointers(&missing.body["error"]);
    for field in ["/customer", "/priority", "/items"] {
        assert!(named.iter().any(|p| p == field), "{field} not named: {missing:?}");
    }
    // Past 20 failing fields, a last entry says there were more.
    let many: Vec<Value> = (0..30).map(|_| json!({"sku": 1, "quantity": 0})).collect();
    let flood = server.post(
        "/v1/jobs",
        &json!({"job": "pack", "input": {"customer": {"name": "A"}, "priority": "low", "items": many}}),
    );
    let fields = flood.body["error"]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 21, "{flood:?}");
    assert!(fields[20]["message"].as_str().unwrap().contains("more fields fail"), "{flood:?}");
    // A whole-number float in an integer field is the integer the schema let through.
    let mut whole = order();
    whole["items"][0]["quantity"] = json!(2.0);
    let id = server.post("/v1/jobs", &json!({"job": "pack", "input": whole})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.wait_finished(&id, LONG)["result"], json!({"lines": 2, "units": 3}));
    let negative = server.post("/v1/jobs", &json!({"job": "sleep", "input": {"seconds": -1}}));
    assert_eq!(pointers(&negative.body["error"]), ["/seconds"], "{negative:?}");

    // A batch with one bad item is refused whole, naming the item and the field.
    let mut bad = order();
    bad["priority"] = json!("soon");
    let batch = json!({"jobs": [{"job": "pack", "input": order()}, {"job": "pack", "input": bad}]});
    let refused = server.post("/v1/jobs/batch", &batch);
    assert_eq!(refused.code(), "invalid_batch", "{refused:?}");
    let item = &refused.body["error"]["items"][0];
    assert_eq!(
        (item["index"].clone(), item["code"].clone()),
        (json!(1), json!("invalid_input")),
        "{refused:?}"
    );
    assert_eq!(pointers(item), ["/priority"]);

    // Schedules: at creation and when their input changes.
    let refused = server.post("/v1/schedules", &json!({"job": "pack", "input": bad, "cron": "0 3 * * *"}));
    assert_eq!(refused.code(), "invalid_input", "{refused:?}");
    let made = server.post("/v1/schedules", &json!({"job": "pack", "input": order(), "cron": "0 3 * * *"}));
    assert_eq!(made.status, 201, "{made:?}");
    let path = format!("/v1/schedules/{}", made.body["id"].as_str().unwrap());
    let refused = server.patch(&path, &json!({"input": {"customer": {"name": "Ada"}}}));
    assert_eq!(refused.code(), "invalid_input", "{refused:?}");

    // The CLI names the field.
    let cli = jobhost(["add", "--server", &server.url, "pack", r#"{"customer": {"name": 1}}"#]);
    assert_eq!(cli.code, 1, "{cli:?}");
    assert!(cli.stderr.contains("/customer/name") && cli.stderr.contains("invalid_input"), "{cli:?}");

    let shown = jobhost(["factories", "show", "pack", "--server", &server.url]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("input schema") && shown.stdout.contains("\"minItems\": 1"), "{shown:?}");
    let checked = jobhost(["plugins", "check", "--json", plugins.path().to_str().unwrap()]);
    let listed: Value = serde_json::from_str(&checked.stdout).unwrap();
    let typed = listed["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "typed").unwrap();
    assert_eq!(typed["factories"][0]["input_schema"]["properties"]["items"]["minItems"], 1, "{typed}");

    // `plugins run` checks as the server does.
    let typed = plugins.path().join(library_file("typed"));
    let run = jobhost(["plugins", "run", typed.to_str().unwrap(), "pack", r#"{"customer": {"name": 1}}"#]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("/customer/name") && run.stderr.contains("invalid_input"), "{run:?}");

    // Nothing refused was stored (the good order and the whole-number one ran).
    assert_eq!(count(&server), 2);
}

#[test]
fn a_plugin_built_before_schemas_loads_and_takes_any_json() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    std::fs::copy(artefacts().fixture("no_schemas"), plugins.path().join(library_file("no_schemas")))
        .unwrap();
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let old = server.get("/v1/factories/old_count").body;
    assert_eq!((old["typed"].clone(), old["input_schema"].clone()), (json!(false), json!(true)), "{old}");
    // Accepted at the door; the plugin's own decoding refuses it when it runs.
    let added = server.post("/v1/jobs", &json!({"job": "old_count", "input": {"n": "x"}}));
    assert_eq!(added.status, 201, "{added:?}");
    let failed = server.wait_finished(added.body["id"].as_str().unwrap(), LONG);
    assert_eq!(failed["status"], "error", "{failed}");
    let id = server.post("/v1/jobs", &json!({"job": "old_count", "input": {"n": 7}})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.wait_finished(&id, LONG)["result"], 7);
}
