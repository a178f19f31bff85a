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

/// Stops the server with SIGTERM: a clean stop (exit 0), even while its disk is full.
fn stops_cleanly(server: &mut Server) {
    server.signal(libc::SIGTERM);
    let code = server.wait_exit(LONG);
    assert_eq!(code, Some(0), "log:\n{}", server.log());
}

/// The offline check finds every record and index entry in order.
fn checks_clean(data: &Path) {
    let check = jobhost_tests::jobhost(["store", "check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{check:?}");
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

    checks_clean(&data);
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
    checks_clean(&data);
    let server = Server::start(&data, plugins.path(), &[]);
    assert_all_kept(&server, &acknowledged);
}

/// A store of `n` finished jobs made by the real binary and stopped cleanly.
fn a_store_of_finished_jobs(data: &Path, plugins: &Path, n: usize) {
    let mut server = Server::start(data, plugins, &[]);
    for start in (0..n).step_by(100) {
        let jobs: Vec<Value> = (start..n.min(start + 100))
            .map(|i| json!({"job": "echo", "input": {"i": i, "pad": "p".repeat(200)}}))
            .collect();
        assert_eq!(server.post("/v1/jobs/batch", &json!({"jobs": jobs})).status, 201);
    }
    let deadline = Instant::now() + LONG;
    loop {
        let completed = server.get("/v1/jobs?status=completed&limit=1").status == 200
            && server.get("/v1/queues").body[0]["queued"] == 0
            && server.get("/v1/queues").body[0]["running"] == 0;
        if completed {
            break;
        }
        assert!(Instant::now() < deadline, "jobs not done");
        std::thread::sleep(Duration::from_millis(100));
    }
    stops_cleanly(&mut server);
}

/// Runs `jobhost serve` on `data` until it stops by itself, or kills it after `within`
/// (`Err` with what it printed).
fn serve_until_exit(
    data: &Path,
    plugins: &Path,
    extra: &[&str],
    within: Duration,
) -> Result<jobhost_tests::CliOutput, jobhost_tests::CliOutput> {
    let child = jobhost_tests::jobhost_cmd()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--plugin-dir")
        .arg(plugins)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + within;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Err(waiter.join().unwrap().into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(waiter.join().unwrap().into())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn damage_db(data: &Path, how: &str) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let db = data.join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&db).unwrap();
    match how {
        "flipped bytes" => {
            for at in (100_000..len).step_by(400_000) {
                let mut byte = [0u8];
                file.seek(SeekFrom::Start(at)).unwrap();
                file.read_exact(&mut byte).unwrap();
                file.seek(SeekFrom::Start(at)).unwrap();
                file.write_all(&[byte[0] ^ 0xFF]).unwrap();
            }
        }
        "a zeroed 4 KiB block" => {
            file.seek(SeekFrom::Start(1 << 20)).unwrap();
            file.write_all(&[0u8; 4096]).unwrap();
        }
        "truncated to 900 KiB" => file.set_len(900 * 1024).unwrap(),
        "its last 32 KiB cut off" => file.set_len(len - 32 * 1024).unwrap(),
        "emptied" => {
            drop(file);
            std::fs::remove_file(&db).unwrap();
            std::fs::remove_file(data.join("conf")).unwrap();
            let _ = std::fs::remove_dir_all(data.join("blobs"));
        }
        other => panic!("no damage called {other}"),
    }
}

#[test]
fn a_damaged_store_stops_the_service_with_one_line_and_nothing_is_reused() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let pristine = dir.path().join("pristine");
    a_store_of_finished_jobs(&pristine, plugins.path(), 3_300);
    assert!(std::fs::metadata(pristine.join("db")).unwrap().len() > 2 << 20, "a store of several MiB");

    let mut refused = Vec::new();
    for (n, how) in [
        "flipped bytes",
        "a zeroed 4 KiB block",
        "truncated to 900 KiB",
        "its last 32 KiB cut off",
        "emptied",
    ]
    .into_iter()
    .enumerate()
    {
        let data = dir.path().join(format!("damaged-{n}"));
        copy_dir(&pristine, &data);
        damage_db(&data, how);
        // The offline check first: it never passes a store that lost anything, and never
        // panics.
        let check = jobhost_tests::jobhost(["store", "check", "--data-dir", data.to_str().unwrap()]);
        assert!(!check.stderr.contains("panicked"), "{how}: {check:?}");
        if check.code == 0 {
            // The damage hit only space sled no longer used: everything is there.
            assert!(check.stdout.contains("3300 jobs (3300 completed)"), "{how}: {check:?}");
            let server = Server::start(&data, plugins.path(), &[]);
            assert_eq!(
                server.get("/v1/jobs?status=completed&limit=1000").body["jobs"].as_array().unwrap().len(),
                1000
            );
            continue;
        }
        assert!(matches!(check.code, 1 | 3), "{how}: {check:?}");
        let told = ["NOT OK", "is damaged", "no store in"];
        assert!(
            told.iter().any(|t| check.stdout.contains(t) || check.stderr.contains(t)),
            "{how}: {check:?}"
        );
        let out = match serve_until_exit(&data, plugins.path(), &[], Duration::from_secs(15)) {
            Ok(out) => out,
            Err(running) => {
                // Where the damage lies in pages sled reads only when asked for them (it
                // depends on where this run's layout put them), the service starts, never
                // panicking; the offline check, which reads every page, named the damage.
                assert!(check.code == 3 && check.stderr.contains("is damaged"), "{how}: {check:?}");
                assert!(!running.stderr.contains("panicked"), "{how}: {running:?}");
                continue;
            }
        };
        assert_eq!(out.code, 3, "{how}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
        assert_eq!(lines.len(), 1, "{how}: one line, not {:?}", out.stderr);
        assert!(
            lines[0].starts_with(&format!("error: the store at {}", data.display())),
            "{how}: {}",
            lines[0]
        );
        assert!(lines[0].contains("is damaged") || lines[0].contains("has lost data"), "{how}: {}", lines[0]);
        assert!(!out.stderr.contains("panicked"), "{how}: {}", out.stderr);
        refused.push(how);
    }
    // The cases the issue names that always lose data are refused, whatever the layout.
    for how in ["truncated to 900 KiB", "emptied"] {
        assert!(refused.contains(&how), "{how} was not refused");
    }

    // A store that lost data starts when the operator accepts the loss; ids go on after the
    // highest ever issued, and the next start needs no flag.
    let data = dir.path().join("damaged-4");
    let mut server = Server::start(&data, plugins.path(), &["--accept-data-loss"]);
    let id: u64 = server.add("echo", json!("after the loss")).parse().unwrap();
    assert!(id > 3_300, "id {id} issued again");
    stops_cleanly(&mut server);
    let server = Server::start(&data, plugins.path(), &[]);
    assert_eq!(server.job(&id.to_string())["input"], "after the loss");
}

#[test]
fn backups_taken_offline_and_through_a_busy_server_restore_whole() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let data = dir.path().join("data");
    let server = Server::start(&data, plugins.path(), &[]);
    let mut before = Acknowledged::new();
    for n in 0..200 {
        let input = json!({"n": n});
        before.push((add_held(&server, input.clone()).unwrap(), input));
    }
    // Jobs keep arriving (and running) while the backup is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (client, stop) = (jobhost_tests::Client::new(&server.url, None), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client.add("echo", json!(n));
                n += 1;
            }
            n
        })
    };
    let online = dir.path().join("online.backup");
    let out = jobhost_tests::jobhost(["store", "backup", online.to_str().unwrap(), "--server", &server.url]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("jobs, 0 schedules"), "{out:?}");
    // The store is the server's: an offline backup is refused with the way to do it.
    let offline = dir.path().join("offline.backup");
    let refused = jobhost_tests::jobhost([
        "store",
        "backup",
        offline.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("--server URL"), "{refused:?}");
    assert!(!offline.exists() && !dir.path().join("offline.partial").exists());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(busy.join().unwrap() > 0);
    drop(server);

    // Restored, the online backup is a consistent store holding everything acknowledged
    // before it was taken.
    let restored = dir.path().join("restored");
    let out = jobhost_tests::jobhost([
        "store",
        "restore",
        online.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let check = jobhost_tests::jobhost(["store", "check", "--data-dir", restored.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{check:?}");
    let server = Server::start(&restored, plugins.path(), &[]);
    assert_all_kept(&server, &before);
    drop(server);

    // Offline, from the stopped store: the same jobs and more.
    let out = jobhost_tests::jobhost([
        "store",
        "backup",
        offline.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let again = dir.path().join("again");
    assert_eq!(
        jobhost_tests::jobhost([
            "store",
            "restore",
            offline.to_str().unwrap(),
            "--data-dir",
            again.to_str().unwrap()
        ])
        .code,
        0
    );
    let server = Server::start(&again, plugins.path(), &[]);
    assert_all_kept(&server, &before);
    drop(server);

    // Never over a store, never from a damaged file.
    let out = jobhost_tests::jobhost([
        "store",
        "restore",
        offline.to_str().unwrap(),
        "--data-dir",
        again.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("is not empty"), "{out:?}");
    let mut bytes = std::fs::read(&offline).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&offline, &bytes).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let out = jobhost_tests::jobhost([
        "store",
        "restore",
        offline.to_str().unwrap(),
        "--data-dir",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("is not a usable backup"), "{out:?}");
    assert!(!elsewhere.exists());
}
