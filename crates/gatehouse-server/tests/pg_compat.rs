//! Client compatibility: real PostgreSQL drivers and tools (psycopg 3,
//! asyncpg, node-postgres, pgjdbc, pgcli) run the scripts in `tests/compat/` against the
//! machine's PostgreSQL directly and through a real gateway, and the scripts
//! fail on any difference between the two. `scripts/test` installs the
//! drivers; each script prints what differed or which step failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestServer;

const DIRECT: &str = "postgresql://postgres@127.0.0.1:5432/test";
/// Longest a whole script may run (each takes seconds when all is well).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Debian's libpostgresql-jdbc-java.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts a gateway with a connection `shop` to the machine's PostgreSQL and
/// returns it with a libpq URL that reaches `shop` through it with a token.
async fn gateway() -> (TestServer, String) {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let token = s.token("bot", &["agents"]).await;
    let dsn = format!(
        "postgresql://bot:{token}@{}:{}/shop",
        s.pg.ip(),
        s.pg.port()
    );
    (s, dsn)
}

/// Runs `program args…` from the repository root with DIRECT_DSN and
/// GATEHOUSE_DSN set, while the gateway serves, and asserts it exited 0.
async fn run_client(client: &str, program: &str, args: &[&str]) {
    let (mut s, dsn) = gateway().await;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(repo_root())
        .env("DIRECT_DSN", DIRECT)
        .env("GATEHOUSE_DSN", &dsn)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!(
            "{client}: could not run {program} (scripts/test installs the client drivers): {e}"
        ),
        Err(_) => panic!(
            "{client}: {program} {} did not finish within {SCRIPT_TIMEOUT:?} (a hang through the gateway?)",
            args.join(" ")
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    s.stop().await;
    assert!(
        output.status.success(),
        "{client} compatibility script failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
}

#[tokio::test]
async fn psycopg3_matches_direct() {
    run_client("psycopg", "python3", &["tests/compat/psycopg_compat.py"]).await;
}

#[tokio::test]
async fn pgcli_matches_direct() {
    run_client("pgcli", "python3", &["tests/compat/pgcli_compat.py"]).await;
}

#[tokio::test]
async fn asyncpg_matches_direct() {
    run_client("asyncpg", "python3", &["tests/compat/asyncpg_compat.py"]).await;
}

#[tokio::test]
async fn node_postgres_matches_direct() {
    run_client(
        "node-postgres",
        "node",
        &["tests/compat/node/node_pg_compat.mjs"],
    )
    .await;
}

#[tokio::test]
async fn jdbc_matches_direct() {
    assert!(
        std::path::Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing: scripts/test installs Debian's libpostgresql-jdbc-java"
    );
    run_client(
        "jdbc",
        "java",
        &["-cp", JDBC_JAR, "tests/compat/jdbc/Compat.java"],
    )
    .await;
}
