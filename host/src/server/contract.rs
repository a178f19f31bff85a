//! The OpenAPI document as served: the one generated from the routes' own declarations, made
//! exact where derive attributes cannot say what the server checks. What it adds depends on the
//! running server: the factories it has now (an enum, so a generated client cannot name an
//! unknown one), whether it wants a token (security and a `401` on every route, or neither),
//! its batch limit. Everything else here is fixed: patterns, ranges, "cron or delay", the
//! error statuses every route can answer with, and links from created resources to their
//! routes for stateful clients. schemathesis checks the result against the server in CI.

use serde_json::{json, Map, Value};

use crate::service::MAX_UNIQUE_KEY_LEN;

/// What the served document depends on.
pub struct Served {
    pub factories: Vec<String>,
    /// Each factory's input schema (JSON text), where it declares one.
    pub input_schemas: Vec<(String, Option<String>)>,
    pub token: bool,
    pub max_batch_jobs: usize,
}

/// A queue name (`validate_name` in the service).
/// (Anything but `.` and `..`, spelled without a lookahead: a name not starting with a dot,
/// or a dot and a name not starting with one, or two dots and one more character at least.)
const QUEUE: &str =
    r"^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}|\.\.[A-Za-z0-9_.-]{1,62})$";
/// A job or schedule id in a path: a decimal `u64`.
const ID: &str = "^[0-9]{1,19}$";
/// A cron expression's shape: five fields, or one of the `@` aliases croner takes (in any
/// case: `@Daily` too). What each field may hold is croner's to say, and the message names
/// the field it refuses.
const CRON: &str = concat!(
    r"^\s*(@([Yy][Ee][Aa][Rr][Ll][Yy]|[Aa][Nn][Nn][Uu][Aa][Ll][Ll][Yy]|[Mm][Oo][Nn][Tt][Hh][Ll][Yy]",
    r"|[Ww][Ee][Ee][Kk][Ll][Yy]|[Dd][Aa][Ii][Ll][Yy]|[Hh][Oo][Uu][Rr][Ll][Yy])",
    r"|\S+(\s+\S+){4})\s*$"
);
const STATUSES: &str = "(waiting|scheduled|held|queued|processing|completed|error|cancelled)";
const FINISHED: &str = "(completed|error|cancelled)";
/// Ten years, the longest delay or timeout (`extract::MAX_SECONDS`).
const MAX_SECONDS: f64 = 315_360_000.0;

pub fn document(base: &Value, served: &Served) -> Value {
    let mut doc = base.clone();
    bodies(&mut doc, served);
    parameters(&mut doc);
    responses(&mut doc);
    security(&mut doc, served.token);
    links(&mut doc);
    doc
}

/// `value[a][b]...`, created as objects on the way.
fn at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut v = value;
    for key in path {
        if !v.is_object() {
            *v = Value::Object(Map::new());
        }
        v = match v {
            Value::Object(map) => map.entry(key.to_string()).or_insert(Value::Null),
            other => other,
        };
    }
    v
}

/// Merges `extra` into the schema object at `path`.
fn refine(doc: &mut Value, path: &[&str], extra: Value) {
    let target = at(doc, path);
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => target.extend(extra),
        (target, extra) => *target = extra,
    }
}

/// Replaces a property's schema, keeping its description unless the new one has its own.
fn property(doc: &mut Value, schema: &str, name: &str, mut new: Value) {
    let target = at(doc, &["components", "schemas", schema, "properties", name]);
    if let (Some(description), Some(new)) = (target.get("description").cloned(), new.as_object_mut()) {
        new.entry("description").or_insert(description);
    }
    *target = new;
}

/// Any JSON value, `null` included.
fn any(description: &str) -> Value {
    json!({"description": description})
}

fn nullable_number(min: f64, max: f64, description: &str) -> Value {
    json!({"type": ["number", "null"], "minimum": min, "maximum": max, "description": description})
}

fn bodies(doc: &mut Value, served: &Served) {
    let job_name = if served.factories.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": served.factories})
    };
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    let zone = json!({"type": ["string", "null"], "enum": zones.iter().map(|z| json!(z)).chain([Value::Null]).collect::<Vec<_>>()});
    let priority = json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX});
    let attempts = json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX});
    let queue = json!({"type": ["string", "null"], "pattern": QUEUE});

    for schema in ["AddJobRequest", "ScheduleRequest"] {
        property(doc, schema, "job", job_name.clone());
        property(doc, schema, "input", any("The job's input, any JSON (default `null`)."));
        property(doc, schema, "queue", queue.clone());
        property(doc, schema, "priority", priority.clone());
        property(doc, schema, "max_attempts", attempts.clone());
        property(
            doc,
            schema,
            "timeout_seconds",
            nullable_number(0.001, MAX_SECONDS, "Per-attempt time limit, 1 ms to ten years."),
        );
    }
    property(
        doc,
        "AddJobRequest",
        "delay_seconds",
        nullable_number(0.0, MAX_SECONDS, "Run no sooner than this many seconds from now (up to ten years)."),
    );
    property(doc, "AddJobRequest", "run_at", json!({"type": ["string", "null"], "format": "date-time"}));
    property(
        doc,
        "AddJobRequest",
        "unique_key",
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": MAX_UNIQUE_KEY_LEN, "pattern": "^[^\\u0000]*$"}),
    );
    // Not both a delay and a time.
    refine(
        doc,
        &["components", "schemas", "AddJobRequest"],
        json!({"not": {"required": ["delay_seconds", "run_at"], "properties": {"delay_seconds": {"type": "number"}, "run_at": {"type": "string"}}}}),
    );

    property(
        doc,
        "AddJobRequest",
        "limit_key",
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": MAX_UNIQUE_KEY_LEN, "pattern": "^[^\\u0000]*$"}),
    );
    // Parents: stored jobs by id; in a batch, also the batch's own jobs by `ref`.
    let on_failure = json!({"type": ["string", "null"], "enum": ["cancel", "run", null]});
    // An id as a decimal string (as the API gives ids) or as a number.
    let id = json!({"oneOf": [{"type": "string", "pattern": ID}, {"type": "integer", "minimum": 0, "maximum": 9_999_999_999_999_999_999u64}]});
    let by_id = json!({"type": "object", "additionalProperties": false, "required": ["id"],
        "properties": {"id": id, "on_failure": on_failure}});
    let by_ref = json!({"type": "object", "additionalProperties": false, "required": ["ref"],
        "properties": {"ref": {"type": "string", "minLength": 1, "maxLength": 64}, "on_failure": on_failure}});
    let parents = |alternatives: Vec<Value>| {
        json!({"type": "array", "maxItems": crate::service::MAX_PARENTS, "uniqueItems": true,
        "description": "Jobs this one waits for (see `DependencyRef`).", "items": {"oneOf": alternatives}})
    };
    property(doc, "AddJobRequest", "depends_on", parents(vec![id.clone(), by_id.clone()]));
    // A job with parents waits for them: not for a start, and it holds no unique key.
    for other in [json!({"hold": {"const": true}}), json!({"unique_key": {"type": "string"}})] {
        let mut properties = json!({"depends_on": {"type": "array", "minItems": 1}});
        let name = other.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
        properties[&name] = other[&name].clone();
        let all_of = at(doc, &["components", "schemas", "AddJobRequest", "allOf"]);
        if !all_of.is_array() {
            *all_of = json!([]);
        }
        if let Some(list) = all_of.as_array_mut() {
            list.push(json!({"not": {"required": ["depends_on", name], "properties": properties}}));
        }
    }

    // A batch's jobs are single jobs without a unique key, which may name each other.
    let mut batch_job = at(doc, &["components", "schemas", "AddJobRequest"]).clone();
    if let Some(properties) = batch_job.get_mut("properties").and_then(Value::as_object_mut) {
        properties.remove("unique_key");
        properties.insert("depends_on".into(), parents(vec![id, by_id, by_ref]));
        properties.insert("ref".into(), json!({"type": ["string", "null"], "minLength": 1, "maxLength": 64}));
    }
    if let Some(properties) = at(doc, &["components", "schemas", "AddJobRequest"])
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        properties.remove("ref");
    }
    // A group's callback: a job that depends on every member, and on nothing else.
    let mut callback = batch_job.clone();
    if let Some(properties) = callback.get_mut("properties").and_then(Value::as_object_mut) {
        for name in ["depends_on", "ref", "hold"] {
            properties.remove(name);
        }
    }
    if let Some(object) = callback.as_object_mut() {
        object.remove("allOf");
    }
    *at(doc, &["components", "schemas", "CallbackJobRequest"]) = callback;
    for name in ["on_complete", "on_success"] {
        property(
            doc,
            "GroupRequest",
            name,
            json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/CallbackJobRequest"}]}),
        );
    }
    property(doc, "GroupRequest", "name", json!({"type": ["string", "null"], "maxLength": 200}));
    *at(doc, &["components", "schemas", "BatchJobRequest"]) = batch_job;
    property(
        doc,
        "BatchRequest",
        "jobs",
        json!({"type": "array", "minItems": 1, "maxItems": served.max_batch_jobs, "items": {"$ref": "#/components/schemas/BatchJobRequest"}}),
    );

    // A schedule is a cron item (with an optional zone) or a delay item.
    property(doc, "ScheduleRequest", "cron", json!({"type": ["string", "null"], "pattern": CRON}));
    property(doc, "ScheduleRequest", "timezone", zone.clone());
    property(
        doc,
        "ScheduleRequest",
        "delay_seconds",
        nullable_number(0.001, MAX_SECONDS, "A one-shot delay item: one job this many seconds from now."),
    );
    refine(
        doc,
        &["components", "schemas", "ScheduleRequest"],
        json!({"oneOf": [
            {"required": ["cron"], "properties": {"cron": {"type": "string"}, "delay_seconds": {"type": "null"}}},
            {"required": ["delay_seconds"], "properties": {"delay_seconds": {"type": "number"}, "cron": {"type": "null"}, "timezone": {"type": "null"}}}
        ]}),
    );
    property(doc, "SchedulePatchRequest", "input", any("The input of the jobs it makes from now on."));
    property(doc, "SchedulePatchRequest", "queue", queue.clone());
    // A bulk operation's filter names a queue and a factory by the rule every name follows.
    property(doc, "OperationRequest", "queue", queue.clone());
    property(doc, "OperationRequest", "job", queue);
    property(
        doc,
        "SchedulePatchRequest",
        "priority",
        json!({"type": ["integer", "null"], "minimum": i32::MIN, "maximum": i32::MAX}),
    );
    property(doc, "SchedulePatchRequest", "max_attempts", attempts);
    property(doc, "SchedulePatchRequest", "cron", json!({"type": ["string", "null"], "pattern": CRON}));
    property(doc, "SchedulePatchRequest", "timezone", zone);

    // A limit gives at least one part, each in range.
    property(
        doc,
        "LimitRequest",
        "concurrency",
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX}),
    );
    property(
        doc,
        "LimitRequest",
        "per_key",
        json!({"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX}),
    );
    property(doc, "RateView", "starts", json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}));
    property(doc, "RateView", "per_seconds", json!({"type": "number", "minimum": 0.001, "maximum": 86400}));
    refine(
        doc,
        &["components", "schemas", "LimitRequest"],
        json!({"anyOf": [
            {"required": ["concurrency"], "properties": {"concurrency": {"type": "integer"}}},
            {"required": ["per_key"], "properties": {"per_key": {"type": "integer"}}},
            {"required": ["rate"], "properties": {"rate": {"type": "object"}}}
        ]}),
    );

    typed_jobs(doc, served);

    // What the server sends: inputs and results are any JSON, `null` until there is one.
    property(doc, "JobView", "input", any("The job's input."));
    property(doc, "JobView", "result", any("The factory's result once `completed`, else `null`."));
    property(doc, "ScheduleView", "input", any("The input of the jobs it makes."));
}

/// A job (single or in a batch) as one alternative per factory: `job` that factory's name and
/// `input` its schema, so a client generated from the document is typed and a fuzzer sends
/// inputs the server takes. Each schema's `$defs` become components named `FACTORY.Def`.
fn typed_jobs(doc: &mut Value, served: &Served) {
    if served.input_schemas.is_empty() {
        return;
    }
    for base in ["AddJobRequest", "BatchJobRequest", "CallbackJobRequest"] {
        let template = at(doc, &["components", "schemas", base]).clone();
        let mut variants = Vec::new();
        for (factory, schema) in &served.input_schemas {
            let mut variant = template.clone();
            let input = match schema.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
                Some(schema) => embed(doc, factory, schema),
                None => any("The job's input, any JSON (default `null`)."),
            };
            // An input the schema refuses as `null` must be given.
            let needs_input = !jsonschema::is_valid(&input_for_check(doc, &input), &Value::Null);
            *at(&mut variant, &["properties", "job"]) = json!({"type": "string", "const": factory});
            *at(&mut variant, &["properties", "input"]) = input;
            if needs_input {
                let required = at(&mut variant, &["required"]);
                match required.as_array_mut() {
                    Some(list) => list.push(json!("input")),
                    None => *required = json!(["job", "input"]),
                }
            }
            variants.push(variant);
        }
        *at(doc, &["components", "schemas", base]) = json!({"oneOf": variants});
    }
}

/// `schema` (a factory's, as schemars writes it) made part of the document: its `$defs` moved
/// to `components/schemas` as `FACTORY.Name` and its references pointed there.
fn embed(doc: &mut Value, factory: &str, mut schema: Value) -> Value {
    let prefix = format!("#/components/schemas/{factory}.");
    let defs = schema.as_object_mut().and_then(|s| {
        s.remove("$schema");
        s.remove("$defs")
    });
    repoint(&mut schema, &prefix);
    if let Some(Value::Object(defs)) = defs {
        for (name, mut def) in defs {
            repoint(&mut def, &prefix);
            *at(doc, &["components", "schemas", &format!("{factory}.{name}")]) = def;
        }
    }
    schema
}

fn repoint(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("{prefix}{name}");
                        }
                    }
                    other => repoint(other, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| repoint(v, prefix)),
        _ => {}
    }
}

/// `input` with the document's components beside it, so its references resolve when it is
/// checked on its own.
fn input_for_check(doc: &Value, input: &Value) -> Value {
    let mut whole = input.clone();
    if let (Some(map), Some(components)) = (whole.as_object_mut(), doc.get("components")) {
        map.insert("components".to_owned(), components.clone());
    }
    whole
}

/// The operation objects, with their path and method.
fn operations(doc: &mut Value) -> Vec<(String, String, &mut Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    out.push((path.clone(), method.clone(), op));
                }
            }
        }
    }
    out
}

fn parameter_schema<'a>(op: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    op.get_mut("parameters")?
        .as_array_mut()?
        .iter_mut()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get_mut("schema")
}

fn parameters(doc: &mut Value) {
    let list = |one: &str| format!(r"^(\s*{one}\s*(,\s*{one}\s*)*)?$");
    for (path, method, op) in operations(doc) {
        let mut set = |name: &str, schema: Value| {
            if let Some(target) = parameter_schema(op, name) {
                *target = schema;
            }
        };
        set("id", json!({"type": "string", "pattern": ID}));
        set("name", json!({"type": "string", "pattern": QUEUE}));
        set("kind", json!({"type": "string", "enum": ["queue", "factory"]}));
        match (path.as_str(), method.as_str()) {
            ("/v1/jobs", "get") | ("/v1/jobs/summaries", "get") => {
                set("status", json!({"type": "string", "pattern": list(STATUSES)}));
                // Larger pages are cut to `limits.max_page`, not refused.
                set("limit", json!({"type": "integer", "minimum": 1, "maximum": usize::MAX}));
                set("after", json!({"type": "string", "pattern": "^[0-9]{0,19}$"}));
            }
            ("/v1/jobs/{id}/dependents", "get") => {
                set("after", json!({"type": "string", "pattern": "^[0-9]{0,19}$"}))
            }
            ("/v1/jobs/count", "get") => set("status", json!({"type": "string", "pattern": list(STATUSES)})),
            ("/v1/jobs", "delete") => set("status", json!({"type": "string", "pattern": list(FINISHED)})),
            ("/v1/jobs/retry", "post") => {
                set("status", json!({"type": "string", "pattern": list("(error|cancelled)")}))
            }
            ("/v1/cron/next", "get") => {
                set("expr", json!({"type": "string", "pattern": CRON}));
                set("after", json!({"type": "string", "format": "date-time"}));
                set("count", json!({"type": "integer", "minimum": 1, "maximum": 1000}));
                let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
                set("tz", json!({"type": "string", "enum": zones}));
            }
            // Any text: a bad expression, zone, time or count is the answer's `error`.
            ("/v1/cron/check", "get") => {
                set("count", json!({"type": "integer", "minimum": 0, "maximum": usize::MAX}))
            }
            _ => {}
        }
    }
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// The errors a route can answer with besides its own: a bad path segment, a body over the
/// limit, a store that cannot write.
fn responses(doc: &mut Value) {
    for (path, method, op) in operations(doc) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        let mut add = |status: &str, description: &str| {
            responses.entry(status.to_owned()).or_insert_with(|| error(description));
        };
        if path.contains('{') {
            add("400", "`invalid_request`: a path segment that is not UTF-8");
        }
        add("421", "`host_not_allowed`: the Host header names no name this server answers to");
        if method != "get" {
            add("403", "`cross_site`: a browser sent it for a page of another site or origin");
            add("415", "`unsupported_media_type`: a body that is not `application/json`");
        }
        if matches!(method.as_str(), "post" | "patch")
            && matches!(path.as_str(), "/v1/jobs" | "/v1/jobs/batch" | "/v1/schedules" | "/v1/schedules/{id}")
        {
            add("413", "`body_too_large`");
            add("408", "`body_timeout`: the body came slower than 64 KiB a second after header_timeout");
        }
        let creating =
            method == "post" && matches!(path.as_str(), "/v1/jobs" | "/v1/jobs/batch" | "/v1/schedules");
        if creating {
            add("409", "`idempotent_result_gone`: a repeat (same Idempotency-Key) of a request whose job or schedule has been deleted since");
            let dependencies = match path.as_str() {
                "/v1/jobs" => "; `invalid_dependencies`: a parent that is not stored, or named twice",
                "/v1/jobs/batch" => "; `invalid_batch` (its `items` give each refused job's index and code): jobs that wait for each other in a cycle, a `ref` given twice or named by no job, a parent that is not stored",
                _ => "",
            };
            add(
                "422",
                &format!("`idempotency_key_reused`: the Idempotency-Key came with another request within its window{dependencies}"),
            );
            add(
                "503",
                "`store_unavailable`: the store cannot write now (e.g. a full disk), nothing was changed; or its answer was lost at commit and the outcome is unknown (the message says which): repeat the request with the same Idempotency-Key",
            );
        }
        if path.starts_with("/v1/jobs") || path.starts_with("/v1/schedules") {
            add(
                "503",
                "`store_unavailable`: the store cannot write now (e.g. a full disk); nothing was changed",
            );
        }
        if creating {
            let parameters = op.as_object_mut().map(|op| op.entry("parameters").or_insert_with(|| json!([])));
            if let Some(Value::Array(parameters)) = parameters {
                parameters.push(json!({
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "Makes the request safe to repeat: within `idempotency_window` (24 h) a repeat with the same key and the same request gets what the first made, as it is now, with `Idempotent-Replayed: true`, and makes nothing. 1 to 255 visible ASCII characters (a UUID), bare or quoted.",
                    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"}
                }));
            }
        }
    }
}

/// Security exactly as the server checks it: a bearer token on every route but health when a
/// token is configured, none at all otherwise.
fn security(doc: &mut Value, token: bool) {
    let Some(root) = doc.as_object_mut() else { return };
    if !token {
        root.remove("security");
        if let Some(components) = root.get_mut("components").and_then(Value::as_object_mut) {
            components.remove("securitySchemes");
        }
        for (_, _, op) in operations(doc) {
            if let Some(op) = op.as_object_mut() {
                op.remove("security");
            }
        }
        return;
    }
    root.insert("security".to_owned(), json!([{"bearer": []}]));
    refine(doc, &["components", "securitySchemes", "bearer"], json!({"type": "http", "scheme": "bearer"}));
    for (_, _, op) in operations(doc) {
        let open = op.get("security") == Some(&json!([{}]));
        if !open {
            refine(op, &["responses", "401"], error("`unauthorized`: no bearer token, or a wrong one"));
        }
    }
}

/// Links from what a creation returns to the routes that take it, for stateful clients.
fn links(doc: &mut Value) {
    let job_links = json!({
        "GetJob": {"operationId": "get_job", "parameters": {"id": "$response.body#/id"}},
        "CancelJob": {"operationId": "cancel_job", "parameters": {"id": "$response.body#/id"}},
        "RetryJob": {"operationId": "retry_job", "parameters": {"id": "$response.body#/id"}},
        "StartJob": {"operationId": "start_job", "parameters": {"id": "$response.body#/id"}},
    });
    let schedule_links = json!({
        "GetSchedule": {"operationId": "get_schedule", "parameters": {"id": "$response.body#/id"}},
        "UpdateSchedule": {"operationId": "update_schedule", "parameters": {"id": "$response.body#/id"}},
        "RemoveSchedule": {"operationId": "remove_schedule", "parameters": {"id": "$response.body#/id"}},
    });
    refine(doc, &["paths", "/v1/jobs", "post", "responses", "201", "links"], job_links.clone());
    refine(doc, &["paths", "/v1/jobs", "post", "responses", "200", "links"], job_links);
    refine(doc, &["paths", "/v1/schedules", "post", "responses", "201", "links"], schedule_links);
}
