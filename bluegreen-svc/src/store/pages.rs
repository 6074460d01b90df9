//! Paged reads for the API: the deployment list by keyset (a cursor, not an offset, so a
//! page is one index range whatever the table's size) and a journal a page at a time
//! (the journal endpoint streams these instead of building a whole journal in memory).

use sqlx::Row;

use super::{COLUMNS, LIST_MAX, Store, StoreError, Stored, to_i64};

/// Where a page of the deployment list ends: `<created_at ms>:<id>` in the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// `None` when `text` is not a cursor this service made.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once(':')?;
        let valid_id = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let at: i64 = at.parse().ok().filter(|v| *v >= 0)?;
        valid_id.then(|| Cursor {
            created_at: at,
            id: id.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.created_at, self.id)
    }
}

/// Most journal lines one page holds.
pub const JOURNAL_PAGE_MAX: i64 = 10_000;

impl Store {
    /// Deployments most recent first, after `after`, at most `limit` (capped at
    /// [`LIST_MAX`]), and the cursor of the next page when there is one.
    pub async fn list_page(
        &self,
        app: Option<&str>,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<(Vec<Stored>, Option<Cursor>), StoreError> {
        let limit = limit.clamp(1, LIST_MAX);
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if app.is_some() {
            conditions.push(format!("app = ${}", next()));
        }
        if after.is_some() {
            let (a, b, c) = (next(), next(), next());
            conditions.push(format!(
                "(created_at < ${a} OR (created_at = ${b} AND id < ${c}))"
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS}, created_at FROM deployments {filter} ORDER BY created_at DESC, id DESC LIMIT ${}",
            next()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(app) = app {
            query = query.bind(app.to_string());
        }
        if let Some(c) = after {
            query = query
                .bind(c.created_at)
                .bind(c.created_at)
                .bind(c.id.clone());
        }
        // One more than asked: whether a next page exists, without a COUNT.
        let rows = query.bind(limit + 1).fetch_all(&self.pool).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        let rows = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(usize::MAX))];
        let cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(Cursor {
                created_at: last.try_get("created_at")?,
                id: last.try_get("id")?,
            }),
            _ => None,
        };
        Ok((Self::decode_all(rows), cursor))
    }

    /// A deployment's journal lines with `seq > after`, in order, at most `limit` (capped
    /// at [`JOURNAL_PAGE_MAX`]): `(seq, the line's JSON text as stored)`.
    pub async fn journal_page(
        &self,
        id: &str,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, line FROM journal WHERE deployment = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.to_string())
        .bind(to_i64(after))
        // One over the page size: the caller asks for one more to see whether more follow.
        .bind(limit.clamp(1, JOURNAL_PAGE_MAX + 1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                Ok((u64::try_from(seq).unwrap_or(0), r.try_get("line")?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            created_at: 1_795_316_645_678,
            id: "web-20261122T030405-7".into(),
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in ["", "12", ":web", "-1:web", "12:we b", "x:web", "12:"] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
