//! TLS: the certificate Gatehouse shows PostgreSQL clients (configured, or
//! self-signed and kept in the data directory), and the client settings
//! used towards upstreams for each `sslmode`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// PostgreSQL's protocol name in TLS's ALPN, which libpq 17 and later send
/// (and require of a direct TLS connection).
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The server side: its rustls config and the certificate's SHA-256 fingerprint.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
    /// Whether Gatehouse made the certificate itself.
    pub self_signed: bool,
}

impl ServerTls {
    /// The same, speaking PostgreSQL's ALPN protocol name: a client that
    /// offers ALPN must offer it (a client that offers none is served as
    /// before), as a PostgreSQL server requires.
    pub fn for_postgres(mut self) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        self.config = Arc::new(config);
        self
    }
}

fn cert_err(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Cert {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Loads `cert`/`key` (PEM) when given, else the self-signed pair in
/// `data_dir`, creating it (key mode 0600) on first use.
pub fn server_tls(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
) -> Result<ServerTls, TlsError> {
    let (cert_path, key_path, self_signed) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf(), false),
        (None, None) => {
            let c = data_dir.join("pg-tls.crt");
            let k = data_dir.join("pg-tls.key");
            if !c.exists() || !k.exists() {
                generate_self_signed(&c, &k)?;
            }
            (c, k, true)
        }
        _ => {
            return Err(TlsError::Setup(
                "give both --pg-tls-cert and --pg-tls-key, or neither".into(),
            ));
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| cert_err(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(&cert_path, e))?;
    let first = certs
        .first()
        .ok_or_else(|| cert_err(&cert_path, "no certificate in the file"))?;
    let fingerprint = hex::encode(Sha256::digest(first.as_ref()));
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| cert_err(&key_path, e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Setup(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| cert_err(&cert_path, e))?;
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
        self_signed,
    })
}

fn generate_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gatehouse".into());
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        host,
    ];
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Setup(e.to_string()))?;
    std::fs::write(cert, ck.cert.pem()).map_err(|e| cert_err(cert, e))?;
    let mut f = gatehouse_core::keyring::private_file(key).map_err(|e| cert_err(key, e))?;
    std::io::Write::write_all(&mut f, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| cert_err(key, e))?;
    Ok(())
}

/// How to reach an upstream, from its url's `sslmode` (libpq's meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "disable" => Some(Self::Disable),
            "prefer" | "allow" => Some(Self::Prefer),
            "require" => Some(Self::Require),
            "verify-full" => Some(Self::VerifyFull),
            _ => None,
        }
    }
}

/// The client config for an upstream. `require` encrypts without checking
/// the certificate (as libpq does); `verify-full` checks it against
/// `root_cert` (or the public web roots) and the host name.
pub fn client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let config = if mode == SslMode::VerifyFull {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                for c in CertificateDer::pem_file_iter(path).map_err(|e| cert_err(path, e))? {
                    roots
                        .add(c.map_err(|e| cert_err(path, e))?)
                        .map_err(|e| cert_err(path, e))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertCheck(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Encryption without authentication of the server, for `sslmode=require`.
#[derive(Debug)]
struct NoCertCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
