//! `gatehouse reviews …` and `gatehouse access …`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::{AccessCmd, ReviewsCmd};
use crate::client::{Client, seg};
use crate::output::{items, print, s, table, time};

/// What a review asks for, in one line.
fn subject(r: &Value) -> String {
    if s(r, "kind") == "access" {
        let ms = r["duration_ms"].as_u64().unwrap_or(0);
        return format!(
            "{} access for {}",
            s(r, "level"),
            gatehouse_core::duration::format_duration(std::time::Duration::from_millis(ms))
        );
    }
    let sql = r["statement"].as_str().unwrap_or_default();
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(59).collect::<String>())
    } else {
        one_line
    }
}

fn approvals(r: &Value) -> String {
    let got = items(&r["votes"])
        .iter()
        .filter(|v| s(v, "decision") == "approve")
        .count();
    format!("{got}/{}", r["approvals_needed"].as_i64().unwrap_or(1))
}

/// A review in full, for people.
fn review_text(r: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| {
        if !v.is_empty() && v != "-" {
            out.push_str(&format!("{k:<12} {v}\n"));
        }
    };
    line(&mut out, "review", s(r, "id"));
    line(&mut out, "state", s(r, "state"));
    line(&mut out, "kind", s(r, "kind"));
    line(&mut out, "connection", s(r, "connection"));
    line(&mut out, "requester", s(r, "requester"));
    line(&mut out, "reason", s(r, "reason"));
    line(&mut out, "rule", s(r, "rule"));
    line(
        &mut out,
        "approvers",
        format!(
            "{} ({} approvals given)",
            items(&r["approvers"])
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            approvals(r)
        ),
    );
    if s(r, "kind") == "access" {
        line(&mut out, "asks for", subject(r));
        line(&mut out, "grant", s(r, "grant_id"));
    }
    line(&mut out, "created", time(r["created_at"].as_i64()));
    line(&mut out, "expires", time(r["expires_at"].as_i64()));
    line(&mut out, "decided", time(r["decided_at"].as_i64()));
    line(&mut out, "executed", time(r["executed_at"].as_i64()));
    line(&mut out, "session", s(r, "session_id"));
    for v in items(&r["votes"]) {
        let glass = if v["break_glass"].as_bool() == Some(true) {
            " (break glass)"
        } else {
            ""
        };
        let reason = v["reason"]
            .as_str()
            .map(|x| format!(": {x}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "vote         {} {}{glass} at {}{reason}\n",
            s(v, "approver"),
            s(v, "decision"),
            time(v["at"].as_i64())
        ));
    }
    if let Some(sql) = r["statement"].as_str() {
        out.push_str("statement\n");
        for l in sql.lines() {
            out.push_str(&format!("    {l}\n"));
        }
    }
    if let Some(p) = r["params"].as_str() {
        out.push_str(&format!("parameters   {p}\n"));
    }
    if s(r, "state") == "pending" {
        out.push_str(&format!(
            "\napprove: gatehouse reviews approve {id}\nreject:  gatehouse reviews reject {id} --reason \"…\"\n",
            id = s(r, "id")
        ));
    }
    out
}

pub async fn reviews(cmd: ReviewsCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        ReviewsCmd::List {
            pending,
            limit,
            json,
        } => {
            let v = c
                .get(&format!("/v1/reviews?pending={pending}&limit={limit}"))
                .await?;
            print(&v, json, |v| {
                let rows: Vec<Vec<String>> = items(&v["reviews"])
                    .iter()
                    .map(|r| {
                        vec![
                            s(r, "id"),
                            s(r, "state"),
                            s(r, "connection"),
                            s(r, "requester"),
                            approvals(r),
                            time(r["created_at"].as_i64()),
                            subject(r),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "STATE",
                        "CONNECTION",
                        "REQUESTER",
                        "APPROVALS",
                        "CREATED",
                        "WHAT",
                    ],
                    &rows,
                )
            });
        }
        ReviewsCmd::Show { id, wait, json } => {
            let q = wait
                .map(|w| format!("?wait={}", seg(&w)))
                .unwrap_or_default();
            let v = c.get(&format!("/v1/reviews/{}{q}", seg(&id))).await?;
            print(&v, json, |v| review_text(&v["review"]));
        }
        ReviewsCmd::Approve { id, reason, json } => {
            let v = c
                .post(
                    &format!("/v1/reviews/{}/approve", seg(&id)),
                    &json!({ "reason": reason }),
                )
                .await?;
            print(&v, json, |v| {
                let r = &v["review"];
                match s(r, "state").as_str() {
                    "approved" if s(r, "kind") == "access" => {
                        format!("approved {id}: grant {} is live\n", s(r, "grant_id"))
                    }
                    "approved" => format!("approved {id}: the statement runs once\n"),
                    _ => format!(
                        "your approval of {id} is recorded; it has {} approvals\n",
                        approvals(r)
                    ),
                }
            });
        }
        ReviewsCmd::Reject { id, reason, json } => {
            let v = c
                .post(
                    &format!("/v1/reviews/{}/reject", seg(&id)),
                    &json!({ "reason": reason }),
                )
                .await?;
            print(&v, json, |_| format!("rejected {id}\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn access(cmd: AccessCmd) -> anyhow::Result<ExitCode> {
    let c = Client::from_env()?;
    match cmd {
        AccessCmd::Request {
            connection,
            level,
            duration,
            reason,
            wait,
            json,
        } => {
            let v = c
                .post(
                    "/v1/access/requests",
                    &json!({
                        "connection": connection,
                        "level": level,
                        "duration": duration,
                        "reason": reason,
                    }),
                )
                .await?;
            let id = s(&v["review"], "id");
            let Some(wait) = wait else {
                print(&v, json, |_| {
                    format!(
                        "requested {level} access to {connection} for {duration}: review {id}\napprovers run: gatehouse reviews approve {id}\n"
                    )
                });
                return Ok(ExitCode::SUCCESS);
            };
            // Wait in slices the server allows, until decided or the time is up.
            let total = gatehouse_core::duration::parse_duration(&wait).context("--wait")?;
            let end = std::time::Instant::now() + total;
            let mut r;
            loop {
                let left = end.saturating_duration_since(std::time::Instant::now());
                let slice = left
                    .min(std::time::Duration::from_secs(60))
                    .as_secs()
                    .max(1);
                r = c
                    .get(&format!("/v1/reviews/{}?wait={slice}s", seg(&id)))
                    .await?;
                if s(&r["review"], "state") != "pending" || std::time::Instant::now() >= end {
                    break;
                }
            }
            let state = s(&r["review"], "state");
            print(&r, json, |r| review_text(&r["review"]));
            if state != "approved" {
                eprintln!("access request {id} is {state}");
                return Ok(ExitCode::from(1));
            }
        }
        AccessCmd::List(j) => {
            let v = c.get("/v1/access/grants").await?;
            print(&v, j.json, |v| {
                let rows: Vec<Vec<String>> = items(&v["grants"])
                    .iter()
                    .map(|g| {
                        vec![
                            s(g, "id"),
                            s(g, "principal"),
                            s(g, "connection"),
                            s(g, "level"),
                            time(g["expires_at"].as_i64()),
                            s(g, "reason"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "PRINCIPAL",
                        "CONNECTION",
                        "LEVEL",
                        "EXPIRES",
                        "REASON",
                    ],
                    &rows,
                )
            });
        }
        AccessCmd::Revoke { id, json } => {
            let v = c.delete(&format!("/v1/access/grants/{}", seg(&id))).await?;
            print(&v, json, |v| {
                format!(
                    "revoked {id}; {} live session(s) ended\n",
                    v["sessions_ended"].as_u64().unwrap_or(0)
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
