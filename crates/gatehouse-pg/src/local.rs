//! The client end of a session opened inside Gatehouse (the query API and
//! MCP): one statement at a time over the extended protocol, parameters
//! and results as text.
//!
//! The session behind it is an ordinary proxied session (policy, masking,
//! reviews, recording), opened with [`crate::open_local`]. Two things
//! differ, both told to this client in NOTICEs only local sessions get: a
//! statement for review is not waited on (its review id comes in a NOTICE
//! `HELD`, then the refusal), and which result columns are masked comes
//! in a NOTICE `MASKED` before the row description.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, DuplexStream};

use crate::PgProxy;
use crate::codec::{self, Severity};
use crate::stream::write_flush;

/// NOTICE message: the statement is held; the hint is the review id.
pub(crate) const HELD: &str = "gatehouse: held for review";
/// NOTICE message: the hint lists the masked columns' indexes.
pub(crate) const MASKED: &str = "gatehouse: masked columns";
/// ParameterStatus naming the session (for the caller's reference).
pub(crate) const SESSION_PARAM: &str = "gatehouse.session_id";
/// Largest message this client reads.
const MESSAGE_LIMIT: usize = 256 << 20;

async fn cancel(proxy: &PgProxy, key: (i32, i32)) {
    if let crate::registry::Cancel::Upstream(target, (pid, k)) = proxy.sessions.cancel(key)
        && let Err(e) = crate::upstream::cancel(&target, pid, k).await
    {
        tracing::warn!(error = %e, "cancelling a local session's statement failed");
    }
}

pub(crate) fn announce_masked(out: &mut BytesMut, columns: &[usize]) {
    let list: Vec<String> = columns.iter().map(usize::to_string).collect();
    codec::error(
        out,
        Severity::Notice,
        "01000",
        MASKED,
        Some(&list.join(",")),
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub masked: bool,
}

/// What a statement returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub columns: Vec<Column>,
    /// Values as text; `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag, e.g. `SELECT 2`, `UPDATE 1`.
    pub command: Option<String>,
    /// More rows were there than asked for (or than fit in the byte limit).
    pub truncated: bool,
    /// Notices the server sent.
    pub notices: Vec<String>,
}

/// Why a statement did not run (or failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Refused by the policy: the rule and its message.
    Refused { rule: String, message: String },
    /// Held for review; send the same statement again once approved.
    Held { review: String, message: String },
    /// The database returned an error.
    Sql {
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
    /// The session ended.
    Closed(String),
}

/// The client end of a local session.
#[derive(Debug)]
pub struct Client {
    proxy: Arc<PgProxy>,
    stream: DuplexStream,
    buf: BytesMut,
    key: (i32, i32),
    pub session_id: String,
}

impl Client {
    /// Reads the session's start-up (through ReadyForQuery).
    pub(crate) async fn start(proxy: Arc<PgProxy>, stream: DuplexStream) -> Result<Self, String> {
        let mut c = Client {
            proxy,
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            key: (0, 0),
            session_id: String::new(),
        };
        loop {
            let (tag, msg) = c.next().await.map_err(|f| match f {
                Failure::Closed(m) => m,
                other => format!("{other:?}"),
            })?;
            let body = codec::body(&msg);
            match tag {
                b'K' => c.key = codec::parse_backend_key(body).map_err(|e| e.to_string())?,
                b'S' => {
                    if let Ok((k, v)) = codec::parse_parameter_status(body)
                        && k == SESSION_PARAM
                    {
                        c.session_id = v.to_string();
                    }
                }
                b'E' => return Err(codec::parse_error(body).1),
                b'Z' => return Ok(c),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> Result<(u8, BytesMut), Failure> {
        loop {
            match codec::frame(&self.buf, MESSAGE_LIMIT) {
                Ok(Some((tag, total))) => return Ok((tag, self.buf.split_to(total))),
                Ok(None) => {}
                Err(e) => return Err(Failure::Closed(format!("protocol error: {e}"))),
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    return Err(Failure::Closed("the session ended".into()));
                }
                Ok(_) => {}
            }
        }
    }

    /// Runs one statement with text parameters, returning at most
    /// `max_rows` rows and about `max_bytes` of values.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Option<String>],
        max_rows: u32,
        max_bytes: usize,
    ) -> Result<Answer, Failure> {
        let mut out = BytesMut::new();
        codec::parse_message(&mut out, sql);
        let refs: Vec<Option<&str>> = params.iter().map(Option::as_deref).collect();
        codec::bind_text(&mut out, &refs);
        codec::describe_portal(&mut out, "");
        // One row more than asked for tells whether there were more.
        codec::execute_message(
            &mut out,
            i32::try_from(max_rows.saturating_add(1)).unwrap_or(i32::MAX),
        );
        codec::empty_message(&mut out, b'S');
        write_flush(&mut self.stream, &out)
            .await
            .map_err(|_| Failure::Closed("the session ended".into()))?;

        let mut answer = Answer::default();
        let mut masked: Vec<usize> = Vec::new();
        let mut held: Option<String> = None;
        let mut failure: Option<Failure> = None;
        let mut bytes = 0usize;
        loop {
            let (tag, msg) = self.next().await?;
            let body = codec::body(&msg);
            match tag {
                b'N' => {
                    let f = codec::fields(body);
                    let get = |c: u8| f.iter().find(|(k, _)| *k == c).map(|(_, v)| *v);
                    match get(b'M') {
                        Some(HELD) => held = get(b'H').map(str::to_string),
                        Some(MASKED) => {
                            masked = get(b'H')
                                .unwrap_or_default()
                                .split(',')
                                .filter_map(|x| x.parse().ok())
                                .collect();
                        }
                        Some(m) => answer.notices.push(m.to_string()),
                        None => {}
                    }
                }
                b'T' => {
                    let fields = codec::parse_row_description(body)
                        .map_err(|e| Failure::Closed(format!("protocol error: {e}")))?;
                    answer.columns = fields
                        .into_iter()
                        .enumerate()
                        .map(|(i, f)| Column {
                            name: f.name,
                            type_oid: f.type_oid,
                            masked: masked.contains(&i),
                        })
                        .collect();
                }
                b'D' => {
                    if answer.rows.len() >= max_rows as usize || bytes > max_bytes {
                        answer.truncated = true;
                        continue;
                    }
                    let values = codec::parse_data_row(body)
                        .map_err(|e| Failure::Closed(format!("protocol error: {e}")))?;
                    bytes += body.len();
                    answer.rows.push(
                        values
                            .into_iter()
                            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                            .collect(),
                    );
                }
                b's' => answer.truncated = true,
                b'C' => {
                    answer.command = codec::parse_command_complete(body).map(str::to_string);
                }
                b'E' => {
                    let f = codec::fields(body);
                    let get = |c: u8| f.iter().find(|(k, _)| *k == c).map(|(_, v)| v.to_string());
                    let code = get(b'C').unwrap_or_default();
                    let message = get(b'M').unwrap_or_default();
                    let detail = get(b'D');
                    let ours = message
                        .strip_prefix("Gatehouse refused this statement: ")
                        .zip(detail.as_deref().and_then(|d| d.strip_prefix("rule: ")));
                    failure = Some(match (ours, &held) {
                        (Some((m, _)), Some(review)) if code == "42501" => Failure::Held {
                            review: review.clone(),
                            message: m.to_string(),
                        },
                        (Some((m, rule)), None) if code == "42501" => Failure::Refused {
                            rule: rule.to_string(),
                            message: m.to_string(),
                        },
                        _ => Failure::Sql {
                            code,
                            message,
                            detail,
                            hint: get(b'H'),
                        },
                    });
                }
                b'Z' => {
                    return match failure {
                        Some(f) => Err(f),
                        None => Ok(answer),
                    };
                }
                _ => {}
            }
        }
    }

    /// Asks the upstream to cancel the running statement.
    pub async fn cancel(&self) {
        cancel(&self.proxy, self.key).await;
    }

    /// Runs one statement, cancelling it after `timeout`.
    pub async fn query_within(
        &mut self,
        timeout: Duration,
        sql: &str,
        params: &[Option<String>],
        max_rows: u32,
        max_bytes: usize,
    ) -> Result<Answer, Failure> {
        let (proxy, key) = (self.proxy.clone(), self.key);
        let deadline = tokio::time::Instant::now() + timeout;
        let run = self.query(sql, params, max_rows, max_bytes);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r,
            () = tokio::time::sleep_until(deadline) => {
                cancel(&proxy, key).await;
                Err(Failure::Closed(format!(
                    "the statement ran longer than {} and was cancelled",
                    gatehouse_core::duration::format_duration(timeout)
                )))
            }
        }
    }

    /// Ends the session.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        codec::empty_message(&mut out, b'X');
        let _ = write_flush(&mut self.stream, &out).await;
    }
}
