//! The write path: the operations a caller queues, and the one writer task that commits
//! whatever has queued up in a single transaction (group commit).

use bluegreen_core::journal::JournalLine;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{BATCH_MAX, NewRow, RowState, Turn, line_json, to_i64};

pub(super) enum Op {
    Insert {
        row: Box<NewRow>,
        snapshot: String,
        lines: Vec<JournalLine>,
    },
    Turn(std::sync::Arc<Turn>),
    SetState {
        id: String,
        state: RowState,
        note: Option<String>,
    },
}

pub(super) struct WriteReq {
    pub(super) ops: Vec<Op>,
    pub(super) done: oneshot::Sender<Result<(), String>>,
}

/// The group-commit writer: takes what is queued (up to [`BATCH_MAX`] requests), applies
/// it in one transaction, answers every request with the outcome.
pub(super) async fn writer(pool: AnyPool, mut rx: mpsc::Receiver<WriteReq>) {
    let mut batch: Vec<WriteReq> = Vec::with_capacity(BATCH_MAX);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let result = commit(&pool, &batch).await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, requests = batch.len(), "store write failed");
        }
        for req in batch.drain(..) {
            let _ = req.done.send(result.clone());
        }
    }
}

async fn commit(pool: &AnyPool, batch: &[WriteReq]) -> Result<(), sqlx::Error> {
    if batch.iter().all(|r| r.ops.is_empty()) {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for op in batch.iter().flat_map(|r| r.ops.iter()) {
        match op {
            Op::Insert {
                row,
                snapshot,
                lines,
            } => {
                let d = &row.deployment;
                let seq = lines.last().map(|l| l.seq).unwrap_or(0);
                sqlx::query(
                    "INSERT INTO deployments (id, app, image, image_key, state, phase, note, snapshot, seq, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10)",
                )
                .bind(d.id().to_string())
                .bind(row.app.clone())
                .bind(row.image.clone())
                .bind(row.image_key.clone())
                .bind(row.state.as_str())
                .bind(d.phase_name().as_str())
                .bind(snapshot.clone())
                .bind(to_i64(seq))
                .bind(to_i64(d.created_at().as_millis()))
                .bind(to_i64(d.updated_at().as_millis()))
                .execute(&mut *tx)
                .await?;
                insert_lines(&mut tx, lines).await?;
            }
            Op::Turn(turn) => {
                sqlx::query(
                    "UPDATE deployments SET snapshot = $1, phase = $2, state = $3, seq = $4, updated_at = $5 WHERE id = $6",
                )
                .bind(turn.snapshot.clone())
                .bind(turn.phase.clone())
                .bind(turn.state.as_str())
                .bind(to_i64(turn.seq))
                .bind(to_i64(turn.updated_at.as_millis()))
                .bind(turn.id.to_string())
                .execute(&mut *tx)
                .await?;
                insert_lines(&mut tx, &turn.lines).await?;
            }
            Op::SetState { id, state, note } => {
                sqlx::query("UPDATE deployments SET state = $1, note = $2 WHERE id = $3")
                    .bind(state.as_str())
                    .bind(note.clone())
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await
}

async fn insert_lines(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    lines: &[JournalLine],
) -> Result<(), sqlx::Error> {
    for line in lines {
        sqlx::query("INSERT INTO journal (deployment, seq, at, line) VALUES ($1, $2, $3, $4)")
            .bind(line.deployment.to_string())
            .bind(to_i64(line.seq))
            .bind(to_i64(line.at.as_millis()))
            .bind(line_json(line))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
