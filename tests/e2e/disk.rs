//! The store's disk going wrong under the real `jobhost serve`: a disk that fills up (a real
//! small tmpfs where this machine lets the test mount one, and everywhere a fault-injecting
//! layer preloaded under the store).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jobhost_tests::{artefacts, plugin_dir, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

/// Jobs the server acknowledged (201), with the input each was given.
type Acknowledged = Vec<(String, Value)>;

/// Adds a held job with `input`; its id if the server acknowledged it, else the refusal.
fn add_held(server: &Server, input: Value) -> Result<String, Box<jobhost_tests::Answer>> {
    let answer =
        server.post("/v1/jobs", &json!({"job": "echo", "queue": "kept", "hold": true, "input": input}));
    match answer.status {
        201 => Ok(answer.body["id"].as_str().unwrap().to_owned()),
        _ => Err(Box::new(answer)),
    }
}

/// A refusal because the disk is full: 503, its own code, "disk full" in words.
fn assert_disk_full(answer: &jobhost_tests::Answer) {
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.code(), "store_unavailable", "{answer:?}");
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk full"), "{message}");
    assert!(!message.contains("Custom {"), "a debug dump: {message}");
}

fn assert_all_kept(server: &Server, acknowledged: &Acknowledged) {
    for (id, input) in acknowledged {
        let job = server.job(id);
        assert_eq!(&job["input"], input, "job {id}");
        assert_eq!(job["status"], "held", "job {id}");
    }
}

/// What a full disk must do however it filled up: writes refused in words, reads and health
/// answering (health 503 with the reason), nothing acknowledged lost; then `free` makes room
/// and writes resume by themselves, jobs run again, no id is issued twice.
fn refuses_writes_until_space_is_back(server: &Server, acknowledged: &Acknowledged, free: impl FnOnce()) {
    let refused = server.post("/v1/jobs", &json!({"job": "echo", "input": "small"}));
    assert_disk_full(&refused);
    let health = server.get("/v1/health");
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.body["status"], "unavailable");
    assert!(health.body["problem"].as_str().unwrap().contains("disk full"), "{health:?}");
    // Reads go on, except one that needs a page whose last change never reached the disk:
    // that one is refused the same way, never answered wrong.
    let mut read = 0;
    for (id, input) in acknowledged {
        let answer = server.get(&format!("/v1/jobs/{id}"));
        match answer.status {
            200 => {
                assert_eq!(&answer.body["input"], input, "job {id}");
                read += 1;
            }
            _ => assert_disk_full(&answer),
        }
    }
    assert!(read > 0, "no acknowledged job could be read");

    free();
    let deadline = Instant::now() + LONG;
    while server.get("/v1/health").status != 200 {
        assert!(Instant::now() < deadline, "writes did not resume; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = server.add("echo", json!("after"));
    let last_acknowledged = acknowledged.iter().map(|(id, _)| id.parse::<u64>().unwrap()).max().unwrap();
    assert!(id.parse::<u64>().unwrap() > last_acknowledged, "id {id} issued again");
    let done = server.wait_finished(&id, LONG);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], "after");
    assert_all_kept(server, acknowledged);
}

/// Stops the server with SIGTERM while its disk is full: a clean stop (exit 0).
fn stops_cleanly(server: &mut Server) {
    server.signal(libc::SIGTERM);
    let code = server.wait_exit(LONG);
    assert_eq!(code, Some(0), "log:\n{}", server.log());
}

#[test]
fn a_disk_that_fails_writes_is_reported_and_healed_without_a_restart() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let data = dir.path().join("data");
    let switch = dir.path().join("disk-full");
    let layer = artefacts().fixture("faultfs");
    let env: [(&str, &Path); 3] =
        [("LD_PRELOAD", &layer), ("JOBHOST_FAULT_DIR", &data), ("JOBHOST_FAULT_SWITCH", &switch)];
    let mut server = Server::start_with_env(&data, plugins.path(), &[], &env);
    // Small records (in sled's log) and a large one (a file of its own).
    let mut acknowledged = Acknowledged::new();
    for n in 0..20 {
        let input = json!({"n": n, "pad": "x".repeat(if n == 7 { 300_000 } else { 10 })});
        acknowledged.push((add_held(&server, input.clone()).unwrap(), input));
    }

    // The disk fills up under a large record (sled writes it to a file of its own first).
    std::fs::write(&switch, b"").unwrap();
    assert_disk_full(&add_held(&server, json!({"pad": "z".repeat(300_000)})).unwrap_err());
    refuses_writes_until_space_is_back(&server, &acknowledged, || std::fs::remove_file(&switch).unwrap());

    // Full again, under a small record this time (sled's log); then a stop while it is.
    let input = json!({"pad": "y".repeat(300_000)});
    acknowledged.push((add_held(&server, input.clone()).unwrap(), input));
    std::fs::write(&switch, b"").unwrap();
    assert_disk_full(&add_held(&server, json!("small")).unwrap_err());
    stops_cleanly(&mut server);

    let server = Server::start(&data, plugins.path(), &[]);
    assert_all_kept(&server, &acknowledged);
}

/// A tmpfs of `size` at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where this machine does not let the test mount one (not root, no privilege).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        mounted.then(|| Tmpfs(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Adds large held jobs until the disk is full; the refusal must say so.
fn fill(server: &Server, acknowledged: &mut Acknowledged) {
    for n in 0..400 {
        let input = json!({"n": n, "pad": "f".repeat(200_000)});
        match add_held(server, input.clone()) {
            Ok(id) => acknowledged.push((id, input)),
            Err(refused) => return assert_disk_full(&refused),
        }
    }
    panic!("the disk never filled up");
}

#[test]
fn a_real_full_file_system_is_reported_and_healed_once_space_is_freed() {
    let dir = TempDir::new().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "16m") else {
        eprintln!(
            "skipped: this machine does not let the test mount a tmpfs (the fault layer test covers it)"
        );
        return;
    };
    let plugins = plugin_dir(&["echo"]);
    let data = disk.0.join("data");
    // Room an operator frees later by deleting a file.
    let ballast = disk.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 6 << 20]).unwrap();
    let mut server = Server::start(&data, plugins.path(), &[]);
    let mut acknowledged = Acknowledged::new();
    fill(&server, &mut acknowledged);
    assert!(acknowledged.len() > 5, "only {} jobs fit", acknowledged.len());

    refuses_writes_until_space_is_back(&server, &acknowledged, || std::fs::remove_file(&ballast).unwrap());

    fill(&server, &mut acknowledged);
    stops_cleanly(&mut server);
    disk.resize("64m");
    let server = Server::start(&data, plugins.path(), &[]);
    assert_all_kept(&server, &acknowledged);
}
