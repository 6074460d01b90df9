//! The library face (`bluegreen_svc::embed`) on the in-process ideal cloud: a deployment
//! driven to completion with progress reported; a snapshot that resumes; cancellation
//! that rolls back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bluegreen_core::{Notice, PhaseName, ReasonKind};
use bluegreen_svc::cloud::dev::DevCloud;
use bluegreen_svc::config::Config;
use bluegreen_svc::embed::Deploy;
use bluegreen_svc::runner::ScaledClock;

fn setup() -> (Config, DevCloud) {
    let config = Config::load(None, &Default::default()).expect("the built-in example");
    let cloud = DevCloud::new(&config.seed_drafts()).expect("the ideal cloud");
    (config, cloud)
}

/// A thousand times real time: the example's waits (canary, bake, drain) take ~0.2 s.
fn fast() -> Arc<ScaledClock> {
    Arc::new(ScaledClock::starting_now(1_000))
}

#[tokio::test]
async fn a_deployment_runs_to_completion_reporting_each_transition() {
    let (config, cloud) = setup();
    let spec = config.app("web").unwrap().spec("web:v2").unwrap();
    let transitions = AtomicUsize::new(0);
    let outcome = Deploy::new(cloud, spec)
        .clock(fast())
        .on_progress(|p| {
            if matches!(p.notice, Some(Notice::Transition(_))) {
                transitions.fetch_add(1, Ordering::Relaxed);
            }
        })
        .run()
        .await
        .unwrap();
    assert!(outcome.succeeded(), "{:?}", outcome.reason);
    assert_eq!(outcome.status.weights.green, 100);
    // preflight → create-green → deploy → health-check → shift → bake → drain → completed
    assert!(transitions.load(Ordering::Relaxed) >= 7);
}

#[tokio::test]
async fn a_snapshot_is_written_every_turn_and_a_finished_one_resumes_to_its_outcome() {
    let (config, cloud) = setup();
    let spec = config.app("web").unwrap().spec("web:v2").unwrap();
    let dir = std::env::temp_dir().join(format!("bluegreen-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("web.json");
    let _ = std::fs::remove_file(&path);
    let first = Deploy::new(cloud, spec.clone())
        .clock(fast())
        .snapshot(&path)
        .run()
        .await
        .unwrap();
    assert!(first.succeeded());
    assert!(path.exists(), "the snapshot is on disk");
    // A second run finds the snapshot and resumes that deployment (already over) instead
    // of starting another one.
    let (_, cloud) = setup();
    let again = Deploy::new(cloud, spec)
        .clock(fast())
        .snapshot(&path)
        .run()
        .await
        .unwrap();
    assert_eq!(again.deployment.id(), first.deployment.id());
    assert_eq!(again.phase, PhaseName::Completed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cancelling_aborts_and_the_run_returns_with_the_rollback_done() {
    let (config, cloud) = setup();
    let spec = config.app("web").unwrap().spec("web:v2").unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let sent = std::sync::Mutex::new(Some(tx));
    let outcome = Deploy::new(cloud, spec)
        .clock(fast())
        // Cancel once green is being health-checked.
        .on_progress(move |p| {
            if p.status.phase == PhaseName::HealthCheck
                && let Some(tx) = sent.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
        })
        .cancel_on(async move {
            let _ = rx.await;
        })
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.phase, PhaseName::RolledBack, "{:?}", outcome.reason);
    let reason = outcome.reason.unwrap();
    assert_eq!(reason.kind, ReasonKind::Aborted);
    assert_eq!(reason.detail, "cancelled by the embedding program");
}

/// Persistence to a store of the program's own (here a string in memory; a database row
/// or an S3 object the same way): every turn is saved there, and a run given a store that
/// holds a deployment resumes it instead of starting another.
#[tokio::test]
async fn a_store_of_the_programs_own_keeps_every_turn_and_resumes() {
    use bluegreen_svc::embed::SnapshotStore;
    #[derive(Clone, Default)]
    struct Memory(Arc<std::sync::Mutex<(Option<String>, usize)>>);
    impl SnapshotStore for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn load(&self) -> Result<Option<String>, String> {
            Ok(self.0.lock().unwrap().0.clone())
        }
        fn save(&self, json: &str) -> Result<(), String> {
            let mut m = self.0.lock().unwrap();
            m.0 = Some(json.to_string());
            m.1 += 1;
            Ok(())
        }
    }
    let (config, cloud) = setup();
    let spec = config.app("web").unwrap().spec("web:v2").unwrap();
    let store = Memory::default();
    let first = Deploy::new(cloud, spec.clone())
        .clock(fast())
        .persist(store.clone())
        .run()
        .await
        .unwrap();
    assert!(first.succeeded());
    let saves = store.0.lock().unwrap().1;
    assert!(saves > 10, "saved after every turn ({saves})");
    let (_, cloud) = setup();
    let again = Deploy::new(cloud, spec)
        .clock(fast())
        .persist(store.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(again.deployment.id(), first.deployment.id());
    // A store that cannot be read stops the run with a typed error naming it.
    struct Broken;
    impl SnapshotStore for Broken {
        fn describe(&self) -> String {
            "broken-store".into()
        }
        fn load(&self) -> Result<Option<String>, String> {
            Err("connection refused".into())
        }
        fn save(&self, _: &str) -> Result<(), String> {
            Err("connection refused".into())
        }
    }
    let (config, cloud) = setup();
    let spec = config.app("web").unwrap().spec("web:v2").unwrap();
    let err = Deploy::new(cloud, spec)
        .clock(fast())
        .persist(Broken)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "snapshot broken-store: connection refused");
}
