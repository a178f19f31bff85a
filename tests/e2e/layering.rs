//! The layering ARCHITECTURE.md states, checked by `.ci/layering.py` over the host's real
//! sources, and the check itself shown to fail on each kind of break (a copy of the sources
//! with one bad import added).

use std::path::{Path, PathBuf};
use std::process::Command;

fn host_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src")
}

fn check(src: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/layering.py");
    let out = Command::new("python3").arg(script).arg(src).output().expect("python3 runs .ci/layering.py");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A copy of host/src with `line` added at the top of `file`.
fn broken(file: &str, line: &str) -> tempfile::TempDir {
    let copy = tempfile::TempDir::new().unwrap();
    let status = Command::new("cp").arg("-r").arg(host_src()).arg(copy.path()).status().unwrap();
    assert!(status.success());
    let path = copy.path().join("src").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{line}\n{text}")).unwrap();
    copy
}

#[test]
fn the_host_modules_keep_their_layering() {
    let (ok, out) = check(&host_src());
    assert!(ok, "{out}");
    assert!(out.contains("layering holds"), "{out}");
}

#[test]
fn the_layering_check_fails_on_each_kind_of_break() {
    let cases = [
        ("server/jobs.rs", "use crate::store::Removal;", "never names the store"),
        ("server/admin.rs", "use crate::processor::Pool;", "never names the store or the processor"),
        ("cli/serve.rs", "use crate::store::OnLoss;", "only through cli/stores.rs"),
        ("cli/local.rs", "use crate::processor::Plugins;", "worker pools only through the service"),
        ("config/file.rs", "use crate::store::postgres::Tls;", "config holds no backend code"),
        ("service/host.rs", "use crate::store::SledStore;", "name a concrete store"),
        ("store/types.rs", "use crate::service::Host;", "a floor above"),
        ("job/record.rs", "use crate::cron::CronSpec;", "its own floor"),
        ("text.rs", "use crate::ids::JobId;", "import cycle"),
    ];
    for (file, line, says) in cases {
        let copy = broken(file, line);
        let (ok, out) = check(&copy.path().join("src"));
        assert!(!ok, "{file} with `{line}` passed:\n{out}");
        assert!(out.contains(says), "{file} with `{line}` should say {says:?}:\n{out}");
    }
}
