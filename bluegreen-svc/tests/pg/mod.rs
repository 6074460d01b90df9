//! A scratch PostgreSQL database per test on the machine's server (127.0.0.1:5432,
//! trust auth; `BLUEGREEN_TEST_POSTGRES_ADMIN` overrides the admin URL). Missing server:
//! the test is skipped with a message — except under `CI=true`, where it fails.
#![allow(dead_code)]

use sqlx::Connection;

/// Where to create databases.
pub fn admin_url() -> String {
    std::env::var("BLUEGREEN_TEST_POSTGRES_ADMIN")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// Replace the database name of `url`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A new, empty database named after `tag` (dropped first if a previous run left it).
/// `None` (skip) when no server answers and CI is not set.
pub async fn fresh_database(tag: &str) -> Option<String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name: String = format!("bg_{tag}_{}_{n}", std::process::id())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("PostgreSQL at {admin} does not answer ({e})");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{msg}; CI=true: a missing database is a failure, not a skip");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop a stale scratch database");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a scratch database");
    let _ = conn.close().await;
    Some(with_database(&admin, &name))
}

/// Every store URL a store test runs on: a fresh SQLite file and, when the server
/// answers, a fresh PostgreSQL database.
pub async fn store_urls(tag: &str, dir: &std::path::Path) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.join(format!("{tag}.db")).display()
    )];
    if let Some(pg) = fresh_database(tag).await {
        urls.push(pg);
    }
    urls
}
