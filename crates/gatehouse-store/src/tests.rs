//! The same suite against SQLite and PostgreSQL.

use gatehouse_core::model::{ConnectionKind, ConnectionSettings, ConnectionSpec};

use crate::testing::{drop_pg_database, fresh_pg_store};
use crate::*;

async fn for_both<F, Fut>(f: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open_sqlite(&dir.path().join("state.db"))
        .await
        .expect("sqlite store");
    f(sqlite).await;
    let (pg, url) = fresh_pg_store()
        .await
        .expect("PostgreSQL store (is PostgreSQL running on 127.0.0.1:5432?)");
    f(pg.clone()).await;
    pg.close().await;
    drop_pg_database(&url).await.expect("drop test database");
}

fn conn(name: &str) -> ConnectionRecord {
    ConnectionRecord {
        spec: ConnectionSpec {
            name: name.into(),
            kind: ConnectionKind::Postgres,
            url: "postgres://app@127.0.0.1:5432/shop".into(),
            groups: vec!["agents".into()],
            settings: ConnectionSettings {
                row_limit: Some(10),
                ..Default::default()
            },
        },
        secret: Some("gh1.abc.ciphertext".into()),
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn connections_crud() {
    for_both(|s| async move {
        s.insert_connection(&conn("shop")).await.expect("insert");
        assert!(matches!(
            s.insert_connection(&conn("shop")).await,
            Err(StoreError::Conflict(_))
        ));
        let got = s
            .get_connection("shop")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.spec, conn("shop").spec);
        assert_eq!(got.secret.as_deref(), Some("gh1.abc.ciphertext"));
        assert!(!format!("{got:?}").contains("ciphertext"));

        let mut changed = conn("shop");
        changed.spec.groups = vec!["dba".into()];
        changed.updated_at = 2;
        assert!(s.update_connection(&changed).await.expect("update"));
        assert!(
            !s.update_connection(&conn("nope"))
                .await
                .expect("update absent")
        );
        assert_eq!(
            s.get_connection("shop")
                .await
                .expect("get")
                .expect("present")
                .spec
                .groups,
            vec!["dba"]
        );

        assert!(
            !s.replace_connection_secret("shop", "stale", "new")
                .await
                .expect("cas")
        );
        assert!(
            s.replace_connection_secret("shop", "gh1.abc.ciphertext", "gh1.def.x")
                .await
                .expect("cas")
        );

        s.insert_connection(&conn("analytics"))
            .await
            .expect("insert");
        let names: Vec<_> = s
            .list_connections()
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.spec.name)
            .collect();
        assert_eq!(names, vec!["analytics", "shop"]);
        assert!(s.delete_connection("shop").await.expect("delete"));
        assert!(!s.delete_connection("shop").await.expect("delete again"));
        assert!(s.get_connection("shop").await.expect("get").is_none());
    })
    .await;
}

#[tokio::test]
async fn tokens_lifecycle() {
    for_both(|s| async move {
        let rec = TokenRecord {
            name: "bot".into(),
            hash: "h1".into(),
            groups: vec!["agents".into()],
            created_at: 100,
            expires_at: Some(1_000),
            revoked_at: None,
            last_used_at: None,
            created_by: "admin".into(),
        };
        s.insert_token(&rec).await.expect("insert");
        assert!(matches!(
            s.insert_token(&rec).await,
            Err(StoreError::Conflict(_))
        ));
        let found = s
            .find_token_by_hash("h1")
            .await
            .expect("find")
            .expect("present");
        assert_eq!(found, rec);
        assert!(found.is_live(999));
        assert!(!found.is_live(1_000));
        assert!(s.find_token_by_hash("h2").await.expect("find").is_none());
        s.touch_token("bot", 500_000).await.expect("touch");
        assert_eq!(
            s.get_token("bot")
                .await
                .expect("get")
                .expect("present")
                .last_used_at,
            Some(500_000)
        );
        assert!(s.revoke_token("bot", 200).await.expect("revoke"));
        assert!(!s.revoke_token("bot", 300).await.expect("revoke twice"));
        let t = s.get_token("bot").await.expect("get").expect("present");
        assert_eq!(t.revoked_at, Some(200));
        assert!(!t.is_live(150));
        assert_eq!(s.list_tokens().await.expect("list").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn audit_and_meta() {
    for_both(|s| async move {
        for i in 0..3 {
            let ev = NewAuditEvent {
                actor: "admin".into(),
                action: "connection.create".into(),
                target: format!("c{i}"),
                detail: serde_json::json!({"i": i}),
            };
            s.append_audit(&ev, 10 + i).await.expect("append");
        }
        let evs = s.list_audit(2).await.expect("list");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].target, "c2");
        assert_eq!(evs[0].detail, serde_json::json!({"i": 2}));
        assert!(evs[0].id > evs[1].id);

        assert_eq!(s.get_meta("k").await.expect("meta"), None);
        assert!(s.set_meta_if_absent("k", "v1").await.expect("meta"));
        assert!(!s.set_meta_if_absent("k", "v2").await.expect("meta"));
        s.set_meta("k", "v3").await.expect("meta");
        assert_eq!(s.get_meta("k").await.expect("meta").as_deref(), Some("v3"));
        s.ping().await.expect("ping");
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let s = Store::open_sqlite(&path).await.expect("open");
    s.insert_connection(&conn("shop")).await.expect("insert");
    s.close().await;
    let s = Store::open_sqlite(&path).await.expect("reopen");
    assert!(s.get_connection("shop").await.expect("get").is_some());
}

#[tokio::test]
async fn sessions_are_recorded_and_filtered() {
    for_both(|s| async move {
        let session = |id: &str, who: &str, conn: &str, at: i64| SessionRecord {
            id: id.into(),
            principal: who.into(),
            authn: format!("token:{who}"),
            connection: conn.into(),
            protocol: "postgres".into(),
            client_addr: "127.0.0.1:5000".into(),
            started_at: at,
            ended_at: None,
            end_reason: None,
        };
        let stmt = |id: &str, seq: i64, sql: &str| StatementRecord {
            session_id: id.into(),
            seq,
            started_at: 10 + seq,
            duration_us: Some(5),
            sql: sql.into(),
            decision: "allow".into(),
            rule: None,
            command: Some("SELECT 1".into()),
            rows: Some(1),
            error: None,
            ..Default::default()
        };
        s.write_records(&[
            RecordEvent::SessionStart(session("s1", "bot", "shop", 10)),
            chunk("s1", 1, &[stmt("s1", 1, "SELECT 1")]),
            chunk(
                "s1",
                2,
                &[
                    stmt("s1", 2, "SELECT * FROM orders_100%"),
                    stmt("s1", 3, r#"SELECT "Quoted\Name" FROM t"#),
                ],
            ),
            RecordEvent::SessionStart(session("s2", "alice", "crm", 20)),
            RecordEvent::SessionEnd {
                id: "s1".into(),
                at: 30,
                reason: "client closed".into(),
            },
        ])
        .await
        .expect("write");
        let all = s
            .list_sessions(&SessionFilter::default())
            .await
            .expect("list");
        assert_eq!(
            all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            vec!["s2", "s1"]
        );
        let by_user = SessionFilter {
            principal: Some("bot".into()),
            ..Default::default()
        };
        assert_eq!(s.list_sessions(&by_user).await.expect("list").len(), 1);
        let by_conn = SessionFilter {
            connection: Some("crm".into()),
            ..Default::default()
        };
        assert_eq!(s.list_sessions(&by_conn).await.expect("list")[0].id, "s2");
        let since = SessionFilter {
            since: Some(15),
            ..Default::default()
        };
        assert_eq!(s.list_sessions(&since).await.expect("list")[0].id, "s2");
        let grep = SessionFilter {
            grep: Some("orders_100%".into()),
            ..Default::default()
        };
        assert_eq!(s.list_sessions(&grep).await.expect("list").len(), 1);
        let grep_none = SessionFilter {
            grep: Some("orders_1000".into()),
            ..Default::default()
        };
        assert!(
            s.list_sessions(&grep_none).await.expect("list").is_empty(),
            "_ and % are literal"
        );
        let grep_quoted = SessionFilter {
            grep: Some(r#""Quoted\Name""#.into()),
            ..Default::default()
        };
        assert_eq!(
            s.list_sessions(&grep_quoted).await.expect("list").len(),
            1,
            "quotes and backslashes match the text as the client sent it"
        );
        let (sess, stmts) = s.get_session("s1").await.expect("get").expect("present");
        assert_eq!(sess.end_reason.as_deref(), Some("client closed"));
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts[1].sql, "SELECT * FROM orders_100%");
        assert_eq!(stmts[2].sql, r#"SELECT "Quoted\Name" FROM t"#);
        assert_eq!(stmts[2].session_id, "s1");
        assert!(s.get_session("nope").await.expect("get").is_none());
    })
    .await;
}

#[tokio::test]
async fn large_statement_batches_are_written_whole() {
    for_both(|s| async move {
        let mut events = vec![RecordEvent::SessionStart(session_record("big"))];
        let all: Vec<StatementRecord> = (1..=250)
            .map(|seq| StatementRecord {
                session_id: "big".into(),
                seq,
                started_at: seq,
                duration_us: Some(1),
                sql: format!("SELECT {seq}"),
                decision: "allow".into(),
                rule: None,
                command: Some("SELECT 1".into()),
                rows: Some(1),
                error: if seq % 50 == 0 {
                    Some("57014: canceled".into())
                } else {
                    None
                },
                ..Default::default()
            })
            .collect();
        for (i, part) in all.chunks(100).enumerate() {
            events.push(chunk("big", i as i64 + 1, part));
        }
        events.push(RecordEvent::SessionEnd {
            id: "big".into(),
            at: 9,
            reason: "client closed".into(),
        });
        s.write_records(&events).await.expect("write");
        let (sess, stmts) = s.get_session("big").await.expect("get").expect("present");
        assert_eq!(stmts.len(), 250);
        assert_eq!(stmts[249].sql, "SELECT 250");
        assert_eq!(stmts.iter().filter(|x| x.error.is_some()).count(), 5);
        assert_eq!(sess.ended_at, Some(9));
    })
    .await;
}

/// The recorder hands the store runs of chunks from many sessions between
/// session starts and ends; runs longer than one INSERT takes are split,
/// and every statement comes back in order.
#[tokio::test]
async fn runs_of_chunks_from_many_sessions_are_written_whole() {
    for_both(|s| async move {
        let stmt = |id: &str, seq: i64| StatementRecord {
            session_id: id.into(),
            seq,
            started_at: seq,
            sql: format!("SELECT {seq} /* {id} */"),
            decision: "allow".into(),
            ..Default::default()
        };
        let mut events = vec![
            RecordEvent::SessionStart(session_record("a")),
            RecordEvent::SessionStart(session_record("b")),
        ];
        // 90 chunks in a row (more than one INSERT), two statements each.
        for n in 1..=45 {
            for id in ["a", "b"] {
                events.push(chunk(id, n, &[stmt(id, 2 * n - 1), stmt(id, 2 * n)]));
            }
        }
        events.push(RecordEvent::SessionStart(session_record("c")));
        events.push(RecordEvent::SessionEnd {
            id: "a".into(),
            at: 7,
            reason: "client closed".into(),
        });
        for n in 1..=7 {
            events.push(chunk("c", n, &[stmt("c", n)]));
        }
        events.push(RecordEvent::SessionEnd {
            id: "b".into(),
            at: 8,
            reason: "client closed".into(),
        });
        s.write_records(&events).await.expect("write");
        for (id, n, ended) in [("a", 90, Some(7)), ("b", 90, Some(8)), ("c", 7, None)] {
            let (sess, stmts) = s.get_session(id).await.expect("get").expect("present");
            assert_eq!(sess.ended_at, ended, "{id}");
            let seqs: Vec<i64> = stmts.iter().map(|x| x.seq).collect();
            assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{id}");
            assert_eq!(stmts[n as usize - 1].sql, format!("SELECT {n} /* {id} */"));
        }
    })
    .await;
}

/// A recorder chunk holding these statements, as the data path writes it.
fn chunk(id: &str, n: i64, statements: &[StatementRecord]) -> RecordEvent {
    let mut data = String::new();
    for st in statements {
        data.push_str(&serde_json::to_string(st).expect("json"));
        data.push('\n');
    }
    RecordEvent::Statements(crate::SessionChunk {
        session_id: id.into(),
        chunk: n,
        first_seq: statements.first().map_or(0, |s| s.seq),
        last_seq: statements.last().map_or(0, |s| s.seq),
        statements: statements.len(),
        data,
    })
}

#[tokio::test]
async fn statements_recorded_before_chunks_stay_readable() {
    for_both(|s| async move {
        s.write_records(&[RecordEvent::SessionStart(session_record("old"))])
        .await
        .expect("write");
        sqlx::query(
            "INSERT INTO session_statements (session_id, seq, started_at, sql, decision) VALUES ('old', 1, 1, 'SELECT legacy', 'allow')",
        )
        .execute(&s.pool)
        .await
        .expect("legacy row");
        s.write_records(&[chunk(
            "old",
            1,
            &[StatementRecord {
                session_id: "old".into(),
                seq: 2,
                started_at: 2,
                duration_us: None,
                sql: "SELECT chunked".into(),
                decision: "allow".into(),
                rule: None,
                command: None,
                rows: None,
                error: None,
                ..Default::default()
            }],
        )])
        .await
        .expect("write");
        let (_, stmts) = s.get_session("old").await.expect("get").expect("present");
        assert_eq!(
            stmts.iter().map(|x| x.sql.as_str()).collect::<Vec<_>>(),
            vec!["SELECT legacy", "SELECT chunked"]
        );
        let grep = SessionFilter {
            grep: Some("legacy".into()),
            ..Default::default()
        };
        assert_eq!(s.list_sessions(&grep).await.expect("list").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn policy_is_versioned() {
    for_both(|s| async move {
        let empty = s.get_policy().await.expect("get");
        assert_eq!(empty.version, 0);
        assert!(empty.spec.is_empty());
        let mut spec = gatehouse_core::policy::spec::PolicySpec::default();
        spec.rules.push(gatehouse_core::policy::spec::RuleSpec {
            name: "r".into(),
            action: gatehouse_core::policy::spec::Action::Deny,
            statements: vec![gatehouse_core::policy::spec::Class::Ddl],
            ..Default::default()
        });
        assert_eq!(s.put_policy(&spec, "admin", 5).await.expect("put"), 1);
        assert_eq!(s.put_policy(&spec, "alice", 6).await.expect("put"), 2);
        let got = s.get_policy().await.expect("get");
        assert_eq!(got.spec, spec);
        assert_eq!(got.version, 2);
        assert_eq!(got.updated_by.as_deref(), Some("alice"));
        assert_eq!(s.policy_version().await.expect("version"), 2);
    })
    .await;
}

/// A session of `bot` on `shop`, started at 1.
pub(crate) fn session_record(id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        principal: "bot".into(),
        authn: "token:bot".into(),
        connection: "shop".into(),
        protocol: "postgres".into(),
        client_addr: "127.0.0.1:1".into(),
        started_at: 1,
        ended_at: None,
        end_reason: None,
    }
}

fn review(id: &str, needed: i64, expires_at: i64) -> ReviewRecord {
    ReviewRecord {
        id: id.into(),
        kind: reviews::kind::COMMAND.into(),
        connection: "shop".into(),
        requester: "alice".into(),
        binding: format!("b-{id}"),
        statement: Some("DELETE FROM t".into()),
        params: None,
        rule: "r".into(),
        approvers: vec!["dba".into()],
        approvals_needed: needed,
        reason: None,
        level: None,
        duration_ms: None,
        state: reviews::state::PENDING.into(),
        created_at: 1,
        expires_at,
        decided_at: None,
        executed_at: None,
        session_id: None,
        grant_id: None,
        redacted: None,
        votes: Vec::new(),
    }
}

fn vote(who: &str, decision: &str, at: i64) -> Vote {
    Vote {
        approver: who.into(),
        decision: decision.into(),
        reason: None,
        at,
        break_glass: false,
    }
}

#[tokio::test]
async fn reviews_are_decided_and_used_once_even_when_raced() {
    for_both(|s| async move {
        let far = i64::MAX / 2;
        s.insert_review(&review("rv_1", 2, far))
            .await
            .expect("insert");
        let r = s
            .vote_review("rv_1", &vote("bob", "approve", 10), far)
            .await
            .expect("vote");
        assert_eq!(r.state, "pending");
        assert!(matches!(
            s.vote_review("rv_1", &vote("bob", "approve", 11), far)
                .await,
            Err(VoteError::AlreadyVoted(_))
        ));
        let r = s
            .vote_review("rv_1", &vote("carol", "approve", 12), far)
            .await
            .expect("vote");
        assert_eq!(r.state, "approved");
        assert_eq!(r.votes.len(), 2);
        assert!(matches!(
            s.vote_review("rv_1", &vote("dave", "approve", 13), far)
                .await,
            Err(VoteError::NotPending { .. })
        ));
        assert_eq!(
            s.open_review_for("b-rv_1", "alice", 20)
                .await
                .expect("find")
                .map(|r| r.id),
            Some("rv_1".to_string())
        );
        assert_eq!(
            s.open_review_for("b-rv_1", "mallory", 20)
                .await
                .expect("find"),
            None
        );
        // Ten concurrent uses of one approval: exactly one wins.
        let uses = (0..10).map(|_| {
            let s = s.clone();
            async move { s.consume_review("rv_1", 30).await.expect("consume") }
        });
        let won = futures_util::future::join_all(uses).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1);
        assert_eq!(
            s.open_review_for("b-rv_1", "alice", 40)
                .await
                .expect("find"),
            None
        );

        // A rejection decides at once; an expired review takes no votes.
        s.insert_review(&review("rv_2", 3, far))
            .await
            .expect("insert");
        let r = s
            .vote_review("rv_2", &vote("bob", "reject", 10), far)
            .await
            .expect("vote");
        assert_eq!(r.state, "rejected");
        s.insert_review(&review("rv_3", 1, 100))
            .await
            .expect("insert");
        assert_eq!(
            s.expire_reviews(100).await.expect("expire"),
            vec!["rv_3".to_string()]
        );
        assert!(matches!(
            s.vote_review("rv_3", &vote("bob", "approve", 101), far)
                .await,
            Err(VoteError::NotPending { .. })
        ));
        assert!(!s.consume_review("rv_3", 101).await.expect("consume"));
    })
    .await;
}

#[tokio::test]
async fn grants_are_created_once_and_revoked_once() {
    for_both(|s| async move {
        let g = GrantRecord {
            id: "gr_1".into(),
            review_id: "rv_9".into(),
            connection: "shop".into(),
            principal: "alice".into(),
            level: "write".into(),
            reason: Some("fix".into()),
            created_at: 10,
            expires_at: 1000,
            revoked_at: None,
            revoked_by: None,
        };
        let first = s.insert_grant(&g).await.expect("insert");
        let again = s
            .insert_grant(&GrantRecord {
                id: "gr_2".into(),
                ..g.clone()
            })
            .await
            .expect("insert again");
        assert_eq!(again.id, first.id, "one grant per approved request");
        assert_eq!(s.live_grants(500).await.expect("live").len(), 1);
        assert!(
            s.live_grants(1000).await.expect("live").is_empty(),
            "expired"
        );
        let before = s.access_epoch().await.expect("epoch");
        assert!(s.revoke_grant("gr_1", "admin", 500).await.expect("revoke"));
        assert!(
            !s.revoke_grant("gr_1", "admin", 501)
                .await
                .expect("revoke twice")
        );
        assert!(s.access_epoch().await.expect("epoch") > before);
        assert!(s.live_grants(500).await.expect("live").is_empty());
    })
    .await;
}

#[tokio::test]
async fn cancel_requests_are_kept_by_time_and_pruned() {
    for_both(|s| async move {
        s.request_cancel("aa", 1_000).await.expect("request");
        s.request_cancel("bb", 2_000).await.expect("request");
        s.request_cancel("aa", 3_000)
            .await
            .expect("the same key again");
        assert_eq!(
            s.cancel_requests_since(2_000).await.expect("since"),
            vec![("bb".to_string(), 2_000), ("aa".to_string(), 3_000)]
        );
        assert_eq!(s.prune_cancel_requests(2_500).await.expect("prune"), 2);
        assert_eq!(
            s.cancel_requests_since(0).await.expect("since"),
            vec![("aa".to_string(), 3_000)]
        );
    })
    .await;
}

#[tokio::test]
async fn session_places_are_limited_renewed_and_expire() {
    for_both(|s| async move {
        let take = |holder: &'static str, replica: &'static str, now: i64| {
            let s = s.clone();
            async move {
                s.take_session_place("shop", 2, holder, replica, now, now + 30_000)
                    .await
                    .expect("store")
            }
        };
        let a = take("h1", "A", 1_000).await.expect("first place");
        let b = take("h2", "B", 1_000).await.expect("second place");
        assert_eq!((a.place, b.place), (0, 1));
        assert_eq!(take("h3", "B", 2_000).await, Err(2), "both taken");
        let other = s
            .take_session_place("crm", 1, "h4", "A", 2_000, 32_000)
            .await
            .expect("store");
        assert!(other.is_ok(), "places are per connection");

        // Given back: the number is taken again.
        s.give_back_session_place(&a).await.expect("give back");
        let c = take("h5", "B", 3_000).await.expect("a place came free");
        assert_eq!(c.place, 0);
        // Giving back an expired place someone else has since taken does
        // nothing to theirs.
        s.give_back_session_place(&a)
            .await
            .expect("give back again");
        assert_eq!(take("h6", "B", 3_000).await, Err(2));

        // Replica A renews its places; B, stopped, does not: past their
        // time, B's are taken again and A's are not.
        let d = s
            .take_session_place("crm", 2, "h7", "B", 3_000, 33_000)
            .await
            .expect("store")
            .expect("second crm place");
        assert_eq!(d.place, 1);
        assert_eq!(s.renew_session_places("A", 60_000).await.expect("renew"), 1);
        assert_eq!(
            s.take_session_place("crm", 2, "h8", "C", 40_000, 70_000)
                .await
                .expect("store"),
            Ok(SessionPlace {
                connection: "crm".into(),
                place: 1,
                holder: "h8".into()
            }),
            "B's expired place is free, A's renewed one is not"
        );
        assert_eq!(
            take("h9", "C", 40_000).await.map(|p| p.place),
            Ok(0),
            "shop: B's two places expired at 31,000 and 33,000"
        );
    })
    .await;
}
