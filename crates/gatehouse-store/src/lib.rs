//! Where Gatehouse keeps its state: SQLite under the data directory by
//! default, or a PostgreSQL database shared by several replicas.
//!
//! One implementation serves both through sqlx's `Any` driver; the SQL is
//! written in the subset both dialects accept (numbered `$n` parameters,
//! `ON CONFLICT`, `RETURNING`). Only the schema differs, in `schema`.
//! Times are Unix milliseconds (`BIGINT`), lists are JSON text.

mod audit;
mod cancels;
mod connections;
mod policy;
pub mod recorder;
pub mod recordings;
pub mod reviews;
mod schema;
mod sessions;
mod slots;
mod tokens;

use std::path::Path;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

pub use audit::{AuditEvent, ChainedEvent, Checkpoint, GENESIS, NewAuditEvent, chain_hash};
pub use connections::ConnectionRecord;
pub use policy::StoredPolicy;
pub use reviews::{GrantRecord, Redacted, ReviewRecord, Vote, VoteError};
pub use sessions::{
    RecordEvent, ResultSample, SessionChunk, SessionFilter, SessionRecord, StatementEntry,
    StatementRecord,
};
pub use slots::SessionPlace;
pub use tokens::TokenRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the recording store failed: {0}")]
    Recordings(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("the state store at {url} cannot be opened: {source}")]
    Open { url: String, source: sqlx::Error },
}

/// The SQL dialect behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Handle to the state store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Serialises appends to the audit chain in this process (PostgreSQL
    /// replicas also take an advisory lock).
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where statement records go when not into the store itself.
    recordings: Option<std::sync::Arc<recordings::RecordingStore>>,
    /// SQLite only: the recorder's connection, through sqlx's native
    /// driver (no `Any` copies of the statement chunks it writes).
    sqlite_writer: Option<sqlx::SqlitePool>,
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::open(&url).await
    }

    /// Opens a store by URL (`sqlite://…` or `postgres://…`) and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        };
        let open_err = |source| StoreError::Open {
            url: gatehouse_core::model::redact_url(url),
            source,
        };
        let opts: AnyConnectOptions = url.parse().map_err(open_err)?;
        let max = if dialect == Dialect::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        // WAL with NORMAL sync: durable across crashes of the
                        // process, one fsync per checkpoint instead of per commit.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let mut store = Self {
            pool,
            dialect,
            audit_lock: Default::default(),
            recordings: None,
            sqlite_writer: None,
        };
        schema::migrate(&store).await?;
        if dialect == Dialect::Sqlite {
            // The same settings as the pool's connections (the file is in
            // WAL mode already).
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(open_err)?;
            let opts = opts
                .foreign_keys(true)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10));
            store.sqlite_writer = Some(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(open_err)?,
            );
        }
        store.seal_audit_chain().await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Statement records (with their results) go to `rs` from now on; the
    /// store keeps an index of them.
    pub fn with_recordings(mut self, rs: recordings::RecordingStore) -> Self {
        self.recordings = Some(std::sync::Arc::new(rs));
        self
    }

    /// Round-trips to the database; used by `/readyz`.
    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so a transaction that reads before it
    /// writes waits for other writers instead of failing with "database is
    /// locked" when one committed after its read.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM gh_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gh_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets `key` only if it has no value yet; returns whether it was set.
    pub async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO gh_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        if let Some(w) = &self.sqlite_writer {
            w.close().await;
        }
        self.pool.close().await;
    }
}

pub(crate) fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;

pub mod testing {
    //! Fresh stores for tests: a temporary SQLite file, or a new database on
    //! the PostgreSQL server named by `GATEHOUSE_TEST_PG` (default: the local
    //! server at 127.0.0.1:5432 as user postgres).

    use rand::RngCore;

    use crate::{Store, StoreError};

    /// URL of the PostgreSQL server tests create their databases on.
    pub fn test_pg_admin_url() -> String {
        std::env::var("GATEHOUSE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// Creates an empty PostgreSQL database and returns its URL.
    pub async fn fresh_pg_database() -> Result<String, StoreError> {
        sqlx::any::install_default_drivers();
        let admin = test_pg_admin_url();
        let mut id = [0u8; 6];
        rand::rng().fill_bytes(&mut id);
        let db = format!("gh_test_{}", hex::encode(id));
        let pool = sqlx::AnyPool::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&pool)
            .await?;
        pool.close().await;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        Ok(format!("{base}/{db}"))
    }

    /// Drops a database made by [`fresh_pg_database`].
    pub async fn drop_pg_database(url: &str) -> Result<(), StoreError> {
        let Some((_, db)) = url.rsplit_once('/') else {
            return Ok(());
        };
        let pool = sqlx::AnyPool::connect(&test_pg_admin_url()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&pool)
        .await?;
        pool.close().await;
        Ok(())
    }

    /// A store backed by a fresh PostgreSQL database.
    pub async fn fresh_pg_store() -> Result<(Store, String), StoreError> {
        let url = fresh_pg_database().await?;
        Ok((Store::open(&url).await?, url))
    }
}
