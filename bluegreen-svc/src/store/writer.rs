//! The write path: the operations a caller queues, and the one writer task that commits
//! whatever has queued up in a single transaction (group commit).

use bluegreen_core::journal::JournalLine;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{BATCH_MAX, Fence, NewRow, RowState, Turn, line_json, to_i64};

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
    /// Commit `ops` only while this lease holds (checked in the same transaction).
    pub(super) fence: Option<Fence>,
    pub(super) ops: Vec<Op>,
    pub(super) done: oneshot::Sender<Result<(), WriteError>>,
}

/// Why a request's writes did not commit.
#[derive(Clone, Debug)]
pub(super) enum WriteError {
    /// Its lease epoch is stale: nothing of it was written (the rest of the batch was).
    Fenced { app: String, epoch: u64 },
    /// The transaction failed: nothing of the batch was written.
    Db(String),
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
        match commit(&pool, &batch).await {
            Ok(fenced) => {
                for (i, req) in batch.drain(..).enumerate() {
                    let answer = match (&req.fence, fenced.get(i).copied().unwrap_or(false)) {
                        (Some(f), true) => Err(WriteError::Fenced {
                            app: f.app.clone(),
                            epoch: f.epoch,
                        }),
                        _ => Ok(()),
                    };
                    let _ = req.done.send(answer);
                }
            }
            Err(e) => {
                let e = super::redact_text(&e.to_string());
                tracing::error!(error = %e, requests = batch.len(), "store write failed");
                for req in batch.drain(..) {
                    let _ = req.done.send(Err(WriteError::Db(e.clone())));
                }
            }
        }
    }
}

/// Commit the batch in one transaction; returns, per request, whether its fence failed
/// (its writes were left out).
async fn commit(pool: &AnyPool, batch: &[WriteReq]) -> Result<Vec<bool>, sqlx::Error> {
    let mut fenced = vec![false; batch.len()];
    if batch.iter().all(|r| r.ops.is_empty()) {
        return Ok(fenced);
    }
    let mut tx = pool.begin().await?;
    // Fences first, in app order (two replicas' batches lock app rows in the same order:
    // no deadlock). The check is an UPDATE of the app's row, so in PostgreSQL it also
    // locks that row until this transaction commits: a takeover (which updates the row)
    // waits for these writes and then reads them, never the state before them.
    let mut fences: Vec<(usize, &Fence)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.fence.as_ref().map(|f| (i, f)))
        .collect();
    fences.sort_by(|a, b| (&a.1.app, a.1.epoch).cmp(&(&b.1.app, b.1.epoch)));
    let mut checked: Option<(&Fence, bool)> = None;
    for (i, f) in fences {
        let held = match checked {
            Some((g, held)) if g == f => held,
            _ => {
                let n = sqlx::query(
                    "UPDATE apps SET epoch = epoch WHERE name = $1 AND holder = $2 AND epoch = $3",
                )
                .bind(f.app.clone())
                .bind(f.holder.clone())
                .bind(to_i64(f.epoch))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                n == 1
            }
        };
        checked = Some((f, held));
        fenced[i] = !held;
    }
    for op in batch
        .iter()
        .zip(&fenced)
        .filter(|(_, fenced)| !**fenced)
        .flat_map(|(r, _)| r.ops.iter())
    {
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
                // `seq <= $4`: a turn re-sent after a commit whose answer was lost is a
                // no-op, never a step back.
                sqlx::query(
                    "UPDATE deployments SET snapshot = $1, phase = $2, state = $3, seq = $4, updated_at = $5 WHERE id = $6 AND seq <= $4",
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
    tx.commit().await?;
    Ok(fenced)
}

async fn insert_lines(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    lines: &[JournalLine],
) -> Result<(), sqlx::Error> {
    for line in lines {
        // A line already there (a retried commit that had landed) stays as it was.
        sqlx::query("INSERT INTO journal (deployment, seq, at, line) VALUES ($1, $2, $3, $4) ON CONFLICT (deployment, seq) DO NOTHING")
            .bind(line.deployment.to_string())
            .bind(to_i64(line.seq))
            .bind(to_i64(line.at.as_millis()))
            .bind(line_json(line))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
