//! Reviews and just-in-time access end to end, as people use them: `psql`
//! processes held by the gateway, released or refused by `gatehouse
//! reviews …` run from other processes, and a grant whose end closes an
//! open `psql` session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A table of our own in the shared test database.
fn table(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

/// A `psql -c SQL` through the gateway, running in the background.
fn psql_bg(s: &Server, token: &str, sql: &str) -> Child {
    let (host, port) = s.pg.rsplit_once(':').expect("host:port");
    Command::new("psql")
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            host,
            "-p",
            port,
            "-U",
            "someone",
            "-d",
            "shop",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql")
}

/// Waits for a background psql (at most two minutes) and returns
/// (success, stdout, stderr).
fn finish(mut child: Child) -> (bool, String, String) {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut o = String::new();
            let mut e = String::new();
            child.stdout.take().unwrap().read_to_string(&mut o).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            return (status.success(), o, e);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("psql did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a pending review whose statement contains `needle` exists,
/// and returns its id.
fn pending_review(s: &Server, token: &str, needle: &str, not: &[&str]) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = json(s.cli(token, &["reviews", "list", "--pending", "--json"]));
        let found = v["reviews"].as_array().unwrap().iter().find(|r| {
            r["statement"].as_str().is_some_and(|t| t.contains(needle))
                && !not.contains(&r["id"].as_str().unwrap())
        });
        if let Some(r) = found {
            return r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < end, "no pending review for {needle}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_held_statement_runs_once_when_approved_and_fails_when_rejected() {
    let s = Server::start();
    let one = table("rv_one");
    let two = table("rv_two");
    direct(&format!(
        "DROP TABLE IF EXISTS {one}, {two}; CREATE TABLE {one} (id int); CREATE TABLE {two} (id int); INSERT INTO {one} VALUES (1), (2), (3); INSERT INTO {two} VALUES (1)"
    ));
    let alice = token(&s, "alice", "agents");
    let bob = token(&s, "bob", "dba");
    let carol = token(&s, "carol", "dba");
    let mallory = token(&s, "mallory", "agents");
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\n\n\
             [policy]\nreview_timeout = \"2m\"\n\n\
             [[rules]]\nname = \"deletes-need-a-dba\"\nstatements = [\"write\"]\ntables = [\"{one}\"]\naction = \"review\"\napprovers = [\"dba\"]\n\n\
             [[rules]]\nname = \"two-dbas\"\nstatements = [\"write\"]\ntables = [\"{two}\"]\naction = \"review\"\napprovers = [\"dba\"]\napprovals = 2\n",
            pg_url()
        ),
    );

    // Held: psql waits; the requester cannot approve; a DBA can.
    let sql = format!("DELETE FROM {one} WHERE id = 1");
    let held = psql_bg(&s, &alice, &sql);
    let id = pending_review(&s, &bob, &sql, &[]);
    let own = s.cli(&alice, &["reviews", "approve", &id]);
    assert!(!own.status.success());
    assert!(
        err(&own).contains("nobody may approve their own request"),
        "{}",
        err(&own)
    );
    let outsider = s.cli(&mallory, &["reviews", "approve", &id]);
    assert!(!outsider.status.success());
    assert!(err(&outsider).contains("must be approved by a member of dba"));
    let shown = ok(s.cli(&bob, &["reviews", "show", &id]));
    assert!(shown.contains(&sql) && shown.contains("alice") && shown.contains("pending"));
    let approved = ok(s.cli(&bob, &["reviews", "approve", &id, "--reason", "ticket 42"]));
    assert!(approved.contains("runs once"), "{approved}");
    let (ran, stdout, stderr) = finish(held);
    assert!(ran, "{stderr}");
    assert!(stdout.contains("DELETE 1"), "{stdout}");
    assert!(
        stderr.contains(&format!("holding this statement for review {id}"))
            && stderr.contains(&format!("gatehouse reviews approve {id}")),
        "the NOTICE names the review and how to approve it: {stderr}"
    );
    assert_eq!(
        direct(&format!("SELECT count(*) FROM {one} WHERE id = 1")),
        "0"
    );
    let after = json(s.cli(&bob, &["reviews", "show", &id, "--json"]));
    assert_eq!(after["review"]["state"], "executed");

    // The same command again needs a new review; this one is rejected.
    direct(&format!("INSERT INTO {one} VALUES (1)"));
    let again = psql_bg(&s, &alice, &sql);
    let id2 = pending_review(&s, &bob, &sql, &[&id]);
    assert_ne!(id2, id);
    let no_reason = s.cli(&bob, &["reviews", "reject", &id2]);
    assert!(!no_reason.status.success(), "a rejection needs a reason");
    ok(s.cli(
        &bob,
        &["reviews", "reject", &id2, "--reason", "not during the sale"],
    ));
    let (ran, _, stderr) = finish(again);
    assert!(!ran);
    assert!(
        stderr.contains(&format!(
            "review {id2} was rejected by bob: not during the sale"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("deletes-need-a-dba"),
        "the rule is named: {stderr}"
    );
    assert_eq!(
        direct(&format!("SELECT count(*) FROM {one} WHERE id = 1")),
        "1"
    );
    // The recordings say which review each statement waited on and how it ended.
    let sessions = json(s.cli(&s.admin, &["sessions", "list", "--user", "alice", "--json"]));
    let recorded: Vec<serde_json::Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|x| {
            let shown = json(s.cli(
                &s.admin,
                &["sessions", "show", x["id"].as_str().unwrap(), "--json"],
            ));
            shown["statements"].as_array().cloned().unwrap_or_default()
        })
        .collect();
    assert!(
        recorded.iter().any(|st| st["decision"] == "allow"
            && st["rule"]
                .as_str()
                .is_some_and(|r| r.contains(&format!("review {id} approved by bob")))),
        "{recorded:?}"
    );
    assert!(
        recorded.iter().any(|st| st["decision"] == "deny"
            && st["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("review {id2} was rejected by bob")))),
        "{recorded:?}"
    );

    // A changed command is not covered by an approval of another: it is
    // held under its own review.
    let changed = format!("DELETE FROM {one} WHERE id = 2");
    let other = psql_bg(&s, &alice, &changed);
    let id3 = pending_review(&s, &bob, &changed, &[&id, &id2]);
    assert!(![id.as_str(), id2.as_str()].contains(&id3.as_str()));
    assert_eq!(
        direct(&format!("SELECT count(*) FROM {one} WHERE id = 2")),
        "1"
    );
    ok(s.cli(
        &alice,
        &["reviews", "reject", &id3, "--reason", "withdrawn"],
    ));
    let (ran, _, stderr) = finish(other);
    assert!(!ran && stderr.contains("withdrawn"), "{stderr}");

    // Ctrl-C in psql (a cancel request) stops the wait.
    let cancelled = format!("DELETE FROM {one} WHERE id = 3");
    let waiting = psql_bg(&s, &alice, &cancelled);
    let id5 = pending_review(&s, &bob, &cancelled, &[]);
    let interrupted = Command::new("kill")
        .args(["-INT", &waiting.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let (ran, _, stderr) = finish(waiting);
    assert!(!ran);
    assert!(
        stderr.contains(&format!(
            "cancelled the statement while it waited for review {id5}"
        )),
        "{stderr}"
    );
    assert_eq!(
        direct(&format!("SELECT count(*) FROM {one} WHERE id = 3")),
        "1"
    );

    // Two approvals: one is not enough.
    let sql2 = format!("DELETE FROM {two}");
    let held2 = psql_bg(&s, &alice, &sql2);
    let id4 = pending_review(&s, &bob, &sql2, &[]);
    let first = json(s.cli(&bob, &["reviews", "approve", &id4, "--json"]));
    assert_eq!(first["review"]["state"], "pending");
    let twice = s.cli(&bob, &["reviews", "approve", &id4]);
    assert!(!twice.status.success() && err(&twice).contains("already voted"));
    assert_eq!(direct(&format!("SELECT count(*) FROM {two}")), "1");
    let second = json(s.cli(&carol, &["reviews", "approve", &id4, "--json"]));
    assert_eq!(second["review"]["state"], "approved");
    let (ran, stdout, stderr) = finish(held2);
    assert!(ran && stdout.contains("DELETE 1"), "{stdout} {stderr}");

    // Every step is in the audit trail.
    let audit = ok(s.cli(&s.admin, &["audit", "list", "--limit", "100"]));
    for action in [
        "review.requested",
        "review.approve",
        "review.reject",
        "review.executed",
    ] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
    direct(&format!("DROP TABLE {one}, {two}"));
}

/// An interactive psql session through the gateway: statements go in on
/// standard input, answers are read line by line.
struct Interactive {
    child: Child,
    out: std::sync::mpsc::Receiver<String>,
}

impl Interactive {
    fn open(s: &Server, token: &str) -> Self {
        let (host, port) = s.pg.rsplit_once(':').expect("host:port");
        let mut child = Command::new("psql")
            .args(["-X", "-h", host, "-p", port, "-U", "someone", "-d", "shop"])
            .env("PGPASSWORD", token)
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql");
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self { child, out: rx }
    }

    fn send(&mut self, sql: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads lines until one contains `needle`; returns everything read.
    fn expect(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.out.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    seen.push(l);
                    if hit {
                        return seen.join("\n");
                    }
                }
                Err(_) => panic!("never saw {needle:?}; saw:\n{}", seen.join("\n")),
            }
        }
    }
}

/// Waits until `user`'s newest recorded session has ended; returns why.
fn ended_session(s: &Server, user: &str) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = json(s.cli(
            &s.admin,
            &["sessions", "list", "--user", user, "--limit", "1", "--json"],
        ));
        if let Some(reason) = v["sessions"][0]["end_reason"].as_str() {
            return reason.to_string();
        }
        assert!(Instant::now() < end, "{user}'s session did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_jit_grant_allows_writes_for_its_window_and_its_end_closes_the_session() {
    let s = Server::start();
    let t = table("jit_orders");
    direct(&format!(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id int)"
    ));
    let alice = token(&s, "alice", "support");
    let bob = token(&s, "bob", "dba");
    // Reads are open to support; anything else needs a grant.
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"support\"]\n\n\
             [policy]\ndefault = \"deny\"\n\n\
             [[rules]]\nname = \"support-reads\"\nstatements = [\"read\", \"transaction\", \"other\"]\naction = \"allow\"\n\n\
             [[rules]]\nname = \"no-deletes\"\nstatements = [\"write\"]\npattern = \"(?i)delete\"\naction = \"deny\"\n\n\
             [[access]]\nconnections = [\"shop\"]\nrequesters = [\"support\"]\nlevels = [\"write\", \"ddl\"]\napprovers = [\"dba\"]\nmax_duration = \"1h\"\n",
            pg_url()
        ),
    );
    let insert = format!("INSERT INTO {t} VALUES (1)");
    let (ran, _, stderr) = finish(psql_bg(&s, &alice, &insert));
    assert!(!ran && stderr.contains("default is deny"), "{stderr}");

    // Asking for more than the policy allows is refused with the reason.
    let too_long = s.cli(
        &alice,
        &[
            "access", "request", "shop", "--level", "write", "--for", "2h", "--reason", "x",
        ],
    );
    assert!(!too_long.status.success() && err(&too_long).contains("between 1s and 1h"));
    let admin_level = s.cli(
        &alice,
        &[
            "access", "request", "shop", "--level", "admin", "--for", "5m", "--reason", "x",
        ],
    );
    assert!(!admin_level.status.success() && err(&admin_level).contains("not admin"));

    let asked = json(s.cli(
        &alice,
        &[
            "access",
            "request",
            "shop",
            "--level",
            "write",
            "--for",
            "4s",
            "--reason",
            "fix order 1234",
            "--json",
        ],
    ));
    let id = asked["review"]["id"].as_str().unwrap().to_string();
    let own = s.cli(&alice, &["reviews", "approve", &id]);
    assert!(!own.status.success());
    let approved = ok(s.cli(&bob, &["reviews", "approve", &id]));
    assert!(approved.contains("grant gr_"), "{approved}");
    let grants = json(s.cli(&alice, &["access", "list", "--json"]));
    let grant = grants["grants"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(grants["grants"][0]["level"], "write");

    // While the grant lives, writes run; deny rules still apply.
    let mut session = Interactive::open(&s, &alice);
    session.send(&format!("{insert};"));
    session.expect("INSERT 0 1");
    session.send(&format!("DELETE FROM {t};"));
    session.expect("no-deletes");
    // When it ends, the open session is closed and recorded as such; the
    // client reads why with its next statement.
    let reason = ended_session(&s, "alice");
    assert_eq!(
        reason,
        format!("ended by Gatehouse: its access grant {grant} ended")
    );
    session.send("SELECT 1;");
    let closed = session.expect("Gatehouse ended this session");
    assert!(
        closed.contains(&format!("its access grant {grant} ended")),
        "{closed}"
    );
    assert_eq!(direct(&format!("SELECT count(*) FROM {t}")), "1");
    // And writes are refused again.
    let (ran, _, stderr) = finish(psql_bg(&s, &alice, &insert));
    assert!(!ran && stderr.contains("default is deny"), "{stderr}");
    let grants = json(s.cli(&alice, &["access", "list", "--json"]));
    assert_eq!(grants["grants"].as_array().unwrap().len(), 0);
    let audit = ok(s.cli(&s.admin, &["audit", "list", "--limit", "100"]));
    for action in ["access.requested", "grant.created", "session.ended"] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
    direct(&format!("DROP TABLE {t}"));
}

#[test]
fn revoking_a_grant_or_a_token_closes_the_sessions_that_depend_on_it() {
    let s = Server::start();
    let alice = token(&s, "alice", "contractors");
    let bob = token(&s, "bob", "dba");
    // The connection is not open to contractors at all: only a grant opens it.
    apply(
        &s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"staff\"]\n\n\
             [[access]]\nconnections = [\"*\"]\nrequesters = [\"contractors\"]\napprovers = [\"dba\"]\n",
            pg_url()
        ),
    );
    let (ran, _, stderr) = finish(psql_bg(&s, &alice, "SELECT 1"));
    assert!(
        !ran && stderr.contains("may not use connection"),
        "{stderr}"
    );
    let asked = json(s.cli(
        &alice,
        &[
            "access", "request", "shop", "--for", "30m", "--reason", "audit", "--json",
        ],
    ));
    let id = asked["review"]["id"].as_str().unwrap().to_string();
    ok(s.cli(&bob, &["reviews", "approve", &id]));
    let grant = json(s.cli(&bob, &["reviews", "show", &id, "--json"]))["review"]["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The grant makes the connection visible to its holder, too.
    let listed = ok(s.cli(&alice, &["connections", "list"]));
    assert!(listed.contains("shop"), "{listed}");
    let mut session = Interactive::open(&s, &alice);
    session.send("SELECT 'through the grant';");
    session.expect("through the grant");
    let revoked = ok(s.cli(&s.admin, &["access", "revoke", &grant]));
    assert!(revoked.contains("1 live session(s) ended"), "{revoked}");
    let reason = ended_session(&s, "alice");
    assert!(
        reason.contains(&format!("grant {grant} was revoked")),
        "{reason}"
    );
    session.send("SELECT 2;");
    let closed = session.expect("Gatehouse ended this session");
    assert!(
        closed.contains(&format!("grant {grant} was revoked")),
        "{closed}"
    );
    let (ran, _, stderr) = finish(psql_bg(&s, &alice, "SELECT 1"));
    assert!(
        !ran && stderr.contains("may not use connection"),
        "{stderr}"
    );

    // A token's revocation closes its sessions too.
    let staff = token(&s, "sam", "staff");
    let mut session = Interactive::open(&s, &staff);
    session.send("SELECT 'open';");
    session.expect("open");
    ok(s.cli(&s.admin, &["tokens", "revoke", "sam"]));
    let reason = ended_session(&s, "sam");
    assert!(reason.contains("token was revoked"), "{reason}");
    session.send("SELECT 2;");
    let closed = session.expect("Gatehouse ended this session");
    assert!(closed.contains("token was revoked"), "{closed}");
}
