//! The `gatehouse-data` Claude Skill (`skills/gatehouse-data`) as a model
//! uses it: its Python scripts run as subprocesses against a live gateway,
//! with nothing in their environment but `GATEHOUSE_URL` and
//! `GATEHOUSE_TOKEN`, and the assertions are on what they print and how
//! they exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use common::*;

fn skill_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../skills/gatehouse-data")
}

/// The real Python interpreter (not a version-manager shim that needs
/// `PATH` and `HOME`), so the scripts can run with an empty environment.
fn python() -> String {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed to run the skill's scripts");
    assert!(o.status.success(), "{}", err(&o));
    out(&o).trim().to_string()
}

/// What a script printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}):\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

struct Skill {
    python: String,
    url: String,
}

impl Skill {
    fn new(s: &Server) -> Self {
        Self {
            python: python(),
            url: s.url.clone(),
        }
    }

    /// `-S`: no site-packages, so the scripts can only use the standard
    /// library; `-B`: no `__pycache__` in the source tree.
    fn command(&self, env: &[(&str, &str)], script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-B", "-S"])
            .arg(skill_dir().join("scripts").join(script))
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&self, token: &str, script: &str, args: &[&str]) -> Child {
        self.command(
            &[("GATEHOUSE_URL", &self.url), ("GATEHOUSE_TOKEN", token)],
            script,
            args,
        )
        .spawn()
        .expect("spawn script")
    }

    fn run(&self, token: &str, script: &str, args: &[&str]) -> Run {
        finish(token, self.spawn(token, script, args).wait_with_output())
    }
}

fn finish(token: &str, o: std::io::Result<Output>) -> Run {
    let o = o.expect("run script");
    let r = Run {
        code: o.status.code().expect("exit code"),
        stdout: out(&o),
        stderr: err(&o),
    };
    assert!(
        !r.stdout.contains(token) && !r.stderr.contains(token),
        "a script printed the token"
    );
    r
}

/// Our own table in the shared test database, dropped at the end whatever
/// happens.
struct Table(String);

impl Drop for Table {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&pg_url(), "-X", "-q", "-c"])
            .arg(format!("DROP TABLE IF EXISTS {}", self.0))
            .output();
    }
}

#[test]
fn the_skill_is_well_formed() {
    let dir = skill_dir();
    let skill = std::fs::read_to_string(dir.join("SKILL.md")).expect("SKILL.md");
    let front = skill
        .strip_prefix("---\n")
        .and_then(|s| s.split_once("\n---\n"))
        .expect("YAML front matter")
        .0;
    assert!(front.lines().any(|l| l == "name: gatehouse-data"));
    assert!(front.lines().any(|l| l.starts_with("description: ")));
    for script in [
        "connections.py",
        "schema.py",
        "query.py",
        "wait_review.py",
        "request_access.py",
    ] {
        assert!(
            skill.contains(&format!("scripts/{script}")) || skill.contains(script),
            "SKILL.md mentions {script}"
        );
        let path = dir.join("scripts").join(script);
        let text = std::fs::read_to_string(&path).expect("script");
        assert!(text.starts_with("#!/usr/bin/env python3\n"), "{script}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{script} is executable");
    }
    // No credential or variable other than the gateway's own.
    for word in ["PGPASSWORD", "DATABASE_URL", "postgres://"] {
        assert!(!skill.contains(word), "SKILL.md mentions {word}");
    }
}

#[test]
fn the_skill_lists_reads_masks_is_denied_and_waits_for_review() {
    let s = Server::start();
    let sk = Skill::new(&s);

    // Without the two variables, the scripts say how to set them.
    let bare = finish(
        "unused-token",
        sk.command(&[], "connections.py", &[]).output(),
    )
    .expect(1);
    assert!(
        bare.stderr.contains("GATEHOUSE_URL is not set")
            && bare.stderr.contains("export GATEHOUSE_URL="),
        "{}",
        bare.stderr
    );
    let no_token = finish(
        "unused-token",
        sk.command(&[("GATEHOUSE_URL", &s.url)], "connections.py", &[])
            .output(),
    )
    .expect(1);
    assert!(
        no_token.stderr.contains("GATEHOUSE_TOKEN is not set"),
        "{}",
        no_token.stderr
    );

    let guard = Table(format!("skill_customers_{}", std::process::id()));
    let t = guard.0.as_str();
    direct(&format!(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id int PRIMARY KEY, name text, email text); \
         INSERT INTO {t} VALUES (1, 'alice', 'alice@example.com'), (2, 'bob', 'bob@example.com'), (3, 'carol', 'carol@example.com')"
    ));
    let agent = token(&s, "support-bot", "agents");
    let dba = token(&s, "dora", "dba");
    let bad = finish(
        "not-a-token",
        sk.command(
            &[
                ("GATEHOUSE_URL", &s.url),
                ("GATEHOUSE_TOKEN", "not-a-token"),
            ],
            "connections.py",
            &[],
        )
        .output(),
    )
    .expect(1);
    assert!(bad.stderr.contains("GATEHOUSE_TOKEN"), "{}", bad.stderr);
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\n\n\
             [[masks]]\nconnections = [\"shop\"]\ncolumns = [\"{t}.email\"]\nmethod = \"redact\"\n\n\
             [[rules]]\nname = \"no-ddl\"\nconnections = [\"shop\"]\nstatements = [\"ddl\"]\naction = \"deny\"\nmessage = \"schema changes are not allowed on shop\"\n\n\
             [[rules]]\nname = \"customer-writes-need-a-dba\"\nconnections = [\"shop\"]\nstatements = [\"write\"]\ntables = [\"{t}\"]\naction = \"review\"\napprovers = [\"dba\"]\n\n\
             [[access]]\nconnections = [\"shop\"]\nrequesters = [\"agents\"]\nlevels = [\"read\", \"write\"]\napprovers = [\"dba\"]\nmax_duration = \"1h\"\n",
            pg_url()
        ),
    );

    // Connections: shop is there.
    let listed = sk.run(&agent, "connections.py", &[]).expect(0).json();
    assert!(
        listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "shop"),
        "{listed}"
    );
    let table = sk
        .run(&agent, "connections.py", &["--table"])
        .expect(0)
        .stdout;
    assert!(
        table.contains("shop") && table.contains("postgres"),
        "{table}"
    );

    // Schema: the email column is flagged as masked, the others are not.
    let schema = sk.run(&agent, "schema.py", &["shop", t]).expect(0).json();
    let tables = schema["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{schema}");
    let columns = tables[0]["columns"].as_array().unwrap();
    let masked = |name: &str| {
        columns
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name}: {schema}"))["masked"]
            .clone()
    };
    assert_eq!(masked("email"), true);
    assert_eq!(masked("name"), false);
    assert_eq!(masked("id"), false);

    // A read: rows come back with the email redacted.
    let select = format!("SELECT id, name, email FROM {t} ORDER BY id");
    let r = sk.run(&agent, "query.py", &["shop", &select]).expect(0);
    assert!(!r.stdout.contains("@example.com"), "{}", r.stdout);
    let v = r.json();
    assert_eq!(v["columns"][2]["name"], "email");
    assert_eq!(v["columns"][2]["masked"], true);
    assert_eq!(v["columns"][1]["masked"], false);
    assert_eq!(v["row_count"], 3);
    assert_eq!(v["command"], "SELECT 3");
    assert_eq!(v["truncated"], false);
    assert_eq!(v["rows"][0][1], "alice");
    for row in v["rows"].as_array().unwrap() {
        assert_eq!(row[2], "[REDACTED]", "{v}");
    }
    // Parameters, a limit, and the table view.
    let one = sk
        .run(
            &agent,
            "query.py",
            &[
                "shop",
                &format!("SELECT name, email FROM {t} WHERE id = $1"),
                "--param",
                "2",
            ],
        )
        .expect(0)
        .json();
    assert_eq!(one["rows"], serde_json::json!([["bob", "[REDACTED]"]]));
    let limited = sk
        .run(&agent, "query.py", &["shop", &select, "--limit", "2"])
        .expect(0);
    let lv = limited.json();
    assert_eq!(lv["rows"].as_array().unwrap().len(), 2, "{lv}");
    assert_eq!(lv["truncated"], true);
    assert!(limited.stderr.contains("truncated"), "{}", limited.stderr);
    let shown = sk
        .run(&agent, "query.py", &["shop", &select, "--table"])
        .expect(0)
        .stdout;
    assert!(
        shown.contains("email (masked)") && shown.contains("[REDACTED]") && shown.contains("bob"),
        "{shown}"
    );
    assert!(!shown.contains("@example.com"), "{shown}");

    // An SQL error says what went wrong, with its SQLSTATE.
    let bad_sql = sk
        .run(
            &agent,
            "query.py",
            &["shop", "SELECT no_such_column FROM pg_class"],
        )
        .expect(1);
    assert!(bad_sql.stderr.contains("42703"), "{}", bad_sql.stderr);
    let unknown = sk
        .run(&agent, "query.py", &["nowhere", "SELECT 1"])
        .expect(1);
    assert!(unknown.stderr.contains("404"), "{}", unknown.stderr);

    // DDL is denied: exit 3, naming the rule and its message.
    let drop = sk
        .run(&agent, "query.py", &["shop", &format!("DROP TABLE {t}")])
        .expect(3);
    assert_eq!(drop.json()["error"]["rule"], "no-ddl");
    assert!(
        drop.stderr.contains("no-ddl")
            && drop
                .stderr
                .contains("schema changes are not allowed on shop"),
        "{}",
        drop.stderr
    );
    assert_eq!(direct(&format!("SELECT count(*) FROM {t}")), "3");

    // A write is held for review: exit 2 with the review id and the command
    // that approves it; nothing has run.
    let update = format!("UPDATE {t} SET name = $1 WHERE id = $2");
    let update_args = [
        "shop",
        update.as_str(),
        "--param",
        "alice-b",
        "--param",
        "1",
    ];
    let held = sk.run(&agent, "query.py", &update_args).expect(2);
    let hv = held.json();
    let id = hv["review_id"].as_str().expect("review_id").to_string();
    assert!(id.starts_with("rv_"), "{hv}");
    let approve = format!("gatehouse reviews approve {id}");
    assert_eq!(hv["approve_command"], approve.as_str());
    assert!(held.stderr.contains(&approve), "{}", held.stderr);
    assert_eq!(
        direct(&format!("SELECT name FROM {t} WHERE id = 1")),
        "alice"
    );

    // A DBA approves; the wait script sees it; the identical statement
    // re-sent runs once.
    ok(s.cli(&dba, &["reviews", "approve", &id]));
    let waited = sk
        .run(&agent, "wait_review.py", &[&id, "--timeout", "60"])
        .expect(0);
    assert_eq!(waited.json()["review"]["state"], "approved");
    let ran = sk.run(&agent, "query.py", &update_args).expect(0).json();
    assert_eq!(ran["command"], "UPDATE 1", "{ran}");
    assert_eq!(
        direct(&format!("SELECT name FROM {t} WHERE id = 1")),
        "alice-b"
    );

    // Once: the same statement again is a new review. The wait script,
    // already long-polling, sees it rejected and exits 1 with the reason.
    let again = sk.run(&agent, "query.py", &update_args).expect(2).json();
    let id2 = again["review_id"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    let waiting = sk.spawn(&agent, "wait_review.py", &[&id2, "--timeout", "120"]);
    ok(s.cli(
        &dba,
        &["reviews", "reject", &id2, "--reason", "it is already done"],
    ));
    let rejected = finish(&agent, waiting.wait_with_output()).expect(1);
    assert_eq!(rejected.json()["review"]["state"], "rejected");
    assert!(
        rejected.stderr.contains("rejected") && rejected.stderr.contains("it is already done"),
        "{}",
        rejected.stderr
    );

    // Just-in-time access: a write grant, once approved, lets writes run
    // without a review each.
    let asked = sk
        .run(
            &agent,
            "request_access.py",
            &[
                "shop",
                "--level",
                "write",
                "--for",
                "30m",
                "--reason",
                "rename customers (ticket 42)",
            ],
        )
        .expect(0);
    let av = asked.json();
    let rid = av["review"]["id"].as_str().unwrap().to_string();
    assert_eq!(av["review"]["kind"], "access", "{av}");
    assert!(
        asked
            .stderr
            .contains(&format!("gatehouse reviews approve {rid}")),
        "{}",
        asked.stderr
    );
    ok(s.cli(&dba, &["reviews", "approve", &rid]));
    let granted = sk.run(&agent, "wait_review.py", &[&rid]).expect(0);
    assert!(granted.stderr.contains("grant"), "{}", granted.stderr);
    let direct_write = sk
        .run(
            &agent,
            "query.py",
            &[
                "shop",
                &format!("UPDATE {t} SET name = $1 WHERE id = $2"),
                "--param",
                "carol-b",
                "--param",
                "3",
            ],
        )
        .expect(0)
        .json();
    assert_eq!(direct_write["command"], "UPDATE 1");
    // Deny rules still apply under a grant.
    sk.run(&agent, "query.py", &["shop", &format!("DROP TABLE {t}")])
        .expect(3);
    assert_eq!(
        direct(&format!(
            "SELECT string_agg(name, ',' ORDER BY id) FROM {t}"
        )),
        "alice-b,bob,carol-b"
    );
}
