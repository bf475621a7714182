//! Real MySQL clients against `handshake::accept`: the `mariadb` command
//! line client (libmariadb), PyMySQL, mysql-connector-python (pure
//! Python) and node's mysql2, over TLS (a self-signed certificate the
//! clients are told not to verify) and over loopback plain TCP.
//!
//! A one-connection server on 127.0.0.1, port 0, runs the handshake and
//! answers OK; then it answers `SET …`-style queries with OK and the probe
//! query `SELECT 'gatehouse_probe'` with an ERR naming the user and
//! database it saw, so the client's output proves it got past the login.
//! The server reports what it received (password included) to the test.
//!
//! Needs: `mariadb` (Debian's mariadb-client), python3 with PyMySQL and
//! mysql-connector-python, node with `npm ci` run in tests/mysql-clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_mysql::codec::{self, Command, SERVER_STATUS_AUTOCOMMIT};
use gatehouse_mysql::handshake::{
    self, HandshakeConfig, PasswordExchange, PasswordMethod, send_err, send_ok,
};
use gatehouse_mysql::stream::read_packet;
use tokio::net::TcpListener;

const TOKEN: &str = "ghp_mysqlTok3n-9f2c";
const USER: &str = "bot";
const DB: &str = "shop";
const PROBE_REPLY: &str = "gatehouse_probe seen";

/// What the server saw of one client.
#[derive(Debug)]
struct Seen {
    user: String,
    password: String,
    database: Option<String>,
    method: PasswordMethod,
    tls: bool,
    client_plugin: Option<String>,
    attrs: Vec<(String, String)>,
    queries: Vec<String>,
}

/// Accepts one client, runs the handshake, answers OK, then serves its
/// commands until it quits or hangs up.
async fn serve_one(listener: TcpListener, config: HandshakeConfig) -> Result<Seen, String> {
    let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let mut login = handshake::accept(tcp, &config)
        .await
        .map_err(|e| e.to_string())?;
    login.send_ok().await.map_err(|e| e.to_string())?;
    let caps = login.negotiated();
    let mut seen = Seen {
        user: login.user.clone(),
        password: login.password.expose().to_string(),
        database: login.database.clone(),
        method: login.method,
        tls: login.is_tls(),
        client_plugin: login.client_plugin.clone(),
        attrs: login.connect_attrs.clone(),
        queries: Vec::new(),
    };
    for _ in 0..32 {
        let Ok(pkt) = read_packet(&mut login.stream, 1 << 20).await else {
            break;
        };
        let seq = pkt.next_seq();
        let written = match codec::parse_command(&pkt.payload) {
            Ok((Command::Quit, _)) => break,
            Ok((Command::Query, sql)) => {
                let sql = String::from_utf8_lossy(sql).into_owned();
                let probe = sql.contains("gatehouse_probe");
                seen.queries.push(sql);
                if probe {
                    let msg = format!(
                        "{PROBE_REPLY}: user={} db={}",
                        seen.user,
                        seen.database.as_deref().unwrap_or("-")
                    );
                    send_err(&mut login.stream, seq, 1105, "HY000", &msg).await
                } else {
                    send_ok(&mut login.stream, seq, caps, SERVER_STATUS_AUTOCOMMIT).await
                }
            }
            _ => send_ok(&mut login.stream, seq, caps, SERVER_STATUS_AUTOCOMMIT).await,
        };
        if written.is_err() {
            break;
        }
    }
    Ok(seen)
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mysql-clients")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    MariadbCli,
    PyMySql,
    Connector,
    Mysql2,
    /// mysql2 with `enableCleartextPlugin: true`.
    Mysql2Cleartext,
}

fn command(client: Client, port: u16, tls: bool) -> tokio::process::Command {
    let port = port.to_string();
    let mode = if tls { "tls" } else { "plain" };
    let dir = clients_dir();
    let mut c = match client {
        Client::MariadbCli => {
            let mut c = tokio::process::Command::new("mariadb");
            c.args(["--no-defaults", "-h", "127.0.0.1", "-P", &port, "-u", USER])
                .arg(format!("-p{TOKEN}"))
                .args([DB, "-e", "SELECT 'gatehouse_probe'"]);
            // The only flag it needs: `--ssl` for TLS (10.11 does not verify
            // the certificate unless told to). No cleartext-plugin flag exists
            // or is needed: libmariadb loads `mysql_clear_password` on request.
            if tls {
                c.arg("--ssl");
            }
            c
        }
        Client::PyMySql | Client::Connector => {
            let script = if client == Client::PyMySql {
                "pymysql_client.py"
            } else {
                "connector_client.py"
            };
            let mut c = tokio::process::Command::new("python3");
            c.arg(dir.join(script)).args([&port, USER, TOKEN, DB, mode]);
            c
        }
        Client::Mysql2 | Client::Mysql2Cleartext => {
            assert!(
                dir.join("node_modules/mysql2").is_dir(),
                "node's mysql2 is not installed: run `npm ci` in {}",
                dir.display()
            );
            let mut c = tokio::process::Command::new("node");
            c.arg(dir.join("mysql2_client.js"))
                .args([&port, USER, TOKEN, DB, mode]);
            if client == Client::Mysql2Cleartext {
                c.arg("cleartext");
            }
            c
        }
    };
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Runs `client` against a fresh server; returns what the server saw and
/// what the client printed (stdout and stderr).
async fn run(
    client: Client,
    tls: bool,
    exchange: PasswordExchange,
) -> (Result<Seen, String>, String) {
    let t = common::tls();
    let mut config = HandshakeConfig::new(tls.then(|| t.acceptor.clone()));
    config.exchange = exchange;
    config.allow_plaintext_password = !tls;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(serve_one(listener, config));
    let out = tokio::time::timeout(Duration::from_secs(60), command(client, port, tls).output())
        .await
        .unwrap_or_else(|_| panic!("{client:?} did not finish"))
        .unwrap_or_else(|e| panic!("{client:?} could not be started: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap_or_else(|_| panic!("the server did not finish with {client:?}"))
        .expect("server task");
    println!("{client:?} tls={tls} {exchange:?}: server saw {seen:?}; client printed: {printed}");
    (seen, printed)
}

/// The client logged in with the token by `method` and reached the query.
fn assert_logged_in(
    client: Client,
    (seen, printed): (Result<Seen, String>, String),
    tls: bool,
    method: PasswordMethod,
) -> Seen {
    let seen =
        seen.unwrap_or_else(|e| panic!("{client:?}: handshake failed: {e}; client: {printed}"));
    assert_eq!(seen.password, TOKEN, "{client:?}");
    assert_eq!(seen.user, USER, "{client:?}");
    assert_eq!(seen.database.as_deref(), Some(DB), "{client:?}");
    assert_eq!(seen.tls, tls, "{client:?}");
    assert_eq!(seen.method, method, "{client:?}: {seen:?}");
    assert!(
        seen.queries.iter().any(|q| q.contains("gatehouse_probe")),
        "{client:?} sent {:?}",
        seen.queries
    );
    assert!(
        printed.contains(&format!("{PROBE_REPLY}: user={USER} db={DB}")),
        "{client:?} printed: {printed}"
    );
    assert!(!printed.contains("CONNECT FAILED"), "{printed}");
    seen
}

// === the mariadb command line client (libmariadb) ===

#[tokio::test]
async fn mariadb_cli_over_tls() {
    let c = Client::MariadbCli;
    let seen = assert_logged_in(
        c,
        run(c, true, PasswordExchange::Auto).await,
        true,
        PasswordMethod::CachingSha2Full,
    );
    assert_eq!(seen.client_plugin.as_deref(), Some("caching_sha2_password"));
    assert!(
        seen.attrs
            .iter()
            .any(|(k, v)| k == "_client_name" && v == "libmariadb")
    );
    let r = run(c, true, PasswordExchange::ClearPassword).await;
    assert_logged_in(c, r, true, PasswordMethod::ClearPasswordSwitch);
}

#[tokio::test]
async fn mariadb_cli_over_plain_tcp() {
    let c = Client::MariadbCli;
    let r = run(c, false, PasswordExchange::Auto).await;
    assert_logged_in(c, r, false, PasswordMethod::ClearPasswordSwitch);
}

// === PyMySQL ===

#[tokio::test]
async fn pymysql_over_tls() {
    let c = Client::PyMySql;
    let seen = assert_logged_in(
        c,
        run(c, true, PasswordExchange::Auto).await,
        true,
        PasswordMethod::CachingSha2Full,
    );
    assert_eq!(seen.client_plugin.as_deref(), Some("caching_sha2_password"));
    let r = run(c, true, PasswordExchange::ClearPassword).await;
    assert_logged_in(c, r, true, PasswordMethod::ClearPasswordSwitch);
}

#[tokio::test]
async fn pymysql_over_plain_tcp() {
    let c = Client::PyMySql;
    let r = run(c, false, PasswordExchange::Auto).await;
    assert_logged_in(c, r, false, PasswordMethod::ClearPasswordSwitch);
    // Full authentication without TLS: PyMySQL asks for the RSA key, refused.
    let (seen, printed) = run(c, false, PasswordExchange::CachingSha2).await;
    let e = seen.expect_err("refused");
    assert!(e.contains("RSA public key"), "{e}");
    assert!(
        printed.contains("3159") && printed.contains("only over TLS"),
        "{printed}"
    );
    assert!(!printed.contains(TOKEN));
}

// === mysql-connector-python ===

#[tokio::test]
async fn mysql_connector_python_over_tls() {
    let c = Client::Connector;
    let seen = assert_logged_in(
        c,
        run(c, true, PasswordExchange::Auto).await,
        true,
        PasswordMethod::CachingSha2Full,
    );
    assert_eq!(seen.client_plugin.as_deref(), Some("caching_sha2_password"));
    let r = run(c, true, PasswordExchange::ClearPassword).await;
    assert_logged_in(c, r, true, PasswordMethod::ClearPasswordSwitch);
}

#[tokio::test]
async fn mysql_connector_python_refuses_clear_password_without_tls() {
    let c = Client::Connector;
    let (seen, printed) = run(c, false, PasswordExchange::Auto).await;
    let e = seen.expect_err("the client refuses");
    assert!(e.contains("mysql_clear_password"), "{e}");
    assert!(
        printed.contains("mysql_clear_password requires SSL"),
        "{printed}"
    );
}

// === node mysql2 ===

#[tokio::test]
async fn mysql2_over_tls() {
    let c = Client::Mysql2;
    let seen = assert_logged_in(
        c,
        run(c, true, PasswordExchange::Auto).await,
        true,
        PasswordMethod::CachingSha2Full,
    );
    assert_eq!(seen.client_plugin.as_deref(), Some("caching_sha2_password"));
    // mysql_clear_password needs `enableCleartextPlugin`, TLS or not.
    let (seen, printed) = run(c, true, PasswordExchange::ClearPassword).await;
    assert!(seen.is_err(), "{seen:?}");
    assert!(
        printed.contains("MYSQL_CLEAR_PASSWORD_NOT_ENABLED"),
        "{printed}"
    );
    let c = Client::Mysql2Cleartext;
    let r = run(c, true, PasswordExchange::ClearPassword).await;
    assert_logged_in(c, r, true, PasswordMethod::ClearPasswordSwitch);
}

#[tokio::test]
async fn mysql2_over_plain_tcp_with_enable_cleartext_plugin() {
    let c = Client::Mysql2Cleartext;
    let r = run(c, false, PasswordExchange::Auto).await;
    assert_logged_in(c, r, false, PasswordMethod::ClearPasswordSwitch);
    let c = Client::Mysql2;
    let (seen, printed) = run(c, false, PasswordExchange::Auto).await;
    assert!(seen.is_err(), "{seen:?}");
    assert!(
        printed.contains("MYSQL_CLEAR_PASSWORD_NOT_ENABLED"),
        "{printed}"
    );
}
