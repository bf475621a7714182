//! The client end of a MySQL session opened inside Gatehouse (the query
//! API and MCP): one statement at a time, parameters bound through a
//! server-side prepared statement, results as text.
//!
//! The session behind it is an ordinary proxied session (policy, masking,
//! reviews, recording). What the MySQL protocol cannot say (which columns
//! are masked, which rule refused a statement, which review holds it)
//! reaches this client on a side channel; a statement for review is not
//! waited on.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gatehouse_core::model::Principal;
use gatehouse_pg::OpenError;
use gatehouse_pg::local::{Answer, Column, Failure};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::MysqlProxy;
use crate::codec::result::{
    BinaryType, ColumnDefinition, FieldType, Value, is_err, is_result_end, parse_column_count,
    parse_column_definition, parse_err, parse_ok,
};
use crate::codec::stmt::{StmtExecute, build_stmt_execute, parse_prepare_ok};
use crate::codec::{
    self, CLIENT_DEPRECATE_EOF, CLIENT_LONG_FLAG, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_TRANSACTIONS, Command,
};
use crate::proxy::{How, run};
use crate::relay::{LocalEvent, MAX_PACKET, cells};
use crate::stream::{MysqlStream, Packet, read_packet};

/// What a local session asks of both sides: one statement per command,
/// result sets ended by OK packets.
pub(crate) const LOCAL_CAPS: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_DEPRECATE_EOF;

/// `utf8mb4_general_ci`.
pub(crate) const CHARSET: u8 = 45;

/// The client end of a local MySQL session.
#[derive(Debug)]
pub struct LocalClient {
    stream: DuplexStream,
    events: mpsc::UnboundedReceiver<LocalEvent>,
    pub session_id: String,
}

/// Opens a session for `principal` on MySQL connection `connection` inside
/// Gatehouse: the same authorization, upstream login, policy, masking,
/// reviews and recording as a MySQL client's.
pub async fn open_local(
    proxy: Arc<MysqlProxy>,
    principal: Principal,
    connection: &str,
    protocol: &'static str,
    client_addr: String,
) -> Result<LocalClient, OpenError> {
    let ready = crate::proxy::connect(&proxy, principal, connection, LOCAL_CAPS, CHARSET)
        .await
        .map_err(|r| OpenError {
            code: match r.code {
                1049 => "3D000",
                1044 | 1045 => "42501",
                1040 => "53300",
                _ => "08006",
            },
            message: r.message,
        })?;
    let session_id = ready.session_id.clone();
    let (mine, theirs) = tokio::io::duplex(256 * 1024);
    let (tx, events) = mpsc::unbounded_channel();
    let how = How {
        protocol,
        client_addr,
        caps: LOCAL_CAPS,
        seq: 0,
        local: Some(tx),
        connection_id: 0,
        charset: CHARSET,
    };
    tokio::spawn(run(proxy, MysqlStream::Plain(theirs), ready, how));
    let mut client = LocalClient {
        stream: mine,
        events,
        session_id,
    };
    // The session answers OK once it is recorded and relaying.
    let p = client.read().await.map_err(|f| OpenError {
        code: "08006",
        message: format!("{f:?}"),
    })?;
    if is_err(&p.payload) {
        let e = parse_err(&p.payload).map(|e| e.message).unwrap_or_default();
        return Err(OpenError {
            code: "53000",
            message: e,
        });
    }
    Ok(client)
}

fn closed(e: impl std::fmt::Display) -> Failure {
    Failure::Closed(format!("the session ended: {e}"))
}

/// A PostgreSQL type OID standing for a MySQL column type, so that the
/// query API renders values the same way for both (numbers as numbers).
fn type_oid(c: &ColumnDefinition) -> u32 {
    match FieldType::from_code(c.column_type) {
        Some(FieldType::Tiny | FieldType::Short | FieldType::Int24 | FieldType::Year) => 23,
        Some(FieldType::Long | FieldType::LongLong) => 20,
        Some(FieldType::Float | FieldType::Double) => 701,
        Some(FieldType::Decimal | FieldType::NewDecimal) => 1700,
        Some(FieldType::Date | FieldType::NewDate) => 1082,
        Some(FieldType::Time | FieldType::Time2) => 1083,
        Some(
            FieldType::DateTime
            | FieldType::DateTime2
            | FieldType::Timestamp
            | FieldType::Timestamp2,
        ) => 1114,
        Some(FieldType::Json) => 114,
        _ if c.charset == 63 => 17,
        _ => 25,
    }
}

impl LocalClient {
    async fn read(&mut self) -> Result<Packet, Failure> {
        read_packet(&mut self.stream, MAX_PACKET)
            .await
            .map_err(closed)
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let mut b = BytesMut::with_capacity(payload.len() + 4);
        codec::put_packet(&mut b, 0, payload);
        self.stream.write_all(&b).await.map_err(closed)?;
        self.stream.flush().await.map_err(closed)
    }

    /// `COM_STMT_CLOSE` (no reply).
    async fn close_statement(&mut self, id: u32) -> Result<(), Failure> {
        let mut close = BytesMut::new();
        codec::build_command(&mut close, Command::StmtClose, &id.to_le_bytes());
        self.send(&close).await
    }

    /// The failure an ERR packet stands for, with what the side channel said.
    fn failure(&mut self, payload: &[u8]) -> Failure {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                LocalEvent::Refused { rule, message } => return Failure::Refused { rule, message },
                LocalEvent::Held { review, message } => return Failure::Held { review, message },
                LocalEvent::Masked(_) => {}
            }
        }
        match parse_err(payload) {
            Ok(e) => Failure::Sql {
                code: e.sql_state.unwrap_or_else(|| "HY000".into()),
                message: format!("{} (MySQL error {})", e.message, e.code),
                detail: None,
                hint: None,
            },
            Err(e) => closed(e),
        }
    }

    /// Runs one statement; `?` placeholders take `params` (as text).
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[Option<String>],
        max_rows: u32,
        max_bytes: usize,
    ) -> Result<Answer, Failure> {
        while self.events.try_recv().is_ok() {}
        if params.is_empty() {
            let mut p = BytesMut::new();
            codec::build_command(&mut p, Command::Query, sql.as_bytes());
            self.send(&p).await?;
            return self.result(false, max_rows, max_bytes).await;
        }
        let mut p = BytesMut::new();
        codec::build_command(&mut p, Command::StmtPrepare, sql.as_bytes());
        self.send(&p).await?;
        let first = self.read().await?;
        if is_err(&first.payload) {
            return Err(self.failure(&first.payload));
        }
        let ok = parse_prepare_ok(&first.payload).map_err(closed)?;
        for _ in 0..usize::from(ok.params) + usize::from(ok.columns) {
            self.read().await?;
        }
        let types = vec![BinaryType::new(FieldType::VarString, false); params.len()];
        let values: Vec<Value<'_>> = params
            .iter()
            .map(|v| {
                v.as_deref()
                    .map_or(Value::Null, |s| Value::Bytes(s.as_bytes()))
            })
            .collect();
        let mut p = BytesMut::new();
        let built = build_stmt_execute(
            &mut p,
            &StmtExecute {
                statement_id: ok.statement_id,
                flags: 0,
                iterations: 1,
                types_sent: true,
                types,
                names: Vec::new(),
                params: values,
            },
            false,
        );
        if usize::from(ok.params) != params.len() || built.is_err() {
            self.close_statement(ok.statement_id).await?;
            return Err(Failure::Sql {
                code: "07001".into(),
                message: format!(
                    "the statement has {} parameter(s) (`?`), {} given",
                    ok.params,
                    params.len()
                ),
                detail: None,
                hint: None,
            });
        }
        self.send(&p).await?;
        let answer = self.result(true, max_rows, max_bytes).await;
        self.close_statement(ok.statement_id).await?;
        answer
    }

    /// Reads one reply: OK, ERR, or a result set (rows beyond the limits
    /// are read and dropped).
    async fn result(
        &mut self,
        binary: bool,
        max_rows: u32,
        max_bytes: usize,
    ) -> Result<Answer, Failure> {
        let first = self.read().await?;
        if is_err(&first.payload) {
            return Err(self.failure(&first.payload));
        }
        if first.payload.first() == Some(&0x00) {
            let ok = parse_ok(&first.payload, LOCAL_CAPS).map_err(closed)?;
            return Ok(Answer {
                command: Some(format!("OK {} rows affected", ok.affected_rows)),
                ..Answer::default()
            });
        }
        let (n, _) = parse_column_count(&first.payload, LOCAL_CAPS).map_err(closed)?;
        let mut defs = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let d = self.read().await?;
            defs.push(parse_column_definition(&d.payload).map_err(closed)?);
        }
        let mut masked: Vec<usize> = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            if let LocalEvent::Masked(m) = ev {
                masked = m;
            }
        }
        let types: Vec<BinaryType> = defs.iter().map(ColumnDefinition::binary_type).collect();
        let mut answer = Answer {
            columns: defs
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    name: c.name.clone(),
                    type_oid: type_oid(c),
                    masked: masked.contains(&i),
                })
                .collect(),
            ..Answer::default()
        };
        let mut bytes = 0usize;
        loop {
            let p = self.read().await?;
            if is_err(&p.payload) {
                return Err(self.failure(&p.payload));
            }
            if is_result_end(&p.payload, LOCAL_CAPS) {
                break;
            }
            if answer.truncated {
                continue;
            }
            let row = cells(&p.payload, binary, &types, &defs);
            bytes += row.iter().flatten().map(String::len).sum::<usize>();
            if answer.rows.len() >= usize::try_from(max_rows).unwrap_or(usize::MAX)
                || bytes > max_bytes
            {
                answer.truncated = true;
                continue;
            }
            answer.rows.push(row);
        }
        answer.command = Some(format!("SELECT {}", answer.rows.len()));
        Ok(answer)
    }

    /// Runs one statement, giving up after `timeout` (the session is then
    /// closed, which ends the statement's connection upstream).
    pub async fn query_within(
        &mut self,
        timeout: Duration,
        sql: &str,
        params: &[Option<String>],
        max_rows: u32,
        max_bytes: usize,
    ) -> Result<Answer, Failure> {
        match tokio::time::timeout(timeout, self.query(sql, params, max_rows, max_bytes)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Closed(format!(
                "the statement was cancelled after {}",
                gatehouse_core::duration::format_duration(timeout)
            ))),
        }
    }

    /// Ends the session.
    pub async fn close(mut self) {
        let mut p = BytesMut::new();
        codec::build_command(&mut p, Command::Quit, &[]);
        let _ = self.send(&p).await;
    }
}
