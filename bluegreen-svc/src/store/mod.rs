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

mod pages;
pub mod retention;
mod writer;

pub use pages::{Cursor, JOURNAL_PAGE_MAX};

use writer::{Op, WriteReq, writer};

/// Writes waiting for the writer; a full queue makes callers wait (back-pressure).
pub const WRITE_QUEUE_MAX: usize = 1_024;
/// Most write requests folded into one transaction.
pub const BATCH_MAX: usize = 512;
/// Most rows a list query returns.
pub const LIST_MAX: i64 = 1_000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored deployment {id} cannot be read: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("unsupported store URL {:?}: use sqlite://FILE or postgres://…", redact(.0))]
    BadUrl(String),
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
}

const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at BIGINT NOT NULL
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

/// The one lease: the right to drive this store's deployments.
const LEASE: &str = "controller";

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
        let (url, sqlite) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") || rest.contains(":memory:") {
                url.to_string()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (url, true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), false)
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
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
            .acquire_timeout(Duration::from_secs(30))
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
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
        tokio::spawn(writer(pool.clone(), rx));
        Ok(Store {
            pool,
            writer: tx,
            url: redact(&url),
        })
    }

    /// The URL with any password removed, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.writer
            .send(WriteReq { ops, done })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Db(sqlx::Error::Protocol(message))),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// Insert a new deployment with its first journal lines (`created`).
    pub async fn insert(&self, row: NewRow, lines: Vec<JournalLine>) -> Result<(), StoreError> {
        let snapshot = serde_json::to_string(&row.deployment).expect("deployments serialise");
        self.write(vec![Op::Insert {
            row: Box::new(row),
            snapshot,
            lines,
        }])
        .await
    }

    /// Persist one turn: its journal lines and the snapshot after it, atomically.
    /// (Shared, so a retry after a failed commit does not copy the snapshot again.)
    pub async fn persist(&self, turn: std::sync::Arc<Turn>) -> Result<(), StoreError> {
        self.write(vec![Op::Turn(turn)]).await
    }

    pub async fn set_state(
        &self,
        id: &DeploymentId,
        state: RowState,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(vec![Op::SetState {
            id: id.to_string(),
            state,
            note,
        }])
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

    /// Try to take the controller lease (one runner per store): free, expired, already
    /// ours, or held by a process of ours that is gone (`holder_gone`) → taken until
    /// `expires_at`. Otherwise `Ok(Some(holder, expires_at))`.
    pub async fn acquire_lease(
        &self,
        owner: &str,
        now: Timestamp,
        expires_at: Timestamp,
        holder_gone: impl Fn(&str) -> bool,
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        let current = sqlx::query("SELECT owner, expires_at FROM leases WHERE name = $1")
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        let takeable = match &current {
            None => true,
            Some(row) => {
                let holder: String = row.try_get("owner")?;
                let until: i64 = row.try_get("expires_at")?;
                holder == owner || until < to_i64(now.as_millis()) || holder_gone(&holder)
            }
        };
        if !takeable {
            let row = current.expect("held");
            let until: i64 = row.try_get("expires_at")?;
            return Ok(Some((
                row.try_get("owner")?,
                Timestamp::from_millis(u64::try_from(until).unwrap_or(0)),
            )));
        }
        // Conditional on what we read: if another runner took it in between, ours fails.
        let taken = match current {
            None => sqlx::query("INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(LEASE)
                .bind(owner.to_string())
                .bind(to_i64(expires_at.as_millis()))
                .execute(&self.pool)
                .await?
                .rows_affected(),
            Some(row) => {
                let holder: String = row.try_get("owner")?;
                let until: i64 = row.try_get("expires_at")?;
                sqlx::query("UPDATE leases SET owner = $1, expires_at = $2 WHERE name = $3 AND owner = $4 AND expires_at = $5")
                    .bind(owner.to_string())
                    .bind(to_i64(expires_at.as_millis()))
                    .bind(LEASE)
                    .bind(holder)
                    .bind(until)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
            }
        };
        if taken == 1 {
            Ok(None)
        } else {
            Ok(Some(("another runner (just now)".into(), expires_at)))
        }
    }

    /// Extend our lease; `false` when it is no longer ours.
    pub async fn renew_lease(
        &self,
        owner: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND owner = $3")
            .bind(to_i64(expires_at.as_millis()))
            .bind(LEASE)
            .bind(owner.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(LEASE)
            .bind(owner.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Wait until every write queued so far is committed, then close the pool.
    pub async fn close(self) {
        let _ = self.write(Vec::new()).await;
        self.pool.close().await;
    }
}

/// `text` with the password of `url` (if it has one) replaced by `***`.
pub fn scrub(url: &str, text: &str) -> String {
    match password(url) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

fn password(url: &str) -> Option<&str> {
    let scheme = url.find("://")?;
    let at = url.rfind('@').filter(|at| *at > scheme)?;
    url[scheme + 3..at].split_once(':').map(|(_, p)| p)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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
    }

    #[test]
    fn image_keys_are_digests_when_present() {
        assert_eq!(image_key("repo/web@sha256:abc"), "sha256:abc");
        assert_eq!(image_key("web:v2"), "web:v2");
    }
}
