//! Crash and restart: the runner killed mid-shift (its whole runtime dropped, as a
//! `kill -9` would) resumes from the same SQLite file without a second green, with a
//! journal that shows the restart and still replays; a graceful stop resumes too.

mod svc_util;

use std::sync::Arc;

use bluegreen_core::journal::{JournalEntry, replay};
use bluegreen_core::{Input, PhaseName};
use bluegreen_svc::devcloud::DevCloud;
use bluegreen_svc::runner::{Limits, Runner, Source, Submit};
use bluegreen_svc::store::{RowState, Store};
use svc_util::{Harness, TempDir, app_toml, clock, config, stored_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_runner_killed_mid_shift_resumes_from_the_same_sqlite_file_without_a_second_green() {
    let dir = TempDir::new("crash");
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "30s""#);
    let config = config(&dir, &apps);
    // The world outlives the process: only the runner dies.
    let cloud = Arc::new(DevCloud::new(&config.seed_drafts()).expect("dev cloud"));
    let url = dir.store_url();

    let first = runtime();
    let id = first.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        let runner = Runner::start(
            cloud.clone(),
            store.clone(),
            clock(),
            config.templates(),
            Limits::default(),
        )
        .await
        .expect("runner");
        let submitted = runner
            .submit(Submit {
                app: "web".into(),
                image: "web:v2".into(),
                source: Source::Api { supersede: false },
            })
            .await
            .expect("submitted");
        let id = submitted.id().to_string();
        let s = stored_until(&store, &id, "the canary step", |s| {
            s.deployment.phase_name() == PhaseName::Shift
        })
        .await;
        assert_eq!(
            s.deployment.status().weights.green,
            10,
            "mid-shift: green has the canary weight"
        );
        id
    });
    // kill -9: every task of the first runner (drivers, store writer, commands in
    // flight) stops wherever it is, with no chance to persist anything more.
    first.shutdown_background();
    let before = cloud.counts("web");
    assert_eq!(before.ensure_green, 1);

    let second = runtime();
    second.block_on(async {
        let store = Store::connect(&url).await.expect("store reopens");
        let resumed = store
            .get(&id)
            .await
            .unwrap()
            .expect("the deployment survived");
        assert_eq!(resumed.state, RowState::Running);
        let runner = Runner::start(
            cloud.clone(),
            store.clone(),
            clock(),
            config.templates(),
            Limits::default(),
        )
        .await
        .expect("runner restarts");
        let done = stored_until(&store, &id, "the resumed deployment to finish", |s| {
            s.state == RowState::Finished
        })
        .await;
        assert_eq!(
            done.deployment.phase_name(),
            PhaseName::Completed,
            "{:?}",
            done.deployment.status()
        );

        // No second green: one task-definition revision, one EnsureGreen, blue empty.
        let counts = cloud.counts("web");
        assert_eq!(counts.revisions_registered, 1, "{counts:?}");
        assert_eq!(counts.ensure_green, 1, "{counts:?}");
        let tgs = &config.app("web").unwrap().draft.target_groups;
        assert_eq!(
            cloud.tasks_behind("web", &tgs[0]),
            0,
            "blue was scaled to zero"
        );
        let (a, b) = cloud.weights("web").unwrap();
        assert!(a == 0 && b > 0, "green serves everything: {a}/{b}");

        // The journal shows the restart and still re-drives the machine identically.
        let lines = store.journal(&id).await.unwrap();
        let restarts = lines
            .iter()
            .filter(|l| {
                matches!(
                    &l.entry,
                    JournalEntry::Input {
                        input: Input::Restarted
                    }
                )
            })
            .count();
        assert_eq!(restarts, 1, "exactly one restart in the journal");
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(
                l.seq,
                i as u64 + 1,
                "journal sequence numbers are contiguous"
            );
        }
        let report = replay(&lines).expect("replayable");
        assert_eq!(report.divergence, None);
        assert_eq!(report.final_phase, PhaseName::Completed);
        runner.shutdown().await;
    });
}

#[tokio::test]
async fn a_graceful_stop_persists_and_the_next_start_resumes() {
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "30s""#);
    let mut h = Harness::start(&apps).await;
    let id = h.deploy("web", "web:v2").await;
    h.phase_is(&id, "shift").await;
    h.stop().await;
    // Stopped: the deployment is still open in the store, waiting for the next start.
    let store = Store::connect(&h.dir.store_url()).await.unwrap();
    assert_eq!(
        store.get(&id).await.unwrap().unwrap().state,
        RowState::Running
    );
    drop(store);
    let Harness {
        dir, config, cloud, ..
    } = h;
    let mut h = Harness::start_with(dir, config, cloud).await;
    let done = h.finished(&id).await;
    assert_eq!(done["phase"], "completed", "{done}");
    let transitions = done["transitions"].as_array().unwrap();
    assert!(transitions.iter().any(|t| t["to"] == "bake"));
    assert_eq!(h.cloud.counts("web").ensure_green, 1);
    h.stop().await;
}
