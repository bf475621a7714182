//! Commands that call the server's API.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use gatehouse_core::decl;
use gatehouse_core::duration::parse_duration;
use gatehouse_core::secret::Secret;
use serde_json::{Value, json};

use crate::cli::{
    AddConnection, ApplyArgs, AuditCmd, ConnectionsCmd, KeysCmd, LoginArgs, PolicyCmd, SessionsCmd,
    TokensCmd,
};
use crate::client::{self, Client, seg};
use crate::output::{self, print, printable, s, table, time};

fn read_stdin_secret(what: &str) -> anyhow::Result<Secret> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.is_empty() {
        bail!("standard input was empty; pipe the {what} in");
    }
    Ok(Secret::new(text))
}

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let existing = client::read_config()?;
    let url = args
        .url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| client::resolve_url(&existing));
    let token = match &args.token_file {
        Some(p) => Secret::new(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim(),
        ),
        None => {
            eprintln!("Paste your Gatehouse token and press Enter (Ctrl-D to finish):");
            read_stdin_secret("token")?
        }
    };
    let c = Client::new(url.clone(), token.clone())?;
    let me = c
        .get("/v1/whoami")
        .await
        .context("the token was not accepted")?;
    let path = client::config_path()
        .ok_or_else(|| anyhow!("cannot find a config directory: set GATEHOUSE_CONFIG"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = toml::to_string(&client::ConfigFile {
        url: Some(url.clone()),
        token: Some(token.expose().to_string()),
    })
    .context("writing the config")?;
    {
        use std::io::Write;
        let mut f = gatehouse_core::keyring::private_file(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
    }
    println!(
        "Logged in to {url} as {} (saved to {}, mode 0600)",
        s(&me, "subject"),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(as_json: bool) -> anyhow::Result<ExitCode> {
    let me = Client::from_env()?.get("/v1/whoami").await?;
    print(&me, as_json, |v| {
        format!(
            "subject: {}\ngroups:  {}\nadmin:   {}\nexpires: {}\n",
            s(v, "subject"),
            s(v, "groups"),
            s(v, "admin"),
            time(v["expires_at"].as_i64())
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn tokens(cmd: TokensCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        TokensCmd::Create {
            name,
            groups,
            ttl,
            json,
        } => {
            if let Some(t) = &ttl {
                parse_duration(t)?;
            }
            let v = c
                .post(
                    "/v1/tokens",
                    &json!({"name": name, "groups": groups, "ttl": ttl}),
                )
                .await?;
            print(&v, json, |v| {
                format!(
                    "{}\n\nToken {} created for groups {} (expires: {}).\nThis is the only time it is shown: store it now.\n",
                    s(v, "token"),
                    s(v, "name"),
                    s(v, "groups"),
                    time(v["expires_at"].as_i64())
                )
            });
        }
        TokensCmd::List(j) => {
            let v = c.get("/v1/tokens").await?;
            print(&v, j.json, |v| {
                let rows: Vec<Vec<String>> = v["tokens"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        vec![
                            s(t, "name"),
                            s(t, "groups"),
                            s(t, "status"),
                            time(t["expires_at"].as_i64()),
                            time(t["last_used_at"].as_i64()),
                        ]
                    })
                    .collect();
                table(&["NAME", "GROUPS", "STATUS", "EXPIRES", "LAST USED"], &rows)
            });
        }
        TokensCmd::Revoke { name, json } => {
            let v = c.delete(&format!("/v1/tokens/{}", seg(&name))).await?;
            print(&v, json, |_| format!("Token {name} revoked.\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn connection_body(a: &AddConnection) -> anyhow::Result<Value> {
    let password = if let Some(var) = &a.password_env {
        Some(Secret::new(std::env::var(var).map_err(|_| {
            anyhow!("environment variable {var} is not set (--password-env)")
        })?))
    } else if let Some(path) = &a.password_file {
        Some(Secret::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {} (--password-file)", path.display()))?
                .trim_end_matches(['\n', '\r']),
        ))
    } else if a.password_stdin {
        Some(read_stdin_secret("password")?)
    } else {
        None
    };
    let mut settings = serde_json::Map::new();
    if let Some(t) = &a.statement_timeout {
        settings.insert(
            "statement_timeout_ms".into(),
            json!(parse_duration(t)?.as_millis()),
        );
    }
    if let Some(r) = a.row_limit {
        settings.insert("row_limit".into(), json!(r));
    }
    if let Some(n) = a.max_sessions {
        settings.insert("max_sessions".into(), json!(n));
    }
    if a.read_only {
        settings.insert("read_only".into(), json!(true));
    }
    if let Some(t) = &a.max_session {
        settings.insert(
            "max_session_secs".into(),
            json!(parse_duration(t)?.as_secs()),
        );
    }
    if let Some(h) = &a.http_auth {
        let auth = match h.split_once(':') {
            None if h == "bearer" => json!({"type": "bearer"}),
            None if h == "client-cert" => json!({"type": "client_cert"}),
            Some(("basic", user)) => json!({"type": "basic", "username": user}),
            Some(("header", name)) => json!({"type": "header", "name": name}),
            _ => {
                return Err(anyhow!(
                    "--http-auth {h:?} must be bearer, basic:USERNAME, header:NAME or client-cert"
                ));
            }
        };
        settings.insert("http_auth".into(), auth);
    }
    if a.aws_access_key_id.is_some() || a.aws_region.is_some() || a.aws_role_arn.is_some() {
        settings.insert(
            "aws".into(),
            json!({"access_key_id": a.aws_access_key_id.clone().unwrap_or_default(), "region": a.aws_region, "role_arn": a.aws_role_arn}),
        );
    }
    let mut body = json!({
        "name": a.name, "kind": a.kind, "url": a.url, "groups": a.groups, "settings": settings,
    });
    if let Some(pw) = password {
        body["password"] = json!(pw.expose());
    }
    Ok(body)
}

fn connection_detail(v: &Value) -> String {
    let settings = v["settings"].as_object().cloned().unwrap_or_default();
    let settings = if settings.is_empty() {
        "-".to_string()
    } else {
        settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "name:     {}\nkind:     {}\nurl:      {}\ngroups:   {}\npassword: {}\nsettings: {settings}\nupdated:  {}\n",
        s(v, "name"),
        s(v, "kind"),
        s(v, "url"),
        s(v, "groups"),
        if v["has_password"].as_bool() == Some(true) {
            "stored (encrypted)"
        } else {
            "none"
        },
        time(v["updated_at"].as_i64()),
    )
}

pub async fn connections(cmd: ConnectionsCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        ConnectionsCmd::Add(a) => {
            let body = connection_body(&a)?;
            let v = c.post("/v1/connections", &body).await?;
            print(&v, a.json, |v| {
                format!(
                    "Connection {} added.\n{}",
                    s(v, "name"),
                    connection_detail(v)
                )
            });
        }
        ConnectionsCmd::List(j) => {
            let v = c.get("/v1/connections").await?;
            print(&v, j.json, |v| {
                let rows: Vec<Vec<String>> = v["connections"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| vec![s(c, "name"), s(c, "kind"), s(c, "url"), s(c, "groups")])
                    .collect();
                table(&["NAME", "KIND", "URL", "GROUPS"], &rows)
            });
        }
        ConnectionsCmd::Show { name, json } => {
            let v = c.get(&format!("/v1/connections/{}", seg(&name))).await?;
            print(&v, json, connection_detail);
        }
        ConnectionsCmd::Remove { name, json } => {
            let v = c.delete(&format!("/v1/connections/{}", seg(&name))).await?;
            print(&v, json, |_| format!("Connection {name} removed.\n"));
        }
        ConnectionsCmd::Test { name, json } => {
            let v = c
                .post(&format!("/v1/connections/{}/test", seg(&name)), &json!({}))
                .await?;
            let ok = v["ok"].as_bool() == Some(true);
            print(&v, json, |v| {
                if ok {
                    format!(
                        "OK  {}: {} ({}, {} ms)\n",
                        name,
                        s(v, "message"),
                        s(v, "server_version"),
                        s(v, "latency_ms")
                    )
                } else {
                    format!(
                        "FAILED  {}: {} ({} ms)\n",
                        name,
                        s(v, "message"),
                        s(v, "latency_ms")
                    )
                }
            });
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let d = decl::parse_file(&args.file)?;
    let connections: Vec<Value> = d
        .connections
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(&c.spec).unwrap_or_default();
            if let Some(pw) = &c.password {
                v["password"] = json!(pw.expose());
            }
            v
        })
        .collect();
    let c = Client::from_env()?;
    let mut body = json!({"connections": connections, "dry_run": args.dry_run});
    if let Some(p) = &d.policy {
        body["policy"] = serde_json::to_value(p)?;
    }
    let v = c.post("/v1/apply", &body).await?;
    print(&v, args.json, |v| {
        let changes = v["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut out = String::new();
        for ch in changes {
            let fields = s(ch, "fields");
            let what = match ch["action"].as_str() {
                Some("create") => "+ create".to_string(),
                Some("update") => format!("~ update ({fields})"),
                _ => "= unchanged".to_string(),
            };
            out.push_str(&format!("{what}  connection {}\n", s(ch, "name")));
        }
        let mut n = changes
            .iter()
            .filter(|c| c["action"] != "unchanged")
            .count();
        match v["policy"].as_str() {
            Some("replace") | Some("replaced") => {
                n += 1;
                out.push_str("~ replace  policy\n");
            }
            Some("unchanged") => out.push_str("= unchanged  policy\n"),
            _ => {}
        }
        if args.dry_run {
            out.push_str(&format!(
                "Plan: {n} change(s). Nothing was applied (--dry-run).\n"
            ));
        } else {
            out.push_str(&format!("Applied: {n} change(s).\n"));
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCmd::Generate => {
            println!(
                "{}",
                gatehouse_core::keyring::Keyring::generate_key().expose()
            );
        }
        KeysCmd::Rotate(j) => {
            let v = Client::from_env()?
                .post("/v1/keys/rotate", &json!({}))
                .await?;
            print(&v, j.json, |v| {
                format!(
                    "Master key rotated: new key {}, {} secret(s) re-encrypted.\n{}\n",
                    s(v, "primary_key_id"),
                    s(v, "reencrypted"),
                    s(v, "note")
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    let (limit, json) = match cmd {
        AuditCmd::List { limit, json } => (limit, json),
        AuditCmd::Verify { public_keys, json } => {
            let q = if public_keys.is_empty() {
                String::new()
            } else {
                format!("?public_key={}", seg(&public_keys.join(",")))
            };
            let v = Client::from_env()?
                .get(&format!("/v1/audit/verify{q}"))
                .await?;
            let ok = v["ok"] == true;
            print(&v, json, |v| {
                if ok {
                    format!(
                        "OK: {} entries chained, {} signed checkpoints verified, {} entries after the newest checkpoint\n",
                        v["events"], v["checkpoints"], v["unsigned_tail"]
                    )
                } else {
                    String::new()
                }
            });
            if !ok {
                eprintln!(
                    "TAMPERED: {}",
                    v["problem"]
                        .as_str()
                        .unwrap_or("the audit log does not verify")
                );
                return Ok(ExitCode::from(1));
            }
            return Ok(ExitCode::SUCCESS);
        }
        AuditCmd::Export { since, format } => {
            if format != "jsonl" {
                bail!("--format must be jsonl");
            }
            let since = match since {
                Some(d) => {
                    let ago = i64::try_from(parse_duration(&d).context("--since")?.as_millis())
                        .unwrap_or(i64::MAX);
                    gatehouse_core::now_ms() - ago
                }
                None => 0,
            };
            let c = Client::from_env()?;
            let (status, v) = c
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/audit/export?since={since}&format=jsonl"),
                    None,
                )
                .await?;
            match v {
                Value::String(text) if status == 200 => print!("{text}"),
                // A single event parses as JSON: print it back as one line.
                other if status == 200 => println!("{other}"),
                other => bail!(
                    "{} (HTTP {status})",
                    other["error"]["message"]
                        .as_str()
                        .unwrap_or("export failed")
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        AuditCmd::Checkpoint(j) => {
            let v = Client::from_env()?
                .post("/v1/audit/checkpoint", &serde_json::json!({}))
                .await?;
            print(&v, j.json, |v| match v["checkpoint"].as_object() {
                Some(c) => format!(
                    "signed the head at entry {} ({})\n",
                    c["event_id"],
                    c["head_hash"].as_str().unwrap_or_default()
                ),
                None => "nothing new to sign: the newest checkpoint covers the head\n".into(),
            });
            return Ok(ExitCode::SUCCESS);
        }
        AuditCmd::PublicKey => {
            let v = Client::from_env()?.get("/v1/audit/public-key").await?;
            println!("{}", v["public_key"].as_str().unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let v = Client::from_env()?
        .get(&format!("/v1/audit?limit={limit}"))
        .await?;
    print(&v, json, |v| {
        let rows: Vec<Vec<String>> = v["events"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                vec![
                    s(e, "id"),
                    time(e["ts"].as_i64()),
                    s(e, "actor"),
                    s(e, "action"),
                    s(e, "target"),
                ]
            })
            .collect();
        table(&["ID", "TIME", "ACTOR", "ACTION", "TARGET"], &rows)
    });
    Ok(ExitCode::SUCCESS)
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub async fn sessions(cmd: SessionsCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        SessionsCmd::List {
            user,
            connection,
            since,
            grep,
            limit,
            json,
        } => {
            let since = match since {
                Some(d) => {
                    let ago = i64::try_from(parse_duration(&d).context("--since")?.as_millis())
                        .unwrap_or(i64::MAX);
                    Some((gatehouse_core::now_ms() - ago).to_string())
                }
                None => None,
            };
            let q = query_string(&[
                ("user", user),
                ("connection", connection),
                ("since", since),
                ("grep", grep),
                ("limit", Some(limit.to_string())),
            ]);
            let v = c.get(&format!("/v1/sessions{q}")).await?;
            print(&v, json, |v| {
                let rows: Vec<Vec<String>> = v["sessions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|x| {
                        vec![
                            s(x, "id"),
                            s(x, "principal"),
                            s(x, "connection"),
                            s(x, "protocol"),
                            time(x["started_at"].as_i64()),
                            if x["ended_at"].is_null() {
                                "live".into()
                            } else {
                                s(x, "end_reason")
                            },
                        ]
                    })
                    .collect();
                table(
                    &["ID", "USER", "CONNECTION", "PROTOCOL", "STARTED", "ENDED"],
                    &rows,
                )
            });
        }
        SessionsCmd::Show { id, json } => {
            let v = c.get(&format!("/v1/sessions/{}", seg(&id))).await?;
            print(&v, json, |v| {
                let sess = &v["session"];
                let mut out = format!(
                    "session:    {}\nuser:       {} ({})\nconnection: {} ({})\nclient:     {}\nstarted:    {}\nended:      {}\n\n",
                    s(sess, "id"),
                    s(sess, "principal"),
                    s(sess, "authn"),
                    s(sess, "connection"),
                    s(sess, "protocol"),
                    s(sess, "client_addr"),
                    time(sess["started_at"].as_i64()),
                    if sess["ended_at"].is_null() {
                        "still live".to_string()
                    } else {
                        format!(
                            "{} ({})",
                            time(sess["ended_at"].as_i64()),
                            s(sess, "end_reason")
                        )
                    }
                );
                let rows: Vec<Vec<String>> = v["statements"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|st| {
                        let outcome = if st["error"].is_null() {
                            s(st, "command")
                        } else {
                            format!("ERROR {}", s(st, "error"))
                        };
                        let ms = st["duration_us"]
                            .as_i64()
                            .map(|us| format!("{:.1}", us as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into());
                        vec![
                            s(st, "seq"),
                            s(st, "decision"),
                            ms,
                            s(st, "rows"),
                            outcome,
                            match params_text(st) {
                                Some(p) => format!("{}  -- {p}", s(st, "sql")),
                                None => s(st, "sql"),
                            }
                            .replace('\n', " "),
                        ]
                    })
                    .collect();
                out.push_str(&table(
                    &["#", "DECISION", "MS", "ROWS", "RESULT", "SQL"],
                    &rows,
                ));
                out
            });
        }
        SessionsCmd::Replay { id, speed, no_wait } => {
            if !(speed.is_finite() && speed > 0.0) {
                bail!("--speed must be a positive number");
            }
            let v = c.get(&format!("/v1/sessions/{}", seg(&id))).await?;
            replay(&v, speed, no_wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A recorded statement's bound parameters as people read them
/// (`$1=42, $2=NULL`), if it had any.
fn params_text(st: &Value) -> Option<String> {
    let params = st["params"].as_array()?;
    let mut text = params
        .iter()
        .enumerate()
        .map(|(i, v)| format!("${}={}", i + 1, v.as_str().unwrap_or("NULL")))
        .collect::<Vec<_>>()
        .join(", ");
    if st["params_truncated"] == true {
        text.push_str(" (cut: more than the recording keeps)");
    }
    Some(text)
}

/// Prints a recorded session statement by statement, waiting between
/// them as long as the session did (divided by `speed`).
async fn replay(v: &Value, speed: f64, no_wait: bool) {
    use std::io::Write;
    let sess = &v["session"];
    let start = sess["started_at"].as_i64().unwrap_or(0);
    let header = format!(
        "session {} · {} ({}) on {} via {} from {} · started {}",
        s(sess, "id"),
        s(sess, "principal"),
        s(sess, "authn"),
        s(sess, "connection"),
        s(sess, "protocol"),
        s(sess, "client_addr"),
        time(Some(start))
    );
    println!("{}", printable(&header, false));
    let mut last = start;
    for st in v["statements"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let at = st["started_at"].as_i64().unwrap_or(last);
        if !no_wait && at > last {
            let ms = ((at - last) as f64 / speed) as u64;
            let _ = std::io::stdout().flush();
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        last = at.max(last);
        let rule = st["rule"]
            .as_str()
            .map(|r| format!(" (rule {r})"))
            .unwrap_or_default();
        // What the session sent, made printable: it cannot steer the
        // terminal of whoever replays it.
        println!(
            "\n[+{:.3}s] {}{}\n{}",
            (at - start) as f64 / 1000.0,
            s(st, "decision"),
            printable(&rule, false),
            printable(st["sql"].as_str().unwrap_or_default(), true)
        );
        if let Some(p) = params_text(st) {
            println!("parameters: {}", printable(&p, false));
        }
        if let Some(cols) = st["columns"].as_array() {
            let headers: Vec<String> = cols
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect();
            let rows = output::cells(&st["result"], "NULL");
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            print!("{}", table(&refs, &rows));
            if st["result_truncated"] == true {
                println!("… (more rows than the recording keeps)");
            }
        }
        let ms = st["duration_us"]
            .as_i64()
            .map_or(0.0, |us| us as f64 / 1000.0);
        match st["error"].as_str() {
            Some(e) => println!("ERROR {} ({ms:.1} ms)", printable(e, false)),
            None => println!("{} ({ms:.1} ms)", printable(&s(st, "command"), false)),
        }
    }
    if !sess["ended_at"].is_null() {
        println!(
            "\nsession ended {} ({})",
            time(sess["ended_at"].as_i64()),
            printable(&s(sess, "end_reason"), false)
        );
    }
}

pub async fn policy(cmd: PolicyCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        PolicyCmd::Show(j) => {
            let v = c.get("/v1/policy").await?;
            print(&v, j.json, |v| {
                let p = &v["policy"];
                let mut out = format!(
                    "policy version {} (default: {}), updated {} by {}\n",
                    s(v, "version"),
                    s(p, "default"),
                    time(v["updated_at"].as_i64()),
                    s(v, "updated_by"),
                );
                let count = |k: &str| p[k].as_array().map_or(0, Vec::len);
                out.push_str(&format!(
                    "{} rule(s), {} mask(s), {} detector(s)\n",
                    count("rules"),
                    count("masks"),
                    count("detectors")
                ));
                for r in p["rules"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    out.push_str(&format!("  {:<7} {}\n", s(r, "action"), s(r, "name")));
                }
                out
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Test {
            as_,
            connection,
            sql,
            json,
        } => {
            let v = c
                .post(
                    "/v1/policy/test",
                    &json!({"as": as_, "connection": connection, "sql": sql}),
                )
                .await?;
            let action = v["decision"]["verdict"]["action"]
                .as_str()
                .unwrap_or("deny")
                .to_string();
            print(&v, json, |v| {
                let d = &v["decision"]["verdict"];
                let a = &v["analysis"];
                let mut out = format!("decision: {}\n", s(d, "action"));
                out.push_str(&format!(
                    "rule:     {}\n",
                    d["rule"].as_str().unwrap_or("(none: no rule matched)")
                ));
                if let Some(m) = d["message"].as_str() {
                    out.push_str(&format!("message:  {m}\n"));
                }
                match a["class"].as_str() {
                    Some(class) => out.push_str(&format!("class:    {class}\n")),
                    None => out.push_str(&format!("parse:    {}\n", s(a, "parse_error"))),
                }
                let list = |k: &str| {
                    a[k].as_array()
                        .map(|xs| {
                            xs.iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                for (label, k) in [
                    ("reads", "tables_read"),
                    ("writes", "tables_written"),
                    ("calls", "functions"),
                ] {
                    let l = list(k);
                    if !l.is_empty() {
                        out.push_str(&format!("{label:<9} {l}\n"));
                    }
                }
                out
            });
            Ok(if action == "allow" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
