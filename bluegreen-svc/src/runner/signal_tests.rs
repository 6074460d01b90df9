//! A signal that meets a deployment which stopped being driven between the read that
//! found it running and the hand-over (`Runner::signal` → no driver → `route` → no
//! replica answers → `finished_meanwhile`): refused with the state it ended in, never
//! reported as "not driven right now" — and a deployment the store still calls running
//! is the one case that is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::{OperatorRequest, PhaseName};

use super::clock::SystemClock;
use super::{OperateError, Runner, Source, Submit, Submitted};
use crate::cloud::dev::DevCloud;
use crate::config::{Config, EXAMPLE_TOML, Origin};
use crate::store::{RowState, Signal, Store};

/// A directory of its own for the test's SQLite store, removed at the end.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "bluegreen-{tag}-{}-{:x}",
            std::process::id(),
            super::random_u64()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_a_deployment_that_ended_meanwhile_is_refused_with_its_state() {
    let dir = Dir::new("meanwhile");
    let url = format!("sqlite://{}", dir.0.join("bluegreen.db").display());
    let config = Config::parse(EXAMPLE_TOML, Origin::BuiltIn, &BTreeMap::new()).expect("config");
    let mut limits = config.runner_limits();
    // Nobody will answer the routed request: keep the bounded wait short.
    limits.request_wait = Duration::from_millis(200);
    let store = Store::connect(&url).await.expect("store");
    let cloud = DevCloud::new(&config.seed_drafts()).expect("cloud");
    let runner = Runner::start(
        cloud,
        store.clone(),
        Arc::new(SystemClock),
        config.templates(),
        limits,
    )
    .await
    .expect("runner");

    // One deployment running (driven here), one queued behind it, then cancelled.
    let submit = |image: &str, source: Source| {
        runner.submit(Submit {
            app: "web".into(),
            image: image.into(),
            source,
        })
    };
    let running = match submit("web:v2", Source::Api { supersede: false }).await {
        Ok(Submitted::Created { id, queued: false }) => id,
        other => panic!("expected a running deployment, got {other:?}"),
    };
    let queued = match submit("web:v3", Source::Webhook { event_time: None }).await {
        Ok(Submitted::Created { id, queued: true }) => id,
        other => panic!("expected a queued deployment, got {other:?}"),
    };
    runner
        .operate(queued.as_str(), OperatorRequest::Abort { reason: None })
        .await
        .expect("a queued deployment is cancelled");
    let row = store.get(queued.as_str()).await.unwrap().expect("row");
    assert_eq!(row.state, RowState::Cancelled);

    // As if `operate` had read it running just before it ended: no driver has it, the
    // routed request goes unanswered, and the answer is the state it ended in.
    let started = std::time::Instant::now();
    let err = runner
        .signal(
            "web",
            queued.as_str(),
            Signal::Operator(OperatorRequest::Pause),
        )
        .await
        .expect_err("nothing drives it");
    match err {
        OperateError::Refused(r) => {
            assert_eq!(r.request, "pause");
            assert_eq!(r.phase, PhaseName::Preflight);
            assert_eq!(r.reason, "the deployment is cancelled");
        }
        other => panic!("expected a refusal naming its state, got {other:?}"),
    }
    // Bounded by the request wait (twice, for a claimed request), not the default 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A deployment the store still calls running, that no driver answered for, is the
    // one case reported as not driven right now (a takeover in progress).
    let row = store.get(running.as_str()).await.unwrap().expect("row");
    assert_eq!(row.state, RowState::Running);
    match runner.finished_meanwhile(running.as_str(), "pause").await {
        Err(OperateError::Unavailable(id)) => assert_eq!(id, running.as_str()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    runner.shutdown().await;
}
