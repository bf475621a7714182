//! The MySQL/MariaDB wire protocol for Gatehouse.
//!
//! - [`codec`]: packets ↔ typed values, size-limited, pure (fuzzed).
//! - [`upstream`]: Gatehouse logging in to a real MySQL/MariaDB server with
//!   the stored credential (TLS, `mysql_native_password`,
//!   `caching_sha2_password`).
//! - [`handshake`]: Gatehouse acting as the server towards a client during
//!   authentication, to obtain the caller's password (their access token)
//!   in clear, over TLS or (where allowed) plain TCP.
//! - [`stream`]: the plain-or-TLS byte stream and exact packet reads.
//! - [`proxy`]: the MySQL listener: a client's login (its token as the
//!   password), authorization, the upstream login with the stored
//!   credential; then `relay` serves its commands through the policy,
//!   masking, reviews and recording.

pub mod codec;
pub mod handshake;
pub mod local;
pub mod proxy;
mod relay;
pub use relay::{LocalEvent, database_switch, kill_target, read_only_refusal};
pub mod scramble;
pub mod stream;
pub mod upstream;
pub mod views;

pub use local::{LocalClient, open_local};
pub use proxy::{MysqlProxy, serve};
