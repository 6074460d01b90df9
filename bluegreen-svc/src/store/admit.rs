//! Admission in the store: every change to an app's queue runs the core's
//! [`Admission`] value inside one transaction on the app's row, so any replica may take
//! a request and two replicas never admit two running deployments for one app.
//!
//! Each transaction starts by writing the app's row (an insert if it is missing, then an
//! update of its `updated_at`): in PostgreSQL that locks the row until commit, in SQLite
//! it takes the database's write lock up front (a read-then-write transaction could
//! otherwise fail to upgrade). Everything after runs on a row nobody else changes.

use bluegreen_core::admission::{Admission, Cancel, Decision, Entry, Next, Source, Submission};
use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::{Deployment, DeploymentId, PhaseName, Timestamp};
use sqlx::{Any, Row, Transaction};

use super::{Fence, RowState, Store, StoreError, line_json, to_i64};

/// An app's row as a transaction sees it.
#[derive(Clone, Debug)]
pub struct AppRow {
    pub name: String,
    pub admission: Admission,
    pub holder: Option<String>,
    pub epoch: u64,
}

/// What a submission did, and the lease when it started a deployment this replica may
/// drive at once.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub decision: Decision,
    /// The app's lease epoch, when this replica holds it after the transaction.
    pub lease: Option<u64>,
}

/// A request to submit, as the runner prepares it.
pub struct SubmitRow<'a> {
    pub app: &'a str,
    pub image: &'a str,
    pub image_key: &'a str,
    pub source: Source,
    /// Refuse a new deployment (not one replacing a queued one) when this many are open.
    pub open_max: usize,
    pub now: Timestamp,
}

/// Why a submission was refused before the admission value saw it.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} deployments are already open; try again later")]
    Full(usize),
}

impl From<sqlx::Error> for AdmitError {
    fn from(e: sqlx::Error) -> Self {
        AdmitError::Store(StoreError::Db(e))
    }
}

impl Store {
    /// Lock (creating if missing) the app's row and read it.
    async fn lock_app(
        &self,
        tx: &mut Transaction<'_, Any>,
        app: &str,
        now: Timestamp,
    ) -> Result<AppRow, StoreError> {
        let fresh = Admission::<DeploymentId>::default();
        let inserted = sqlx::query(
            "INSERT INTO apps (name, admission, running, holder, epoch, updated_at) VALUES ($1, $2, NULL, NULL, 0, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(app.to_string())
        .bind(serde_json::to_string(&fresh).expect("admission serialises"))
        .bind(to_i64(now.as_millis()))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE apps SET updated_at = $2 WHERE name = $1")
            .bind(app.to_string())
            .bind(to_i64(now.as_millis()))
            .execute(&mut **tx)
            .await?;
        if inserted == 1 {
            // A store written before apps had rows (or rows lost by hand): rebuild the
            // queue from the deployments themselves.
            let recovered = self.recover_admission(tx, app).await?;
            let row = AppRow {
                name: app.to_string(),
                admission: recovered,
                holder: None,
                epoch: 0,
            };
            self.save_app(tx, &row, now).await?;
            return Ok(row);
        }
        let row = sqlx::query("SELECT admission, holder, epoch FROM apps WHERE name = $1")
            .bind(app.to_string())
            .fetch_one(&mut **tx)
            .await?;
        let text: String = row.try_get("admission")?;
        let admission = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            id: format!("app {app}"),
            reason: format!("admission: {e}"),
        })?;
        let epoch: i64 = row.try_get("epoch")?;
        Ok(AppRow {
            name: app.to_string(),
            admission,
            holder: row.try_get("holder")?,
            epoch: u64::try_from(epoch).unwrap_or(0),
        })
    }

    async fn recover_admission(
        &self,
        tx: &mut Transaction<'_, Any>,
        app: &str,
    ) -> Result<Admission, StoreError> {
        let rows = sqlx::query(
            "SELECT id, image_key, state FROM deployments WHERE app = $1 AND (state = $2 OR state = $3) ORDER BY created_at, id",
        )
        .bind(app.to_string())
        .bind(RowState::Running.as_str())
        .bind(RowState::Queued.as_str())
        .fetch_all(&mut **tx)
        .await?;
        let (mut running, mut queued) = (None, None);
        for r in rows {
            let id: String = r.try_get("id")?;
            let Ok(id) = DeploymentId::new(id) else {
                continue;
            };
            let entry = Entry {
                id,
                image_key: r.try_get("image_key")?,
            };
            let state: String = r.try_get("state")?;
            if state == RowState::Running.as_str() {
                running.get_or_insert(entry);
            } else {
                queued = Some(entry); // the newest queued one wins
            }
        }
        let n = sqlx::query("SELECT COUNT(*) AS n FROM deployments WHERE app = $1")
            .bind(app.to_string())
            .fetch_one(&mut **tx)
            .await?;
        let n: i64 = n.try_get("n")?;
        // A queued one with nothing running starts next (picked up by the lease scan).
        if running.is_none() {
            running = queued.take();
            if let Some(r) = &running {
                self.set_state_in(tx, r.id.as_str(), RowState::Running, None)
                    .await?;
            }
        }
        Ok(Admission::recovered(
            running,
            queued,
            u64::try_from(n).unwrap_or(0),
        ))
    }

    async fn save_app(
        &self,
        tx: &mut Transaction<'_, Any>,
        row: &AppRow,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE apps SET admission = $1, running = $2, holder = $3, epoch = $4, updated_at = $5 WHERE name = $6",
        )
        .bind(serde_json::to_string(&row.admission).expect("admission serialises"))
        .bind(row.admission.running().map(|r| r.id.to_string()))
        .bind(row.holder.clone())
        .bind(to_i64(row.epoch))
        .bind(to_i64(now.as_millis()))
        .bind(row.name.clone())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn set_state_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
        state: RowState,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET state = $1, note = COALESCE($2, note) WHERE id = $3")
            .bind(state.as_str())
            .bind(note)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Is `holder` a live replica by the database's clock?
    async fn is_live(
        &self,
        tx: &mut Transaction<'_, Any>,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM replicas WHERE id = $1 AND seen_until > {}",
            self.backend.now_ms()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder.to_string())
            .fetch_one(&mut **tx)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// Take the app's lease for `me` in this transaction when it is free, ours, or its
    /// holder is gone: a new holder means a new epoch.
    async fn take_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        row: &mut AppRow,
        me: &str,
    ) -> Result<Option<u64>, StoreError> {
        match row.holder.as_deref() {
            Some(h) if h == me => return Ok(Some(row.epoch)),
            Some(h) if self.is_live(tx, h).await? => return Ok(None),
            _ => {}
        }
        row.holder = Some(me.to_string());
        row.epoch += 1;
        Ok(Some(row.epoch))
    }

    /// Submit a deployment: admission, the new row and its first journal line, the
    /// superseded one's state and — when it starts — the app's lease, in one transaction.
    /// `make` builds the deployment from its ordinal (names it).
    pub async fn admit(
        &self,
        req: SubmitRow<'_>,
        me: &str,
        make: impl FnOnce(u64) -> Deployment,
    ) -> Result<Admitted, AdmitError> {
        let mut tx = self.pool.begin().await?;
        let mut row = self.lock_app(&mut tx, req.app, req.now).await?;
        // A push of an image the app deployed before is a repeat delivery.
        let prior_id = match req.source {
            Source::Push { .. } => {
                let found = sqlx::query(
                    "SELECT id FROM deployments WHERE app = $1 AND image_key = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
                )
                .bind(req.app.to_string())
                .bind(req.image_key.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                match found {
                    Some(r) => DeploymentId::new(r.try_get::<String, _>("id")?).ok(),
                    None => None,
                }
            }
            _ => None,
        };
        let deployment = make(row.admission.next_ordinal());
        let id = deployment.id().clone();
        let before = row.admission.clone();
        let decision = row.admission.submit(Submission {
            id: id.clone(),
            image_key: req.image_key.to_string(),
            source: req.source,
            prior: prior_id,
        });
        let replaces_queued = matches!(
            decision,
            Decision::Queue {
                superseded: Some(_),
                ..
            }
        );
        if decision.created().is_some() && !replaces_queued {
            let open =
                sqlx::query("SELECT COUNT(*) AS n FROM deployments WHERE state = $1 OR state = $2")
                    .bind(RowState::Queued.as_str())
                    .bind(RowState::Running.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            let open: i64 = open.try_get("n")?;
            let open = usize::try_from(open).unwrap_or(usize::MAX);
            if open >= req.open_max {
                row.admission = before;
                tx.rollback().await?;
                return Err(AdmitError::Full(open));
            }
        }
        let mut lease = None;
        match &decision {
            Decision::Start { .. } | Decision::Queue { .. } => {
                let start = matches!(decision, Decision::Start { .. });
                let state = if start {
                    RowState::Running
                } else {
                    RowState::Queued
                };
                self.insert_in(
                    &mut tx,
                    &deployment,
                    req.app,
                    req.image,
                    req.image_key,
                    state,
                )
                .await?;
                if let Decision::Queue {
                    superseded: Some(old),
                    ..
                } = &decision
                {
                    let note = format!("superseded by {id}");
                    self.set_state_in(&mut tx, old.as_str(), RowState::Superseded, Some(note))
                        .await?;
                }
                if start {
                    lease = self.take_in(&mut tx, &mut row, me).await?;
                }
                self.save_app(&mut tx, &row, req.now).await?;
            }
            Decision::Existing { .. } | Decision::Conflict { .. } | Decision::Ignored(_) => {}
        }
        tx.commit().await?;
        Ok(Admitted { decision, lease })
    }

    async fn insert_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        d: &Deployment,
        app: &str,
        image: &str,
        image_key: &str,
        state: RowState,
    ) -> Result<(), StoreError> {
        let snapshot = serde_json::to_string(d).expect("deployments serialise");
        let created = JournalLine {
            deployment: d.id().clone(),
            seq: 1,
            at: d.created_at(),
            entry: JournalEntry::Created {
                spec: Box::new(d.spec().clone()),
            },
        };
        sqlx::query(
            "INSERT INTO deployments (id, app, image, image_key, state, phase, note, snapshot, seq, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, 1, $8, $9)",
        )
        .bind(d.id().to_string())
        .bind(app.to_string())
        .bind(image.to_string())
        .bind(image_key.to_string())
        .bind(state.as_str())
        .bind(d.phase_name().as_str())
        .bind(snapshot)
        .bind(to_i64(d.created_at().as_millis()))
        .bind(to_i64(d.updated_at().as_millis()))
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO journal (deployment, seq, at, line) VALUES ($1, $2, $3, $4)")
            .bind(d.id().to_string())
            .bind(1_i64)
            .bind(to_i64(created.at.as_millis()))
            .bind(line_json(&created))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A deployment this replica drives reached `outcome`: free the app, start what is
    /// queued (keeping the lease) or hold it — fenced by the lease.
    pub async fn finish(
        &self,
        fence: &Fence,
        id: &DeploymentId,
        outcome: PhaseName,
        now: Timestamp,
    ) -> Result<Next, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut row = self.lock_app(&mut tx, &fence.app, now).await?;
        if row.holder.as_deref() != Some(fence.holder.as_str()) || row.epoch != fence.epoch {
            tx.rollback().await?;
            return Err(StoreError::Fenced {
                app: fence.app.clone(),
                epoch: fence.epoch,
            });
        }
        let next = row.admission.finished(id, outcome);
        self.after_next(&mut tx, &mut row, &next).await?;
        self.save_app(&mut tx, &row, now).await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Apply what follows a freed app: the next one runs (the lease is kept); idle or
    /// held, the lease is released so any replica may drive the app's next deployment.
    async fn after_next(
        &self,
        tx: &mut Transaction<'_, Any>,
        row: &mut AppRow,
        next: &Next,
    ) -> Result<(), StoreError> {
        match next {
            Next::Start { id } => {
                self.set_state_in(tx, id.as_str(), RowState::Running, None)
                    .await?
            }
            Next::Idle | Next::Held { .. } => row.holder = None,
            Next::Unchanged => {}
        }
        Ok(())
    }

    /// An operator released a held app (see [`Admission::release`]).
    pub async fn release(&self, app: &str, now: Timestamp) -> Result<Next, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut row = self.lock_app(&mut tx, app, now).await?;
        let next = row.admission.release();
        self.after_next(&mut tx, &mut row, &next).await?;
        self.save_app(&mut tx, &row, now).await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Cancel a deployment through the app's queue: a queued one is cancelled here; a
    /// running one is reported so the caller asks its driver to abort.
    pub async fn cancel(
        &self,
        app: &str,
        id: &DeploymentId,
        note: String,
        now: Timestamp,
    ) -> Result<Cancel, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut row = self.lock_app(&mut tx, app, now).await?;
        let outcome = row.admission.cancel(id);
        if let Cancel::Cancelled { id } = &outcome {
            self.set_state_in(&mut tx, id.as_str(), RowState::Cancelled, Some(note))
                .await?;
            self.save_app(&mut tx, &row, now).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The app's admission state (read-only; no lock).
    pub async fn app_row(&self, app: &str) -> Result<Option<AppRow>, StoreError> {
        let row = sqlx::query("SELECT admission, holder, epoch FROM apps WHERE name = $1")
            .bind(app.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("admission")?;
        let epoch: i64 = row.try_get("epoch")?;
        Ok(Some(AppRow {
            name: app.to_string(),
            admission: serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                id: format!("app {app}"),
                reason: format!("admission: {e}"),
            })?,
            holder: row.try_get("holder")?,
            epoch: u64::try_from(epoch).unwrap_or(0),
        }))
    }
}
