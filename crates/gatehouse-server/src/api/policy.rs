//! The policy: read it, replace it, and test a statement against it.

use axum::Json;
use axum::extract::State;
use gatehouse_core::model::{Authn, ConnectionKind, Principal};
use gatehouse_core::policy::Verdict;
use gatehouse_core::policy::spec::PolicySpec;
use gatehouse_policy::{Engine, SqlDialect};
use serde::Deserialize;

use super::auth::Admin;
use super::error::ApiError;
use crate::state::AppState;

pub async fn get(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let stored = state.store.get_policy().await?;
    Ok(Json(serde_json::json!({
        "version": stored.version,
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
        "policy": stored.spec,
    })))
}

/// Validates and stores a policy, records the change and puts it in force
/// here (other replicas pick it up within [`crate::policy::POLL`]).
/// Returns the new version, or `None` when the policy was already this one.
pub(crate) async fn replace(
    state: &AppState,
    who: &Principal,
    spec: PolicySpec,
) -> Result<Option<i64>, ApiError> {
    let engine = Engine::new(spec.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let current = state.store.get_policy().await?;
    if current.spec == spec {
        return Ok(None);
    }
    let version = state
        .store
        .put_policy(&spec, &who.subject, gatehouse_core::now_ms())
        .await?;
    state.policy.install(version, engine);
    state
        .audit
        .record(
            who,
            "policy.update",
            "policy",
            serde_json::json!({
                "version": version,
                "rules": spec.rules.len(),
                "masks": spec.masks.len(),
                "detectors": spec.detectors.len(),
                "default": spec.default.name(),
            }),
        )
        .await;
    Ok(Some(version))
}

pub async fn put(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(spec): Json<PolicySpec>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let changed = replace(&state, &who, spec).await?;
    Ok(Json(serde_json::json!({
        "changed": changed.is_some(),
        "version": changed.unwrap_or(state.policy.version()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A group name, or a token (API token or OIDC JWT) whose principal to use.
    #[serde(rename = "as")]
    as_: String,
    connection: String,
    sql: String,
}

/// Decides a statement without running it.
pub async fn test(
    State(state): State<AppState>,
    Admin(_): Admin,
    Json(req): Json<TestRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if req.sql.len() > gatehouse_pg::DEFAULT_MAX_MESSAGE {
        return Err(ApiError::bad_request("the statement is too long"));
    }
    // A token is tried first; anything that is not one is a group name.
    let principal = match state.auth.authenticate(&req.as_).await {
        Ok(p) => p,
        Err(_) => {
            gatehouse_core::model::validate_name(&req.as_).map_err(|_| {
                ApiError::bad_request(
                    "`as` is neither a valid token nor a group name (letters, digits, '-', '_')",
                )
            })?;
            Principal {
                subject: format!("(member of {})", req.as_),
                groups: vec![req.as_.clone()],
                authn: Authn::Token {
                    name: "(policy test)".into(),
                },
                expires_at: None,
            }
        }
    };
    // Decided as the proxy decides it on that connection: its dialect, the
    // caller's access and just-in-time grant, and the built-in refusals.
    let record = state
        .store
        .get_connection(&req.connection)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no connection named \"{}\" (see `gatehouse connections list`)",
                req.connection
            ))
        })?;
    let spec = &record.spec;
    let dialect = match spec.kind {
        ConnectionKind::Postgres => SqlDialect::Postgres,
        ConnectionKind::Mysql => SqlDialect::Mysql,
        kind => {
            return Err(ApiError::bad_request(format!(
                "connection \"{}\" is a {} connection: policy test decides SQL statements, on postgres and mysql connections",
                spec.name,
                kind.as_str()
            )));
        }
    };
    let engine = state.policy.engine();
    let grant = state.access.grant_for(&principal.subject, &spec.name);
    let mut decision = engine.decide_with_grant_in(
        dialect,
        &principal,
        &spec.name,
        &req.sql,
        gatehouse_core::now_ms(),
        grant.as_ref().map(|(id, level)| (id.as_str(), *level)),
    );
    if let Some(views) = views_named(&state, &record, &engine, dialect, &principal, &req.sql).await
    {
        // A rule on a table is met through a view over it, as in the proxy.
        engine.through_views(
            &principal,
            &spec.name,
            &req.sql,
            gatehouse_core::now_ms(),
            grant.as_ref().map(|(id, level)| (id.as_str(), *level)),
            &mut decision,
            &views,
        );
        // Masks follow them to the tables behind them too.
        engine.masks_through_views(dialect, &req.sql, &mut decision, &views);
    }
    // What the policy saw, or (when no rule needed it) what it would see.
    let analysis = decision
        .analysis
        .clone()
        .unwrap_or_else(|| engine.analysis_in(dialect, &req.sql));
    if !spec.allows(&principal) && grant.is_none() {
        decision.verdict = Verdict::Deny {
            rule: "access".into(),
            message: format!(
                "{} may not use connection \"{}\": it is open to the groups {}",
                principal.subject,
                spec.name,
                spec.groups.join(", ")
            ),
        };
    } else if !matches!(decision.verdict, Verdict::Deny { .. }) {
        let refusal = match dialect {
            SqlDialect::Postgres => gatehouse_pg::built_in::check(
                &engine,
                Some(&analysis),
                &req.sql,
                &spec.name,
                spec.settings.read_only == Some(true),
                false,
                |pid| {
                    state
                        .live
                        .is_pg_backend_of(&principal.subject, &spec.name, pid)
                },
            )
            .err(),
            SqlDialect::Mysql => {
                let a = &analysis;
                let database = gatehouse_mysql::proxy::url_database(&spec.url);
                let deny = |rule: &str, message: String| Verdict::Deny {
                    rule: rule.into(),
                    message,
                };
                let read_only = (spec.settings.read_only == Some(true)
                    && gatehouse_policy::analyze_mysql::lifts_read_only_mysql(&req.sql))
                .then(|| gatehouse_mysql::read_only_refusal(&spec.name));
                read_only
                    .or_else(|| {
                        gatehouse_mysql::database_switch(
                            &spec.name,
                            database.as_deref(),
                            &req.sql,
                            a,
                        )
                        .map(|m| deny("database", m))
                    })
                    .or_else(|| {
                        gatehouse_mysql::kill_target(
                            &state.live,
                            &principal.subject,
                            &spec.name,
                            &req.sql,
                            a,
                        )
                        .err()
                        .map(|m| deny("kill", m))
                    })
            }
        };
        if let Some(refusal) = refusal {
            decision.verdict = refusal;
        }
    }
    let analysis = serde_json::to_value(analysis.as_ref()).map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({
        "principal": { "subject": principal.subject, "groups": principal.groups },
        "connection": req.connection,
        "decision": decision,
        "analysis": analysis,
        "policy_version": state.policy.version(),
    })))
}

/// What the views `sql` names read, from the connection's database, as the
/// proxy asks before it decides (`None` when no deny or review rule on
/// tables applies, or the statement names no relation). A database that
/// cannot be asked counts as in the proxy: table conditions of deny and
/// review rules are met.
async fn views_named(
    state: &AppState,
    record: &gatehouse_store::ConnectionRecord,
    engine: &Engine,
    dialect: SqlDialect,
    principal: &Principal,
    sql: &str,
) -> Option<gatehouse_policy::ViewReads> {
    use gatehouse_policy::ViewReads;
    let asked = engine.to_resolve(
        dialect,
        principal,
        &record.spec.name,
        sql,
        &Default::default(),
    );
    if asked.is_empty() {
        return None;
    }
    let (names, functions) = (&asked.relations, &asked.functions);
    let credential = match gatehouse_access::connect::open_credential(&state.keys.get(), record) {
        Ok(c) => c,
        Err(_) => {
            let why = "the stored credential cannot be opened".to_string();
            let reads = ViewReads::unknown(why.clone());
            return Some(if functions.is_empty() {
                reads
            } else {
                reads.with_functions(Err(why))
            });
        }
    };
    let password = credential.get("password");
    // (What each look-up answered, or its error.)
    let (views, called) = match dialect {
        SqlDialect::Mysql => {
            let (url, name) = (&record.spec.url, &record.spec.name);
            let views = if names.is_empty() {
                Ok(Default::default())
            } else {
                gatehouse_mysql::views::named(&state.mysql, name, url, password, names).await
            };
            let called = if functions.is_empty() {
                Ok(Default::default())
            } else {
                gatehouse_mysql::views::stored_functions_named(
                    &state.mysql,
                    name,
                    url,
                    password,
                    functions,
                )
                .await
            };
            (views, called)
        }
        SqlDialect::Postgres => match gatehouse_pg::upstream::Target::from_url(&record.spec.url) {
            Ok(target) => {
                let access = gatehouse_pg::catalog::CatalogAccess {
                    connection: record.spec.name.clone(),
                    target,
                    password: password.cloned(),
                };
                let views = if names.is_empty() {
                    Ok(Default::default())
                } else {
                    state.pg.catalog.views(&access, names).await
                };
                let called = if functions.is_empty() {
                    Ok(Default::default())
                } else {
                    state.pg.catalog.functions(&access, functions).await
                };
                (views, called)
            }
            Err(e) => (Err(e.to_string()), Err(e.to_string())),
        },
    };
    let reads = ViewReads::of(views);
    // (An error counts for the functions only where some were asked.)
    Some(if functions.is_empty() {
        reads
    } else {
        reads.with_functions(called)
    })
}
