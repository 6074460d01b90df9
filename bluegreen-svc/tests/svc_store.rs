//! The store: one code path for SQLite and PostgreSQL — every test here runs on both
//! (a fresh SQLite file and a fresh database on the machine's PostgreSQL server; under
//! `CI=true` a missing server fails the run).

mod pg;

use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::plan::example_spec;
use bluegreen_core::{Deployment, DeploymentId, Input, Output, Timestamp};
use bluegreen_svc::store::{NewRow, RowState, Store, Turn};

fn line(id: &DeploymentId, seq: u64, entry: JournalEntry) -> JournalLine {
    JournalLine {
        deployment: id.clone(),
        seq,
        at: Timestamp::from_millis(1_800_000_000_000 + seq),
        entry,
    }
}

/// Insert, persist a turn, read back, list, find by image, open rows, state changes.
async fn round_trip(store: &Store, tag: &str) {
    let id = DeploymentId::new(format!("web-{tag}-1")).unwrap();
    let now = Timestamp::from_millis(1_800_000_000_000);
    let mut d = Deployment::new(id.clone(), example_spec(), now);
    let created = line(
        &id,
        1,
        JournalEntry::Created {
            spec: Box::new(d.spec().clone()),
        },
    );
    let app = format!("web-{tag}");
    store
        .insert(
            NewRow {
                deployment: d.clone(),
                app: app.clone(),
                image: "web@sha256:ab".into(),
                image_key: "sha256:ab".into(),
                state: RowState::Running,
            },
            vec![created],
        )
        .await
        .unwrap();
    let _ = d.handle(now, Input::Wake);
    let out = d.poll(now);
    let lines = vec![
        line(&id, 2, JournalEntry::Input { input: Input::Wake }),
        line(&id, 3, JournalEntry::Output { output: out }),
    ];
    store
        .persist(
            std::sync::Arc::new(Turn {
                id: id.clone(),
                lines,
                snapshot: serde_json::to_string(&d).unwrap(),
                phase: d.phase_name().as_str().into(),
                state: RowState::Running,
                seq: 3,
                updated_at: now,
            }),
            None,
        )
        .await
        .unwrap();
    let back = store.get(id.as_str()).await.unwrap().expect("stored");
    assert_eq!(back.deployment, d, "the snapshot round-trips exactly");
    assert_eq!(back.seq, 3);
    let journal = store.journal(id.as_str()).await.unwrap();
    assert_eq!(journal.len(), 3);
    assert!(matches!(
        journal[2].entry,
        JournalEntry::Output {
            output: Output::Command(_)
        }
    ));
    assert_eq!(
        store.find(&app, "sha256:ab").await.unwrap().unwrap().id(),
        &id
    );
    assert!(store.find(&app, "sha256:cd").await.unwrap().is_none());
    assert_eq!(store.count(&app).await.unwrap(), 1);
    assert!(store.open().await.unwrap().iter().any(|s| s.id() == &id));
    store
        .set_state(&id, RowState::Finished, None)
        .await
        .unwrap();
    assert!(!store.open().await.unwrap().iter().any(|s| s.id() == &id));
    assert_eq!(store.list(Some(&app), 10).await.unwrap().len(), 1);
    // A duplicate insert fails as a whole and leaves the row as it was.
    let again = store
        .insert(
            NewRow {
                deployment: d.clone(),
                app: app.clone(),
                image: "x".into(),
                image_key: "x".into(),
                state: RowState::Queued,
            },
            vec![],
        )
        .await;
    assert!(again.is_err());
    assert_eq!(
        store.get(id.as_str()).await.unwrap().unwrap().image,
        "web@sha256:ab"
    );
}

/// A fresh temporary directory for SQLite files.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("bluegreen-store-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn stores_round_trip_deployments_and_journals() {
    let dir = temp_dir("round");
    for url in pg::store_urls("round", &dir).await {
        let store = Store::connect(&url).await.unwrap();
        round_trip(&store, "rt").await;
        store.close().await;
        // Reopening finds everything (and the schema creation is idempotent).
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.count("web-rt").await.unwrap(), 1, "{url}");
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unsupported_store_urls_are_refused() {
    assert!(Store::connect("mysql://x").await.is_err());
}
