//! The MySQL proxy end to end: a real `gatehouse serve`, the machine's
//! MariaDB behind it with a password Gatehouse holds, and real clients in
//! front of it (the `mariadb` command line client, PyMySQL,
//! mysql-connector-python with server-side prepared statements, node
//! `mysql2`), compared with a direct connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

const APP_PASSWORD: &str = "my-app-pw-Zq81-never-shown";

/// Runs SQL on MariaDB directly as root (database `test`).
fn direct_my(sql: &str) -> String {
    let o = direct_my_output(sql);
    assert!(o.status.success(), "{sql}: {}", err(&o));
    out(&o)
}

/// The `mariadb` client's output for `sql`, run as root on `test`.
fn direct_my_output(sql: &str) -> std::process::Output {
    Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "--batch",
            "--skip-column-names",
            "test",
            "-e",
            sql,
        ])
        .output()
        .expect("mariadb")
}

/// `mariadb -e SQL` through the gateway; (success, stdout, stderr).
fn via(s: &Server, token: &str, sql: &str) -> (bool, String, String) {
    via_to(s, token, "shop", sql)
}

/// [`via`] on the gateway's connection `database`.
fn via_to(s: &Server, token: &str, database: &str, sql: &str) -> (bool, String, String) {
    let (host, port) = s.mysql.rsplit_once(':').unwrap();
    let o = Command::new("mariadb")
        .args([
            "-h",
            host,
            "-P",
            port,
            "-u",
            "bot",
            "--batch",
            "--skip-column-names",
            database,
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", token)
        .output()
        .expect("mariadb");
    (o.status.success(), out(&o), err(&o))
}

fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    (o.status.success(), out(&o), err(&o))
}

/// The start of a Python script for `python(script, [host, port, token,
/// table])`: a PyMySQL session on the gateway's `database` and `run(sql)`,
/// which gives `["ran", rows]` or `[error code, message]`.
fn pymysql_session(database: &str) -> String {
    format!(
        r#"
import json, sys
import pymysql
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = pymysql.connect(host=host, port=port, user="bot", password=token, database="{database}", autocommit=True)
cur = c.cursor()
def run(sql):
    try:
        cur.execute(sql)
        return ["ran", [list(r) for r in cur.fetchall()]]
    except pymysql.err.MySQLError as e:
        return [e.args[0], e.args[1]]
"#
    )
}

/// Replaces the policy: writes to `table` wait for a member of `dba`.
fn review_writes(s: &Server, table: &str) {
    review_writes_and(s, table, "");
}

/// The same, with `more` (TOML) after the rule's lines: more of the rule,
/// or other tables of the policy.
fn review_writes_and(s: &Server, table: &str, more: &str) {
    let file = s.path("review.toml");
    write(
        &file,
        &format!(
            "[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"writes-need-a-dba\"\nstatements = [\"write\"]\ntables = [\"{table}\"]\naction = \"review\"\napprovers = [\"dba\"]\n{more}"
        ),
    );
    ok(s.cli(&s.admin, &["apply", "-f", file.to_str().unwrap()]));
}

/// The start of a Python script for `python(script, [host, port, token,
/// …])`: a mysql-connector-python session `c` on `shop` (over TLS: this
/// driver sends a password in clear only over TLS).
const CONNECTOR_SESSION: &str = r#"
import io, sys, mysql.connector
c = mysql.connector.connect(host=sys.argv[1], port=int(sys.argv[2]), user="bot", password=sys.argv[3], database="shop",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True, autocommit=True)
"#;

struct Fixture {
    s: Server,
    bot: String,
    table: String,
}

/// What a test made in MariaDB's `test` database is named after its table
/// (`gh_my_NAME_PID`, `…_open`, `…_f`, …): it is dropped when the fixture
/// goes, passed or failed, so that runs do not leave tables behind.
impl Drop for Fixture {
    fn drop(&mut self) {
        let t = &self.table;
        let len = t.len();
        // Not asserted: this may run while a failed test unwinds.
        let list = |what: &str| out(&direct_my_output(what));
        let mut drops = String::new();
        for line in list(&format!(
            "SELECT table_type, table_name FROM information_schema.TABLES WHERE table_schema = 'test' AND LEFT(table_name, {len}) = '{t}' ORDER BY table_type = 'VIEW' DESC"
        ))
        .lines()
        {
            if let Some((kind, name)) = line.split_once('\t') {
                let kind = if kind == "VIEW" { "VIEW" } else { "TABLE" };
                drops.push_str(&format!("DROP {kind} IF EXISTS `{name}`; "));
            }
        }
        for line in list(&format!(
            "SELECT routine_type, routine_name FROM information_schema.ROUTINES WHERE routine_schema = 'test' AND LEFT(routine_name, {len}) = '{t}'"
        ))
        .lines()
        {
            if let Some((kind, name)) = line.split_once('\t') {
                drops.push_str(&format!("DROP {kind} IF EXISTS `{name}`; "));
            }
        }
        if !drops.is_empty() {
            let _ = list(&drops);
        }
    }
}

fn setup(name: &str) -> Fixture {
    let table = format!("gh_my_{name}_{}", std::process::id());
    direct_my(&format!(
        "CREATE USER IF NOT EXISTS 'gh_app'@'%' IDENTIFIED BY '{APP_PASSWORD}';
         CREATE USER IF NOT EXISTS 'gh_app'@'localhost' IDENTIFIED BY '{APP_PASSWORD}';
         GRANT ALL ON test.* TO 'gh_app'@'%'; GRANT ALL ON test.* TO 'gh_app'@'localhost';
         DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (id INT PRIMARY KEY, email VARCHAR(100), note VARCHAR(100), score DECIMAL(5,2));
         INSERT INTO {table} VALUES (1, 'ann@example.com', 'first', 1.50), (2, 'bob@example.org', 'second', 2.25), (3, NULL, 'third', NULL);"
    ));
    let s = Server::start();
    let bot = token(&s, "bot", "agents");
    let file = s.path("mysql.toml");
    write(
        &file,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"mysql\"\nurl = \"mysql://gh_app@127.0.0.1:3306/test?sslmode=disable\"\npassword = {{ env = \"SHOP_MY_PASSWORD\" }}\ngroups = [\"agents\"]\n\n\
             [policy]\ndefault = \"allow\"\n\n\
             [[rules]]\nname = \"no-deletes\"\nconnections = [\"shop\"]\nstatements = [\"write\"]\ntables = [\"{table}\"]\naction = \"deny\"\nmessage = \"agents may not change {table}\"\n\n\
             [[rules]]\nname = \"no-admin\"\nstatements = [\"admin\", \"dcl\"]\naction = \"deny\"\n\n\
             [[masks]]\nconnections = [\"shop\"]\ncolumns = [\"test.{table}.email\"]\nmethod = \"partial\"\n"
        ),
    );
    ok(s.cli_with(
        &s.admin,
        &["apply", "-f", file.to_str().unwrap()],
        None,
        &[("SHOP_MY_PASSWORD", APP_PASSWORD)],
    ));
    Fixture { s, bot, table }
}

#[test]
fn the_mariadb_client_reads_through_the_gateway_with_the_stored_password() {
    let f = setup("cli");
    let t = &f.table;
    // Unmasked columns are exactly what a direct connection gives.
    let q = format!("SELECT id, note, score FROM {t} ORDER BY id");
    let (ok_, got, e) = via(&f.s, &f.bot, &q);
    assert!(ok_, "{e}");
    assert_eq!(got, direct_my(&q));
    // Several result sets in one go.
    let (ok_, got, e) = via(&f.s, &f.bot, "SELECT 1; SELECT 'two'");
    assert!(ok_, "{e}");
    assert_eq!(got, "1\ntwo\n");
    // A wrong token, an unknown connection: MySQL errors a person can act on.
    let (ok_, _, e) = via(&f.s, "gh_not-a-token", "SELECT 1");
    assert!(!ok_ && e.contains("1045") && e.contains("Gatehouse"), "{e}");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let o = Command::new("mariadb")
        .args([
            "-h", host, "-P", port, "-u", "bot", "nope", "-e", "SELECT 1",
        ])
        .env("MYSQL_PWD", &f.bot)
        .output()
        .unwrap();
    assert!(
        !o.status.success() && err(&o).contains("no MySQL connection named \"nope\""),
        "{}",
        err(&o)
    );
    // Switching to another database is refused; the same one is fine.
    let (ok_, _, e) = via(&f.s, &f.bot, "USE mysql");
    assert!(!ok_, "{e}");
    let (ok_, got, e) = via(&f.s, &f.bot, "USE test; SELECT DATABASE()");
    assert!(ok_, "{e}");
    assert_eq!(got.trim(), "test");
    // The stored password is never shown, and the caller never needed it.
    let log = format!("{}\n{}", f.s.startup, f.s.drain_log());
    assert!(!log.contains(APP_PASSWORD));
}

#[test]
fn statements_are_decided_by_the_policy_and_masks_follow_the_column_not_its_alias() {
    let f = setup("policy");
    let t = &f.table;
    let (ok_, _, e) = via(&f.s, &f.bot, &format!("DELETE FROM {t} WHERE id = 1"));
    assert!(!ok_);
    assert!(
        e.contains("no-deletes") && e.contains(&format!("agents may not change {t}")),
        "{e}"
    );
    assert_eq!(direct_my(&format!("SELECT count(*) FROM {t}")).trim(), "3");
    // Hidden in a multi-statement string or an executable comment: still refused.
    for sneaky in [
        format!("SELECT 1; DELETE FROM {t}"),
        format!("SELECT 1 /*! ; DELETE FROM {t} */"),
        format!("select 1 /*!50000 ; update {t} set note = 'x' */"),
    ] {
        let (ok_, _, e) = via(&f.s, &f.bot, &sneaky);
        assert!(!ok_ && e.contains("no-deletes"), "{sneaky}: {e}");
    }
    assert_eq!(
        direct_my(&format!("SELECT count(*) FROM {t} WHERE note = 'x'")).trim(),
        "0"
    );
    let (ok_, _, e) = via(&f.s, &f.bot, "SET GLOBAL max_connections = 5");
    assert!(!ok_ && e.contains("no-admin"), "{e}");
    // Masked by origin: as named, aliased, qualified (partial: the last
    // four characters stay); through a derived table (masked either way).
    for q in [
        format!("SELECT email FROM {t} WHERE id = 1"),
        format!("SELECT email AS contact FROM {t} WHERE id = 1"),
        format!("SELECT `email` FROM test.{t} WHERE id = 1"),
        format!("SELECT x.e FROM (SELECT email AS e FROM {t} WHERE id = 1) x"),
    ] {
        let (ok_, got, e) = via(&f.s, &f.bot, &q);
        assert!(ok_, "{q}: {e}");
        assert!(
            !got.contains("ann@") && !got.trim().is_empty(),
            "{q}: {got}"
        );
        if !q.contains(" x") {
            assert!(got.trim().ends_with(".com"), "{q}: {got}");
        }
    }
    let (ok_, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT CONCAT(email, '') FROM {t} WHERE id = 1"),
    );
    assert!(ok_, "{e}");
    assert!(
        !got.contains("ann@"),
        "a computed column from a masked one is masked: {got}"
    );
    // NULL stays NULL.
    let (_, got, _) = via(&f.s, &f.bot, &format!("SELECT email FROM {t} WHERE id = 3"));
    assert_eq!(got.trim(), "NULL");
    // Refusals are audit events naming the rule.
    let audit =
        ok(f.s.cli(&f.s.admin, &["audit", "export", "--format", "jsonl"]));
    assert!(
        audit.contains("statement.deny") && audit.contains("no-deletes"),
        "{audit}"
    );
}

const PY_CLIENTS: &str = r#"
import sys, json
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
import pymysql
c = pymysql.connect(host=host, port=port, user="bot", password=token, database="shop")
with c.cursor() as cur:
    cur.execute(f"SELECT id, email, note FROM {table} WHERE id <= %s ORDER BY id", (2,))
    out["pymysql"] = [list(r) for r in cur.fetchall()]
    try:
        cur.execute(f"UPDATE {table} SET note = %s WHERE id = 1", ("changed",))
        out["pymysql_update"] = "ran"
    except pymysql.err.MySQLError as e:
        out["pymysql_update"] = str(e)
    # USE as a statement: another database is refused, its own is fine.
    for sql in ["USE mysql", "SELECT 1; USE mysql", "use `test`"]:
        try:
            cur.execute(sql)
            out[sql] = "ran"
        except pymysql.err.MySQLError as e:
            out[sql] = str(e)
    cur.execute("SELECT DATABASE()")
    out["database"] = cur.fetchall()[0][0]
c.close()
import mysql.connector
# Over TLS (Gatehouse's self-signed certificate): this driver sends a
# password in clear only over TLS.
c = mysql.connector.connect(host=host, port=port, user="bot", password=token, database="shop",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True)
cur = c.cursor(prepared=True)
cur.execute(f"SELECT id, email, score FROM {table} WHERE id = %s", (2,))
out["connector_prepared"] = [[str(v) if v is not None else None for v in r] for r in cur.fetchall()]
cur.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", (0,))
out["connector_ids"] = [r[0] for r in cur.fetchall()]
import datetime
cur.execute("SELECT CONCAT(%s, ''), %s, %s, %s", ("héllo", datetime.datetime(2024, 2, 29, 13, 14, 15, 500000), -7, None))
out["connector_params"] = [str(v) for v in cur.fetchall()[0]]
cur.execute("SELECT %s, %s, %s", (datetime.datetime(2024, 1, 2), datetime.date(2024, 1, 3), datetime.timedelta(days=1, hours=2, minutes=3, seconds=4)))
out["connector_times"] = [str(v) for v in cur.fetchall()[0]]
cur.execute("SELECT CAST(%s AS DATETIME(3)), CAST(%s AS TIME(2)), CAST(%s AS DATETIME), CAST(%s AS DATETIME(2))",
            ("2024-01-02 03:04:05.5", "26:03:04.25", "2024-01-02 03:04:05", "2024-01-02 03:04:05"))
out["connector_precision"] = [str(v) for v in cur.fetchall()[0]]
# A parameter sent in pieces (COM_STMT_SEND_LONG_DATA).
import io
cur.execute("SELECT LENGTH(%s)", (io.BytesIO(b"x" * 100000),))
out["long_data"] = cur.fetchall()[0][0]
cur.execute("SELECT CHAR_LENGTH(%s)", (io.BytesIO("pièce courte".encode()),))
out["long_short"] = cur.fetchall()[0][0]
# COM_PING, COM_STATISTICS, COM_RESET_CONNECTION, COM_INIT_DB to the same database.
c.ping()
out["statistics"] = "Uptime" in str(c.cmd_statistics())
c.cmd_reset_connection()
c.cmd_init_db("test")
cur = c.cursor()
cur.execute("SELECT DATABASE()")
out["after_reset"] = cur.fetchall()[0][0]
c.close()
print(json.dumps(out))
"#;

/// A session keeps the policy engine between commands and takes up a new
/// policy at its next command: a PyMySQL session open across
/// `gatehouse apply` is refused by the new rule without reconnecting.
/// A Python script run with `args`, its stdin and stdout piped: the child
/// and its output's lines.
fn python_child(
    script: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Applies a policy whose rule `no-reads-now` refuses reads of the
/// fixture's table.
fn deny_reads_now(f: &Fixture) {
    let file = f.s.path("no-reads.toml");
    std::fs::write(
        &file,
        format!(
            "[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"no-reads-now\"\nstatements = [\"read\"]\ntables = [\"{}\"]\naction = \"deny\"\n",
            f.table
        ),
    )
    .unwrap();
    ok(f.s.cli(&f.s.admin, &["apply", "-f", file.to_str().unwrap()]));
}

#[test]
fn an_open_session_takes_up_a_new_policy_at_its_next_command() {
    use std::io::Write;
    let f = setup("newpolicy");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = r#"
import sys, pymysql
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = pymysql.connect(host=host, port=port, user="bot", password=token, database="shop")
cur = c.cursor()
def count():
    try:
        cur.execute(f"SELECT count(*) FROM {table}")
        return "rows " + str(cur.fetchall()[0][0])
    except pymysql.err.MySQLError as e:
        return "refused " + str(e)
print(count(), flush=True)
sys.stdin.readline()
print(count(), flush=True)
"#;
    let (mut child, mut lines) = python_child(script, &[host, port, &f.bot, &f.table]);
    let first = lines.next().expect("a first answer").unwrap();
    assert_eq!(first, "rows 3", "allowed under the first policy");
    deny_reads_now(&f);
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let second = lines.next().expect("a second answer").unwrap();
    assert!(
        second.starts_with("refused") && second.contains("no-reads-now"),
        "the same session, after the policy changed: {second}"
    );
    assert!(child.wait().unwrap().success());
}

/// SQL's `PREPARE` then `EXECUTE`: a statement prepared while the policy
/// allowed it is decided again, as the text it was prepared from, each
/// time it is executed; so a rule that came in between refuses it.
#[test]
fn an_execute_is_decided_as_its_prepared_text_under_the_policy_in_force() {
    use std::io::Write;
    let f = setup("execpolicy");
    // No rule at first (nothing is analysed to decide): PREPARE is still
    // noted.
    apply_mysql_connection(&f.s, "prepared", "\n[policy]\ndefault = \"allow\"\n");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = r#"
import json, sys, pymysql
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = pymysql.connect(host=host, port=port, user="bot", password=token, database="prepared", autocommit=True)
cur = c.cursor()
def run(sql):
    try:
        cur.execute(sql)
        return "rows " + json.dumps([list(r) for r in cur.fetchall()])
    except pymysql.err.MySQLError as e:
        return "refused " + str(e)
print(run(f"PREPARE Counted FROM 'SELECT count(*) FROM {table}'"), flush=True)
print(run("EXECUTE counted"), flush=True)
sys.stdin.readline()
print(run("EXECUTE COUNTED"), flush=True)
print(run("PREPARE other FROM 'SELECT 6 * 7'"), flush=True)
print(run("EXECUTE other"), flush=True)
"#;
    let (mut child, mut lines) = python_child(script, &[host, port, &f.bot, &f.table]);
    let mut next = || lines.next().expect("an answer").unwrap();
    assert_eq!(next(), "rows []", "PREPARE");
    assert_eq!(next(), "rows [[3]]", "EXECUTE under the first policy");
    deny_reads_now(&f);
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let refused = next();
    assert!(
        refused.starts_with("refused")
            && refused.contains("no-reads-now")
            && refused.contains("EXECUTE runs the statement prepared as counted"),
        "the same prepared statement, after the policy changed: {refused}"
    );
    assert_eq!(next(), "rows []", "another PREPARE");
    assert_eq!(next(), "rows [[42]]", "it touches no such table");
    assert!(child.wait().unwrap().success());
}

#[test]
fn python_drivers_text_and_prepared_statements_masked() {
    let f = setup("py");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(PY_CLIENTS, &[host, port, &f.bot, &f.table]);
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    let rows = &v["pymysql"];
    assert_eq!(rows[0][0], 1);
    assert_eq!(rows[0][2], "first");
    let masked = rows[0][1].as_str().unwrap();
    assert!(
        masked != "ann@example.com" && masked.ends_with(".com"),
        "{masked}"
    );
    assert!(
        v["pymysql_update"].as_str().unwrap().contains("no-deletes"),
        "{v}"
    );
    let p = &v["connector_prepared"][0];
    assert_eq!(p[0], "2");
    assert_eq!(p[2], "2.25");
    let masked = p[1].as_str().unwrap();
    assert!(
        masked != "bob@example.org" && masked.ends_with(".org"),
        "{masked}"
    );
    assert_eq!(v["connector_ids"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["long_data"], 100000);
    // 13 bytes: a value sent apart is binary to the server.
    assert_eq!(v["long_short"], 13);
    assert_eq!(v["statistics"], true);
    assert_eq!(v["after_reset"], "test");
    // Recorded: statements with their masked results (the recorder writes
    // within a moment of each session's end).
    let mut sessions = serde_json::Value::Null;
    for _ in 0..500 {
        sessions = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
        if sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["end_reason"].is_string())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut texts = String::new();
    let mut statements = Vec::new();
    for x in sessions["sessions"].as_array().unwrap() {
        assert_eq!(x["protocol"], "mysql");
        let shown = json(f.s.cli(
            &f.s.admin,
            &["sessions", "show", x["id"].as_str().unwrap(), "--json"],
        ));
        texts.push_str(&shown.to_string());
        statements.extend(shown["statements"].as_array().unwrap().iter().cloned());
    }
    // Prepared statements are recorded with the values bound to them (a
    // value sent in pieces is not kept: null, and the record says so).
    let params_of = |sql: &str| {
        let st = statements
            .iter()
            .find(|st| st["sql"] == sql)
            .unwrap_or_else(|| panic!("{sql} not recorded: {texts}"));
        (st["params"].clone(), st["params_truncated"] == true)
    };
    let t = &f.table;
    assert_eq!(
        params_of(&format!("SELECT id, email, score FROM {t} WHERE id = ?")),
        (serde_json::json!(["2"]), false)
    );
    assert_eq!(
        params_of(&format!("SELECT id FROM {t} WHERE id > ? ORDER BY id")),
        (serde_json::json!(["0"]), false)
    );
    assert_eq!(
        params_of("SELECT CONCAT(?, ''), ?, ?, ?"),
        (
            serde_json::json!(["héllo", "2024-02-29 13:14:15.500000", "-7", null]),
            false
        )
    );
    // Dates and times as MySQL writes them: a DATETIME at midnight keeps
    // its time, a DATE has none, a TIME counts its hours past a day.
    assert_eq!(
        params_of("SELECT ?, ?, ?"),
        (
            serde_json::json!(["2024-01-02 00:00:00", "2024-01-03", "26:03:04"]),
            false
        )
    );
    // And so are the binary result's, by each column's type.
    let times = statements
        .iter()
        .find(|st| st["sql"] == "SELECT ?, ?, ?")
        .unwrap();
    assert_eq!(
        times["result"],
        serde_json::json!([["2024-01-02 00:00:00", "2024-01-03", "26:03:04"]]),
        "{times}"
    );
    // A fraction of a second with the column's precision, as the text
    // protocol writes the same values.
    let precision = statements
        .iter()
        .find(|st| st["sql"].as_str().unwrap().contains("AS TIME(2)"))
        .unwrap();
    let as_text: Vec<String> = direct_my(
        "SELECT CAST('2024-01-02 03:04:05.5' AS DATETIME(3)), CAST('26:03:04.25' AS TIME(2)), \
         CAST('2024-01-02 03:04:05' AS DATETIME), CAST('2024-01-02 03:04:05' AS DATETIME(2))",
    )
    .trim_end()
    .split('\t')
    .map(String::from)
    .collect();
    assert_eq!(
        as_text,
        [
            "2024-01-02 03:04:05.500",
            "26:03:04.25",
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.00"
        ]
    );
    assert_eq!(
        precision["result"],
        serde_json::json!([as_text]),
        "{precision}"
    );
    // Values sent apart (COM_STMT_SEND_LONG_DATA) by their first 16 KiB.
    assert_eq!(
        params_of("SELECT LENGTH(?)"),
        (serde_json::json!(["x".repeat(16 * 1024)]), true)
    );
    assert_eq!(
        params_of("SELECT CHAR_LENGTH(?)"),
        (serde_json::json!(["pièce courte"]), false)
    );
    assert!(texts.contains("SELECT id, email, score FROM"), "{texts}");
    assert!(
        !texts.contains("bob@example.org") && !texts.contains("ann@example.com"),
        "{texts}"
    );
    assert!(texts.contains("no-deletes"), "{texts}");
}

#[test]
fn node_mysql2_prepared_statements() {
    let f = setup("node");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gatehouse-mysql/tests/mysql-clients"
    );
    let script = format!(
        "const m = require('{dir}/node_modules/mysql2/promise');
         (async () => {{
           const c = await m.createConnection({{host: '{host}', port: {port}, user: 'bot', password: process.argv[1], database: 'shop', ssl: {{ rejectUnauthorized: false }}}});
           const [rows] = await c.execute('SELECT id, email FROM {t} WHERE id = ?', [1]);
           let denied = '';
           try {{ await c.execute('DELETE FROM {t} WHERE id = ?', [1]); }} catch (e) {{ denied = e.message; }}
           console.log(JSON.stringify({{rows, denied}}));
           await c.end();
         }})().catch(e => {{ console.error(e.message); process.exit(1); }});",
        t = f.table
    );
    let o = Command::new("node")
        .arg("-e")
        .arg(&script)
        .arg(&f.bot)
        .output()
        .expect("node");
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(v["rows"][0]["id"], 1);
    let masked = v["rows"][0]["email"].as_str().unwrap();
    assert!(
        masked != "ann@example.com" && masked.ends_with(".com"),
        "{masked}"
    );
    assert!(v["denied"].as_str().unwrap().contains("no-deletes"), "{v}");
}

/// A new table named after the fixture's, with one row: id 1, note 'old'.
fn notes_table(f: &Fixture) -> String {
    let notes = format!("{}_notes", f.table);
    direct_my(&format!(
        "DROP TABLE IF EXISTS {notes}; CREATE TABLE {notes} (id INT, note TEXT); INSERT INTO {notes} VALUES (1, 'old')"
    ));
    notes
}

/// The pending review whose statement names `table`, as `dba` sees it
/// (waits until there is one).
fn pending_review(s: &Server, dba: &str, table: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let v = json(s.cli(dba, &["reviews", "list", "--pending", "--json"]));
        if let Some(r) = v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["statement"].as_str().is_some_and(|x| x.contains(table)))
        {
            return r.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the statement was never held"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A prepared statement held for review shows its approvers the values it
/// binds, exact; the audit log keeps them as the recording does, with what
/// the caller's content detectors find redacted.
#[test]
fn a_held_prepared_statement_shows_approvers_its_bound_values() {
    let f = setup("rvbound");
    let notes = notes_table(&f);
    review_writes_and(
        &f.s,
        &notes,
        "\n[[detectors]]\nconnections = [\"shop\"]\nkinds = [\"email\"]\n",
    );
    let dba = token(&f.s, "dana", "dba");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = &format!(
        "{CONNECTOR_SESSION}{}",
        r#"cur = c.cursor(prepared=True)
cur.execute(f"UPDATE {sys.argv[4]} SET note = %s WHERE id = %s", ("eve@example.com", 1))
print("updated", cur.rowcount)
"#
    );
    let client = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([host, port, &f.bot, &notes])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let r = pending_review(&f.s, &dba, &notes);
    assert_eq!(r["params"], "$1=eve@example.com, $2=1", "{r}");
    let id = r["id"].as_str().unwrap();
    ok(f.s.cli(&dba, &["reviews", "approve", id]));
    let o = client.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), "updated 1");
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "eve@example.com"
    );
    let audit = ok(f.s.cli(&f.s.admin, &["audit", "export", "--since", "1h"]));
    assert!(
        audit.contains("$1=[REDACTED:email], $2=1") && !audit.contains("eve@example.com"),
        "{audit}"
    );
}

/// A value sent in pieces (`COM_STMT_SEND_LONG_DATA`) is not in the
/// execution's packet, yet it is part of what is approved: the same
/// statement with another such value is another review, not a second
/// waiter on the first one's approval.
#[test]
fn values_sent_in_pieces_are_part_of_what_is_approved() {
    let f = setup("rvlong");
    let notes = notes_table(&f);
    review_writes(&f.s, &notes);
    let dba = token(&f.s, "dana", "dba");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = &format!(
        "{CONNECTOR_SESSION}{}",
        r#"cur = c.cursor(prepared=True)
try:
    cur.execute(f"UPDATE {sys.argv[4]} SET note = %s WHERE id = 1", (io.BytesIO(sys.argv[5].encode()),))
    print("updated", cur.rowcount)
except mysql.connector.Error as e:
    print("refused", e.errno, e.msg)
"#
    );
    let run = |note: &str| {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args([host, port, &f.bot, &notes, note])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let alice = run("to alice");
    let first = pending_review(&f.s, &dba, &notes);
    assert_eq!(first["params"], "$1=to alice", "{first}");
    let mallory = run("to mallory");
    let started = std::time::Instant::now();
    let second = loop {
        let v = json(f.s.cli(&dba, &["reviews", "list", "--pending", "--json"]));
        let held: Vec<serde_json::Value> = v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["statement"].as_str().is_some_and(|x| x.contains(&notes)))
            .cloned()
            .collect();
        if held.len() == 2 {
            break held.into_iter().find(|r| r["id"] != first["id"]).unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the second value never got a review of its own: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(second["params"], "$1=to mallory", "{second}");
    ok(f.s.cli(&dba, &["reviews", "approve", first["id"].as_str().unwrap()]));
    ok(f.s.cli(
        &dba,
        &[
            "reviews",
            "reject",
            second["id"].as_str().unwrap(),
            "--reason",
            "not that one",
        ],
    ));
    let a = alice.wait_with_output().unwrap();
    assert_eq!(out(&a).trim(), "updated 1", "{}", err(&a));
    let m = mallory.wait_with_output().unwrap();
    assert!(out(&m).contains("refused"), "{}", out(&m));
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "to alice"
    );
}

/// A statement whose pieces were interleaved with another statement's is
/// refused when it is held for review: Gatehouse kept only its later
/// pieces, while the server joins them all, so a review could not be bound
/// to the value that would run.
#[test]
fn pieces_interleaved_with_another_statements_are_refused_for_review() {
    let f = setup("rvsplit");
    let notes = notes_table(&f);
    // A short review timeout: held instead of refused, the statement would
    // come back refused for that, not for the pieces.
    review_writes_and(&f.s, &notes, "timeout = \"3s\"\n");
    let dba = token(&f.s, "dana", "dba");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = &format!(
        "{CONNECTOR_SESSION}{}",
        r#"a = c.cmd_stmt_prepare(f"UPDATE {sys.argv[4]} SET note = ? WHERE id = 1".encode())
b = c.cmd_stmt_prepare(b"SELECT LENGTH(?)")
c.cmd_stmt_send_long_data(a["statement_id"], 0, io.BytesIO(b"hidden part, "))
c.cmd_stmt_send_long_data(b["statement_id"], 0, io.BytesIO(b"other"))
try:
    # Sends one more piece of its own, then executes.
    c.cmd_stmt_execute(a["statement_id"], data=(io.BytesIO(b"shown part"),), parameters=a["parameters"])
    print("ran")
except mysql.connector.Error as e:
    print("refused", e.errno, e.msg)
"#
    );
    let (ok_run, stdout, stderr) = python(script, &[host, port, &f.bot, &notes]);
    assert!(ok_run, "{stderr}");
    assert!(
        stdout.starts_with("refused") && stdout.contains("interleaved with another statement's"),
        "{stdout}"
    );
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "old"
    );
    let v = json(f.s.cli(&dba, &["reviews", "list", "--json"]));
    assert!(
        !v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["statement"].as_str().is_some_and(|x| x.contains(&notes))),
        "no review was made: {v}"
    );
}

/// An UPDATE through the mariadb client, held for review.
struct Held {
    client: std::process::Child,
    /// The table it writes (one row, id 1, note 'old').
    notes: String,
    /// A token of the group that may approve it, and the review's id.
    dba: String,
    review: String,
}

/// Makes writes to a new table wait for a DBA, and starts the mariadb
/// client setting its note to `note`; returns once the review is pending.
fn hold_an_update(f: &Fixture, note: &str) -> Held {
    let notes = notes_table(f);
    review_writes(&f.s, &notes);
    let dba = token(&f.s, "dana", "dba");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let client = Command::new("mariadb")
        .args(["-h", host, "-P", port, "-u", "bot", "shop", "-e"])
        .arg(format!("UPDATE {notes} SET note = '{note}' WHERE id = 1"))
        .env("MYSQL_PWD", &f.bot)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let review = pending_review(&f.s, &dba, &notes)["id"]
        .as_str()
        .unwrap()
        .to_string();
    Held {
        client,
        notes,
        dba,
        review,
    }
}

#[test]
fn a_held_statement_runs_once_approved_and_a_revoked_token_ends_the_session() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let f = setup("review");
    let held = hold_an_update(&f, "approved");
    let (notes, dba, id) = (&held.notes, &held.dba, &held.review);
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "old",
        "it waits"
    );
    ok(f.s.cli(dba, &["reviews", "approve", id]));
    let o = held.client.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "approved"
    );

    // A live session ends the moment its token is revoked.
    let script = r#"
import sys, pymysql
c = pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user="bot", password=sys.argv[3], database="shop")
cur = c.cursor()
cur.execute("SELECT 1")
print("ready", flush=True)
sys.stdin.readline()
try:
    cur.execute("SELECT 2")
    print("ran", flush=True)
except Exception as e:
    print("refused:", e, flush=True)
"#;
    let mut py = Command::new("python3")
        .args(["-c", script, host, port, &f.bot])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    ok(f.s.cli(&f.s.admin, &["tokens", "revoke", "bot"]));
    // Ended by the gateway (seen in the session list), then the client finds out.
    loop {
        let v = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
        let live = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["ended_at"].is_null());
        if !live {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writeln!(py.stdin.take().unwrap()).unwrap();
    let answer = lines.next().unwrap().unwrap();
    assert!(answer.starts_with("refused:"), "{answer}");
    let _ = py.wait();
    let v = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
    assert!(
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["end_reason"]
                .as_str()
                .is_some_and(|r| r.contains("ended by Gatehouse"))),
        "{v}"
    );
}

#[test]
fn local_files_are_never_read_and_garbage_ends_only_its_own_connection() {
    use std::io::{Read, Write};
    let f = setup("local");
    let load = format!("{}_load", f.table);
    direct_my(&format!(
        "DROP TABLE IF EXISTS {load}; CREATE TABLE {load} (line TEXT)"
    ));
    let data = f.s.path("secret.txt");
    write(&data, "a line from the client's disk\n");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let o = Command::new("mariadb")
        .args([
            "-h",
            host,
            "-P",
            port,
            "-u",
            "bot",
            "--local-infile=1",
            "shop",
            "-e",
        ])
        .arg(format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE {load}",
            data.display()
        ))
        .env("MYSQL_PWD", &f.bot)
        .output()
        .unwrap();
    assert!(!o.status.success(), "LOAD DATA LOCAL must be refused");
    assert_eq!(
        direct_my(&format!("SELECT count(*) FROM {load}")).trim(),
        "0"
    );
    // Bytes that are not MySQL: that connection ends, the server goes on.
    for junk in [
        &b"\xff\xff\xff\x00garbage"[..],
        &[0u8; 3][..],
        &b"\x05\x00\x00\x01\x03SELECT"[..],
    ] {
        let mut tcp = std::net::TcpStream::connect(&f.s.mysql).unwrap();
        let mut greeting = [0u8; 4];
        tcp.read_exact(&mut greeting).unwrap();
        let _ = tcp.write_all(junk);
        drop(tcp);
    }
    let (ok_, got, e) = via(&f.s, &f.bot, "SELECT 'still serving'");
    assert!(ok_, "{e}");
    assert_eq!(got.trim(), "still serving");
}

#[test]
fn a_just_in_time_grant_opens_the_connection_and_its_revocation_closes_it() {
    let f = setup("grant");
    let t = &f.table;
    let file = f.s.path("grant.toml");
    write(
        &file,
        "[policy]\ndefault = \"deny\"\n\n[[rules]]\nname = \"reads\"\nstatements = [\"read\"]\naction = \"allow\"\n\n\
         [[access]]\nconnections = [\"shop\"]\nrequesters = [\"contractors\"]\nlevels = [\"write\"]\napprovers = [\"dba\"]\nmax_duration = \"1h\"\n",
    );
    ok(f.s.cli(&f.s.admin, &["apply", "-f", file.to_str().unwrap()]));
    let carl = token(&f.s, "carl", "contractors");
    let dba = token(&f.s, "dana", "dba");
    let as_carl = |sql: &str| {
        let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
        let o = Command::new("mariadb")
            .args([
                "-h",
                host,
                "-P",
                port,
                "-u",
                "carl",
                "--batch",
                "--skip-column-names",
                "shop",
                "-e",
                sql,
            ])
            .env("MYSQL_PWD", &carl)
            .output()
            .unwrap();
        (o.status.success(), out(&o), err(&o))
    };
    let (ok_, _, e) = as_carl("SELECT 1");
    assert!(!ok_ && e.contains("may not use connection \"shop\""), "{e}");
    let asked = json(f.s.cli(
        &carl,
        &[
            "access",
            "request",
            "shop",
            "--level",
            "write",
            "--for",
            "30m",
            "--reason",
            "fix row 2",
            "--json",
        ],
    ));
    let id = asked["review"]["id"].as_str().unwrap().to_string();
    ok(f.s.cli(&dba, &["reviews", "approve", &id]));
    let (ok_, _, e) = as_carl(&format!("UPDATE {t} SET note = 'fixed' WHERE id = 2"));
    assert!(ok_, "{e}");
    assert_eq!(
        direct_my(&format!("SELECT note FROM {t} WHERE id = 2")).trim(),
        "fixed"
    );
    let grants = json(f.s.cli(&carl, &["access", "list", "--json"]));
    let grant = grants["grants"][0]["id"].as_str().unwrap().to_string();
    ok(f.s.cli(&f.s.admin, &["access", "revoke", &grant]));
    let (ok_, _, e) = as_carl("SELECT 1");
    assert!(!ok_ && e.contains("may not use connection"), "{e}");
}

#[test]
fn the_query_api_exec_and_mcp_reach_mysql_connections_through_the_same_policy() {
    let f = setup("api");
    let t = &f.table;
    // `gatehouse exec` (the query API): rows as JSON, the masked column flagged.
    let v = json(f.s.cli(
        &f.bot,
        &[
            "exec",
            "shop",
            "-c",
            &format!("SELECT id, email, score FROM {t} WHERE id <= ? ORDER BY id"),
            "--param",
            "2",
            "--format",
            "json",
        ],
    ));
    assert_eq!(v["columns"][1]["name"], "email");
    assert_eq!(v["columns"][1]["masked"], true, "{v}");
    assert_eq!(v["columns"][0]["masked"], false, "{v}");
    assert_eq!(v["rows"][0][0], 1, "numbers stay numbers: {v}");
    assert_eq!(v["rows"][1][2], "2.25", "decimals keep their digits: {v}");
    let email = v["rows"][0][1].as_str().unwrap();
    assert!(email != "ann@example.com" && email.ends_with(".com"), "{v}");
    // Text protocol too, and a refusal that names the rule.
    let v = json(f.s.cli(
        &f.bot,
        &[
            "exec",
            "shop",
            "-c",
            &format!("SELECT note FROM {t} WHERE id = 3"),
            "--format",
            "json",
        ],
    ));
    assert_eq!(v["rows"][0][0], "third");
    let denied =
        f.s.cli(&f.bot, &["exec", "shop", "-c", &format!("DELETE FROM {t}")]);
    assert!(
        !denied.status.success() && err(&denied).contains("no-deletes"),
        "{}",
        err(&denied)
    );
    assert_eq!(direct_my(&format!("SELECT count(*) FROM {t}")).trim(), "3");
    // The MCP server's tools (official Python SDK client).
    let steps = serde_json::json!([
        {"call": "tool", "name": "query", "arguments": {"connection": "shop", "sql": format!("SELECT email AS contact FROM {t} WHERE id = 2")}},
        {"call": "tool", "name": "describe_connection", "arguments": {"connection": "shop"}},
    ]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/mcp/python_client.py"
    );
    let mut child = Command::new("python3")
        .args([
            "-B",
            script,
            &format!("{}/mcp", f.s.url.trim_end_matches('/')),
        ])
        .env("GATEHOUSE_TOKEN", &f.bot)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}\n{}", out(&o), err(&o));
    let lines: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows = &lines[1]["json"];
    assert_eq!(rows["columns"][0]["masked"], true, "{rows}");
    let contact = rows["rows"][0][0].as_str().unwrap();
    assert!(
        contact != "bob@example.org" && contact.ends_with(".org"),
        "{rows}"
    );
    let schema = &lines[2]["json"];
    let table = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == t.as_str())
        .expect("the table is described");
    assert!(
        table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "email" && c["masked"] == true),
        "{table}"
    );
    // A statement for review is not waited on through the API: its review id comes back.
    review_writes(&f.s, t);
    let held = f.s.cli(
        &f.bot,
        &[
            "exec",
            "shop",
            "-c",
            &format!("UPDATE {t} SET note = 'x' WHERE id = 1"),
        ],
    );
    assert!(!held.status.success());
    assert!(
        err(&held).contains("held for review rv_")
            && err(&held).contains("gatehouse reviews approve rv_"),
        "{}",
        err(&held)
    );
    assert_eq!(
        direct_my(&format!("SELECT note FROM {t} WHERE id = 1")).trim(),
        "first"
    );
    // Recorded as sessions of protocol http, like PostgreSQL's.
    let v = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
    assert!(
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["protocol"] == "http" && x["connection"] == "shop"),
        "{v}"
    );
}

#[test]
fn detectors_redact_what_they_find_and_a_malformed_packet_after_login_ends_only_that_session() {
    let f = setup("detect");
    let t = &f.table;
    direct_my(&format!(
        "UPDATE {t} SET note = 'call ann@example.com' WHERE id = 1"
    ));
    let file = f.s.path("detect.toml");
    write(
        &file,
        "[policy]\ndefault = \"allow\"\n\n[[detectors]]\nconnections = [\"shop\"]\nkinds = [\"email\"]\n\n[[rules]]\nname = \"no-writes\"\nstatements = [\"write\"]\naction = \"deny\"\n",
    );
    ok(f.s.cli(&f.s.admin, &["apply", "-f", file.to_str().unwrap()]));
    let (ok_, got, e) = via(&f.s, &f.bot, &format!("SELECT note FROM {t} WHERE id = 1"));
    assert!(ok_, "{e}");
    assert!(
        got.starts_with("call ") && !got.contains("ann@example.com"),
        "{got}"
    );
    // What they find in a statement's text is redacted in its record, as
    // on PostgreSQL (the literal reaches the database as sent), and so it
    // is in a refused statement's.
    let (ok_, _, e) = via(
        &f.s,
        &f.bot,
        &format!("DELETE FROM {t} WHERE note = 'cy@example.net'"),
    );
    assert!(!ok_ && e.contains("no-writes"), "{e}");
    // An error that quotes it (the table named is not there).
    let (ok_, _, e) = via(&f.s, &f.bot, "SELECT 1 FROM `dan@example.org`");
    assert!(!ok_ && e.contains("doesn't exist"), "{e}");
    let (ok_, got, e) = via(&f.s, &f.bot, "SELECT 'write to bob@example.org' AS x");
    assert!(ok_, "{e}");
    assert!(got.contains("[REDACTED:email]"), "{got}");
    let mut recorded = String::new();
    for _ in 0..500 {
        let v = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
        let id = v["sessions"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if v["sessions"][0]["end_reason"].is_string() {
            recorded = json(f.s.cli(&f.s.admin, &["sessions", "show", &id, "--json"])).to_string();
            if recorded.contains("write to") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        recorded.contains("SELECT 'write to [REDACTED:email]' AS x")
            && !recorded.contains("bob@example.org"),
        "{recorded}"
    );
    let sessions = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
    let mut all = String::new();
    for x in sessions["sessions"].as_array().unwrap() {
        let id = x["id"].as_str().unwrap();
        all.push_str(&json(f.s.cli(&f.s.admin, &["sessions", "show", id, "--json"])).to_string());
    }
    assert!(
        all.contains("WHERE note = '[REDACTED:email]'")
            && !all.contains("cy@example.net")
            && all.contains("doesn't exist")
            && !all.contains("dan@example.org"),
        "{all}"
    );
    // The refused DELETE's audit event hashes its text as recorded.
    let refused_in = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .find(|id| {
            json(f.s.cli(&f.s.admin, &["sessions", "show", id, "--json"]))
                .to_string()
                .contains("DELETE FROM")
        })
        .expect("the refused DELETE was recorded");
    let deny = audited_refusal(&f.s, &refused_in);
    assert_eq!(
        deny["detail"]["statement_sha256"],
        gatehouse_core::sigv4::sha256_hex(
            format!("DELETE FROM {t} WHERE note = '[REDACTED:email]'").as_bytes()
        ),
        "{deny}"
    );
    // Logged in, then bytes that are no MySQL packet (a sequence id out of
    // order): that session ends; the server and other sessions go on.
    let script = r#"
import sys, pymysql
c = pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user="bot", password=sys.argv[3], database="shop")
c._sock.sendall(b"\x05\x00\x00\x07\x03SELECT")
c._sock.settimeout(10)
print("closed" if c._sock.recv(100) == b"" else "answered")
"#;
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(script, &[host, port, &f.bot]);
    assert!(ok_, "{e}");
    assert_eq!(got.trim(), "closed");
    let v = json(f.s.cli(&f.s.admin, &["sessions", "list", "--user", "bot", "--json"]));
    assert!(
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["end_reason"]
                .as_str()
                .is_some_and(|r| r.contains("protocol error from the client"))),
        "{v}"
    );
    let (ok_, got, _) = via(&f.s, &f.bot, "SELECT 'still serving'");
    assert!(ok_ && got.trim() == "still serving");
}

#[test]
fn cursors_fetch_masked_rows_and_statements_reset() {
    let f = setup("cursor");
    let script = r#"
import sys, json, mysql.connector
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = mysql.connector.connect(host=host, port=port, user="bot", password=token, database="shop",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True)
st = c.cmd_stmt_prepare(f"SELECT id, email FROM {table} ORDER BY id".encode())
# COM_STMT_EXECUTE with a read-only cursor, then COM_STMT_FETCH two rows at a time.
c.cmd_stmt_execute(st["statement_id"], data=(), parameters=(), flags=1)
c.cmd_stmt_fetch(st["statement_id"], 2)
rows, _ = c.get_rows(binary=True, columns=st["columns"])
c.cmd_stmt_reset(st["statement_id"])
c.cmd_stmt_close(st["statement_id"])
print(json.dumps([list(r) for r in rows]))
"#;
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(script, &[host, port, &f.bot, &f.table]);
    assert!(ok_, "{e}");
    let rows: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[0][0], 1);
    let email = rows[0][1].as_str().unwrap();
    assert!(
        email != "ann@example.com" && email.ends_with(".com"),
        "fetched rows are masked: {rows}"
    );
}

/// Applies a declarative file with MySQL connection `name` (gh_app on
/// MariaDB's `test`, for the agents group), followed by `more`.
fn apply_mysql_connection(s: &Server, name: &str, more: &str) {
    apply_mysql_connection_as(s, name, "gh_app", &["agents"], more);
}

/// [`apply_mysql_connection`] logging in upstream as `user` (whose
/// password is the app's), open to `groups`.
fn apply_mysql_connection_as(s: &Server, name: &str, user: &str, groups: &[&str], more: &str) {
    let groups = groups
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let file = s.path(&format!("{name}.toml"));
    write(
        &file,
        &format!(
            "[[connections]]\nname = \"{name}\"\nkind = \"mysql\"\nurl = \"mysql://{user}@127.0.0.1:3306/test?sslmode=disable\"\npassword = {{ env = \"SHOP_MY_PASSWORD\" }}\ngroups = [{groups}]\n{more}"
        ),
    );
    ok(s.cli_with(
        &s.admin,
        &["apply", "-f", file.to_str().unwrap()],
        None,
        &[("SHOP_MY_PASSWORD", APP_PASSWORD)],
    ));
}

/// A MySQL connection's `max_sessions` (here from a declarative file): the
/// session past it gets MySQL's own "Too many connections" (1040) naming
/// the limit, and the place of a session that ends is taken again. Its
/// `statement_timeout` interrupts a statement that runs longer.
#[test]
fn max_sessions_bounds_a_mysql_connection_s_open_sessions() {
    let f = setup("cap");
    apply_mysql_connection(
        &f.s,
        "capped",
        "max_sessions = 1\nstatement_timeout = \"300ms\"\n",
    );
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(
        r#"
import json, sys, time
import pymysql
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def connect():
    return pymysql.connect(host=host, port=port, user="bot", password=token, database="capped")
first = connect()
out = {}
try:
    connect()
    out["second"] = "connected"
except pymysql.err.OperationalError as e:
    out["second"] = [e.args[0], e.args[1]]
first.close()
deadline = time.monotonic() + 20
while True:
    try:
        c = connect()
        with c.cursor() as cur:
            cur.execute("SELECT 41 + 1")
            out["after"] = cur.fetchone()[0]
            try:
                cur.execute("SELECT SLEEP(20)")
                out["sleep"] = cur.fetchone()[0]
            except pymysql.err.MySQLError as e:
                out["sleep"] = [e.args[0], e.args[1]]
            # Lifted upstream, the limit still holds: Gatehouse ends the
            # statement itself a moment past it.
            cur.execute("SET SESSION max_statement_time = 0")
            try:
                cur.execute("SELECT SLEEP(20)")
                out["lifted"] = cur.fetchone()[0]
            except pymysql.err.MySQLError as e:
                out["lifted"] = [e.args[0], e.args[1]]
            cur.execute("SELECT 6 * 7")
            out["after_lifted"] = cur.fetchone()[0]
        break
    except pymysql.err.OperationalError as e:
        if e.args[0] != 1040 or time.monotonic() > deadline:
            raise
        time.sleep(0.02)
print(json.dumps(out))
"#,
        &[host, port, &f.bot],
    );
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    assert_eq!(v["second"][0], 1040, "{v}");
    assert!(
        v["second"][1]
            .as_str()
            .unwrap()
            .contains("connection \"capped\" has 1 sessions open, its limit (max_sessions)"),
        "{v}"
    );
    assert_eq!(v["after"], 42, "{v}");
    // The connection's statement timeout applies upstream (MariaDB's
    // max_statement_time).
    assert_eq!(v["sleep"][0], 1969, "{v}");
    // Lifted by the client, it is still enforced (KILL QUERY: MariaDB ends
    // an interrupted SLEEP with 1, or the statement with 1317).
    assert!(
        v["lifted"] == 1 || v["lifted"][0] == 1317,
        "the lifted statement timeout was not enforced: {v}"
    );
    assert_eq!(v["after_lifted"], 42, "the session goes on: {v}");
}

/// `KILL QUERY id` (what the `mysql` client sends on Ctrl+C, on a second
/// connection) names the connection id Gatehouse gave the session's
/// client: Gatehouse ends that session's statement upstream if the session
/// is the caller's own on the same connection. Every caller of a
/// connection logs in upstream as one user, who may end any of its
/// threads, so a KILL of an upstream id, of another caller's session, or of
/// a whole user is refused and never reaches the server.
#[test]
fn kill_query_ends_only_the_callers_own_statement() {
    let f = setup("kill");
    let other = token(&f.s, "other", "agents");
    // A policy without the fixture's rule against admin statements.
    apply_mysql_connection(&f.s, "killable", "\n[policy]\ndefault = \"allow\"\n");
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(
        r#"
import json, sys, threading, time
import pymysql
host, port, bot, other = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def connect(token):
    return pymysql.connect(host=host, port=port, user="x", password=token, database="killable")
def run(conn, sql):
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return ["ran", cur.fetchall()]
    except pymysql.err.MySQLError as e:
        return [e.args[0], e.args[1]]
a, b, c = connect(bot), connect(bot), connect(other)
upstream_a = run(a, "SELECT CONNECTION_ID()")[1][0][0]
out = {"ids_differ": upstream_a != a.thread_id()}
result = {}
sleeper = threading.Thread(target=lambda: result.update(sleep=run(a, "SELECT SLEEP(30) AS gh_kill_test")))
sleeper.start()
root = pymysql.connect(host="127.0.0.1", port=3306, user="root")
deadline = time.monotonic() + 20
while True:
    with root.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.processlist WHERE id = %s AND info LIKE %s",
                    (upstream_a, "%gh_kill_test%"))
        if cur.fetchone()[0] == 1:
            break
    if time.monotonic() > deadline:
        raise SystemExit("A's statement never ran upstream")
    time.sleep(0.02)
out["other_caller"] = run(c, "KILL QUERY %d" % a.thread_id())
out["upstream_id"] = run(b, "KILL QUERY %d" % upstream_a)
out["user"] = run(b, "KILL USER gh_app")
out["among_others"] = run(b, "SELECT 1; KILL QUERY %d" % a.thread_id())
out["still_running"] = sleeper.is_alive()
out["kill"] = run(b, "KILL QUERY %d" % a.thread_id())
sleeper.join(20)
out["sleep"] = result.get("sleep")
out["a_after"] = run(a, "SELECT 41 + 1")
import mysql.connector
d = mysql.connector.connect(host=host, port=port, user="x", password=bot, database="killable",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True)
try:
    d.cursor(prepared=True).execute("KILL QUERY %d" % a.thread_id())
    out["prepared"] = "ran"
except mysql.connector.Error as e:
    out["prepared"] = [e.errno, e.msg]
print(json.dumps(out))
"#,
        &[host, port, &f.bot, &other],
    );
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    assert_eq!(v["ids_differ"], true, "{v}");
    for refused in ["other_caller", "upstream_id"] {
        assert_eq!(v[refused][0], 1227, "{refused}: {v}");
        let msg = v[refused][1].as_str().unwrap();
        assert!(msg.contains("(rule kill)"), "{msg}");
        assert!(msg.contains("has no session with id"), "{msg}");
    }
    for refused in ["user", "among_others"] {
        assert_eq!(v[refused][0], 1227, "{refused}: {v}");
        assert!(
            v[refused][1]
                .as_str()
                .unwrap()
                .contains("Gatehouse passes on a KILL only as KILL [QUERY | CONNECTION] ID"),
            "{v}"
        );
    }
    assert_eq!(
        v["still_running"], true,
        "a refused KILL ended nothing: {v}"
    );
    assert_eq!(v["kill"][0], "ran", "{v}");
    // MariaDB ends an interrupted SLEEP with 1 (or the statement with 1317).
    let sleep = &v["sleep"];
    assert!(
        sleep == &serde_json::json!(["ran", [[1]]]) || sleep[0] == 1317,
        "A's statement was not interrupted: {v}"
    );
    assert_eq!(v["a_after"], serde_json::json!(["ran", [[42]]]), "{v}");
    assert_eq!(v["prepared"][0], 1227, "{v}");
    assert!(
        v["prepared"][1]
            .as_str()
            .unwrap()
            .contains("Gatehouse does not prepare a KILL"),
        "{v}"
    );

    // The mariadb client's Ctrl+C: a second login without a database that
    // sends KILL QUERY with the id Gatehouse gave the first.
    let mut cli = Command::new("mariadb")
        .args(["-h", host, "-P", port, "-u", "bot", "killable"])
        .args(["-e", "SELECT SLEEP(30) AS gh_ctrl_c"])
        .env("MYSQL_PWD", &f.bot)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mariadb");
    let started = std::time::Instant::now();
    while direct_my("SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%gh_ctrl_c%' AND info NOT LIKE '%processlist%'").trim() != "1" {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = cli.kill();
            let o = cli.wait_with_output().expect("mariadb");
            panic!("the statement never ran upstream: {}", err(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &cli.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let waited = std::time::Instant::now();
    let status = loop {
        if let Some(status) = cli.try_wait().expect("wait") {
            break status;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(20),
            "the client did not end after Ctrl+C"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    std::io::Read::read_to_string(cli.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    std::io::Read::read_to_string(cli.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stdout.contains("Ctrl-C -- query killed"), "{stdout}");
    assert!(stderr.contains("ERROR 1317"), "{stderr}");
    // Without a database, anything but a KILL is told to name a connection.
    // The mariadb client without a database, as bot with `token`.
    let no_database = |token: &str, sql: &str| {
        Command::new("mariadb")
            .args(["-h", host, "-P", port, "-u", "bot", "-e", sql])
            .env("MYSQL_PWD", token)
            .output()
            .expect("mariadb")
    };
    let o = no_database(&f.bot, "SELECT 1");
    assert!(!o.status.success());
    assert!(
        err(&o).contains("ERROR 1046") && err(&o).contains("name the connection as the database"),
        "{}",
        err(&o)
    );
    // A wrong token there is refused and audited as at any login.
    let o = no_database("gh_not_a_token", "KILL QUERY 1");
    assert!(err(&o).contains("ERROR 1045"), "{}", err(&o));
    // A KILL there of a session that is not the caller's is refused, and
    // audited as any refused statement.
    let o = no_database(&f.bot, "KILL QUERY 4000000");
    assert!(
        err(&o).contains("rule kill") && err(&o).contains("no session with id 4000000"),
        "{}",
        err(&o)
    );
    let audit = ok(f.s.cli(&f.s.admin, &["audit", "list"]));
    assert!(
        audit
            .lines()
            .any(|l| l.contains("statement.kill") && l.contains("bot")),
        "{audit}"
    );
    assert!(audit.contains("login.refused"), "{audit}");
    let events: serde_json::Value =
        serde_json::from_str(&ok(f.s.cli(&f.s.admin, &["audit", "list", "--json"]))).unwrap();
    let control_denials: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "statement.deny" && e["detail"]["control_login"] == true)
        .collect();
    assert_eq!(control_denials.len(), 1, "{events:#}");
    assert_eq!(control_denials[0]["detail"]["rule"], "kill");
    assert_eq!(
        control_denials[0]["actor"], "bot",
        "{:#}",
        control_denials[0]
    );
}

/// Ctrl+C in the mariadb client while its statement waits for review ends
/// the wait: the statement is refused and never runs (nothing ran upstream
/// for a KILL there to end).
#[test]
fn ctrl_c_refuses_a_statement_waiting_for_review() {
    let f = setup("heldkill");
    let Held {
        client: mut held,
        notes,
        ..
    } = hold_an_update(&f, "never");
    assert!(
        Command::new("kill")
            .args(["-INT", &held.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let waited = std::time::Instant::now();
    while held.try_wait().unwrap().is_none() {
        if waited.elapsed() > std::time::Duration::from_secs(20) {
            let _ = held.kill();
            panic!("the statement still waits for review after Ctrl+C");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = held.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("Ctrl-C -- query killed"), "{}", out(&o));
    assert!(
        err(&o).contains("ERROR 1227")
            && err(&o).contains("a KILL ended the statement while it waited for review"),
        "{}",
        err(&o)
    );
    assert_eq!(
        direct_my(&format!("SELECT note FROM {notes}")).trim(),
        "old"
    );
}

/// A read-only MySQL connection (`read_only = true`): its sessions start
/// upstream with `SET SESSION TRANSACTION READ ONLY`, so MariaDB itself
/// refuses every write (1792); statements that would leave read-only mode
/// are refused whatever the policy (rule `read-only`), in any spelling, as
/// are texts made at run time; a COM_RESET_CONNECTION, which undoes the
/// session's settings upstream, is followed by them again.
#[test]
fn a_read_only_mysql_connection_stays_read_only() {
    let f = setup("ro");
    // No rule refuses anything: read-only mode alone does.
    apply_mysql_connection(
        &f.s,
        "reports",
        "read_only = true\n\n[policy]\ndefault = \"allow\"\n",
    );
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let (ok_, got, e) = python(
        r#"
import json, sys
import pymysql, mysql.connector
host, port, token, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
c = pymysql.connect(host=host, port=port, user="bot", password=token, database="reports", autocommit=True)
cur = c.cursor()
def run(sql):
    try:
        cur.execute(sql)
        return "ran"
    except pymysql.err.MySQLError as e:
        return [e.args[0], e.args[1]]
cur.execute(f"SELECT count(*) FROM {table}")
out["count"] = cur.fetchone()[0]
out["insert"] = run(f"INSERT INTO {table} VALUES (9, 'x@example.com', 'x', 1)")
out["create"] = run("CREATE TABLE gh_ro_never (a int)")
out["set_text"] = run("SET @s = CONCAT('SET tx_r', 'ead_only = 0')")
out["leaving"] = {sql: run(sql) for sql in [
    "SET SESSION TRANSACTION READ WRITE",
    "SET tx_read_only = 0",
    "SET @@session.tx_read_only = OFF",
    "START TRANSACTION READ WRITE",
    f"SET STATEMENT tx_read_only = 0 FOR INSERT INTO {table} VALUES (9, 'x', 'x', 1)",
    "/*!100000 SET tx_read_only = 0 */",
    "PREPARE p FROM @s",
    "EXECUTE IMMEDIATE CONCAT('SET tx_r', 'ead_only = 0')",
    "BEGIN NOT ATOMIC SET tx_read_only = 0; END",
]}
out["isolation"] = run("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
cur.execute("SELECT @@tx_read_only")
out["still"] = cur.fetchone()[0]
out["insert_after"] = run(f"INSERT INTO {table} VALUES (9, 'x@example.com', 'x', 1)")

m = mysql.connector.connect(host=host, port=port, user="bot", password=token, database="reports",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True)
m.cmd_reset_connection()
mc = m.cursor()
mc.execute("SELECT @@tx_read_only")
out["after_reset"] = mc.fetchone()[0]
try:
    mc.execute(f"INSERT INTO {table} VALUES (9, 'x@example.com', 'x', 1)")
    out["insert_after_reset"] = "ran"
except mysql.connector.Error as e:
    out["insert_after_reset"] = [e.errno, e.msg]
pc = m.cursor(prepared=True)
try:
    pc.execute("SET tx_read_only = 0")
    out["prepared"] = "ran"
except mysql.connector.Error as e:
    out["prepared"] = [e.errno, e.msg]
print(json.dumps(out))
"#,
        &[host, port, &f.bot, &f.table],
    );
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    assert_eq!(v["count"], 3, "{v}");
    // The database refuses writes (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION).
    assert_eq!(v["insert"][0], 1792, "{v}");
    assert_eq!(v["create"][0], 1792, "{v}");
    for (sql, r) in v["leaving"].as_object().unwrap() {
        assert_eq!(r[0], 1227, "{sql}: {r}");
        let message = r[1].as_str().unwrap();
        assert!(
            message.contains("rule read-only")
                && message.contains("connection \"reports\" is read-only"),
            "{sql}: {message}"
        );
    }
    assert_eq!(v["set_text"], "ran", "{v}");
    assert_eq!(v["isolation"], "ran", "{v}");
    assert_eq!(v["still"], 1, "{v}");
    assert_eq!(v["insert_after"][0], 1792, "{v}");
    assert_eq!(v["after_reset"], 1, "read-only again after a reset: {v}");
    assert_eq!(v["insert_after_reset"][0], 1792, "{v}");
    assert_eq!(v["prepared"][0], 1227, "{v}");
    assert_eq!(
        direct_my(&format!("SELECT count(*) FROM {}", f.table)).trim(),
        "3"
    );
    // The query API's sessions are read-only too (the server refuses).
    let written = f.s.cli(
        &f.bot,
        &[
            "exec",
            "reports",
            "-c",
            &format!(
                "INSERT INTO {} VALUES (9, 'x@example.com', 'x', 1)",
                f.table
            ),
        ],
    );
    assert!(
        !written.status.success() && err(&written).contains("READ ONLY"),
        "{}",
        err(&written)
    );
    // policy test says the same.
    let o = f.s.cli(
        &f.s.admin,
        &[
            "policy",
            "test",
            "--as",
            "agents",
            "--connection",
            "reports",
            "SET SESSION TRANSACTION READ WRITE",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(out(&o).contains("rule:     read-only"), "{}", out(&o));
}

/// Text prepared from a variable is not seen by the analysis, so it could
/// touch any table: a rule refusing a table refuses `PREPARE … FROM
/// @variable` and `EXECUTE IMMEDIATE` (fail closed), while `PREPARE … FROM
/// 'text'` is decided as the text it prepares.
#[test]
fn statements_made_from_variables_meet_table_rules() {
    let f = setup("dyn");
    apply_mysql_connection(
        &f.s,
        "dynamic",
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"no-table\"\ntables = [\"{}\"]\naction = \"deny\"\n",
            f.table
        ),
    );
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = pymysql_session("dynamic")
        + r#"
out = {sql: run(sql) for sql in [
    f"SET @s = 'SELECT email FROM {table}'",
    "PREPARE p FROM @s",
    "EXECUTE p",
    f"EXECUTE IMMEDIATE 'SELECT email FROM {table}'",
    f"PREPARE q FROM 'SELECT email FROM {table}'",
    "PREPARE r FROM 'SELECT 6 * 7'",
    "EXECUTE r",
    "EXECUTE IMMEDIATE @s",
    "EXECUTE IMMEDIATE 'SELECT 6 * 7'",
]}
print(json.dumps(out))
"#;
    let (ok_, got, e) = python(&script, &[host, port, &f.bot, &f.table]);
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    let table = &f.table;
    let result = |sql: &str| v[sql].clone();
    assert_eq!(
        result(&format!("SET @s = 'SELECT email FROM {table}'"))[0],
        "ran",
        "{v}"
    );
    for sql in [
        "PREPARE p FROM @s".to_string(),
        "EXECUTE IMMEDIATE @s".to_string(),
        format!("EXECUTE IMMEDIATE 'SELECT email FROM {table}'"),
        format!("PREPARE q FROM 'SELECT email FROM {table}'"),
    ] {
        let r = result(&sql);
        assert_eq!(r[0], 1227, "{sql}: {v}");
        assert!(
            r[1].as_str().unwrap().contains("rule no-table"),
            "{sql}: {r}"
        );
    }
    // Never prepared (refused): what it would run is unknown, so a rule
    // on a table refuses it (fail closed).
    assert_eq!(result("EXECUTE p")[0], 1227, "{v}");
    assert!(
        result("EXECUTE p")[1]
            .as_str()
            .unwrap()
            .contains("rule no-table"),
        "{v}"
    );
    assert_eq!(
        result("EXECUTE r"),
        serde_json::json!(["ran", [[42]]]),
        "{v}"
    );
    assert_eq!(
        result("EXECUTE IMMEDIATE 'SELECT 6 * 7'"),
        serde_json::json!(["ran", [[42]]]),
        "a text the analysis reads is decided as what it runs: {v}"
    );
}

/// `gh_blind`, a MariaDB user (with the app's password) that may read
/// `test` but not see the definitions of views (no `SHOW VIEW`).
fn blind_user() {
    direct_my(&format!(
        "CREATE USER IF NOT EXISTS 'gh_blind'@'%' IDENTIFIED BY '{APP_PASSWORD}';
         CREATE USER IF NOT EXISTS 'gh_blind'@'localhost' IDENTIFIED BY '{APP_PASSWORD}';
         GRANT SELECT ON test.* TO 'gh_blind'@'%'; GRANT SELECT ON test.* TO 'gh_blind'@'localhost';"
    ));
}

/// A deny rule on a table is met through the views over it: MariaDB keeps
/// each view's definition as text, which Gatehouse looks up (with the
/// connection's stored credential) and analyses before it decides, views
/// over views followed; the refusal names the view. Text and server-side
/// prepared statements, and a view replaced through the gateway.
#[test]
fn a_rule_on_a_table_is_met_through_the_views_over_it() {
    let f = setup("views");
    let t = &f.table;
    direct_my(&format!(
        "CREATE OR REPLACE VIEW {t}_v AS SELECT id, note FROM {t};
         CREATE OR REPLACE VIEW {t}_vv AS SELECT id FROM {t}_v WHERE id > 0;
         DROP TABLE IF EXISTS {t}_open; CREATE TABLE {t}_open (id INT); INSERT INTO {t}_open VALUES (5);
         CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}_open;"
    ));
    apply_mysql_connection(
        &f.s,
        "views",
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"no-vault\"\nstatements = [\"read\", \"write\"]\ntables = [\"{t}\"]\naction = \"deny\"\n"
        ),
    );
    let (host, port) = f.s.mysql.rsplit_once(':').unwrap();
    let script = pymysql_session("views")
        + r#"
import mysql.connector
t = table
out = {}
for sql in [f"SELECT * FROM {t}_v", f"SELECT count(*) FROM test.{t}_vv",
            f"SELECT 1 FROM DUAL WHERE EXISTS (SELECT 1 FROM {t}_vv)",
            f"UPDATE {t}_v SET note = 'x' WHERE id = 1",
            f"PREPARE p FROM 'SELECT id FROM {t}_vv'", "EXECUTE p",
            f"SELECT id FROM {t}_open_v",
            f"CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}",
            f"SELECT id FROM {t}_open_v#again"]:
    out[sql] = run(sql)
c.close()
c = mysql.connector.connect(host=host, port=port, user="bot", password=token, database="views",
                            ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False, use_pure=True)
cur = c.cursor(prepared=True)
try:
    cur.execute(f"SELECT id FROM {t}_vv WHERE id = %s", (2,))
    out["prepared"] = ["ran", [list(r) for r in cur.fetchall()]]
except mysql.connector.Error as e:
    out["prepared"] = [e.errno, e.msg]
print(json.dumps(out))
"#;
    let (ok_, got, e) = python(&script, &[host, port, &f.bot, t]);
    assert!(ok_, "{e}");
    let v: serde_json::Value = serde_json::from_str(got.trim()).expect(&got);
    let refused_through = |sql: &str, view: &str| {
        let r = &v[sql];
        assert_eq!(r[0], 1227, "{sql}: {v}");
        let message = r[1].as_str().unwrap();
        assert!(
            message.contains("rule no-vault")
                && message.contains(&format!("through the view {view}, which reads"))
                && message.contains(&format!("test.{t}")),
            "{sql}: {message}"
        );
    };
    // The view, a view over it (qualified), in a subquery, a write through
    // the view.
    refused_through(&format!("SELECT * FROM {t}_v"), &format!("{t}_v"));
    refused_through(
        &format!("SELECT count(*) FROM test.{t}_vv"),
        &format!("test.{t}_vv"),
    );
    refused_through(
        &format!("SELECT 1 FROM DUAL WHERE EXISTS (SELECT 1 FROM {t}_vv)"),
        &format!("{t}_vv"),
    );
    refused_through(
        &format!("UPDATE {t}_v SET note = 'x' WHERE id = 1"),
        &format!("{t}_v"),
    );
    // SQL's PREPARE (an `admin` statement, which this rule leaves alone),
    // then its EXECUTE, decided as the text it runs.
    assert_eq!(
        v[format!("PREPARE p FROM 'SELECT id FROM {t}_vv'")][0],
        "ran",
        "{v}"
    );
    refused_through("EXECUTE p", &format!("{t}_vv"));
    // A view over another table runs; replaced through the gateway (a
    // statement the rule's classes leave alone), it is looked up again.
    assert_eq!(
        v[format!("SELECT id FROM {t}_open_v")],
        serde_json::json!(["ran", [[5]]]),
        "{v}"
    );
    assert_eq!(
        v[format!("CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}")],
        serde_json::json!(["ran", []]),
        "{v}"
    );
    refused_through(
        &format!("SELECT id FROM {t}_open_v#again"),
        &format!("{t}_open_v"),
    );
    // A server-side prepared statement (COM_STMT_PREPARE).
    assert_eq!(v["prepared"][0], 1227, "{v}");
    assert!(
        v["prepared"][1].as_str().unwrap().contains("no-vault"),
        "{v}"
    );
    // Nothing was changed through the view.
    assert_eq!(
        direct_my(&format!("SELECT note FROM {t} WHERE id = 1")).trim(),
        "first"
    );
    // A user without SHOW VIEW sees no definitions: Gatehouse cannot tell
    // what a view reads, so the rule's table condition counts as met (fail
    // closed), while a table runs.
    blind_user();
    direct_my(&format!(
        "CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}_open;"
    ));
    apply_mysql_connection_as(
        &f.s,
        "blind",
        "gh_blind",
        &["agents"],
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"no-vault\"\nstatements = [\"read\", \"write\"]\ntables = [\"{t}\"]\naction = \"deny\"\n"
        ),
    );
    let blind = |sql: &str| via_to(&f.s, &f.bot, "blind", sql);
    let (ran, _, e) = blind(&format!("SELECT id FROM {t}_open_v"));
    assert!(!ran, "{e}");
    assert!(
        e.contains("rule no-vault")
            && e.contains("could not look up as views")
            && e.contains(&format!("{t}_open_v is not visible")),
        "{e}"
    );
    assert_eq!(blind(&format!("SELECT id FROM {t}_open")).1.trim(), "5");
    // `policy test` looks the views up as the proxy does.
    let o = f.s.cli(
        &f.s.admin,
        &[
            "policy",
            "test",
            "--as",
            "agents",
            "--connection",
            "views",
            "--json",
            &format!("SELECT * FROM {t}_vv"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let d: serde_json::Value = serde_json::from_str(&out(&o)).expect("policy test --json");
    assert_eq!(d["decision"]["verdict"]["rule"], "no-vault", "{d}");
    let message = d["decision"]["verdict"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("through the view {t}_vv, which reads")),
        "{message}"
    );
}

/// MySQL reports a view, not its tables, as a column's origin: a view that
/// reads a masked column has all its columns masked (the strictest method
/// of the masks on its tables; other types become NULL), views over views
/// too, whether or not the statement names the masked column; a view that
/// reads no masked column is left alone.
#[test]
fn a_view_over_a_masked_column_is_masked() {
    let f = setup("vmask");
    let t = &f.table;
    direct_my(&format!(
        "CREATE OR REPLACE VIEW {t}_ev AS SELECT id, email AS contact FROM {t};
         CREATE OR REPLACE VIEW {t}_ev2 AS SELECT * FROM {t}_ev;
         CREATE OR REPLACE VIEW {t}_iv AS SELECT id, note FROM {t};"
    ));
    // Directly, the data is there.
    assert_eq!(
        direct_my(&format!("SELECT contact FROM {t}_ev2 WHERE id = 1")).trim(),
        "ann@example.com"
    );
    for sql in [
        format!("SELECT id, contact FROM {t}_ev WHERE id = 1"),
        format!("SELECT * FROM {t}_ev2 WHERE id = 1"),
    ] {
        let (ran, got, e) = via(&f.s, &f.bot, &sql);
        assert!(ran, "{sql}: {e}");
        let (id, contact) = got.trim().split_once('\t').expect(&got);
        assert_eq!(id, "NULL", "{sql}: {got}");
        assert!(
            contact != "ann@example.com" && contact.ends_with(".com"),
            "{sql}: {got}"
        );
    }
    let (ran, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT id, note FROM {t}_iv WHERE id = 1"),
    );
    assert!(ran, "{e}");
    assert_eq!(got.trim(), "1\tfirst");
    // A user that cannot see the definitions: what a view reads is not
    // known, so its columns are masked (a table's are not).
    blind_user();
    apply_mysql_connection_as(
        &f.s,
        "blindmask",
        "gh_blind",
        &["agents"],
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[masks]]\ncolumns = [\"test.{t}.email\"]\nmethod = \"partial\"\n"
        ),
    );
    let (ran, got, e) = via_to(
        &f.s,
        &f.bot,
        "blindmask",
        &format!("SELECT note FROM {t}_iv WHERE id = 1"),
    );
    assert!(ran, "{e}");
    assert_ne!(got.trim(), "first");
    let (_, got, _) = via_to(
        &f.s,
        &f.bot,
        "blindmask",
        &format!("SELECT note FROM {t} WHERE id = 1"),
    );
    assert_eq!(got.trim(), "first");
}

/// What views read is asked again after a caller no rule holds replaces
/// one (such a statement is decided without an analysis, by the words it
/// begins with), not only after a restricted caller's DDL.
#[test]
fn a_view_replaced_by_a_caller_no_rule_holds_is_looked_up_again() {
    let f = setup("vrep");
    let t = &f.table;
    direct_my(&format!(
        "DROP TABLE IF EXISTS {t}_open; CREATE TABLE {t}_open (id INT); INSERT INTO {t}_open VALUES (5);
         CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}_open;"
    ));
    apply_mysql_connection_as(
        &f.s,
        "vrep",
        "gh_app",
        &["agents", "dba"],
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[rules]]\nname = \"no-vault\"\ngroups = [\"agents\"]\ntables = [\"{t}\"]\naction = \"deny\"\n"
        ),
    );
    let dba = token(&f.s, "dba", "dba");
    let read = format!("SELECT id FROM {t}_open_v");
    assert_eq!(via_to(&f.s, &f.bot, "vrep", &read).1.trim(), "5");
    let (ran, _, e) = via_to(
        &f.s,
        &dba,
        "vrep",
        &format!("CREATE OR REPLACE VIEW {t}_open_v AS SELECT id FROM {t}"),
    );
    assert!(ran, "{e}");
    let (ran, _, e) = via_to(&f.s, &f.bot, "vrep", &read);
    assert!(!ran);
    assert!(
        e.contains("rule no-vault") && e.contains(&format!("through the view {t}_open_v")),
        "{e}"
    );
}

/// A caller under column masks cannot store masked data where it would be
/// read back unmasked (another table, a user variable), nor rename the
/// masked table or its columns; a computed column over a view of the
/// masked table is masked too. What copies no masked data runs.
#[test]
fn masked_data_is_not_copied_out_from_under_the_masks() {
    let f = setup("mcopy");
    let t = &f.table;
    direct_my(&format!(
        "DROP TABLE IF EXISTS {t}_copy; CREATE TABLE {t}_copy (id INT, email VARCHAR(100));
         CREATE OR REPLACE VIEW {t}_cv AS SELECT id, email AS contact FROM {t};"
    ));
    // Masks alone: no rule refuses writes here.
    apply_mysql_connection_as(
        &f.s,
        "mcopy",
        "gh_app",
        &["agents"],
        &format!(
            "\n[policy]\ndefault = \"allow\"\n\n[[masks]]\ncolumns = [\"test.{t}.email\"]\nmethod = \"partial\"\n"
        ),
    );
    let via = |_: &Server, token: &str, sql: &str| via_to(&f.s, token, "mcopy", sql);
    for sql in [
        format!("INSERT INTO {t}_copy SELECT id, email FROM {t}"),
        format!("REPLACE INTO {t}_copy SELECT id, upper(email) FROM {t}"),
        format!("INSERT INTO {t}_copy SELECT id, contact FROM {t}_cv"),
        format!("UPDATE {t}_copy c JOIN {t} s ON s.id = c.id SET c.email = s.email"),
        format!("CREATE TABLE {t}_ctas AS SELECT email FROM {t}"),
        format!("SET @e = (SELECT email FROM {t} WHERE id = 1)"),
        format!("SELECT email INTO @e FROM {t} WHERE id = 1"),
        format!("SELECT @e := email FROM {t} WHERE id = 1"),
        format!("ALTER TABLE {t} RENAME COLUMN email TO e"),
        format!("RENAME TABLE {t} TO {t}_gone"),
    ] {
        let (ran, _, e) = via(&f.s, &f.bot, &sql);
        assert!(!ran && e.contains("masked"), "{sql}: {e}");
    }
    // Nothing reached the copy, and the table keeps its name and columns.
    assert_eq!(
        direct_my(&format!("SELECT count(*) FROM {t}_copy")).trim(),
        "0"
    );
    assert_eq!(
        direct_my(&format!("SELECT email FROM {t} WHERE id = 1")).trim(),
        "ann@example.com"
    );
    // A computed column over the view is masked.
    let (ran, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT upper(contact) FROM {t}_cv WHERE id = 1"),
    );
    assert!(ran, "{e}");
    assert!(!got.to_lowercase().contains("ann@"), "{got}");
    // Copies of what is not masked run.
    for sql in [
        format!("INSERT INTO {t}_copy SELECT id, note FROM {t}"),
        format!("INSERT INTO {t}_copy VALUES (9, 'nobody@example.com')"),
        format!("UPDATE {t}_copy SET id = 10 WHERE email = 'nobody@example.com'"),
        "SET @x = 'plain'".to_string(),
    ] {
        let (ran, _, e) = via(&f.s, &f.bot, &sql);
        assert!(ran, "{sql}: {e}");
    }
    assert_eq!(
        direct_my(&format!("SELECT count(*) FROM {t}_copy")).trim(),
        "4"
    );
}

/// The server quotes values in its errors and warnings: a masked column
/// read into an error message (a duplicate key of the `FLOOR(RAND(0)*2)`
/// grouping) or a warning (`SHOW WARNINGS` after a comparison or cast that
/// truncated it) must not bring the value past the mask.
#[test]
fn masked_values_do_not_leave_in_errors_or_warnings() {
    let f = setup("merr");
    let t = &f.table;
    for sql in [
        format!("SELECT 1 FROM {t} WHERE email = 0; SHOW WARNINGS"),
        format!("SELECT CAST(email AS DECIMAL) FROM {t} WHERE id = 1; SHOW WARNINGS"),
        format!("SELECT 1 FROM {t} WHERE email = 0; SHOW ERRORS; SHOW WARNINGS LIMIT 5"),
        format!("SELECT CONVERT(email, DATE) FROM {t} WHERE id = 1; show   warnings"),
        format!(
            "SELECT 1 FROM (SELECT count(*), CONCAT(email, FLOOR(RAND(0) * 2)) x FROM {t}, information_schema.tables GROUP BY x) a"
        ),
    ] {
        let (_, got, e) = via(&f.s, &f.bot, &sql);
        assert!(
            !got.contains("ann@") && !e.contains("ann@"),
            "{sql}: {got} {e}"
        );
    }
    // What is scrubbed is the quoted value; the rest of the message stays.
    let (_, got, _) = via(
        &f.s,
        &f.bot,
        &format!("SELECT 1 FROM {t} WHERE email = 0; SHOW WARNINGS"),
    );
    assert!(
        got.contains("Truncated incorrect DECIMAL value: '[REDACTED]'"),
        "{got}"
    );
    let (ran, _, e) = via(
        &f.s,
        &f.bot,
        &format!(
            "SELECT 1 FROM (SELECT count(*), CONCAT(email, FLOOR(RAND(0) * 2)) x FROM {t}, information_schema.tables GROUP BY x) a"
        ),
    );
    assert!(
        !ran && e.contains("ERROR 1062 (23000)") && e.contains("Duplicate entry '[REDACTED]'"),
        "{e}"
    );
    // GET DIAGNOSTICS would copy the message into a variable: refused.
    let (ran, _, e) = via(
        &f.s,
        &f.bot,
        &format!(
            "SELECT 1 FROM {t} WHERE email = 0; GET DIAGNOSTICS CONDITION 1 @m = MESSAGE_TEXT; SELECT @m"
        ),
    );
    assert!(!ran && e.contains("GET DIAGNOSTICS is not allowed"), "{e}");
    // An error about a statement that reads no masked column is whole.
    let (ran, _, e) = via(&f.s, &f.bot, &format!("SELECT note + 'x' FROM {t}_nope"));
    assert!(
        !ran && e.contains(&format!("'test.{t}_nope' doesn't exist")),
        "{e}"
    );
}

/// A stored function that reads a masked column returns what it reads:
/// a statement calling one, or a view calling one, has its computed
/// columns masked (the functions are looked up in
/// `information_schema.ROUTINES`), and a statement giving one masked data
/// is refused (its body is not read: it may store it).
#[test]
fn what_a_stored_function_returns_is_masked() {
    let f = setup("mfunc");
    let t = &f.table;
    direct_my(&format!(
        "DROP FUNCTION IF EXISTS {t}_f;
         CREATE FUNCTION {t}_f(n INT) RETURNS VARCHAR(100) READS SQL DATA RETURN (SELECT email FROM {t} WHERE id = n);
         CREATE OR REPLACE VIEW {t}_vf AS SELECT id, {t}_f(id) AS contact FROM {t};
         CREATE OR REPLACE VIEW {t}_vn AS SELECT id, note FROM {t};"
    ));
    for sql in [
        format!("SELECT {t}_f(1)"),
        format!("SELECT upper({t}_f(1))"),
        format!("SELECT test.{t}_f(1)"),
        format!("SELECT contact FROM {t}_vf WHERE id = 1"),
        format!("SELECT concat(contact, '') FROM {t}_vf WHERE id = 1"),
    ] {
        let (ran, got, e) = via(&f.s, &f.bot, &sql);
        assert!(ran, "{sql}: {e}");
        assert!(!got.contains("ann@"), "{sql}: {got}");
    }
    // Its body is not read, so it may keep what it is given: giving it
    // masked data is refused.
    let (ran, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT {t}_f(length(email)) FROM {t}"),
    );
    assert!(
        !ran && e.contains(&format!("calling {t}_f here is not allowed")),
        "{got} {e}"
    );
    // Nor is what it returns stored.
    let (ran, got, e) = via(
        &f.s,
        &f.bot,
        &format!("CREATE TABLE {t}_fcopy AS SELECT {t}_f(1) AS v"),
    );
    direct_my(&format!("DROP TABLE IF EXISTS {t}_fcopy"));
    assert!(
        !ran && e.contains(&format!("{t}_f, which it calls, may return masked data")),
        "{got} {e}"
    );
    // What such a function raises is its own text, not quoted: the
    // message is withheld, but for its codes.
    direct_my(&format!(
        "DROP FUNCTION IF EXISTS {t}_sig;
         DELIMITER //
         CREATE FUNCTION {t}_sig(n INT) RETURNS INT READS SQL DATA BEGIN
           DECLARE m VARCHAR(100); SELECT email INTO m FROM {t} WHERE id = n;
           SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = m; RETURN 1; END//
         DELIMITER ;"
    ));
    let o = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "test", "-e"])
        .arg(format!("SELECT {t}_sig(1)"))
        .output()
        .expect("mariadb");
    assert!(err(&o).contains("ann@"), "the function raises the value");
    let (ran, got, e) = via(&f.s, &f.bot, &format!("SELECT {t}_sig(1)"));
    assert!(
        !ran && !e.contains("ann@") && e.contains("ERROR 1644 (45000)") && e.contains("withheld"),
        "{got} {e}"
    );
    // A procedure's body is not read either: its result sets' computed
    // columns are masked, and what it raises is withheld.
    direct_my(&format!(
        "DROP PROCEDURE IF EXISTS {t}_p;
         DROP PROCEDURE IF EXISTS {t}_psig;
         DELIMITER //
         CREATE PROCEDURE {t}_p(n INT) READS SQL DATA BEGIN
           SELECT concat(email, '') AS e, note FROM {t} WHERE id = n; END//
         CREATE PROCEDURE {t}_psig(n INT) READS SQL DATA BEGIN
           DECLARE m VARCHAR(100); SELECT email INTO m FROM {t} WHERE id = n;
           SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = m; END//
         DELIMITER ;"
    ));
    assert!(direct_my(&format!("CALL {t}_p(1)")).contains("ann@"));
    let (ran, got, e) = via(&f.s, &f.bot, &format!("CALL {t}_p(1)"));
    // (Its columns from tables the CALL does not name are masked too.)
    assert!(
        ran && !got.contains("ann@") && got.contains("[REDACTED]"),
        "{got} {e}"
    );
    let (ran, got, e) = via(&f.s, &f.bot, &format!("CALL {t}_psig(1)"));
    assert!(
        !ran && !e.contains("ann@") && e.contains("ERROR 1644 (45000)") && e.contains("withheld"),
        "{got} {e}"
    );
    // Built-in functions over unmasked columns, and views that read no
    // masked column, are as they are.
    let (_, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT upper(note) FROM {t} WHERE id = 1"),
    );
    assert_eq!(got.trim(), "FIRST", "{e}");
    let (_, got, e) = via(
        &f.s,
        &f.bot,
        &format!("SELECT note FROM {t}_vn WHERE id = 1"),
    );
    assert_eq!(got.trim(), "first", "{e}");
}

/// MariaDB's engine-independent statistics keep each column's smallest and
/// largest value (`mysql.column_stats`): where column masks apply they
/// are masked too, to a user who may read them.
#[test]
fn column_statistics_do_not_show_masked_values() {
    let f = setup("mstat");
    let t = &f.table;
    direct_my(&format!(
        "GRANT SELECT ON mysql.column_stats TO 'gh_app'@'%';
         GRANT SELECT ON mysql.column_stats TO 'gh_app'@'localhost';
         ANALYZE TABLE {t} PERSISTENT FOR ALL;"
    ));
    assert!(
        direct_my(&format!(
            "SELECT min_value FROM mysql.column_stats WHERE table_name = '{t}' AND column_name = 'email'"
        ))
        .contains("ann@"),
        "the statistics hold the value"
    );
    for sql in [
        format!("SELECT min_value, max_value FROM mysql.column_stats WHERE table_name = '{t}'"),
        format!("SELECT concat(min_value, '') FROM mysql.column_stats WHERE table_name = '{t}'"),
    ] {
        let (ran, got, e) = via(&f.s, &f.bot, &sql);
        assert!(ran, "{sql}: {e}");
        assert!(
            !got.contains("ann@") && !got.contains("bob@"),
            "{sql}: {got}"
        );
    }
}

/// Code that runs by itself is kept from masked data: a masked caller may
/// not create a trigger or a scheduled event (on any table: it would run
/// on every session's writes), and a write to a table with a trigger,
/// whose body is not read, is refused (a trigger may copy masked data
/// into a table that is read back unmasked); a table without one is
/// written as usual.
#[test]
fn code_that_runs_by_itself_is_kept_from_masked_data() {
    let f = setup("mtrig");
    let t = &f.table;
    direct_my(&format!(
        "DROP TABLE IF EXISTS {t}_kept; DROP TABLE IF EXISTS {t}_mine; DROP TABLE IF EXISTS {t}_dba;
         CREATE TABLE {t}_kept (v VARCHAR(100)); CREATE TABLE {t}_mine (id INT); CREATE TABLE {t}_dba (id INT);
         CREATE TRIGGER {t}_dtr AFTER INSERT ON {t}_dba FOR EACH ROW INSERT INTO {t}_kept SELECT email FROM {t};"
    ));
    for sql in [
        format!(
            "CREATE TRIGGER {t}_tr AFTER INSERT ON {t}_mine FOR EACH ROW INSERT INTO {t}_kept SELECT email FROM {t}"
        ),
        format!(
            "CREATE EVENT {t}_ev ON SCHEDULE EVERY 1 MINUTE DO INSERT INTO {t}_kept SELECT email FROM {t}"
        ),
    ] {
        let (ran, got, e) = via(&f.s, &f.bot, &sql);
        assert!(
            !ran && e.contains("creating a trigger, rule"),
            "{sql}: {got} {e}"
        );
    }
    // A function or view the same text creates and uses is not looked up
    // yet: refused (one text: the client sends up to its delimiter).
    for sql in [
        format!(
            "DELIMITER //\nCREATE FUNCTION {t}_nf(n INT) RETURNS VARCHAR(100) READS SQL DATA RETURN (SELECT email FROM {t} WHERE id = n); SELECT {t}_nf(1)//"
        ),
        format!(
            "DELIMITER //\nCREATE VIEW {t}_nv AS SELECT email FROM {t}; INSERT INTO {t}_kept SELECT * FROM {t}_nv//"
        ),
    ] {
        let (ran, got, e) = via(&f.s, &f.bot, &sql);
        direct_my(&format!(
            "DROP FUNCTION IF EXISTS {t}_nf; DROP VIEW IF EXISTS {t}_nv"
        ));
        assert!(
            !ran && !got.contains("ann@") && e.contains("in the text that creates"),
            "{sql}: {got} {e}"
        );
    }
    let sql = format!("INSERT INTO {t}_dba VALUES (1)");
    let (ran, got, e) = via(&f.s, &f.bot, &sql);
    assert!(
        !ran && e.contains(&format!("writing {t}_dba is not allowed")),
        "{sql}: {got} {e}"
    );
    let (ran, _, e) = via(&f.s, &f.bot, &format!("INSERT INTO {t}_mine VALUES (1)"));
    assert!(ran, "{e}");
    assert_eq!(
        direct_my(&format!("SELECT COUNT(*) FROM {t}_kept")).trim(),
        "0"
    );
    direct_my(&format!(
        "DROP TABLE {t}_kept; DROP TABLE {t}_mine; DROP TABLE {t}_dba; DROP EVENT IF EXISTS {t}_ev;"
    ));
}
