//! The `gatehouse` binary as a user runs it: a real `gatehouse serve` process
//! on free ports, and the CLI pointed at it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
pub const SECRET: &str = "cli-secret-7Hq2-never-printed";

pub fn pg_url() -> String {
    std::env::var("GATEHOUSE_TEST_PG_UPSTREAM")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct Server {
    pub child: Child,
    pub url: String,
    /// host:port of the PostgreSQL listener.
    pub pg: String,
    /// host:port of the MySQL listener.
    pub mysql: String,
    /// The AWS listener, `host:port`.
    pub aws: String,
    pub dir: tempfile::TempDir,
    pub log: mpsc::Receiver<String>,
    pub admin: String,
    /// What the server logged while starting.
    pub startup: String,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// A server started with extra `serve` flags and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--pg-listen",
            "127.0.0.1:0",
            "--mysql-listen",
            "127.0.0.1:0",
            "--aws-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("GATEHOUSE_STORE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse serve");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let mut pg = None;
        let mut mysql = None;
        let mut aws = None;
        let mut seen = Vec::new();
        while url.is_none() || pg.is_none() || mysql.is_none() {
            let line = rx
                .recv()
                .unwrap_or_else(|_| panic!("gatehouse serve exited early:\n{}", seen.join("\n")));
            if let Some(i) = line.find("api=http://") {
                url = line[i + 4..].split_whitespace().next().map(str::to_string);
            }
            if let Some(i) = line.find("postgres=") {
                pg = line[i + 9..].split_whitespace().next().map(str::to_string);
            }
            if let Some(i) = line.find(" aws=") {
                aws = line[i + 5..].split_whitespace().next().map(str::to_string);
            }
            if let Some(i) = line.find("mysql=") {
                mysql = line[i + 6..].split_whitespace().next().map(str::to_string);
            }
            seen.push(line);
        }
        let admin =
            std::fs::read_to_string(dir.path().join("data/admin.token")).expect("admin token file");
        let admin = admin.trim().to_string();
        assert!(
            !seen.iter().any(|l| l.contains(&admin)),
            "the admin token must never be logged"
        );
        assert!(
            seen.iter().any(|l| l.contains("admin.token")),
            "start-up says where the admin token is"
        );
        Self {
            child,
            url: url.expect("url"),
            pg: pg.expect("postgres listener"),
            mysql: mysql.expect("mysql listener"),
            aws: aws.unwrap_or_default(),
            dir,
            log: rx,
            admin,
            startup: seen.join("\n"),
        }
    }

    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        self.cli_with(token, args, None, &[])
    }

    pub fn cli_with(
        &self,
        token: &str,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("GATEHOUSE_URL", &self.url)
            .env("GATEHOUSE_TOKEN", token)
            .env("GATEHOUSE_CONFIG", self.dir.path().join("no-config.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gatehouse");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("wait")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Everything the server has logged so far.
    pub fn drain_log(&self) -> String {
        self.log.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed:\nstdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
    out(&o)
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// Runs SQL on the upstream directly (as the database owner), with `psql`.
pub fn direct(sql: &str) -> String {
    let o = Command::new("psql")
        .args([&pg_url(), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(o.status.success(), "{sql}: {}", err(&o));
    out(&o).trim().to_string()
}

/// The JSON a successful command printed.
pub fn json(o: Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("json output")
}

/// Creates an API token for `name` in `group` and returns it.
pub fn token(s: &Server, name: &str, group: &str) -> String {
    let created = ok(s.cli(
        &s.admin,
        &["tokens", "create", "--name", name, "--group", group],
    ));
    created.lines().next().unwrap().trim().to_string()
}

/// Applies a declarative file (connections, policy) as the administrator.
pub fn apply(s: &Server, text: &str) {
    apply_env(s, text, &[]);
}

/// Applies a declarative file whose secret references (`{ env = … }`)
/// read `env`.
pub fn apply_env(s: &Server, text: &str, env: &[(&str, &str)]) {
    let path = s.dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    ok(s.cli_with(
        &s.admin,
        &["apply", "-f", path.to_str().unwrap()],
        None,
        env,
    ));
}

/// tests/support/s3_server.py: moto on a free port with one bucket.
pub struct S3 {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    pub port: String,
    pub key: (String, String),
    /// The role the key may assume (started with `--role`).
    pub role: Option<String>,
}

impl S3 {
    pub fn start(bucket: &str) -> Self {
        Self::start_with(&[bucket])
    }

    /// With `[bucket, "--role"]`: the key may only assume the role printed
    /// on a third line (in `role`).
    pub fn start_with(args: &[&str]) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/s3_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto (scripts/test installs it)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut key = line.split_whitespace().skip(1).map(str::to_string);
        let key = (key.next().expect("key id"), key.next().expect("secret"));
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("the S3 server did not start: {line}"))
            .trim()
            .to_string();
        let role = args.contains(&"--role").then(|| {
            line.clear();
            stdout.read_line(&mut line).unwrap();
            line.strip_prefix("role ")
                .expect("role line")
                .trim()
                .to_string()
        });
        Self {
            child,
            stdin,
            stdout,
            port,
            key,
            role,
        }
    }

    /// Objects in the bucket: key → (size, first two bytes in hex).
    pub fn list(&mut self) -> serde_json::Map<String, serde_json::Value> {
        writeln!(self.stdin, "list").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).expect("list output")
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/support/http_api.py on a free port.
pub struct Api {
    child: Child,
    pub port: String,
}

impl Api {
    pub fn start(token: &str) -> Self {
        Self::start_with(&[("CRM_TOKEN", token)])
    }

    /// Started with this environment (CRM_TOKEN, or CRM_MTLS_DIR).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/http_api.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("the API did not start: {line}"))
            .trim()
            .to_string();
        Self { child, port }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The audit event (`statement.deny`) of a statement refused in session
/// `session`, once it is written.
pub fn audited_refusal(s: &Server, session: &str) -> serde_json::Value {
    for _ in 0..200 {
        let exported = ok(s.cli(&s.admin, &["audit", "export", "--since", "1h"]));
        let found = exported
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["action"] == "statement.deny" && e["detail"]["session"] == session);
        if let Some(e) = found {
            return e;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no statement.deny audited for session {session}");
}
