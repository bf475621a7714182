//! `gatehouse serve`.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use gatehouse_core::duration::parse_duration;
use gatehouse_core::secret::Secret;
use gatehouse_identity::OidcConfig;
use gatehouse_identity::oidc::parse_algorithm;
use gatehouse_server::ServeConfig;

use crate::cli::ServeArgs;

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut c = ServeConfig::new(&args.data_dir);
    c.api_listen = args.api_listen.clone();
    c.store_url = args.store.clone().filter(|s| !s.is_empty());
    c.master_key = std::env::var("GATEHOUSE_MASTER_KEY")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    c.admin_groups = list(&args.admin_groups);
    c.pg_listen = match args.pg_listen.as_str() {
        "" | "off" => None,
        addr => Some(addr.to_string()),
    };
    c.pg_tls_cert = args.pg_tls_cert.clone();
    c.pg_tls_key = args.pg_tls_key.clone();
    c.pg_allow_plaintext = args.pg_allow_plaintext;
    c.mysql_listen = match args.mysql_listen.as_str() {
        "off" | "" => None,
        a => Some(a.to_string()),
    };
    c.mysql_allow_plaintext = args.mysql_allow_plaintext;
    c.aws_listen = match args.aws_listen.as_str() {
        "off" | "" => None,
        a => Some(a.to_string()),
    };
    c.session_threads = args.session_threads;
    c.public_url = args.public_url.clone().filter(|s| !s.is_empty());
    c.record_fail_open = args.when_recorder_behind == "run";
    c.recordings = args.recordings.clone();
    if let Some(r) = &args.recordings_retention {
        let d = parse_duration(r).context("--recordings-retention")?;
        if d < std::time::Duration::from_secs(1) {
            return Err(anyhow!("--recordings-retention must be at least 1s"));
        }
        c.recordings_retention = Some(d);
    }
    let secrets = |v: &Option<String>| -> Vec<Secret> {
        v.as_deref()
            .map(list)
            .unwrap_or_default()
            .into_iter()
            .map(Secret::new)
            .collect()
    };
    c.notify_slack = secrets(&args.notify_slack);
    c.notify_webhooks = secrets(&args.notify_webhook);
    if let Some(a) = args.audit_syslog.as_deref().filter(|a| !a.is_empty()) {
        if !a.contains(':') {
            return Err(anyhow!(
                "--audit-syslog must be host:port, e.g. siem.example.com:6514"
            ));
        }
        c.audit_sinks
            .push(gatehouse_server::siem::Sink::Syslog(a.to_string()));
    }
    if let Some(u) = args.audit_webhook.as_deref().filter(|u| !u.is_empty()) {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(anyhow!("--audit-webhook must be an http(s) URL"));
        }
        c.audit_sinks
            .push(gatehouse_server::siem::Sink::Http(Secret::new(u)));
    }
    c.notify_secret = std::env::var("GATEHOUSE_NOTIFY_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    if c.admin_groups.is_empty() {
        return Err(anyhow!(
            "--admin-groups is empty: nobody could administer Gatehouse"
        ));
    }
    if let Some(issuer) = &args.oidc_issuer {
        let audience = args
            .oidc_audience
            .clone()
            .ok_or_else(|| anyhow!("--oidc-issuer needs --oidc-audience (GATEHOUSE_OIDC_AUDIENCE): the `aud` tokens must carry"))?;
        let mut o = OidcConfig::new(issuer.clone(), audience);
        o.groups_claim = args.oidc_groups_claim.clone();
        o.algorithms = list(&args.oidc_algorithms)
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("--oidc-algorithms: {e}"))?;
        o.leeway = parse_duration(&args.oidc_leeway).context("--oidc-leeway")?;
        o.jwks_min_refresh =
            parse_duration(&args.oidc_jwks_min_refresh).context("--oidc-jwks-min-refresh")?;
        c.oidc = Some(o);
    }
    Ok(c)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = config(&args)?;
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    };
    let running = gatehouse_server::start(config.clone(), shutdown).await?;
    let store = if config.store_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    tracing::info!(
        api = %format!("http://{}", running.api_addr),
        data_dir = %config.data_dir.display(),
        store,
        "Gatehouse is serving"
    );
    if let Some(addr) = running.pg_addr {
        tracing::info!(
            postgres = %addr,
            tls_sha256 = running.pg_tls_fingerprint.as_deref().unwrap_or("-"),
            "PostgreSQL clients: connect with the connection name as the database and a Gatehouse token as the password"
        );
    }
    if let Some(addr) = running.aws_addr {
        tracing::info!(
            aws = %addr,
            "AWS clients: use http://{addr} as the endpoint, the connection name as AWS_ACCESS_KEY_ID and a Gatehouse token as AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
        );
    }
    if let Some(addr) = running.mysql_addr {
        tracing::info!(
            mysql = %addr,
            "MySQL clients: connect with the connection name as the database and a Gatehouse token as the password"
        );
    }
    running
        .task
        .await
        .context("the API task failed")?
        .context("the API server failed")?;
    Ok(ExitCode::SUCCESS)
}
