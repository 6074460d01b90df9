//! The service bench (a bench binary, not criterion: it measures a whole process).
//!
//! 1. `concurrent`: N deployments (default 10,000) started at once on the simulated cloud
//!    in this process, through the real runner and a SQLite store, until every one is
//!    finished: wall time, peak RSS (VmHWM), CPU time, outcomes.
//! 2. `latency`: webhook → first cloud command. A server on 127.0.0.1:0; each ECR push
//!    event is POSTed and the time until the cloud receives that deployment's first
//!    command is recorded: p50 / p99 / max.
//!
//! `cargo bench -p bluegreen-svc --bench svc_service -- [concurrent|latency|all] [N]`
//! Figures go to BENCHMARKS.md ("## bluegreen-svc: service").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bluegreen_core::{Cloud, Command, CommandError, CommandResult};
use bluegreen_svc::config::{Config, Origin};
use bluegreen_svc::runner::{Clock, Limits, Runner, Source, Submit, SystemClock};
use bluegreen_svc::serve::{Secrets, Server};
use bluegreen_svc::store::{RowState, Store};

fn app_block(name: &str) -> String {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    format!(
        r#"
[[apps]]
name = "{name}"
cluster = "bench"
services = ["{name}-a", "{name}-b"]
target_groups = ["{arn}:targetgroup/{name}-a/0001", "{arn}:targetgroup/{name}-b/0002"]
listener = "{arn}:listener/app/{name}/0003/0004"
container = "{name}"
repository = "{name}"
strategy = {{ kind = "canary", percent = 50, wait = "60s" }}
bake = "5s"
drain = "2s"
health = {{ healthy_observations_min = 2, degraded_observations_max = 3 }}
timeouts = {{ deploy = "5m", health = "5m", approval = "10m", command = "30s", scale_down = "5m" }}
pacing = {{ poll_interval = "2s", attempts_max = 12, retry_min = "500ms", retry_max = "10s" }}
"#
    )
}

fn config(store: &str, apps: usize) -> Config {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstore = \"{store}\"\nwebhook_rate = 1000000\nwebhook_burst = 1000000\napi_rate = 1000000\napi_burst = 1000000\n[cloud]\nkind = \"sim\"\nprofile = \"fast\"\n"
    );
    for i in 0..apps {
        text.push_str(&app_block(&format!("app{i:05}")));
    }
    Config::parse(&text, Origin::BuiltIn, &BTreeMap::new()).expect("bench config")
}

/// The simulated world with API limits opened up: this measures the service, not the
/// account's throttling (with AWS's real buckets 10,000 deployments at once would spend
/// their time in backoff, which the simulator's own sweeps measure).
fn sim(config: &Config, clock: Arc<dyn Clock>) -> bluegreen_sim::SimCloud {
    let mut profile = bluegreen_sim::WorldProfile::fast();
    let wide = bluegreen_sim::world::BucketSpec {
        burst: 1_000_000,
        per_s: 1_000_000,
    };
    let l = &mut profile.limits;
    for b in [
        &mut l.ecs_describe,
        &mut l.ecs_mutate,
        &mut l.ecs_tasks,
        &mut l.ecs_register,
        &mut l.ecs_task_definitions,
        &mut l.elb_describe,
        &mut l.elb_modify,
        &mut l.cw_describe_alarms,
        &mut l.cw_get_metric_data,
    ] {
        *b = wide;
    }
    let world = bluegreen_sim::World::seeded(&config.seed_drafts(), &profile, 1, clock.now());
    bluegreen_sim::SimCloud::new(world, Arc::new(move || clock.now()))
}

fn proc_status(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (clock ticks of 10 ms).
fn cpu_s() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn temp_store(tag: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("bluegreen-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    (dir, url)
}

async fn concurrent(n: usize) {
    let (dir, url) = temp_store("concurrent");
    let config = config(&url, n);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cloud = sim(&config, clock.clone());
    let store = Store::connect(&url).await.expect("store");
    let limits = Limits {
        commands_in_flight_max: 1024,
        deployments_open_max: n + 10,
        shutdown_grace: Duration::from_secs(10),
        // The account's API budget (on by default since issue 11) paces commands to AWS's
        // real rates, which the world above has opened: off, so this measures the
        // service, not the budget (10,000 apps polling every 2 s would queue for minutes).
        api_budget: None,
        ..Limits::default()
    };
    let runner = Runner::start(cloud, store.clone(), clock, config.templates(), limits)
        .await
        .expect("runner");
    let rss_before_kib = proc_status("VmRSS:");
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    // Every app's push at once (submissions run concurrently; each waits for its own
    // group commit).
    let mut tasks = tokio::task::JoinSet::new();
    for app in config.apps.iter() {
        let runner = runner.clone();
        let app = app.name.clone();
        tasks.spawn(async move {
            let s = runner
                .submit(Submit {
                    image: format!("{app}:v2"),
                    app,
                    source: Source::Api { supersede: false },
                })
                .await
                .expect("submit");
            s.id().expect("a new deployment").to_string()
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(id) = tasks.join_next().await {
        ids.push(id.expect("submit task"));
    }
    let submitted_s = t0.elapsed().as_secs_f64();
    let mut peak_running = 0;
    // Bounded: every deployment ends within its timeouts (~25 min worst case here).
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        peak_running = peak_running.max(runner.running());
        if runner.running() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deployments did not finish within an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for chunk in ids.chunks(1) {
        let s = store.get(&chunk[0]).await.expect("read").expect("row");
        assert_eq!(s.state, RowState::Finished);
        *outcomes
            .entry(s.deployment.phase_name().to_string())
            .or_default() += 1;
    }
    let db_bytes: u64 = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "concurrent: {n} deployments on the simulated cloud (fast profile, API limits opened), SQLite store"
    );
    println!(
        "  submitted in {submitted_s:.1} s; all finished after {wall_s:.1} s wall; peak running {peak_running}"
    );
    println!("  outcomes {outcomes:?}");
    println!(
        "  peak RSS (VmHWM) {:.0} MiB (RSS before submitting {:.0} MiB); CPU {cpu:.1} s user+sys ({:.0} % of one core over the run)",
        proc_status("VmHWM:") as f64 / 1024.0,
        rss_before_kib as f64 / 1024.0,
        100.0 * cpu / wall_s
    );
    println!(
        "  store on disk {:.0} MiB",
        db_bytes as f64 / (1024.0 * 1024.0)
    );
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records when each deployment's first command reaches the cloud.
struct Timed<C> {
    inner: C,
    first: Mutex<BTreeMap<String, Instant>>,
}

impl<C: Cloud> Cloud for Timed<C> {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let deployment = command
            .id
            .as_str()
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        self.first
            .lock()
            .expect("lock")
            .entry(deployment)
            .or_insert_with(Instant::now);
        self.inner.execute(command).await
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(n: usize) {
    let (dir, url) = temp_store("latency");
    let config = config(&url, n);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cloud = Arc::new(Timed {
        inner: sim(&config, clock.clone()),
        first: Mutex::new(BTreeMap::new()),
    });
    let secrets = Secrets {
        api_token: "bench-api-token-0123456789".into(),
        webhook_token: "bench-webhook-token-0123456789".into(),
        hook_secret: None,
        dev: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::start(&config, cloud.clone(), clock, secrets, listener)
        .await
        .expect("server");
    let base = format!("http://{}/v1/webhooks/ecr", server.addr);
    let http = reqwest::Client::new();
    let mut samples_ms = Vec::with_capacity(n);
    for (i, app) in config.apps.iter().enumerate() {
        let event = format!(
            r#"{{"version":"0","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-22T03:04:05Z","region":"us-east-1","detail":{{"result":"SUCCESS","repository-name":"{}","image-digest":"sha256:{:064x}","action-type":"PUSH","image-tag":"v2"}}}}"#,
            app.name, i
        );
        let t0 = Instant::now();
        let resp = http
            .post(&base)
            .bearer_auth("bench-webhook-token-0123456789")
            .body(event)
            .send()
            .await
            .expect("webhook");
        assert_eq!(resp.status().as_u16(), 202);
        let v: serde_json::Value = resp.json().await.expect("json");
        let id = v["deployment"].as_str().expect("id").to_string();
        // Bounded wait for the first command of this deployment.
        let limit = Instant::now() + Duration::from_secs(10);
        let first = loop {
            if let Some(t) = cloud.first.lock().expect("lock").get(&id) {
                break *t;
            }
            assert!(Instant::now() < limit, "no command for {id} within 10 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples_ms.push(first.duration_since(t0).as_secs_f64() * 1000.0);
    }
    samples_ms.sort_by(f64::total_cmp);
    println!(
        "latency: webhook POST → first cloud command, {n} pushes one after another, while earlier deployments run"
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&samples_ms, 0.50),
        percentile(&samples_ms, 0.99),
        samples_ms.last().copied().unwrap_or(0.0)
    );
    server.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // As the `bluegreen` binary does (src/alloc.rs): measure what operators run.
    bluegreen_svc::alloc::limit_malloc_arenas();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let which = args
        .first()
        .map(String::as_str)
        .unwrap_or("all")
        .to_string();
    let n: Option<usize> = args.get(1).and_then(|v| v.parse().ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if which == "latency" || which == "all" {
            latency(n.unwrap_or(1_000)).await;
        }
        if which == "concurrent" || which == "all" {
            concurrent(n.unwrap_or(10_000)).await;
        }
    });
}
