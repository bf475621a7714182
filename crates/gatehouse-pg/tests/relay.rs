//! The relay with a policy that refuses any statement mentioning
//! `forbidden`. Refused statements: the client gets Gatehouse's error
//! (42501, naming the rule) exactly where it expects one, an open
//! transaction is aborted as PostgreSQL would abort it, pipelined neighbours
//! are unaffected, and the refusal is recorded. Recording: each statement's
//! first rows are kept as the client received them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::keyring::{Keyring, SharedKeyring};
use gatehouse_core::model::{ConnectionKind, ConnectionSettings, ConnectionSpec};
use gatehouse_core::policy::spec::{Action, PolicySpec, RuleSpec};
use gatehouse_core::token::{generate_token, token_hash};
use gatehouse_identity::Authenticator;
use gatehouse_pg::{LiveSessions, PgProxy};
use gatehouse_policy::{Engine, FixedPolicy};
use gatehouse_store::recorder::Recorder;
use gatehouse_store::{
    ConnectionRecord, SessionFilter, SessionRecord, StatementRecord, Store, TokenRecord,
};
use tokio_postgres::NoTls;

/// The policy engine with one rule: statements mentioning `forbidden` are denied.
fn refuse_forbidden() -> Arc<FixedPolicy> {
    let spec = PolicySpec {
        rules: vec![RuleSpec {
            name: "no-forbidden".into(),
            pattern: Some("(?i)forbidden".into()),
            action: Action::Deny,
            message: Some(
                "statements about forbidden things are refused; it's $$ and 'quotes' proof".into(),
            ),
            ..Default::default()
        }],
        ..Default::default()
    };
    Arc::new(FixedPolicy(Arc::new(Engine::new(spec).unwrap())))
}

struct Gw {
    url: String,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn gateway() -> Gw {
    gateway_with(gatehouse_store::recorder::IN_FLIGHT).await
}

async fn gateway_with(record_limit: usize) -> Gw {
    gateway_opts(record_limit, false).await
}

async fn gateway_opts(record_limit: usize, record_fail_open: bool) -> Gw {
    gateway_to(
        "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
        record_limit,
        record_fail_open,
    )
    .await
}

/// A gateway whose connection `shop` logs in to the test database as `role`.
async fn gateway_as(role: &str) -> Gw {
    gateway_to(
        &format!("postgres://{role}@127.0.0.1:5432/test?sslmode=disable"),
        gatehouse_store::recorder::IN_FLIGHT,
        false,
    )
    .await
}

/// A gateway whose connection `shop` is to the upstream at `url`.
async fn gateway_to(url: &str, record_limit: usize, record_fail_open: bool) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("state.db"))
        .await
        .unwrap();
    let keys = SharedKeyring::new(Keyring::parse(Keyring::generate_key().expose()).unwrap());
    let token = generate_token();
    store
        .insert_token(&TokenRecord {
            name: "bot".into(),
            hash: token_hash(token.expose()),
            groups: vec!["agents".into()],
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    store
        .insert_connection(&ConnectionRecord {
            spec: ConnectionSpec {
                name: "shop".into(),
                kind: ConnectionKind::Postgres,
                url: url.into(),
                groups: vec!["agents".into()],
                settings: ConnectionSettings::default(),
            },
            secret: None,
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();
    let (recorder, _) = Recorder::with_limit(store.clone(), record_limit);
    let proxy = Arc::new(PgProxy {
        store: store.clone(),
        auth: Authenticator::new(store.clone(), None),
        keys,
        recorder,
        policy: refuse_forbidden(),
        catalog: Default::default(),
        tls: None,
        allow_plaintext_remote: false,
        max_message: gatehouse_pg::DEFAULT_MAX_MESSAGE,
        sessions: LiveSessions::default(),
        access: gatehouse_access::Access::new(
            store.clone(),
            gatehouse_access::audit::Auditor::new(store.clone()),
            None,
        ),
        record_fail_open,
        remote_cancels: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = gatehouse_pg::workers::Workers::start("test-session", 1).unwrap();
    tokio::spawn(gatehouse_pg::serve(
        proxy,
        workers,
        listener,
        std::future::pending(),
    ));
    Gw {
        url: format!(
            "postgresql://bot:{}@{}:{}/shop",
            token.expose(),
            addr.ip(),
            addr.port()
        ),
        store,
        _dir: dir,
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

fn refused(e: &tokio_postgres::Error) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("expected a database error, got {e:?}"));
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().starts_with("Gatehouse refused this statement"),
        "{}",
        db.message()
    );
    assert!(
        db.message().contains("$$ and 'quotes' proof"),
        "{}",
        db.message()
    );
    assert_eq!(db.detail(), Some("rule: no-forbidden"));
}

#[tokio::test]
async fn simple_and_extended_refusals_arrive_in_order() {
    let gw = gateway().await;
    let c = connect(&gw.url).await;
    refused(&c.simple_query("SELECT 'forbidden'").await.unwrap_err());
    assert_eq!(
        c.query_one("SELECT 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    // Extended protocol with parameters.
    refused(
        &c.query("SELECT $1::text AS forbidden", &[&"x"])
            .await
            .unwrap_err(),
    );
    // Pipelined: the neighbours of a refused statement are answered normally.
    let (a, b, d) = tokio::join!(
        c.query_one("SELECT 10::int", &[]),
        c.query_one("SELECT 20::int AS forbidden", &[]),
        c.query_one("SELECT 30::int", &[]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 10);
    refused(&b.unwrap_err());
    assert_eq!(d.unwrap().get::<_, i32>(0), 30);
}

#[tokio::test]
async fn a_refusal_inside_a_transaction_aborts_it() {
    let gw = gateway().await;
    let direct = connect("postgres://postgres@127.0.0.1:5432/test").await;
    let t = format!("gh_refuse_{}", std::process::id());
    direct
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (v int)"
        ))
        .await
        .unwrap();
    let c = connect(&gw.url).await;
    for extended in [false, true] {
        c.batch_execute("BEGIN").await.unwrap();
        c.batch_execute(&format!("INSERT INTO {t} VALUES (1)"))
            .await
            .unwrap();
        let e = if extended {
            c.query("SELECT $1::int AS forbidden", &[&1i32])
                .await
                .unwrap_err()
        } else {
            c.batch_execute("SELECT 'forbidden'").await.unwrap_err()
        };
        refused(&e);
        let e = c.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(
            e.as_db_error()
                .map(|d| d.code().code().to_string())
                .as_deref(),
            Some("25P02"),
            "extended: {extended}"
        );
        // COMMIT of an aborted transaction rolls back, as on PostgreSQL itself.
        c.batch_execute("COMMIT").await.unwrap();
        let n: i64 = direct
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n, 0,
            "the insert before the refused statement must not be committed (extended: {extended})"
        );
    }
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

/// The latest session in the store and its statements so far.
async fn latest_session(gw: &Gw) -> Option<(SessionRecord, Vec<StatementRecord>)> {
    let sessions = gw
        .store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    gw.store.get_session(&sessions.first()?.id).await.unwrap()
}

/// The statements of the gateway's latest session, once it has ended.
async fn recorded(gw: &Gw) -> Vec<StatementRecord> {
    let started = std::time::Instant::now();
    loop {
        if let Some((s, statements)) = latest_session(gw).await
            && s.ended_at.is_some()
        {
            return statements;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session that goes quiet has its records stored while it stays open
/// (they wait in the session for half a second at most), after every
/// quiet spell: the relay registers with its flush timer once per arming,
/// not at every wake-up, and must register again after it fired.
#[tokio::test]
async fn records_of_an_open_quiet_session_are_stored() {
    let gw = gateway().await;
    let c = connect(&gw.url).await;
    for (n, sql) in [(1, "SELECT 1 AS first"), (2, "SELECT 2 AS second")] {
        c.simple_query(sql).await.unwrap();
        let started = std::time::Instant::now();
        loop {
            if let Some((s, statements)) = latest_session(&gw).await {
                assert!(s.ended_at.is_none(), "the session ended");
                if statements.len() == n {
                    assert_eq!(statements[n - 1].sql, sql);
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "statement {n} was not stored while its session stayed open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(c);
}

#[tokio::test]
async fn results_are_recorded_as_the_client_received_them() {
    let gw = gateway().await;
    {
        let c = connect(&gw.url).await;
        // Text format (simple query), several statements in one query.
        c.simple_query("SELECT 'a\"b' AS q, NULL AS z; SELECT g FROM generate_series(1, 3) g")
            .await
            .unwrap();
        // Binary format (tokio-postgres asks for it, after describing the
        // statement in a batch of its own): written as the server writes
        // each type as text, not taken for text where the bytes happen to
        // be UTF-8 (the int 7 is "\0\0\0\u{7}"); a type not rendered
        // (a money value here) is kept as hex.
        let rows = c
            .query(
                "SELECT $1::int AS n, 'x'::text AS t, NULL::int AS z, '\\x0102'::bytea AS b, ARRAY[1] AS a, 12.5::money AS p",
                &[&7i32],
            )
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 7);
        c.simple_query("SELECT 1 WHERE false").await.unwrap();
    }
    let stmts = recorded(&gw).await;
    let rows = |i: usize| stmts[i].result.clone().unwrap_or_default();
    let text = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(stmts.len(), 3, "{stmts:?}");
    // A query of two statements is one record: the rows of both, the last tag.
    assert_eq!(
        rows(0),
        vec![
            vec![Some("a\"b".to_string()), None],
            text(&["1"]),
            text(&["2"]),
            text(&["3"])
        ]
    );
    assert_eq!(stmts[0].command.as_deref(), Some("SELECT 3"));
    let row = &rows(1)[0];
    assert_eq!(row[0].as_deref(), Some("7"));
    assert_eq!(row[1].as_deref(), Some("x"));
    assert_eq!(row[2], None);
    assert_eq!(row[3].as_deref(), Some("\\x0102"));
    assert_eq!(
        row[4].as_deref(),
        Some("{1}"),
        "an int[] in binary is rendered"
    );
    assert!(
        row[5].as_deref().is_some_and(|a| a.starts_with("\\x")),
        "money in binary is kept as hex: {row:?}"
    );
    assert_eq!(
        stmts[1].columns.as_deref(),
        Some(&["n", "t", "z", "b", "a", "p"].map(String::from)[..]),
        "the columns come from the statement's description"
    );
    assert_eq!(stmts[1].command.as_deref(), Some("SELECT 1"));
    assert_eq!(stmts[1].rows, Some(1));
    assert!(stmts[2].result.is_none());
    assert_eq!(stmts[2].rows, Some(0));
}

/// The values bound to a statement's parameters are recorded with it:
/// tokio-postgres sends them in binary, and they are written as PostgreSQL
/// writes each type as text (the types from the statement's description),
/// NULL as null; a long one is cut at the sample's size and marked; a
/// statement bound without parameters has none.
#[tokio::test]
async fn bound_parameters_are_recorded_with_their_statement() {
    let gw = gateway().await;
    let long = "x".repeat(20_000);
    {
        let c = connect(&gw.url).await;
        c.simple_query("SET TimeZone = 'UTC'").await.unwrap();
        let rows = c
            .query(
                "SELECT $1::int4 AS n, $2::text AS t, $3::int4 AS z, $4::bytea AS b, $5::bool AS f, $6::float8 AS d, $7::int8[] AS a",
                &[
                    &42i32,
                    &"it's \"é\"",
                    &None::<i32>,
                    &vec![1u8, 255u8],
                    &true,
                    &1.5f64,
                    &vec![Some(1i64), None],
                ],
            )
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 42);
        let n: i32 = c
            .query_one("SELECT length($1::text)", &[&long])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 20_000);
        c.query("SELECT 1 AS one", &[]).await.unwrap();
    }
    let stmts = recorded(&gw).await;
    assert_eq!(stmts.len(), 4, "{stmts:?}");
    assert_eq!(stmts[0].params, None, "a simple query binds nothing");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        stmts[1].params,
        Some(vec![
            text("42"),
            text("it's \"é\""),
            None,
            text("\\x01ff"),
            text("t"),
            text("1.5"),
            text("{1,NULL}"),
        ])
    );
    assert!(!stmts[1].params_truncated);
    let kept = stmts[2].params.clone().unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0]
            .as_deref()
            .is_some_and(|v| v.len() == 16 * 1024 && v.bytes().all(|b| b == b'x')),
        "the first 16 KiB of the long value are kept"
    );
    assert!(stmts[2].params_truncated);
    assert_eq!(stmts[3].params, None, "bound without parameters");
    assert!(!stmts[3].params_truncated);
}

/// A parameter value sent as these bytes, in binary, whatever its type.
#[derive(Debug)]
struct RawBinary(Vec<u8>);

impl tokio_postgres::types::ToSql for RawBinary {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Parameters of types created in the database (an enum, a domain, a row
/// type) bound in binary are recorded as text, as their results are: the
/// gateway looks their types up when the server describes the statement's
/// parameters, before any result has had them.
#[tokio::test]
async fn binary_parameters_of_types_created_in_the_database_are_recorded_as_text() {
    let gw = gateway().await;
    let direct = connect("postgres://postgres@127.0.0.1:5432/test").await;
    let s = format!("gh_ptypes_{}", std::process::id());
    direct
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s};
             CREATE TYPE {s}.mood AS ENUM ('happy', 'so so');
             CREATE DOMAIN {s}.positive AS int CHECK (VALUE > 0);
             CREATE TYPE {s}.pt AS (n int, note text);"
        ))
        .await
        .unwrap();
    let sql = format!(
        "SELECT $1::{s}.mood::text AS m, $2::{s}.positive::int AS p, $3::{s}.pt::text AS r"
    );
    // A row of two fields: int4 7 and text 'a b'.
    let mut row = vec![0, 0, 0, 2, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0, 0, 7];
    row.extend_from_slice(&[0, 0, 0, 25, 0, 0, 0, 3]);
    row.extend_from_slice(b"a b");
    {
        let c = connect(&gw.url).await;
        let got = c
            .query_one(
                &sql,
                &[
                    &RawBinary(b"so so".to_vec()),
                    &RawBinary(7i32.to_be_bytes().to_vec()),
                    &RawBinary(row),
                ],
            )
            .await
            .unwrap();
        assert_eq!(got.get::<_, String>(0), "so so");
        assert_eq!(got.get::<_, i32>(1), 7);
        assert_eq!(got.get::<_, String>(2), "(7,\"a b\")");
    }
    let stmts = recorded(&gw).await;
    direct
        .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .unwrap();
    let ours: Vec<_> = stmts.iter().filter(|x| x.sql == sql).collect();
    assert_eq!(ours.len(), 1, "{stmts:?}");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        ours[0].params,
        Some(vec![text("so so"), text("7"), text("(7,\"a b\")")])
    );
}

/// Values that came in binary are recorded as the server writes them as
/// text: the same statement's text-format result (a simple query, through
/// the gateway) is the oracle.
#[tokio::test]
async fn binary_results_are_recorded_as_the_server_writes_them_as_text() {
    let gw = gateway().await;
    let sql = "SELECT true AS b, 7::int2 AS s, -8::int4 AS i, 9000000000::int8 AS l, 42::oid AS o, \
               'héllo'::text AS t, 'v'::varchar AS v, 'c'::char(3) AS bp, 'nm'::name AS nm, \
               1.5::float8 AS f8, 0.1::float4 AS f4, 1e20::float8 AS big, 0.00001::float8 AS small, \
               1234567::float4 AS f4big, 'NaN'::float8 AS fnan, \
               123456.789::numeric(12,4) AS n, -0.00012::numeric AS n2, 'NaN'::numeric AS nn, \
               10000::numeric AS n3, 0::numeric(5,2) AS n4, \
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '2024-02-29'::date AS d, \
               'infinity'::date AS dinf, '2024-02-29 13:14:15.5'::timestamp AS ts, \
               '1999-12-31 23:59:59.999999+00'::timestamptz AS tz, '12:34:56.000001'::time AS tm, \
               '{\"a\": [1, 2]}'::jsonb AS jb, '{\"a\":1}'::json AS j, \
               'c'::\"char\" AS ch, ''::\"char\" AS ch0, \
               '{1,NULL,3}'::int[] AS ai, '{{a,b},{\"c d\",\"\"}}'::text[] AS at2, \
               '[0:1]={1.5,2}'::float8[] AS af, ARRAY['\\x0102'::bytea] AS ab, '{}'::int[] AS ae, \
               ARRAY['{\"a\": 1}'::jsonb, NULL] AS ajb, ARRAY['2024-01-01'::date] AS ad, \
               '1 year 2 mons -3 days 04:05:06.5'::interval AS iv, '-1 days +02:00'::interval AS iv2, \
               '0'::interval AS iv0, '-00:00:01.25'::interval AS iv3, \
               '10.1.2.3/24'::inet AS ip, '10.1.2.3'::inet AS ip32, '::ffff:1.2.3.4'::inet AS ip6, \
               '2001:db8::1:0:0:1'::inet AS ip6b, '2001:db8::/32'::cidr AS cd, '10.0.0.0/8'::cidr AS cd4, \
               '08:00:2b:01:02:03'::macaddr AS mac, '08:00:2b:01:02:03:04:05'::macaddr8 AS mac8, '12:00:00+05:30'::timetz AS ttz, \
               '23:59:59.5-08'::timetz AS ttz2, B'10110'::varbit AS vb, B'101'::bit(3) AS bt, \
               '\\x01ff'::bytea AS by, int4range(1, 10) AS r4, '(,5]'::int8range AS r8, \
               'empty'::int4range AS re, '[1.5,2.25]'::numrange AS rn, \
               tsrange('2024-01-01 10:00', '2024-01-02') AS rts, '[2024-01-01,)'::daterange AS rd, \
               ARRAY[int4range(1, 3)] AS ar, point(1.5, -2) AS pt, '[(0,0),(1,1)]'::lseg AS ls, \
               '(1,1),(0,0)'::box AS bx, '[(0,0),(1,1),(2,0)]'::path AS po, '((0,0),(1,1))'::path AS pc, \
               '((0,0),(1,1),(1,0))'::polygon AS pg, '{1,-1,0}'::line AS ln, '<(1,2),3.5>'::circle AS ci, \
               ARRAY[point(0.1, 2)] AS ap, '{[1,3),[5,7)}'::int4multirange AS mr, \
               '{}'::int8multirange AS mre, nummultirange(numrange(1.5, 2), numrange(3, NULL)) AS mrn, \
               '{[2024-01-01,2024-02-01)}'::datemultirange AS mrd, \
               tstzmultirange(tstzrange('2024-01-01 00:00+00', '2024-01-02 00:00+00')) AS mrz, \
               ARRAY['{[1,2)}'::int4multirange] AS amr, \
               ROW(1, 'a b', NULL, '', 'x\"y\\z', 2.5::numeric, ARRAY[1, 2], int4range(1, 5)) AS rec, \
               ROW() AS rec0, ARRAY[ROW(1, 'z,')] AS arec";
    {
        let c = connect(&gw.url).await;
        // A fixed zone whatever the server's default (other zones are
        // checked by binary_timestamptz_is_recorded_in_the_session_time_zone).
        c.simple_query("SET TimeZone = 'UTC'").await.unwrap();
        c.simple_query(sql).await.unwrap();
        c.query(sql, &[]).await.unwrap();
    }
    let stmts = recorded(&gw).await;
    let text = stmts[1].result.clone().unwrap();
    let binary = stmts[2].result.clone().unwrap();
    assert_eq!(stmts[2].sql, sql);
    let names = stmts[2].columns.clone().unwrap();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            binary[0][i], text[0][i],
            "column {name}: recorded from binary {:?}, the server's text {:?}",
            binary[0][i], text[0][i]
        );
    }
    assert_eq!(names.len(), 79);
}

/// Long values that came in binary are recorded as text too, up to the
/// result sample's size (16 KiB); a longer one is kept as the hex of its
/// first 256 bytes and the result is marked truncated.
#[tokio::test]
async fn long_binary_values_are_recorded_as_text_up_to_the_sample_size() {
    let gw = gateway().await;
    let sql = "SELECT repeat('héllo, ', 200) AS t, array(SELECT g FROM generate_series(1, 300) g) AS a, \
               decode(repeat('ab', 1500), 'hex') AS b, '1e1000'::numeric AS n, \
               repeat('x', 20000) AS over";
    {
        let c = connect(&gw.url).await;
        c.simple_query(sql).await.unwrap();
        let rows = c.query(sql, &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, String>(4).len(), 20000);
    }
    let stmts = recorded(&gw).await;
    let (text, binary) = (&stmts[0], &stmts[1]);
    assert_eq!(binary.sql, sql);
    let (t, b) = (text.result.clone().unwrap(), binary.result.clone().unwrap());
    for (i, name) in ["t", "a", "b", "n"].iter().enumerate() {
        let v = b[0][i].as_deref().unwrap_or_default();
        assert!(v.len() > 1000, "column {name} is long: {} bytes", v.len());
        assert_eq!(
            b[0][i], t[0][i],
            "column {name}: binary and the server's text"
        );
    }
    assert!(!text.result_truncated, "the text result was kept whole");
    let over = b[0][4].as_deref().unwrap_or_default();
    assert_eq!(
        over,
        format!("\\x{}", "78".repeat(256)),
        "the hex of the first 256 bytes"
    );
    assert!(
        binary.result_truncated,
        "a value kept in part marks the result truncated"
    );
}

/// Binary values of types created in the database (an enum, a composite
/// type, a domain, arrays of these, citext from its extension) are recorded
/// as the server writes them as text: the gateway asks the upstream's
/// catalog what each type is. So is hstore, whose binary layout is its
/// own; a composite inside a composite stays hex.
#[tokio::test]
async fn binary_values_of_types_created_in_the_database_are_recorded_as_text() {
    let gw = gateway().await;
    let direct = connect("postgres://postgres@127.0.0.1:5432/test").await;
    let s = format!("gh_types_{}", std::process::id());
    direct
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS hstore;
             DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s};
             CREATE TYPE {s}.mood AS ENUM ('happy', 'so so', 'sad');
             CREATE TYPE {s}.pair AS (m {s}.mood, n int, note text, tags citext[]);
             CREATE DOMAIN {s}.moods AS {s}.mood[];
             CREATE DOMAIN {s}.positive AS int CHECK (VALUE > 0);
             CREATE DOMAIN {s}.feeling AS {s}.mood;"
        ))
        .await
        .unwrap();
    let sql = format!(
        "SELECT 'so so'::{s}.mood AS m, ARRAY['happy', 'sad']::{s}.mood[] AS ms, \
         ROW('sad', 7, 'a b', ARRAY['X y'])::{s}.pair AS p, \
         ARRAY[ROW('happy', 1, NULL, NULL)::{s}.pair] AS ps, ARRAY['happy']::{s}.moods AS dm, \
         5::{s}.positive AS pos, 'sad'::{s}.feeling AS f, ARRAY['sad'::{s}.feeling] AS fs, \
         'MiXed Case'::citext AS ci, ARRAY['x'::citext, NULL] AS cis, \
         $$a=>1, b=>NULL, \"c d\"=>\"x\\\"y\"$$::hstore AS h, ARRAY['k=>v'::hstore] AS hs, \
         ROW(ROW('sad', 1, NULL, NULL)::{s}.pair) AS nest"
    );
    {
        let c = connect(&gw.url).await;
        c.simple_query(&sql).await.unwrap();
        c.query(&sql, &[]).await.unwrap();
    }
    let stmts = recorded(&gw).await;
    direct
        .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .unwrap();
    // tokio-postgres looked the types up through the gateway in between.
    let ours: Vec<_> = stmts.iter().filter(|x| x.sql == sql).collect();
    assert_eq!(ours.len(), 2);
    let text = ours[0].result.clone().unwrap();
    let binary = ours[1].result.clone().unwrap();
    let names = ours[1].columns.clone().unwrap();
    assert_eq!(names.len(), 13);
    for (i, name) in names.iter().enumerate().filter(|(_, n)| *n != "nest") {
        assert_eq!(
            binary[0][i], text[0][i],
            "column {name}: recorded from binary {:?}, the server's text {:?}",
            binary[0][i], text[0][i]
        );
    }
    assert!(
        binary[0][12]
            .as_deref()
            .is_some_and(|h| h.starts_with("\\x")),
        "a composite inside a composite is kept as hex: {:?}",
        binary[0][12]
    );
}

/// When the catalog cannot be read (here: the upstream role may hold one
/// connection, the session's own), values of types created in the
/// database are recorded as hex, and the statement runs as usual.
#[tokio::test]
async fn values_of_types_the_catalog_cannot_tell_are_recorded_as_hex() {
    let direct = connect("postgres://postgres@127.0.0.1:5432/test").await;
    let name = format!("gh_one_conn_{}", std::process::id());
    direct
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; DROP ROLE IF EXISTS {name};
             CREATE ROLE {name} LOGIN CONNECTION LIMIT 1; CREATE SCHEMA {name};
             CREATE TYPE {name}.mood AS ENUM ('sad', 'happy');
             GRANT USAGE ON SCHEMA {name} TO {name};"
        ))
        .await
        .unwrap();
    let gw = gateway_as(&name).await;
    let sql = format!("SELECT 'sad'::{name}.mood AS m, 7 AS n");
    {
        let c = connect(&gw.url).await;
        let rows = c.query(&sql, &[]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(1), 7);
    }
    let stmts = recorded(&gw).await;
    direct
        .batch_execute(&format!(
            "DROP SCHEMA {name} CASCADE; DROP OWNED BY {name}; DROP ROLE {name}"
        ))
        .await
        .unwrap();
    let ours = stmts.iter().find(|x| x.sql == sql).unwrap();
    let result = ours.result.clone().unwrap();
    assert_eq!(result[0][0].as_deref(), Some("\\x736164"));
    assert_eq!(result[0][1].as_deref(), Some("7"));
}

/// Runs `sql` through the gateway as a new upstream role named after `tag`,
/// with `settings` (`ALTER ROLE … SET` each), in text (a simple query) and
/// in binary (tokio-postgres), at the start of the session and after each
/// of `sets`; checks that every binary value was recorded as the server
/// wrote the same value as text. Returns the first binary row (under the
/// role's settings).
async fn binary_recorded_as_text_under(
    tag: &str,
    settings: &[&str],
    sql: &str,
    sets: &[String],
) -> Vec<Option<String>> {
    let direct = connect("postgres://postgres@127.0.0.1:5432/test").await;
    let role = format!("gh_{tag}_{}", std::process::id());
    let alter: String = settings
        .iter()
        .map(|s| format!("ALTER ROLE {role} SET {s};"))
        .collect();
    direct
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; {alter}"
        ))
        .await
        .unwrap();
    let gw = gateway_as(&role).await;
    let rounds: Vec<Option<&String>> = std::iter::once(None).chain(sets.iter().map(Some)).collect();
    {
        let c = connect(&gw.url).await;
        for set in &rounds {
            if let Some(set) = set {
                c.batch_execute(set).await.unwrap();
            }
            c.simple_query(sql).await.unwrap();
            c.query(sql, &[]).await.unwrap();
        }
    }
    let stmts = recorded(&gw).await;
    direct
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    let ours: Vec<_> = stmts.iter().filter(|x| x.sql == sql).collect();
    assert_eq!(ours.len(), 2 * rounds.len());
    for (pair, set) in ours.chunks(2).zip(&rounds) {
        let text = pair[0].result.clone().unwrap();
        let binary = pair[1].result.clone().unwrap();
        let names = pair[1].columns.clone().unwrap();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                binary[0][i], text[0][i],
                "{set:?}, column {name}: recorded from binary {:?}, the server's text {:?}",
                binary[0][i], text[0][i]
            );
        }
    }
    ours[1].result.clone().unwrap().swap_remove(0)
}

/// Dates, times and intervals that come in binary are recorded in the
/// session's `DateStyle` and `IntervalStyle`, as the server writes them as
/// text: the styles the server reports at the start (here from the
/// upstream role's settings) and each one a `SET` changes them to, in
/// several time zones.
#[tokio::test]
async fn binary_dates_and_intervals_are_recorded_in_the_session_styles() {
    let sql = "SELECT '2024-02-29 12:14:15.5+00'::timestamptz AS a, \
               '1900-01-01 00:00+00'::timestamptz AS b, '2024-07-07 00:00+00'::timestamptz AS c, \
               '2024-02-29'::date AS d, '2024-12-31 23:59:59.999999'::timestamp AS e, \
               ARRAY['2024-01-01 00:00+00'::timestamptz, NULL] AS f, ARRAY['2024-03-01'::date] AS g, \
               tstzrange('2024-01-01 00:00+00', '2024-06-01 00:00+00') AS h, \
               daterange('2024-01-01', '2024-02-01') AS i, 'infinity'::date AS j, \
               make_interval(1, 2, 0, -3, 4, 5, 6.5) AS k, make_interval(days => -1, hours => 2) AS l, \
               make_interval() AS m, make_interval(months => -11) AS n, \
               make_interval(days => -3, hours => -4, mins => -5, secs => -6) AS o, \
               make_interval(years => 1, secs => -0.000005) AS p, \
               ARRAY[make_interval(secs => -1.25), make_interval(hours => 100)] AS q, \
               '0044-03-15 BC'::date AS r, '0044-03-15 12:00+00 BC'::timestamptz AS s, \
               '0001-01-01 00:00 BC'::timestamp AS t, '12345-06-07'::date AS u";
    let sets = [
        ("Europe/Paris", "SQL, DMY", "postgres"),
        ("Europe/Paris", "SQL, MDY", "postgres_verbose"),
        ("America/New_York", "Postgres, MDY", "sql_standard"),
        ("Asia/Kolkata", "Postgres, DMY", "iso_8601"),
        ("GMT", "German", "postgres_verbose"),
        ("<+03>-03", "SQL, DMY", "sql_standard"),
        ("UTC", "ISO, DMY", "postgres"),
    ]
    .map(|(zone, style, intervals)| {
        format!(
            "SET TimeZone = '{zone}'; SET DateStyle = '{style}'; SET IntervalStyle = '{intervals}'"
        )
    });
    let first = binary_recorded_as_text_under(
        "ds",
        &["DateStyle = 'German'", "IntervalStyle = 'iso_8601'"],
        sql,
        &sets,
    )
    .await;
    assert_eq!(
        (first[3].as_deref(), first[10].as_deref()),
        (Some("29.02.2024"), Some("P1Y2M-3DT4H5M6.5S")),
        "the styles from the start of the session"
    );
}

/// `timestamptz` values that come in binary are recorded in the session's
/// time zone, as the server writes them as text: the zone the server
/// reports at the start (here from the upstream role's settings) and each
/// zone a `SET TimeZone` changes it to (an IANA name, a POSIX rule, or a
/// POSIX offset without a name, as PostgreSQL keeps `-03:30`: 3:30 east).
#[tokio::test]
async fn binary_timestamptz_is_recorded_in_the_session_time_zone() {
    let sql = "SELECT '2024-02-29 12:14:15.5+00'::timestamptz AS a, \
               '1900-01-01 00:00+00'::timestamptz AS b, '2024-07-01 00:00+00'::timestamptz AS c, \
               ARRAY['2024-01-01 00:00+00'::timestamptz, NULL] AS d, \
               tstzrange('2024-01-01 00:00+00', '2024-06-01 00:00+00') AS e, \
               '2024-02-29 12:14:15.5'::timestamp AS f";
    let sets = [
        "Europe/Paris",
        "America/St_Johns",
        "<+03>-03",
        "-03:30",
        "UTC+3",
    ]
    .map(|zone| format!("SET TimeZone = '{zone}'"));
    let first =
        binary_recorded_as_text_under("tz", &["timezone = 'Asia/Kolkata'"], sql, &sets).await;
    assert_eq!(
        first[0].as_deref(),
        Some("2024-02-29 17:44:15.5+05:30"),
        "the zone from the start of the session"
    );
}

#[tokio::test]
async fn refusals_are_recorded_with_their_rule() {
    let gw = gateway().await;
    {
        let c = connect(&gw.url).await;
        c.simple_query("SELECT 'forbidden'").await.unwrap_err();
        c.simple_query("SELECT 'fine'").await.unwrap();
    }
    let stmts = recorded(&gw).await;
    let denied = stmts
        .iter()
        .find(|x| x.sql == "SELECT 'forbidden'")
        .unwrap();
    assert_eq!(denied.decision, "deny");
    assert_eq!(denied.rule.as_deref(), Some("no-forbidden"));
    assert!(
        denied
            .error
            .as_deref()
            .unwrap_or_default()
            .starts_with("42501")
    );
    let fine = stmts.iter().find(|x| x.sql == "SELECT 'fine'").unwrap();
    assert_eq!(fine.decision, "allow");
    assert_eq!(fine.rows, Some(1));
}

#[tokio::test]
async fn statements_that_cannot_be_recorded_do_not_run() {
    // A recorder with no room: every statement would go unrecorded.
    let gw = gateway_with(0).await;
    let c = connect(&gw.url).await;
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("recorder is behind"),
        "{}",
        db.message()
    );
    let e = c.query("SELECT $1::int", &[&1i32]).await.unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("recorder is behind")
    );
}

#[tokio::test]
async fn failing_open_runs_statements_the_recorder_cannot_take() {
    // Configured to favour availability: the same full recorder lets
    // statements run (unrecorded, with a warning in the log).
    let gw = gateway_opts(0, true).await;
    let c = connect(&gw.url).await;
    let rows = c.query("SELECT $1::int", &[&7i32]).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 7);
}
