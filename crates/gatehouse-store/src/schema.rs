//! Versioned schema migrations, one list per dialect.

use sqlx::Row;

use crate::{Dialect, Store, StoreError};

/// Step 2, the same in both dialects: recorded sessions.
const SESSIONS: &str = "CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        authn TEXT NOT NULL,
        connection TEXT NOT NULL,
        protocol TEXT NOT NULL,
        client_addr TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        end_reason TEXT
    );
    CREATE INDEX sessions_started ON sessions (started_at);
    CREATE TABLE session_statements (
        session_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        duration_us BIGINT,
        sql TEXT NOT NULL,
        decision TEXT NOT NULL,
        rule TEXT,
        command TEXT,
        rows BIGINT,
        error TEXT,
        PRIMARY KEY (session_id, seq)
    );";

/// Step 3, the same in both dialects: statements are recorded in chunks of
/// JSON lines, one row per chunk (`session_statements` stays readable).
const SESSION_CHUNKS: &str = "CREATE TABLE session_chunks (
        session_id TEXT NOT NULL,
        chunk BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, chunk)
    );";

/// Step 4, the same in both dialects: the policy document.
const POLICY: &str = "CREATE TABLE policy (
        id BIGINT PRIMARY KEY,
        doc TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL
    );";

/// Step 5, the same in both dialects: reviews, their votes, and
/// just-in-time grants.
const REVIEWS: &str = "CREATE TABLE reviews (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        connection TEXT NOT NULL,
        requester TEXT NOT NULL,
        binding TEXT NOT NULL,
        statement TEXT,
        params TEXT,
        rule TEXT NOT NULL,
        approvers TEXT NOT NULL,
        approvals_needed BIGINT NOT NULL,
        reason TEXT,
        level TEXT,
        duration_ms BIGINT,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        decided_at BIGINT,
        executed_at BIGINT,
        session_id TEXT,
        grant_id TEXT
    );
    CREATE INDEX reviews_binding ON reviews (binding, requester);
    CREATE INDEX reviews_state ON reviews (state, expires_at);
    CREATE TABLE review_votes (
        review_id TEXT NOT NULL,
        approver TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT,
        at BIGINT NOT NULL,
        break_glass BIGINT NOT NULL,
        PRIMARY KEY (review_id, approver)
    );
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        review_id TEXT NOT NULL UNIQUE,
        connection TEXT NOT NULL,
        principal TEXT NOT NULL,
        level TEXT NOT NULL,
        reason TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
        revoked_by TEXT
    );";

/// Step 6, the same in both dialects: the audit log becomes a hash chain
/// (each event carries the hash of the one before), with signed
/// checkpoints of its head.
const AUDIT_CHAIN: &str = "ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
    ALTER TABLE audit_events ADD COLUMN hash TEXT;
    CREATE TABLE audit_checkpoints (
        event_id BIGINT PRIMARY KEY,
        head_hash TEXT NOT NULL,
        ts BIGINT NOT NULL,
        public_key TEXT NOT NULL,
        signature TEXT NOT NULL
    );";

/// Step 7, the same in both dialects: a chunk of statement records may
/// live outside the store (a directory or a bucket); `location` says where,
/// and `data` then holds the statements without their results (the index).
const RECORDING_FILES: &str = "ALTER TABLE session_chunks ADD COLUMN location TEXT;
    ALTER TABLE session_chunks ADD COLUMN bytes BIGINT;
    CREATE INDEX sessions_ended ON sessions (ended_at);";
const CANCEL_REQUESTS: &str = "CREATE TABLE cancel_requests (
        key_hash TEXT NOT NULL,
        requested_at BIGINT NOT NULL
    );
    CREATE INDEX cancel_requests_at ON cancel_requests (requested_at);";

/// Step 10, the same in both dialects: a command's statement, parameters
/// and reason as the requester's content detectors leave them (JSON; NULL
/// when they found nothing), for the audit log and webhooks.
const REVIEW_REDACTED: &str = "ALTER TABLE reviews ADD COLUMN redacted TEXT;";

const SESSION_PLACES: &str = "CREATE TABLE session_places (
        connection TEXT NOT NULL,
        place BIGINT NOT NULL,
        holder TEXT NOT NULL,
        replica TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (connection, place)
    );
    CREATE INDEX session_places_replica ON session_places (replica);";

/// Each step runs once, in order, inside a transaction.
const SQLITE: &[&str] = &[
    "CREATE TABLE connections (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        groups TEXT NOT NULL,
        settings TEXT NOT NULL,
        secret TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        groups TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        last_used_at BIGINT,
        created_by TEXT NOT NULL
    );
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    SESSIONS,
    SESSION_CHUNKS,
    POLICY,
    REVIEWS,
    AUDIT_CHAIN,
    RECORDING_FILES,
    CANCEL_REQUESTS,
    SESSION_PLACES,
    REVIEW_REDACTED,
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE connections (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        groups TEXT NOT NULL,
        settings TEXT NOT NULL,
        secret TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        groups TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        last_used_at BIGINT,
        created_by TEXT NOT NULL
    );
    CREATE TABLE audit_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    SESSIONS,
    SESSION_CHUNKS,
    POLICY,
    REVIEWS,
    AUDIT_CHAIN,
    RECORDING_FILES,
    CANCEL_REQUESTS,
    SESSION_PLACES,
    REVIEW_REDACTED,
];

pub(crate) async fn migrate(store: &Store) -> Result<(), StoreError> {
    let steps = match store.dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let mut conn = store.pool.acquire().await?;
    if store.dialect == Dialect::Postgres {
        // Replicas starting together take turns; the lock ends with the session.
        sqlx::query("SELECT pg_advisory_lock(740017)")
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        sqlx::query("CREATE TABLE IF NOT EXISTS gh_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .execute(&mut *conn)
            .await?;
        let current: i64 = sqlx::query("SELECT value FROM gh_meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.get::<String, _>(0))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let known = i64::try_from(steps.len()).unwrap_or(i64::MAX);
        if current > known {
            return Err(StoreError::Corrupt(format!(
                "the store's schema is version {current}, newer than this Gatehouse knows ({known}); upgrade Gatehouse"
            )));
        }
        for (i, step) in steps.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(*step).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO gh_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind((i + 1).to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
    .await;
    if store.dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(740017)")
            .execute(&mut *conn)
            .await?;
    }
    result
}
