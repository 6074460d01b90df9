//! Retention: deployments that ended (`finished`, `superseded`, `cancelled`) more than
//! `[server] retention` ago are deleted with their journals, a bounded batch at a time,
//! by a background task — so the store does not grow without end.

use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::Timestamp;
use sqlx::Row;
use tokio::task::JoinHandle;

use super::{RowState, Store, StoreError, to_i64};
use crate::runner::Clock;

/// Deployments deleted per transaction.
pub const BATCH: i64 = 200;
/// Most batches per pass (what is left waits for the next pass).
pub const BATCHES_PER_PASS: usize = 50;
/// Passes run every `retention / 10`, within these bounds.
const PASS_EVERY_MIN: Duration = Duration::from_secs(1);
const PASS_EVERY_MAX: Duration = Duration::from_secs(3600);

impl Store {
    /// Delete up to `batch` ended deployments last updated before `before`, with their
    /// journal lines, in one transaction. Returns how many were deleted.
    pub async fn prune_ended(&self, before: Timestamp, batch: i64) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM deployments WHERE state IN ($1, $2, $3) AND updated_at < $4 ORDER BY updated_at LIMIT $5",
        )
        .bind(RowState::Finished.as_str())
        .bind(RowState::Superseded.as_str())
        .bind(RowState::Cancelled.as_str())
        .bind(to_i64(before.as_millis()))
        .bind(batch.max(1))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            sqlx::query("DELETE FROM journal WHERE deployment = $1")
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM deployments WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// One pass: batches until fewer than a batch remain or [`BATCHES_PER_PASS`] ran.
    pub async fn prune_pass(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0;
        for _ in 0..BATCHES_PER_PASS {
            let n = self.prune_ended(before, BATCH).await?;
            total += n;
            if n < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }
}

/// Start the background pruning: a pass now and every `retention / 10` (1 s .. 1 h).
/// The runner's clock says what "older" means, like every other time in the store.
pub fn spawn(store: Store, clock: Arc<dyn Clock>, retention: Duration) -> JoinHandle<()> {
    let every = (retention / 10).clamp(PASS_EVERY_MIN, PASS_EVERY_MAX);
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = clock.now();
            let before = Timestamp::from_millis(now.as_millis().saturating_sub(retention_ms));
            match store.prune_pass(before).await {
                Ok(0) => {}
                Ok(n) => {
                    crate::telemetry::pruned(n);
                    tracing::info!(deleted = n, %before, "pruned deployments past the retention");
                }
                Err(e) => tracing::warn!(error = %e, "pruning failed; the next pass retries"),
            }
        }
    })
}
