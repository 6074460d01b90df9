//! Replicas and app leases (DESIGN §5 "Several replicas").
//!
//! Each replica has a random id and a row in `replicas` whose `seen_until` it pushes
//! forward every third of the TTL — by **the database's clock**, so replicas whose clocks
//! disagree still agree on who is alive. An app's lease is its row's `holder` (a replica
//! id) and `epoch` (grows on every change of holder); the lease lives while its holder's
//! row is fresh. One heartbeat renews every lease a replica holds: the cost does not grow
//! with the number of apps, and renewal never touches (so never locks) an app's row.

use sqlx::Row;

use super::{Store, StoreError, to_i64};

/// An app with a running deployment whose lease is this replica's or free (its holder
/// gone or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub app: String,
    /// The running deployment (by the app's admission state).
    pub running: String,
    pub holder: Option<String>,
    pub epoch: u64,
    /// The holder is this replica.
    pub mine: bool,
}

impl Store {
    /// Mark replica `me` alive for `ttl_ms` more by the database's clock.
    pub async fn heartbeat(
        &self,
        me: &str,
        ttl_ms: u64,
        started_at_ms: u64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO replicas (id, seen_until, started_at) VALUES ($1, {now} + $2, $3)
             ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until",
            now = self.backend.now_ms()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me.to_string())
            .bind(to_i64(ttl_ms))
            .bind(to_i64(started_at_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live replicas' ids, sorted.
    pub async fn live_replicas(&self) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT id FROM replicas WHERE seen_until > {} ORDER BY id",
            self.backend.now_ms()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }

    /// Apps with a running deployment that `me` holds or may take (free, or held by a
    /// replica that is gone).
    pub async fn claims(&self, me: &str) -> Result<Vec<Claim>, StoreError> {
        let sql = format!(
            "SELECT a.name, a.running, a.holder, a.epoch FROM apps a
             LEFT JOIN replicas r ON r.id = a.holder AND r.seen_until > {now}
             WHERE a.running IS NOT NULL AND (a.holder = $1 OR r.id IS NULL)
             ORDER BY a.name",
            now = self.backend.now_ms()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let holder: Option<String> = r.try_get("holder")?;
                let epoch: i64 = r.try_get("epoch")?;
                Ok(Claim {
                    app: r.try_get("name")?,
                    running: r.try_get("running")?,
                    mine: holder.as_deref() == Some(me),
                    holder,
                    epoch: u64::try_from(epoch).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The apps `me` holds, with their epochs.
    pub async fn held(&self, me: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT name, epoch FROM apps WHERE holder = $1 ORDER BY name")
            .bind(me.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let epoch: i64 = r.try_get("epoch")?;
                Ok((r.try_get("name")?, u64::try_from(epoch).unwrap_or(0)))
            })
            .collect()
    }

    /// Take `app`'s lease for `me` when it has a running deployment and its holder is
    /// none or gone. The new epoch, or `None` when another live replica holds it.
    pub async fn take(&self, app: &str, me: &str) -> Result<Option<u64>, StoreError> {
        let sql = format!(
            "UPDATE apps SET holder = $1, epoch = epoch + 1
             WHERE name = $2 AND running IS NOT NULL AND (holder IS NULL OR (holder <> $1 AND NOT EXISTS
                 (SELECT 1 FROM replicas r WHERE r.id = apps.holder AND r.seen_until > {now})))
             RETURNING epoch",
            now = self.backend.now_ms()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me.to_string())
            .bind(app.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                let epoch: i64 = r.try_get("epoch")?;
                Ok(Some(u64::try_from(epoch).unwrap_or(0)))
            }
            None => Ok(None),
        }
    }

    /// A clean stop: give up every lease `me` holds and its replica row, so the other
    /// replicas take its apps at their next scan instead of after the TTL.
    pub async fn leave(&self, me: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE apps SET holder = NULL WHERE holder = $1")
            .bind(me.to_string())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(me.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Is this connection to the database encrypted? (PostgreSQL; SQLite has none.)
    pub async fn tls_in_use(&self) -> Result<bool, StoreError> {
        if self.backend == super::Backend::Sqlite {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT CAST(COALESCE(ssl, false) AS INTEGER) AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .fetch_one(&self.pool)
        .await?;
        let ssl: i32 = row.try_get("ssl")?;
        Ok(ssl == 1)
    }

    /// Does the store answer? (`/readyz`)
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
