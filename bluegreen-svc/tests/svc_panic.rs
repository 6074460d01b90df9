//! Panic containment: a cloud adapter that panics while executing one app's command
//! fails that deployment — with the reason in its journal, the app held for an operator
//! per the admission rules — and nothing else: the other app's deployment completes and
//! the runner goes on taking work.

mod svc_util;

use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::journal::JournalEntry;
use bluegreen_core::{Cloud, Command, CommandError, CommandKind, CommandResult, Output};
use bluegreen_svc::cloud::dev::DevCloud;
use bluegreen_svc::runner::{Runner, Source, Submit, Submitted};
use bluegreen_svc::store::{RowState, Store};
use svc_util::{TempDir, app_toml, clock, config, wait_for};

/// The dev cloud, except that it panics on app `boom`'s `ensure-green`.
struct Panicky(Arc<DevCloud>);

impl Cloud for Panicky {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        if command.id.as_str().starts_with("boom-")
            && matches!(command.kind, CommandKind::EnsureGreen(_))
        {
            panic!("injected: the adapter hit a bug");
        }
        self.0.execute(command).await
    }
}

async fn submit(runner: &Runner<Panicky>, app: &str, image: &str) -> String {
    let s = runner
        .submit(Submit {
            app: app.into(),
            image: image.into(),
            source: Source::Api { supersede: false },
        })
        .await
        .expect("submit");
    s.id().expect("a deployment").to_string()
}

async fn finished(store: &Store, id: &str) -> bluegreen_svc::store::Stored {
    wait_for(
        &format!("{id} to finish"),
        Duration::from_secs(60),
        || async {
            store
                .get(id)
                .await
                .unwrap()
                .filter(|s| s.state == RowState::Finished)
        },
    )
    .await
}

#[tokio::test]
async fn a_panicking_cloud_fails_one_deployment_holds_its_app_and_spares_the_rest() {
    let dir = TempDir::new("panic");
    let apps = format!("{}{}", app_toml("boom", ""), app_toml("calm", ""));
    let config = config(&dir, &apps);
    let cloud = Arc::new(DevCloud::new(&config.seed_drafts()).unwrap());
    let store = Store::connect(&dir.store_url()).await.unwrap();
    let runner = Runner::start(
        Panicky(cloud),
        store.clone(),
        clock(),
        config.templates(),
        config.runner.limits(),
    )
    .await
    .unwrap();
    let boom = submit(&runner, "boom", "boom:v2").await;
    let calm = submit(&runner, "calm", "calm:v2").await;
    let failed = finished(&store, &boom).await;
    assert_eq!(failed.deployment.phase_name().as_str(), "failed");
    let reason = failed.deployment.outcome_reason().unwrap().to_string();
    assert!(reason.contains("panicked"), "{reason}");
    // The reason is in the journal (the transition to failed).
    let journal = store.journal(&boom).await.unwrap();
    assert!(
        journal.iter().any(|l| matches!(&l.entry,
            JournalEntry::Output { output: Output::Notice(n) } if format!("{n:?}").contains("panicked"))),
        "the failure and its reason are journalled"
    );
    // The other app is untouched.
    let done = finished(&store, &calm).await;
    assert_eq!(done.deployment.phase_name().as_str(), "completed");
    // The failed app is held: a new request is refused with the reason, not started.
    let again = runner
        .submit(Submit {
            app: "boom".into(),
            image: "boom:v3".into(),
            source: Source::Api { supersede: false },
        })
        .await
        .unwrap();
    assert!(
        matches!(&again, Submitted::Ignored(why) if why.label() == "held"),
        "{again:?}"
    );
    assert!(runner.app_hold("boom").await.is_some());
    // The process goes on: the healthy app deploys again.
    let next = submit(&runner, "calm", "calm:v3").await;
    assert_eq!(
        finished(&store, &next)
            .await
            .deployment
            .phase_name()
            .as_str(),
        "completed"
    );
    // Released by an operator, the held app takes deployments again.
    runner.release("boom").await.unwrap();
    assert!(runner.app_hold("boom").await.is_none());
    runner.shutdown().await;
}
