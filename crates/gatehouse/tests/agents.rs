//! The agent interfaces end to end, as agents and people use them: the MCP
//! server at `/mcp` driven by clients built on the official Python and
//! TypeScript SDKs (`tests/mcp`), `gatehouse mcp` over stdio, the bearer
//! challenge an MCP client gets without a valid token, and `gatehouse exec`
//! / `gatehouse connect`. Every assertion is on what the client printed,
//! how it exited, or what really happened in the upstream database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

const RULE: &str = "no-ddl";
const RULE_MESSAGE: &str = "schema changes are not allowed on shop";
const TOOLS: [&str; 6] = [
    "describe_connection",
    "get_review",
    "http_request",
    "list_connections",
    "query",
    "request_access",
];

fn mcp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp")
}

/// Our own table in the shared test database (`<prefix>_<pid>`), with three
/// customers; dropped at the end whatever happens.
struct Table(String);

impl Table {
    fn create(prefix: &str) -> Self {
        let t = Self(format!("{prefix}_{}", std::process::id()));
        let n = &t.0;
        direct(&format!(
            "DROP TABLE IF EXISTS {n}; CREATE TABLE {n} (id int PRIMARY KEY, name text, email text); \
             INSERT INTO {n} VALUES (1, 'alice', 'alice@example.com'), (2, 'Smith, Bob', 'bob@example.com'), \
             (3, 'carol', 'carol@example.com')"
        ));
        t
    }

    fn name_of(&self, id: i32) -> String {
        direct(&format!("SELECT name FROM {} WHERE id = {id}", self.0))
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&pg_url(), "-X", "-q", "-c"])
            .arg(format!("DROP TABLE IF EXISTS {}", self.0))
            .output();
    }
}

/// A gateway with connection `shop`, open to `agents`: `<t>.email` masked,
/// DDL denied by rule `no-ddl`, writes to `<t>` held for a `dba`.
/// Returns (agent token, DBA token).
fn setup(s: &Server, t: &str) -> (String, String) {
    let agent = token(s, "agent-smith", "agents");
    let dba = token(s, "dora", "dba");
    apply(
        s,
        &format!(
            "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{}\"\ngroups = [\"agents\"]\n\n\
             [[masks]]\nconnections = [\"shop\"]\ncolumns = [\"{t}.email\"]\nmethod = \"redact\"\n\n\
             [[rules]]\nname = \"{RULE}\"\nconnections = [\"shop\"]\nstatements = [\"ddl\"]\naction = \"deny\"\nmessage = \"{RULE_MESSAGE}\"\n\n\
             [[rules]]\nname = \"customer-writes-need-a-dba\"\nconnections = [\"shop\"]\nstatements = [\"write\"]\ntables = [\"{t}\"]\naction = \"review\"\napprovers = [\"dba\"]\n",
            pg_url()
        ),
    );
    (agent, dba)
}

/// Output of a child read on threads (so a full pipe never blocks it),
/// waited for at most `secs`.
fn finish(mut child: Child, secs: u64) -> (Option<i32>, String, String) {
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (o.join().unwrap(), e.join().unwrap());
            panic!("the process did not finish in {secs}s\nstdout: {o}\nstderr: {e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), o.join().unwrap(), e.join().unwrap())
}

/// Which SDK client program.
#[derive(Clone, Copy, Debug)]
enum Sdk {
    Python,
    Node,
}

/// One run of an SDK client: what it printed, line by line, and its exit code.
struct McpRun {
    code: Option<i32>,
    lines: Vec<Value>,
    stdout: String,
    stderr: String,
}

impl McpRun {
    /// The line for step `n`.
    fn step(&self, n: usize) -> &Value {
        self.lines
            .iter()
            .find(|l| l["step"] == n)
            .unwrap_or_else(|| panic!("no line for step {n}:\n{}\n{}", self.stdout, self.stderr))
    }

    /// The tool result of step `n`, asserting whether it is an error; its JSON.
    fn tool(&self, n: usize, is_error: bool) -> &Value {
        let l = self.step(n);
        assert_eq!(l["isError"], is_error, "step {n}: {l}");
        assert_eq!(l["contentTypes"], json!(["text"]), "step {n}: {l}");
        assert!(l["json"].is_object(), "step {n}: the text is JSON: {l}");
        assert_eq!(
            l["structuredContent"], l["json"],
            "step {n}: structured content is the text's JSON"
        );
        &l["json"]
    }

    fn success(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "the client failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.lines[0]["initialized"], true, "{}", self.stdout);
        assert_eq!(
            self.lines[0]["server"]["name"], "gatehouse",
            "{}",
            self.stdout
        );
        self
    }
}

/// Starts an SDK client: `target` is the endpoint URL, or `--stdio CMD ARGS`.
fn spawn_client(sdk: Sdk, target: &[&str], env: &[(&str, &str)], steps: &Value) -> Child {
    let mut cmd = match sdk {
        Sdk::Python => {
            let mut c = Command::new("python3");
            c.arg("-B").arg(mcp_dir().join("python_client.py"));
            c
        }
        Sdk::Node => {
            let node = mcp_dir().join("node");
            assert!(
                node.join("node_modules/@modelcontextprotocol/sdk").exists(),
                "run `npm ci` in {} (scripts/test does)",
                node.display()
            );
            let mut c = Command::new("node");
            c.arg(node.join("client.mjs"));
            c
        }
    };
    cmd.args(target)
        .env_remove("GATEHOUSE_URL")
        .env_remove("GATEHOUSE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the MCP client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(steps.to_string().as_bytes())
        .expect("write the script");
    drop(stdin);
    child
}

fn collect(child: Child, token: &str) -> McpRun {
    let (code, stdout, stderr) = finish(child, 300);
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "the client printed the token"
    );
    let lines = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\nstderr: {stderr}"))
        })
        .collect();
    McpRun {
        code,
        lines,
        stdout,
        stderr,
    }
}

/// Runs an SDK client against `/mcp` of `s` with `token`.
fn mcp(sdk: Sdk, s: &Server, token: &str, steps: &Value) -> McpRun {
    let url = format!("{}/mcp", s.url.trim_end_matches('/'));
    collect(
        spawn_client(sdk, &[&url], &[("GATEHOUSE_TOKEN", token)], steps),
        token,
    )
}

fn tool(name: &str, arguments: Value) -> Value {
    json!({"call": "tool", "name": name, "arguments": arguments})
}

fn select(t: &str) -> Value {
    tool(
        "query",
        json!({"connection": "shop", "sql": format!("SELECT id, name, email FROM {t} ORDER BY id")}),
    )
}

/// The tool list: exactly Gatehouse's five tools, each described.
fn assert_tools(line: &Value) {
    let tools = line["tools"].as_array().expect("tools");
    let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(TOOLS), "{line}");
    assert_eq!(tools.len(), TOOLS.len(), "no tool twice: {line}");
    for t in tools {
        assert!(
            t["description"].as_str().is_some_and(|d| d.len() > 20),
            "{} has a description: {t}",
            t["name"]
        );
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
}

/// A read of the three customers: emails masked, names real.
fn assert_masked_read(v: &Value) {
    assert!(
        !v.to_string().contains("@example.com"),
        "a real email came back: {v}"
    );
    let columns = v["columns"].as_array().expect("columns");
    let col = |n: &str| {
        columns
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no column {n}: {v}"))
    };
    assert_eq!(col("email")["masked"], true, "{v}");
    assert_eq!(col("name")["masked"], false, "{v}");
    assert_eq!(col("id")["masked"], false, "{v}");
    assert_eq!(v["row_count"], 3, "{v}");
    assert_eq!(v["command"], "SELECT 3", "{v}");
    assert_eq!(v["rows"][0][0], 1, "{v}");
    assert_eq!(v["rows"][0][1], "alice", "{v}");
    for row in v["rows"].as_array().unwrap() {
        assert!(row[2].is_string(), "the masked value is still a value: {v}");
    }
}

/// A DROP refused: an error naming the rule and its message.
fn assert_denied(v: &Value) {
    assert_eq!(v["error"], "denied", "{v}");
    assert_eq!(v["rule"], RULE, "{v}");
    assert!(v["message"].as_str().unwrap().contains(RULE_MESSAGE), "{v}");
}

fn assert_full_client_run(sdk: Sdk) {
    let s = Server::start();
    let t = Table::create(&format!("mcp_{sdk:?}").to_lowercase());
    let (agent, _) = setup(&s, &t.0);
    let run = mcp(
        sdk,
        &s,
        &agent,
        &json!([
            {"call": "list_tools"},
            select(&t.0),
            tool("query", json!({"connection": "shop", "sql": format!("DROP TABLE {}", t.0)})),
        ]),
    )
    .success();
    assert_tools(run.step(0));
    assert_masked_read(run.tool(1, false));
    assert_denied(run.tool(2, true));
    assert_eq!(direct(&format!("SELECT count(*) FROM {}", t.0)), "3");
}

#[test]
fn the_python_sdk_over_http_lists_describes_masks_is_denied_and_waits_for_review() {
    let s = Server::start();
    let t = Table::create("mcp_py");
    let (agent, dba) = setup(&s, &t.0);
    let update = tool(
        "query",
        json!({
            "connection": "shop",
            "sql": format!("UPDATE {} SET name = $1 WHERE id = $2", t.0),
            "params": ["alice-b", 1],
        }),
    );
    let run = mcp(
        Sdk::Python,
        &s,
        &agent,
        &json!([
            {"call": "list_tools"},
            tool("list_connections", json!({})),
            tool("describe_connection", json!({"connection": "shop"})),
            select(&t.0),
            tool("query", json!({"connection": "shop", "sql": format!("DROP TABLE {}", t.0)})),
            update,
        ]),
    )
    .success();
    assert!(
        run.lines[0]["protocolVersion"].is_string(),
        "{}",
        run.stdout
    );

    // Exactly the five tools, each with a description.
    assert_tools(run.step(0));

    // shop is listed.
    let conns = run.tool(1, false);
    assert!(
        conns["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "shop" && c["kind"] == "postgres"),
        "{conns}"
    );

    // The schema flags the masked column, and only it.
    let schema = run.tool(2, false);
    assert_eq!(schema["connection"], "shop");
    let table = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == t.0.as_str())
        .unwrap_or_else(|| panic!("{} is not described: {schema}", t.0));
    let masked: Vec<(&str, bool)> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["masked"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        masked,
        [("id", false), ("name", false), ("email", true)],
        "{table}"
    );

    // A read: the emails never come back, anywhere in what the client saw.
    assert_masked_read(run.tool(3, false));
    let read_line = run.step(3).to_string();
    assert!(!read_line.contains("@example.com"), "{read_line}");
    assert!(!run.stdout.contains("alice@example.com"), "{}", run.stdout);

    // DDL is refused, naming the rule and its message; nothing ran.
    assert_denied(run.tool(4, true));
    assert_eq!(direct(&format!("SELECT count(*) FROM {}", t.0)), "3");

    // The write is held: a review id and the command that approves it.
    let held = run.tool(5, false);
    assert_eq!(held["status"], "pending_review", "{held}");
    let id = held["review_id"].as_str().expect("review_id").to_string();
    assert!(id.starts_with("rv_"), "{held}");
    assert_eq!(
        held["approve_command"],
        format!("gatehouse reviews approve {id}")
    );
    assert_eq!(t.name_of(1), "alice", "nothing ran yet");

    // The agent waits with get_review while the DBA approves from the CLI;
    // then the identical call runs, once.
    let waiting = spawn_client(
        Sdk::Python,
        &[&format!("{}/mcp", s.url.trim_end_matches('/'))],
        &[("GATEHOUSE_TOKEN", &agent)],
        &json!([
            tool("get_review", json!({"review_id": id, "wait_seconds": 60})),
            update,
            tool("get_review", json!({"review_id": id})),
        ]),
    );
    let approved = ok(s.cli(&dba, &["reviews", "approve", &id]));
    assert!(approved.contains("runs once"), "{approved}");
    let run = collect(waiting, &agent).success();
    let review = run.tool(0, false);
    assert_eq!(review["review"]["state"], "approved", "{review}");
    assert_eq!(review["review"]["id"], id.as_str(), "{review}");
    let ran = run.tool(1, false);
    assert_eq!(ran["command"], "UPDATE 1", "{ran}");
    assert_eq!(t.name_of(1), "alice-b");
    let after = run.tool(2, false);
    assert_eq!(after["review"]["state"], "executed", "{after}");
    // Each call is a recorded session, the write with the values it bound,
    // held and then run alike.
    let sessions = json(s.cli(
        &s.admin,
        &["sessions", "list", "--user", "agent-smith", "--json"],
    ));
    let mut updates = Vec::new();
    for x in sessions["sessions"].as_array().unwrap() {
        let id = x["id"].as_str().unwrap();
        let shown = json(s.cli(&s.admin, &["sessions", "show", id, "--json"]));
        for st in shown["statements"].as_array().unwrap() {
            if st["sql"].as_str().unwrap_or_default().starts_with("UPDATE") {
                updates.push((st["decision"].clone(), st["params"].clone()));
            }
        }
    }
    assert!(!updates.is_empty(), "{sessions}");
    assert!(
        updates.iter().all(|(_, p)| *p == json!(["alice-b", "1"])),
        "{updates:?}"
    );
}

#[test]
fn the_python_sdk_calls_an_http_connection_masked_refused_and_reviewed() {
    let secret = "crm-secret-for-mcp-Q9";
    let api = Api::start(secret);
    let s = Server::start();
    apply_env(
        &s,
        &format!(
            r#"
[[connections]]
name = "crm"
kind = "http"
url = "http://127.0.0.1:{}"
bearer = {{ env = "CRM_TOKEN" }}
groups = ["agents"]

[[rules]]
name = "no-deletes-on-crm"
connections = ["crm"]
methods = ["DELETE"]
paths = ["/customers/*"]
action = "deny"

[[rules]]
name = "refunds-need-approval"
connections = ["crm"]
methods = ["POST"]
paths = ["/refunds"]
action = "review"
approvers = ["dba"]

[[masks]]
connections = ["crm"]
json_paths = ["$..email"]
method = "redact"
"#,
            api.port
        ),
        &[("CRM_TOKEN", secret)],
    );
    let agent = token(&s, "agent-smith", "agents");
    let dba = token(&s, "dana", "dba");
    let refund = tool(
        "http_request",
        json!({"connection": "crm", "method": "POST", "path": "/refunds", "body": {"order": 7, "amount": 20}}),
    );
    let run = mcp(
        Sdk::Python,
        &s,
        &agent,
        &json!([
            tool("list_connections", json!({})),
            tool(
                "http_request",
                json!({"connection": "crm", "method": "GET", "path": "/customers"})
            ),
            tool(
                "http_request",
                json!({"connection": "crm", "method": "DELETE", "path": "/customers/1"})
            ),
            tool(
                "http_request",
                json!({"connection": "crm", "method": "GET", "path": "/nowhere"})
            ),
            refund,
        ]),
    )
    .success();
    assert!(
        run.tool(0, false)["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "crm" && c["kind"] == "http")
    );
    let read = run.tool(1, false);
    assert_eq!(read["status"], 200, "{read}");
    assert_eq!(
        read["body"]["customers"][0]["email"], "[REDACTED]",
        "{read}"
    );
    assert_eq!(read["body"]["customers"][0]["name"], "Ann Lee", "{read}");
    assert!(
        !run.stdout.contains("@example.com") && !run.stdout.contains(secret),
        "{}",
        run.stdout
    );
    let denied = run.tool(2, true);
    assert_eq!(
        (denied["error"].as_str(), denied["rule"].as_str()),
        (Some("denied"), Some("no-deletes-on-crm")),
        "{denied}"
    );
    // The API's own 404 is its answer, not a refusal.
    let missing = run.tool(3, true);
    assert_eq!(missing["status"], 404, "{missing}");
    assert_eq!(missing["body"]["error"], "no such route", "{missing}");
    let held = run.tool(4, false);
    assert_eq!(held["status"], "pending_review", "{held}");
    let id = held["review_id"].as_str().unwrap().to_string();
    ok(s.cli(&dba, &["reviews", "approve", &id]));
    let run = mcp(Sdk::Python, &s, &agent, &json!([refund])).success();
    let ran = run.tool(0, false);
    assert_eq!(ran["status"], 201, "{ran}");
    assert_eq!(ran["body"]["received"]["order"], 7, "{ran}");
}

#[test]
fn the_typescript_sdk_over_http_lists_tools_reads_masked_and_is_denied() {
    assert_full_client_run(Sdk::Node);
}

#[test]
fn the_python_sdk_over_http_reads_masked_and_is_denied() {
    // The same short run as with node, so the two SDKs are held to the same.
    assert_full_client_run(Sdk::Python);
}

#[test]
fn gatehouse_mcp_over_stdio_lists_connections_and_queries() {
    let s = Server::start();
    let t = Table::create("mcp_stdio");
    let (agent, _) = setup(&s, &t.0);
    let no_config = s.path("no-config.toml");
    let child = spawn_client(
        Sdk::Python,
        &["--stdio", BIN, "mcp"],
        &[
            ("GATEHOUSE_URL", &s.url),
            ("GATEHOUSE_TOKEN", &agent),
            ("GATEHOUSE_CONFIG", no_config.to_str().unwrap()),
        ],
        &json!([
            {"call": "list_tools"},
            tool("list_connections", json!({})),
            select(&t.0),
            tool("query", json!({"connection": "shop", "sql": format!("DROP TABLE {}", t.0)})),
        ]),
    );
    let run = collect(child, &agent).success();
    assert_tools(run.step(0));
    let conns = run.tool(1, false);
    assert!(
        conns["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "shop"),
        "{conns}"
    );
    assert_masked_read(run.tool(2, false));
    assert_denied(run.tool(3, true));
    assert!(!run.stdout.contains("@example.com"), "{}", run.stdout);
}

#[test]
fn without_a_valid_token_mcp_answers_401_pointing_at_the_resource_metadata() {
    let s = Server::start();
    let bad = "not-a-gatehouse-token";
    let run = mcp(Sdk::Python, &s, bad, &json!([{"call": "list_tools"}]));
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let first = &run.lines[0];
    assert_eq!(first["initialized"], false, "{first}");
    assert_eq!(first["status"], 401, "{first}");
    let challenge = first["wwwAuthenticate"].as_str().expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no quoted resource_metadata in {challenge}"));
    let base = s.url.trim_end_matches('/');
    assert_eq!(
        metadata_url,
        format!("{base}/.well-known/oauth-protected-resource")
    );

    // The metadata is public and names the MCP endpoint as the resource.
    let fetched = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", metadata_url])
        .output()
        .expect("run curl");
    let meta: Value = serde_json::from_str(&ok(fetched)).expect("metadata is JSON");
    let resource = meta["resource"].as_str().expect("resource");
    assert!(resource.ends_with("/mcp"), "{meta}");
    assert_eq!(resource, format!("{base}/mcp"), "{meta}");
    assert_eq!(
        meta["bearer_methods_supported"],
        json!(["header"]),
        "{meta}"
    );

    // No token at all: the same challenge.
    let none = collect(
        spawn_client(
            Sdk::Python,
            &[&format!("{base}/mcp")],
            &[],
            &json!([{"call": "list_tools"}]),
        ),
        bad,
    );
    assert_eq!(none.code, Some(1), "{}", none.stdout);
    assert_eq!(none.lines[0]["status"], 401, "{}", none.stdout);
    assert_eq!(none.lines[0]["wwwAuthenticate"], challenge);
}

/// `gatehouse …` as `token`, running in the background.
fn cli_bg(s: &Server, token: &str, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("GATEHOUSE_URL", &s.url)
        .env("GATEHOUSE_TOKEN", token)
        .env("GATEHOUSE_CONFIG", s.path("no-config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse")
}

/// Waits until a pending review whose statement contains `needle` exists
/// (none of `not`), and returns its id.
fn pending_review(s: &Server, token: &str, needle: &str, not: &[&str]) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = json(s.cli(token, &["reviews", "list", "--pending", "--json"]));
        let found = v["reviews"].as_array().unwrap().iter().find(|r| {
            r["statement"].as_str().is_some_and(|x| x.contains(needle))
                && !not.contains(&r["id"].as_str().unwrap())
        });
        if let Some(r) = found {
            return r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < end, "no pending review for {needle}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exec_prints_tables_csv_and_json_is_denied_held_and_waits_and_connect_runs_psql() {
    let s = Server::start();
    let t = Table::create("agents_exec");
    let t = &t;
    let n = t.0.as_str();
    let (agent, dba) = setup(&s, n);
    let sel = format!("SELECT id, name, email FROM {n} ORDER BY id");

    // Table: the header (masked columns say so), the rows, the command tag.
    let table = ok(s.cli(&agent, &["exec", "shop", "-c", &sel]));
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
    let header: Vec<&str> = header.iter().map(|c| c.trim()).collect();
    assert_eq!(header, ["id", "name", "email (masked)"], "{table}");
    assert!(
        lines[1].starts_with("1") && lines[1].contains("alice"),
        "{table}"
    );
    assert!(lines[2].contains("Smith, Bob"), "{table}");
    assert!(lines[3].contains("carol"), "{table}");
    assert_eq!(lines.last().copied(), Some("SELECT 3"), "{table}");
    assert!(!table.contains("@example.com"), "{table}");

    // CSV: plain header, a value with a comma quoted.
    let csv = ok(s.cli(&agent, &["exec", "shop", "-c", &sel, "--format", "csv"]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "id,name,email", "{csv}");
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[2].starts_with("2,\"Smith, Bob\","), "{csv}");
    assert!(!csv.contains("@example.com"), "{csv}");

    // JSON, with parameters and a limit.
    let v = json(s.cli(
        &agent,
        &[
            "exec",
            "shop",
            "-c",
            &format!("SELECT id, name, email FROM {n} WHERE id >= $1 ORDER BY id"),
            "--param",
            "2",
            "--format",
            "json",
            "--limit",
            "1",
        ],
    ));
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["rows"][0][1], "Smith, Bob", "{v}");
    assert_eq!(v["columns"][2]["masked"], true, "{v}");
    assert_eq!(v["truncated"], true, "{v}");
    assert!(!v.to_string().contains("@example.com"), "{v}");

    // The statement on standard input works too.
    let piped = s.cli_with(
        &agent,
        &["exec", "shop", "--format", "csv"],
        Some(&format!("SELECT name FROM {n} WHERE id = 3")),
        &[],
    );
    assert_eq!(ok(piped), "name\ncarol\n");

    // Denied: exit 3, the rule's message and name on stderr.
    let denied = s.cli(&agent, &["exec", "shop", "-c", &format!("DROP TABLE {n}")]);
    assert_eq!(denied.status.code(), Some(3), "{}", err(&denied));
    assert!(
        err(&denied).contains(RULE_MESSAGE) && err(&denied).contains(&format!("(rule: {RULE})")),
        "{}",
        err(&denied)
    );
    assert!(out(&denied).is_empty(), "{}", out(&denied));
    assert_eq!(direct(&format!("SELECT count(*) FROM {n}")), "3");

    // Held: exit 2, the review id and the command that approves it; nothing ran.
    let held_sql = format!("UPDATE {n} SET name = 'held' WHERE id = 1");
    let held = s.cli(&agent, &["exec", "shop", "-c", &held_sql]);
    assert_eq!(held.status.code(), Some(2), "{}", err(&held));
    let id = pending_review(&s, &dba, &held_sql, &[]);
    let stderr = err(&held);
    assert!(
        stderr.contains(&format!("held for review {id}"))
            && stderr.contains(&format!("gatehouse reviews approve {id}")),
        "{stderr}"
    );
    assert_eq!(t.name_of(1), "alice");

    // --wait: held, then released by an approval from another process, and
    // run once.
    let waited_sql = format!("UPDATE {n} SET name = 'waited' WHERE id = 2");
    let waiting = cli_bg(
        &s,
        &agent,
        &["exec", "shop", "-c", &waited_sql, "--wait", "2m"],
    );
    let id2 = pending_review(&s, &dba, &waited_sql, &[&id]);
    assert_ne!(id2, id);
    assert_eq!(
        t.name_of(2),
        "Smith, Bob",
        "nothing ran before the approval"
    );
    ok(s.cli(&dba, &["reviews", "approve", &id2]));
    let (code, stdout, stderr) = finish(waiting, 180);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("UPDATE 1"), "{stdout}");
    assert!(stderr.contains(&id2), "{stderr}");
    assert_eq!(t.name_of(2), "waited");
    let shown = json(s.cli(&dba, &["reviews", "show", &id2, "--json"]));
    assert_eq!(shown["review"]["state"], "executed", "{shown}");
    // The first held statement still waits, untouched.
    assert_eq!(t.name_of(1), "alice");

    // connect: psql through the gateway, the token only in the environment.
    let pg = s.pg.clone();
    let connected = s.cli_with(
        &agent,
        &["connect", "shop", "--", "-X", "-Atc", "SELECT 'ok'"],
        None,
        &[("GATEHOUSE_PG", &pg), ("PGSSLMODE", "disable")],
    );
    assert_eq!(ok(connected).trim(), "ok");
    let masked = s.cli_with(
        &agent,
        &[
            "connect",
            "shop",
            "--",
            "-X",
            "-Atc",
            &format!("SELECT email FROM {n} WHERE id = 1"),
        ],
        None,
        &[("GATEHOUSE_PG", &pg), ("PGSSLMODE", "disable")],
    );
    let masked = ok(masked);
    assert!(
        !masked.contains("@example.com") && !masked.trim().is_empty(),
        "{masked}"
    );
    let refused = s.cli_with(
        &agent,
        &[
            "connect",
            "shop",
            "--",
            "-X",
            "-Atc",
            &format!("DROP TABLE {n}"),
        ],
        None,
        &[("GATEHOUSE_PG", &pg), ("PGSSLMODE", "disable")],
    );
    assert!(!refused.status.success());
    assert!(err(&refused).contains(RULE_MESSAGE), "{}", err(&refused));
}
