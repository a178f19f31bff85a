//! Where logs go and how they look: stderr (journald picks it up under systemd), filtered by
//! `JOBHOST_LOG` (env_logger syntax, e.g. `debug` or `jobhost=debug`), as text or as JSON
//! lines (`log_format`, or `JOBHOST_LOG_FORMAT`, which wins and which worker processes
//! inherit). Structured fields (`job`, `factory`, `queue`, `attempt`, ...) follow the message
//! in text and are keys of their own in JSON.

use std::io::Write;

use crate::config::LogFormat;

/// The environment variable that chooses the format (and passes it to worker processes).
pub const FORMAT_VAR: &str = "JOBHOST_LOG_FORMAT";

/// Installs the logger once; `format` unless the environment says otherwise.
pub fn init(default_filter: &str, format: LogFormat) {
    let format = match std::env::var(FORMAT_VAR).ok().as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ => format,
    };
    // Worker processes started from here log the same way. Called once at start, before any
    // other thread exists or reads the environment.
    std::env::set_var(FORMAT_VAR, format.as_str());
    // sled's own lines are off unless asked for (`JOBHOST_LOG=info,sled=warn`): it logs its
    // I/O errors as debug dumps, which the store reports itself in words.
    let default_filter = format!("{default_filter},sled=off");
    let env = env_logger::Env::default().filter_or("JOBHOST_LOG", default_filter);
    let mut builder = env_logger::Builder::from_env(env);
    match format {
        LogFormat::Text => builder.format_timestamp_micros(),
        LogFormat::Json => builder.format(json_line),
    };
    let _ = builder.try_init();
}

/// The logger of a worker process: JSON lines whatever the host's format, since the host reads
/// them and logs each as a record of its own (see `workers::death`); `JOBHOST_LOG` filters.
pub fn init_worker() {
    let env = env_logger::Env::default().filter_or("JOBHOST_LOG", "info");
    let _ = env_logger::Builder::from_env(env).format(json_line).try_init();
}

/// `{"ts": ..., "level": ..., "target": ..., "message": ..., <fields>}` on one line.
fn json_line(out: &mut env_logger::fmt::Formatter, record: &log::Record<'_>) -> std::io::Result<()> {
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), crate::clock::rfc3339(crate::clock::SystemClock.now_micros()).into());
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    let mut fields = Fields(&mut line);
    let _ = record.key_values().visit(&mut fields);
    writeln!(out, "{}", serde_json::Value::Object(line))
}

struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let value = match (value.to_u64(), value.to_i64(), value.to_bool()) {
            (Some(n), _, _) => n.into(),
            (_, Some(n), _) => n.into(),
            (_, _, Some(b)) => b.into(),
            _ => value.to_string().into(),
        };
        self.0.insert(key.as_str().to_owned(), value);
        Ok(())
    }
}
