//! Several real `bluegreen serve` replicas on one PostgreSQL database and one shared
//! simulated account (`bluegreen sim-cloud`, whose call log says which process sent each
//! command): replicas killed with SIGKILL at random and restarted while pushes stream in;
//! every replica as PID 1 under one host name (like containers); one replica's clock an
//! hour's minute ahead; one paused past its lease and resumed.
//!
//! Reproduce a run: `BLUEGREEN_HA_SEED=<seed> scripts/test -p bluegreen-svc --test svc_ha`.
#![cfg(feature = "sim")]

mod ha;
mod pg;

use std::time::{Duration, Instant};

use bluegreen_core::Timestamp;
use ha::{Cluster, Rng, Wrap, audit};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn has_unshare() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Push `n` for `app` to some live replica (another one if the first does not answer).
async fn push(c: &Cluster, rng: &mut Rng, app: &str, n: u64, at: u64) {
    let body = Cluster::push_event(app, n, Timestamp::from_millis(at));
    let live: Vec<usize> = (0..c.replicas.len())
        .filter(|i| c.replicas[*i].alive)
        .collect();
    let first = live[rng.below(live.len() as u64) as usize];
    for i in std::iter::once(first).chain(live.iter().copied()) {
        let status = c.push(i, body.clone()).await;
        if status == 200 || status == 202 {
            return;
        }
    }
    panic!("no replica took push {n} for {app}");
}

fn report(seed: u64, c: &Cluster, problems: &[String]) -> String {
    format!(
        "seed {seed} (reproduce: BLUEGREEN_HA_SEED={seed} scripts/test -p bluegreen-svc --test svc_ha)\n{}\n--- logs ---\n{}",
        problems.join("\n"),
        c.all_logs()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(200)
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_lose_nothing_and_never_drive_an_app_twice() {
    if !has_unshare() && ha::missing("unshare (util-linux) cannot make a PID namespace") {
        return;
    }
    let seed = ha::seed();
    eprintln!("svc_ha seed {seed}");
    let mut rng = Rng::new(seed);
    // Every replica is PID 1 in a namespace of its own, under one host name: the holder
    // ids `<host>/<pid>/…` would collide without their random part.
    let wraps = vec![
        Wrap {
            pid1: true,
            skew: None
        };
        3
    ];
    let Some(mut c) = Cluster::start("chaos", 12, 3, &wraps).await else {
        return;
    };
    let apps = c.apps.clone();
    let started = Instant::now();
    let mut n = 0u64;
    let mut kills = 0;
    let mut dead_since: Option<(usize, Instant)> = None;
    let mut next_kill = Instant::now() + Duration::from_secs(3);
    // Bounded: 40 s of pushes, one every 250 ms, a kill every 3-5 s.
    while started.elapsed() < Duration::from_secs(40) {
        n += 1;
        let app = &apps[rng.below(apps.len() as u64) as usize];
        push(&c, &mut rng, app, n, now_ms()).await;
        if let Some((i, since)) = dead_since
            && since.elapsed() >= Duration::from_millis(1_500)
        {
            c.restart(i).await;
            dead_since = None;
        }
        if dead_since.is_none() && Instant::now() >= next_kill {
            let i = rng.below(3) as usize;
            c.kill(i);
            kills += 1;
            dead_since = Some((i, Instant::now()));
            next_kill = Instant::now() + Duration::from_millis(3_000 + rng.below(2_000));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some((i, _)) = dead_since {
        c.restart(i).await;
    }
    eprintln!("svc_ha chaos: pushes done after {:?}", started.elapsed());
    c.wait_all_terminal(Duration::from_secs(240)).await;
    eprintln!("svc_ha chaos: all terminal after {:?}", started.elapsed());
    let rows = c.deployments().await;
    let a = audit(&c.calls().await, &c.journals().await, &rows);
    let mut problems = a.problems;
    for (id, _, state, phase, _) in &rows {
        // Terminal, and never `failed` or `rejected`: twelve apps polling one simulated
        // account at AWS's real rates stay within them — the replicas split the
        // account's API budget, so no preflight is throttled past its retries.
        let ok = match state.as_str() {
            "finished" => phase == "completed" || phase == "rolled-back",
            "superseded" | "cancelled" => true,
            _ => false,
        };
        if !ok {
            problems.push(format!("{id}: ended {state}/{phase}"));
        }
    }
    assert!(problems.is_empty(), "{}", report(seed, &c, &problems));
    assert!(kills >= 6, "kills: {kills}");
    assert!(
        a.takeovers >= 1,
        "no deployment changed hands in {kills} kills; {}",
        report(seed, &c, &[])
    );
    let completed = rows.iter().filter(|r| r.3 == "completed").count();
    eprintln!(
        "svc_ha: {} pushes, {} deployments ({} completed, {} driven), {kills} kills, {} takeovers",
        n,
        rows.len(),
        completed,
        a.deployments_driven,
        a.takeovers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_is_fenced_and_a_skewed_clock_steals_nothing() {
    if ha::faketime_lib().is_none() && ha::missing("libfaketime (apt-get install faketime)") {
        return;
    }
    let seed = ha::seed();
    let mut rng = Rng::new(seed);
    // Replica 1's wall clock runs a minute ahead: leases are judged by the database's
    // clock, so it neither keeps a lease longer nor takes a live one.
    let wraps = vec![
        Wrap::default(),
        Wrap {
            pid1: false,
            skew: Some("+60s".into()),
        },
        Wrap::default(),
    ];
    let t0 = Instant::now();
    let Some(mut c) = Cluster::start("edges", 6, 3, &wraps).await else {
        return;
    };
    eprintln!("svc_ha edges: cluster up after {:?}", t0.elapsed());
    let replica0: serde_json::Value = c
        .http
        .get(format!("{}/readyz", c.base(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r0 = replica0["replica"].as_str().unwrap().to_string();
    // Every app's push goes to replica 0: it takes their leases.
    let apps = c.apps.clone();
    for (k, app) in apps.iter().enumerate() {
        let body = Cluster::push_event(app, 1_000 + k as u64, Timestamp::from_millis(now_ms()));
        assert_eq!(c.push(0, body).await, 202);
    }
    let pool = c.pool().await;
    let held_by = |who: String| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM apps WHERE holder = $1 AND running IS NOT NULL",
            )
            .bind(who)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    assert!(
        held_by(r0.clone()).await > 0,
        "replica 0 drives the apps it admitted"
    );
    // Pause it past its lease (2 s): the others take its apps.
    c.signal(0, "STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while held_by(r0.clone()).await > 0 {
        assert!(
            Instant::now() < deadline,
            "nobody took the paused replica's apps"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // More pushes meanwhile, through the others (the skewed one included).
    for k in 0..6u64 {
        let app = &apps[rng.below(apps.len() as u64) as usize];
        let body = Cluster::push_event(app, 2_000 + k, Timestamp::from_millis(now_ms()));
        let status = c.push(1 + (k % 2) as usize, body).await;
        assert!(status == 200 || status == 202, "{status}");
    }
    eprintln!("svc_ha edges: apps taken over after {:?}", t0.elapsed());
    c.signal(0, "CONT");
    c.wait_all_terminal(Duration::from_secs(180)).await;
    eprintln!("svc_ha edges: all terminal after {:?}", t0.elapsed());
    let rows = c.deployments().await;
    let a = audit(&c.calls().await, &c.journals().await, &rows);
    assert!(a.problems.is_empty(), "{}", report(seed, &c, &a.problems));
    assert!(
        a.takeovers >= 1,
        "the paused replica's deployments changed hands"
    );
    let log0 = c.log(0);
    assert!(
        log0.contains("lease lost") || log0.contains("write refused"),
        "the resumed replica learnt it was fenced: {log0}"
    );
    for (id, _, state, phase, _) in &rows {
        assert!(
            state != "finished" || phase != "failed",
            "{id}: {state}/{phase}"
        );
    }
    // The resumed replica is ready again and takes work.
    c.wait_ready(0).await;
    eprintln!(
        "svc_ha edges: replica 0 ready again after {:?}",
        t0.elapsed()
    );
    c.kill(1);
    pool.close().await;
}
