//! Command-line shape. Every listing takes `--json`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: a privileged-access gateway for AI agents and people"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded SQLite state under --data-dir unless --store is given).
    Serve(Box<ServeArgs>),
    /// Save the gateway URL and a token to your config file (mode 0600).
    Login(LoginArgs),
    /// Show who the configured token belongs to.
    Whoami(JsonFlag),
    /// Service-account API tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Connections: the upstreams Gatehouse holds credentials for.
    #[command(subcommand, alias = "connection")]
    Connections(ConnectionsCmd),
    /// Create or update connections, and replace the policy, from a declarative file.
    Apply(ApplyArgs),
    /// The policy: rules, masks and detectors.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Master key management.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Audit events.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Recorded sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Reviews: statements and access requests waiting for approval.
    #[command(subcommand, alias = "review")]
    Reviews(ReviewsCmd),
    /// Just-in-time access: ask for a time-bound grant, list and revoke grants.
    #[command(subcommand)]
    Access(AccessCmd),
    /// Run one SQL statement on a connection through Gatehouse and print the result.
    Exec(ExecArgs),
    /// Open psql on a connection through Gatehouse (the token goes in the
    /// environment, never on the command line).
    Connect {
        /// The connection.
        connection: String,
        /// Extra arguments for psql.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Serve Gatehouse's MCP tools over stdio for a local MCP client,
    /// forwarding to the gateway at GATEHOUSE_URL with GATEHOUSE_TOKEN.
    Mcp,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The connection.
    pub connection: String,
    /// The statement (or use -f, or standard input).
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    pub command: Option<String>,
    /// A file holding the statement.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// A value for $1, $2, … (repeat in order).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// table (default), json or csv.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// At most this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Cancel the statement after this long, e.g. 10s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// When the statement is held for review, wait up to this long (e.g.
    /// 10m) for the decision, then run it once approved.
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReviewsCmd {
    /// Reviews you may see (your requests, the ones you may approve), newest first.
    List {
        /// Only the ones still waiting for a decision.
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One review: the exact statement, who asked and why, the votes.
    Show {
        id: String,
        /// Wait up to this long (e.g. 30s) for a pending review to be decided.
        #[arg(long)]
        wait: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve a review (you cannot approve your own).
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reject a review; the reason is shown to the requester.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Ask for a time-bound grant on a connection; approvers are notified.
    Request {
        /// The connection.
        connection: String,
        /// read, write, ddl or admin.
        #[arg(long, default_value = "read")]
        level: String,
        /// How long, e.g. 30m (at most what the policy allows).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why you need it (shown to approvers and audited).
        #[arg(long)]
        reason: String,
        /// Wait for the decision (up to this long, e.g. 10m) and print it.
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Live grants (yours; all of them for administrators).
    List(JsonFlag),
    /// End a grant now; sessions that depend on it end too.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// The policy in force, as stored.
    Show(JsonFlag),
    /// Decide a statement without running it: prints the decision and the
    /// rule that made it. Exits 0 when allowed, 1 when denied or held for review.
    Test {
        /// A group name, or a token (API token or OIDC JWT) to decide as.
        #[arg(long = "as", value_name = "GROUP_OR_TOKEN")]
        as_: String,
        /// The connection the statement would run on.
        #[arg(long)]
        connection: String,
        /// The statement.
        sql: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// Recorded sessions, newest first.
    List {
        /// Only this principal (token name or OIDC subject).
        #[arg(long)]
        user: Option<String>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only sessions started within this long (e.g. 1h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only sessions with a statement containing this text.
        #[arg(long)]
        grep: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One session and its statements.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Play a session back in the terminal at its original pace: each
    /// statement, the decision, and its result as the caller saw it.
    Replay {
        id: String,
        /// Faster (2 = twice as fast) or slower (0.5).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Print everything at once.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory for the SQLite store, the master key file and the first admin token.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
    pub data_dir: PathBuf,
    /// Address for the HTTP API.
    #[arg(long, env = "GATEHOUSE_API_LISTEN", default_value = "127.0.0.1:7400")]
    pub api_listen: String,
    /// Address for PostgreSQL clients (`off` disables the PostgreSQL listener).
    #[arg(long, env = "GATEHOUSE_PG_LISTEN", default_value = "127.0.0.1:7432")]
    pub pg_listen: String,
    /// PEM certificate shown to PostgreSQL clients (default: a self-signed one in the data directory).
    #[arg(long, env = "GATEHOUSE_PG_TLS_CERT", requires = "pg_tls_key")]
    pub pg_tls_cert: Option<PathBuf>,
    /// PEM private key of --pg-tls-cert.
    #[arg(long, env = "GATEHOUSE_PG_TLS_KEY", requires = "pg_tls_cert")]
    pub pg_tls_key: Option<PathBuf>,
    /// Accept tokens over unencrypted PostgreSQL connections from non-loopback clients.
    #[arg(long, env = "GATEHOUSE_PG_ALLOW_PLAINTEXT")]
    pub pg_allow_plaintext: bool,
    /// Address for MySQL clients (`off` disables the MySQL listener).
    #[arg(long, env = "GATEHOUSE_MYSQL_LISTEN", default_value = "127.0.0.1:7306")]
    pub mysql_listen: String,
    /// Accept tokens over unencrypted MySQL connections from non-loopback clients.
    #[arg(long, env = "GATEHOUSE_MYSQL_ALLOW_PLAINTEXT")]
    pub mysql_allow_plaintext: bool,
    /// Address for AWS SDK and CLI clients (`--endpoint-url`; `off` disables it).
    #[arg(long, env = "GATEHOUSE_AWS_LISTEN", default_value = "127.0.0.1:7401")]
    pub aws_listen: String,
    /// Threads that run PostgreSQL and MySQL sessions, each session on one
    /// of them (default: one per CPU; 0 runs them on the shared runtime).
    #[arg(long, env = "GATEHOUSE_SESSION_THREADS")]
    pub session_threads: Option<usize>,
    /// Keep state in PostgreSQL (postgres://…) instead of SQLite.
    #[arg(long, env = "GATEHOUSE_STORE")]
    pub store: Option<String>,
    /// OIDC issuer whose JWTs are accepted as bearer tokens.
    #[arg(long, env = "GATEHOUSE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience (`aud`) the OIDC tokens must carry.
    #[arg(long, env = "GATEHOUSE_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// Claim that lists the caller's groups (dots walk into objects).
    #[arg(long, env = "GATEHOUSE_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Accepted JWT signing algorithms, comma-separated.
    #[arg(
        long,
        env = "GATEHOUSE_OIDC_ALGORITHMS",
        default_value = "RS256,ES256,PS256,EdDSA"
    )]
    pub oidc_algorithms: String,
    /// Clock skew tolerated on exp/nbf.
    #[arg(long, env = "GATEHOUSE_OIDC_LEEWAY", default_value = "30s")]
    pub oidc_leeway: String,
    /// Shortest time between two JWKS fetches.
    #[arg(long, env = "GATEHOUSE_OIDC_JWKS_MIN_REFRESH", default_value = "10s")]
    pub oidc_jwks_min_refresh: String,
    /// Groups whose members administer Gatehouse, comma-separated.
    #[arg(long, env = "GATEHOUSE_ADMIN_GROUPS", default_value = "admin")]
    pub admin_groups: String,
    /// The API's address as people reach it, for links in review notifications.
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Slack-compatible incoming webhook URLs told about reviews, comma-separated.
    #[arg(long, env = "GATEHOUSE_NOTIFY_SLACK", hide_env_values = true)]
    pub notify_slack: Option<String>,
    /// JSON webhook URLs told about reviews (signed with GATEHOUSE_NOTIFY_SECRET), comma-separated.
    #[arg(long, env = "GATEHOUSE_NOTIFY_WEBHOOK", hide_env_values = true)]
    pub notify_webhook: Option<String>,
    /// Stream the audit log to a syslog receiver over TCP (RFC 5424, octet counted), host:port.
    #[arg(long, env = "GATEHOUSE_AUDIT_SYSLOG")]
    pub audit_syslog: Option<String>,
    /// Stream the audit log to this HTTP endpoint (JSON lines POSTs).
    #[arg(long, env = "GATEHOUSE_AUDIT_WEBHOOK", hide_env_values = true)]
    pub audit_webhook: Option<String>,
    /// When the session recorder falls behind: `refuse` statements (default,
    /// fail closed) or `run` them unrecorded (logged).
    #[arg(long, env = "GATEHOUSE_WHEN_RECORDER_BEHIND", default_value = "refuse", value_parser = ["refuse", "run"])]
    pub when_recorder_behind: String,
    /// Keep statement records and their results in S3-compatible storage
    /// (`s3://BUCKET/PREFIX`; credentials, region and endpoint from the
    /// standard AWS_* variables) or a directory, as gzip'd JSON lines; the
    /// store keeps an index.
    #[arg(long, env = "GATEHOUSE_RECORDINGS")]
    pub recordings: Option<String>,
    /// Delete recordings of sessions that ended longer ago than this (e.g. `90d`).
    #[arg(long, env = "GATEHOUSE_RECORDINGS_RETENTION")]
    pub recordings_retention: Option<String>,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "GATEHOUSE_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Gateway URL (default: GATEHOUSE_URL or http://127.0.0.1:7400).
    #[arg(long)]
    pub url: Option<String>,
    /// Read the token from this file instead of standard input.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create a token; it is printed once and never again.
    Create {
        #[arg(long)]
        name: String,
        /// Group of the token (repeat for several).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Lifetime, e.g. 24h or 30d (default: no expiry).
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (names, groups, status; never the tokens).
    List(JsonFlag),
    /// Revoke a token by name.
    Revoke {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCmd {
    /// Register a connection. Its secret (database password, HTTP token,
    /// AWS secret access key) comes from --password-env, --password-file or
    /// --password-stdin.
    Add(Box<AddConnection>),
    /// List connections.
    List(JsonFlag),
    /// Show one connection.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection.
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Connect upstream with the stored credentials and report.
    Test {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddConnection {
    pub name: String,
    /// postgres, mysql, http or aws.
    #[arg(long)]
    pub kind: String,
    /// Upstream URL, without a password.
    #[arg(long)]
    pub url: String,
    /// Group allowed to use it (repeat for several).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Read the password from this environment variable.
    #[arg(long, group = "pw")]
    pub password_env: Option<String>,
    /// Read the password from this file.
    #[arg(long, group = "pw")]
    pub password_file: Option<PathBuf>,
    /// Read the password from standard input.
    #[arg(long, group = "pw")]
    pub password_stdin: bool,
    /// Longest a statement may run, e.g. 30s.
    #[arg(long)]
    pub statement_timeout: Option<String>,
    /// Most rows returned per statement.
    #[arg(long)]
    pub row_limit: Option<u64>,
    /// Longest a session may last, e.g. 8h.
    #[arg(long)]
    pub max_session: Option<String>,
    /// Most sessions open at once through one replica (PostgreSQL and
    /// MySQL connections).
    #[arg(long)]
    pub max_sessions: Option<u64>,
    /// PostgreSQL and MySQL connections: sessions run in read-only transactions,
    /// enforced by the database.
    #[arg(long)]
    pub read_only: bool,
    /// HTTP connections: how the secret is sent upstream: `bearer`,
    /// `basic:USERNAME`, `header:NAME` or `client-cert` (the secret is then
    /// the PEM certificate chain followed by its key).
    #[arg(long)]
    pub http_auth: Option<String>,
    /// AWS connections: the access key id the gateway signs with (the
    /// secret access key is the secret).
    #[arg(long)]
    pub aws_access_key_id: Option<String>,
    /// AWS connections: the region to sign for (default: the caller's).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// AWS connections: a role to assume with the key (requests are signed
    /// with its temporary credentials).
    #[arg(long)]
    pub aws_role_arn: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The declarative file (TOML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Re-encrypt every stored credential under a new master key, without downtime.
    Rotate(JsonFlag),
    /// Print a new random master key (for GATEHOUSE_MASTER_KEY).
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// The newest audit events.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Check the audit log's hash chain and signed checkpoints; exits 1
    /// naming the first entry modified, deleted, inserted or reordered.
    Verify {
        /// Also trust checkpoints signed by this public key (hex), e.g. one
        /// kept from before a master-key rotation. Repeatable.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write the audit log as JSON lines (with hashes) to standard output.
    Export {
        /// Only events within this long (e.g. 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// jsonl (the only format).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Sign a checkpoint of the chain's head now (the server also does so every minute).
    Checkpoint(JsonFlag),
    /// The public key checkpoints are signed with: keep a copy outside Gatehouse.
    PublicKey,
}
