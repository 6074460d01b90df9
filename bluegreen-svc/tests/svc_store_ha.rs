//! The store's multi-replica parts, on SQLite and PostgreSQL alike: admission in one
//! transaction per app, app leases by the database's clock, fenced writes, routed
//! operator requests, TLS and password redaction.

mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bluegreen_core::admission::{Decision, Next, Source};
use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::plan::example_spec;
use bluegreen_core::{Deployment, DeploymentId, Input, OperatorRequest, PhaseName, Timestamp};
use bluegreen_svc::store::{Fence, RowState, Signal, Store, StoreError, SubmitRow, Turn};

const NOW: u64 = 1_800_000_000_000;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bluegreen-ha-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn deployment(app: &str, n: u64) -> Deployment {
    // The spec's own app name does not matter to the store: the row's `app` does.
    let spec = example_spec();
    let id = DeploymentId::new(format!("{app}-{n}")).unwrap();
    Deployment::new(id, spec, Timestamp::from_millis(NOW))
}

async fn submit(
    store: &Store,
    me: &str,
    app: &str,
    key: &str,
    source: Source,
) -> (Decision, Option<u64>) {
    let admitted = store
        .admit(
            SubmitRow {
                app,
                image: &format!("{app}@{key}"),
                image_key: key,
                source,
                open_max: 1_000,
                now: Timestamp::from_millis(NOW),
            },
            me,
            |n| deployment(app, n),
        )
        .await
        .expect("admit");
    (admitted.decision, admitted.lease)
}

fn turn(id: &DeploymentId, seq: u64, d: &Deployment) -> Arc<Turn> {
    Arc::new(Turn {
        id: id.clone(),
        lines: vec![JournalLine {
            deployment: id.clone(),
            seq,
            at: Timestamp::from_millis(NOW + seq),
            entry: JournalEntry::Input { input: Input::Wake },
        }],
        snapshot: serde_json::to_string(d).unwrap(),
        phase: d.phase_name().as_str().into(),
        state: RowState::Running,
        seq,
        updated_at: Timestamp::from_millis(NOW + seq),
    })
}

#[tokio::test]
async fn concurrent_submissions_from_two_replicas_admit_one_running_deployment_per_app() {
    let dir = temp_dir("admit");
    for url in pg::store_urls("admit", &dir).await {
        // Two handles on one database: two replicas.
        let a = Store::connect(&url).await.unwrap();
        let b = Store::connect(&url).await.unwrap();
        a.heartbeat("replica-a", 60_000, NOW).await.unwrap();
        b.heartbeat("replica-b", 60_000, NOW).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16u32 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let me = if i % 2 == 0 { "replica-a" } else { "replica-b" };
            tasks.spawn(async move {
                let key = format!("sha256:{i:02}");
                submit(&store, me, "web", &key, Source::Push { event_time: None }).await
            });
        }
        let mut starts = 0;
        let mut leases = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (decision, lease) = r.unwrap();
            if let Decision::Start { .. } = decision {
                starts += 1;
                leases.push(lease);
            }
        }
        assert_eq!(starts, 1, "{url}: exactly one submission starts");
        assert_eq!(leases, vec![Some(1)], "{url}: the starter holds the lease");
        let open = a.open().await.unwrap();
        let running: Vec<_> = open
            .iter()
            .filter(|s| s.state == RowState::Running)
            .collect();
        let queued: Vec<_> = open
            .iter()
            .filter(|s| s.state == RowState::Queued)
            .collect();
        assert_eq!(running.len(), 1, "{url}");
        assert_eq!(queued.len(), 1, "{url}: one queued, the rest superseded");
        let row = a.app_row("web").await.unwrap().unwrap();
        assert_eq!(row.admission.running().unwrap().id, *running[0].id());
        a.close().await;
        b.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_write_with_a_stale_epoch_is_refused_and_writes_nothing() {
    let dir = temp_dir("fence");
    for url in pg::store_urls("fence", &dir).await {
        let store = Store::connect(&url).await.unwrap();
        // Replica a starts a deployment and holds the app at epoch 1.
        store.heartbeat("a", 60_000, NOW).await.unwrap();
        let (d, lease) = submit(
            &store,
            "a",
            "web",
            "sha256:01",
            Source::Api { supersede: false },
        )
        .await;
        let Decision::Start { id } = d else {
            panic!("{d:?}")
        };
        assert_eq!(lease, Some(1));
        let dep = store.get(id.as_str()).await.unwrap().unwrap().deployment;
        let fence_a = Fence {
            app: "web".into(),
            holder: "a".into(),
            epoch: 1,
        };
        store
            .persist(turn(&id, 2, &dep), Some(fence_a.clone()))
            .await
            .expect("a holds the lease");
        // While a is alive, b cannot take the app.
        store.heartbeat("b", 60_000, NOW).await.unwrap();
        assert_eq!(store.take("web", "b").await.unwrap(), None, "{url}");
        // a dies (its replica row lapses by the database's clock); b takes over.
        store.heartbeat("a", 0, NOW).await.unwrap();
        let epoch = store.take("web", "b").await.unwrap();
        assert_eq!(epoch, Some(2), "{url}: a new holder, a new epoch");
        // a's late write is refused, and nothing of it lands.
        let late = store
            .persist(turn(&id, 3, &dep), Some(fence_a.clone()))
            .await;
        assert!(
            matches!(late, Err(StoreError::Fenced { epoch: 1, .. })),
            "{url}: {late:?}"
        );
        assert_eq!(store.get(id.as_str()).await.unwrap().unwrap().seq, 2);
        assert_eq!(store.journal(id.as_str()).await.unwrap().len(), 2);
        // Freeing the app is fenced too; b's is not.
        let finished = store
            .finish(
                &fence_a,
                &id,
                PhaseName::Completed,
                Timestamp::from_millis(NOW),
            )
            .await;
        assert!(matches!(finished, Err(StoreError::Fenced { .. })), "{url}");
        let fence_b = Fence {
            app: "web".into(),
            holder: "b".into(),
            epoch: 2,
        };
        store
            .persist(turn(&id, 3, &dep), Some(fence_b.clone()))
            .await
            .expect("b writes");
        // A retried commit is harmless (the line is there already; the row does not go back).
        store
            .persist(turn(&id, 3, &dep), Some(fence_b.clone()))
            .await
            .expect("idempotent");
        assert_eq!(store.journal(id.as_str()).await.unwrap().len(), 3);
        let next = store
            .finish(
                &fence_b,
                &id,
                PhaseName::Completed,
                Timestamp::from_millis(NOW),
            )
            .await
            .unwrap();
        assert_eq!(next, Next::Idle, "{url}");
        let row = store.app_row("web").await.unwrap().unwrap();
        assert_eq!(row.holder, None, "{url}: an idle app's lease is released");
        assert_eq!(row.epoch, 2, "{url}: epochs never go back");
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn leases_live_by_the_database_clock_and_a_failed_deployment_holds_its_app() {
    let dir = temp_dir("lease");
    for url in pg::store_urls("lease", &dir).await {
        let store = Store::connect(&url).await.unwrap();
        store.heartbeat("a", 600, NOW).await.unwrap();
        let (_, lease) = submit(
            &store,
            "a",
            "api",
            "sha256:01",
            Source::Api { supersede: false },
        )
        .await;
        assert_eq!(lease, Some(1));
        let (queued, _) = submit(
            &store,
            "a",
            "api",
            "sha256:02",
            Source::Api { supersede: true },
        )
        .await;
        assert!(
            matches!(queued, Decision::Queue { abort: Some(_), .. }),
            "{queued:?}"
        );
        store.heartbeat("b", 60_000, NOW).await.unwrap();
        let claims = store.claims("b").await.unwrap();
        assert!(claims.is_empty(), "{url}: a's lease is live: {claims:?}");
        // Wait (bounded) for a's 600 ms to pass on the database's clock.
        let deadline = Instant::now() + Duration::from_secs(10);
        let claims = loop {
            let c = store.claims("b").await.unwrap();
            if !c.is_empty() || Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(claims.len(), 1, "{url}");
        assert!(!claims[0].mine);
        let epoch = store
            .take("api", "b")
            .await
            .unwrap()
            .expect("takes the lapsed lease");
        assert_eq!(epoch, 2);
        assert!(store.claims("b").await.unwrap()[0].mine);
        let running = DeploymentId::new(claims[0].running.clone()).unwrap();
        let fence = Fence {
            app: "api".into(),
            holder: "b".into(),
            epoch,
        };
        let next = store
            .finish(
                &fence,
                &running,
                PhaseName::Failed,
                Timestamp::from_millis(NOW),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                next,
                Next::Held {
                    queued: Some(_),
                    ..
                }
            ),
            "{url}: {next:?}"
        );
        // Held: a push is ignored, nothing runs, the lease is free.
        let (pushed, _) = submit(
            &store,
            "b",
            "api",
            "sha256:03",
            Source::Push { event_time: None },
        )
        .await;
        assert!(matches!(pushed, Decision::Ignored(_)), "{url}: {pushed:?}");
        assert!(store.claims("b").await.unwrap().is_empty());
        // Released: the queued one runs (taken at the next scan).
        let released = store
            .release("api", Timestamp::from_millis(NOW))
            .await
            .unwrap();
        assert!(
            matches!(released, Next::Start { .. }),
            "{url}: {released:?}"
        );
        assert_eq!(store.claims("b").await.unwrap().len(), 1);
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Alarm events travel the same table as operator requests; rows written before alarm
/// events existed (`{"request":"promote"}`) still read as operator requests.
#[test]
fn routed_signals_keep_their_kind_on_the_wire() {
    let alarm = Signal::Alarm(bluegreen_core::AlarmEvent {
        name: "web-5xx".into(),
        state: bluegreen_core::AlarmState::Alarm,
        reason: "Threshold Crossed".into(),
        at: Timestamp::from_millis(NOW),
    });
    let text = serde_json::to_string(&alarm).unwrap();
    assert_eq!(serde_json::from_str::<Signal>(&text).unwrap(), alarm);
    assert_eq!(
        serde_json::from_str::<Signal>(r#"{"request":"abort","reason":"bad"}"#).unwrap(),
        Signal::Operator(OperatorRequest::Abort {
            reason: Some("bad".into())
        })
    );
}

#[tokio::test]
async fn routed_operator_requests_are_claimed_once_and_answered() {
    let dir = temp_dir("requests");
    for url in pg::store_urls("requests", &dir).await {
        let store = Store::connect(&url).await.unwrap();
        let now = Timestamp::from_millis(NOW);
        store
            .post_request(
                "r1",
                "web-1",
                &Signal::Operator(OperatorRequest::Promote),
                now,
            )
            .await
            .unwrap();
        let pending = store.pending_requests().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].request,
            Signal::Operator(OperatorRequest::Promote)
        );
        assert!(store.claim_request("r1", "b").await.unwrap());
        assert!(
            !store.claim_request("r1", "c").await.unwrap(),
            "claimed once"
        );
        assert!(
            !store.withdraw_request("r1").await.unwrap(),
            "a claimed request stays"
        );
        assert_eq!(store.request_answer("r1").await.unwrap(), None);
        store.answer_request("r1", &Ok(())).await.unwrap();
        assert_eq!(store.request_answer("r1").await.unwrap(), Some(Ok(())));
        store
            .post_request(
                "r2",
                "web-1",
                &Signal::Operator(OperatorRequest::Pause),
                now,
            )
            .await
            .unwrap();
        assert!(
            store.withdraw_request("r2").await.unwrap(),
            "an unclaimed one is withdrawn"
        );
        assert_eq!(
            store
                .prune_requests(Timestamp::from_millis(NOW + 1))
                .await
                .unwrap(),
            1
        );
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn store_errors_never_show_the_password() {
    // Nothing listens on port 1: the connection fails, and its error must not carry the
    // password given in the URL.
    let url = "postgres://root:hunter2-secret@127.0.0.1:1/x?connect_timeout=2";
    let err = match Store::connect(url).await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(e) => e,
    };
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    let err = match Store::connect("mysql://u:hunter2-secret@db/x").await {
        Ok(_) => panic!("unsupported"),
        Err(e) => e.to_string(),
    };
    assert!(
        !err.contains("hunter2-secret") && err.contains("u:***@"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_over_tls_with_require_and_verify_full() {
    let Some(url) = pg::fresh_database("tls").await else {
        return;
    };
    // `require`: encrypted, whatever the certificate.
    let store = Store::connect(&format!("{url}?sslmode=require"))
        .await
        .expect("sslmode=require");
    assert!(
        store.tls_in_use().await.unwrap(),
        "the connection is encrypted"
    );
    store.close().await;
    // `verify-full` with a CA file: the machine's server certificate is issued to
    // `localhost` (Debian's snakeoil certificate is its own CA).
    let ca = std::env::var("BLUEGREEN_TEST_POSTGRES_CA")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into());
    if !std::path::Path::new(&ca).exists() {
        let msg = format!("no CA file {ca} for the server's certificate");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}; CI=true: a failure"
        );
        eprintln!("SKIPPED verify-full: {msg}");
        return;
    }
    let by_name = url.replacen("127.0.0.1", "localhost", 1);
    let store = Store::connect(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .expect("verify-full against the server's certificate");
    assert!(store.tls_in_use().await.unwrap());
    store.close().await;
    // The same CA but a name the certificate does not carry: refused.
    let wrong = Store::connect(&format!("{url}?sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(wrong.is_err(), "verify-full checks the host name");
}
