//! The cost of one plugin call: the ABI call into the real `echo` plugin with JSON in and out
//! (the SDK decodes the input into the author's type and encodes the result), for a small
//! input. Run with `cargo build --release && cargo bench -p jobhost --bench plugin_call`.
//!
//! A plain timing loop (no benchmark framework): the median of several runs of many calls.

use std::path::PathBuf;
use std::time::Instant;

use jobhost::plugins::{LoadOptions, Registry};

fn echo_plugin() -> Option<PathBuf> {
    // target/release/deps/plugin_call-<hash> → target/release/libecho.so
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let file = format!("{}echo{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let path = profile_dir.join(file);
    path.exists().then_some(path)
}

fn main() -> std::process::ExitCode {
    let Some(path) = echo_plugin() else {
        eprintln!("the echo plugin is not built for this profile: run `cargo build --release` first");
        return std::process::ExitCode::from(2);
    };
    let registry = Registry::load_dirs(LoadOptions::default(), &[path.parent().unwrap_or(&path)]);
    let Some(echo) = registry.get("echo") else {
        eprintln!(
            "{} did not load: {:?}",
            path.display(),
            registry.rejected().iter().map(|r| r.to_string()).collect::<Vec<_>>()
        );
        return std::process::ExitCode::from(2);
    };
    let input = r#"{"user": 42, "action": "resize", "sizes": [64, 128, 256]}"#;
    const CALLS: u32 = 200_000;
    let mut runs = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..CALLS {
            let out = echo.run_once(std::hint::black_box(input));
            std::hint::black_box(out).ok();
        }
        runs.push(started.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "plugin call (echo, {} bytes of JSON in and out): median {:.0} ns, min {:.0} ns, max {:.0} ns over {} runs of {CALLS}",
        input.len(),
        runs[runs.len() / 2],
        runs[0],
        runs[runs.len() - 1],
        runs.len()
    );
    std::process::ExitCode::SUCCESS
}
