//! The PostgreSQL proxy end to end: a real server on free ports, the
//! machine's PostgreSQL behind it, and real clients (psql, pgbench,
//! tokio-postgres) in front.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestServer, closed_port, db_error, put_policy};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

const DIRECT: &str = "postgres://postgres@127.0.0.1:5432/test";

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", rand_hex())
}

fn rand_hex() -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("{:x}{:x}", n, std::process::id())
}

/// Connects through the gateway; spawns the connection task and returns
/// the client plus a stream of async messages (notices, notifications).
async fn connect(
    url: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<AsyncMessage>,
) {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect through the gateway");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            let _ = tx.send(m);
        }
    });
    (client, rx)
}

async fn connect_err(url: &str) -> tokio_postgres::Error {
    match tokio_postgres::connect(url, NoTls).await {
        Ok(_) => panic!("connecting to {url} should have failed"),
        Err(e) => e,
    }
}

fn msg(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("(no SQLSTATE: {e})"))
}

async fn gateway() -> (TestServer, String) {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    (s, bot)
}

fn url_with(s: &TestServer, token: &str, connection: &str) -> String {
    format!(
        "postgresql://bot:{token}@{}:{}/{connection}",
        s.pg.ip(),
        s.pg.port()
    )
}

#[tokio::test]
async fn extended_protocol_types_transactions_and_copy_match_direct() {
    let (s, bot) = gateway().await;
    let (gw, _) = connect(&url_with(&s, &bot, "shop")).await;
    let (direct, _) = connect(DIRECT).await;
    let t = unique("gh_ext");
    gw.batch_execute(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text, score float8, ok bool, data bytea)"
    ))
    .await
    .unwrap();

    // Prepared statements with binary parameters and results.
    let ins = gw
        .prepare(&format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"))
        .await
        .unwrap();
    for i in 0..20i32 {
        let name = format!("row {i}");
        let data = vec![i as u8; 3];
        gw.execute(
            &ins,
            &[&i, &name, &(f64::from(i) / 2.0), &(i % 2 == 0), &data],
        )
        .await
        .unwrap();
    }
    let q = format!("SELECT id, name, score, ok, data FROM {t} WHERE id >= $1 ORDER BY id");
    let through: Vec<(i32, String, f64, bool, Vec<u8>)> = gw
        .query(&q, &[&5i32])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let direct_rows: Vec<(i32, String, f64, bool, Vec<u8>)> = direct
        .query(&q, &[&5i32])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(through.len(), 15);
    assert_eq!(through, direct_rows);

    // Pipelining: several queries in flight at once.
    let futs = (0..10i32).map(|i| {
        let gw = &gw;
        let q = format!("SELECT name FROM {t} WHERE id = $1");
        async move { gw.query_one(&q, &[&i]).await.map(|r| r.get::<_, String>(0)) }
    });
    let names = futures_util::future::join_all(futs).await;
    for (i, n) in names.into_iter().enumerate() {
        assert_eq!(n.unwrap(), format!("row {i}"));
    }

    // A portal read two rows at a time (portal suspension).
    let mut gw = gw;
    let tx = gw.transaction().await.unwrap();
    let stmt = tx
        .prepare(&format!("SELECT id FROM {t} ORDER BY id"))
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let first = tx.query_portal(&portal, 2).await.unwrap();
    let second = tx.query_portal(&portal, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        second
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    tx.commit().await.unwrap();

    // An error inside a transaction, then rollback; the session stays usable.
    let tx = gw.transaction().await.unwrap();
    tx.execute(
        &format!("UPDATE {t} SET name = 'changed' WHERE id = 1"),
        &[],
    )
    .await
    .unwrap();
    let err = tx
        .execute(
            &format!("INSERT INTO {t} VALUES (1, 'dup', 0, true, NULL)"),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), "23505");
    let err = tx.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(code(&err), "25P02", "in a failed transaction");
    tx.rollback().await.unwrap();
    let name: String = gw
        .query_one(&format!("SELECT name FROM {t} WHERE id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "row 1");

    // COPY in and out.
    let sink = gw
        .copy_in(&format!("COPY {t} (id, name) FROM STDIN"))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    use futures_util::SinkExt;
    sink.send(bytes::Bytes::from_static(b"100\tcopied a\n101\tcopied b\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let out = gw
        .copy_out(&format!(
            "COPY (SELECT id, name FROM {t} WHERE id >= 100 ORDER BY id) TO STDOUT"
        ))
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.map(|c| c.unwrap()).collect().await;
    assert_eq!(chunks.concat(), b"100\tcopied a\n101\tcopied b\n");

    // Simple-protocol multi-statement strings.
    let msgs = gw
        .simple_query(&format!("SELECT 1; SELECT count(*) FROM {t}"))
        .await
        .unwrap();
    let counts: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec!["1", "22"]);
    gw.batch_execute(&format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn notices_notifications_and_cancel() {
    let (s, bot) = gateway().await;
    let url = url_with(&s, &bot, "shop");
    let (gw, mut msgs) = connect(&url).await;
    gw.batch_execute("DO $$ BEGIN RAISE NOTICE 'hello from upstream'; END $$")
        .await
        .unwrap();
    let channel = unique("gh_chan");
    gw.batch_execute(&format!("LISTEN {channel}"))
        .await
        .unwrap();
    let (other, _) = connect(&url).await;
    other
        .batch_execute(&format!("NOTIFY {channel}, 'payload-1'"))
        .await
        .unwrap();
    let mut saw_notice = false;
    let mut saw_notify = false;
    while !(saw_notice && saw_notify) {
        // The notification arrives when the listener next reads: poke it.
        let m = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                tokio::select! {
                    m = msgs.recv() => return m,
                    _ = gw.simple_query("SELECT 1") => {}
                }
            }
        })
        .await
        .expect("notice and notification arrive");
        match m {
            Some(AsyncMessage::Notice(n)) => saw_notice |= n.message() == "hello from upstream",
            Some(AsyncMessage::Notification(n)) => {
                saw_notify |= n.channel() == channel && n.payload() == "payload-1"
            }
            _ => {}
        }
    }

    // A cancel request goes to the gateway with the gateway's key and stops
    // the upstream query.
    let token = gw.cancel_token();
    let sleep = format!("SELECT pg_sleep(30) -- {}", unique("local_cancel"));
    let sleeper = {
        let sleep = sleep.clone();
        tokio::spawn(async move { gw.simple_query(&sleep).await })
    };
    running_upstream(&other, &sleep).await;
    token.cancel_query(NoTls).await.unwrap();
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(code(&err), "57014", "{err}");
}

/// Waits until `sql` runs upstream, as `observer` sees in pg_stat_activity.
async fn running_upstream(observer: &tokio_postgres::Client, sql: &str) {
    let started = std::time::Instant::now();
    loop {
        let rows = observer
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'",
                &[&sql],
            )
            .await
            .unwrap();
        if rows[0].get::<_, i64>(0) > 0 {
            return;
        }
        tokio::task::yield_now().await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{sql} never started"
        );
    }
}

/// Two replicas sharing a fresh PostgreSQL store (its URL) and master key.
async fn two_replicas() -> (String, TestServer, TestServer) {
    let store = gatehouse_store::testing::fresh_pg_database()
        .await
        .expect("fresh database");
    let key = gatehouse_core::keyring::Keyring::generate_key();
    let a = common::replica(&store, &key).await;
    let b = common::replica(&store, &key).await;
    (store, a, b)
}

/// Behind a load balancer, a client's cancel request (a connection of its
/// own) may reach another replica than the one holding its session. With a
/// shared store it still cancels the statement, and the store only ever
/// sees a hash of the cancel key.
#[tokio::test]
async fn a_cancel_request_that_reaches_another_replica_cancels_the_statement() {
    let (store, a, b) = two_replicas().await;
    a.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = a.token("bot", &["agents"]).await;
    let (gw, _) = connect(&url_with(&a, &bot, "shop")).await;
    let (observer, _) = connect(&url_with(&a, &bot, "shop")).await;
    let token = gw.cancel_token();
    let sleep = format!("SELECT pg_sleep(30) -- {}", unique("remote_cancel"));
    let sleeper = {
        let sleep = sleep.clone();
        tokio::spawn(async move { gw.simple_query(&sleep).await })
    };
    running_upstream(&observer, &sleep).await;

    // The cancel request goes to B, which holds no session with that key.
    let to_b = tokio::net::TcpStream::connect(b.pg).await.unwrap();
    token.cancel_query_raw(to_b, NoTls).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the statement was not cancelled")
        .unwrap()
        .unwrap_err();
    assert_eq!(code(&err), "57014", "{err}");

    assert_eq!(stored_requests(&store).await, 1);
    drop_replicas(&store, a, b).await;
}

/// Stops two replicas and drops their shared `store` (a test's fresh
/// database, which would otherwise stay on the server).
async fn drop_replicas(store: &str, mut a: TestServer, mut b: TestServer) {
    a.stop().await;
    b.stop().await;
    gatehouse_store::testing::drop_pg_database(store)
        .await
        .expect("drop the test's store");
}

/// How many requests replicas left in the shared `store`'s
/// `cancel_requests`; each must be a hash (64 hex digits), never a key or
/// an id in the clear.
async fn stored_requests(store: &str) -> usize {
    let (db, conn) = tokio_postgres::connect(store, NoTls).await.unwrap();
    tokio::spawn(conn);
    let stored = db
        .query("SELECT key_hash FROM cancel_requests", &[])
        .await
        .unwrap();
    for row in &stored {
        let hash: String = row.get(0);
        assert!(
            hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
            "{hash}"
        );
    }
    stored.len()
}

/// The MySQL client's Ctrl-C sends `KILL QUERY id` on a login of its own
/// (without a database), which a load balancer may hand to another replica
/// than the one holding the session; so may a KILL from another session.
/// With a shared store that replica passes it on (as a hash of the kind,
/// the id, the caller and the connection, so that it can end only that
/// caller's own session), and the replica holding the session sends the
/// KILL upstream (deciding the policy first for the Ctrl-C login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_kill_that_reaches_another_replica_ends_the_statement() {
    let store = gatehouse_store::testing::fresh_pg_database()
        .await
        .expect("fresh database");
    let key = gatehouse_core::keyring::Keyring::generate_key();
    let replica = |store: String, key: gatehouse_core::secret::Secret| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = common::config(dir.path());
        c.store_url = Some(store);
        c.master_key = Some(key);
        c.mysql_listen = Some("127.0.0.1:0".into());
        TestServer::start_with(dir, c).await
    };
    let a = replica(store.clone(), key.clone()).await;
    let b = replica(store.clone(), key).await;
    let (status, v) = a
        .post(
            "/v1/connections",
            &a.admin,
            json!({"name": "shop_my", "kind": "mysql", "url": common::mysql_url(), "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = a.token("bot", &["agents"]).await;
    let addr = |s: &TestServer| s.running.as_ref().unwrap().mysql_addr.unwrap();
    let (a_my, b_my) = (addr(&a), addr(&b));
    let marker = unique("remote_kill");
    let script = r#"
import json, sys, threading, time
import pymysql
a_port, b_port, token, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
direct = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)
def round(name, **kill_login):
    c = pymysql.connect(host="127.0.0.1", port=a_port, user="bot", password=token, database="shop_my")
    cid = c.thread_id()
    got = {}
    def sleep():
        cur = c.cursor()
        try:
            cur.execute(f"SELECT SLEEP(30) /* {marker} {name} */")
            got["sleep"] = ["ran", cur.fetchall()[0][0]]
        except pymysql.err.MySQLError as e:
            got["sleep"] = [e.args[0], e.args[1]]
    t = threading.Thread(target=sleep)
    t.start()
    # Until the statement runs upstream (seen from the server itself).
    for _ in range(600):
        d = direct.cursor()
        d.execute("SELECT count(*) FROM information_schema.processlist WHERE info LIKE %s AND info NOT LIKE %s",
                  (f"%SLEEP(30) /* {marker} {name} */%", "%processlist%"))
        if d.fetchone()[0] == 1:
            break
        time.sleep(0.05)
    if kill_login.get("database"):
        k = pymysql.connect(host="127.0.0.1", port=b_port, user="bot", password=token, **kill_login)
        k.cursor().execute(f"KILL QUERY {cid}")
        got["kill"] = "ok"
    else:
        # As the mariadb client's Ctrl+C does: a login without a database.
        import os, subprocess
        r = subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", str(b_port), "-u", "bot",
                            "--skip-ssl", "-e", f"KILL QUERY {cid}"],
                           capture_output=True, text=True, env={**os.environ, "MYSQL_PWD": token})
        got["kill"] = "ok" if r.returncode == 0 else r.stderr
    t.join(60)
    c.close()
    return got
out = {
    # From a session on the same connection.
    "session": round("session", database="shop_my"),
    # From a login without a connection: the command line client's Ctrl+C.
    "control": round("control"),
}
print(json.dumps(out))
"#;
    let args = [
        a_my.port().to_string(),
        b_my.port().to_string(),
        bot.clone(),
        marker,
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = python_json(script, &args);
    for way in ["session", "control"] {
        assert_eq!(v[way]["kill"], "ok", "{way}: {v}");
        // MariaDB's SLEEP returns 1 when it is interrupted (0 had it run out).
        let sleep = &v[way]["sleep"];
        let interrupted = *sleep == json!(["ran", 1]) || sleep[0] == json!(1317);
        assert!(
            interrupted,
            "{way}: the statement on the other replica went on: {v}"
        );
    }
    assert_eq!(stored_requests(&store).await, 2);
    drop_replicas(&store, a, b).await;
}

/// Connects to `url` once an ended session's place among the
/// connection's `max_sessions` has come free (it is given back in the
/// background); refused with 53300 until then.
async fn connect_once_a_place_is_free(url: &str) -> tokio_postgres::Client {
    let started = std::time::Instant::now();
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                return c;
            }
            Err(e) => assert_eq!(code(&e), "53300", "{e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the ended session's place never came free"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection's `max_sessions` counts the sessions of every replica of a
/// shared store: with one place, a session open through A leaves none for B
/// (53300), until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sessions_counts_the_sessions_of_every_replica() {
    let (store, a, b) = two_replicas().await;
    let (status, v) = a
        .pg_connection_with("shop", DIRECT, &["agents"], json!({"max_sessions": 1}))
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = a.token("bot", &["agents"]).await;
    let (on_a, _) = connect(&url_with(&a, &bot, "shop")).await;
    on_a.simple_query("SELECT 1").await.unwrap();
    let e = connect_err(&url_with(&b, &bot, "shop")).await;
    assert_eq!(code(&e), "53300", "{e}");
    assert!(
        msg(&e).contains("connection \"shop\" has 1 sessions open, its limit (max_sessions)"),
        "{e}"
    );
    // Once A's session has ended, its place is given back and B's client
    // gets it.
    drop(on_a);
    let on_b = connect_once_a_place_is_free(&url_with(&b, &bot, "shop")).await;
    on_b.simple_query("SELECT 1").await.unwrap();
    let e = connect_err(&url_with(&a, &bot, "shop")).await;
    assert_eq!(code(&e), "53300", "and now none is left for A: {e}");
    drop(on_b);
    drop_replicas(&store, a, b).await;
}

/// Every session of a connection logs in upstream as the same role, which
/// may cancel or end any of its backends: `pg_cancel_backend` and
/// `pg_terminate_backend` reach only the caller's own sessions' backends,
/// named by a literal pid, even with no policy rule at all.
#[tokio::test]
async fn backend_signals_reach_only_the_callers_own_sessions() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    let other = s.token("other", &["agents"]).await;
    let (mine, _) = connect(&url_with(&s, &bot, "shop")).await;
    let (my_second, _) = connect(&url_with(&s, &bot, "shop")).await;
    let (theirs, _) = connect(&url_with(&s, &other, "shop")).await;
    let backend_pid = "SELECT pg_backend_pid()";
    let their_pid: i32 = theirs.query_one(backend_pid, &[]).await.unwrap().get(0);
    let my_second_pid: i32 = my_second.query_one(backend_pid, &[]).await.unwrap().get(0);
    for sql in [
        format!("SELECT pg_terminate_backend({their_pid})"),
        format!("SELECT pg_catalog.pg_cancel_backend({their_pid})"),
        format!("SELECT 1; SELECT PG_TERMINATE_BACKEND({their_pid})"),
        format!("SELECT U&\"pg_terminate\\005fbackend\"({their_pid})"),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()".into(),
        // Where pg_query's own walk of the tree does not look.
        format!("VALUES (pg_terminate_backend({their_pid}))"),
        "BEGIN; DECLARE c CURSOR FOR SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid(); FETCH ALL FROM c; COMMIT".into(),
        "PREPARE end_them(int) AS SELECT pg_terminate_backend($1)".into(),
    ] {
        let e = mine.simple_query(&sql).await.unwrap_err();
        let (code, message, detail) = db_error(&e);
        assert_eq!(code, "42501", "{sql}: {e}");
        assert!(
            message.contains("may name only the backend of one of your own sessions"),
            "{sql}: {message}"
        );
        assert_eq!(detail, "rule: backend-signal", "{sql}");
    }
    // A bound parameter is looked at as the statement runs: another
    // caller's pid is refused, the caller's own allowed, through one
    // prepared statement.
    let by_param = mine.prepare("SELECT pg_cancel_backend($1)").await.unwrap();
    let e = mine.query_one(&by_param, &[&their_pid]).await.unwrap_err();
    assert_eq!(db_error(&e).0, "42501", "{e}");
    assert_eq!(db_error(&e).2, "rule: backend-signal");
    let e = mine
        .query_one("SELECT pg_terminate_backend($1::int4)", &[&their_pid])
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).2, "rule: backend-signal");
    theirs.simple_query("SELECT 1").await.unwrap();
    let cancelled = mine.query_one(&by_param, &[&my_second_pid]).await.unwrap();
    assert!(cancelled.get::<_, bool>(0));
    // A parameter in a simple query (where nothing binds it), or one that
    // is not the function's whole argument, is refused as before.
    let e = mine
        .query_one("SELECT pg_cancel_backend($1 + 0)", &[&my_second_pid])
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).2, "rule: backend-signal");

    // A pid that was the caller's own when a statement was prepared is
    // looked at again when it runs: once that session has ended, it is
    // refused (its pid may be another caller's by then).
    let (my_third, _) = connect(&url_with(&s, &bot, "shop")).await;
    let my_third_pid: i32 = my_third.query_one(backend_pid, &[]).await.unwrap().get(0);
    let by_literal = mine
        .prepare(&format!("SELECT pg_cancel_backend({my_third_pid})"))
        .await
        .unwrap();
    assert!(
        mine.query_one(&by_literal, &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    drop(my_third);
    let started = std::time::Instant::now();
    let e = loop {
        match mine.query_one(&by_literal, &[]).await {
            Err(e) => break e,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(20),
                "the ended session's pid was still signalled"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(db_error(&e).2, "rule: backend-signal", "{e}");

    // The caller's own other session: as the role allows.
    let cancelled = mine
        .query_one(&format!("SELECT pg_cancel_backend({my_second_pid})"), &[])
        .await
        .unwrap();
    assert!(cancelled.get::<_, bool>(0));
    mine.simple_query(&format!("SELECT pg_terminate_backend({my_second_pid})"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while my_second.simple_query("SELECT 1").await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the caller's own session was not ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    theirs.simple_query("SELECT 1").await.unwrap();
}

/// A read-only connection: the database itself refuses writes (whatever
/// the policy's analysis sees, a write in a DO block too), statements that
/// would leave read-only mode are refused, and a session that leaves it
/// some other way is ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_connection_is_read_only_in_the_database() {
    let s = TestServer::start().await;
    let (status, v) = s
        .pg_connection_with("ro", DIRECT, &["agents"], json!({"read_only": true}))
        .await;
    assert_eq!(status, 201, "{v}");
    s.pg_connection("rw", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    let t = unique("gh_ro");
    let (rw, _) = connect(&url_with(&s, &bot, "rw")).await;
    rw.batch_execute(&format!(
        "CREATE TABLE {t} (v int); INSERT INTO {t} VALUES (1)"
    ))
    .await
    .unwrap();
    let (ro, _) = connect(&url_with(&s, &bot, "ro")).await;
    let read: i64 = ro
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(read, 1);
    // Writes, however they come, are refused by the server.
    for (before, sql) in [
        ("", format!("INSERT INTO {t} VALUES (2)")),
        (
            "",
            format!("DO $$ BEGIN INSERT INTO {t} VALUES (3); END $$"),
        ),
        ("DISCARD ALL", format!("INSERT INTO {t} VALUES (4)")),
        ("RESET ALL", format!("INSERT INTO {t} VALUES (5)")),
    ] {
        ro.simple_query(before).await.unwrap();
        let e = ro.simple_query(&sql).await.unwrap_err();
        let (code, message, _) = db_error(&e);
        assert_eq!(code, "25006", "{sql}: {e}");
        assert!(
            message.contains("read-only transaction"),
            "{sql}: {message}"
        );
    }
    // Leaving read-only mode is refused, whatever the policy (there is none).
    for sql in [
        "SET default_transaction_read_only = off".to_string(),
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE".into(),
        format!("BEGIN READ WRITE; INSERT INTO {t} VALUES (6); COMMIT"),
        format!("BEGIN; SET TRANSACTION READ WRITE; INSERT INTO {t} VALUES (7); COMMIT"),
        "SELECT set_config('default_transaction_read_only', 'off', false)".into(),
    ] {
        let e = ro.simple_query(&sql).await.unwrap_err();
        let (code, message, detail) = db_error(&e);
        assert_eq!(
            (code.as_str(), detail.as_str()),
            ("42501", "rule: read-only"),
            "{sql}: {e}"
        );
        assert!(
            message.contains("connection \"ro\" is read-only"),
            "{sql}: {message}"
        );
    }
    // Through the extended protocol too.
    let e = ro
        .query(
            "SELECT set_config('transaction_read_only', $1, true)",
            &[&"off"],
        )
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).2, "rule: read-only");
    // A client's own start-up setting of it is not applied.
    let o = psql_with_options(
        &url_with(&s, &bot, "ro"),
        "-c default_transaction_read_only=off",
        &["SHOW default_transaction_read_only"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "on");
    // Leaving it where Gatehouse cannot see (in a DO block): the server
    // reports it, and the session ends before it can write.
    let e = ro
        .simple_query(
            "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); END $$",
        )
        .await
        .unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "57P01", "{e}");
    assert!(
        message.contains("connection \"ro\" is read-only, and the session left read-only mode"),
        "{message}"
    );
    assert!(
        ro.simple_query(&format!("INSERT INTO {t} VALUES (8)"))
            .await
            .is_err()
    );
    // The query API's sessions are read-only too.
    let (status, v) = s
        .post(
            "/v1/connections/ro/query",
            &bot,
            json!({"sql": format!("INSERT INTO {t} VALUES (9)")}),
        )
        .await;
    assert!(status >= 400, "{status} {v}");
    assert!(v.to_string().contains("read-only transaction"), "{v}");
    let n: i64 = rw
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "nothing was written through the read-only connection");
    rw.batch_execute(&format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn refusals_carry_sqlstates_a_person_can_act_on() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    s.pg_connection("hr", DIRECT, None, &["people-ops"]).await;
    let down = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    s.pg_connection("down", &down, None, &["agents"]).await;
    s.pg_connection(
        "wrongpw",
        "postgres://gh_scram@127.0.0.1:5432/test",
        Some("not-the-password"),
        &["agents"],
    )
    .await;
    let bot = s.token("bot", &["agents"]).await;

    let e = connect_err(&url_with(
        &s,
        "gh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "shop",
    ))
    .await;
    assert_eq!(code(&e), "28P01");
    let e = connect_err(&url_with(&s, &bot, "nope")).await;
    assert_eq!(code(&e), "3D000");
    assert!(
        msg(&e).contains("no PostgreSQL connection named \"nope\""),
        "{e:?}"
    );
    let e = connect_err(&url_with(&s, &bot, "hr")).await;
    assert_eq!(code(&e), "42501");
    assert!(msg(&e).contains("may not use connection \"hr\""), "{e:?}");
    let e = connect_err(&url_with(&s, &bot, "down")).await;
    assert_eq!(code(&e), "08006");
    let e = connect_err(&url_with(&s, &bot, "wrongpw")).await;
    assert_eq!(code(&e), "08004");
    assert!(!format!("{e:?}").contains("not-the-password"));
    let (status, _) = s.delete("/v1/tokens/bot", &s.admin).await;
    assert_eq!(status, 200);
    let e = connect_err(&url_with(&s, &bot, "shop")).await;
    assert_eq!(code(&e), "28P01");
    assert!(msg(&e).contains("revoked"), "{e:?}");
}

#[tokio::test]
async fn stored_credentials_log_in_with_scram_md5_cleartext_and_tls() {
    let s = TestServer::start().await;
    for (name, url, pw) in [
        (
            "scram",
            "postgres://gh_scram@127.0.0.1:5432/test?sslmode=disable",
            "scram-secret-1",
        ),
        (
            "md5",
            "postgres://gh_md5@127.0.0.1:5432/test?sslmode=disable",
            "md5-secret-2",
        ),
        (
            "clear",
            "postgres://gh_clear@127.0.0.1:5432/test?sslmode=disable",
            "clear-secret-3",
        ),
        (
            "tls",
            "postgres://gh_tlsonly@127.0.0.1:5432/test?sslmode=require",
            "",
        ),
        (
            "notls",
            "postgres://gh_tlsonly@127.0.0.1:5432/test?sslmode=disable",
            "",
        ),
        (
            "untrusted",
            "postgres://gh_tlsonly@127.0.0.1:5432/test?sslmode=verify-full",
            "",
        ),
    ] {
        let pw = if pw.is_empty() { None } else { Some(pw) };
        s.pg_connection(name, url, pw, &["agents"]).await;
    }
    let bot = s.token("bot", &["agents"]).await;
    for (name, role) in [
        ("scram", "gh_scram"),
        ("md5", "gh_md5"),
        ("clear", "gh_clear"),
        ("tls", "gh_tlsonly"),
    ] {
        let (c, _) = connect(&url_with(&s, &bot, name)).await;
        let row = c.query_one("SELECT current_user::text, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), role, "{name}");
        assert_eq!(
            row.get::<_, bool>(1),
            name == "tls",
            "{name}: TLS to the upstream"
        );
    }
    // hostssl-only role without TLS: the upstream rejects it.
    let e = connect_err(&url_with(&s, &bot, "notls")).await;
    assert_eq!(code(&e), "08004", "{e}");
    // verify-full against the server's self-signed certificate: refused.
    let e = connect_err(&url_with(&s, &bot, "untrusted")).await;
    assert!(msg(&e).contains("TLS"), "{e:?}");
}

/// Runs a Python script with `args` (blocking only this worker) and reads
/// the JSON it prints; the test fails if it does.
fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let o = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3")
    });
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{out}{err}");
    serde_json::from_str(out.trim()).expect(&out)
}

fn psql(url: &str, args: &[&str]) -> (bool, String, String) {
    // The gateway runs on this test's runtime: block only this worker.
    let o = tokio::task::block_in_place(|| {
        Command::new("psql")
            .arg("-X")
            .arg("-v")
            .arg("ON_ERROR_STOP=1")
            .arg(url)
            .args(args)
            .output()
            .expect("psql (postgresql-client) is installed")
    });
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Runs one of PostgreSQL's client programs with `args` and the
/// environment `env`; (success, stdout, stderr).
fn pg_tool<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let o = tokio::task::block_in_place(|| {
        Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{program} (postgresql-client): {e}"))
    });
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// A plain dump without what differs between any two runs: comments and
/// the random keys of `\restrict`.
fn dump_body(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// pg_dump and pg_restore through the gateway: a plain dump equals a direct
/// one, and a directory dump and restore with two jobs each (which share one
/// snapshot across sessions: `pg_export_snapshot` and `SET TRANSACTION
/// SNAPSHOT`) bring back the same table, view and rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore_work_through_the_gateway() {
    let (s, bot) = gateway().await;
    let (direct, _) = connect(DIRECT).await;
    let t = unique("gh_dump");
    direct
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, name text, data jsonb, at timestamptz);
             INSERT INTO {t} SELECT g, 'n' || g, jsonb_build_object('g', g, 's', repeat('x', g % 7)),
                 '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'
             FROM generate_series(1, 1000) g;
             CREATE INDEX {t}_name ON {t} (name);
             CREATE VIEW {t}_v AS SELECT id, name FROM {t} WHERE id % 2 = 0;"
        ))
        .await
        .unwrap();
    let checksum = format!(
        "SELECT count(*), md5(string_agg(id || name || data::text || at::text, ',' ORDER BY id)) FROM {t}"
    );
    let before = direct.query_one(&checksum, &[]).await.unwrap();
    let before: (i64, String) = (before.get(0), before.get(1));
    let host = s.pg.ip().to_string();
    let port = s.pg.port().to_string();
    let view = format!("{t}_v");
    let through = [("PGPASSWORD", bot.as_str()), ("PGSSLMODE", "require")];
    let gw_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["-h", &host, "-p", &port, "-U", "bot"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };

    let args = gw_args(&["-t", &t, "-t", &view, "shop"]);
    let (ok, via_gateway, err) = pg_tool("pg_dump", &args, &through);
    assert!(ok, "{err}");
    let (ok, direct_dump, err) = pg_tool(
        "pg_dump",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-t",
            &t,
            "-t",
            &view,
            "test",
        ],
        &[("PGSSLMODE", "disable")],
    );
    assert!(ok, "{err}");
    assert!(
        via_gateway.contains(&format!("COPY public.{t} ")),
        "{via_gateway}"
    );
    assert_eq!(dump_body(&via_gateway), dump_body(&direct_dump));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dump");
    let out = out.to_str().unwrap();
    let args = gw_args(&["-Fd", "-j", "2", "-f", out, "-t", &t, "-t", &view, "shop"]);
    let (ok, _, err) = pg_tool("pg_dump", &args, &through);
    assert!(ok, "{err}");
    direct
        .batch_execute(&format!("DROP VIEW {view}; DROP TABLE {t}"))
        .await
        .unwrap();
    let args = gw_args(&["-j", "2", "-d", "shop", out]);
    let (ok, _, err) = pg_tool("pg_restore", &args, &through);
    assert!(ok, "{err}");
    let after = direct.query_one(&checksum, &[]).await.unwrap();
    assert_eq!((after.get::<_, i64>(0), after.get::<_, String>(1)), before);
    let evens: i64 = direct
        .query_one(&format!("SELECT count(*) FROM {view}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(evens, 500);
    direct
        .batch_execute(&format!("DROP VIEW {view}; DROP TABLE {t}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_copies_and_speaks_tls() {
    let (s, bot) = gateway().await;
    let gw = url_with(&s, &bot, "shop");
    let t = unique("gh_psql");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "1,alpha\n2,beta\n3,gamma\n").unwrap();
    let (ok, _, err) = psql(
        &gw,
        &[
            "-c",
            &format!("CREATE TABLE {t} (id int primary key, label text)"),
        ],
    );
    assert!(ok, "{err}");
    let copy_in = format!("\\copy {t} FROM '{}' WITH (FORMAT csv)", csv.display());
    let (ok, out, err) = psql(&gw, &["-c", &copy_in]);
    assert!(ok && out.contains("COPY 3"), "{out}{err}");
    let out_csv = dir.path().join("out.csv");
    let copy_out = format!(
        "\\copy (SELECT * FROM {t} ORDER BY id) TO '{}' WITH (FORMAT csv)",
        out_csv.display()
    );
    let (ok, _, err) = psql(&gw, &["-c", &copy_out]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&out_csv).unwrap(),
        "1,alpha\n2,beta\n3,gamma\n"
    );
    for meta in [
        format!("\\d {t}"),
        "\\dt".to_string(),
        "\\l".to_string(),
        "\\df pg_sleep".to_string(),
    ] {
        let (ok1, through, e1) = psql(&gw, &["-c", &meta]);
        let (ok2, direct, e2) = psql(DIRECT, &["-c", &meta]);
        assert!(ok1 && ok2, "{meta}: {e1}{e2}");
        assert_eq!(through, direct, "{meta} differs through the gateway");
    }
    // TLS towards the gateway: require, and verify-full with Gatehouse's certificate.
    let cert = s.data_dir().join("pg-tls.crt");
    let tls_url = format!(
        "postgresql://bot:{bot}@127.0.0.1:{}/shop?sslmode=verify-full&sslrootcert={}",
        s.pg.port(),
        cert.display()
    );
    let (ok, out, err) = psql(&tls_url, &["-c", "\\conninfo"]);
    assert!(ok && out.contains("SSL connection"), "{out}{err}");
    let (ok, out, err) = psql(
        &format!("{gw}?sslmode=require"),
        &["-Atc", &format!("SELECT count(*) FROM {t}")],
    );
    assert!(ok && out.trim() == "3", "{out}{err}");
    let (ok, _, err) = psql(&gw, &["-c", &format!("DROP TABLE {t}")]);
    assert!(ok, "{err}");
}

/// libpq 17's `sslnegotiation=direct`: the client starts TLS at once,
/// with no SSLRequest, naming PostgreSQL by ALPN (psycopg's own libpq is
/// 17 or later; asyncpg's `direct_tls` does the same). A direct TLS client that does not name it is refused, as
/// PostgreSQL refuses it; one that names another protocol fails the
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_start_tls_at_once_are_served_over_tls() {
    let (s, bot) = gateway().await;
    let cert = s.data_dir().join("pg-tls.crt");
    let script = r#"
import json, socket, ssl, sys
import psycopg
host, port, token, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {"libpq": psycopg.pq.version()}
base = f"host={host} port={port} dbname=shop user=bot password={token}"
for name, extra in [
    ("direct", "sslmode=require sslnegotiation=direct"),
    ("direct_verified", f"sslmode=verify-full sslrootcert={cert} sslnegotiation=direct"),
    ("postgres", "sslmode=require sslnegotiation=postgres"),
]:
    with psycopg.connect(f"{base} {extra}") as c:
        out[name] = [c.execute("SELECT 6 * 7").fetchone()[0], c.pgconn.ssl_in_use]
async def by_asyncpg():
    import asyncpg
    c = await asyncpg.connect(host=host, port=port, database="shop", user="bot",
                              password=token, ssl="require", direct_tls=True)
    try:
        return [await c.fetchval("SELECT 6 * 7"), c._transport.get_extra_info("ssl_object") is not None]
    finally:
        await c.close()
import asyncio
out["asyncpg_direct"] = asyncio.run(by_asyncpg())
def raw(alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    try:
        with ctx.wrap_socket(socket.create_connection((host, port))) as t:
            got = t.recv(4096)
            return ["answer", got[:1].decode(), got.decode("latin-1")]
    except (ssl.SSLError, OSError) as e:
        return ["failed", type(e).__name__]
out["no_alpn"] = raw(None)
out["other_alpn"] = raw(["http/1.1"])
print(json.dumps(out))
"#;
    let port = s.pg.port().to_string();
    let ip = s.pg.ip().to_string();
    let cert = cert.display().to_string();
    let v = python_json(script, &[&ip, &port, &bot, &cert]);
    assert!(v["libpq"].as_i64().unwrap() >= 170000, "{v}");
    for name in ["direct", "direct_verified", "postgres", "asyncpg_direct"] {
        assert_eq!(v[name], serde_json::json!([42, true]), "{name}: {v}");
    }
    let refused = &v["no_alpn"];
    assert_eq!(refused[0], "answer", "{v}");
    assert_eq!(refused[1], "E", "an ErrorResponse: {v}");
    assert!(
        refused[2]
            .as_str()
            .unwrap()
            .contains("must negotiate the ALPN protocol \"postgresql\""),
        "{v}"
    );
    assert_eq!(v["other_alpn"][0], "failed", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initialises_and_runs_through_the_gateway() {
    let s = TestServer::start().await;
    let db = unique("gh_bench");
    let (direct, _) = connect(DIRECT).await;
    direct
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    s.pg_connection(
        "bench",
        &format!("postgres://postgres@127.0.0.1:5432/{db}"),
        None,
        &["agents"],
    )
    .await;
    let bot = s.token("bot", &["agents"]).await;
    let run = |args: &[&str]| {
        let o = tokio::task::block_in_place(|| {
            Command::new("pgbench")
                .args(args)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &s.pg.port().to_string(),
                    "-U",
                    "bot",
                    "bench",
                ])
                .env("PGPASSWORD", &bot)
                .output()
                .expect("pgbench is installed")
        });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "pgbench {args:?} failed:\n{text}");
        text
    };
    let init = run(&["-i", "-s", "1"]);
    assert!(init.contains("done in"), "{init}");
    for mode in ["simple", "extended", "prepared"] {
        let out = run(&["-M", mode, "-c", "4", "-j", "2", "-t", "50"]);
        assert!(
            out.contains("number of transactions actually processed: 200/200"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("number of failed transactions: 0"),
            "{mode}: {out}"
        );
    }
    drop(s);
    direct
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_and_statements_are_recorded() {
    let (s, bot) = gateway().await;
    {
        let (gw, _) = connect(&url_with(&s, &bot, "shop")).await;
        gw.simple_query("SELECT generate_series(1, 3)")
            .await
            .unwrap();
        let stmt = gw.prepare("SELECT $1::int + 1").await.unwrap();
        gw.query(&stmt, &[&41i32]).await.unwrap();
        gw.simple_query("SELECT * FROM gh_no_such_table")
            .await
            .unwrap_err();
    }
    let v = latest_ended_session(&s).await;
    let session = &v["session"];
    assert_eq!(session["principal"], "bot");
    assert_eq!(session["authn"], "token:bot");
    assert_eq!(session["end_reason"], "client closed");
    let by_sql = |sql: &str| statement(&v, sql);
    let a = by_sql("SELECT generate_series(1, 3)");
    assert_eq!(a["rows"], 3);
    assert_eq!(a["decision"], "allow");
    let b = by_sql("SELECT $1::int + 1");
    assert_eq!(b["rows"], 1);
    assert_eq!(b["command"], "SELECT 1");
    let c = by_sql("SELECT * FROM gh_no_such_table");
    assert!(c["error"].as_str().unwrap().starts_with("42P01"), "{c}");
    let (_, v) = s.get("/v1/sessions?grep=generate_series", &s.admin).await;
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
}

/// The latest session on `shop` with its statements, once it has ended
/// (the recorder writes asynchronously).
async fn latest_ended_session(s: &TestServer) -> serde_json::Value {
    let started = std::time::Instant::now();
    let id = loop {
        let (_, v) = s.get("/v1/sessions?connection=shop", &s.admin).await;
        let first = v["sessions"][0].clone();
        if !first["ended_at"].is_null() {
            break first["id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not recorded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    s.get(&format!("/v1/sessions/{id}"), &s.admin).await.1
}

/// The record of `sql` in a session as `latest_ended_session` gives it.
fn statement(v: &serde_json::Value, sql: &str) -> serde_json::Value {
    v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sql"] == sql)
        .unwrap_or_else(|| panic!("{sql} not recorded in {v}"))
        .clone()
}

/// A frontend message: tag, length, body.
fn frontend(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Reads until a backend message with tag `last` has arrived whole.
async fn read_through(c: &mut tokio::net::TcpStream, last: u8) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut p = &got[..];
        while p.len() >= 5 {
            let len = i32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
            if p.len() < 1 + len {
                break;
            }
            if p[0] == last {
                return got;
            }
            p = &p[1 + len..];
        }
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// COPY FROM STDIN in the extended protocol with a Sync in the Execute's
/// batch (as tokio-postgres sends it): the server ignores that Sync, so it
/// must not be awaited, or each later statement's record (and its
/// masking) would be taken from the response of the one after it.
#[tokio::test]
async fn statements_after_an_extended_copy_in_keep_their_own_responses() {
    let (s, bot) = gateway().await;
    let mut c = raw_session(&s, &bot).await;
    let mut m = Vec::new();
    frontend(&mut m, b'Q', b"CREATE TEMP TABLE gh_copy_sync (a int)\0");
    c.write_all(&m).await.unwrap();
    read_through(&mut c, b'Z').await;
    let mut m = Vec::new();
    frontend(&mut m, b'P', b"\0COPY gh_copy_sync FROM STDIN\0\0\0");
    frontend(&mut m, b'B', b"\0\0\0\0\0\0\0\0");
    frontend(&mut m, b'E', b"\0\0\0\0\0");
    frontend(&mut m, b'S', b"");
    c.write_all(&m).await.unwrap();
    read_through(&mut c, b'G').await;
    let mut m = Vec::new();
    frontend(&mut m, b'd', b"1\n2\n");
    frontend(&mut m, b'c', b"");
    frontend(&mut m, b'S', b"");
    c.write_all(&m).await.unwrap();
    read_through(&mut c, b'Z').await;
    for sql in ["SELECT 1 AS x", "SELECT 2 AS y"] {
        let mut m = Vec::new();
        frontend(&mut m, b'Q', format!("{sql}\0").as_bytes());
        c.write_all(&m).await.unwrap();
        read_through(&mut c, b'Z').await;
    }
    c.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
    let _ = read_to_end(&mut c).await;

    let v = latest_ended_session(&s).await;
    let by_sql = |sql: &str| statement(&v, sql);
    assert_eq!(by_sql("COPY gh_copy_sync FROM STDIN")["command"], "COPY 2");
    let x = by_sql("SELECT 1 AS x");
    assert_eq!(x["columns"], json!(["x"]), "{x}");
    assert_eq!(x["result"], json!([["1"]]), "{x}");
    let y = by_sql("SELECT 2 AS y");
    assert_eq!(y["columns"], json!(["y"]), "{y}");
    assert_eq!(y["result"], json!([["2"]]), "{y}");
}

/// A message built from `(tag, body)` pairs.
fn messages(list: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = Vec::new();
    for (tag, body) in list {
        frontend(&mut m, *tag, body);
    }
    m
}

/// A table `public.<prefix>_…` with one row whose `email` is
/// `alice@example.com`, masked (`partial`) for everyone by a policy that
/// also has `rules`; returns its name and a direct connection.
async fn masked_email_table(
    s: &TestServer,
    prefix: &str,
    rules: serde_json::Value,
) -> (String, tokio_postgres::Client) {
    let t = unique(prefix);
    let direct = connect(DIRECT).await.0;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, email text);
             INSERT INTO public.{t} VALUES (1, 'alice@example.com');"
        ))
        .await
        .unwrap();
    common::put_policy(
        s,
        json!({
            "rules": rules,
            "masks": [{"columns": [format!("public.{t}.email")], "method": "partial"}]
        }),
    )
    .await;
    (t, direct)
}

/// The server ignores Sync (and Flush) in COPY FROM STDIN mode, so a Sync
/// sent during a COPY gets no ReadyForQuery. Were the gateway to await one
/// for it, every later result would be taken for the statement before it:
/// masked by that statement's plan (or by none) and recorded under it. Here
/// clients put Syncs into COPYs every way the protocol allows (and one
/// whose data the server rejects half-way), then read a masked column:
/// it comes back masked, and each statement is recorded with its own result.
#[tokio::test]
async fn syncs_sent_during_copy_in_cannot_shift_masking_onto_another_statement() {
    let (s, bot) = gateway().await;
    let (t, direct) = masked_email_table(&s, "gh_copymask", json!([])).await;
    let copy_ext: &[(u8, &[u8])] = &[
        (b'P', b"\0COPY gh_copy_tmp FROM STDIN\0\0\0"),
        (b'B', b"\0\0\0\0\0\0\0\0"),
        (b'E', b"\0\0\0\0\0"),
    ];
    // The extended COPY started (Flush: its CopyInResponse comes at once).
    let start_ext = messages(&[copy_ext, &[(b'H', &b""[..])]].concat());
    // CopyData, a Sync, more CopyData, CopyDone and Sync.
    let data_then_sync = |first: &[u8]| {
        messages(&[
            (b'd', first),
            (b'S', b""),
            (b'd', b"2\n"),
            (b'c', b""),
            (b'S', b""),
        ])
    };
    // Each case: steps of what is sent and the tag read up to.
    type Steps = Vec<(Vec<u8>, u8)>;
    let cases: Vec<(&str, Steps)> = vec![
        (
            "extended, a Sync between CopyData",
            vec![(start_ext.clone(), b'G'), (data_then_sync(b"1\n"), b'Z')],
        ),
        (
            "extended, all in one batch (Syncs before and after the data)",
            vec![(
                messages(
                    &[
                        copy_ext,
                        &[
                            (b'S', b""),
                            (b'd', b"1\n"),
                            (b'S', b""),
                            (b'H', b""),
                            (b'c', b""),
                            (b'S', b""),
                        ],
                    ]
                    .concat(),
                ),
                b'Z',
            )],
        ),
        (
            "extended, data the server rejects, then a Sync",
            vec![
                (start_ext.clone(), b'G'),
                (data_then_sync(b"not a number\n"), b'Z'),
            ],
        ),
        (
            "simple, a Sync between CopyData",
            vec![
                (messages(&[(b'Q', b"COPY gh_copy_tmp FROM STDIN\0")]), b'G'),
                (messages(&[(b'd', b"1\n"), (b'S', b""), (b'c', b"")]), b'Z'),
            ],
        ),
        (
            "simple, two COPYs in one query, a Sync in the second",
            vec![
                (
                    messages(&[(
                        b'Q',
                        b"COPY gh_copy_tmp FROM STDIN; COPY gh_copy_tmp FROM STDIN\0",
                    )]),
                    b'G',
                ),
                (messages(&[(b'd', b"1\n"), (b'c', b"")]), b'G'),
                (messages(&[(b'S', b""), (b'd', b"2\n"), (b'c', b"")]), b'Z'),
            ],
        ),
    ];
    for (case, steps) in cases {
        let mut c = raw_session(&s, &bot).await;
        c.write_all(&messages(&[(
            b'Q',
            b"CREATE TEMP TABLE gh_copy_tmp (a int)\0",
        )]))
        .await
        .unwrap();
        read_through(&mut c, b'Z').await;
        for (bytes, until) in steps {
            c.write_all(&bytes).await.unwrap();
            read_through(&mut c, until).await;
        }
        for (sql, masked) in [
            (format!("SELECT email FROM {t}"), "*************.com"),
            (format!("SELECT upper(email) AS x FROM {t}"), "[REDACTED]"),
        ] {
            c.write_all(&messages(&[(b'Q', format!("{sql}\0").as_bytes())]))
                .await
                .unwrap();
            let got = read_through(&mut c, b'Z').await;
            let text = String::from_utf8_lossy(&got);
            assert!(
                !text.to_lowercase().contains("alice@example.com"),
                "{case}: {sql} leaked: {text}"
            );
            assert!(text.contains(masked), "{case}: {sql}: {text}");
        }
        c.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
        let _ = read_to_end(&mut c).await;
        let v = latest_ended_session(&s).await;
        let st = statement(&v, &format!("SELECT email FROM {t}"));
        assert_eq!(st["columns"], json!(["email"]), "{case}: {st}");
        assert_eq!(st["result"], json!([["*************.com"]]), "{case}: {st}");
    }
    // Any other message in copy-in mode would end the connection at the
    // server (which takes it as the COPY's error and never answers it):
    // Gatehouse ends the session itself, saying why.
    let mut c = raw_session(&s, &bot).await;
    c.write_all(&messages(&[(
        b'Q',
        b"CREATE TEMP TABLE gh_copy_tmp (a int)\0",
    )]))
    .await
    .unwrap();
    read_through(&mut c, b'Z').await;
    c.write_all(&messages(&[(b'Q', b"COPY gh_copy_tmp FROM STDIN\0")]))
        .await
        .unwrap();
    read_through(&mut c, b'G').await;
    let _ = c
        .write_all(&messages(&[(
            b'Q',
            format!("SELECT email FROM {t}\0").as_bytes(),
        )]))
        .await;
    let got = read_to_end(&mut c).await;
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("alice@example.com"), "{text}");
    assert!(text.contains("during COPY FROM STDIN"), "{text}");
    direct
        .batch_execute(&format!("DROP TABLE public.{t}"))
        .await
        .unwrap();
}

/// Parse, with the statement's name, its text and no parameter types.
fn parse_named(name: &str, sql: &str) -> Vec<u8> {
    let mut m = Vec::new();
    frontend(&mut m, b'P', format!("{name}\0{sql}\0\0\0").as_bytes());
    m
}

/// Sends `bytes` and reads through ReadyForQuery, as text.
async fn step(c: &mut tokio::net::TcpStream, bytes: Vec<u8>) -> String {
    c.write_all(&bytes).await.unwrap();
    String::from_utf8_lossy(&read_through(c, b'Z').await).to_string()
}

/// Bind of the unnamed portal to statement `name`, Execute and Sync.
fn run_named(name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    frontend(&mut m, b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes());
    frontend(&mut m, b'E', b"\0\0\0\0\0");
    frontend(&mut m, b'S', b"");
    m
}

/// The server keeps a prepared statement's first text when a Parse names
/// it again (it refuses that Parse), when a Parse of it failed, and when
/// SQL's PREPARE made it. Whatever the client sends, an execution is
/// decided, held, masked and recorded as the text the server runs: a
/// DELETE under review does not run as the SELECT named after it, and a
/// masked expression does not come back in clear.
#[tokio::test]
async fn a_named_statement_runs_only_as_the_text_gatehouse_decided() {
    let (s, bot) = gateway().await;
    let (t, direct) = masked_email_table(
        &s,
        "gh_redef",
        json!([{"name": "check-deletes", "statements": ["write"], "action": "review",
                "approvers": ["dba"], "timeout": "1s"}]),
    )
    .await;
    let mut c = raw_session(&s, &bot).await;
    let sync = messages(&[(b'S', b"")]);
    // A DELETE that needs review, then a harmless text under its name.
    step(
        &mut c,
        [parse_named("s1", &format!("DELETE FROM {t}")), sync.clone()].concat(),
    )
    .await;
    step(
        &mut c,
        [parse_named("s1", "SELECT 1"), sync.clone()].concat(),
    )
    .await;
    let got = step(&mut c, run_named("s1")).await;
    let rows: i64 = direct
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the DELETE ran without review: {got}");
    // A masked expression, then a harmless text under its name.
    let masked_expr = format!("SELECT upper(email) AS x FROM {t}");
    step(
        &mut c,
        [parse_named("s2", &masked_expr), sync.clone()].concat(),
    )
    .await;
    step(
        &mut c,
        [parse_named("s2", "SELECT 'harmless' AS x"), sync.clone()].concat(),
    )
    .await;
    let got = step(&mut c, run_named("s2")).await;
    assert!(!got.contains("ALICE@EXAMPLE.COM"), "{got}");
    // A Parse the server rejects, then the name defined again.
    step(
        &mut c,
        [
            parse_named("s3", "SELECT * FROM gh_no_such_table"),
            sync.clone(),
        ]
        .concat(),
    )
    .await;
    step(
        &mut c,
        [parse_named("s3", &masked_expr), sync.clone()].concat(),
    )
    .await;
    let got = step(&mut c, run_named("s3")).await;
    assert!(!got.contains("ALICE@EXAMPLE.COM"), "{got}");
    // A name SQL's PREPARE took, then the same name in a Parse.
    step(
        &mut c,
        messages(&[(b'Q', format!("PREPARE s4 AS {masked_expr}\0").as_bytes())]),
    )
    .await;
    step(
        &mut c,
        [parse_named("s4", "SELECT 'harmless' AS x"), sync.clone()].concat(),
    )
    .await;
    let got = step(&mut c, run_named("s4")).await;
    assert!(!got.contains("ALICE@EXAMPLE.COM"), "{got}");
    // A named portal ends with its transaction; a cursor SQL's DECLARE
    // opens under the same name is what a later Execute of it reads.
    let mut m = parse_named("", "SELECT 'harmless' AS x");
    frontend(&mut m, b'B', b"cur\0\0\0\0\0\0\0\0");
    frontend(&mut m, b'S', b"");
    step(&mut c, m).await;
    step(
        &mut c,
        messages(&[(
            b'Q',
            format!("DECLARE cur CURSOR WITH HOLD FOR {masked_expr}\0").as_bytes(),
        )]),
    )
    .await;
    let got = step(&mut c, messages(&[(b'E', b"cur\0\0\0\0\0"), (b'S', b"")])).await;
    assert!(
        !got.contains("ALICE@EXAMPLE.COM") && got.contains("[REDACTED]"),
        "{got}"
    );
    // The unnamed statement: a failed Parse, then a Bind to it.
    step(
        &mut c,
        [parse_named("", &masked_expr), sync.clone()].concat(),
    )
    .await;
    step(
        &mut c,
        [
            parse_named("", "SELECT * FROM gh_no_such_table"),
            sync.clone(),
        ]
        .concat(),
    )
    .await;
    let got = step(&mut c, run_named("")).await;
    assert!(!got.contains("ALICE@EXAMPLE.COM"), "{got}");
    c.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
    direct
        .batch_execute(&format!("DROP TABLE public.{t}"))
        .await
        .unwrap();
}

/// After an error in an extended-protocol batch the server discards every
/// message until Sync, a Query among them too, and answers none of them;
/// without an error the Query runs in the middle of the batch (asyncpg
/// sends one after preparing with Flush). Gatehouse asks the server which
/// it is before it passes such a Query on, so the client sees what it
/// would see directly and no later result is taken, masked or recorded as
/// another statement's.
#[tokio::test]
async fn a_query_inside_an_extended_batch_is_answered_as_the_server_would() {
    let (s, bot) = gateway().await;
    let (t, direct) = masked_email_table(&s, "gh_midq", json!([])).await;
    let masked = format!("SELECT upper(email) AS x FROM {t}\0");
    for (case, first, tags) in [
        ("a failed batch", "SELECT 1/0", &b"1EZTDCZ"[..]),
        ("a batch without error", "SELECT 1", &b"12DCTDCZZTDCZ"[..]),
    ] {
        let mut c = raw_session(&s, &bot).await;
        let mut m = parse_named("", first);
        frontend(&mut m, b'B', b"\0\0\0\0\0\0\0\0");
        frontend(&mut m, b'E', b"\0\0\0\0\0");
        frontend(&mut m, b'Q', b"SELECT 'harmless' AS x\0");
        frontend(&mut m, b'S', b"");
        frontend(&mut m, b'Q', masked.as_bytes());
        c.write_all(&m).await.unwrap();
        let mut got = Vec::new();
        while backend_tags(&got).iter().filter(|t| **t == b'Z').count()
            < tags.iter().filter(|t| **t == b'Z').count()
        {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "{case}: closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert_eq!(backend_tags(&got), tags, "{case}: {text}");
        assert!(
            !text.contains("ALICE@EXAMPLE.COM") && text.contains("[REDACTED]"),
            "{case}: {text}"
        );
        c.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
        let _ = read_to_end(&mut c).await;
        let v = latest_ended_session(&s).await;
        let st = statement(&v, &format!("SELECT upper(email) AS x FROM {t}"));
        assert_eq!(st["result"], json!([["[REDACTED]"]]), "{case}: {st}");
    }
    direct
        .batch_execute(&format!("DROP TABLE public.{t}"))
        .await
        .unwrap();
}

/// The tags of the whole backend messages in `bytes`.
fn backend_tags(bytes: &[u8]) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut p = bytes;
    while p.len() >= 5 {
        let len = i32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
        tags.push(p[0]);
        p = &p[(1 + len).min(p.len())..];
    }
    tags
}

/// A statement prepared without a Describe and executed with its result in
/// binary is recorded with its values as text: Gatehouse describes the
/// portal itself, and that answer does not reach the client.
#[tokio::test]
async fn binary_results_of_a_statement_never_described_are_recorded_as_text() {
    let (s, bot) = gateway().await;
    let mut c = raw_session(&s, &bot).await;
    let sql = "SELECT 7::int4 AS n, 'x'::text AS t";
    let mut batch = Vec::new();
    frontend(&mut batch, b'P', format!("s1\0{sql}\0\0\0").as_bytes());
    // Unnamed portal of "s1": no parameters, one result format (binary).
    frontend(&mut batch, b'B', b"\0s1\0\0\0\0\0\0\x01\0\x01");
    frontend(&mut batch, b'E', b"\0\0\0\0\0");
    frontend(&mut batch, b'S', b"");
    c.write_all(&batch).await.unwrap();
    let got = read_through(&mut c, b'Z').await;
    assert_eq!(
        backend_tags(&got),
        b"12DCZ",
        "the client gets no RowDescription it did not ask for: {got:?}"
    );
    // The row as the server sent it, in binary: 2 columns, the int 7, "x".
    let row = [
        b'D', 0, 0, 0, 19, 0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 1, b'x',
    ];
    assert!(got.windows(row.len()).any(|w| w == row), "{got:?}");
    c.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
    let _ = read_to_end(&mut c).await;

    let v = latest_ended_session(&s).await;
    let st = statement(&v, sql);
    assert_eq!(st["columns"], json!(["n", "t"]), "{st}");
    assert_eq!(st["result"], json!([["7", "x"]]), "{st}");
    assert_eq!(st["rows"], 1);
}

#[tokio::test]
async fn revoking_the_token_or_removing_the_connection_ends_live_sessions() {
    let (s, bot) = gateway().await;
    let (gw, _) = connect(&url_with(&s, &bot, "shop")).await;
    gw.simple_query("SELECT 1").await.unwrap();
    let (status, v) = s.delete("/v1/tokens/bot", &s.admin).await;
    assert_eq!(status, 200, "{v}");
    let err = gw.simple_query("SELECT 1").await.unwrap_err();
    assert!(msg(&err).contains("revoked") || err.is_closed(), "{err}");

    let other = s.token("other", &["agents"]).await;
    let (gw, _) = connect(&url_with(&s, &other, "shop")).await;
    gw.simple_query("SELECT 1").await.unwrap();
    let (status, _) = s.delete("/v1/connections/shop", &s.admin).await;
    assert_eq!(status, 200);
    assert!(gw.simple_query("SELECT 1").await.is_err());
}

/// Sends a startup packet and the token, and reads until ReadyForQuery.
async fn raw_session(s: &TestServer, token: &str) -> tokio::net::TcpStream {
    let mut c = tokio::net::TcpStream::connect(s.pg).await.unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    for kv in ["user", "bot", "database", "shop", ""] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    let mut pkt = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    pkt.extend_from_slice(&startup);
    c.write_all(&pkt).await.unwrap();
    let mut auth = [0u8; 9];
    c.read_exact(&mut auth).await.unwrap();
    assert_eq!(auth[0], b'R');
    let mut pw = vec![b'p'];
    pw.extend_from_slice(&((token.len() + 5) as i32).to_be_bytes());
    pw.extend_from_slice(token.as_bytes());
    pw.push(0);
    c.write_all(&pw).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(6).any(|w| w == [b'Z', 0, 0, 0, 5, b'I']) {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed during start-up");
        seen.extend_from_slice(&buf[..n]);
    }
    c
}

/// A client asking for a later minor version of protocol 3 (libpq 18's
/// `max_protocol_version=3.2`) or for protocol options (`_pq_.…`) is
/// answered as PostgreSQL before 18 answers it: NegotiateProtocolVersion
/// with 3.0 and the options it does not know, then the session goes on in
/// 3.0; the options never reach the upstream as settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_protocol_version_and_protocol_options_are_negotiated_down() {
    let (s, bot) = gateway().await;
    let mut c = tokio::net::TcpStream::connect(s.pg).await.unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&(196_608i32 + 2).to_be_bytes());
    for kv in [
        "user",
        "bot",
        "database",
        "shop",
        "_pq_.compression",
        "on",
        "application_name",
        "proto",
        "",
    ] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    let mut pkt = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    pkt.extend_from_slice(&startup);
    c.write_all(&pkt).await.unwrap();
    let got = read_through(&mut c, b'R').await;
    let mut want = vec![b'v'];
    let body = [
        &196_608i32.to_be_bytes()[..],
        &1i32.to_be_bytes()[..],
        b"_pq_.compression\0",
    ]
    .concat();
    want.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    want.extend_from_slice(&body);
    assert!(got.starts_with(&want), "{got:?}");
    assert_eq!(
        &got[want.len()..],
        &[b'R', 0, 0, 0, 8, 0, 0, 0, 3],
        "{got:?}"
    );
    let mut msgs = Vec::new();
    frontend(&mut msgs, b'p', format!("{bot}\0").as_bytes());
    c.write_all(&msgs).await.unwrap();
    read_through(&mut c, b'Z').await;
    let mut q = Vec::new();
    frontend(
        &mut q,
        b'Q',
        b"SELECT coalesce(current_setting('_pq_.compression', true), 'none') || '/' || current_setting('application_name') || '/' || 6 * 7\0",
    );
    c.write_all(&q).await.unwrap();
    let answer = read_through(&mut c, b'Z').await;
    assert!(
        answer.windows(13).any(|w| w == b"none/proto/42"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // libpq 18 (psycopg's own) asking for 3.2 goes on in 3.0.
    let url = format!(
        "host={} port={} dbname=shop user=bot password={bot} max_protocol_version=3.2",
        s.pg.ip(),
        s.pg.port()
    );
    let o = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, psycopg\nwith psycopg.connect(sys.argv[1]) as c:\n    print(c.execute('SELECT 6 * 7').fetchone()[0], c.pgconn.protocol_version)",
            )
            .arg(&url)
            .output()
            .expect("python3")
    });
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out.trim(), "42 3");
}

async fn read_to_end(c: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn malformed_and_oversized_messages_end_only_that_session() {
    let (s, bot) = gateway().await;
    let (healthy, _) = connect(&url_with(&s, &bot, "shop")).await;

    // A negative length: the client is told (FATAL, 08P01).
    let mut c = raw_session(&s, &bot).await;
    c.write_all(&[b'Q', 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let out = read_to_end(&mut c).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("08P01") && text.contains("protocol error from the client"),
        "{text}"
    );

    // A message claiming to be 1 GiB: refused from its header alone.
    let mut c = raw_session(&s, &bot).await;
    c.write_all(&[b'Q', 0x40, 0, 0, 0]).await.unwrap();
    let out = read_to_end(&mut c).await;
    assert!(String::from_utf8_lossy(&out).contains("08P01"), "{out:?}");

    // A Query without its terminating NUL.
    let mut c = raw_session(&s, &bot).await;
    c.write_all(&[
        b'Q', 0, 0, 0, 12, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1',
    ])
    .await
    .unwrap();
    let _ = read_to_end(&mut c).await;

    // A start-up packet over the limit, and one with a bogus protocol version.
    let mut c = tokio::net::TcpStream::connect(s.pg).await.unwrap();
    c.write_all(&100_000i32.to_be_bytes()).await.unwrap();
    let out = read_to_end(&mut c).await;
    assert!(String::from_utf8_lossy(&out).contains("08P01"));
    let mut c = tokio::net::TcpStream::connect(s.pg).await.unwrap();
    c.write_all(&[0, 0, 0, 8, 0, 9, 0, 0]).await.unwrap();
    let out = read_to_end(&mut c).await;
    assert!(
        String::from_utf8_lossy(&out).contains("unsupported protocol version"),
        "{out:?}"
    );

    // The well-behaved session is untouched, and new ones still work.
    let v: i32 = healthy.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
    let (fresh, _) = connect(&url_with(&s, &bot, "shop")).await;
    fresh.simple_query("SELECT 1").await.unwrap();
    let _ = json!({});
}

/// A connection's `max_sessions` bounds the sessions open at once on a
/// replica (each holds an upstream connection, and the database has only so
/// many): the one past it is refused with 53300 naming the limit, the query
/// API's sessions count too, and a place that comes free is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_s_max_sessions_bounds_its_open_sessions() {
    let s = TestServer::start().await;
    let (status, v) = s
        .pg_connection_with("capped", DIRECT, &["agents"], json!({"max_sessions": 2}))
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .pg_connection_with("closed", DIRECT, &["agents"], json!({"max_sessions": 0}))
        .await;
    assert_eq!(status, 400, "a limit of no sessions is refused: {v}");
    let bot = s.token("bot", &["agents"]).await;
    let url = url_with(&s, &bot, "capped");
    let (first, _) = connect(&url).await;
    let (second, _) = connect(&url).await;
    first.simple_query("SELECT 1").await.unwrap();
    second.simple_query("SELECT 1").await.unwrap();

    let (ok, _, err) = psql(&url, &["-c", "SELECT 1"]);
    assert!(!ok);
    assert!(
        err.contains("connection \"capped\" has 2 sessions open, its limit (max_sessions)"),
        "{err}"
    );
    let e = connect_err(&url).await;
    assert_eq!(code(&e), "53300", "{e}");
    let (status, v) = s
        .post(
            "/v1/connections/capped/query",
            &bot,
            json!({"sql": "SELECT 1"}),
        )
        .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "too_many_sessions", "{v}");

    // A session that ends gives its place back.
    drop(first);
    let third = connect_once_a_place_is_free(&url).await;
    third.simple_query("SELECT 1").await.unwrap();
    second.simple_query("SELECT 1").await.unwrap();
}

/// Connection "shop" with a statement timeout of 4 s; the URL with which
/// "bot" (group agents) connects to it.
async fn shop_with_a_timeout(s: &TestServer) -> String {
    let (status, v) = s
        .pg_connection_with(
            "shop",
            DIRECT,
            &["agents"],
            json!({"statement_timeout_ms": 4000}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = s.token("bot", &["agents"]).await;
    url_with(s, &bot, "shop")
}

/// psql on `url` with PGOPTIONS `options`, running `commands`.
fn psql_with_options(url: &str, options: &str, commands: &[&str]) -> std::process::Output {
    tokio::task::block_in_place(|| {
        let mut c = Command::new("psql");
        c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url]);
        for command in commands {
            c.args(["-c", command]);
        }
        c.env("PGOPTIONS", options).output().expect("psql")
    })
}

/// Start-up settings (PGOPTIONS, or parameters of their own) reach the
/// upstream session, after passing the policy as the SET statements they
/// amount to: a rule refusing changes of role refuses `-c role=…` too, with
/// the rule named, and the connection's statement timeout is not the
/// client's to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_settings_pass_the_policy_and_reach_the_upstream() {
    let s = TestServer::start().await;
    let url = shop_with_a_timeout(&s).await;
    let show = |options: &str| {
        let o = psql_with_options(
            &url,
            options,
            &[
                "SHOW search_path",
                "SHOW lock_timeout",
                "SHOW statement_timeout",
                "SHOW role",
            ],
        );
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, out, err) =
        show("-c search_path=gh_nowhere,public --lock-timeout=1234ms -c statement_timeout=0");
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["gh_nowhere,public", "1234ms", "4s", "none"],
        "{out}"
    );

    put_policy(
        &s,
        json!({"rules": [{"name": "no-role-changes", "statements": ["dcl"], "action": "deny",
                          "message": "agents keep their own role"}]}),
    )
    .await;
    let (ok, _, err) = show("-c role=pg_read_all_data");
    assert!(!ok);
    assert!(
        err.contains("Gatehouse refused the start-up setting role: agents keep their own role")
            && err.contains("rule: no-role-changes"),
        "{err}"
    );
    let (ok, out, err) = show("-c lock_timeout=2s");
    assert!(ok, "other settings still pass: {err}");
    assert!(out.contains("2s"), "{out}");
    // With a default of deny, what drivers send at every start-up
    // (client_encoding, DateStyle, TimeZone, extra_float_digits) still
    // passes, and other settings need a rule that allows them.
    put_policy(
        &s,
        json!({"default": "deny", "rules": [{"name": "reads", "statements": ["read"], "action": "allow"}]}),
    )
    .await;
    let (c, _) = connect(&url).await;
    c.simple_query("SELECT 1").await.unwrap();
    let (ok, _, err) = show("-c lock_timeout=2s");
    assert!(!ok);
    assert!(
        err.contains("Gatehouse refused the start-up setting lock_timeout"),
        "{err}"
    );
    let (ok, _, err) = show("-B 100");
    assert!(!ok);
    assert!(
        err.contains("Gatehouse does not pass on the start-up option \"-B\""),
        "{err}"
    );
}

/// Start-up settings change what the session's statements do (its role,
/// its schema), so they are recorded as its first statements, each as the
/// SET it amounts to, with its decision; one the connection overrides says
/// so. What drivers send at every start-up to read values (client_encoding
/// and the like) is not. A refused setting is audited like a refused
/// statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_settings_are_recorded_as_the_sessions_first_statements() {
    let s = TestServer::start().await;
    let url = shop_with_a_timeout(&s).await;
    let psql = |options: &str| psql_with_options(&url, options, &["SELECT 41 + 1"]);
    let o = psql("-c search_path=gh_nowhere,public --lock-timeout=1234ms -c statement_timeout=0");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = latest_ended_session(&s).await;
    let got: Vec<_> = v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["seq"].as_i64().unwrap(),
                x["sql"].as_str().unwrap().to_string(),
                x["decision"].as_str().unwrap().to_string(),
                x["command"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expect = |seq: i64, sql: &str, command: &str| {
        (
            seq,
            sql.to_string(),
            "allow".to_string(),
            command.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            expect(1, "SET search_path TO 'gh_nowhere,public'", "SET"),
            expect(2, "SET lock_timeout TO '1234ms'", "SET"),
            expect(3, "SET statement_timeout TO '0'", "SET"),
            expect(4, "SELECT 41 + 1", "SELECT 1"),
        ],
        "{v}"
    );
    let statements = v["statements"].as_array().unwrap();
    assert!(statements[0]["error"].is_null(), "{v}");
    assert_eq!(
        statements[2]["error"],
        "not applied: connection \"shop\" sets statement_timeout itself (4000 ms)"
    );

    // Decided by the policy: a refused one is audited (its hash, not its
    // text), an allowed one is recorded under the rule that allowed it.
    put_policy(
        &s,
        json!({"rules": [
            {"name": "no-role-changes", "statements": ["dcl"], "action": "deny",
             "message": "agents keep their own role"},
            {"name": "settings", "statements": ["other"], "action": "allow"}
        ]}),
    )
    .await;
    let o = psql("-c role=pg_read_all_data");
    assert!(!o.status.success());
    let (_, audit) = s.get("/v1/audit?limit=100", &s.admin).await;
    let deny = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "statement.deny")
        .unwrap_or_else(|| panic!("no statement.deny in {audit}"))
        .clone();
    assert_eq!(deny["actor"], "bot");
    assert_eq!(deny["target"], "shop");
    assert_eq!(deny["detail"]["rule"], "no-role-changes");
    assert_eq!(deny["detail"]["start_up_setting"], true);
    assert!(!audit.to_string().contains("pg_read_all_data"), "{audit}");
    let o = psql("-c lock_timeout=2s");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = latest_ended_session(&s).await;
    let first = &v["statements"][0];
    assert_eq!(first["sql"], "SET lock_timeout TO '2s'", "{v}");
    assert_eq!(first["rule"], "settings", "{v}");
}

/// A client cannot lift its connection's statement timeout: with the
/// upstream's `statement_timeout` set to 0 (by `SET`, or by `set_config` in
/// a query the policy may not read as a setting), Gatehouse cancels the
/// statement itself a moment past the limit and says why in a NOTICE.
#[tokio::test]
async fn a_lifted_statement_timeout_is_still_enforced() {
    let s = TestServer::start().await;
    let (status, v) = s
        .pg_connection_with(
            "timed",
            DIRECT,
            &["agents"],
            json!({"statement_timeout_ms": 300}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = s.token("bot", &["agents"]).await;
    let (c, mut msgs) = connect(&url_with(&s, &bot, "timed")).await;
    for lift in [
        "SET statement_timeout = 0",
        "SELECT set_config('statement_timeout', '0', false)",
    ] {
        c.simple_query(lift).await.unwrap();
        let shown = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
        assert_eq!(shown.get::<_, String>(0), "0", "{lift}");
        let e = c.simple_query("SELECT pg_sleep(20)").await.unwrap_err();
        assert_eq!(code(&e), "57014", "{lift}: {e:?}");
        let notice = loop {
            match msgs.recv().await.expect("a notice") {
                AsyncMessage::Notice(n) => break n.message().to_string(),
                _ => continue,
            }
        };
        assert!(
            notice.contains("ran past the statement timeout of connection \"timed\" (300 ms)"),
            "{notice}"
        );
        // The session goes on.
        c.simple_query("SELECT 1").await.unwrap();
    }
}

#[tokio::test]
async fn connection_settings_bound_statements_and_sessions() {
    let s = TestServer::start().await;
    let (status, v) = s
        .pg_connection_with(
            "limited",
            DIRECT,
            &["agents"],
            json!({"statement_timeout_ms": 200, "max_session_secs": 2}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = s.token("bot", &["agents"]).await;
    let (c, _) = connect(&url_with(&s, &bot, "limited")).await;
    let e = c.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(
        code(&e),
        "57014",
        "statement_timeout applies upstream: {e:?}"
    );
    let started = std::time::Instant::now();
    // The session is ended by the gateway when its maximum length is reached.
    let e = loop {
        match c.simple_query("SELECT 1").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the session was never ended"
        );
    };
    assert!(
        msg(&e).contains("maximum session length") || e.is_closed(),
        "{e:?}"
    );
}
