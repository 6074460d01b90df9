//! Crash and restart: the real runner on the simulated world, killed mid-shift (its whole
//! runtime dropped, as a `kill -9` would), resumes from the same SQLite file without a
//! second green, with a journal that shows the restart and still replays; a graceful
//! stop resumes too.
#![cfg(feature = "sim")]

mod svc_util;

use bluegreen_core::journal::{JournalEntry, replay};
use bluegreen_core::{Input, PhaseName};
use bluegreen_sim::SimCloud;
use bluegreen_sim::world::Forward;
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

/// What the simulated world says about app 0: (task-definition revisions running `image`,
/// blue's (desired, tasks), green's (desired, tasks), production weight of blue, of green).
fn world_summary(cloud: &SimCloud, image: &str) -> (usize, (u32, usize), (u32, usize), u32, u32) {
    cloud.with_world(|w| {
        let app = &w.apps[0];
        let revisions = w.ecs.task_defs.iter().filter(|t| t.image == image).count();
        let svc = |slot: usize| {
            let s = &w.ecs.services[app.services[slot] as usize];
            (s.desired, s.tasks.len())
        };
        let f = &w.elb.forwards[app.prod as usize];
        let weight = |slot: usize| Forward::weight_of(&f.config, app.target_groups[slot]);
        (revisions, svc(0), svc(1), weight(0), weight(1))
    })
}

#[test]
fn the_runner_killed_mid_shift_on_the_simulated_world_resumes_from_sqlite_without_a_second_green() {
    let dir = TempDir::new("crash");
    let apps = app_toml("web", "").replace(r#"wait = "5s""#, r#"wait = "30s""#);
    let config = config(&dir, &apps);
    // One clock and one world for both runs: the world outlives the "process".
    let clock = clock();
    let cloud = bluegreen_svc::cloud::sim::build(&config, clock.clone()).expect("simulated world");
    let url = dir.store_url();

    let first = runtime();
    let id = first.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        let runner = Runner::start(
            cloud.clone(),
            store.clone(),
            clock.clone(),
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
        let id = submitted.id().expect("a deployment").to_string();
        let s = stored_until(&store, &id, "the canary step", |s| {
            s.deployment.phase_name() == PhaseName::Shift
                && s.deployment.status().weights.green == 10
        })
        .await;
        assert_eq!(s.state, RowState::Running);
        id
    });
    // kill -9: every task of the first runner (drivers, store writer, commands in
    // flight) stops wherever it is, with no chance to persist anything more.
    first.shutdown_background();
    let (revisions, _, green, blue_w, green_w) = world_summary(&cloud, "web:v2");
    assert_eq!(revisions, 1);
    assert!(
        green.0 > 0 && blue_w > 0 && green_w > 0,
        "killed mid-shift: {green:?} {blue_w}/{green_w}"
    );

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
            clock.clone(),
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
            done.deployment.history()
        );

        // No second green: one task-definition revision for the image, blue empty,
        // green whole and serving everything.
        let (revisions, blue, green, blue_w, green_w) = world_summary(&cloud, "web:v2");
        assert_eq!(revisions, 1, "one revision for one image");
        assert_eq!(blue, (0, 0), "blue scaled to zero");
        assert_eq!(green, (3, 3), "green at full size, no extra tasks");
        assert_eq!((blue_w, green_w > 0), (0, true));

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

#[tokio::test]
async fn a_second_runner_on_the_same_store_drives_nothing_the_first_holds_until_it_stops() {
    let dir = TempDir::new("lease");
    let config = config(&dir, &app_toml("web", ""));
    let cloud = std::sync::Arc::new(
        bluegreen_svc::cloud::dev::DevCloud::new(&config.seed_drafts()).unwrap(),
    );
    let store = Store::connect(&dir.store_url()).await.unwrap();
    let limits = config.runner.limits();
    let first = Runner::start(
        cloud.clone(),
        store.clone(),
        clock(),
        config.templates(),
        limits.clone(),
    )
    .await
    .expect("the first runner starts");
    let second = Runner::start(
        cloud.clone(),
        store.clone(),
        clock(),
        config.templates(),
        limits,
    )
    .await
    .expect("a second runner starts beside it");
    assert_ne!(first.replica_id(), second.replica_id());
    // The second replica takes the request; the app's lease goes to it (it was free).
    let submitted = second
        .submit(Submit {
            app: "web".into(),
            image: "web:v2".into(),
            source: Source::Api { supersede: false },
        })
        .await
        .unwrap();
    let id = submitted.id().expect("a deployment").clone();
    let row = store.app_row("web").await.unwrap().unwrap();
    assert_eq!(row.holder.as_deref(), Some(second.replica_id()));
    // The first replica, scanning, never drives it while the second is alive.
    svc_util::wait_for(
        "the deployment to finish",
        std::time::Duration::from_secs(30),
        || async {
            store
                .get(id.as_str())
                .await
                .unwrap()
                .filter(|s| s.state == RowState::Finished)
        },
    )
    .await;
    assert_eq!(first.running(), 0);
    assert_eq!(
        cloud.counts("web").ensure_green,
        1,
        "one green, by one replica"
    );
    second.shutdown().await;
    first.shutdown().await;
}
