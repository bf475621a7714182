//! Where statement recordings go when they are not kept in the store: a
//! directory or an S3-compatible bucket. Each chunk of a session's records
//! is a gzip member of JSON lines. In a directory a session is one file
//! (`<session>.jsonl.gz`) that grows by appending members, so `zcat` reads
//! it whole; in a bucket each chunk is one object
//! (`<prefix>/<session>/<chunk>.jsonl.gz`). The store keeps the index:
//! where each chunk is, and its statements without their results (what
//! `sessions list --grep` searches).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::secret::Secret;
use gatehouse_core::sigv4::{self, Credentials};

/// Largest chunk file read back (compressed or not).
const MAX_CHUNK: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum RecordingStore {
    Dir(PathBuf),
    S3(Box<S3Bucket>),
}

/// A bucket on an S3-compatible server, addressed path-style.
#[derive(Debug)]
pub struct S3Bucket {
    /// `http(s)://host[:port]`, no path.
    endpoint: url::Url,
    region: String,
    bucket: String,
    /// Key prefix without a trailing slash; may be empty.
    prefix: String,
    creds: Credentials,
    http: reqwest::Client,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl RecordingStore {
    /// `s3://bucket/prefix` (credentials, region and endpoint from the
    /// standard `AWS_*` variables) or a directory path (`file://` allowed).
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "--recordings {spec}: no bucket; write s3://BUCKET/PREFIX"
                ));
            }
            let region = env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into());
            let endpoint = env("AWS_ENDPOINT_URL_S3")
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
            let endpoint = url::Url::parse(&endpoint)
                .map_err(|e| format!("the S3 endpoint {endpoint:?} is not a URL: {e}"))?;
            if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
                return Err(format!("the S3 endpoint {endpoint} must be an http(s) URL"));
            }
            let (Some(access_key), Some(secret)) =
                (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
            else {
                return Err(
                    "--recordings s3://… needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                        .into(),
                );
            };
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| format!("S3 client: {e}"))?;
            return Ok(Self::S3(Box::new(S3Bucket {
                endpoint,
                region,
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                creds: Credentials {
                    access_key,
                    secret_key: Secret::new(secret),
                    session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
                },
                http,
            })));
        }
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        if path.is_empty() || spec.contains("://") && !spec.starts_with("file://") {
            return Err(format!(
                "--recordings {spec}: give s3://BUCKET/PREFIX or a directory path"
            ));
        }
        Ok(Self::Dir(PathBuf::from(path)))
    }

    /// For start-up messages: where recordings go (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(p) => p.display().to_string(),
            Self::S3(b) => format!("s3://{}/{} at {}", b.bucket, b.prefix, b.endpoint),
        }
    }

    /// Creates the directory or checks that the bucket answers.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Dir(p) => {
                std::fs::create_dir_all(p)
                    .map_err(|e| format!("recordings directory {}: {e}", p.display()))?;
                restrict(p, 0o700);
                Ok(())
            }
            Self::S3(b) => {
                let (status, body) = b
                    .send("GET", "", &[("list-type", "2"), ("max-keys", "1")], None)
                    .await?;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!(
                        "the recordings bucket s3://{} answered {status}: {}",
                        b.bucket,
                        s3_error(&body)
                    ))
                }
            }
        }
    }

    /// Stores one chunk of JSON lines, compressed; returns where it is.
    pub async fn put(&self, session: &str, chunk: i64, lines: &[u8]) -> Result<String, String> {
        let gz = gzip(lines)?;
        match self {
            Self::Dir(dir) => {
                let file = dir.join(format!("{}.jsonl.gz", safe_name(session)));
                let len = gz.len();
                let offset = tokio::task::spawn_blocking(move || append(&file, &gz))
                    .await
                    .map_err(|e| format!("recording writer: {e}"))??;
                Ok(format!("{}.jsonl.gz#{offset}+{len}", safe_name(session)))
            }
            Self::S3(b) => {
                let key = b.key(&format!("{}/{chunk:06}.jsonl.gz", safe_name(session)));
                let (status, body) = b.send("PUT", &key, &[], Some(gz)).await?;
                if status.is_success() {
                    Ok(key)
                } else {
                    Err(format!("S3 refused {key}: {status}: {}", s3_error(&body)))
                }
            }
        }
    }

    /// Reads a chunk back as JSON lines.
    pub async fn get(&self, location: &str) -> Result<String, String> {
        let gz = match self {
            Self::Dir(dir) => {
                let (name, range) = location
                    .split_once('#')
                    .ok_or_else(|| format!("recording location {location:?} is not valid"))?;
                let (offset, len) = range
                    .split_once('+')
                    .and_then(|(o, l)| Some((o.parse::<u64>().ok()?, l.parse::<u64>().ok()?)))
                    .filter(|(_, l)| *l <= MAX_CHUNK)
                    .ok_or_else(|| format!("recording location {location:?} is not valid"))?;
                if name != safe_name(name) {
                    return Err(format!("recording location {location:?} is not valid"));
                }
                let file = dir.join(name);
                tokio::task::spawn_blocking(move || read_range(&file, offset, len))
                    .await
                    .map_err(|e| format!("recording reader: {e}"))??
            }
            Self::S3(b) => {
                let (status, body) = b.send("GET", location, &[], None).await?;
                if !status.is_success() {
                    return Err(format!(
                        "S3 answered {status} for {location}: {}",
                        s3_error(&body)
                    ));
                }
                body
            }
        };
        gunzip(&gz)
    }

    /// Deletes a session's chunks (missing ones are not an error).
    pub async fn delete(&self, session: &str, locations: &[String]) -> Result<(), String> {
        match self {
            Self::Dir(dir) => {
                let file = dir.join(format!("{}.jsonl.gz", safe_name(session)));
                match std::fs::remove_file(&file) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(format!("removing {}: {e}", file.display())),
                }
            }
            Self::S3(b) => {
                for key in locations {
                    let (status, body) = b.send("DELETE", key, &[], None).await?;
                    if !status.is_success() && status.as_u16() != 404 {
                        return Err(format!(
                            "S3 refused to delete {key}: {status}: {}",
                            s3_error(&body)
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl S3Bucket {
    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// One signed request; `key` empty addresses the bucket itself.
    async fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), String> {
        let path = if key.is_empty() {
            format!("/{}", sigv4::uri_encode(&self.bucket, false))
        } else {
            format!(
                "/{}/{}",
                sigv4::uri_encode(&self.bucket, false),
                sigv4::uri_encode(key, true)
            )
        };
        let host = match self.endpoint.port() {
            Some(p) => format!("{}:{p}", self.endpoint.host_str().unwrap_or_default()),
            None => self.endpoint.host_str().unwrap_or_default().to_string(),
        };
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let body = body.unwrap_or_default();
        let headers = sigv4::sign(
            &sigv4::Request {
                method,
                host: &host,
                path: &path,
                query: &query,
                headers: &[],
                payload_sha256: &sigv4::sha256_hex(&body),
            },
            &self.creds,
            &self.region,
            "s3",
            gatehouse_core::now_ms(),
        );
        let mut url = self.endpoint.clone();
        url.set_path(&path);
        if !query.is_empty() {
            let q = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        sigv4::uri_encode(k, false),
                        sigv4::uri_encode(v, false)
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&q));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            format!(
                "S3 at {} could not be reached: {}",
                self.endpoint,
                e.without_url()
            )
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("S3 response: {}", e.without_url()))?;
        Ok((status, bytes.to_vec()))
    }
}

/// The `<Code>` and `<Message>` of an S3 error document, or its start.
fn s3_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find('<')? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => text.chars().take(200).collect(),
    }
}

/// Session ids are Gatehouse's own (`pg_<hex>`); anything else is replaced
/// so a name can never leave the directory.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)
        .map_err(|e| format!("compressing: {e}"))?;
    enc.finish().map_err(|e| format!("compressing: {e}"))
}

fn gunzip(data: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_CHUNK)
        .read_to_string(&mut out)
        .map_err(|e| format!("the recording chunk is not readable: {e}"))?;
    Ok(out)
}

/// Appends to `file` (created 0600), synced; returns the offset written at.
fn append(file: &Path, data: &[u8]) -> Result<u64, String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(file)
        .map_err(|e| format!("recording file {}: {e}", file.display()))?;
    let offset = f
        .metadata()
        .map_err(|e| format!("recording file {}: {e}", file.display()))?
        .len();
    f.write_all(data)
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("writing recording file {}: {e}", file.display()))?;
    Ok(offset)
}

fn read_range(file: &Path, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    use std::io::{Seek, SeekFrom};
    let mut f =
        std::fs::File::open(file).map_err(|e| format!("recording file {}: {e}", file.display()))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("recording file {}: {e}", file.display()))?;
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| format!("recording file {}: {e}", file.display()))?;
    if buf.len() as u64 != len {
        return Err(format!(
            "recording file {} is shorter than its index says",
            file.display()
        ));
    }
    Ok(buf)
}

fn restrict(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_holds_one_appendable_gzip_file_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let rs = RecordingStore::from_spec(dir.path().to_str().unwrap()).unwrap();
        rs.check().await.unwrap();
        let a = rs.put("pg_1", 1, b"{\"seq\":1}\n").await.unwrap();
        let b = rs.put("pg_1", 2, b"{\"seq\":2}\n").await.unwrap();
        assert_eq!(rs.get(&b).await.unwrap(), "{\"seq\":2}\n");
        assert_eq!(rs.get(&a).await.unwrap(), "{\"seq\":1}\n");
        // The whole file is one gzip stream of members: zcat reads all of it.
        let whole = std::fs::read(dir.path().join("pg_1.jsonl.gz")).unwrap();
        assert_eq!(gunzip(&whole).unwrap(), "{\"seq\":1}\n{\"seq\":2}\n");
        // A location cannot name a file outside the directory.
        assert!(rs.get("../x.jsonl.gz#0+10").await.is_err());
        rs.delete("pg_1", std::slice::from_ref(&a)).await.unwrap();
        assert!(rs.get(&a).await.is_err());
        rs.delete("pg_1", &[a]).await.unwrap();
    }

    #[tokio::test]
    async fn the_store_keeps_an_index_and_prunes_files_with_their_sessions() {
        use crate::{RecordEvent, SessionChunk, Store};
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("rec");
        let rs = RecordingStore::from_spec(files.to_str().unwrap()).unwrap();
        rs.check().await.unwrap();
        let store = Store::open_sqlite(&dir.path().join("s.db"))
            .await
            .unwrap()
            .with_recordings(rs);
        let line = r#"{"seq":1,"started_at":5,"duration_us":3,"sql":"SELECT email FROM users","decision":"allow","rule":null,"command":"SELECT 1","rows":1,"error":null,"columns":["email"],"result":[["a***@x.org"]]}"#;
        let mut old = crate::tests::session_record("pg_old");
        old.started_at = 10;
        let mut live = crate::tests::session_record("pg_live");
        live.started_at = 10;
        let mut new = crate::tests::session_record("pg_new");
        new.started_at = 1_000;
        let chunk = |id: &str| {
            RecordEvent::Statements(SessionChunk {
                session_id: id.into(),
                chunk: 1,
                first_seq: 1,
                last_seq: 1,
                statements: 1,
                data: format!("{line}\n"),
            })
        };
        store
            .write_records(&[
                RecordEvent::SessionStart(old),
                RecordEvent::SessionStart(live),
                RecordEvent::SessionStart(new),
                chunk("pg_old"),
                chunk("pg_live"),
                chunk("pg_new"),
                RecordEvent::SessionEnd {
                    id: "pg_old".into(),
                    at: 20,
                    reason: "client closed".into(),
                },
                RecordEvent::SessionEnd {
                    id: "pg_new".into(),
                    at: 2_000,
                    reason: "client closed".into(),
                },
            ])
            .await
            .unwrap();
        // The store's index has the statement but not its result.
        let (data, location): (String, Option<String>) =
            sqlx::query_as("SELECT data, location FROM session_chunks WHERE session_id = 'pg_old'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(
            data.contains("SELECT email FROM users") && !data.contains("a***@x.org"),
            "{data}"
        );
        assert!(location.unwrap().starts_with("pg_old.jsonl.gz#0+"));
        // The file holds it, compressed (the text is not in it as is).
        let raw = std::fs::read(files.join("pg_old.jsonl.gz")).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("SELECT email"));
        let (_, st) = store.get_session("pg_old").await.unwrap().unwrap();
        assert_eq!(
            st[0].result,
            Some(vec![vec![Some("a***@x.org".to_string())]])
        );
        // Searching works on the index.
        let found = store
            .list_sessions(&crate::SessionFilter {
                grep: Some("FROM users".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 3);
        // Pruning before 500: the ended old session goes with its file; the
        // live one (never ended, still running) and the new one stay.
        let running = std::collections::HashSet::from(["pg_live".to_string()]);
        assert_eq!(store.prune_sessions(500, 500, &running).await.unwrap(), 1);
        assert!(store.get_session("pg_old").await.unwrap().is_none());
        assert!(!files.join("pg_old.jsonl.gz").exists());
        assert!(files.join("pg_live.jsonl.gz").exists() && files.join("pg_new.jsonl.gz").exists());
        // Once it is no longer running, the unended old session goes too.
        assert_eq!(
            store
                .prune_sessions(500, 500, &Default::default())
                .await
                .unwrap(),
            1
        );
        assert!(store.get_session("pg_new").await.unwrap().is_some());
        // A chunk whose file is gone still shows what ran, from the index.
        std::fs::remove_file(files.join("pg_new.jsonl.gz")).unwrap();
        let (_, st) = store.get_session("pg_new").await.unwrap().unwrap();
        assert_eq!(st[0].sql, "SELECT email FROM users");
        assert_eq!(st[0].result, None);
    }

    #[test]
    fn specs_are_checked() {
        assert!(RecordingStore::from_spec("s3:///x").is_err());
        assert!(RecordingStore::from_spec("ftp://host/x").is_err());
        assert!(
            matches!(RecordingStore::from_spec("file:///tmp/r"), Ok(RecordingStore::Dir(p)) if p == Path::new("/tmp/r"))
        );
        assert_eq!(safe_name("../a/b"), "_a_b");
    }
}
