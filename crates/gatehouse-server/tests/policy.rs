//! The policy end to end: rules stored through the API decide statements
//! sent by real clients through the PostgreSQL proxy to the machine's
//! PostgreSQL, and masks rewrite the results those clients receive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{TestServer, connect, db_error, mysql_url, put_policy, refused, unique, url};
use serde_json::{Value, json};
use tokio_postgres::SimpleQueryMessage;

const DIRECT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `q` through the gateway with psql as the holder of `token`
/// (unaligned, tuples only): its output and its errors, trimmed. From a
/// multi-threaded runtime only.
fn psql_as(s: &TestServer, token: &str, q: &str) -> (String, String) {
    let out = tokio::task::block_in_place(|| {
        Command::new("psql")
            .args([&url(s, token), "-X", "-A", "-t", "-c", q])
            .env("PGSSLMODE", "disable")
            .output()
            .expect("psql")
    });
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// The statements recorded in `user`'s sessions, as JSON text, once
/// `done` holds of them (the recorder stores them shortly after they
/// run), or as they are after about 6 s.
async fn recorded_for(s: &TestServer, user: &str, done: impl Fn(&str) -> bool) -> String {
    let mut recorded = String::new();
    for _ in 0..300 {
        let (_, list) = s.get(&format!("/v1/sessions?user={user}"), &s.admin).await;
        recorded.clear();
        for sess in list["sessions"].as_array().unwrap() {
            let id = sess["id"].as_str().unwrap();
            let (_, session) = s.get(&format!("/v1/sessions/{id}"), &s.admin).await;
            recorded.push_str(&session["statements"].to_string());
        }
        if done(&recorded) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    recorded
}

/// Text values of every row of a simple query.
async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Asserts that `q` is refused (SQLSTATE 42501) with a message that says
/// `says`.
async fn refused_saying(c: &tokio_postgres::Client, q: &str, says: &str) {
    let (code, message, _) = refused(c, q).await;
    assert_eq!(code, "42501", "{q}: {message}");
    assert!(message.contains(says), "{q}: {message}");
}

#[tokio::test]
async fn rules_decide_statements_from_real_clients() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents", "dba"])
        .await;
    let agent = s.token("bot", &["agents"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    let t = unique("gh_pol");
    let gw_dba = connect(&url(&s, &dba)).await;
    gw_dba
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, v text); INSERT INTO {t} VALUES (1, 'a'); CREATE TABLE {t}_secret (v text); CREATE TABLE \"{t}_Vault\" (v text)"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({
            "rules": [
                {"name": "agents-read-only", "connections": ["shop"], "groups": ["agents"],
                 "statements": ["write", "ddl", "dcl", "admin"], "action": "deny",
                 "message": "agents are read-only on shop"},
                {"name": "no-sleep", "functions": ["pg_sleep*"], "action": "deny"},
                {"name": "no-secrets", "tables": [format!("{t}_secret")], "action": "deny"},
                {"name": "no-vault", "tables": [format!("public.{t}_vault")], "action": "deny"}
            ]
        }),
    )
    .await;

    let gw = connect(&url(&s, &agent)).await;
    // Reads run.
    assert_eq!(
        rows(&gw, &format!("SELECT v FROM {t}")).await,
        vec![vec![Some("a".to_string())]]
    );
    // A write, simple protocol: refused with the rule named.
    let (code, message, detail) = refused(&gw, &format!("DELETE FROM {t}")).await;
    assert_eq!(code, "42501");
    assert!(
        message.contains("agents are read-only on shop"),
        "{message}"
    );
    assert_eq!(detail, "rule: agents-read-only");
    // A write hidden in a CTE, extended protocol.
    let e = gw
        .query(
            &format!("WITH x AS (DELETE FROM {t} RETURNING id) SELECT id FROM x"),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).2, "rule: agents-read-only");
    // An admin function call, with the reason.
    let e = refused(&gw, "SELECT pg_terminate_backend(pg_backend_pid())").await;
    assert!(e.1.contains("calls pg_terminate_backend"), "{e:?}");
    // Two statements in one string: the strictest decides.
    assert_eq!(
        refused(&gw, &format!("SELECT 1; DROP TABLE {t}")).await.2,
        "rule: agents-read-only"
    );
    // A cursor's query is decided as what it runs: an admin call in it, and
    // a table another rule guards, are refused as they are in a SELECT.
    let (_, message, detail) = refused(&gw, "BEGIN; DECLARE c CURSOR FOR SELECT pg_read_file('postgresql.conf'); FETCH ALL FROM c; COMMIT",).await;
    assert_eq!(detail, "rule: agents-read-only");
    assert!(message.contains("calls pg_read_file"), "{message}");
    assert_eq!(
        refused(
            &gw,
            &format!(
                "BEGIN; DECLARE c CURSOR FOR SELECT v FROM {t}_secret; FETCH ALL FROM c; COMMIT"
            ),
        )
        .await
        .2,
        "rule: no-secrets"
    );
    // MERGE's source table, and a table named in quotes, as rules name it.
    assert_eq!(refused(
        &gw_dba,
        &format!(
            "MERGE INTO {t} USING {t}_secret s ON {t}.v = s.v WHEN MATCHED THEN UPDATE SET v = s.v"
        ),
    )
    .await.2, "rule: no-secrets");
    assert_eq!(
        refused(&gw_dba, &format!("SELECT * FROM \"{t}_Vault\""))
            .await
            .2,
        "rule: no-vault"
    );
    // A DO block's statements are not seen: it could read any table or
    // call any function, so rules refusing tables or functions refuse it
    // (fail closed; no-sleep is the first of them).
    let (_, message, detail) = refused(
        &gw_dba,
        &format!(
            "DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(v, ',') FROM {t}_secret); END $$"
        ),
    )
    .await;
    assert_eq!(detail, "rule: no-sleep");
    assert!(message.contains("runs a DO block"), "{message}");
    // Unparsable text is refused (fail closed): a deny rule whose
    // conditions cannot be checked on it counts as matching.
    assert_eq!(refused(&gw, "SELEC 1").await.2, "rule: agents-read-only");
    // A rule for everyone.
    assert_eq!(
        refused(&gw_dba, "SELECT pg_sleep(0)").await.2,
        "rule: no-sleep"
    );
    // Also a call in a RETURNING list, and in a DDL expression, which runs
    // for every row there is.
    assert_eq!(
        refused(
            &gw_dba,
            &format!("INSERT INTO {t} VALUES (3, 'c') RETURNING pg_sleep(0)"),
        )
        .await
        .2,
        "rule: no-sleep"
    );
    assert_eq!(
        refused(
            &gw_dba,
            &format!("ALTER TABLE {t} ADD COLUMN slow text DEFAULT pg_sleep(0)::text"),
        )
        .await
        .2,
        "rule: no-sleep"
    );
    // The session is still usable, and nothing was deleted.
    assert_eq!(
        rows(&gw, &format!("SELECT count(*) FROM {t}")).await,
        vec![vec![Some("1".to_string())]]
    );
    // The DBA writes.
    gw_dba
        .batch_execute(&format!("INSERT INTO {t} VALUES (2, 'b')"))
        .await
        .unwrap();

    // A policy change applies to the live session's next statement.
    put_policy(&s, json!({"default": "deny", "rules": [{"name": "only-count", "pattern": "^SELECT count", "action": "allow"}]})).await;
    assert!(
        gw.simple_query(&format!("SELECT count(*) FROM {t}"))
            .await
            .is_ok()
    );
    assert_eq!(
        refused(&gw, &format!("SELECT v FROM {t}")).await.2,
        "rule: default"
    );
    // With no deny rule in play, unparsable text meets the built-in
    // refusal, which quotes the parser.
    let (code, message, detail) = refused(&gw, "SELEC 1").await;
    assert_eq!(
        (code.as_str(), detail.as_str()),
        ("42501", "rule: unparsed")
    );
    assert!(
        message.contains("could not parse this statement"),
        "{message}"
    );
    assert!(
        message.contains("syntax error at or near \"SELEC\""),
        "{message}"
    );

    // policy test decides without running.
    put_policy(&s, json!({"rules": [{"name": "agents-read-only", "groups": ["agents"], "statements": ["write"], "action": "deny"}]})).await;
    let (status, v) = s
        .post(
            "/v1/policy/test",
            &s.admin,
            json!({"as": "agents", "connection": "shop", "sql": format!("DELETE FROM {t}")}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"]["verdict"]["action"], "deny");
    assert_eq!(v["decision"]["verdict"]["rule"], "agents-read-only");
    assert_eq!(v["analysis"]["class"], "write");
    let (_, v) = s
        .post(
            "/v1/policy/test",
            &s.admin,
            json!({"as": dba, "connection": "shop", "sql": format!("DELETE FROM {t}")}),
        )
        .await;
    assert_eq!(
        v["decision"]["verdict"]["action"], "allow",
        "a token's own groups: {v}"
    );
    assert_eq!(
        rows(&gw_dba, &format!("SELECT count(*) FROM {t}")).await,
        vec![vec![Some("2".to_string())]]
    );

    // Refusals are recorded with their rule.
    let (_, list) = s.get("/v1/sessions?user=bot", &s.admin).await;
    let id = list["sessions"][0]["id"].as_str().unwrap().to_string();
    let mut denied = Vec::new();
    for _ in 0..300 {
        let (_, session) = s.get(&format!("/v1/sessions/{id}"), &s.admin).await;
        denied = session["statements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["decision"] == "deny")
            .map(|st| st["rule"].as_str().unwrap_or("").to_string())
            .collect();
        if denied.len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(denied.iter().any(|r| r == "agents-read-only"), "{denied:?}");
    assert!(denied.iter().any(|r| r == "default"), "{denied:?}");

    // A bad policy is refused with the rule at fault; the old one stays.
    let (status, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/policy",
            &s.admin,
            Some(json!({"rules": [{"name": "x", "pattern": "(", "action": "deny"}]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rule #1"),
        "{v}"
    );
    gw_dba
        .batch_execute(&format!("DROP TABLE {t}, {t}_secret, \"{t}_Vault\""))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_follow_the_data_through_aliases_views_and_expressions() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents", "support-leads", "dba"])
        .await;
    let agent = s.token("bot", &["agents"]).await;
    let lead = s.token("lead", &["support-leads"]).await;
    let t = unique("gh_cust");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, name text, email text, card_number varchar(32), age int, note text, profile jsonb);
             INSERT INTO public.{t} VALUES
               (1, 'Alice', 'alice@example.com', '4111111111111111', 34, 'call me at bob@example.org or card 4111 1111 1111 1111', '{{\"email\": \"alice@example.com\"}}'),
               (2, 'Bob', 'bob@example.com', '5500000000000004', 41, 'nothing to see', NULL);
             CREATE VIEW {t}_v AS SELECT id, email AS contact FROM public.{t};"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({
            "masks": [
                {"connections": ["shop"], "columns": [format!("public.{t}.email"), format!("{t}.card_number")],
                 "method": "partial", "except_groups": ["support-leads"]},
                {"columns": [format!("public.{t}.age")], "method": "redact"},
                {"columns": [format!("public.{t}.name")], "method": "hash"},
                {"columns": [format!("public.{t}.profile")], "method": "redact"}
            ],
            "detectors": [{"connections": ["shop"], "kinds": ["email", "credit_card"], "except_groups": ["support-leads"]}]
        }),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;

    // An alias does not dodge the mask (text protocol).
    assert_eq!(
        rows(
            &gw,
            &format!("SELECT email AS x, card_number AS y FROM {t} WHERE id = 1")
        )
        .await,
        vec![vec![
            Some("*************.com".to_string()),
            Some("************1111".to_string())
        ]]
    );
    // Extended protocol with binary results, all columns.
    let r = gw
        .query(&format!("SELECT * FROM {t} WHERE id = $1"), &[&1i32])
        .await
        .unwrap();
    let row = &r[0];
    assert_eq!(row.get::<_, i32>("id"), 1, "unmasked columns pass");
    assert_eq!(row.get::<_, String>("email"), "*************.com");
    assert_eq!(
        row.get::<_, Option<i32>>("age"),
        None,
        "a masked number is withheld (NULL)"
    );
    let hashed: String = row.get("name");
    assert!(hashed.starts_with("h_") && hashed != "Alice", "{hashed}");
    let note: String = row.get("note");
    assert!(
        !note.contains("bob@example.org") && !note.contains("4111 1111"),
        "detectors mask free text: {note}"
    );
    assert!(note.contains("call me at"), "{note}");
    // Deterministic hashing: equal values give equal tokens (GROUP BY still works).
    let again = gw
        .query(&format!("SELECT name FROM {t} WHERE id = 1"), &[])
        .await
        .unwrap();
    assert_eq!(again[0].get::<_, String>(0), hashed);
    // Expressions over masked columns, whole rows and aggregates.
    for sql in [
        format!("SELECT upper(email) FROM {t} WHERE id = 1"),
        format!("SELECT email || '' FROM {t} WHERE id = 1"),
        format!("SELECT row_to_json(c)::text FROM {t} c WHERE id = 1"),
        format!("SELECT to_jsonb(c)::text FROM {t} c WHERE id = 1"),
        format!("SELECT json_agg(c)::text FROM {t} c"),
        format!("SELECT string_agg(email, ',') FROM {t}"),
        format!("SELECT (c).email FROM {t} c WHERE id = 1"),
        format!("SELECT a.email FROM {t} a JOIN {t} b ON a.id = b.id WHERE a.id = 1"),
        format!("SELECT x.e FROM (SELECT email AS e FROM {t}) x WHERE x.e LIKE 'alice%'"),
        format!("SELECT contact FROM {t}_v WHERE id = 1"),
        format!("WITH x AS (SELECT * FROM {t}) SELECT email FROM x WHERE id = 1"),
        format!("SELECT email FROM {t} WHERE id = 1 UNION ALL SELECT 'x'"),
        format!("SELECT CASE WHEN id = 1 THEN email END FROM {t} WHERE id = 1"),
        format!("SELECT coalesce(email, '') FROM {t} WHERE id = 1"),
        format!("SELECT ARRAY[email]::text FROM {t} WHERE id = 1"),
        format!("SELECT E.EMAIL FROM {t} AS E WHERE id = 1"),
        format!("SELECT \"email\" FROM \"{t}\" WHERE id = 1"),
    ] {
        let got = rows(&gw, &sql).await;
        let text = format!("{got:?}");
        assert!(
            !text.contains("alice@example.com") && !text.contains("ALICE@EXAMPLE.COM"),
            "{sql} leaked: {text}"
        );
        assert!(!got.is_empty(), "{sql} returned no row");
    }
    // A computed column that does not read masked data is left alone.
    assert_eq!(
        rows(&gw, &format!("SELECT count(*) FROM {t}")).await,
        vec![vec![Some("2".to_string())]]
    );
    // jsonb under a mask stays valid JSON: a JSON string.
    assert_eq!(
        rows(&gw, &format!("SELECT profile FROM {t} WHERE id = 1")).await,
        vec![vec![Some("\"[REDACTED]\"".to_string())]]
    );
    // COPY of a masked table out is refused, naming why.
    let (code, message, detail) = refused(&gw, &format!("COPY {t} TO STDOUT")).await;
    assert_eq!(
        (code.as_str(), detail.as_str()),
        ("42501", "rule: masking"),
        "{message}"
    );
    // Values quoted in the server's error messages are scrubbed.
    let (code, message, _) =
        refused(&gw, &format!("SELECT email::int FROM {t} WHERE id = 1")).await;
    assert_eq!(code, "22P02", "{message}");
    assert!(!message.contains("alice"), "{message}");
    let e = gw
        .query(
            &format!("SELECT card_number::int FROM {t} WHERE id = $1"),
            &[&1i32],
        )
        .await
        .unwrap_err();
    assert!(!db_error(&e).1.contains("4111111111111111"), "{e}");
    // Anonymous code could read masked columns and report them in a notice.
    assert_eq!(
        refused(
            &gw,
            &format!("DO $$ BEGIN RAISE NOTICE '%', (SELECT email FROM {t} LIMIT 1); END $$"),
        )
        .await
        .2,
        "rule: masking"
    );
    // SQL-level prepared statements and cursors carry the columns' origin.
    let prepared = rows(
        &gw,
        &format!("PREPARE p1 AS SELECT email FROM {t} WHERE id = 1; EXECUTE p1"),
    )
    .await;
    assert_eq!(prepared, vec![vec![Some("*************.com".to_string())]]);
    let fetched = rows(
        &gw,
        &format!(
            "BEGIN; DECLARE c1 CURSOR FOR SELECT email FROM {t} WHERE id = 1; FETCH ALL c1; COMMIT"
        ),
    )
    .await;
    assert_eq!(fetched, vec![vec![Some("*************.com".to_string())]]);
    // A portal read a row at a time (extended protocol, row limit): each
    // batch of rows is masked.
    let mut gw2 = connect(&url(&s, &agent)).await;
    let tx = gw2.transaction().await.unwrap();
    let stmt = tx
        .prepare(&format!("SELECT email FROM {t} ORDER BY id"))
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let first = tx.query_portal(&portal, 1).await.unwrap();
    let second = tx.query_portal(&portal, 1).await.unwrap();
    assert_eq!(first[0].get::<_, String>(0), "*************.com");
    assert_eq!(second[0].get::<_, String>(0), "***********.com");
    tx.commit().await.unwrap();
    // The exception group sees the data; masks without the exception still apply.
    let gl = connect(&url(&s, &lead)).await;
    assert_eq!(
        rows(&gl, &format!("SELECT email, age FROM {t} WHERE id = 1")).await,
        vec![vec![Some("alice@example.com".to_string()), None]]
    );
    // Detectors see computed values and literals too, and the recorded
    // statement text is scanned like the results.
    let lit = rows(&gw, "SELECT 'write to carol@example.net' AS x").await;
    assert_eq!(lit.len(), 1);
    let lit = lit[0][0].clone().unwrap_or_default();
    assert!(
        !lit.contains("carol@example.net") && lit.starts_with("write to "),
        "{lit}"
    );
    let recorded = recorded_for(&s, "bot", |r| r.contains("write to ")).await;
    assert!(recorded.contains("write to "), "{recorded}");
    assert!(!recorded.contains("carol@example.net"), "{recorded}");
    // Real Python drivers: asyncpg (binary, prepared, cursors) and psycopg
    // (server-side cursor).
    let out = tokio::process::Command::new("python3")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/compat/masking_drivers.py"),
        )
        .env("GATEHOUSE_DSN", url(&s, &agent))
        .env("TABLE", &t)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .expect("python3 (scripts/test installs asyncpg and psycopg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    let masked = json!(["*************.com", "***********.com"]);
    assert_eq!(got["fetchrow"][0], "*************.com", "{got}");
    assert_eq!(got["fetchrow"][1], Value::Null, "{got}");
    assert!(
        !got["fetchrow"][2]
            .as_str()
            .unwrap_or("")
            .contains("bob@example.org"),
        "{got}"
    );
    assert_eq!(got["prepared"], masked, "{got}");
    assert_eq!(got["cursor"], masked, "{got}");
    assert_eq!(
        got["psycopg_server_cursor"],
        json!([
            ["*************.com", "************1111"],
            ["***********.com", "************0004"]
        ]),
        "{got}"
    );
    // Real psql, as a user would run it.
    let out = Command::new("psql")
        .arg(url(&s, &agent))
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            &format!("SELECT email FROM {t} ORDER BY id"),
        ])
        .env("PGSSLMODE", "disable")
        .output()
        .expect("psql");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.trim(), "*************.com\n***********.com");
    direct
        .batch_execute(&format!("DROP VIEW {t}_v; DROP TABLE public.{t}"))
        .await
        .unwrap();
}

/// Two replicas on one PostgreSQL store: a policy changed through one is in
/// force on the other's live sessions within its poll interval.
/// The rows of an `EXECUTE` or a `FETCH` come from a query in another
/// statement, so the statement's own text says nothing of what its computed
/// columns read: they are masked as that query's would be, and, where
/// Gatehouse never saw the query (a cursor a function opened), as reading
/// masked data.
/// A view replaced through the gateway is masked as it now reads, in the
/// session that replaced it and in others: what views read is resolved
/// again, not kept from before (a session used to keep it for its life).
#[tokio::test(flavor = "multi_thread")]
async fn a_view_replaced_through_the_gateway_is_masked_as_it_now_reads() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let t = unique("gh_vrep");
    connect(DIRECT)
        .await
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, email text);
             INSERT INTO public.{t} VALUES (1, 'alice@example.com');
             CREATE VIEW public.{t}_v AS SELECT id FROM public.{t};"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.email")], "method": "redact"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    let other = connect(&url(&s, &agent)).await;
    let read = format!("SELECT * FROM {t}_v");
    // Reads no masked column: left alone, in both sessions.
    assert_eq!(rows(&gw, &read).await, vec![vec![Some("1".to_string())]]);
    assert_eq!(rows(&other, &read).await, vec![vec![Some("1".to_string())]]);
    gw.batch_execute(&format!(
        "CREATE OR REPLACE VIEW public.{t}_v AS SELECT id, email FROM public.{t}"
    ))
    .await
    .unwrap();
    // Now it reads one: every column is masked (the number withheld).
    let masked = vec![vec![None, Some("[REDACTED]".to_string())]];
    assert_eq!(rows(&gw, &read).await, masked);
    assert_eq!(rows(&other, &read).await, masked);
    connect(DIRECT)
        .await
        .batch_execute(&format!("DROP TABLE public.{t} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executes_and_fetches_are_masked_as_the_queries_they_run() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let t = unique("gh_src");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, email text);
             INSERT INTO public.{t} VALUES (1, 'alice@example.com');
             CREATE FUNCTION public.{t}_cur() RETURNS refcursor LANGUAGE plpgsql AS $$
               DECLARE r refcursor := '{t}_fc';
               BEGIN OPEN r FOR SELECT upper(email) FROM public.{t}; RETURN r; END $$;"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.email")], "method": "partial"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    let leaked = |got: &Vec<Vec<Option<String>>>| {
        format!("{got:?}")
            .to_lowercase()
            .contains("alice@example.com")
    };
    let redacted = vec![vec![Some("[REDACTED]".to_string())]];

    // SQL's PREPARE and EXECUTE, alone and in one query.
    rows(
        &gw,
        &format!("PREPARE leak AS SELECT upper(email) AS x FROM {t} WHERE id = 1"),
    )
    .await;
    assert_eq!(rows(&gw, "EXECUTE leak").await, redacted);
    let got = rows(
        &gw,
        &format!("PREPARE leak2 AS SELECT email || '' AS y FROM {t}; EXECUTE leak2"),
    )
    .await;
    assert_eq!(got, redacted);
    // Defining the name again (which the server refuses: it exists) does
    // not make Gatehouse forget what it runs.
    gw.simple_query("PREPARE leak AS SELECT 'harmless' AS x")
        .await
        .unwrap_err();
    assert_eq!(rows(&gw, "EXECUTE leak").await, redacted);
    // A prepared query that reads no masked data is left alone.
    rows(&gw, &format!("PREPARE n AS SELECT count(*) AS n FROM {t}")).await;
    assert_eq!(
        rows(&gw, "EXECUTE n").await,
        vec![vec![Some("1".to_string())]]
    );

    // A statement prepared at the protocol level, run with SQL's EXECUTE
    // under its name upstream (Gatehouse's, found by its text): a name no
    // statement of the session defined is masked as unknown.
    let _st = gw
        .prepare(&format!("SELECT upper(email) FROM {t}"))
        .await
        .unwrap();
    let name = rows(
        &gw,
        "SELECT name FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE '%upper(email)%'",
    )
    .await;
    let name = name[0][0].clone().unwrap();
    let got = rows(&gw, &format!("EXECUTE {name}")).await;
    assert!(!leaked(&got) && !got.is_empty(), "{got:?}");

    // Cursors, declared and fetched in separate statements.
    gw.batch_execute("BEGIN").await.unwrap();
    rows(
        &gw,
        &format!("DECLARE c1 CURSOR FOR SELECT upper(email) FROM {t}"),
    )
    .await;
    assert_eq!(rows(&gw, "FETCH 1 FROM c1").await, redacted);
    // A cursor a function opened: its query was never seen.
    rows(&gw, &format!("SELECT {t}_cur()")).await;
    let got = rows(&gw, &format!("FETCH ALL FROM {t}_fc")).await;
    assert_eq!(got, redacted, "{got:?}");
    gw.batch_execute("COMMIT").await.unwrap();

    direct
        .batch_execute(&format!(
            "DROP FUNCTION public.{t}_cur(); DROP TABLE public.{t}"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_change_reaches_the_other_replica() {
    let store = gatehouse_store::testing::fresh_pg_database()
        .await
        .expect("fresh database");
    let key = gatehouse_core::keyring::Keyring::generate_key();
    let mut a = common::replica(&store, &key).await;
    let mut b = common::replica(&store, &key).await;
    let admin = a.admin.clone();
    let (status, v) = a
        .post(
            "/v1/connections",
            &admin,
            json!({"name": "shop", "kind": "postgres", "url": DIRECT, "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let bot = a.token("bot", &["agents"]).await;
    let t = unique("gh_repl");
    let on_b = connect(&url(&b, &bot)).await;
    on_b.batch_execute(&format!("CREATE TABLE {t} (id int)"))
        .await
        .unwrap();

    let (status, v) = a
        .call(
            reqwest::Method::PUT,
            "/v1/policy",
            &admin,
            Some(json!({"rules": [{"name": "no-writes", "groups": ["agents"], "statements": ["write", "ddl"], "action": "deny"}]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Replica B reloads within its poll interval (2 s); wait for what a
    // user would see, a refusal, with a generous bound.
    let mut refusal = None;
    for _ in 0..200 {
        match on_b
            .simple_query(&format!("INSERT INTO {t} VALUES (1)"))
            .await
        {
            Err(e) => {
                refusal = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let e = refusal.expect("replica B never applied the new policy");
    assert_eq!(db_error(&e).2, "rule: no-writes");
    let (_, v) = b.get("/v1/policy", &admin).await;
    assert_eq!(v["policy"]["rules"][0]["name"], "no-writes", "{v}");

    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    drop(on_b);
    a.stop().await;
    b.stop().await;
    gatehouse_store::testing::drop_pg_database(&store)
        .await
        .expect("drop");
}

/// `policy test` decides a statement as the proxy would on that connection:
/// in the connection's SQL dialect, refusing a caller without access, and
/// with the refusals Gatehouse makes whatever the policy (leaving
/// read-only mode, another caller's backend, switching databases, KILL).
#[tokio::test]
async fn policy_test_decides_as_the_proxy_would_on_that_connection() {
    let s = TestServer::start().await;
    let (status, v) = s
        .pg_connection_with("ro", DIRECT, &["agents"], json!({"read_only": true}))
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "maria", "kind": "mysql", "url": mysql_url(), "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "web", "kind": "http", "url": "http://127.0.0.1:9", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    put_policy(
        &s,
        json!({
            "rules": [{"name": "no-secrets", "tables": ["secrets"], "action": "deny"}],
            "access": [{"connections": ["ro"], "requesters": ["contractors"], "levels": ["read"], "approvers": ["dba"]}]
        }),
    )
    .await;
    // The decision as "action rule", and the whole answer.
    let test = |who: &str, connection: &str, sql: &str| {
        let body = json!({"as": who, "connection": connection, "sql": sql});
        let s = &s;
        async move {
            let (status, v) = s.post("/v1/policy/test", &s.admin, body).await;
            assert_eq!(status, 200, "{v}");
            let verdict = &v["decision"]["verdict"];
            let got = format!(
                "{} {}",
                verdict["action"].as_str().unwrap(),
                verdict["rule"].as_str().unwrap_or("")
            );
            (got.trim().to_string(), v)
        }
    };
    let agent = s.token("bot", &["agents"]).await;
    let other = s.token("bot2", &["agents"]).await;
    let gw = connect(&s.pg_url(&format!("bot:{agent}"), "ro")).await;
    let pid: i32 = gw
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let cancel = format!("SELECT pg_cancel_backend({pid})");
    for (who, connection, sql, expected) in [
        // PostgreSQL, a read-only connection: the statements that would
        // leave read-only mode are refused, as the proxy refuses them.
        (
            "agents",
            "ro",
            "SET default_transaction_read_only = off",
            "deny read-only",
        ),
        ("agents", "ro", "BEGIN READ WRITE", "deny read-only"),
        (
            "agents",
            "ro",
            "SELECT set_config('transaction_read_only', 'off', false)",
            "deny read-only",
        ),
        ("agents", "ro", "SELECT 1", "allow"),
        // A group the connection is not open to is refused.
        ("others", "ro", "SELECT 1", "deny access"),
        // Backend signals: only the backends of the caller's own sessions.
        (agent.as_str(), "ro", cancel.as_str(), "allow"),
        (other.as_str(), "ro", cancel.as_str(), "deny backend-signal"),
        (
            agent.as_str(),
            "ro",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "deny backend-signal",
        ),
        // MySQL: decided in MySQL's dialect (backticks, not a parse error).
        (
            "agents",
            "maria",
            "SELECT `v` FROM `secrets`",
            "deny no-secrets",
        ),
        ("agents", "maria", "SELECT `v` FROM `orders`", "allow"),
        ("agents", "maria", "USE mysql", "deny database"),
        ("agents", "maria", "USE test", "allow"),
        ("agents", "maria", "KILL USER root", "deny kill"),
        ("agents", "maria", "KILL 12345", "deny kill"),
    ] {
        let (got, v) = test(who, connection, sql).await;
        assert_eq!(got, expected, "{sql}: {v}");
    }
    let (_, v) = test("others", "ro", "SELECT 1").await;
    let message = v["decision"]["verdict"]["message"].as_str().unwrap();
    assert!(message.contains("open to the groups agents"), "{message}");
    let (_, v) = test("agents", "maria", "SELECT `v` FROM `secrets`").await;
    assert_eq!(v["analysis"]["class"], "read", "{v}");
    // What the proxy does with the other caller's cancel.
    let gw_other = connect(&s.pg_url(&format!("bot2:{other}"), "ro")).await;
    assert_eq!(refused(&gw_other, &cancel).await.2, "rule: backend-signal");
    // A just-in-time grant opens the connection to a caller outside its
    // groups, as it does a session.
    let contractor = s.token("carol", &["contractors"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    assert_eq!(test(&contractor, "ro", "SELECT 1").await.0, "deny access");
    let (status, v) = s
        .post(
            "/v1/access/requests",
            &contractor,
            json!({"connection": "ro", "level": "read", "duration": "15m", "reason": "report"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let review = v["review"]["id"].as_str().unwrap().to_string();
    let (status, v) = s
        .post(&format!("/v1/reviews/{review}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let (got, v) = test(&contractor, "ro", "SELECT 1").await;
    assert!(got == "allow" || got.starts_with("allow grant:"), "{v}");

    // A connection that does not exist, or is not SQL, is an error.
    for (connection, status, says) in [
        ("nope", 404, "no connection named \"nope\""),
        ("web", 400, "is a http connection"),
    ] {
        let (got, v) = s
            .post(
                "/v1/policy/test",
                &s.admin,
                json!({"as": "agents", "connection": connection, "sql": "SELECT 1"}),
            )
            .await;
        assert_eq!(got, status, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
}

/// SQL's PREPAREs made while no rule applied (statements are then not
/// analysed) are noted too: once a rule applies, their EXECUTEs are decided
/// as what they run, rather than refused as unknown.
#[tokio::test]
async fn statements_prepared_before_any_rule_are_decided_as_what_they_run_once_rules_apply() {
    let (s, agent, t, direct) = shop_with_ids("gh_early", 2).await;
    // No rules: everything is allowed at once.
    let gw = connect(&url(&s, &agent)).await;
    gw.simple_query(&format!("PREPARE early AS SELECT count(*) FROM public.{t}"))
        .await
        .unwrap();
    gw.simple_query(&format!("PREPARE early_del AS DELETE FROM public.{t}"))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"rules": [{"name": "no-writes", "statements": ["write"], "action": "deny"}]}),
    )
    .await;
    assert_eq!(
        rows(&gw, "EXECUTE early").await,
        vec![vec![Some("2".to_string())]]
    );
    let (code, message, detail) = refused(&gw, "EXECUTE early_del").await;
    assert_eq!(code, "42501", "{message}");
    assert_eq!(detail, "rule: no-writes");
    assert!(
        message.contains(
            "EXECUTE runs the statement prepared as early_del: PREPARE early_del AS DELETE"
        ),
        "{message}"
    );
    let left = direct
        .query_one(&format!("SELECT count(*) FROM public.{t}"), &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 2);
    direct
        .batch_execute(&format!("DROP TABLE public.{t}"))
        .await
        .unwrap();
}

/// A server with the connection `shop` for the group `agents`, a token of
/// that group, a fresh table `public.<prefix>_…` holding the ids 1 to `n`,
/// and a direct connection to its database.
async fn shop_with_ids(
    prefix: &str,
    n: i32,
) -> (TestServer, String, String, tokio_postgres::Client) {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let t = unique(prefix);
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int); INSERT INTO public.{t} SELECT generate_series(1, {n})"
        ))
        .await
        .unwrap();
    (s, agent, t, direct)
}

#[tokio::test]
async fn a_prepared_statement_is_decided_as_what_it_runs_under_the_policy_in_force() {
    let (s, agent, t, direct) = shop_with_ids("gh_prep", 3).await;
    // A rule applies to the caller, so statements are analysed.
    put_policy(
        &s,
        json!({"rules": [{"name": "no-ddl", "statements": ["ddl"], "action": "deny"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    gw.simple_query(&format!(
        "PREPARE del(int) AS DELETE FROM public.{t} WHERE id = $1"
    ))
    .await
    .unwrap();
    let protocol = gw
        .prepare(&format!("DELETE FROM public.{t} WHERE id = $1"))
        .await
        .unwrap();

    // Writes are denied from now on: what was prepared before is decided
    // again, and SQL's EXECUTE (class `other`) as the DELETE it runs.
    put_policy(
        &s,
        json!({"rules": [
            {"name": "no-ddl", "statements": ["ddl"], "action": "deny"},
            {"name": "no-writes", "statements": ["write"], "action": "deny"}
        ]}),
    )
    .await;
    let (code, message, detail) = refused(&gw, "EXECUTE del(1)").await;
    assert_eq!(code, "42501", "{message}");
    assert_eq!(detail, "rule: no-writes");
    assert!(
        message.contains("EXECUTE runs the statement prepared as del: PREPARE del(int) AS DELETE"),
        "{message}"
    );
    // EXPLAIN ANALYZE runs it too.
    assert_eq!(
        refused(&gw, "EXPLAIN ANALYZE EXECUTE del(2)").await.2,
        "rule: no-writes"
    );
    // The protocol-level statement prepared before the change.
    let e = gw.execute(&protocol, &[&3i32]).await.unwrap_err();
    assert_eq!(db_error(&e).2, "rule: no-writes");
    // A name Gatehouse never saw prepared cannot be decided: refused.
    assert_eq!(refused(&gw, "EXECUTE nosuch(1)").await.0, "42501");
    // Nothing was deleted.
    let left = direct
        .query_one(&format!("SELECT count(*) FROM public.{t}"), &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 3);
    // Reads still run, prepared or not.
    gw.simple_query(&format!("PREPARE n AS SELECT count(*) FROM public.{t}"))
        .await
        .unwrap();
    assert_eq!(
        rows(&gw, "EXECUTE n").await,
        vec![vec![Some("3".to_string())]]
    );
    // A refused PREPARE defined nothing (the server never saw it): the name
    // prepared afterwards runs what it says.
    assert_eq!(
        refused(&gw, &format!("PREPARE w AS DELETE FROM public.{t}"))
            .await
            .2,
        "rule: no-writes"
    );
    gw.simple_query("PREPARE w AS SELECT 7").await.unwrap();
    assert_eq!(
        rows(&gw, "EXECUTE w").await,
        vec![vec![Some("7".to_string())]]
    );
    direct
        .batch_execute(&format!("DROP TABLE public.{t}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_a_table_is_met_through_the_views_over_it() {
    let (s, agent, t, direct) = shop_with_ids("gh_vault", 2).await;
    let open = format!("{t}_open");
    direct
        .batch_execute(&format!(
            "CREATE VIEW public.{t}_v AS SELECT id FROM public.{t};
             CREATE VIEW public.{t}_vv AS SELECT id FROM public.{t}_v WHERE id > 0;
             CREATE MATERIALIZED VIEW public.{t}_m AS SELECT id FROM public.{t};
             CREATE TABLE public.{t}_child () INHERITS (public.{t});
             CREATE TABLE public.{open} (id int); INSERT INTO public.{open} VALUES (5);
             CREATE VIEW public.{open}_v AS SELECT id FROM public.{open};"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"rules": [{"name": "no-vault", "statements": ["read", "write"],
                          "tables": [t.clone()], "action": "deny"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    let through = |message: &str, view: &str| {
        assert!(
            message.contains(&format!("through the view {view}, which reads"))
                && message.contains(&format!("public.{t}")),
            "{message}"
        );
    };
    // The view, a view over it, a materialized view, in a subquery,
    // qualified; an inheritance child (its rows are the table's; a
    // partition is found the same way, through pg_inherits).
    for (sql, view) in [
        (format!("SELECT * FROM {t}_v"), format!("{t}_v")),
        (format!("SELECT * FROM {t}_child"), format!("{t}_child")),
        (
            format!("SELECT count(*) FROM public.{t}_vv"),
            format!("public.{t}_vv"),
        ),
        (format!("SELECT * FROM {t}_m"), format!("{t}_m")),
        (
            format!("SELECT 1 WHERE EXISTS (SELECT 1 FROM {t}_vv)"),
            format!("{t}_vv"),
        ),
    ] {
        let (code, message, detail) = refused(&gw, &sql).await;
        assert_eq!(
            (code.as_str(), detail.as_str()),
            ("42501", "rule: no-vault"),
            "{sql}: {message}"
        );
        through(&message, &view);
    }
    // The extended protocol, and a write through an updatable view.
    let e = gw
        .query(&format!("SELECT id FROM {t}_vv WHERE id = $1"), &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(db_error(&e).2, "rule: no-vault");
    let (_, message, detail) = refused(&gw, &format!("INSERT INTO {t}_v VALUES (9)")).await;
    assert_eq!(detail, "rule: no-vault", "{message}");
    // SQL's PREPARE of a read of the view.
    assert_eq!(
        refused(&gw, &format!("PREPARE p AS SELECT * FROM {t}_v"))
            .await
            .2,
        "rule: no-vault"
    );
    // psql, as a person would type it.
    // (The gateway runs on this test's runtime: block only this worker.)
    let out = tokio::task::block_in_place(|| {
        Command::new("psql")
            .args([
                &url(&s, &agent),
                "-X",
                "-c",
                &format!("SELECT * FROM {t}_vv"),
            ])
            .env("PGSSLMODE", "disable")
            .output()
            .expect("psql")
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("rule: no-vault"), "{stderr}");
    assert!(
        stderr.contains(&format!("through the view {t}_vv")),
        "{stderr}"
    );

    // `policy test` decides as the proxy does.
    let (status, v) = s
        .post(
            "/v1/policy/test",
            &s.admin,
            json!({"as": "agents", "connection": "shop", "sql": format!("SELECT * FROM {t}_vv")}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"]["verdict"]["rule"], "no-vault", "{v}");
    through(
        v["decision"]["verdict"]["message"].as_str().unwrap(),
        &format!("{t}_vv"),
    );

    // Views over other tables run.
    assert_eq!(
        rows(&gw, &format!("SELECT id FROM {open}_v")).await,
        vec![vec![Some("5".to_string())]]
    );
    // A view replaced through the gateway (DDL is not refused here) is
    // looked up again: it now reads the table the rule names.
    gw.simple_query(&format!(
        "CREATE OR REPLACE VIEW public.{open}_v AS SELECT id FROM public.{t}"
    ))
    .await
    .unwrap();
    let (_, message, detail) = refused(&gw, &format!("SELECT id FROM {open}_v")).await;
    assert_eq!(detail, "rule: no-vault", "{message}");
    // Nothing was written through the view.
    let n = direct
        .query_one(&format!("SELECT count(*) FROM public.{t}"), &[])
        .await
        .unwrap();
    assert_eq!(n.get::<_, i64>(0), 2);
    direct
        .batch_execute(&format!(
            "DROP TABLE public.{t} CASCADE; DROP TABLE public.{open} CASCADE"
        ))
        .await
        .unwrap();
}

/// Masks follow masked data into partitions and inheritance children (their
/// rows are the masked table's), and computed columns through views; and a
/// masked caller cannot store masked data where it would be read back
/// unmasked, nor rename or move it out from under the masks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_data_is_masked_in_partitions_and_is_not_copied_out_from_under_the_masks() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let t = unique("gh_mcopy");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, email text) PARTITION BY RANGE (id);
             CREATE TABLE public.{t}_p1 PARTITION OF public.{t} FOR VALUES FROM (0) TO (100);
             INSERT INTO public.{t} VALUES (1, 'alice@example.com');
             CREATE TABLE public.{t}_base (id int, email text);
             INSERT INTO public.{t}_base VALUES (1, 'bob@example.com');
             CREATE TABLE public.{t}_child () INHERITS (public.{t}_base);
             INSERT INTO public.{t}_child VALUES (2, 'carol@example.com');
             CREATE VIEW public.{t}_v AS SELECT id, email AS contact FROM public.{t}_base;
             CREATE TABLE public.{t}_copy (id int, email text);"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.email"), format!("public.{t}_base.email")],
                          "method": "redact"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    let r = |v: &str| Some(v.to_string());
    let redacted = r("[REDACTED]");

    // Partitions and inheritance children hold the masked table's rows.
    for q in [
        format!("SELECT email FROM {t}_p1"),
        format!("SELECT upper(email) FROM {t}_p1"),
        format!("SELECT email FROM {t}_child"),
        format!("SELECT upper(contact) FROM {t}_v WHERE id = 1"),
        format!("SELECT contact || '' FROM {t}_v WHERE id = 1"),
    ] {
        assert_eq!(rows(&gw, &q).await, vec![vec![redacted.clone()]], "{q}");
    }
    // A column that is not masked stays readable there.
    assert_eq!(
        rows(&gw, &format!("SELECT id FROM {t}_child")).await,
        vec![vec![r("2")]]
    );

    // Storing masked data anywhere is refused, naming the rule.
    for q in [
        format!("INSERT INTO {t}_copy SELECT id, email FROM {t}_base"),
        format!("INSERT INTO {t}_copy SELECT * FROM {t}_base"),
        format!("INSERT INTO {t}_copy VALUES (5, (SELECT email FROM {t}_base LIMIT 1))"),
        format!("INSERT INTO {t}_copy SELECT id, contact FROM {t}_v"),
        format!("INSERT INTO {t}_copy SELECT id, email FROM {t}_p1"),
        format!("UPDATE {t}_copy SET email = (SELECT upper(email) FROM {t}_base LIMIT 1)"),
        format!("UPDATE {t}_base SET email = email WHERE id = 1"),
        format!("CREATE TABLE {t}_ctas AS SELECT email FROM {t}_base"),
        format!("SELECT email INTO {t}_into FROM {t}_base"),
        format!("CREATE MATERIALIZED VIEW {t}_mv AS SELECT email FROM {t}_base"),
        format!("WITH x AS (SELECT id, email FROM {t}_base) INSERT INTO {t}_copy SELECT * FROM x"),
        format!(
            "WITH x AS (SELECT id, email FROM {t}_base), w AS (INSERT INTO {t}_copy SELECT * FROM x RETURNING 1) SELECT count(*) FROM w"
        ),
        format!(
            "MERGE INTO {t}_copy c USING {t}_base b ON c.id = b.id WHEN NOT MATCHED THEN INSERT VALUES (b.id, b.email)"
        ),
        format!("ALTER TABLE {t}_base RENAME COLUMN email TO e"),
        format!("ALTER TABLE {t}_base RENAME TO {t}_gone"),
        format!("ALTER TABLE {t}_p1 RENAME COLUMN email TO e"),
        format!("ALTER TABLE {t}_base SET SCHEMA pg_temp"),
    ] {
        let (code, message, detail) = refused(&gw, &q).await;
        assert_eq!(
            (code.as_str(), detail.as_str()),
            ("42501", "rule: masking"),
            "{q}: {message}"
        );
    }
    // The same through the extended protocol.
    let e = gw
        .execute(
            &format!("INSERT INTO {t}_copy SELECT id, email FROM {t}_base"),
            &[],
        )
        .await
        .unwrap_err();
    assert!(db_error(&e).1.contains("masked columns"), "{e}");

    // What copies no masked data runs: new values, a condition on a
    // masked column (it picks rows, it stores nothing), a new row in a
    // partition.
    for q in [
        format!("INSERT INTO {t}_copy VALUES (9, 'nobody@example.com')"),
        format!("INSERT INTO {t}_copy SELECT id, 'x' FROM {t}_base"),
        format!("UPDATE {t}_copy SET id = 10 WHERE email = 'nobody@example.com'"),
        format!("UPDATE {t}_base SET id = 1 WHERE email = 'bob@example.com'"),
        format!("INSERT INTO {t}_p1 VALUES (3, 'dave@example.com')"),
    ] {
        gw.simple_query(&q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {:?}", db_error(&e)));
    }
    // Nothing masked reached the copy, and the tables are as they were.
    let copied = rows(&direct, &format!("SELECT email FROM {t}_copy ORDER BY 1")).await;
    // (The base table's rows are its own and its child's.)
    assert_eq!(
        copied,
        vec![vec![r("nobody@example.com")], vec![r("x")], vec![r("x")]]
    );
    assert_eq!(
        rows(&direct, &format!("SELECT email FROM {t}_base WHERE id = 1")).await,
        vec![vec![r("bob@example.com")]]
    );
    direct
        .batch_execute(&format!(
            "DROP TABLE public.{t}, public.{t}_base, public.{t}_copy CASCADE"
        ))
        .await
        .unwrap();
}

/// Masked values do not come back by ways a column's origin does not tell:
/// a whole row (`SELECT c FROM customers c`, whose origin is the table but
/// no column), a function defined in the database that reads the column
/// itself (called in the select list, in FROM, through a cursor or a
/// prepared statement), built-in functions that run a query given as text
/// (`query_to_xml`, `table_to_xml`, `ts_stat`), and errors that quote the
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_values_do_not_come_back_through_whole_rows_functions_or_errors() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let t = unique("gh_mleak");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int, secret text);
             INSERT INTO public.{t} VALUES (1, 'hunter2xyz');
             CREATE TABLE public.{t}_s (id int, secret text);
             INSERT INTO public.{t}_s VALUES (1, 'hunter2xyz'), (2, 'hunter2xyz'), (3, 'hunter2xyz'),
               (4, 'hunter2aaa'), (5, 'hunter2bbb'), (6, 'hunter2ccc');
             ANALYZE public.{t}_s;
             CREATE VIEW public.{t}_vs AS SELECT tablename, most_common_vals::text AS m FROM pg_catalog.pg_stats;
             CREATE FUNCTION public.{t}_f() RETURNS SETOF text LANGUAGE sql AS 'SELECT secret FROM public.{t}';
             CREATE VIEW public.{t}_v AS SELECT id, secret AS contact FROM public.{t};
             CREATE VIEW public.{t}_vf AS SELECT 1 AS id, public.{t}_f() AS contact;
             CREATE VIEW public.{t}_vw AS SELECT x AS r, x.id FROM public.{t} x;
             CREATE VIEW public.{t}_vj AS SELECT row_to_json(x) AS j FROM public.{t} x;
             CREATE VIEW public.{t}_vid AS SELECT id FROM public.{t};
             CREATE FUNCTION public.\"{t}_F2\"(n int) RETURNS text LANGUAGE sql AS 'SELECT secret FROM public.{t} LIMIT n';"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.secret"), format!("public.{t}_s.secret")],
                          "method": "redact"}]}),
    )
    .await;
    let psql = |q: &str| psql_as(&s, &agent, q);
    for q in [
        format!("SELECT x FROM {t} x"),
        format!("SELECT ({t}) FROM {t}"),
        format!("SELECT * FROM {t}_f()"),
        format!("SELECT {t}_f()"),
        format!("SELECT upper({t}_f())"),
        format!("SELECT \"{t}_F2\"(1)"),
        format!("SELECT * FROM ROWS FROM ({t}_f())"),
        format!("SELECT query_to_xml('select secret from {t}', true, false, '')"),
        format!("SELECT table_to_xml('{t}', true, false, '')"),
        format!("SELECT * FROM ts_stat('select to_tsvector(secret) from {t}')"),
        format!("BEGIN; DECLARE c CURSOR FOR SELECT * FROM {t}_f(); FETCH ALL FROM c; COMMIT"),
        format!("PREPARE p AS SELECT {t}_f(); EXECUTE p"),
        format!("SELECT secret::int FROM {t}"),
        format!("SELECT id FROM {t} ORDER BY secret::int"),
        // Planner statistics hold sample values of columns.
        format!(
            "SELECT most_common_vals, histogram_bounds FROM pg_stats WHERE tablename = '{t}_s'"
        ),
        format!("SELECT most_common_vals::text FROM pg_catalog.pg_stats WHERE tablename = '{t}_s'"),
        format!(
            "SELECT s.histogram_bounds::text || '' FROM pg_stats s WHERE s.tablename = '{t}_s'"
        ),
        format!("SELECT m FROM {t}_vs WHERE tablename = '{t}_s'"),
        format!("SELECT m || '' FROM {t}_vs WHERE tablename = '{t}_s'"),
        // Views over such functions and whole rows.
        format!("SELECT contact FROM {t}_vf"),
        format!("SELECT upper(contact) FROM {t}_vf"),
        format!("SELECT r FROM {t}_vw"),
        format!("SELECT r::text FROM {t}_vw"),
        format!("SELECT j FROM {t}_vj"),
    ] {
        let (out, err) = psql(&q);
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "{q}: {out} {err}"
        );
        assert!(
            out.contains("[REDACTED]")
                || err.contains("[REDACTED]")
                || out.chars().all(|c| c == '|' || c.is_whitespace()),
            "{q} is masked: {out} {err}"
        );
    }
    // Through the extended protocol too.
    let gw = connect(&url(&s, &agent)).await;
    let got: Option<String> = gw
        .query_one(&format!("SELECT {t}_f()"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(got.as_deref(), Some("[REDACTED]"));
    let got: Option<String> = gw
        .query_one(&format!("SELECT upper(contact) FROM {t}_v"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        got.as_deref(),
        Some("[REDACTED]"),
        "a computed column over a view"
    );
    // A cursor and a prepared statement defined in one query and read in
    // the next.
    gw.batch_execute(&format!(
        "BEGIN; DECLARE c2 CURSOR FOR SELECT * FROM {t}_f(); PREPARE p2 AS SELECT {t}_f()"
    ))
    .await
    .unwrap();
    for q in ["FETCH ALL FROM c2", "EXECUTE p2"] {
        assert_eq!(
            rows(&gw, q).await,
            vec![vec![Some("[REDACTED]".to_string())]],
            "{q}"
        );
    }
    gw.batch_execute("COMMIT").await.unwrap();
    // Functions that keep what they are given for later statements or
    // other sessions: refused when given masked data.
    for q in [
        format!("LISTEN c; SELECT pg_notify('c', secret) FROM {t}"),
        format!("SELECT lo_from_bytea(0, convert_to(secret, 'UTF8')) FROM {t}"),
        format!("SELECT pg_logical_emit_message(false, 'x', secret) FROM {t}"),
    ] {
        let (out, err) = psql(&q);
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "{q}: {out} {err}"
        );
        assert!(
            err.contains("rule: masking") || err.contains("storing data"),
            "{q}: {err}"
        );
    }
    // A view that reads no masked column is read as it is.
    assert_eq!(psql(&format!("SELECT id FROM {t}_vid")).0, "1");
    // Built-in functions run as before, and a column that is not masked
    // is read through a whole-row-free query as it is.
    assert_eq!(psql(&format!("SELECT upper('a'), id FROM {t}")).0, "A|1");
    direct
        .batch_execute(&format!(
            "DROP TABLE public.{t}, public.{t}_s CASCADE; DROP VIEW public.{t}_vs; DROP FUNCTION public.{t}_f, public.\"{t}_F2\" CASCADE"
        ))
        .await
        .unwrap();
}

/// The server's errors and notices show values where quoting does not
/// mark them: a constraint's DETAIL shows the failing row, JSON input is
/// echoed in the CONTEXT and an XML document in the DETAIL, the internal
/// query is the SQL a function built, and a function's message is what it
/// raised. About statements that involve masked columns those parts are
/// withheld (a message a function raised too, but for its SQLSTATE);
/// errors about other statements keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_about_masked_data_do_not_show_it() {
    let s = TestServer::start().await;
    let t = unique("gh_merr");
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int PRIMARY KEY, name text NOT NULL, secret text, pay int);
             INSERT INTO public.{t} VALUES (1, 'ann', 'hunter2xyz', 150000);
             CREATE TABLE public.{t}_plain (id int PRIMARY KEY, note text NOT NULL);
             INSERT INTO public.{t}_plain VALUES (1, 'note1');
             CREATE FUNCTION public.{t}_raise(i int) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE n text;
               BEGIN SELECT secret INTO n FROM public.{t} WHERE id = i; RAISE EXCEPTION 'no: %', n; END $$;
             CREATE FUNCTION public.{t}_echo(v text) RETURNS text LANGUAGE plpgsql AS $$
               BEGIN RAISE NOTICE 'saw %', v; RAISE EXCEPTION 'bad: %', v USING HINT = 'was ' || v; END $$;
             CREATE FUNCTION public.{t}_build(i int) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE n text; r text;
               BEGIN SELECT secret INTO n FROM public.{t} WHERE id = i; EXECUTE 'SELECT ' || n INTO r; RETURN r; END $$;"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.secret"), format!("public.{t}.pay")], "method": "redact"}]}),
    )
    .await;
    let psql = |q: &str| psql_as(&s, &agent, q);
    let gw = connect(&url(&s, &agent)).await;
    for (q, code) in [
        // CONTEXT:  JSON data, line 1: hunter2xyz
        (format!("SELECT secret::json FROM {t}"), "22P02"),
        // DETAIL:  line 1: Start tag expected, '<' not found / hunter2xyz
        (
            format!("SELECT xmlparse(document secret) FROM {t}"),
            "2200M",
        ),
        // DETAIL:  Failing row contains (1, null, hunter2xyz).
        (format!("UPDATE {t} SET name = NULL WHERE id = 1"), "23502"),
        // ERROR:  no: hunter2xyz (raised by a function reading the table)
        (format!("SELECT {t}_raise(1)"), "P0001"),
        // NOTICE:  saw hunter2xyz; ERROR:  bad: hunter2xyz; HINT:  was hunter2xyz
        (format!("SELECT {t}_echo(secret) FROM {t}"), "P0001"),
        // QUERY:  SELECT hunter2xyz (the SQL a built-in ran from text)
        (
            format!("SELECT query_to_xml('SELECT ' || secret, true, true, '') FROM {t}"),
            "42703",
        ),
        // (A function that builds SQL is refused under masks: it could
        // copy masked data by itself.)
        (format!("SELECT {t}_build(1)"), "42501"),
        // ERROR:  date field value out of range: 150000-13-01 (numbers
        // are not quoted)
        (format!("SELECT make_date(pay, 13, 1) FROM {t}"), "22008"),
        // ERROR:  requested character too large for encoding: 15000000
        (format!("SELECT chr(pay * 100) FROM {t}"), "54000"),
    ] {
        let (out, err) = psql(&q);
        assert!(!err.contains("hunter2"), "{q}: {out} {err}");
        assert!(!err.contains("15000"), "{q}: {out} {err}");
        assert!(err.contains("ERROR:"), "{q}: {out} {err}");
        let (c, message, detail) = refused(&gw, &q).await;
        assert_eq!(c, code, "{q} keeps its SQLSTATE: {message} {detail}");
    }
    // The message of a built-in's error is kept, its quoted values redacted.
    let (_, err) = psql(&format!("SELECT secret::int FROM {t}"));
    assert!(
        err.contains("invalid input syntax for type integer: \"[REDACTED]\""),
        "{err}"
    );
    // A function's message about data that is not masked is its own.
    let (_, err) = psql(&format!("SELECT {t}_echo(name) FROM {t}"));
    assert!(
        err.contains("bad: ann") && err.contains("HINT:  was ann"),
        "{err}"
    );
    // Errors about statements that do not involve masked columns keep their
    // details.
    let (_, err) = psql(&format!("SELECT note::json FROM {t}_plain"));
    assert!(err.contains("CONTEXT:  JSON data, line 1: note1"), "{err}");
    let (_, err) = psql(&format!("SELECT xmlparse(document note) FROM {t}_plain"));
    assert!(err.contains("DETAIL:") && err.contains("note1"), "{err}");
    // The recording keeps the errors as the client got them.
    let recorded = recorded_for(&s, "bot", |r| {
        r.contains("Gatehouse withheld this message") && r.contains("xmlparse(document note)")
    })
    .await;
    assert!(
        recorded.contains("Gatehouse withheld this message"),
        "{recorded}"
    );
    assert!(!recorded.contains("hunter2"), "{recorded}");
    drop(gw);
    drop(s);
    let _ = direct
        .batch_execute(&format!(
            "DROP TABLE public.{t}, public.{t}_plain; DROP FUNCTION public.{t}_raise, public.{t}_echo, public.{t}_build"
        ))
        .await;
}

/// What a write runs by itself is read as a call would be: a trigger, a
/// rule, a column default or a `CHECK` constraint on the table written (or
/// on a table the write reaches: a partition, a cascading foreign key's
/// table) that reads a masked table, or keeps a row with masked columns,
/// has the write refused, so a masked caller cannot have the database copy
/// masked data into a table read back unmasked; writes whose triggers do
/// neither run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_write_runs_by_itself_is_read() {
    let s = TestServer::start().await;
    let t = unique("gh_mwr");
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE public.{t} (id int PRIMARY KEY, secret text);
             INSERT INTO public.{t} VALUES (1, 'hunter2xyz');
             CREATE TABLE public.{t}_kept (v text);
             CREATE FUNCTION public.{t}_copy() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.{t}_kept SELECT secret FROM public.{t}; RETURN NEW; END $$;
             CREATE FUNCTION public.{t}_fill() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN NEW.note := (SELECT secret FROM public.{t} LIMIT 1); RETURN NEW; END $$;
             CREATE FUNCTION public.{t}_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN NEW.note := 'stamped'; RETURN NEW; END $$;
             CREATE FUNCTION public.{t}_log() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.{t}_kept VALUES (OLD.secret); RETURN OLD; END $$;
             CREATE FUNCTION public.{t}_first() RETURNS text LANGUAGE sql AS
               $$ SELECT secret FROM public.{t} LIMIT 1 $$;
             CREATE TABLE public.{t}_after (id int, note text);
             CREATE TRIGGER c AFTER INSERT ON public.{t}_after FOR EACH ROW EXECUTE FUNCTION public.{t}_copy();
             CREATE TABLE public.{t}_before (id int, note text);
             CREATE TRIGGER f BEFORE INSERT ON public.{t}_before FOR EACH ROW EXECUTE FUNCTION public.{t}_fill();
             CREATE TABLE public.{t}_stamped (id int, note text);
             CREATE TRIGGER s BEFORE INSERT ON public.{t}_stamped FOR EACH ROW EXECUTE FUNCTION public.{t}_stamp();
             CREATE TABLE public.{t}_default (id int, note text DEFAULT public.{t}_first());
             CREATE TABLE public.{t}_ruled (id int);
             CREATE RULE r AS ON INSERT TO public.{t}_ruled DO ALSO INSERT INTO public.{t}_kept SELECT secret FROM public.{t};
             CREATE TABLE public.{t}_parent (id int PRIMARY KEY);
             CREATE TABLE public.{t}_child (id int REFERENCES public.{t}_parent ON DELETE CASCADE);
             CREATE TRIGGER c AFTER DELETE ON public.{t}_child FOR EACH ROW EXECUTE FUNCTION public.{t}_copy();
             INSERT INTO public.{t}_parent VALUES (1); INSERT INTO public.{t}_child VALUES (1);
             CREATE TABLE public.{t}_parted (id int, note text) PARTITION BY RANGE (id);
             CREATE TABLE public.{t}_part PARTITION OF public.{t}_parted FOR VALUES FROM (0) TO (100);
             CREATE TRIGGER c AFTER INSERT ON public.{t}_part FOR EACH ROW EXECUTE FUNCTION public.{t}_copy();
             CREATE TRIGGER l BEFORE DELETE ON public.{t} FOR EACH ROW EXECUTE FUNCTION public.{t}_log();
             CREATE VIEW public.{t}_through AS SELECT id, note FROM public.{t}_after;
             CREATE TABLE public.{t}_inh (id int, note text);
             CREATE TABLE public.{t}_kid () INHERITS (public.{t}_inh);
             CREATE TRIGGER c AFTER UPDATE ON public.{t}_kid FOR EACH ROW EXECUTE FUNCTION public.{t}_copy();
             CREATE FUNCTION public.{t}_keep_check(i int) RETURNS boolean LANGUAGE sql AS
               $$ INSERT INTO public.{t}_kept SELECT secret FROM public.{t} RETURNING true $$;
             CREATE TABLE public.{t}_checked (id int CHECK (public.{t}_keep_check(id)));
             CREATE FUNCTION public.{t}_gen(i int) RETURNS text LANGUAGE sql IMMUTABLE AS
               $$ SELECT secret FROM public.{t} LIMIT 1 $$;
             CREATE TABLE public.{t}_generated (id int, g text GENERATED ALWAYS AS (public.{t}_gen(id)) STORED);
             CREATE FUNCTION public.{t}_touch() RETURNS void LANGUAGE sql AS
               $$ INSERT INTO public.{t}_after VALUES (9, 'z') $$;"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.secret")], "method": "redact"}]}),
    )
    .await;
    let gw = connect(&url(&s, &agent)).await;
    for q in [
        // An AFTER trigger copies the masked column into another table.
        format!("INSERT INTO {t}_after VALUES (1, 'x')"),
        // A BEFORE trigger puts it in the row written.
        format!("INSERT INTO {t}_before VALUES (1, 'x')"),
        // A column default reads it.
        format!("INSERT INTO {t}_default (id) VALUES (1)"),
        // A rule copies it.
        format!("INSERT INTO {t}_ruled VALUES (1)"),
        // A cascading foreign key deletes rows whose trigger copies it.
        format!("DELETE FROM {t}_parent WHERE id = 1"),
        // The partition's trigger copies it.
        format!("INSERT INTO {t}_parted VALUES (1, 'x')"),
        // An updatable view writes its table, whose trigger copies it.
        format!("INSERT INTO {t}_through VALUES (3, 'z')"),
        // An inheritance child's trigger copies it.
        format!("UPDATE {t}_inh SET note = 'y'"),
        // A CHECK constraint's function copies it.
        format!("INSERT INTO {t}_checked VALUES (1)"),
        // A generated column's function reads it into the row.
        format!("INSERT INTO {t}_generated (id) VALUES (1)"),
        // The masked table's own trigger keeps the row it deletes.
        format!("DELETE FROM {t} WHERE id = 1"),
        // Among other statements.
        format!("SELECT 1; INSERT INTO {t}_after VALUES (2, 'y')"),
    ] {
        refused_saying(&gw, &q, "trigger, rule, column default").await;
    }
    // What a function that reads the masked column returns is masked in
    // results, and not stored: not by INSERT, CREATE TABLE AS or UPDATE,
    // nor as a default that DDL fills existing rows with.
    assert_eq!(
        rows(&gw, &format!("SELECT {t}_first()")).await,
        vec![vec![Some("[REDACTED]".to_string())]]
    );
    gw.simple_query(&format!("INSERT INTO {t}_stamped VALUES (7, 'x')"))
        .await
        .unwrap();
    for q in [
        format!("INSERT INTO {t}_kept SELECT {t}_first()"),
        format!("CREATE TABLE {t}_ctas AS SELECT {t}_first() AS v"),
        format!("UPDATE {t}_stamped SET note = {t}_first()"),
        format!("ALTER TABLE {t}_stamped ADD COLUMN leak text DEFAULT {t}_first()"),
    ] {
        refused_saying(
            &gw,
            &q,
            &format!("{t}_first, which it calls, may return masked data"),
        )
        .await;
    }
    gw.simple_query(&format!("DELETE FROM {t}_stamped WHERE id = 7"))
        .await
        .unwrap();
    // A function is read from the database before the text runs: one the
    // same text creates and calls is not known, and refused.
    let q = format!(
        "CREATE FUNCTION {t}_new() RETURNS text LANGUAGE sql AS 'SELECT secret FROM public.{t} LIMIT 1'; SELECT {t}_new()"
    );
    refused_saying(&gw, &q, "in the text that creates").await;
    // Created on its own first, it is read when called.
    gw.simple_query(&format!(
        "CREATE FUNCTION {t}_new() RETURNS text LANGUAGE sql AS 'SELECT secret FROM public.{t} LIMIT 1'"
    ))
    .await
    .unwrap();
    assert_eq!(
        rows(&gw, &format!("SELECT {t}_new()")).await,
        vec![vec![Some("[REDACTED]".to_string())]]
    );
    // And it may be dropped (DDL that names it does not call it).
    gw.simple_query(&format!("DROP FUNCTION {t}_new"))
        .await
        .unwrap();
    // A masked caller's view over such a function is DDL calling it.
    refused_saying(
        &gw,
        &format!("CREATE VIEW {t}_fv AS SELECT {t}_first() AS v"),
        &format!("{t}_first, which it calls, may return masked data"),
    )
    .await;
    // Likewise a view the same text creates and reads.
    let q = format!(
        "CREATE VIEW {t}_v AS SELECT secret FROM public.{t}; INSERT INTO {t}_kept SELECT * FROM {t}_v"
    );
    refused_saying(&gw, &q, "in the text that creates it").await;
    // In a transaction, what DDL changed is not seen by Gatehouse's
    // catalog look-ups (other connections) until it commits: meanwhile
    // they count as failed (computed columns masked, storing refused).
    gw.batch_execute("BEGIN").await.unwrap();
    gw.batch_execute(&format!(
        "CREATE FUNCTION {t}_tx() RETURNS text LANGUAGE sql AS 'SELECT secret FROM public.{t} LIMIT 1'"
    ))
    .await
    .unwrap();
    assert_eq!(
        rows(&gw, &format!("SELECT {t}_tx()")).await,
        vec![vec![Some("[REDACTED]".to_string())]]
    );
    refused_saying(
        &gw,
        &format!("INSERT INTO {t}_kept SELECT {t}_tx()"),
        "could not look up the functions",
    )
    .await;
    gw.batch_execute("ROLLBACK").await.unwrap();
    // Pipelined (sent in one write, read before the first runs): what
    // follows DDL waits for it, and is decided with what the catalog says
    // after it, with the DDL as a simple query or through the extended
    // protocol.
    for (n, extended) in [("pl", false), ("pl2", true)] {
        let create = format!(
            "CREATE FUNCTION {t}_{n}() RETURNS text LANGUAGE sql AS 'SELECT secret FROM public.{t} LIMIT 1'"
        );
        let call = format!("SELECT {t}_{n}()");
        let (created, called) = if extended {
            let (a, b) = tokio::join!(gw.query_typed(&create, &[]), gw.query_typed(&call, &[]));
            (a.map(|_| ()), b)
        } else {
            tokio::join!(gw.batch_execute(&create), gw.query_typed(&call, &[]))
        };
        created.unwrap();
        let got: Option<String> = called.unwrap()[0].get(0);
        assert_eq!(got.as_deref(), Some("[REDACTED]"), "{create}; {call}");
    }
    // Nor may the masked caller hang code on any table: it would run on
    // every session's writes.
    let q = format!(
        "CREATE TRIGGER mine AFTER INSERT ON {t}_stamped FOR EACH ROW EXECUTE FUNCTION {t}_copy()"
    );
    refused_saying(&gw, &q, "creating a trigger, rule").await;
    // A function that writes such a table runs its triggers too.
    let q = format!("SELECT {t}_touch()");
    refused_saying(&gw, &q, &format!("calling {t}_touch")).await;
    // Nothing was copied.
    let kept: i64 = direct
        .query_one(&format!("SELECT count(*) FROM public.{t}_kept"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0);
    // A trigger that neither reads masked data nor keeps a masked row runs.
    gw.simple_query(&format!("INSERT INTO {t}_stamped VALUES (1, 'x')"))
        .await
        .unwrap();
    assert_eq!(
        rows(&gw, &format!("SELECT note FROM {t}_stamped")).await,
        vec![vec![Some("stamped".to_string())]]
    );
    // Also where the statement reads masked data (the trigger is not given
    // it).
    gw.simple_query(&format!(
        "UPDATE {t}_stamped SET id = 2 WHERE id IN (SELECT id FROM {t} WHERE secret <> '')"
    ))
    .await
    .unwrap();
    drop(gw);
    drop(s);
    let _ = direct
        .batch_execute(&format!(
            "DROP TABLE public.{t}, public.{t}_kept, public.{t}_after, public.{t}_before, public.{t}_stamped,
               public.{t}_default, public.{t}_ruled, public.{t}_child, public.{t}_parent, public.{t}_parted,
               public.{t}_kid, public.{t}_inh, public.{t}_checked, public.{t}_generated CASCADE;
             DROP TABLE IF EXISTS public.{t}_ctas;
             DROP FUNCTION public.{t}_copy, public.{t}_fill, public.{t}_stamp, public.{t}_log, public.{t}_first,
               public.{t}_touch;
             DROP FUNCTION IF EXISTS public.{t}_new, public.{t}_pl, public.{t}_pl2;
             DROP FUNCTION IF EXISTS public.{t}_keep_check, public.{t}_gen;
             DROP VIEW IF EXISTS public.{t}_v"
        ))
        .await;
}

/// Functions defined in the database are read (SQL and PL/pgSQL, through
/// the functions they call and the views they read) rather than all
/// treated alike: a call of one that reads no masked table returns its
/// value as it is; one that reads a masked table, directly, through
/// another function or through a view, has its result masked; one that
/// stores what it is given or reads, or whose doings cannot be read, is
/// refused masked data, and one that runs SQL built at run time is refused
/// whatever it is given (it could copy masked data by itself); a view
/// calling a harmless function is read as it is, and one calling a
/// function that reads a masked table is masked whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_read_to_mask_only_what_they_may_return() {
    let s = TestServer::start().await;
    let t = unique("gh_mfn");
    // A database of its own: a cast counts for every statement there.
    connect(DIRECT)
        .await
        .batch_execute(&format!("CREATE DATABASE {t}"))
        .await
        .unwrap();
    let db = DIRECT.replace("/test", &format!("/{t}"));
    s.pg_connection("shop", &db, None, &["agents"]).await;
    let agent = s.token("bot", &["agents"]).await;
    let direct = connect(&db).await;
    direct
        .batch_execute(&format!(
            "CREATE EXTENSION citext;
             CREATE EXTENSION dblink;
             CREATE TABLE public.{t} (id int, name text, secret text);
             INSERT INTO public.{t} VALUES (1, 'ann', 'hunter2xyz');
             CREATE TABLE public.{t}_plain (id int, note text);
             INSERT INTO public.{t}_plain VALUES (1, 'note1');
             CREATE TABLE public.{t}_kept (v text);
             CREATE VIEW public.{t}_v AS SELECT id, secret FROM public.{t};
             CREATE FUNCTION public.{t}_shout(v text) RETURNS text LANGUAGE sql AS 'SELECT upper(v) || ''!''';
             CREATE FUNCTION public.{t}_note(i int) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE n text;
               BEGIN SELECT note INTO n FROM public.{t}_plain WHERE id = i; RETURN {t}_shout(n); END $$;
             CREATE FUNCTION public.{t}_std(i int) RETURNS text LANGUAGE sql
               BEGIN ATOMIC SELECT note FROM public.{t}_plain WHERE id = i; END;
             CREATE FUNCTION public.{t}_leak(i int) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE n text;
               BEGIN SELECT secret INTO n FROM public.{t} WHERE id = i; RETURN n; END $$;
             CREATE FUNCTION public.{t}_nested(i int) RETURNS text LANGUAGE sql AS 'SELECT {t}_leak(i)';
             CREATE FUNCTION public.{t}_viaview() RETURNS text LANGUAGE sql AS 'SELECT max(secret) FROM public.{t}_v';
             CREATE FUNCTION public.{t}_std_leak(i int) RETURNS text LANGUAGE sql
               BEGIN ATOMIC SELECT secret FROM public.{t} WHERE id = i; END;
             CREATE FUNCTION public.{t}_dynamic(tab text) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE n text;
               BEGIN EXECUTE 'SELECT secret FROM ' || tab INTO n; RETURN n; END $$;
             CREATE FUNCTION public.{t}_dcopy() RETURNS void LANGUAGE plpgsql AS $$
               BEGIN EXECUTE 'INSERT INTO public.{t}_kept SELECT secret FROM public.{t}'; END $$;
             CREATE FUNCTION public.{t}_keep(v text) RETURNS void LANGUAGE sql
               AS 'INSERT INTO public.{t}_kept VALUES (v)';
             CREATE FUNCTION public.{t}_copy() RETURNS void LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO public.{t}_kept SELECT secret FROM public.{t}; END $$;
             CREATE PROCEDURE public.{t}_pcopy() LANGUAGE sql
               AS 'INSERT INTO public.{t}_kept SELECT secret FROM public.{t}';
             CREATE FUNCTION public.{t}_acc(state text, v text) RETURNS text LANGUAGE plpgsql AS $$
               BEGIN RETURN coalesce(state, '') || v || (SELECT secret FROM public.{t} LIMIT 1); END $$;
             CREATE AGGREGATE public.{t}_agg(text) (sfunc = public.{t}_acc, stype = text);
             CREATE FUNCTION public.{t}_opfn(a int, b int) RETURNS text LANGUAGE sql
               AS 'SELECT secret FROM public.{t} LIMIT 1';
             CREATE SCHEMA {t}_ops;
             CREATE OPERATOR {t}_ops.#~# (LEFTARG = int, RIGHTARG = int, FUNCTION = public.{t}_opfn);
             CREATE OPERATOR {t}_ops.+~+ (LEFTARG = int, RIGHTARG = int, FUNCTION = pg_catalog.int4pl);
             CREATE VIEW public.{t}_vop AS SELECT 1 OPERATOR({t}_ops.#~#) 2 AS x;
             CREATE VIEW public.{t}_vplus AS SELECT 1 OPERATOR({t}_ops.+~+) 2 AS x;
             CREATE TYPE public.{t}_ty AS (v text);
             CREATE FUNCTION public.{t}_tocast(i int) RETURNS public.{t}_ty LANGUAGE sql
               AS 'SELECT ROW(secret)::public.{t}_ty FROM public.{t} LIMIT 1';
             CREATE VIEW public.{t}_vshout AS SELECT id, {t}_shout(name) AS loud FROM public.{t};
             CREATE VIEW public.{t}_vleak AS SELECT id, {t}_leak(id) AS contact FROM public.{t}_plain;"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"masks": [{"columns": [format!("public.{t}.secret")], "method": "redact"}]}),
    )
    .await;
    let psql = |q: &str| psql_as(&s, &agent, q);
    // Harmless functions: their results come back as they are.
    for (q, want) in [
        (format!("SELECT {t}_shout('hi')"), "HI!"),
        (format!("SELECT {t}_shout(name) FROM {t}"), "ANN!"),
        (format!("SELECT {t}_note(1)"), "NOTE1!"),
        (format!("SELECT {t}_std(1)"), "note1"),
        (format!("SELECT * FROM {t}_note(1)"), "NOTE1!"),
        (format!("SELECT loud FROM {t}_vshout"), "ANN!"),
        (format!("SELECT id, loud FROM {t}_vshout"), "1|ANN!"),
        (format!("SELECT {t}_keep('plain')"), ""),
        // An extension's compiled functions declared immutable (citext's
        // max(citext) is an aggregate over one), whose names built-ins share.
        (format!("SELECT max(name) FROM {t}"), "ann"),
        (format!("SELECT max(name::citext) FROM {t}"), "ann"),
        // An operator over a built-in function, in a statement and a view.
        (format!("SELECT 1 OPERATOR({t}_ops.+~+) 2"), "3"),
        (format!("SELECT x FROM {t}_vplus"), "3"),
    ] {
        assert_eq!(psql(&q), (want.to_string(), String::new()), "{q}");
    }
    // Functions that may return masked data: masked.
    for q in [
        format!("SELECT {t}_leak(1)"),
        format!("SELECT {t}_nested(1)"),
        format!("SELECT {t}_viaview()"),
        format!("SELECT {t}_std_leak(1)"),
        format!("SELECT {t}_shout(secret) FROM {t}"),
        format!("SELECT contact FROM {t}_vleak"),
        format!("SELECT id, contact FROM {t}_vleak"),
        format!("SELECT {t}_agg(note) FROM {t}_plain"),
        // An operator runs a function too.
        format!("SELECT 1 OPERATOR({t}_ops.#~#) 2"),
        format!("SET search_path = {t}_ops, public; SELECT 1 #~# 2"),
        format!("SELECT x FROM {t}_vop"),
        format!("SELECT x || '' FROM {t}_vop"),
    ] {
        let (out, err) = psql(&q);
        assert!(
            !out.contains("hunter2") && !out.contains("HUNTER2"),
            "{q}: {out} {err}"
        );
        assert!(out.contains("[REDACTED]"), "{q} is masked: {out} {err}");
    }
    // Functions that store what they are given or read: refused masked data.
    for q in [
        format!("SELECT {t}_keep(secret) FROM {t}"),
        format!("SELECT {t}_keep(secret) FROM {t}_v"),
        format!("SELECT {t}_copy()"),
        format!("CALL {t}_pcopy()"),
        // One whose doings cannot be read may store what it is given.
        format!("SELECT {t}_dynamic(secret) FROM {t}"),
        // One that runs SQL built at run time may copy masked data by
        // itself, whatever it is given.
        format!("SELECT {t}_dynamic('{t}')"),
        format!("SELECT {t}_dcopy()"),
        // A row-level security policy's expression runs on every row read.
        // Refused on a masked table whatever it calls.
        format!("CREATE POLICY {t}_q ON {t} USING (true)"),
        format!("ALTER POLICY {t}_q ON {t} USING (secret IS NULL)"),
    ] {
        let (out, err) = psql(&q);
        assert!(
            err.contains("rule: masking") && err.contains(&t),
            "{q} is refused: {out} {err}"
        );
    }
    // An extension's compiled function that runs SQL given as text, here
    // on a connection back to this database.
    let (out, err) = psql(&format!(
        "SELECT dblink_exec('host=127.0.0.1 user=postgres dbname={t} sslmode=disable', \
         'INSERT INTO public.{t}_kept SELECT secret FROM public.{t}')"
    ));
    assert!(
        err.contains("rule: masking") && err.contains("calling dblink_exec is not allowed"),
        "{out} {err}"
    );
    assert_eq!(
        rows(
            &direct,
            &format!("SELECT v FROM public.{t}_kept ORDER BY v")
        )
        .await,
        vec![vec![Some("plain".to_string())]],
        "only the unmasked value was kept"
    );
    // `policy test` reads the functions as the proxy does.
    for (sql, want) in [
        (format!("SELECT {t}_keep(secret) FROM {t}"), "deny masking"),
        (format!("SELECT {t}_keep('plain')"), "allow"),
    ] {
        let (status, v) = s
            .post(
                "/v1/policy/test",
                &s.admin,
                json!({"as": "agents", "connection": "shop", "sql": sql}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let verdict = &v["decision"]["verdict"];
        let got = format!(
            "{} {}",
            verdict["action"].as_str().unwrap_or(""),
            verdict["rule"].as_str().unwrap_or("")
        );
        assert_eq!(got.trim(), want, "{sql}: {v}");
    }
    // A cast runs a function without a call in the statement (so does an
    // implicit one): once the database has a cast whose function reads a
    // masked table, computed columns are masked in every statement.
    assert_eq!(psql(&format!("SELECT {t}_shout('hi')")).0, "HI!");
    direct
        .batch_execute(&format!(
            "CREATE CAST (int AS public.{t}_ty) WITH FUNCTION public.{t}_tocast(int)"
        ))
        .await
        .unwrap();
    // (Through Gatehouse, so that its look-ups are taken again.)
    assert_eq!(psql(&format!("CREATE TEMP TABLE {t}_x (i int)")).1, "");
    for q in [
        format!("SELECT 1::{t}_ty"),
        format!("SELECT CAST(1 AS {t}_ty)"),
        format!("SELECT {t}_shout('hi')"),
    ] {
        let (out, err) = psql(&q);
        assert!(!out.contains("hunter2"), "{q}: {out} {err}");
        // (A composite is masked as NULL.)
        assert!(
            err.is_empty() && (out.contains("[REDACTED]") || out.is_empty()),
            "{q} is masked: {out} {err}"
        );
    }
    // A domain's constraint that keeps what it checks: refused masked data.
    direct
        .batch_execute(&format!(
            "DROP CAST (int AS public.{t}_ty);
             CREATE FUNCTION public.{t}_keepb(v text) RETURNS boolean LANGUAGE sql
               AS 'INSERT INTO public.{t}_kept VALUES (v) RETURNING true';
             CREATE DOMAIN public.{t}_dom AS text CHECK (public.{t}_keepb(VALUE))"
        ))
        .await
        .unwrap();
    assert_eq!(psql(&format!("CREATE TEMP TABLE {t}_y (i int)")).1, "");
    let (out, err) = psql(&format!("SELECT secret::{t}_dom FROM {t}"));
    assert!(err.contains("rule: masking"), "{out} {err}");
    assert_eq!(
        psql(&format!("SELECT 'kept'::{t}_dom")),
        ("kept".to_string(), String::new())
    );
    drop(direct);
    drop(s);
    let _ = connect(DIRECT)
        .await
        .batch_execute(&format!("DROP DATABASE {t} WITH (FORCE)"))
        .await;
}
