//! The durable store: every deployment's latest snapshot and its journal, through sqlx's
//! `Any` driver so one code path (one SQL dialect) serves SQLite and PostgreSQL.
//!
//! Writes go through one writer task that commits whatever has queued up in a single
//! transaction (group commit): many deployments persisting their turns at once cost one
//! fsync, not one each, and SQLite never sees two writers from this process. A caller's
//! write is durable when its `persist` call returns.

use std::time::Duration;

use bluegreen_core::journal::JournalLine;
use bluegreen_core::{Deployment, DeploymentId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

mod admit;
mod lease;
mod pages;
mod requests;
pub mod retention;
mod writer;

pub use admit::{AdmitError, Admitted, AppRow, SubmitRow};
pub use lease::Claim;
pub use pages::{Cursor, JOURNAL_PAGE_MAX};
pub use requests::{PostedRequest, Signal};

use writer::{Op, WriteError, WriteReq, writer};

/// Writes waiting for the writer; a full queue makes callers wait (back-pressure).
pub const WRITE_QUEUE_MAX: usize = 1_024;
/// Most write requests folded into one transaction.
pub const BATCH_MAX: usize = 512;
/// Most rows a list query returns.
pub const LIST_MAX: i64 = 1_000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database's own error, with any store URL or password in its text redacted.
    #[error("database: {}", redact_text(&.0.to_string()))]
    Db(#[from] sqlx::Error),
    /// A write carried a lease epoch the app no longer has: another replica drives it.
    #[error("fenced: app {app} is no longer driven by this replica (lease epoch {epoch} is stale)")]
    Fenced { app: String, epoch: u64 },
    #[error("stored deployment {id} cannot be read: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("unsupported store URL {:?}: use sqlite://FILE or postgres://…", redact(.0))]
    BadUrl(String),
}

impl StoreError {
    /// The store is not answering right now (no connection within the pool's wait, the
    /// connection broke, the server is restarting, the writer stopped): the request did
    /// nothing and may be sent again — not a fault in what was asked.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            StoreError::WriterGone => true,
            StoreError::Fenced { .. } | StoreError::Corrupt { .. } | StoreError::BadUrl(_) => false,
        }
    }
}

/// Where a deployment is in the service's life cycle (the machine's phase says where it
/// is in the deployment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    /// Waiting for the app's current deployment to finish.
    Queued,
    /// Driven by a runner (or waiting for one after a crash: resumed at the next boot).
    Running,
    /// The machine reached a terminal phase.
    Finished,
    /// Replaced in the queue by a newer deployment before it started; never touched AWS.
    Superseded,
    /// Aborted by an operator while queued; never touched AWS.
    Cancelled,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Queued => "queued",
            RowState::Running => "running",
            RowState::Finished => "finished",
            RowState::Superseded => "superseded",
            RowState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<RowState> {
        Some(match s {
            "queued" => RowState::Queued,
            "running" => RowState::Running,
            "finished" => RowState::Finished,
            "superseded" => RowState::Superseded,
            "cancelled" => RowState::Cancelled,
            _ => return None,
        })
    }

    /// Queued or running: the runner still owes this deployment work.
    pub fn is_open(self) -> bool {
        matches!(self, RowState::Queued | RowState::Running)
    }
}

/// A deployment as stored.
#[derive(Clone, Debug)]
pub struct Stored {
    pub deployment: Deployment,
    pub app: String,
    pub image: String,
    /// The idempotency key: the image's digest when it has one, else the image reference.
    pub image_key: String,
    pub state: RowState,
    /// Why it is superseded or cancelled (e.g. `superseded by web-…-3`).
    pub note: Option<String>,
    /// Sequence number of its last journal line.
    pub seq: u64,
}

impl Stored {
    pub fn id(&self) -> &DeploymentId {
        self.deployment.id()
    }
}

/// A new deployment row.
#[derive(Clone, Debug)]
pub struct NewRow {
    pub deployment: Deployment,
    pub app: String,
    pub image: String,
    pub image_key: String,
    pub state: RowState,
}

/// The durable outcome of one runner turn.
#[derive(Clone, Debug)]
pub struct Turn {
    pub id: DeploymentId,
    pub lines: Vec<JournalLine>,
    pub snapshot: String,
    pub phase: String,
    pub state: RowState,
    pub seq: u64,
    pub updated_at: Timestamp,
}

/// A handle on the store (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    writer: mpsc::Sender<WriteReq>,
    url: String,
    backend: Backend,
}

/// Which database the store runs on (one SQL dialect; only the clock differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database's own clock in milliseconds since the epoch, as SQL: lease expiry is
    /// judged by it, never by a replica's clock (replicas' clocks may disagree).
    pub(crate) fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

/// The lease epoch a write is fenced by: it commits only while `holder` still holds
/// `app` at `epoch` (checked in the write's own transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub app: String,
    pub holder: String,
    pub epoch: u64,
}

const SCHEMA: [&str; 8] = [
    // One row per app: its admission value (the queue rules' state, JSON), the running
    // deployment (denormalised for the lease scan) and the app's lease: the holder (a
    // replica's random id) and an epoch that only grows. A lease lives as long as its
    // holder's row in `replicas` is fresh by the database's clock.
    "CREATE TABLE IF NOT EXISTS apps (
        name TEXT PRIMARY KEY,
        admission TEXT NOT NULL,
        running TEXT,
        holder TEXT,
        epoch BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS replicas (
        id TEXT PRIMARY KEY,
        seen_until BIGINT NOT NULL,
        started_at BIGINT NOT NULL
    )",
    // Operator requests for a deployment another replica drives: posted by the replica
    // that took the API call, claimed and answered by the driving one.
    "CREATE TABLE IF NOT EXISTS requests (
        id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        claimed_by TEXT,
        answer TEXT
    )",
    "CREATE TABLE IF NOT EXISTS deployments (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        image TEXT NOT NULL,
        image_key TEXT NOT NULL,
        state TEXT NOT NULL,
        phase TEXT NOT NULL,
        note TEXT,
        snapshot TEXT NOT NULL,
        seq BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS deployments_app ON deployments (app, created_at)",
    "CREATE INDEX IF NOT EXISTS deployments_state ON deployments (state)",
    "CREATE INDEX IF NOT EXISTS deployments_image ON deployments (app, image_key)",
    "CREATE TABLE IF NOT EXISTS journal (
        deployment TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at BIGINT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (deployment, seq)
    )",
];

const COLUMNS: &str = "id, app, image, image_key, state, note, snapshot, seq";

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn line_json(line: &JournalLine) -> String {
    serde_json::to_string(line).expect("journal lines serialise")
}

impl Store {
    /// Open (creating if needed) the store at `url`: `sqlite://FILE` (created when
    /// missing), `sqlite::memory:`, or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") || rest.contains(":memory:") {
                url.to_string()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (url, Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // TLS: sqlx reads `sslmode` (`prefer` by default: TLS whenever the server
            // offers it, so a password never crosses in clear to a TLS server;
            // `require`, `verify-ca`, `verify-full`) and `sslrootcert` from the URL.
            (url.to_string(), Backend::Postgres)
        } else {
            return Err(StoreError::BadUrl(redact(url)));
        };
        let sqlite = backend == Backend::Sqlite;
        let memory = url.contains(":memory:");
        let options = AnyPoolOptions::new()
            // SQLite: one writer (ours) plus readers; a memory database is per connection.
            .max_connections(if memory {
                1
            } else if sqlite {
                4
            } else {
                8
            })
            // A store that does not answer fails a request in seconds, not half a minute:
            // callers retry with backoff and /readyz reports it meanwhile.
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never block the writer; NORMAL: a commit survives a
                        // process crash (kill -9), only a power loss can undo the last ones.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    } else {
                        // A replica frozen inside a transaction (SIGSTOP, a VM pause) would
                        // hold its app rows' locks and block their takeover for as long as
                        // it stays frozen: the server ends such a session after 5 s
                        // (releasing the locks; the frozen replica's writes then fail and
                        // are fenced), and no statement waits for a lock longer than that.
                        sqlx::query("SET idle_in_transaction_session_timeout = '5s'")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("SET lock_timeout = '5s'")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        {
            // Replicas starting together on a fresh database would race on
            // `CREATE TABLE IF NOT EXISTS` (PostgreSQL's catalog is not idempotent under
            // concurrency): one at a time, under an advisory lock held by this connection.
            let mut conn = pool.acquire().await?;
            if backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_lock(7262024115)")
                    .execute(&mut *conn)
                    .await?;
            }
            let mut created = Ok(());
            for stmt in SCHEMA {
                if let Err(e) = sqlx::query(stmt).execute(&mut *conn).await {
                    created = Err(e);
                    break;
                }
            }
            if backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_unlock(7262024115)")
                    .execute(&mut *conn)
                    .await?;
            }
            created?;
        }
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
        tokio::spawn(writer(pool.clone(), rx));
        Ok(Store {
            pool,
            writer: tx,
            url: redact(&url),
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password removed, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn write(&self, fence: Option<Fence>, ops: Vec<Op>) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.writer
            .send(WriteReq { fence, ops, done })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(WriteError::Fenced { app, epoch })) => Err(StoreError::Fenced { app, epoch }),
            Ok(Err(WriteError::Db(message))) => Err(StoreError::Db(sqlx::Error::Protocol(message))),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// Insert a new deployment with its first journal lines (`created`).
    pub async fn insert(&self, row: NewRow, lines: Vec<JournalLine>) -> Result<(), StoreError> {
        let snapshot = serde_json::to_string(&row.deployment).expect("deployments serialise");
        self.write(
            None,
            vec![Op::Insert {
                row: Box::new(row),
                snapshot,
                lines,
            }],
        )
        .await
    }

    /// Persist one turn: its journal lines and the snapshot after it, atomically —
    /// only while `fence` still holds (none: a single-process caller that owns the store).
    /// Idempotent: a retry after a commit whose answer was lost changes nothing.
    /// (Shared, so a retry after a failed commit does not copy the snapshot again.)
    pub async fn persist(
        &self,
        turn: std::sync::Arc<Turn>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        self.write(fence, vec![Op::Turn(turn)]).await
    }

    pub async fn set_state(
        &self,
        id: &DeploymentId,
        state: RowState,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(
            None,
            vec![Op::SetState {
                id: id.to_string(),
                state,
                note,
            }],
        )
        .await
    }

    fn decode(row: &AnyRow) -> Result<Stored, StoreError> {
        let id: String = row.try_get("id")?;
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.clone(),
            reason,
        };
        let state: String = row.try_get("state")?;
        let state =
            RowState::parse(&state).ok_or_else(|| corrupt(format!("unknown state {state:?}")))?;
        let snapshot: String = row.try_get("snapshot")?;
        let deployment: Deployment =
            serde_json::from_str(&snapshot).map_err(|e| corrupt(format!("snapshot: {e}")))?;
        let seq: i64 = row.try_get("seq")?;
        Ok(Stored {
            deployment,
            app: row.try_get("app")?,
            image: row.try_get("image")?,
            image_key: row.try_get("image_key")?,
            state,
            note: row.try_get("note")?,
            seq: u64::try_from(seq).map_err(|_| corrupt("negative seq".into()))?,
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::decode).transpose()
    }

    /// Most recent first, at most `limit` (capped at [`LIST_MAX`]).
    pub async fn list(&self, app: Option<&str>, limit: i64) -> Result<Vec<Stored>, StoreError> {
        let limit = limit.clamp(1, LIST_MAX);
        let rows = match app {
            Some(app) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM deployments WHERE app = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                )))
                .bind(app.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM deployments ORDER BY created_at DESC, id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(Self::decode_all(&rows))
    }

    /// Decode rows, leaving out (and logging) any that cannot be read — e.g. a snapshot
    /// written by a build whose format this one does not read — so one bad row does
    /// not hide the rest or stop the service from starting.
    fn decode_all(rows: &[AnyRow]) -> Vec<Stored> {
        rows.iter()
            .filter_map(|r| match Self::decode(r) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "skipping a stored deployment that cannot be read");
                    None
                }
            })
            .collect()
    }

    /// Every queued or running deployment, oldest first (what a booting runner resumes).
    pub async fn open(&self) -> Result<Vec<Stored>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE state = $1 OR state = $2 ORDER BY created_at, id"
        )))
        .bind(RowState::Queued.as_str())
        .bind(RowState::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(Self::decode_all(&rows))
    }

    /// The app's most recent deployment.
    pub async fn latest(&self, app: &str) -> Result<Option<Stored>, StoreError> {
        Ok(self.list(Some(app), 1).await?.into_iter().next())
    }

    /// The app's most recent deployment of this image key, in any state.
    pub async fn find(&self, app: &str, image_key: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE app = $1 AND image_key = $2 ORDER BY created_at DESC, id DESC LIMIT 1"
        )))
        .bind(app.to_string())
        .bind(image_key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::decode).transpose()
    }

    /// How many deployments the app has had (names the next one).
    pub async fn count(&self, app: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deployments WHERE app = $1")
            .bind(app.to_string())
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A deployment's journal, in order.
    pub async fn journal(&self, id: &str) -> Result<Vec<JournalLine>, StoreError> {
        let rows = sqlx::query("SELECT line FROM journal WHERE deployment = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("line")?;
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    id: id.to_string(),
                    reason: format!("journal line: {e}"),
                })
            })
            .collect()
    }

    /// Wait until every write queued so far is committed, then close the pool.
    pub async fn close(self) {
        let _ = self.write(None, Vec::new()).await;
        self.pool.close().await;
    }
}

/// `text` with the password of `url` (if it has one) replaced by `***`, and any other
/// credential [`redact_text`] recognises removed too.
pub fn scrub(url: &str, text: &str) -> String {
    let text = match password(url) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    };
    redact_text(&text)
}

fn password(url: &str) -> Option<&str> {
    let scheme = url.find("://")?;
    let at = url.rfind('@').filter(|at| *at > scheme)?;
    url[scheme + 3..at].split_once(':').map(|(_, p)| p)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; a `password=`
/// parameter's value too.
pub fn redact(url: &str) -> String {
    redact_text(url)
}

/// Remove every credential a text may carry from a store URL — `user:secret@` after a
/// scheme, `password=…` parameters — so a database error or a URL in a log line never
/// shows a password.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Bounded: each round consumes at least the "://" it found.
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let creds = &authority[..at];
                match creds.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(creds),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_param(&out, "password=")
}

fn redact_param(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find(key) {
        let (head, tail) = rest.split_at(i + key.len());
        out.push_str(head);
        out.push_str("***");
        // A quoted value ends at its closing quote; a bare one at the next separator.
        let end = match tail.chars().next() {
            Some(q @ ('"' | '\'')) => tail[1..].find(q).map_or(tail.len(), |i| i + 2),
            _ => tail
                .find(|c: char| c == '&' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
                .unwrap_or(tail.len()),
        };
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The idempotency key of an image reference: its digest (`sha256:…`) when it has one,
/// otherwise the whole reference.
pub fn image_key(image: &str) -> String {
    match image.split_once('@') {
        Some((_, digest)) => digest.to_string(),
        None => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://bg:hunter2@db:5432/bg"),
            "postgres://bg:***@db:5432/bg"
        );
        assert_eq!(redact("sqlite://bluegreen.db"), "sqlite://bluegreen.db");
        assert_eq!(
            redact("postgres://bg@db/bg?sslmode=require&password=hunter2&x=1"),
            "postgres://bg@db/bg?sslmode=require&password=***&x=1"
        );
    }

    #[test]
    fn passwords_are_redacted_from_error_texts() {
        let text =
            "error connecting to postgres://bg:p@ss:w0rd@10.0.0.1:5432/bg (password=\"s3cret\")";
        let red = redact_text(text);
        assert!(!red.contains("w0rd") && !red.contains("s3cret"), "{red}");
        assert!(red.contains("postgres://bg:***@10.0.0.1:5432/bg"), "{red}");
    }

    #[test]
    fn image_keys_are_digests_when_present() {
        assert_eq!(image_key("repo/web@sha256:abc"), "sha256:abc");
        assert_eq!(image_key("web:v2"), "web:v2");
    }
}
