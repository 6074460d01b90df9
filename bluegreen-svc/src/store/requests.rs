//! Operator requests routed between replicas: the replica that takes `promote`, `abort`,
//! `pause` or `resume` for a deployment another replica drives posts it here; the driving
//! replica claims it at its next scan, hands it to the machine and writes the answer,
//! which the posting replica is waiting for.

use bluegreen_core::{AlarmEvent, Input, OperatorRequest, Refused, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, to_i64};

/// What is routed to a deployment's driver: an operator's request, or an alarm event
/// (`POST /v1/webhooks/cloudwatch`). Untagged on the wire, so rows written before alarm
/// events existed (`{"request": "promote"}`) still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Signal {
    Operator(OperatorRequest),
    Alarm(AlarmEvent),
}

impl Signal {
    pub fn into_input(self) -> Input {
        match self {
            Signal::Operator(r) => Input::Operator(r),
            Signal::Alarm(e) => Input::Alarm(e),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Signal::Operator(r) => r.name(),
            Signal::Alarm(_) => "alarm",
        }
    }
}

/// A request waiting for the replica that drives its deployment.
#[derive(Clone, Debug)]
pub struct PostedRequest {
    pub id: String,
    pub deployment: String,
    pub request: Signal,
}

/// Most unclaimed requests one scan reads.
const PENDING_MAX: i64 = 256;

impl Store {
    pub async fn post_request(
        &self,
        id: &str,
        deployment: &str,
        request: &Signal,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO requests (id, deployment, request, created_at, claimed_by, answer) VALUES ($1, $2, $3, $4, NULL, NULL)",
        )
        .bind(id.to_string())
        .bind(deployment.to_string())
        .bind(serde_json::to_string(request).expect("requests serialise"))
        .bind(to_i64(now.as_millis()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Unclaimed requests, oldest first.
    pub async fn pending_requests(&self) -> Result<Vec<PostedRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, deployment, request FROM requests WHERE claimed_by IS NULL ORDER BY created_at, id LIMIT $1",
        )
        .bind(PENDING_MAX)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text: String = r.try_get("request")?;
            let id: String = r.try_get("id")?;
            match serde_json::from_str(&text) {
                Ok(request) => out.push(PostedRequest {
                    id,
                    deployment: r.try_get("deployment")?,
                    request,
                }),
                Err(e) => {
                    tracing::error!(%id, error = %e, "skipping an unreadable operator request")
                }
            }
        }
        Ok(out)
    }

    /// Claim a request for `me`; `false` when another replica (or a withdrawal) was first.
    pub async fn claim_request(&self, id: &str, me: &str) -> Result<bool, StoreError> {
        let n =
            sqlx::query("UPDATE requests SET claimed_by = $1 WHERE id = $2 AND claimed_by IS NULL")
                .bind(me.to_string())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    pub async fn answer_request(
        &self,
        id: &str,
        answer: &Result<(), Refused>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET answer = $1 WHERE id = $2")
            .bind(serde_json::to_string(answer).expect("answers serialise"))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The answer, once written.
    pub async fn request_answer(
        &self,
        id: &str,
    ) -> Result<Option<Result<(), Refused>>, StoreError> {
        let row = sqlx::query("SELECT answer FROM requests WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: Option<String> = row.try_get("answer")?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Withdraw a request nobody claimed yet (its poster gave up waiting); `false` when it
    /// was claimed (it will be applied: wait for its answer).
    pub async fn withdraw_request(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM requests WHERE id = $1 AND claimed_by IS NULL")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Forget answered or abandoned requests older than `before`.
    pub async fn prune_requests(&self, before: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM requests WHERE created_at < $1")
            .bind(to_i64(before.as_millis()))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}
