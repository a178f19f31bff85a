//! The schema, as numbered migrations embedded in the binary and applied at open under an
//! advisory lock: hosts starting together migrate once, the others wait and find it done.
//! A database migrated by a newer jobhost is refused (its schema may mean things this build
//! does not know); `jobhost store migrate` applies them for operators who migrate apart
//! from starting hosts.

use postgres::Client;

use super::errors::db_error;
use crate::store::error::{StoreError, StoreResult};

/// Taken with `pg_advisory_lock` while migrating (any constant no other application uses;
/// these are the bytes of "jobhost" and a version byte).
const MIGRATION_LOCK: i64 = 0x6a6f_6268_6f73_7401;

/// Migration `n` is `MIGRATIONS[n - 1]`. Never edit one that has shipped: append.
const MIGRATIONS: &[&str] = &[
    // 1: jobs, schedules, and the wake-up trigger.
    r#"
CREATE TABLE jobs (
    id bigint PRIMARY KEY,
    factory text NOT NULL,
    queue text NOT NULL,
    priority integer NOT NULL,
    input text NOT NULL,
    status text NOT NULL CHECK (status IN
        ('scheduled', 'held', 'queued', 'processing', 'completed', 'error', 'cancelled')),
    result text,
    errors text[] NOT NULL DEFAULT '{}',
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    timeout_ms bigint,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    run_at timestamptz NOT NULL,
    progress_fraction double precision,
    progress_message text,
    lease_token bigint,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    unique_key text,
    schedule_id bigint
);
CREATE SEQUENCE jobs_id_seq OWNED BY jobs.id;
-- Claims: the first queued jobs of a queue by priority, then run time, then id.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX jobs_finished ON jobs (finished_at, id) WHERE finished_at IS NOT NULL;
-- One pending job per (factory, unique key).
CREATE UNIQUE INDEX jobs_unique_pending ON jobs (factory, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('scheduled', 'held', 'queued', 'processing');
-- The job list's filters, each paged by id.
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, id);
CREATE INDEX jobs_by_factory ON jobs (factory, id);

CREATE TABLE schedules (
    id bigint PRIMARY KEY,
    active boolean NOT NULL,
    next_run_at timestamptz,
    definition jsonb NOT NULL
);
CREATE SEQUENCE schedules_id_seq OWNED BY schedules.id;
CREATE INDEX schedules_due ON schedules (next_run_at, id) WHERE active AND next_run_at IS NOT NULL;

-- Every statement that leaves jobs queued and due tells the hosts listening, once per
-- queue, in its own transaction (delivered at commit).
CREATE FUNCTION jobhost_notify_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobhost_ready', queue)
    FROM (SELECT DISTINCT queue FROM changed WHERE status = 'queued' AND run_at <= now()) AS q;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_inserted_ready AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION jobhost_notify_ready();
CREATE TRIGGER jobs_updated_ready AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION jobhost_notify_ready();
"#,
    // 2: the hosts, and the host holding each running job. (`IF NOT EXISTS`: development
    // builds created them in migration 1.)
    r#"
CREATE TABLE IF NOT EXISTS hosts (
    name text PRIMARY KEY,
    pid integer NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_host text;
"#,
    // 3: jobs per (queue, status) without a scan: every statement that changes jobs appends
    // its net change, one row per (queue, status) it touched (appends never wait for each
    // other, as updates of one counter row would); a compaction replaces the rows it sees
    // with their sums (`PgStore::compact_counts`). Counted afresh from `jobs` here.
    r#"
CREATE TABLE IF NOT EXISTS job_counts (
    queue text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL
);
CREATE OR REPLACE FUNCTION jobhost_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (queue, status, n) SELECT queue, status, count(*) FROM changed GROUP BY 1, 2;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION jobhost_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (queue, status, n)
    SELECT queue, status, sum(d) FROM (
        SELECT queue, status, -1 AS d FROM before UNION ALL SELECT queue, status, 1 FROM changed
    ) AS moves GROUP BY 1, 2 HAVING sum(d) <> 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION jobhost_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (queue, status, n) SELECT queue, status, -count(*) FROM before GROUP BY 1, 2;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_counted_inserted ON jobs;
DROP TRIGGER IF EXISTS jobs_counted_updated ON jobs;
DROP TRIGGER IF EXISTS jobs_counted_deleted ON jobs;
CREATE TRIGGER jobs_counted_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION jobhost_count_inserted();
CREATE TRIGGER jobs_counted_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS before NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION jobhost_count_updated();
CREATE TRIGGER jobs_counted_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS before FOR EACH STATEMENT EXECUTE FUNCTION jobhost_count_deleted();
LOCK TABLE jobs IN SHARE MODE;
DELETE FROM job_counts;
INSERT INTO job_counts (queue, status, n) SELECT queue, status, count(*) FROM jobs GROUP BY 1, 2;
"#,
    // 4: notifications carry the schema (`schema|queue`, `schema|job id`), so hosts on other
    // schemas of the database ignore them; a cancel requested for a running job is told to
    // the host running it.
    r#"
CREATE OR REPLACE FUNCTION jobhost_notify_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobhost_ready', current_schema() || '|' || queue)
    FROM (SELECT DISTINCT queue FROM changed WHERE status = 'queued' AND run_at <= now()) AS q;
    RETURN NULL;
END $$;
CREATE FUNCTION jobhost_notify_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobhost_cancel', current_schema() || '|' || c.id)
    FROM changed c JOIN before b ON b.id = c.id
    WHERE c.cancel_requested AND NOT b.cancel_requested AND c.status = 'processing';
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_cancel_requested AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS before NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION jobhost_notify_cancel();
"#,
    // 5: a queue's or factory's jobs by status, paged by id: a filtered page of the job list
    // (the dashboard's failed jobs of a queue, say) reads one index range per status.
    r#"
DROP INDEX IF EXISTS jobs_by_queue;
DROP INDEX IF EXISTS jobs_by_factory;
CREATE INDEX jobs_by_queue ON jobs (queue, status, id);
CREATE INDEX jobs_by_factory ON jobs (factory, status, id);
"#,
    // 6: the earliest queued job still waiting for its run time (a retry wait), which every
    // worker that goes idle asks for: one index entry, not a scan of the backlog.
    r#"
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE status = 'queued';
"#,
    // 7: the machine each host runs on: a restarted host reclaims its name at once when the
    // previous holder's pid is dead on the same machine.
    r#"
ALTER TABLE hosts ADD COLUMN machine text NOT NULL DEFAULT '';
"#,
    // 8: Idempotency-Key records: written in the transaction that creates, so a repeat of a
    // request whose answer was lost finds what it made; swept by expiry.
    r#"
CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    created text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
"#,
    // 9: jobs that wait for other jobs: the `waiting` status (pending, so it holds a unique
    // key like the others), each dependent's parents and counters (`deps`, JSON), the edges a
    // parent's change follows to its dependents; groups (a batch's members and callbacks);
    // flow control's limits and each job's `limit_key`.
    r#"
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('waiting', 'scheduled', 'held', 'queued', 'processing', 'completed', 'error', 'cancelled'));
DROP INDEX jobs_unique_pending;
CREATE UNIQUE INDEX jobs_unique_pending ON jobs (factory, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('waiting', 'scheduled', 'held', 'queued', 'processing');
ALTER TABLE jobs ADD COLUMN deps text;
ALTER TABLE jobs ADD COLUMN group_id bigint;
ALTER TABLE jobs ADD COLUMN group_callback text CHECK (group_callback IN ('on_complete', 'on_success'));
ALTER TABLE jobs ADD COLUMN parents text;
CREATE TABLE job_dependents (
    parent bigint NOT NULL,
    child bigint NOT NULL,
    run_on_failure boolean NOT NULL,
    PRIMARY KEY (parent, child)
);
ALTER TABLE jobs ADD COLUMN limit_key text;
-- Flow control: each limit and its rate's next start, locked by claims it covers.
CREATE TABLE job_limits (
    scope text PRIMARY KEY,
    definition text NOT NULL,
    next_start timestamptz
);
CREATE TABLE job_groups (
    id bigint PRIMARY KEY,
    name text,
    created_at timestamptz NOT NULL,
    members bigint[] NOT NULL,
    callbacks text NOT NULL
);
"#,
    // 10: queues paused by operators, which every host sharing the store leaves alone.
    r#"
CREATE TABLE queue_pauses (
    queue text PRIMARY KEY,
    paused_by text NOT NULL,
    paused_at timestamptz NOT NULL
);
"#,
    // 11: throughput history, one row per minute and queue summed over every host.
    r#"
CREATE TABLE throughput_history (
    minute bigint NOT NULL,
    queue text NOT NULL,
    completed bigint NOT NULL,
    failed bigint NOT NULL,
    retried bigint NOT NULL,
    run_hist bigint[] NOT NULL,
    run_max bigint NOT NULL,
    wait_hist bigint[] NOT NULL,
    wait_max bigint NOT NULL,
    PRIMARY KEY (minute, queue)
);
"#,
    // 12: where a job's plugin code last panicked, and the stack then.
    r#"
ALTER TABLE jobs ADD COLUMN backtrace text;
"#,
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// What `migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per migration, under the
/// advisory lock. Refuses a schema newer than this build.
pub fn migrate(client: &mut Client, shown: &str) -> StoreResult<Migrated> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).map_err(db_error)?;
    let result = migrate_locked(client, shown);
    // Released on every path; a lost connection releases it anyway.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

fn migrate_locked(client: &mut Client, shown: &str) -> StoreResult<Migrated> {
    // Looked up first: `CREATE TABLE IF NOT EXISTS` would log the server's notice at every start.
    let exists: Option<String> =
        client.query_one("SELECT to_regclass('jobhost_schema')::text", &[]).map_err(db_error)?.get(0);
    if exists.is_none() {
        client
            .batch_execute(
                "CREATE TABLE jobhost_schema (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    applied_by text NOT NULL
                )",
            )
            .map_err(db_error)?;
    }
    let from = current_version(client)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::Unusable(format!(
            "the database at {shown} has schema version {from}, newer than this jobhost's {SCHEMA_VERSION}: \
             it was migrated by a newer jobhost; run that version (or a newer one) instead"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = index as i32 + 1;
        let mut tx = client.transaction().map_err(db_error)?;
        tx.batch_execute(sql).map_err(|e| {
            StoreError::Unusable(format!(
                "migration {version} failed on {shown}: {}",
                super::errors::words(&e)
            ))
        })?;
        let by = format!("jobhost {}", env!("CARGO_PKG_VERSION"));
        tx.execute("INSERT INTO jobhost_schema (version, applied_by) VALUES ($1, $2)", &[&version, &by])
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        log::info!("store {shown}: schema migrated to version {version}");
    }
    Ok(Migrated { from, to: SCHEMA_VERSION })
}

fn current_version(client: &mut Client) -> StoreResult<i32> {
    let row =
        client.query_one("SELECT coalesce(max(version), 0) FROM jobhost_schema", &[]).map_err(db_error)?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a, 64 bits: enough to notice any edit of a migration's text.
    fn checksum(text: &str) -> String {
        let hash = text
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        format!("{hash:016x}")
    }

    /// The migrations as shipped. A database that ran migration n never runs it again, so an
    /// edit of a shipped one reaches new databases only: the schemas of old and new hosts would
    /// differ. Change the schema with a new migration appended to `MIGRATIONS` (and its
    /// checksum appended here), never by editing one.
    const SHIPPED: &[&str] = &[
        "2b0792cd6e01d40e",
        "9cdde9a3df5b1db6",
        "a10e387d36bade95",
        "44d897bfb5ece0f4",
        "a965702c0c7e651e",
        "4fe840e7bb9d5cde",
        "ca9447492f054877",
        "08678a25e2ab7e07",
        "ba7b501c5be06326",
        "c529b276564f30b8",
        "87f7a5b71c9fadd4",
        "b9e300b16664a9f2",
    ];

    #[test]
    fn shipped_migrations_are_never_edited() {
        let now: Vec<String> = MIGRATIONS.iter().map(|sql| checksum(sql)).collect();
        assert!(now.len() >= SHIPPED.len(), "a shipped migration was removed");
        assert_eq!(
            &now[..SHIPPED.len()],
            SHIPPED,
            "a shipped migration was edited: append a new one instead"
        );
        assert_eq!(
            now.len(),
            SHIPPED.len(),
            "a new migration: append its checksum to SHIPPED ({:?})",
            &now[SHIPPED.len()..]
        );
    }
}
