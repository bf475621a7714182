//! `gatehouse exec`, `gatehouse connect` and `gatehouse mcp`: reaching data
//! through a gateway with nothing but its URL and a token.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::cli::ExecArgs;
use crate::client::{Client, seg};
use crate::output::{printable, table};

/// Exit code of `exec` when a rule refused the statement.
const EXIT_DENIED: u8 = 3;
/// Exit code of `exec` when the statement is held for review.
const EXIT_HELD: u8 = 2;

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_rows(v: &Value, format: &str) -> anyhow::Result<()> {
    let names: Vec<String> = v["columns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let n = c["name"].as_str().unwrap_or_default().to_string();
            if c["masked"] == true {
                format!("{n} (masked)")
            } else {
                n
            }
        })
        .collect();
    let rows = crate::output::cells(&v["rows"], "");
    match format {
        "json" => println!("{}", crate::output::json(v)),
        "csv" => {
            let plain: Vec<String> = v["columns"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|c| csv_field(c["name"].as_str().unwrap_or_default()))
                .collect();
            println!("{}", plain.join(","));
            for r in &rows {
                let line: Vec<String> = r.iter().map(|x| csv_field(x)).collect();
                println!("{}", line.join(","));
            }
        }
        _ => {
            if !names.is_empty() {
                let headers: Vec<&str> = names.iter().map(String::as_str).collect();
                print!("{}", table(&headers, &rows));
            }
            let command = v["command"].as_str().unwrap_or_default();
            let truncated = if v["truncated"] == true {
                " (truncated: more rows than the limit)"
            } else {
                ""
            };
            println!("{}{truncated}", printable(command, false));
        }
    }
    for n in v["notices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        eprintln!(
            "NOTICE: {}",
            printable(n.as_str().unwrap_or_default(), true)
        );
    }
    Ok(())
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    if !["table", "json", "csv"].contains(&args.format.as_str()) {
        bail!("--format must be table, json or csv");
    }
    let sql = match (&args.command, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the statement from standard input")?;
            s
        }
    };
    if sql.trim().is_empty() {
        bail!("no statement: give one with -c, -f FILE or on standard input");
    }
    let c = Client::from_env()?;
    let mut body = json!({"sql": sql, "params": args.params});
    if let Some(l) = args.limit {
        body["limit"] = json!(l);
    }
    if let Some(t) = &args.timeout {
        body["timeout"] = json!(t);
    }
    let path = format!("/v1/connections/{}/query", seg(&args.connection));
    let wait_until = match &args.wait {
        Some(w) => Some(
            std::time::Instant::now()
                + gatehouse_core::duration::parse_duration(w).context("--wait")?,
        ),
        None => None,
    };
    loop {
        let (status, v) = c.send(reqwest::Method::POST, &path, Some(&body)).await?;
        match status {
            200 => {
                print_rows(&v, &args.format)?;
                return Ok(ExitCode::SUCCESS);
            }
            202 => {
                let id = v["review_id"].as_str().unwrap_or_default().to_string();
                let Some(until) = wait_until else {
                    eprintln!(
                        "held for review {id}: {}\napprove with: gatehouse reviews approve {id}\nthen run this command again (or use --wait 10m)",
                        v["message"].as_str().unwrap_or_default()
                    );
                    return Ok(ExitCode::from(EXIT_HELD));
                };
                eprintln!(
                    "held for review {id}; waiting for the decision (approve with: gatehouse reviews approve {id})"
                );
                let state = wait_for(&c, &id, until).await?;
                if state == "pending" {
                    eprintln!("review {id} is still pending; the statement did not run");
                    return Ok(ExitCode::from(EXIT_HELD));
                }
                if state != "approved" {
                    eprintln!("review {id} is {state}; the statement did not run");
                    return Ok(ExitCode::from(1));
                }
                // Approved: the same statement sent again runs once.
            }
            403 if v["error"]["code"] == "denied" => {
                eprintln!(
                    "{} (rule: {})",
                    printable(v["error"]["message"].as_str().unwrap_or_default(), true),
                    printable(v["error"]["rule"].as_str().unwrap_or_default(), false)
                );
                return Ok(ExitCode::from(EXIT_DENIED));
            }
            _ => {
                let msg = v["error"]["message"]
                    .as_str()
                    .map_or_else(|| v.to_string(), str::to_string);
                let state = v["error"]["sqlstate"]
                    .as_str()
                    .map(|s| format!(" (SQLSTATE {s})"))
                    .unwrap_or_default();
                bail!("{}{state} (HTTP {status})", printable(&msg, true));
            }
        }
    }
}

/// Waits for review `id` to be decided (in slices the server allows).
async fn wait_for(c: &Client, id: &str, until: std::time::Instant) -> anyhow::Result<String> {
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let slice = left.as_secs().clamp(1, 60);
        let r = c
            .get(&format!("/v1/reviews/{}?wait={slice}s", seg(id)))
            .await?;
        let state = r["review"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state != "pending" || std::time::Instant::now() >= until {
            return Ok(state);
        }
    }
}

/// Where the gateway's PostgreSQL listener is: `GATEHOUSE_PG` (host:port),
/// else the API's host on port 7432.
fn pg_address(c: &Client) -> anyhow::Result<(String, String)> {
    if let Ok(v) = std::env::var("GATEHOUSE_PG")
        && let Some((h, p)) = v.rsplit_once(':')
    {
        return Ok((h.trim_matches(['[', ']']).to_string(), p.to_string()));
    }
    let u = url::Url::parse(c.base()).context("GATEHOUSE_URL is not a URL")?;
    let host = u
        .host_str()
        .ok_or_else(|| anyhow!("GATEHOUSE_URL has no host"))?
        .trim_matches(['[', ']'])
        .to_string();
    Ok((host, "7432".into()))
}

pub async fn connect(connection: &str, extra: &[String]) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    let (host, port) = pg_address(&c)?;
    // The token travels in the environment, never in argv (where other
    // users of the machine could read it).
    let status = std::process::Command::new("psql")
        .args(extra)
        .env("PGHOST", &host)
        .env("PGPORT", &port)
        .env("PGDATABASE", connection)
        .env(
            "PGUSER",
            std::env::var("USER").unwrap_or_else(|_| "gatehouse".into()),
        )
        .env("PGPASSWORD", c.token().expose())
        .env(
            "PGSSLMODE",
            std::env::var("PGSSLMODE").unwrap_or_else(|_| "prefer".into()),
        )
        .env("PGAPPNAME", "gatehouse connect")
        .status()
        .map_err(|e| {
            anyhow!("cannot run psql ({e}); install the PostgreSQL client (postgresql-client)")
        })?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

pub async fn mcp() -> anyhow::Result<ExitCode> {
    use rmcp::ServiceExt;
    gatehouse_identity::install_crypto_provider();
    let c = Client::from_env()?;
    let server =
        gatehouse_server::mcp::GatehouseMcp::remote(c.base().to_string(), c.token().clone())
            .map_err(|e| anyhow!(e))?;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow!("the MCP session could not start: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| anyhow!("the MCP session failed: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
