//! `upstream::connect` against the machine's real MariaDB (127.0.0.1:3306,
//! `root` with no password, database `test`). The tests create (and keep)
//! the account `gh_mysql_test`@`%` with password `secret-pw`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use gatehouse_core::secret::Secret;
use gatehouse_mysql::codec::{CLIENT_DEPRECATE_EOF, FieldType};
use gatehouse_mysql::upstream::{
    self, ConnectOptions, QueryResult, Target, Upstream, UpstreamError, UpstreamTls,
};

const USER: &str = "gh_mysql_test";
const PASSWORD: &str = "secret-pw";

fn target(user: &str) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port: 3306,
        user: user.into(),
    }
}

fn options(db: Option<&str>, extra: u32) -> ConnectOptions {
    ConnectOptions {
        database: db.map(str::to_string),
        capabilities: ConnectOptions::default().capabilities | extra,
        connect_attrs: vec![("program_name".into(), "gatehouse-test".into())],
        ..ConnectOptions::default()
    }
}

async fn root() -> Upstream {
    upstream::connect(&target("root"), &Secret::default(), None, &options(None, 0))
        .await
        .expect("root@127.0.0.1 without a password (is MariaDB running?)")
}

/// Creates the test account (idempotent; tests may run it concurrently).
async fn ensure_user() {
    let mut r = root().await;
    r.query(&format!(
        "CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
         ALTER USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON test.* TO '{USER}'@'%'"
    ))
    .await
    .expect("create the test account");
    r.quit().await.expect("quit");
}

fn text(r: &QueryResult) -> Vec<Vec<Option<String>>> {
    r.rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn logs_in_with_the_right_password_and_runs_a_query() {
    ensure_user().await;
    for extra in [0, CLIENT_DEPRECATE_EOF] {
        let mut up = upstream::connect(
            &target(USER),
            &Secret::new(PASSWORD),
            None,
            &options(Some("test"), extra),
        )
        .await
        .expect("login");
        assert!(
            up.server_version.contains("MariaDB"),
            "{}",
            up.server_version
        );
        assert_eq!(up.auth_plugin, "mysql_native_password");
        assert!(up.connection_id > 0);
        assert_eq!(up.capabilities & CLIENT_DEPRECATE_EOF, extra);
        assert!(!up.stream.is_tls());

        let results = up
            .query("SELECT 1 AS one, NULL AS nothing, DATABASE() AS db, CURRENT_USER() AS who")
            .await
            .expect("query");
        assert_eq!(results.len(), 1);
        let r = &results[0];
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one", "nothing", "db", "who"]);
        assert_eq!(r.columns[0].column_type, FieldType::Long as u8);
        assert_eq!(
            text(r),
            vec![vec![
                Some("1".to_string()),
                None,
                Some("test".to_string()),
                Some(format!("{USER}@%")),
            ]]
        );
        assert_eq!(
            r.ok.is_some(),
            extra != 0,
            "OK ends rows only with DEPRECATE_EOF"
        );

        // Several statements: several results, the last an OK.
        let results = up
            .query("SELECT 2; SELECT 'a' UNION ALL SELECT 'b'; DO 1")
            .await
            .expect("multi");
        assert_eq!(results.len(), 3);
        assert_eq!(text(&results[0]), vec![vec![Some("2".to_string())]]);
        assert_eq!(text(&results[1]).len(), 2);
        assert!(results[2].columns.is_empty() && results[2].ok.is_some());

        // A failing statement comes back as the server's error.
        let e = up
            .query("SELECT * FROM no_such_table_gh")
            .await
            .expect_err("fails");
        assert_eq!(e.code(), Some(1146), "{e}");
        // The session is still usable.
        let r = up.query("SELECT 3").await.expect("after error");
        assert_eq!(text(&r[0]), vec![vec![Some("3".to_string())]]);
        up.quit().await.expect("quit");
    }
}

#[tokio::test]
async fn a_wrong_password_is_error_1045_without_the_password() {
    ensure_user().await;
    let wrong = "wrong-pw-4f1c9e";
    let e = upstream::connect(
        &target(USER),
        &Secret::new(wrong),
        None,
        &options(Some("test"), 0),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.code(), Some(1045), "{e}");
    let shown = format!("{e} / {e:?}");
    assert!(
        shown.contains("Access denied") && shown.contains("1045"),
        "{shown}"
    );
    assert!(!shown.contains(wrong), "{shown}");
    assert!(matches!(e, UpstreamError::Refused { .. }));
    // An unknown database is refused too (error 1044 or 1049), named.
    let e = upstream::connect(
        &target(USER),
        &Secret::new(PASSWORD),
        None,
        &options(Some("gh_no_such_db"), 0),
    )
    .await
    .expect_err("refused");
    assert!(matches!(e.code(), Some(1044 | 1049)), "{e}");
}

#[tokio::test]
async fn tls_is_used_when_offered_and_required_tls_fails_clearly_otherwise() {
    ensure_user().await;
    let mut r = root().await;
    let have_ssl = r
        .query("SHOW VARIABLES LIKE 'have_ssl'")
        .await
        .expect("show");
    let have_ssl = text(&have_ssl[0])
        .first()
        .and_then(|row| row.get(1).cloned().flatten())
        .unwrap_or_default();
    r.quit().await.expect("quit");

    let t = common::tls();
    let tls = |required| UpstreamTls {
        connector: t.connector.clone(),
        server_name: t.server_name.clone(),
        required,
    };
    let result = upstream::connect(
        &target(USER),
        &Secret::new(PASSWORD),
        Some(&tls(true)),
        &options(Some("test"), 0),
    )
    .await;
    if have_ssl == "YES" {
        // The server's certificate is not ours: TLS must fail on verification.
        let e = result.expect_err("unknown certificate");
        assert!(matches!(e, UpstreamError::Tls(_)), "{e}");
    } else {
        println!("MariaDB has have_ssl={have_ssl}: checking that required TLS fails clearly");
        let e = result.expect_err("no TLS on this server");
        assert!(matches!(e, UpstreamError::NoTls), "{e}");
        assert!(e.to_string().contains("does not offer TLS"), "{e}");
        // Not required: the login goes on in plain TCP.
        let up = upstream::connect(
            &target(USER),
            &Secret::new(PASSWORD),
            Some(&tls(false)),
            &options(Some("test"), 0),
        )
        .await
        .expect("plain login");
        assert!(!up.stream.is_tls());
        up.quit().await.expect("quit");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    // Port 1 on loopback: nothing listens there.
    let t = Target {
        host: "127.0.0.1".into(),
        port: 1,
        user: USER.into(),
    };
    let e = upstream::connect(&t, &Secret::new(PASSWORD), None, &options(None, 0))
        .await
        .expect_err("refused");
    assert!(matches!(e, UpstreamError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"));
}
