//! Helpers for the end-to-end tests in `e2e/`: where the built artefacts are (building them
//! once per test process), plugin directories in temp dirs, and running the real binary.
//!
//! Everything here uses the real files: the `jobhost` binary, the example plugin `.so` files
//! and the broken-library fixtures (cdylib examples of this crate).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

pub mod app;
pub mod client;
pub mod commit_cut;
pub mod server;
pub mod stores;
pub use app::App;
pub use client::{Answer, Client, Expect, Request};
pub use server::Server;

/// The four example plugins.
pub const EXAMPLE_PLUGINS: [&str; 4] = ["echo", "error", "fatal", "sleep"];

/// Where `cargo` put this test's profile (`target/debug` for `cargo test`).
pub struct Artefacts {
    pub profile_dir: PathBuf,
}

/// The built artefacts, building the binary, the plugins and the fixtures on first use.
///
/// `cargo test --workspace` does not build cdylib plugins or another package's binary for this
/// crate's tests, so the first call runs `cargo build --workspace --lib --bins --examples` for the same
/// profile and target directory (a no-op when they are up to date).
pub fn artefacts() -> &'static Artefacts {
    static ARTEFACTS: OnceLock<Artefacts> = OnceLock::new();
    ARTEFACTS.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        // target/<profile>/deps/e2e-<hash>
        let profile_dir =
            exe.parent().and_then(Path::parent).expect("test binary in target/<profile>/deps").to_owned();
        let target_dir = profile_dir.parent().expect("target/<profile>");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => "dev",
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--lib", "--bins", "--examples", "--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the workspace for the tests failed");
        Artefacts { profile_dir }
    })
}

impl Artefacts {
    pub fn binary(&self) -> PathBuf {
        self.profile_dir.join("jobhost")
    }

    /// An example plugin's library, e.g. `plugin("echo")` → `target/debug/libecho.so`.
    pub fn plugin(&self, name: &str) -> PathBuf {
        self.profile_dir.join(library_file(name))
    }

    /// A broken-library fixture, e.g. `fixture("bad_layout")`.
    pub fn fixture(&self, name: &str) -> PathBuf {
        self.profile_dir.join("examples").join(library_file(&format!("fixture_{name}")))
    }
}

pub fn library_file(stem: &str) -> String {
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// A fresh private directory holding copies of the named example plugins.
///
/// Copies, not the build outputs: each test's libraries are distinct files, so plugins loaded
/// by parallel tests in one process do not share library state (the loader maps a file once).
pub fn plugin_dir(names: &[&str]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for name in names {
        copy_plugin(name, dir.path(), &library_file(name));
    }
    dir
}

/// Copies example plugin `name` into `dir` as `file_name`; returns the new path.
pub fn copy_plugin(name: &str, dir: &Path, file_name: &str) -> PathBuf {
    let to = dir.join(file_name);
    fs::copy(artefacts().plugin(name), &to).expect("copy plugin");
    to
}

/// What a finished command printed.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(out: Output) -> Self {
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs the real `jobhost` binary to completion.
pub fn jobhost<I, S>(args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    jobhost_cmd().args(args).output().expect("jobhost runs").into()
}

/// A `jobhost` command with a clean logging environment, for tests that need more control.
pub fn jobhost_cmd() -> Command {
    let mut cmd = Command::new(artefacts().binary());
    cmd.env_remove("JOBHOST_LOG").env_remove("RUST_LOG");
    cmd
}

/// A host over a real sled store in a temp dir, with the real example plugins.
pub struct Harness {
    pub host: jobhost::service::Host,
    pub store: std::sync::Arc<jobhost::store::SledStore>,
    pub store_dir: TempDir,
    pub plugins: TempDir,
}

/// A processor config whose default queue does not start by itself (tests start it).
pub fn manual_config(concurrency: usize) -> jobhost::processor::ProcessorConfig {
    let queue = jobhost::processor::QueueConfig { concurrency, autostart: false };
    jobhost::processor::ProcessorConfig { default_queue: queue, ..Default::default() }
}

/// Opens a fresh store with all four example plugins.
pub fn harness(
    config: jobhost::processor::ProcessorConfig,
    clock: std::sync::Arc<dyn jobhost::clock::Clock>,
) -> Harness {
    let store_dir = TempDir::new().expect("temp dir");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let (host, store) = open(store_dir.path(), plugins.path(), config, clock);
    Harness { host, store, store_dir, plugins }
}

/// Opens (or reopens) the store at `store_dir` with the plugins in `plugin_dir`.
pub fn open(
    store_dir: &Path,
    plugin_dir: &Path,
    config: jobhost::processor::ProcessorConfig,
    clock: std::sync::Arc<dyn jobhost::clock::Clock>,
) -> (jobhost::service::Host, std::sync::Arc<jobhost::store::SledStore>) {
    use jobhost::plugins::{LoadOptions, Registry};
    let registry = Registry::load_dirs(LoadOptions::default(), &[plugin_dir]);
    assert!(registry.rejected().is_empty(), "{:?}", registry.rejected());
    let store = std::sync::Arc::new(
        jobhost::store::SledStore::open(store_dir, jobhost::store::StoreOptions::default())
            .expect("store opens"),
    );
    let host = jobhost::service::Host::new(store.clone(), registry, clock, config).expect("host starts");
    (host, store)
}

/// `AddJob` for `factory` with `input` JSON.
pub fn job(factory: &str, input: serde_json::Value) -> jobhost::service::AddJob {
    jobhost::service::AddJob {
        factory: factory.to_owned(),
        input: Some(input.to_string()),
        ..Default::default()
    }
}

/// Asserts that `check` keeps holding for `window`, looking every 50 ms: for what must *not*
/// happen (a stopped queue runs nothing, a held job stays held), where there is no condition
/// to wait for. A slow machine only makes such a check easier to pass, never flaky.
pub fn holds_for(window: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + window;
    loop {
        assert!(check(), "{what}: stopped holding");
        if std::time::Instant::now() >= end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits up to `limit` for `check` to hold, looking every 50 ms; fails naming `what`.
pub fn wait_for_condition(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits up to `limit` for `check` to give a value, looking every 50 ms; fails naming `what`.
pub fn wait_for_value<T>(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
