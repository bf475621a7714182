//! The `gatehouse` binary end to end: a real `gatehouse serve` process on a
//! free port, driven by the CLI as a user would, against the machine's
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

#[test]
fn tokens_connections_and_apply_from_the_command_line() {
    let s = Server::start();
    let created = ok(s.cli(
        &s.admin,
        &[
            "tokens", "create", "--name", "bot", "--group", "agents", "--ttl", "24h",
        ],
    ));
    let bot = created
        .lines()
        .next()
        .expect("token line")
        .trim()
        .to_string();
    assert!(bot.starts_with("gh_"), "{created}");
    assert!(created.contains("only time it is shown"));
    let listed = ok(s.cli(&s.admin, &["tokens", "list"]));
    assert!(
        listed.contains("bot") && listed.contains("agents") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&bot));
    let json: serde_json::Value =
        serde_json::from_str(&ok(s.cli(&s.admin, &["tokens", "list", "--json"]))).expect("json");
    assert_eq!(json["tokens"].as_array().map(Vec::len), Some(2));

    // A password from standard input, never from the command line.
    ok(s.cli_with(
        &s.admin,
        &[
            "connections",
            "add",
            "shop",
            "--kind",
            "postgres",
            "--url",
            &pg_url(),
            "--group",
            "agents",
            "--password-stdin",
        ],
        Some(&format!("{SECRET}\n")),
        &[],
    ));
    let tested = ok(s.cli(&s.admin, &["connections", "test", "shop"]));
    assert!(tested.starts_with("OK"), "{tested}");
    let shown = ok(s.cli(&s.admin, &["connections", "show", "shop", "--json"]));
    assert!(!shown.contains(SECRET));
    assert!(shown.contains("\"has_password\": true"));
    // A read-only connection, and one that cannot be.
    let add_ro = format!(
        "add shop_ro --kind postgres --url {} --group agents --read-only",
        pg_url()
    );
    let add_ro: Vec<&str> = std::iter::once("connections")
        .chain(add_ro.split(' '))
        .collect();
    ok(s.cli(&s.admin, &add_ro));
    let shown: serde_json::Value = serde_json::from_str(&ok(
        s.cli(&s.admin, &["connections", "show", "shop_ro", "--json"])
    ))
    .expect("json");
    assert_eq!(shown["settings"]["read_only"], true, "{shown}");
    let refused = s.cli(
        &s.admin,
        &[
            "connections",
            "add",
            "api_ro",
            "--kind",
            "http",
            "--url",
            "http://127.0.0.1:9",
            "--read-only",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        err(&refused).contains("read_only belongs to postgres and mysql connections, not http"),
        "{}",
        err(&refused)
    );
    // The bot sees the connection it may use but cannot change anything.
    assert!(ok(s.cli(&bot, &["connections", "list"])).contains("shop"));
    let denied = s.cli(&bot, &["connections", "remove", "shop"]);
    assert!(!denied.status.success());
    assert!(err(&denied).contains("needs an admin"), "{}", err(&denied));

    // Declarative file: plan, apply, re-apply.
    write(
        &s.path("gatehouse.toml"),
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\npassword = {{ env = \"SHOP_DB_PASSWORD\" }}\ngroups = [\"analysts\", \"agents\"]\n\n[[connections]]\nname = \"crm\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9000\"\ngroups = [\"agents\"]\n",
            pg_url()
        ),
    );
    let file = s.path("gatehouse.toml");
    let file = file.to_str().expect("path");
    let env = [("SHOP_DB_PASSWORD", SECRET)];
    let plan = ok(s.cli_with(&s.admin, &["apply", "-f", file, "--dry-run"], None, &env));
    assert!(
        plan.contains("~ update (groups)  connection shop"),
        "{plan}"
    );
    assert!(plan.contains("+ create  connection crm"), "{plan}");
    assert!(plan.contains("Nothing was applied"));
    let applied = ok(s.cli_with(&s.admin, &["apply", "-f", file], None, &env));
    assert!(applied.contains("Applied: 2 change(s)"), "{applied}");
    let again = ok(s.cli_with(&s.admin, &["apply", "-f", file], None, &env));
    assert!(
        again.contains("= unchanged  connection shop") && again.contains("Applied: 0 change(s)"),
        "{again}"
    );

    // A bad file names the line at fault and changes nothing.
    write(
        &s.path("bad.toml"),
        "[[connections]]\nname = \"x\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npasswd = { env = \"X\" }\n",
    );
    let bad = s.cli(
        &s.admin,
        &["apply", "-f", s.path("bad.toml").to_str().expect("path")],
    );
    assert!(!bad.status.success());
    assert!(
        err(&bad).contains("bad.toml:line 5") && err(&bad).contains("passwd"),
        "{}",
        err(&bad)
    );
    let missing_env = s.cli_with(&s.admin, &["apply", "-f", file], None, &[]);
    assert!(
        err(&missing_env).contains("SHOP_DB_PASSWORD is not set"),
        "{}",
        err(&missing_env)
    );

    // psql through the gateway, then the session shows up in `sessions list`/`show`.
    let (host, port) = s.pg.split_once(':').expect("host:port");
    let o = Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            host,
            "-p",
            port,
            "-U",
            "bot",
            "-d",
            "shop",
            "-c",
            "SELECT 40 + 2",
        ])
        .env("PGPASSWORD", &bot)
        .output()
        .expect("psql");
    assert_eq!(out(&o).trim(), "42", "{}", err(&o));
    let listed = loop {
        let v: serde_json::Value = serde_json::from_str(&ok(
            s.cli(&s.admin, &["sessions", "list", "--user", "bot", "--json"])
        ))
        .expect("json");
        if v["sessions"][0]["ended_at"].is_i64() {
            break v;
        }
        std::thread::yield_now();
    };
    let id = listed["sessions"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let shown = ok(s.cli(&s.admin, &["sessions", "show", &id]));
    assert!(
        shown.contains("SELECT 40 + 2")
            && shown.contains("allow")
            && shown.contains("client closed"),
        "{shown}"
    );
    let table = ok(s.cli(
        &s.admin,
        &["sessions", "list", "--connection", "shop", "--since", "1h"],
    ));
    assert!(table.contains(&id) && table.contains("bot"), "{table}");

    let rotated = ok(s.cli(&s.admin, &["keys", "rotate"]));
    assert!(rotated.contains("1 secret(s) re-encrypted"), "{rotated}");
    assert!(ok(s.cli(&s.admin, &["connections", "test", "shop"])).starts_with("OK"));

    let audit = ok(s.cli(&s.admin, &["audit", "list"]));
    for action in [
        "token.create",
        "connection.create",
        "connection.update",
        "keys.rotate",
    ] {
        assert!(audit.contains(action), "{action} missing from\n{audit}");
    }

    ok(s.cli(&s.admin, &["tokens", "revoke", "bot"]));
    let refused = s.cli(&bot, &["whoami"]);
    assert!(!refused.status.success());
    assert!(err(&refused).contains("revoked"));

    let log = s.drain_log();
    assert!(
        !log.contains(SECRET),
        "the server log contains a connection password"
    );
    assert!(
        !log.contains(&bot) && !log.contains(&s.admin),
        "the server log contains a token"
    );
}

#[test]
fn login_saves_a_private_config_and_errors_say_what_to_do() {
    let s = Server::start();
    let config = s.path("cfg/config.toml");
    let token_file = s.path("token");
    write(&token_file, &format!("{}\n", s.admin));
    let mut cmd = Command::new(BIN);
    let o = cmd
        .args(["login", "--url", &s.url, "--token-file"])
        .arg(&token_file)
        .env("GATEHOUSE_CONFIG", &config)
        .env_remove("GATEHOUSE_TOKEN")
        .env_remove("GATEHOUSE_URL")
        .output()
        .expect("login");
    assert!(ok(o).contains("Logged in"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)
            .expect("config")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = Command::new(BIN)
        .args(["whoami", "--json"])
        .env("GATEHOUSE_CONFIG", &config)
        .env_remove("GATEHOUSE_TOKEN")
        .env_remove("GATEHOUSE_URL")
        .output()
        .expect("whoami");
    let me: serde_json::Value = serde_json::from_str(&ok(o)).expect("json");
    assert_eq!(me["subject"], "admin");

    // No token anywhere: the error says how to get one.
    let o = Command::new(BIN)
        .args(["tokens", "list"])
        .env("GATEHOUSE_CONFIG", s.path("absent.toml"))
        .env_remove("GATEHOUSE_TOKEN")
        .env("GATEHOUSE_URL", &s.url)
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        err(&o).contains("GATEHOUSE_TOKEN") && err(&o).contains("gatehouse login"),
        "{}",
        err(&o)
    );

    // Nothing listening: the error names the URL and what to check.
    let o = s.cli_with(
        &s.admin,
        &["whoami"],
        None,
        &[("GATEHOUSE_URL", "http://127.0.0.1:1")],
    );
    assert!(
        err(&o).contains("cannot reach Gatehouse at http://127.0.0.1:1"),
        "{}",
        err(&o)
    );
}

#[test]
fn serve_refuses_bad_settings_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
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
        .env("GATEHOUSE_MASTER_KEY", "not-a-key")
        .output()
        .expect("serve");
    assert!(!o.status.success());
    assert!(err(&o).contains("master key is not valid"), "{}", err(&o));
    let o = Command::new(BIN)
        .args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--mysql-listen",
            "off",
            "--oidc-issuer",
            "https://idp.example",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .expect("serve");
    assert!(!o.status.success());
    assert!(err(&o).contains("--oidc-audience"), "{}", err(&o));
}

#[test]
fn policy_from_the_declarative_file_and_policy_test() {
    let s = Server::start();
    let file = s.path("policy.toml");
    write(
        &file,
        &format!(
            r#"
[[connections]]
name = "shop"
kind = "postgres"
url = "{}"
groups = ["agents", "dba"]

[policy]
default = "allow"

[[rules]]
name = "agents-read-only"
connections = ["shop"]
groups = ["agents"]
statements = ["write", "ddl", "dcl", "admin"]
action = "deny"
message = "agents are read-only on shop"

[[masks]]
connections = ["shop"]
columns = ["public.customers.email"]
method = "partial"
"#,
            pg_url()
        ),
    );
    let f = file.to_str().expect("path");
    let plan = ok(s.cli(&s.admin, &["apply", "-f", f, "--dry-run"]));
    assert!(plan.contains("replace  policy"), "{plan}");
    let applied = ok(s.cli(&s.admin, &["apply", "-f", f]));
    assert!(applied.contains("replace  policy"), "{applied}");
    let again = ok(s.cli(&s.admin, &["apply", "-f", f]));
    assert!(again.contains("= unchanged  policy"), "{again}");

    let shown = ok(s.cli(&s.admin, &["policy", "show"]));
    assert!(
        shown.contains("1 rule(s), 1 mask(s), 0 detector(s)"),
        "{shown}"
    );
    assert!(shown.contains("agents-read-only"), "{shown}");

    // Denied: exit code 1, the rule and the analysis printed.
    let denied = s.cli(
        &s.admin,
        &[
            "policy",
            "test",
            "--as",
            "agents",
            "--connection",
            "shop",
            "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
        ],
    );
    assert_eq!(denied.status.code(), Some(1), "{}", err(&denied));
    let text = out(&denied);
    assert!(text.contains("decision: deny"), "{text}");
    assert!(text.contains("rule:     agents-read-only"), "{text}");
    assert!(text.contains("class:    write"), "{text}");
    assert!(text.contains("orders"), "{text}");
    // Allowed for another group: exit code 0.
    let allowed = ok(s.cli(
        &s.admin,
        &[
            "policy",
            "test",
            "--as",
            "dba",
            "--connection",
            "shop",
            "DELETE FROM orders",
        ],
    ));
    assert!(allowed.contains("decision: allow"), "{allowed}");
    // A group the connection is not open to: refused as the proxy would.
    let no_access = s.cli(
        &s.admin,
        &[
            "policy",
            "test",
            "--as",
            "ops",
            "--connection",
            "shop",
            "SELECT 1",
        ],
    );
    assert_eq!(no_access.status.code(), Some(1), "{}", err(&no_access));
    assert!(
        out(&no_access).contains("rule:     access"),
        "{}",
        out(&no_access)
    );

    // A policy error names its line, and nothing changes.
    let bad = s.path("bad-policy.toml");
    write(
        &bad,
        "[[rules]]\nname = \"r\"\nstatements = [\"writes\"]\naction = \"deny\"\n",
    );
    let o = s.cli(&s.admin, &["apply", "-f", bad.to_str().expect("path")]);
    assert!(!o.status.success());
    assert!(err(&o).contains("line 3"), "{}", err(&o));
    let shown = ok(s.cli(&s.admin, &["policy", "show"]));
    assert!(shown.contains("agents-read-only"), "{shown}");
}

#[test]
fn audit_verify_names_the_entry_changed_in_the_store() {
    let s = Server::start();
    for name in ["a", "b", "c"] {
        ok(s.cli(
            &s.admin,
            &["tokens", "create", "--name", name, "--group", "agents"],
        ));
    }
    let checked = ok(s.cli(&s.admin, &["audit", "checkpoint"]));
    assert!(checked.contains("signed the head at entry 5"), "{checked}");
    let fine = ok(s.cli(&s.admin, &["audit", "verify"]));
    assert!(
        fine.starts_with("OK: 5 entries chained, 1 signed checkpoints verified"),
        "{fine}"
    );
    let key = ok(s.cli(&s.admin, &["audit", "public-key"]));
    assert_eq!(key.trim().len(), 64, "{key}");
    let exported = ok(s.cli(&s.admin, &["audit", "export", "--since", "1h"]));
    assert_eq!(exported.lines().count(), 5, "{exported}");

    // Someone with access to the SQLite file changes what a token was given.
    let db = s.dir.path().join("data/state.db");
    let o = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_events SET detail = '{\\\"groups\\\":[\\\"admin\\\"]}' WHERE id = 3\"); c.commit()",
        ])
        .arg(&db)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", err(&o));
    let bad = s.cli(&s.admin, &["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err(&bad).contains("TAMPERED: entry 3 was modified"),
        "{}",
        err(&bad)
    );
}

/// The id of `user`'s latest session once it is recorded as ended (the
/// recording is written within a moment of the session's end).
fn last_ended_session(s: &Server, user: &str) -> String {
    for _ in 0..500 {
        let v = json(s.cli(&s.admin, &["sessions", "list", "--user", user, "--json"]));
        if v["sessions"][0]["end_reason"].is_string() {
            return v["sessions"][0]["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the session of {user} was not recorded as ended");
}

/// A server with the PostgreSQL connection `shop` open to the group
/// `agents`, `policy` (TOML) after it, and the token of `bot`, an agent.
fn shop_with(policy: &str) -> (Server, String) {
    let s = Server::start();
    let bot = token(&s, "bot", "agents");
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\n{policy}",
            pg_url()
        ),
    );
    (s, bot)
}

/// `python3`, with `DSN` in its environment: `shop` through the gateway as
/// `bot` (conninfo `extra` appended), for a psycopg script.
fn psycopg_through(s: &Server, bot: &str, extra: &str) -> Command {
    let (host, port) = s.pg.rsplit_once(':').unwrap();
    let mut c = Command::new("python3");
    c.env(
        "DSN",
        format!(
            "host={host} port={port} user=bot dbname=shop password={bot} sslmode=disable {extra}"
        ),
    );
    c
}

/// A statement's bound parameters are in its recording, as psycopg sent
/// them (in text here), with what content detectors find redacted there
/// too; `sessions show` and `sessions replay` show them.
#[test]
fn recorded_statements_keep_their_bound_parameters() {
    let (s, bot) = shop_with(
        "\n[[detectors]]\nconnections = [\"shop\"]\nkinds = [\"email\"]\n\n[[rules]]\nname = \"no-writes\"\nstatements = [\"write\"]\naction = \"deny\"\n",
    );
    // A refused statement's text is redacted in its record as an allowed
    // one's is. A start-up setting holds an address (a custom setting, as
    // applications pass their user to row-level security).
    let o = psycopg_through(&s, &bot, "options='-c myapp.user=eve@example.com'")
        .args([
            "-c",
            "import os, psycopg\n\
             from psycopg.types.enum import EnumInfo, register_enum\n\
             mood = os.environ['MOOD']\n\
             with psycopg.connect(os.environ['DIRECT'], autocommit=True) as d:\n\
             \x20   d.execute(f\"DROP TYPE IF EXISTS {mood}; CREATE TYPE {mood} AS ENUM ('happy', 'sad')\")\n\
             with psycopg.connect(os.environ['DSN'], autocommit=True) as c:\n\
             \x20   print(c.execute('SELECT %t::text AS a, %t::int + 1 AS b, %t::text AS c', ('note to ann@example.com', 41, None)).fetchone())\n\
             \x20   info = EnumInfo.fetch(c, mood)\n\
             \x20   register_enum(info, c)\n\
             \x20   print(c.execute('SELECT %b::text AS mood', [info.enum.happy]).fetchone())\n\
             \x20   try:\n\
             \x20       c.execute(\"INSERT INTO nowhere VALUES ('bob@example.org')\")\n\
             \x20   except psycopg.Error as e:\n\
             \x20       print('refused', e)\n\
             \x20   try:\n\
             \x20       c.execute('SELECT %t::int AS n', ('dee@example.net',))\n\
             \x20   except psycopg.Error as e:\n\
             \x20       print('failed', e)\n\
             with psycopg.connect(os.environ['DIRECT'], autocommit=True) as d:\n\
             \x20   d.execute(f'DROP TYPE {mood}')\n",
        ])
        .env("DIRECT", pg_url())
        .env("MOOD", format!("gh_cli_mood_{}", std::process::id()))
        .output()
        .unwrap();
    assert!(
        out(&o).contains("42"),
        "{} {}",
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let id = last_ended_session(&s, "bot");
    let shown = json(s.cli(&s.admin, &["sessions", "show", &id, "--json"]));
    let select = shown["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| {
            st["sql"]
                .as_str()
                .unwrap_or_default()
                .starts_with("SELECT $1")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no SELECT recorded: {shown}"));
    assert_eq!(
        select["params"],
        serde_json::json!(["note to [REDACTED:email]", "41", null]),
        "{select}"
    );
    assert!(!shown.to_string().contains("ann@example.com"), "{shown}");
    // An enum sent in binary (psycopg's `%b`) by a statement never
    // described: its type only in the Parse, looked up when it is done.
    assert!(out(&o).contains("('happy',)"), "{}", out(&o));
    let mood = shown["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["sql"] == "SELECT $1::text AS mood")
        .unwrap_or_else(|| panic!("no enum statement recorded: {shown}"));
    assert_eq!(mood["params"], serde_json::json!(["happy"]), "{mood}");
    // The start-up setting is recorded as its SET, redacted.
    assert!(
        shown
            .to_string()
            .contains("SET \\\"myapp\\\".\\\"user\\\" TO '[REDACTED:email]'")
            && !shown.to_string().contains("eve@example.com"),
        "{shown}"
    );
    assert!(out(&o).contains("refused"), "{}", out(&o));
    // The server's error quotes the value it could not read: the record's
    // error is redacted too.
    assert!(out(&o).contains("failed"), "{}", out(&o));
    assert!(
        shown
            .to_string()
            .contains("invalid input syntax for type integer")
            && !shown.to_string().contains("dee@example.net"),
        "{shown}"
    );
    assert!(
        shown
            .to_string()
            .contains("INSERT INTO nowhere VALUES ('[REDACTED:email]')")
            && !shown.to_string().contains("bob@example.org"),
        "{shown}"
    );

    let table = ok(s.cli(&s.admin, &["sessions", "show", &id]));
    assert!(
        table.contains("-- $1=note to [REDACTED:email], $2=41, $3=NULL"),
        "{table}"
    );
    let replay = ok(s.cli(&s.admin, &["sessions", "replay", &id, "--no-wait"]));
    assert!(
        replay.contains("parameters: $1=note to [REDACTED:email], $2=41, $3=NULL"),
        "{replay}"
    );
    // The refusal's audit event hashes the text as recorded, not as sent:
    // its hash cannot confirm a guessed address.
    let deny = audited_refusal(&s, &id);
    assert_eq!(deny["detail"]["rule"], "no-writes", "{deny}");
    assert_eq!(
        deny["detail"]["statement_sha256"],
        gatehouse_core::sigv4::sha256_hex(b"INSERT INTO nowhere VALUES ('[REDACTED:email]')"),
        "{deny}"
    );
}

#[test]
fn sessions_replay_shows_statements_and_results_as_the_caller_saw_them() {
    let s = Server::start();
    let t = format!("replay_{}", std::process::id());
    direct(&format!(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id int, email text); INSERT INTO {t} VALUES (1, 'ann@example.com'), (2, 'bob@example.com')"
    ));
    let bot = token(&s, "bot", "agents");
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\nrecord_rows = 1\n\n[[masks]]\ncolumns = [\"{t}.email\"]\nmethod = \"redact\"\n",
            pg_url()
        ),
    );
    let (host, port) = s.pg.rsplit_once(':').unwrap();
    let o = Command::new("psql")
        .args(["-X", "-h", host, "-p", port, "-U", "bot", "-d", "shop"])
        .args(["-c", &format!("SELECT id, email FROM {t} ORDER BY id")])
        .args(["-c", "SELECT 1/0"])
        // Another result's columns (twice), then the first again: each
        // statement records its own columns (the relay reuses the names
        // only for an identical description).
        .args(["-c", "SELECT 2 AS two, 3 AS three"])
        .args(["-c", "SELECT 4 AS two, 5 AS three"])
        .args(["-c", &format!("SELECT id, email FROM {t} ORDER BY id")])
        .env("PGPASSWORD", &bot)
        .env("PGSSLMODE", "disable")
        .output()
        .unwrap();
    assert!(out(&o).contains("[REDACTED]"), "{}", out(&o));
    let id = last_ended_session(&s, "bot");
    let shown = json(s.cli(&s.admin, &["sessions", "show", &id, "--json"]));
    let first = &shown["statements"][0];
    assert_eq!(first["columns"], serde_json::json!(["id", "email"]));
    assert_eq!(first["result"], serde_json::json!([["1", "[REDACTED]"]]));
    assert_eq!(first["result_truncated"], true);
    let statements = shown["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 5, "{shown}");
    let two_three = serde_json::json!(["two", "three"]);
    assert_eq!(statements[2]["columns"], two_three);
    assert_eq!(statements[2]["result"], serde_json::json!([["2", "3"]]));
    assert_eq!(statements[3]["columns"], two_three);
    assert_eq!(statements[3]["result"], serde_json::json!([["4", "5"]]));
    assert_eq!(statements[4]["columns"], serde_json::json!(["id", "email"]));
    let replay = ok(s.cli(&s.admin, &["sessions", "replay", &id, "--no-wait"]));
    assert!(
        replay.contains(&format!("SELECT id, email FROM {t} ORDER BY id")),
        "{replay}"
    );
    assert!(
        replay.contains("[REDACTED]") && replay.contains("SELECT 2"),
        "{replay}"
    );
    assert!(
        replay.contains("more rows than the recording keeps"),
        "{replay}"
    );
    assert!(replay.contains("ERROR 22012: division by zero"), "{replay}");
    assert!(replay.contains("session ended"), "{replay}");
    assert!(!replay.contains("example.com") && !shown.to_string().contains("example.com"));
    direct(&format!("DROP TABLE {t}"));
}

/// What a session sent is shown escaped by `sessions show` and `sessions
/// replay`: an escape sequence, a carriage return or a direction override
/// in a statement, a parameter or a result cannot clear the screen,
/// rewrite a line or reorder what the administrator reads.
#[test]
fn recordings_cannot_steer_the_terminal_that_shows_them() {
    let (s, bot) = shop_with("");
    let o = psycopg_through(&s, &bot, "")
        .args([
            "-c",
            "import os, psycopg\n\
             with psycopg.connect(os.environ['DSN'], autocommit=True) as c:\n\
             \x20   print(c.execute('SELECT %t::text AS v /* \\x1b[2J \\r\\x1b[1Ahidden */', ('\\x1b]0;owned\\x07\\u202eevil',)).fetchone())\n",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = last_ended_session(&s, "bot");
    for view in [
        ok(s.cli(&s.admin, &["sessions", "show", &id])),
        ok(s.cli(&s.admin, &["sessions", "replay", &id, "--no-wait"])),
    ] {
        assert!(
            !view.contains('\x1b') && !view.contains('\r') && !view.contains('\u{202e}'),
            "{view:?}"
        );
        assert!(
            view.contains("/* \\x1b[2J \\r\\x1b[1Ahidden */")
                && view.contains("\\x1b]0;owned\\x07\\u{202e}evil"),
            "{view}"
        );
    }
    // Nor can what `gatehouse exec` prints of a result: its notices.
    let o = s.cli(
        &bot,
        &[
            "exec",
            "shop",
            "-c",
            "DO $$ BEGIN RAISE NOTICE 'note %', chr(27) || '[2J' || chr(8238); END $$",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains('\x1b') && err.contains("NOTICE: note \\x1b[2J\\u{202e}"),
        "{err:?}"
    );
}
