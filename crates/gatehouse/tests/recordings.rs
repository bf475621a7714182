//! Recordings outside the store: a real S3-compatible server (moto, with
//! signatures checked) and a directory, with retention, through a real
//! `gatehouse serve` and real `psql`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

fn psql(s: &Server, token: &str, sql: &str) -> String {
    let (host, port) = s.pg.split_once(':').unwrap();
    let o = Command::new("psql")
        .args([
            "-X", "-At", "-h", host, "-p", port, "-U", "bot", "-d", "shop", "-c", sql,
        ])
        .env("PGPASSWORD", token)
        .output()
        .expect("psql");
    assert!(o.status.success(), "{}", err(&o));
    out(&o)
}

fn setup(s: &Server) -> String {
    let bot = token(s, "bot", "agents");
    apply(
        s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\n",
            pg_url()
        ),
    );
    bot
}

/// The id of bot's session once it has ended.
fn ended_session(s: &Server) -> String {
    loop {
        let v = json(s.cli(&s.admin, &["sessions", "list", "--user", "bot", "--json"]));
        if v["sessions"][0]["ended_at"].is_i64() {
            return v["sessions"][0]["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// What the state store holds for a session's chunks (SQLite, read with Python).
fn index_rows(s: &Server, session: &str) -> String {
    let db = s.path("data/state.db");
    let o = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('SELECT location, data FROM session_chunks WHERE session_id=?',(sys.argv[2],)).fetchall())",
            db.to_str().unwrap(),
            session,
        ])
        .output()
        .unwrap();
    ok(o)
}

#[test]
fn recordings_go_to_s3_compressed_with_an_index_in_the_store() {
    let mut s3 = S3::start("gh-recordings");
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let s = Server::start_with(
        &["--recordings", "s3://gh-recordings/prod/pg"],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", &s3.key.0),
            ("AWS_SECRET_ACCESS_KEY", &s3.key.1),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let bot = setup(&s);
    let got = psql(
        &s,
        &bot,
        "SELECT 'row-' || g AS label FROM generate_series(1, 3) g",
    );
    assert_eq!(got.trim(), "row-1\nrow-2\nrow-3");
    let id = ended_session(&s);

    // The chunk is an object under the prefix, gzip'd.
    let objects = s3.list();
    let key = format!("prod/pg/{id}/000001.jsonl.gz");
    let obj = objects
        .get(&key)
        .unwrap_or_else(|| panic!("{key} not in {objects:?}"));
    assert_eq!(obj[1], "1f8b", "gzip magic");
    // The store's index names it and has the statement, not the result.
    let index = index_rows(&s, &id);
    assert!(
        index.contains(&key) && index.contains("generate_series"),
        "{index}"
    );
    assert!(
        !index.contains("row-2"),
        "results stay out of the store: {index}"
    );
    // Shown and searched as before, results included (read back from S3).
    let shown = json(s.cli(&s.admin, &["sessions", "show", &id, "--json"]));
    assert_eq!(
        shown["statements"][0]["result"],
        serde_json::json!([["row-1"], ["row-2"], ["row-3"]]),
        "{shown}"
    );
    let replay = ok(s.cli(&s.admin, &["sessions", "replay", &id, "--no-wait"]));
    assert!(
        replay.contains("generate_series") && replay.contains("row-2"),
        "{replay}"
    );
    let found = ok(s.cli(&s.admin, &["sessions", "list", "--grep", "generate_series"]));
    assert!(found.contains(&id), "{found}");
    // The credentials never show in the log.
    let log = format!("{}\n{}", s.startup, s.drain_log());
    assert!(!log.contains(&s3.key.1), "{log}");
    assert!(log.contains("s3://gh-recordings/prod/pg"), "{log}");
}

#[test]
fn a_bucket_that_refuses_the_key_stops_start_up_with_the_reason() {
    let s3 = S3::start("gh-recordings");
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--pg-listen",
            "off",
            "--mysql-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--recordings", "s3://gh-recordings/x"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", &s3.key.0)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("GATEHOUSE_STORE")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("SignatureDoesNotMatch") && e.contains("--recordings"),
        "{e}"
    );
    assert!(!e.contains("not-the-secret-key"), "{e}");
}

#[test]
fn expired_recordings_are_deleted_from_the_directory_and_the_store() {
    let rec = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &[
            "--recordings",
            rec.path().to_str().unwrap(),
            "--recordings-retention",
            "1s",
        ],
        &[],
    );
    let bot = setup(&s);
    assert_eq!(psql(&s, &bot, "SELECT 42").trim(), "42");
    let id = ended_session(&s);
    let file = rec.path().join(format!("{id}.jsonl.gz"));
    // Recorded, then gone once older than a second: file, index and session.
    loop {
        let v = json(s.cli(&s.admin, &["sessions", "list", "--json"]));
        let listed = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str());
        if !listed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!file.exists(), "the file went with its session");
    let shown = s.cli(&s.admin, &["sessions", "show", &id]);
    assert!(!shown.status.success());
    let audit = ok(s.cli(&s.admin, &["audit", "export", "--format", "jsonl"]));
    assert!(audit.contains("recordings.expired"), "{audit}");
}
