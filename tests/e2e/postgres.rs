//! Several real `jobhost serve` processes on one PostgreSQL store: a job added on one host
//! runs on another (woken by LISTEN/NOTIFY), hosts list each other, a host killed mid-job is
//! named on the job another host recovers, and schema migrations run once however many
//! start together. The store-level behaviours are in `stores` (run on both backends).

use std::time::{Duration, Instant};

use jobhost::job::NewJob;
use jobhost::store::{postgres::SCHEMA_VERSION, PgStore};
use jobhost::store::{ClaimFilter, JobStore};
use jobhost_tests::server::Server;
use jobhost_tests::stores::{postgres_skipped, Backend, Schema, TestStore};
use jobhost_tests::{plugin_dir, EXAMPLE_PLUGINS};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(30);

/// A server named `name` on the schema's store, with `config` lines in its config file.
fn host(
    dir: &TempDir,
    plugins: &TempDir,
    name: &str,
    schema: &Schema,
    config: &str,
    extra: &[&str],
) -> Server {
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, format!("host_name = \"{name}\"\n{config}\n")).unwrap();
    let url = schema.url();
    let mut args = vec!["--config", file.to_str().unwrap(), "--store-url", &url];
    args.extend_from_slice(extra);
    Server::start(&dir.path().join(format!("{name}-data")), plugins.path(), &args)
}

#[test]
fn a_job_added_on_one_host_runs_on_another_and_the_hosts_list_each_other() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::a_job_added_on_one_host_runs_on_another_and_the_hosts_list_each_other",
    ) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    // A takes submissions only (no queue runs there); B runs them.
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    // A poll interval far above the bound below: only a notification makes it.
    let slow_poll = "poll_interval = \"10s\"\nlease = \"30s\"";
    let a = host(&dir, &plugins, "host-a", &schema, slow_poll, &["--paused"]);
    let b = host(&dir, &plugins, "host-b", &schema, slow_poll, &[]);
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let added = Instant::now();
        let id = a.add("echo", json!({ "n": n }));
        let job = a.wait_finished(&id, LONG);
        slowest = slowest.max(added.elapsed());
        assert_eq!((job["status"].as_str(), &job["result"]), (Some("completed"), &json!({ "n": n })));
    }
    // Well inside B's poll interval: the notification woke it.
    assert!(slowest < Duration::from_millis(900), "slowest submit→completed {slowest:?}");
    let hosts = a.get("/v1/hosts").body;
    let names: Vec<&str> = hosts.as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["host-a", "host-b"]);
    for h in hosts.as_array().unwrap() {
        assert_eq!(h["alive"], true, "{h}");
        assert_eq!(h["this"], h["name"] == "host-a", "{h}");
        assert!(h["pid"].as_u64().unwrap() > 0);
    }
    // One queue's counts, whichever host answers.
    let queued = |s: &Server| -> Value { s.get("/v1/queues").body };
    assert_eq!(queued(&a)[0]["queued"], queued(&b)[0]["queued"]);
    drop(b);
}

#[test]
fn a_host_killed_mid_job_is_named_on_the_job_another_host_recovers() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::a_host_killed_mid_job_is_named_on_the_job_another_host_recovers",
    ) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let lease = "lease = \"2s\"\npoll_interval = \"100ms\"";
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let mut a = host(&dir, &plugins, "doomed", &schema, lease, &[]);
    let b = host(&dir, &plugins, "survivor", &schema, lease, &["--paused"]);
    let id = a.add("sleep", json!(1.0));
    a.wait_until(&id, LONG, |job| job["status"] == "processing");
    a.signal(libc::SIGKILL);
    assert_eq!(a.wait_exit(LONG), None);
    // B's reaper finds the lease expired and the host silent.
    let job = b.wait_until(&id, LONG, |job| job["status"] == "queued");
    assert_eq!(job["attempts"], 1, "{job}");
    let error = job["errors"][0].as_str().unwrap();
    assert!(error.ends_with("worker lost: host doomed stopped heartbeating"), "{error}");
    let hosts = b.get("/v1/hosts").body;
    let doomed = hosts.as_array().unwrap().iter().find(|h| h["name"] == "doomed").unwrap().clone();
    assert_eq!(doomed["alive"], false, "{hosts}");
    b.post_empty("/v1/queues/default/start");
    let job = b.wait_finished(&id, LONG);
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("completed"), Some(2)));
}

#[test]
fn a_host_restarted_after_a_crash_takes_its_name_back_at_once_but_a_live_holder_keeps_it() {
    if jobhost_tests::stores::postgres_skipped("postgres::a_host_restarted_after_a_crash_takes_its_name_back")
    {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    // The default lease (30 s): the name would otherwise stay taken that long.
    let mut first = host(&dir, &plugins, "fixed", &schema, "", &[]);
    let pid = first.pid();
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait_exit(LONG), None);
    let started = Instant::now();
    let again = host(&dir, &plugins, "fixed", &schema, "", &[]);
    assert!(started.elapsed() < Duration::from_secs(20), "restart took {:?}", started.elapsed());
    assert!(
        again.log().contains(&format!("previous holder (pid {pid} on this machine) is gone")),
        "{}",
        again.log()
    );
    let hosts = again.get("/v1/hosts").body;
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    // While it lives, nobody else may take the name.
    let file = dir.path().join("second.toml");
    std::fs::write(&file, "host_name = \"fixed\"\n").unwrap();
    let refused = jobhost_tests::jobhost([
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--store-url",
        &schema.url(),
        "--data-dir",
        dir.path().join("second-data").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("is in use by a live host"), "{refused:?}");
}

#[test]
fn hosts_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::hosts_starting_together_migrate_once_and_a_newer_schema_is_refused",
    ) {
        return;
    }
    let schema = Schema::new();
    let migrated: Vec<(i32, i32)> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    PgStore::migrate(&schema.config(), &jobhost::store::postgres::Tls::Plain)
                        .map(|m| (m.from, m.to))
                        .unwrap()
                })
            })
            .collect();
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(migrated.iter().filter(|(from, _)| *from == 0).count(), 1, "{migrated:?}");
    assert!(migrated.iter().all(|(_, to)| *to == SCHEMA_VERSION));
    let mut client = schema.client();
    let versions: i64 = client.query_one("SELECT count(*) FROM jobhost_schema", &[]).unwrap().get(0);
    assert_eq!(versions, i64::from(SCHEMA_VERSION));

    client
        .execute("INSERT INTO jobhost_schema (version, applied_by) VALUES (999, 'the future')", &[])
        .unwrap();
    let refused = PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain)
        .err()
        .expect("refused")
        .to_string();
    assert!(refused.contains("schema version 999, newer than this jobhost's"), "{refused}");
    // The server says so in one line and exits.
    let dir = TempDir::new().unwrap();
    let out = jobhost_tests::jobhost([
        "serve",
        "--store-url",
        &schema.url(),
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("newer than this jobhost's"), "{out:?}");
    let migrate = jobhost_tests::jobhost(["store", "migrate", "--store-url", &schema.url()]);
    assert_eq!(migrate.code, 3, "{migrate:?}");
}

#[test]
fn a_bad_or_unreachable_store_url_is_one_line_without_the_password() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::a_bad_or_unreachable_store_url_is_one_line_without_the_password",
    ) {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = TempDir::new().unwrap();
    for (url, says) in [
        (format!("postgres://jobhost:s3cret@127.0.0.1:{port}/db"), "Connection refused".to_owned()),
        ("mysql://jobhost:s3cret@host/db".to_owned(), "a store URL starts with postgres://".to_owned()),
    ] {
        let out = jobhost_tests::jobhost([
            "serve",
            "--store-url",
            &url,
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains(&says), "{out:?}");
        assert!(!out.stderr.contains("s3cret"), "the password leaked: {out:?}");
    }
    // --check-config prints the URL without its password.
    let out = jobhost_tests::jobhost([
        "serve",
        "--check-config",
        "--store-url",
        "postgres://jobhost:s3cret@db.example.com/jobs",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("postgres://jobhost@db.example.com/jobs"), "{out:?}");
    assert!(!out.stdout.contains("s3cret"), "{out:?}");
}

#[test]
fn a_cancel_sent_to_any_host_stops_the_job_where_it_runs() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::a_cancel_sent_to_any_host_stops_the_job_where_it_runs",
    ) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let runner = host(&dir, &plugins, "runner", &schema, "", &[]);
    let other = host(&dir, &plugins, "other", &schema, "", &["--paused"]);
    let id = other.add("sleep", json!(60.0));
    runner.wait_until(&id, LONG, |job| job["status"] == "processing");
    let asked = Instant::now();
    let answer = other.post_empty(&format!("/v1/jobs/{id}/cancel"));
    assert_eq!(answer.status, 200, "{answer:?}");
    let job = other.wait_finished(&id, LONG);
    assert_eq!(job["status"], "cancelled", "{job}");
    // The sleep plugin looks at its flag every few milliseconds: the notice reached it.
    assert!(asked.elapsed() < Duration::from_secs(10), "cancelled after {:?}", asked.elapsed());
}

/// The local server's TLS certificate (Debian's `ssl = on` default: a self-signed one for
/// `localhost`), if it serves TLS.
fn server_certificate(schema: &Schema) -> Option<std::path::PathBuf> {
    let ssl: String = schema.client().query_one("SHOW ssl", &[]).unwrap().get(0);
    let file: String = schema.client().query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let path = std::path::PathBuf::from(file);
    (ssl == "on" && path.is_file()).then_some(path)
}

#[test]
fn tls_to_the_database_verifies_the_server_against_the_ca_file() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::tls_to_the_database_verifies_the_server_against_the_ca_file",
    ) {
        return;
    }
    let schema = Schema::new();
    let Some(certificate) = server_certificate(&schema) else {
        eprintln!(
            "SKIPPED: the PostgreSQL server at {} serves no TLS",
            jobhost_tests::stores::postgres_url()
        );
        return;
    };
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let url = format!(
        "postgres://postgres@localhost:5432/test?sslmode=require&options=-csearch_path%3D{}",
        schema.name
    );
    let config = |ca: &std::path::Path| {
        let file = dir.path().join("tls.toml");
        std::fs::write(&file, format!("[store]\nurl = \"{url}\"\nca_file = \"{}\"\n", ca.display())).unwrap();
        file
    };
    let file = config(&certificate);
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", file.to_str().unwrap()]);
    let id = server.add("echo", json!({"over": "tls"}));
    assert_eq!(server.wait_finished(&id, LONG)["result"], json!({"over": "tls"}));
    let ssl: bool = schema
        .client()
        .query_one("SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = '' AND backend_type = 'client backend' AND ssl", &[])
        .unwrap()
        .get::<_, Option<bool>>(0)
        .unwrap_or(false);
    assert!(ssl, "the server's connections use TLS");
    drop(server);
    // The certificate names `localhost`: reached as 127.0.0.1, the server is refused, naming
    // the cause (the name is verified, not only the chain).
    let by_address = url.replace("@localhost:", "@127.0.0.1:");
    let out = jobhost_tests::jobhost([
        "store",
        "migrate",
        "--store-url",
        &by_address,
        "--ca-file",
        certificate.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("cannot connect to PostgreSQL")
            && out.stderr.to_lowercase().contains("certificate"),
        "{out:?}"
    );
    // Not a certificate at all.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let file = config(&junk);
    let out = jobhost_tests::jobhost(["serve", "--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("store.ca_file"), "{out:?}");
}

#[test]
fn run_once_processes_the_ready_jobs_of_a_postgresql_store() {
    if jobhost_tests::stores::postgres_skipped(
        "postgres::run_once_processes_the_ready_jobs_of_a_postgresql_store",
    ) {
        return;
    }
    let schema = Schema::new();
    let store = PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain).unwrap();
    let now = jobhost::clock::SystemClock.now_micros();
    let new = |n: u32| jobhost::job::NewJob {
        factory: "echo".into(),
        input: n.to_string(),
        queue: "default".into(),
        max_attempts: 3,
        ..Default::default()
    };
    use jobhost::store::JobStore;
    let ids: Vec<_> = (0..3).map(|n| store.add(new(n), now).unwrap().job.id).collect();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let dir = TempDir::new().unwrap();
    let out = jobhost_tests::jobhost_cmd()
        .current_dir(dir.path())
        .args(["run-once", "--store-url", &schema.url(), "--plugin-dir"])
        .arg(plugins.path())
        .output()
        .unwrap();
    let out: jobhost_tests::CliOutput = out.into();
    assert_eq!(out.code, 0, "{out:?}");
    for (n, id) in ids.into_iter().enumerate() {
        let job = store.get(id).unwrap().unwrap();
        assert_eq!((job.status, job.result), (jobhost::job::Status::Completed, Some(n.to_string())));
    }
    assert!(!dir.path().join("jobhost-data").exists(), "no embedded store made beside it");
    use jobhost::store::WorkStore;
    assert_eq!(store.hosts().unwrap(), vec![], "run-once stayed on the list of hosts");
}

fn job_in(queue: &str, n: u32) -> NewJob {
    NewJob {
        factory: "echo".into(),
        input: n.to_string(),
        queue: queue.into(),
        max_attempts: 3,
        ..NewJob::default()
    }
}

/// The plan PostgreSQL keeps for a statement prepared once per connection, after its first
/// runs: the generic one, forced here, with no fresh statistics (no ANALYZE).
fn generic_plan(client: &mut postgres::Client, sql: &str, params: &str) -> String {
    client.batch_execute("SET plan_cache_mode = force_generic_plan").unwrap();
    client.batch_execute(&format!("PREPARE probe AS {sql}")).unwrap();
    let rows = client.query(&format!("EXPLAIN EXECUTE probe({params})"), &[]).unwrap();
    client.batch_execute("DEALLOCATE probe").unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_claims_plan_keeps_to_its_queue_in_the_ready_index_even_generic_and_without_statistics() {
    if postgres_skipped("a_claims_plan_keeps_to_its_queue") {
        return;
    }
    let store = TestStore::new(Backend::Postgres);
    // A backlog in one queue, a few jobs in another; never analyzed.
    for chunk in 0..10 {
        let jobs = (0..1000).map(|i| job_in("big", chunk * 1000 + i)).collect();
        store.store.add_batch(jobs, 0).unwrap();
    }
    store.store.add_batch((0..5).map(|i| job_in("small", i)).collect(), 0).unwrap();
    let mut client = store.schema().unwrap().client();
    for (queue, factory, params) in [
        (Some("small"), None, "now(), 10, 'small'"),
        (Some("small"), Some("echo"), "now(), 10, 'small', 'echo'"),
    ] {
        let sql = jobhost::store::postgres::claim_sql(&ClaimFilter { queue, factory });
        let plan = generic_plan(&mut client, &sql, params);
        assert!(plan.contains("jobs_ready"), "{sql}\n{plan}");
        // The paused queues' few rows are read once per claim (an init plan); the jobs never.
        assert!(!plan.contains("Seq Scan on jobs") && !plan.contains("Sort"), "{sql}\n{plan}");
        assert!(plan.contains("InitPlan"), "the pauses are read once, not per job: {plan}");
    }
    // Under limits: closed factories and keys at their limit passed over, still in the index.
    let sql =
        jobhost::store::postgres::claim_sql_with(&ClaimFilter { queue: Some("small"), factory: None }, true);
    let plan = generic_plan(
        &mut client,
        &sql,
        "now(), 10, 'small', '{sleep}'::text[], '{queue}'::text[], '{small}'::text[], '{customer}'::text[]",
    );
    assert!(plan.contains("jobs_ready"), "{sql}\n{plan}");
    assert!(!plan.contains("Seq Scan on jobs") && !plan.contains("Sort"), "{sql}\n{plan}");
    // What every worker that goes idle asks: one entry of an index, not the backlog.
    let sql = jobhost::store::postgres::NEXT_DUE_SQL;
    let plan = generic_plan(&mut client, sql, "now()");
    assert!(plan.contains("jobs_waiting") && plan.contains("jobs_scheduled"), "{plan}");
    assert!(!plan.contains("Seq Scan") && !plan.contains("Sort"), "{plan}");
}

/// Rows of the schema's `jobs` read by sequential scans, rows fetched through indexes, and
/// rows updated, as the server's statistics have them (each session adds its own when it
/// ends).
fn jobs_read_and_updated(client: &mut postgres::Client, schema: &Schema) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0), n_tup_upd \
             FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'",
            &[&schema.name],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn claims_and_outcomes_in_batches_on_a_large_unanalyzed_store_never_scan_the_jobs_table() {
    if postgres_skipped("claims_and_outcomes_in_batches_on_a_large_unanalyzed_store_never_scan") {
        return;
    }
    use jobhost::job::Outcome;
    use jobhost::store::{Finished, LeaseTerms, Report, WorkStore};
    let schema = Schema::new();
    let store = PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain).unwrap();
    // 30,000 jobs, never analyzed: the planner knows the table's length, nothing else. The
    // last 12,000 added (the highest ids) go first: a plan that walks the primary key from
    // its start, or reads it whole, passes 18,000 others on its way.
    for chunk in 0..3 {
        let jobs = (0..10_000)
            .map(|i| NewJob {
                priority: i32::from(chunk * 10_000 + i >= 18_000),
                ..job_in("big", chunk * 10_000 + i)
            })
            .collect();
        store.add_batch(jobs, 0).unwrap();
    }
    // Two batches as large as an outcome batch gets (4,096), on new connections (whose first
    // five runs of a statement are planned for their parameters), then batches as a busy
    // host makes them, more than five times (a plan may be kept from then on).
    let filter = ClaimFilter { queue: Some("big"), factory: None };
    let lease = LeaseTerms { duration: Duration::from_secs(300) };
    let now = jobhost::clock::SystemClock.now_micros();
    let mut touched = 0;
    for size in [4_000; 2].into_iter().chain([500; 8]) {
        let claimed = store.claim_batch(&filter, now, lease, size).unwrap();
        assert_eq!(claimed.len(), size);
        let reports: Vec<Report> = claimed
            .iter()
            .map(|c| Report {
                id: c.job.id,
                token: c.token,
                outcome: Outcome::Completed { result: "1".into() },
                started_at: None,
            })
            .collect();
        let finished = store.finish_batch(&reports, now).unwrap();
        assert!(finished.iter().all(|f| matches!(f, Finished::Applied(_))));
        touched += size as i64;
    }
    // The store's sessions end, and with them their statistics reach the server.
    drop(store);
    let mut client = schema.client();
    jobhost_tests::wait_for_condition(LONG, "the sessions' statistics arrive", || {
        jobs_read_and_updated(&mut client, &schema).2 >= 2 * touched
    });
    let (scanned, fetched, _) = jobs_read_and_updated(&mut client, &schema);
    // Each batch read by primary key; a scan of the table would be 30,000 rows at once.
    assert!(scanned < 30_000, "{scanned} rows of jobs read by sequential scans");
    // Each job a batch touches is fetched four times (claimed, written back as claimed,
    // locked for its outcome, written back as finished): 48,000. Joined to the batch by
    // walking the primary key whole, the write-backs fetched 152,000.
    assert!(
        fetched < 4 * touched + 10_000,
        "{fetched} rows of jobs fetched through indexes for {touched} jobs claimed and finished"
    );
}

#[test]
fn a_store_dropped_inside_an_async_runtime_closes_its_connections_without_panicking() {
    if postgres_skipped("a_store_dropped_inside_an_async_runtime") {
        return;
    }
    let test = TestStore::new(Backend::Postgres);
    let store = PgStore::open(test.schema().unwrap().config(), jobhost::store::postgres::Tls::Plain).unwrap();
    // Connections in the pool, as a serving host has them.
    store.add_batch((0..3).map(|i| job_in("q", i)).collect(), 0).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // The last handle dropped in an async task, as at the end of `serve`.
    runtime.block_on(async move { tokio::spawn(async move { drop(store) }).await.unwrap() });
}

/// The server URL of `schema` reached through `port` on loopback instead.
fn through(schema: &Schema, port: u16) -> String {
    let config = schema.config();
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or("test");
    let password =
        config.get_password().map(|p| format!(":{}", String::from_utf8_lossy(p))).unwrap_or_default();
    format!("postgres://{user}{password}@127.0.0.1:{port}/{db}?options=-csearch_path%3D{}", schema.name)
}

/// The server's address from the test URL.
fn upstream(schema: &Schema) -> String {
    let config = schema.config();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
}

#[test]
fn a_submission_whose_commit_answer_was_lost_says_so_and_its_repeat_gets_the_job_made() {
    if postgres_skipped(
        "postgres::a_submission_whose_commit_answer_was_lost_says_so_and_its_repeat_gets_the_job_made",
    ) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let cutter = jobhost_tests::commit_cut::CommitCutter::start(upstream(&schema));
    let url = through(&schema, cutter.port);
    let file = dir.path().join("cut.toml");
    std::fs::write(&file, "host_name = \"cut\"\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        plugins.path(),
        &["--config", file.to_str().unwrap(), "--store-url", &url],
    );
    let count = || -> i64 { schema.client().query_one("SELECT count(*) FROM jobs", &[]).unwrap().get(0) };
    for (path, body, key) in [
        ("/v1/jobs", json!({"job": "echo", "input": "once", "hold": true}), "job-1"),
        (
            "/v1/jobs/batch",
            json!({"jobs": [{"job": "echo", "hold": true}, {"job": "echo", "hold": true}]}),
            "batch-1",
        ),
    ] {
        let before = count();
        cutter.arm(1);
        let lost = server.post_keyed(path, key, &body);
        assert_eq!(cutter.cut(), if key == "job-1" { 1 } else { 2 }, "{lost:?}");
        assert_eq!(lost.status, 503, "{lost:?}");
        let message = lost.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("the outcome is unknown") && message.contains("Idempotency-Key"),
            "{message}"
        );
        // It was saved nevertheless, once.
        let made = count() - before;
        assert!(made > 0, "the commit did not reach the server");
        // The client follows the advice: the repeat answers what was made, and makes nothing.
        let repeat = server.post_keyed(path, key, &body);
        assert_eq!(repeat.status, 201, "{repeat:?}");
        assert_eq!(repeat.header("idempotent-replayed"), Some("true"), "{repeat:?}");
        assert_eq!(count() - before, made, "the repeat made more jobs");
        let ids: Vec<String> = match repeat.body["jobs"].as_array() {
            Some(jobs) => jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect(),
            None => vec![repeat.body["id"].as_str().unwrap().to_owned()],
        };
        assert_eq!(ids.len() as i64, made);
        for id in ids {
            assert_eq!(server.job(&id)["status"], "held");
        }
    }
    // The CLI sends a key and repeats a submission whose answer was lost: one job, its id.
    let before = count();
    cutter.arm(1);
    let added = jobhost_tests::jobhost(["add", "--server", &server.url, "echo", "\"cli\"", "--hold"]);
    assert_eq!((added.code, cutter.cut()), (0, 3), "{added:?}");
    assert!(added.stderr.contains("sending it again with the same Idempotency-Key"), "{added:?}");
    assert_eq!(count() - before, 1);
    assert_eq!(server.job(added.stdout.trim())["input"], "cli");
}

#[test]
fn a_postgres_host_stopped_50_times_under_load_exits_0_every_time_and_loses_nothing() {
    if postgres_skipped(
        "postgres::a_postgres_host_stopped_50_times_under_load_exits_0_every_time_and_loses_nothing",
    ) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let store = PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain).unwrap();
    let count = |status: &str| -> i64 {
        schema.client().query_one("SELECT count(*) FROM jobs WHERE status = $1", &[&status]).unwrap().get(0)
    };
    let job = |n: u32| NewJob {
        factory: if n.is_multiple_of(4) { "sleep".into() } else { "echo".into() },
        input: if n.is_multiple_of(4) { "0.2".into() } else { n.to_string() },
        queue: "default".into(),
        max_attempts: 100,
        ..NewJob::default()
    };
    let mut added = 0;
    for stop in 0..50 {
        // Load: a backlog the host is working through when it is told to stop.
        let now = jobhost::clock::SystemClock.now_micros();
        store.add_batch((added..added + 40).map(job).collect(), now).unwrap();
        added += 40;
        let completed = count("completed");
        let mut server = host(&dir, &plugins, "stopper", &schema, "[default_queue]\nconcurrency = 4", &[]);
        jobhost_tests::wait_for_condition(LONG, "the host runs jobs", || count("completed") > completed);
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit(LONG), Some(0), "stop {stop}:\n{}", server.log());
        assert!(!server.log().contains("panicked"), "stop {stop}:\n{}", server.log());
        // Nothing left running: what was not finished went back to the queue.
        assert_eq!(count("processing"), 0, "stop {stop}:\n{}", server.log());
    }
    let server = host(&dir, &plugins, "stopper", &schema, "[default_queue]\nconcurrency = 4", &[]);
    jobhost_tests::wait_for_condition(Duration::from_secs(120), "every job completed", || {
        count("completed") == i64::from(added)
    });
    drop(server);
}

#[test]
fn workers_stop_claiming_while_the_recorder_cannot_write_and_lose_nothing() {
    if postgres_skipped("workers_stop_claiming_while_the_recorder_cannot_write") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let schema = Schema::new();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let server = host(&dir, &plugins, "host-a", &schema, "[default_queue]\nconcurrency = 2", &[]);
    // Every batch of outcomes reads the ended jobs' dependents, and claims never do: with that
    // table locked the recorder's transaction stalls (a real stall, as behind a long
    // migration or a lock an operator's session forgot) while claims go on.
    let mut client = schema.client();
    let mut lock = client.transaction().unwrap();
    lock.batch_execute("LOCK TABLE job_dependents IN ACCESS EXCLUSIVE MODE").unwrap();
    let jobs: Vec<Value> = (0..6000).map(|n| json!({"job": "echo", "input": n})).collect();
    for _ in 0..2 {
        assert_eq!(server.post("/v1/jobs/batch", &json!({ "jobs": jobs })).status, 201);
    }
    let counts = || -> Value { server.get("/v1/queues").body[0]["jobs"].clone() };
    let processing = || counts()["processing"].as_u64().unwrap_or(0);
    // The recorder falls one batch behind (4,096 outcomes) ...
    jobhost_tests::wait_for_condition(LONG * 2, "outcomes pile up behind the lock", || processing() >= 4096);
    // ... and the workers stop claiming within the claim window beyond it (two claims of at
    // most 1,024, a job per place and one sent ahead to each worker process): the count
    // settles there, with jobs still queued. Without the bound it settled at all 12,000.
    let bound = 4096 + 2 * 1024 + 2 * 2;
    let (mut last, mut since) = (processing(), Instant::now());
    jobhost_tests::wait_for_condition(LONG * 2, "claims stop", || {
        let now = processing();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        since.elapsed() >= Duration::from_secs(2)
    });
    let settled = counts();
    assert!(last <= bound, "{last} jobs claimed or ended unrecorded, above {bound}: {settled}");
    assert!(settled["queued"].as_u64().unwrap_or(0) >= 12_000 - bound, "{settled}");
    lock.rollback().unwrap();
    jobhost_tests::wait_for_condition(LONG * 4, "every job completed once the lock went", || {
        let queues = server.get("/v1/queues").body;
        queues[0]["jobs"]["completed"].as_u64() == Some(12_000)
    });
}
