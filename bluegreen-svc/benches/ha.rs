//! Three `bluegreen serve` replicas on one PostgreSQL database and one shared simulated
//! account, thousands of deployments in flight, one replica killed with SIGKILL:
//! takeover time (kill → the first command a new owner sends for each of the dead
//! replica's deployments, p50/p99/max), journal writes per second, peak RSS per replica.
//!
//! `cargo bench -p bluegreen-svc --bench ha -- [APPS]` (default 3000; needs the machine's
//! PostgreSQL at 127.0.0.1:5432). Figures go to BENCHMARKS.md.

#[path = "../tests/ha/mod.rs"]
mod ha;
#[path = "../tests/pg/mod.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bluegreen_core::Timestamp;
use ha::{Cluster, Wrap};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn rss_peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let apps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(apps));
}

async fn run(apps: usize) {
    let wraps = vec![Wrap::default(); 3];
    // A long bake: every deployment is still in flight when the replica dies.
    let Some(mut c) = Cluster::start_with("bench", apps, 3, &wraps, "120s", false).await else {
        eprintln!("no PostgreSQL: nothing measured");
        return;
    };
    let t0 = Instant::now();
    let names = c.apps.clone();
    // One push per app, spread over the replicas, 64 at a time.
    for (chunk_no, chunk) in names.chunks(64).enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for (k, app) in chunk.iter().enumerate() {
            let n = (chunk_no * 64 + k) as u64;
            let body = Cluster::push_event(app, n + 1, Timestamp::from_millis(now_ms()));
            let url = format!("{}/v1/webhooks/ecr", c.base((n % 3) as usize));
            let http = c.http.clone();
            tasks.spawn(async move {
                http.post(url)
                    .bearer_auth(ha::WEBHOOK_TOKEN)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            });
        }
        while let Some(s) = tasks.join_next().await {
            let s = s.unwrap();
            assert!(s == 202 || s == 200, "push answered {s}");
        }
    }
    let pushed_s = t0.elapsed().as_secs_f64();
    // Wait until most deployments are baking (all their writes but the drain are done).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = c.deployments().await;
        let baking = rows.iter().filter(|r| r.3 == "bake").count();
        if baking * 10 >= apps * 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {baking} of {apps} reached bake"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss: Vec<f64> = (0..3)
        .map(|i| rss_peak_mib(c.replicas[i].child.id()))
        .collect();
    let pool = c.pool().await;
    let lines_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal")
        .fetch_one(&pool)
        .await
        .unwrap();
    let window = Instant::now();
    // Kill replica 0.
    let killed_at = now_ms();
    c.kill(0);
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let open = c
            .deployments()
            .await
            .iter()
            .filter(|r| r.2 == "running" || r.2 == "queued")
            .count();
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal")
        .fetch_one(&pool)
        .await
        .unwrap();
    let writes_per_s = (lines_after - lines_before) as f64 / window.elapsed().as_secs_f64();
    let calls = c.calls().await;
    // Takeover time per deployment the dead replica drove: from the kill to the new
    // owner's first turn (its `restarted` input; the turn's commands go out right after
    // it is persisted) and to the first command the cloud received from the new owner.
    let journals = c.journals().await;
    let mut latencies: Vec<u64> = Vec::new();
    for lines in journals.values() {
        if let Some(l) = lines.iter().find(|l| {
            l.at.as_millis() >= killed_at
                && matches!(
                    &l.entry,
                    bluegreen_core::journal::JournalEntry::Input {
                        input: bluegreen_core::Input::Restarted
                    }
                )
        }) {
            latencies.push(l.at.as_millis() - killed_at);
        }
    }
    let mut owner_before: BTreeMap<&str, &str> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.at_ms < killed_at) {
        owner_before.insert(ha::deployment_of(&call.command), &call.replica);
    }
    let mut first_after: BTreeMap<&str, u64> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.at_ms >= killed_at) {
        let dep = ha::deployment_of(&call.command);
        if owner_before.get(dep).is_some_and(|o| *o != call.replica) {
            first_after.entry(dep).or_insert(call.at_ms - killed_at);
        }
    }
    let mut command_latencies: Vec<u64> = first_after.into_values().collect();
    command_latencies.sort_unstable();
    latencies.sort_unstable();
    let rows = c.deployments().await;
    let completed = rows.iter().filter(|r| r.3 == "completed").count();
    let audit = ha::audit(&calls, &c.journals().await, &rows);
    println!("ha bench: {apps} apps, 3 replicas, PostgreSQL, lease_ttl 2s, scan 200ms");
    println!("  pushed {apps} deployments in {pushed_s:.1} s; {completed} completed");
    println!(
        "  kill -9 → the new owner's first turn (journal): {} deployments moved; p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "  kill -9 → first command by the new owner (cloud's call log): {} deployments; p50 {} ms, p99 {} ms, max {} ms",
        command_latencies.len(),
        pct(&command_latencies, 0.5),
        pct(&command_latencies, 0.99),
        command_latencies.last().copied().unwrap_or(0)
    );
    println!("  journal writes: {writes_per_s:.0} lines/s (after the kill, until all finished)");
    println!(
        "  peak RSS per replica: {:.0} / {:.0} / {:.0} MiB",
        rss[0], rss[1], rss[2]
    );
    println!("  audit problems: {}", audit.problems.len());
    for p in audit.problems.iter().take(10) {
        println!("    {p}");
    }
    pool.close().await;
}
