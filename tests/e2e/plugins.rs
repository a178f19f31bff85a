//! Plugins through the real loader: the four examples, every rejection case, the contained
//! panic, the log bridge, and the `plugins check` / `plugins run` commands.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use jobhost::plugins::{LoadOptions, NoProgress, Registry, Resolution, RunContext};
use jobhost_plugin_api::FailureKind;
use jobhost_tests::{artefacts, jobhost, library_file, plugin_dir, CliOutput, EXAMPLE_PLUGINS};
use serde_json::{json, Value};

fn load(dir: &Path) -> Registry {
    Registry::load_dirs(LoadOptions::default(), &[dir])
}

/// Loads `dir` and asserts that exactly `file` was rejected, with a reason containing `reason`,
/// and that the other plugins in the directory still loaded.
fn check_rejected(dir: &Path, file: &Path, reason: &str, still_loaded: &[&str]) {
    let registry = load(dir);
    let rejected: Vec<String> = registry.rejected().iter().map(ToString::to_string).collect();
    assert_eq!(rejected.len(), 1, "expected one rejection, got {rejected:#?}");
    let line = &rejected[0];
    assert!(line.starts_with(&file.display().to_string()), "rejection must name the file: {line}");
    assert!(line.contains(reason), "expected {reason:?} in: {line}");
    assert!(!line.contains('\n'), "rejection must be one line: {line:?}");
    assert_eq!(registry.factory_names(), still_loaded, "the other plugins must still load");
}

fn run_json(registry: &Registry, factory: &str, input: Value) -> Result<Value, jobhost_plugin_api::Failure> {
    let factory = registry.get(factory).unwrap_or_else(|| panic!("factory {factory} registered"));
    factory.run_once(&input.to_string()).map(|out| serde_json::from_str(&out).expect("result is JSON"))
}

#[test]
fn all_four_plugins_load_in_one_process_and_run_through_the_abi() {
    let dir = plugin_dir(&EXAMPLE_PLUGINS);
    let registry = load(dir.path());
    assert!(registry.rejected().is_empty(), "{:?}", registry.rejected());
    let plugins: Vec<_> = registry.plugins().iter().map(|p| (p.name.as_str(), p.factories.clone())).collect();
    assert_eq!(
        plugins,
        [
            ("echo", vec!["echo".to_owned()]),
            ("error", vec!["error".to_owned()]),
            ("fatal", vec!["fatal".to_owned()]),
            ("sleep", vec!["sleep".to_owned()]),
        ]
    );

    assert_eq!(run_json(&registry, "echo", json!({"foo": "bar"})).unwrap(), json!({"foo": "bar"}));
    assert_eq!(run_json(&registry, "sleep", json!({"seconds": 0.01})).unwrap(), json!({"slept": 0.01}));
    assert_eq!(run_json(&registry, "sleep", json!(0)).unwrap(), json!({"slept": 0.0}));

    let error = run_json(&registry, "error", Value::Null).unwrap_err();
    assert_eq!((error.kind(), error.message()), (FailureKind::Permanent, "An error occurred."));

    let fatal = registry.get("fatal").unwrap();
    assert_eq!(fatal.defaults().retry_delay, Some(std::time::Duration::from_secs(1)));
    assert_eq!(fatal.info().plugin, "fatal");
}

#[test]
fn a_panicking_job_becomes_a_retryable_failure_and_the_process_goes_on() {
    let dir = plugin_dir(&["fatal", "echo"]);
    let registry = load(dir.path());
    for _ in 0..3 {
        let failure = run_json(&registry, "fatal", Value::Null).unwrap_err();
        assert_eq!((failure.kind(), failure.message()), (FailureKind::Retryable, "An error occurred."));
    }
    assert_eq!(run_json(&registry, "echo", json!([1, 2])).unwrap(), json!([1, 2]));
}

#[test]
fn input_that_does_not_fit_the_factory_is_a_permanent_invalid_input_failure() {
    let dir = plugin_dir(&["sleep"]);
    let registry = load(dir.path());
    let failure = run_json(&registry, "sleep", json!({"seconds": "soon"})).unwrap_err();
    assert_eq!(failure.kind(), FailureKind::Permanent);
    assert!(failure.message().starts_with("invalid input: "), "{failure}");
}

#[test]
fn a_running_job_sees_the_cancellation_flag() {
    let dir = plugin_dir(&["sleep"]);
    let registry = load(dir.path());
    let cancel = AtomicBool::new(true);
    let ctx = RunContext { job_id: 9, attempt: 1, cancel: &cancel, progress: &NoProgress, parents: None };
    let started = std::time::Instant::now();
    let outcome = registry.get("sleep").unwrap().run(&ctx, "30");
    assert!(outcome.is_err(), "a cancelled sleep must not report success");
    assert!(started.elapsed().as_secs() < 10, "a cancelled 30 s sleep must stop early");
}

#[test]
fn a_text_file_named_like_a_library_is_rejected() {
    let dir = plugin_dir(&["echo"]);
    let bogus = dir.path().join("x.so");
    fs::write(&bogus, "not a library\n").unwrap();
    check_rejected(dir.path(), &bogus, "not a loadable shared library", &["echo"]);
}

#[test]
fn a_library_without_the_root_module_is_rejected() {
    let dir = plugin_dir(&["echo"]);
    let lib = dir.path().join("libnothing.so");
    fs::copy(artefacts().fixture("no_root_module"), &lib).unwrap();
    check_rejected(dir.path(), &lib, "not a jobhost plugin", &["echo"]);
}

#[test]
fn a_library_with_an_incompatible_layout_is_rejected() {
    let dir = plugin_dir(&["echo"]);
    let lib = dir.path().join("libbadlayout.so");
    fs::copy(artefacts().fixture("bad_layout"), &lib).unwrap();
    check_rejected(dir.path(), &lib, "ABI layout does not match", &["echo"]);
}

#[test]
fn a_library_built_against_an_incompatible_sdk_version_is_rejected() {
    let dir = plugin_dir(&["echo"]);
    let lib = dir.path().join("libfuture.so");
    fs::copy(artefacts().fixture("bad_sdk_version"), &lib).unwrap();
    check_rejected(dir.path(), &lib, "built against plugin SDK 9.0.0", &["echo"]);
}

#[test]
fn a_factory_name_two_files_provide_is_a_conflict_naming_both_unless_pinned() {
    let dir = plugin_dir(&[]);
    fs::copy(artefacts().fixture("version_one"), dir.path().join("liba_version.so")).unwrap();
    fs::copy(artefacts().fixture("version_two"), dir.path().join("libb_version.so")).unwrap();
    let (a, b) = (dir.path().join("liba_version.so"), dir.path().join("libb_version.so"));
    let (a, b) = (a.canonicalize().unwrap(), b.canonicalize().unwrap());

    // Undecided: both files load (their other factories are not lost), the first keeps the
    // name, and the conflict names both files and how to decide.
    let registry = load(dir.path());
    assert!(registry.rejected().is_empty(), "{:?}", registry.rejected());
    assert_eq!(registry.factory_names(), ["one_only", "two_only", "version"]);
    assert_eq!(registry.get("version").unwrap().info().path, a);
    let conflicts = registry.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].resolution, Resolution::Unresolved);
    let message = conflicts[0].to_string();
    assert!(
        message.contains(&a.display().to_string()) && message.contains(&b.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("[factories]") && message.contains("version = \"liba_version.so\""),
        "{message}"
    );

    // `plugins check` reports it and fails.
    let out = jobhost(["plugins", "check", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("conflict: factory `version` is provided by both"), "{out:?}");

    // Pinned to the later file: it has the name; the earlier file keeps its other factory.
    let pins = [("version".to_owned(), "libb_version.so".to_owned())].into();
    let pinned = Registry::load_dirs(LoadOptions { pins, ..LoadOptions::default() }, &[dir.path()]);
    assert_eq!(pinned.get("version").unwrap().info().path, b);
    assert_eq!(pinned.conflicts()[0].resolution, Resolution::Pinned);
    assert_eq!(pinned.plugins()[0].factories, ["one_only"], "the earlier file gives the name up");
    assert_eq!(run_json(&pinned, "version", Value::Null).unwrap(), json!("two"));
}

#[test]
fn a_world_writable_plugin_file_is_refused_unless_allowed() {
    let dir = plugin_dir(&["echo", "sleep"]);
    let echo = dir.path().join(library_file("echo"));
    fs::set_permissions(&echo, fs::Permissions::from_mode(0o666)).unwrap();
    check_rejected(dir.path(), &echo, "is world-writable (mode 0666)", &["sleep"]);
    check_rejected(dir.path(), &echo, "--allow-insecure-plugins", &["sleep"]);

    let allowed = Registry::load_dirs(LoadOptions::trusting(true), &[dir.path()]);
    assert!(allowed.rejected().is_empty());
    assert_eq!(allowed.factory_names(), ["echo", "sleep"]);
}

#[test]
fn a_group_writable_plugin_directory_is_refused() {
    let dir = plugin_dir(&["echo"]);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o770)).unwrap();
    let echo = dir.path().join(library_file("echo"));
    check_rejected(dir.path(), &echo, "plugin directory", &[]);
    check_rejected(dir.path(), &echo, "is group-writable (mode 0770)", &[]);
}

#[test]
fn a_plugin_file_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: changing a file's owner needs root (CI runs as root)");
        return;
    }
    let dir = plugin_dir(&["echo"]);
    let echo = dir.path().join(library_file("echo"));
    std::os::unix::fs::chown(&echo, Some(65534), None).unwrap();
    check_rejected(dir.path(), &echo, "is owned by uid 65534", &[]);
}

#[test]
fn a_missing_plugin_directory_is_reported_not_fatal() {
    let good = plugin_dir(&["echo"]);
    let missing = good.path().join("nope");
    let registry = Registry::load_dirs(LoadOptions::default(), &[missing.as_path(), good.path()]);
    assert_eq!(registry.factory_names(), ["echo"]);
    assert_eq!(registry.rejected().len(), 1);
    assert!(registry.rejected()[0].to_string().contains("No such file"), "{}", registry.rejected()[0]);
}

/// Captures every record the host's `log` facade receives (the test process is the host).
struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = (record.level(), record.target().to_owned(), record.args().to_string());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn a_plugin_log_line_reaches_the_host_logger_tagged_with_plugin_and_job() {
    log::set_logger(&CAPTURE).expect("only this test installs a logger");
    log::set_max_level(log::LevelFilter::Trace);
    let dir = plugin_dir(&["echo", "fatal"]);
    let registry = load(dir.path());
    let cancel = AtomicBool::new(false);
    let ctx = RunContext { job_id: 4242, attempt: 1, cancel: &cancel, progress: &NoProgress, parents: None };
    registry.get("echo").unwrap().run(&ctx, "{}").unwrap();
    registry.get("fatal").unwrap().run(&ctx, "null").unwrap_err();

    let lines = CAPTURE.0.lock().unwrap().clone();
    let has = |level, target: &str, text: &str| {
        lines.iter().any(|(l, t, m)| *l == level && t == target && m.contains(text))
    };
    assert!(has(log::Level::Debug, "plugin::echo", "[job 4242] echoing input of job 4242"), "{lines:#?}");
    // The SDK's panic hook reports a plugin panic through the bridge, with its location.
    assert!(has(log::Level::Error, "plugin::fatal", "[job 4242] job panicked at"), "{lines:#?}");
}

#[test]
fn cli_check_lists_the_four_plugins_and_exits_0() {
    let dir = plugin_dir(&EXAMPLE_PLUGINS);
    let out = jobhost(["plugins".as_ref(), "check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.code, 0, "{out:?}");
    for name in EXAMPLE_PLUGINS {
        assert!(out.stdout.contains(&format!("plugin {name} 0.1.0 (SDK 0.1.0)")), "{}", out.stdout);
    }

    let json = jobhost(["plugins".as_ref(), "check".as_ref(), "--json".as_ref(), dir.path().as_os_str()]);
    let doc: Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(doc["ok"], true);
    let factories: Vec<&str> = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["factories"].as_array().unwrap())
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(factories, EXAMPLE_PLUGINS);
}

#[test]
fn cli_check_prints_one_line_per_rejection_and_exits_1() {
    let dir = plugin_dir(&["echo"]);
    fs::write(dir.path().join("x.so"), "text").unwrap();
    let out = jobhost(["plugins".as_ref(), "check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.code, 1, "{out:?}");
    let rejected: Vec<&str> = out.stdout.lines().filter(|l| l.contains("rejected:")).collect();
    assert_eq!(rejected.len(), 1, "{}", out.stdout);
    assert!(rejected[0].contains("x.so: rejected: not a loadable shared library"), "{}", rejected[0]);
}

/// `jobhost plugins run <dir>/lib<plugin>.so ARGS...`
fn plugins_run(dir: &Path, plugin: &str, args: &[&str]) -> CliOutput {
    let lib = dir.join(library_file(plugin));
    let mut argv = vec!["plugins".as_ref(), "run".as_ref(), lib.as_os_str()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    jobhost(argv)
}

#[test]
fn cli_run_prints_results_and_failures_with_exit_codes() {
    let dir = plugin_dir(&EXAMPLE_PLUGINS);
    let dir = dir.path();

    let echo = plugins_run(dir, "echo", &["echo", r#"{"foo":"bar"}"#]);
    assert_eq!((echo.code, echo.stdout.as_str()), (0, "{\"foo\":\"bar\"}\n"), "{echo:?}");

    let fatal = plugins_run(dir, "fatal", &["fatal"]);
    assert_eq!(fatal.code, 1, "a contained panic exits 1, not a crash: {fatal:?}");
    assert!(fatal.stderr.contains("retryable failure: An error occurred."), "{fatal:?}");

    let error = plugins_run(dir, "error", &["error"]);
    assert_eq!(error.code, 1, "{error:?}");
    assert!(error.stderr.contains("permanent failure: An error occurred."), "{error:?}");

    let started = std::time::Instant::now();
    let sleep = plugins_run(dir, "sleep", &["sleep", "0.2"]);
    assert_eq!((sleep.code, sleep.stdout.as_str()), (0, "{\"slept\":0.2}\n"), "{sleep:?}");
    assert!(started.elapsed().as_secs_f64() >= 0.2, "sleep 0.2 must take at least 0.2 s");

    let unknown = plugins_run(dir, "echo", &["nope"]);
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert!(unknown.stderr.contains("has no factory named `nope`; it has: echo"), "{unknown:?}");

    let bad_json = plugins_run(dir, "echo", &["echo", "{"]);
    assert_eq!(bad_json.code, 3, "{bad_json:?}");
    assert!(bad_json.stderr.contains("INPUT_JSON is not valid JSON"), "{bad_json:?}");

    fs::write(dir.join("libtext.so"), "text").unwrap();
    let not_a_plugin = plugins_run(dir, "text", &["x"]);
    assert_eq!(not_a_plugin.code, 3, "{not_a_plugin:?}");
    assert!(not_a_plugin.stderr.contains("libtext.so: not a loadable shared library"), "{not_a_plugin:?}");
}

#[test]
fn cli_run_bridges_plugin_logs_to_stderr() {
    let dir = plugin_dir(&["echo"]);
    let out: CliOutput = jobhost_tests::jobhost_cmd()
        .env("JOBHOST_LOG", "debug")
        .args(["plugins", "run"])
        .arg(dir.path().join(library_file("echo")))
        .args(["echo", "1"])
        .output()
        .expect("jobhost runs")
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("plugin::echo] [job 0] echoing input"), "{}", out.stderr);
}
