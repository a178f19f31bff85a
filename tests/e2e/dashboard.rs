//! The dashboard in a real browser: Debian's Chromium, driven by Playwright
//! (`tests/browser/dashboard.test.mjs`) against two real `jobhost serve` processes with the
//! example plugins, one open and one with a token. This test starts them and runs the browser
//! tests with Node; their screenshots land in `target/dashboard-screenshots/`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`; `.ci/test` installs it) and Node.js
//! 20; Playwright's package comes from the npm registry on first use (`npm ci`), and never a
//! browser of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use jobhost_tests::{artefacts, plugin_dir, Server, EXAMPLE_PLUGINS};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Installs the browser tests' packages (Playwright's driver, axe-core) when one is missing.
fn install_playwright(dir: &Path) {
    let installed = |package: &str| dir.join(format!("node_modules/{package}/package.json")).exists();
    if installed("playwright-core") && installed("axe-core") {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm (Node.js 20) is needed for the browser tests");
    assert!(status.success(), "`npm ci` in {} failed", dir.display());
}

#[test]
fn the_dashboard_in_chromium() {
    if std::env::var("JOBHOST_TEST_BROWSER").is_ok_and(|v| v == "skip") {
        use std::io::Write;
        // Past the harness's capture: a skip is never silent.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED dashboard::the_dashboard_in_chromium: JOBHOST_TEST_BROWSER=skip"
        );
        return;
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's Chromium at {CHROMIUM}: `apt-get install chromium` (`.ci/test` does)"
    );
    let dir = browser_tests_dir();
    install_playwright(&dir);

    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    // A typed factory (nested, enum and array fields) for the new-job form.
    let typed = plugins.path().join(jobhost_tests::library_file("typed"));
    std::fs::copy(artefacts().fixture("typed"), typed).unwrap();
    let data = tempfile::tempdir().unwrap();
    let open = restarted(&data.path().join("open"), plugins.path());
    let token = "dashboard-test-token-5f0c2a9e";
    let token_file = data.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let mut perms = std::fs::metadata(&token_file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&token_file, perms).unwrap();
    let closed = Server::start_with_token(
        &data.path().join("closed"),
        plugins.path(),
        &["--token-file", token_file.to_str().unwrap()],
        Some(token),
    );

    // target/<profile>/ → target/dashboard-screenshots/
    let screenshots = artefacts().profile_dir.parent().unwrap().join("dashboard-screenshots");
    let output = Command::new("node")
        .args(["--test", "--test-concurrency=1", "dashboard.test.mjs"])
        .current_dir(&dir)
        .env("JOBHOST_URL", &open.url)
        .env("JOBHOST_TOKEN_URL", &closed.url)
        .env("JOBHOST_TOKEN", token)
        .env("JOBHOST_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser tests failed:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        open.log()
    );
    // Every test ran (a test file that loads none would pass).
    assert!(report.contains("# pass 18") && report.contains("# fail 0"), "{report}");
    for name in [
        "overview-and-a-job",
        "failed-job",
        "cancel-and-pause",
        "schedule-editor",
        "token",
        "phone-dark",
        "new-job",
        "workflows",
        "triage",
        "paging",
        "bulk",
        "after-restart",
        "selection",
        "scheduled",
        "overview-many-queues",
    ] {
        assert!(screenshots.join(format!("{name}.png")).exists(), "no screenshot {name}.png");
    }
}

/// The open host, after a first life on the same store: two jobs completed and one failed in
/// queue `before-restart`, which was then paused, and a graceful stop. What the browser test
/// "after a restart" expects to find.
fn restarted(data: &Path, plugins: &Path) -> Server {
    let mut first = Server::start(data, plugins, &[]);
    let add = |job: &str| {
        let added = first.post("/v1/jobs", &serde_json::json!({"job": job, "queue": "before-restart"}));
        added.body["id"].as_str().unwrap().to_owned()
    };
    for id in [add("echo"), add("echo"), add("error")] {
        first.wait_finished(&id, std::time::Duration::from_secs(60));
    }
    assert_eq!(first.post_empty("/v1/queues/before-restart/stop").status, 200);
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(std::time::Duration::from_secs(60)), Some(0), "{}", first.log());
    Server::start(data, plugins, &[])
}
