//! A cluster of real `bluegreen serve` processes on one PostgreSQL database, sharing one
//! simulated account served by `bluegreen sim-cloud` (whose call log says which process
//! sent each command), plus what the HA tests check against the store and that log.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bluegreen_core::Output;
use bluegreen_core::Timestamp;
use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_svc::cloud::remote::Call;
use sqlx::Row;

pub const API_TOKEN: &str = "ha-api-token-0123456789abcdef";
pub const WEBHOOK_TOKEN: &str = "ha-webhook-token-0123456789abcdef";

/// How a replica process is started.
#[derive(Clone, Debug, Default)]
pub struct Wrap {
    /// In a PID namespace of its own (`unshare -p -f`): it runs as PID 1, like a container.
    pub pid1: bool,
    /// Its wall clock runs this far ahead (libfaketime), e.g. `"+60s"`.
    pub skew: Option<String>,
}

pub struct Replica {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub wrap: Wrap,
    pub alive: bool,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub db: String,
    pub cloud: Child,
    pub cloud_url: String,
    pub replicas: Vec<Replica>,
    pub http: reqwest::Client,
    pub apps: Vec<String>,
    spawned: u32,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn app_block(name: &str, bake: &str) -> String {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    format!(
        r#"
[[apps]]
name = "{name}"
cluster = "ha"
services = ["{name}-a", "{name}-b"]
target_groups = ["{arn}:targetgroup/{name}-a/0001", "{arn}:targetgroup/{name}-b/0002"]
listener = "{arn}:listener/app/{name}/0003/0004"
container = "{name}"
repository = "{name}"
tags = ["v*"]
strategy = {{ kind = "canary", percent = 20, wait = "2s" }}
bake = "{bake}"
drain = "1s"
health = {{ healthy_observations_min = 2, degraded_observations_max = 3 }}
timeouts = {{ deploy = "10m", health = "10m", approval = "1h", command = "20s", scale_down = "10m" }}
pacing = {{ poll_interval = "1s", attempts_max = 10, retry_min = "200ms", retry_max = "2s" }}
"#
    )
}

/// The libfaketime preload library, when installed.
pub fn faketime_lib() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Missing tooling: skip with a message, or fail under `CI=true`.
pub fn missing(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}; CI=true: a missing dependency is a failure, not a skip");
    }
    eprintln!("SKIPPED: {what}");
    true
}

impl Cluster {
    /// Start the shared cloud and `n` replicas (`wraps[i]` for replica i, default plain).
    pub async fn start(tag: &str, apps: usize, n: usize, wraps: &[Wrap]) -> Option<Cluster> {
        Self::start_with(tag, apps, n, wraps, "2s", true).await
    }

    /// … with each app's bake time, and the simulated account's API limits on or off.
    pub async fn start_with(
        tag: &str,
        apps: usize,
        n: usize,
        wraps: &[Wrap],
        bake: &str,
        throttle: bool,
    ) -> Option<Cluster> {
        let db = super::pg::fresh_database(tag).await?;
        let dir = std::env::temp_dir().join(format!("bluegreen-ha-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names: Vec<String> = (0..apps).map(|i| format!("h{i:02}")).collect();
        // The cloud first: its address goes into the replicas' config.
        let cloud_config = dir.join("cloud.toml");
        let blocks: String = names.iter().map(|n| app_block(n, bake)).collect();
        std::fs::write(
            &cloud_config,
            format!(
                "[cloud]\nkind = \"sim\"\nprofile = \"fast\"\nseed = 7\nthrottle = {throttle}\n{blocks}"
            ),
        )
        .unwrap();
        let mut cloud = Command::new(env!("CARGO_BIN_EXE_bluegreen"))
            .args(["sim-cloud", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cloud_config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bluegreen sim-cloud starts");
        let mut line = String::new();
        BufReader::new(cloud.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let cloud_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("sim-cloud printed {line:?}"))
            .to_string();
        let config = dir.join("replica.toml");
        std::fs::write(
            &config,
            format!(
                // The per-token rate limits are lifted: the test and the bench push
                // faster than an EventBridge API destination would.
                "[server]\nstore = \"{db}\"\nwebhook_rate = 1000000\nwebhook_burst = 1000000\n\
                 api_rate = 1000000\napi_burst = 1000000\n[cloud]\nkind = \"remote\"\nurl = \"{cloud_url}\"\n\
                 [runner]\nlease_ttl = \"2s\"\nscan = \"200ms\"\nshutdown_grace = \"2s\"\n{blocks}"
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir,
            config,
            db,
            cloud,
            cloud_url,
            replicas: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            apps: names,
            spawned: 0,
        };
        for i in 0..n {
            let wrap = wraps.get(i).cloned().unwrap_or_default();
            let r = cluster.spawn(wrap);
            cluster.replicas.push(r);
        }
        for i in 0..n {
            cluster.wait_ready(i).await;
        }
        Some(cluster)
    }

    fn spawn(&mut self, wrap: Wrap) -> Replica {
        self.spawned += 1;
        let port = free_port();
        let log = self.dir.join(format!("replica-{}.log", self.spawned));
        let out = std::fs::File::create(&log).expect("log file");
        let bin = env!("CARGO_BIN_EXE_bluegreen");
        let mut cmd = if wrap.pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--kill-child", bin]);
            c
        } else {
            Command::new(bin)
        };
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&self.config)
        .current_dir(&self.dir)
        // Every replica on one host name: with PID 1 each, host/pid names collide.
        .env("HOSTNAME", "ha-host")
        .env("BLUEGREEN_API_TOKEN", API_TOKEN)
        .env("BLUEGREEN_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out);
        if let Some(skew) = &wrap.skew {
            let lib = faketime_lib().expect("libfaketime (checked by the caller)");
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME", skew)
                // Only the wall clock is skewed; timers keep real durations.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let child = cmd.spawn().expect("bluegreen serve starts");
        Replica {
            child,
            port,
            log,
            wrap,
            alive: true,
        }
    }

    pub fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].port)
    }

    /// Wait (bounded) until replica `i` answers `/readyz` with 200.
    pub async fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.base(i)))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} never became ready; its log: {}",
                std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9` replica `i`.
    pub fn kill(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        let _ = r.child.kill();
        let _ = r.child.wait();
        r.alive = false;
    }

    /// Start a new process in slot `i` (same wrapping).
    pub async fn restart(&mut self, i: usize) {
        let wrap = self.replicas[i].wrap.clone();
        let r = self.spawn(wrap);
        self.replicas[i] = r;
        self.wait_ready(i).await;
    }

    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.replicas[i].child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// An ECR push event for `app` with digest number `n` and event time `at`.
    pub fn push_event(app: &str, n: u64, at: Timestamp) -> String {
        let digest = format!("sha256:{:064x}", n);
        serde_json::json!({
            "version": "0", "id": format!("ev-{app}-{n}"), "detail-type": "ECR Image Action",
            "source": "aws.ecr", "account": "123456789012", "time": at.to_string(),
            "region": "us-east-1", "resources": [],
            "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": app,
                       "image-digest": digest, "image-tag": format!("v{n}")}
        })
        .to_string()
    }

    /// Deliver a push to replica `i`; the HTTP status (0 when it did not answer).
    pub async fn push(&self, i: usize, body: String) -> u16 {
        match self
            .http
            .post(format!("{}/v1/webhooks/ecr", self.base(i)))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.db).await.expect("test pool")
    }

    /// (id, app, state, phase, seq) of every deployment.
    pub async fn deployments(&self) -> Vec<(String, String, String, String, i64)> {
        let pool = self.pool().await;
        let rows = sqlx::query("SELECT id, app, state, phase, seq FROM deployments ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| {
                (
                    r.get("id"),
                    r.get("app"),
                    r.get("state"),
                    r.get("phase"),
                    r.get("seq"),
                )
            })
            .collect()
    }

    /// Wait (bounded) until no deployment is queued or running.
    pub async fn wait_all_terminal(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let open: Vec<_> = self
                .deployments()
                .await
                .into_iter()
                .filter(|d| d.2 == "queued" || d.2 == "running")
                .collect();
            if open.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} deployments never finished: {open:?}",
                open.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn calls(&self) -> Vec<Call> {
        self.http
            .get(format!("{}/v1/sim/calls", self.cloud_url))
            .send()
            .await
            .expect("the sim cloud answers")
            .json()
            .await
            .expect("a call log")
    }

    /// Every journal, by deployment.
    pub async fn journals(&self) -> BTreeMap<String, Vec<JournalLine>> {
        let pool = self.pool().await;
        let rows = sqlx::query("SELECT deployment, line FROM journal ORDER BY deployment, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        let mut out: BTreeMap<String, Vec<JournalLine>> = BTreeMap::new();
        for r in rows {
            let text: String = r.get("line");
            out.entry(r.get("deployment"))
                .or_default()
                .push(serde_json::from_str(&text).expect("a journal line"));
        }
        out
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default()
    }

    /// Everything every replica process wrote (the dead ones' logs included).
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.spawned {
            out.push_str(
                &std::fs::read_to_string(self.dir.join(format!("replica-{n}.log")))
                    .unwrap_or_default(),
            );
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            let _ = Command::new("kill")
                .args(["-CONT", &r.child.id().to_string()])
                .status();
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        let _ = self.cloud.kill();
        let _ = self.cloud.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("replica logs kept in {}", self.dir.display());
        }
    }
}

/// The deployment a command id belongs to (`<deployment>/<step>…`).
pub fn deployment_of(command: &str) -> &str {
    command.split('/').next().unwrap_or(command)
}

/// The app a deployment id belongs to (`<app>-<stamp>-<n>`).
pub fn app_of(deployment: &str) -> &str {
    deployment.split('-').next().unwrap_or(deployment)
}

/// What the HA tests assert over the cloud's call log and the store.
pub struct Audit {
    pub problems: Vec<String>,
    pub takeovers: usize,
    pub deployments_driven: usize,
}

/// - No app ever has two deployments sending commands at once (their spans of calls never
///   overlap).
/// - Once a second process sent a command for a deployment, the first never sends
///   another (a takeover is clean: the old owner was fenced).
/// - Each write (command id + attempt) was sent by one process only.
/// - Every call the cloud received was journalled as an output before it was sent, and
///   every journal is whole (sequence numbers 1..n with no gap, ending at the row's seq).
pub fn audit(
    calls: &[Call],
    journals: &BTreeMap<String, Vec<JournalLine>>,
    rows: &[(String, String, String, String, i64)],
) -> Audit {
    let mut problems = Vec::new();
    let mut by_dep: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    // The outcome's tags and the scalable target's placement are sent by the runner
    // beside the machine, not by it: informational and desired state (the same
    // placement for the same persisted phase, whoever sends it), outside the journal by
    // design — not the machine's commands this audit is about.
    for c in calls
        .iter()
        .filter(|c| !c.command.ends_with("/tag-slots") && !c.command.ends_with("/place-scaling"))
    {
        by_dep.entry(deployment_of(&c.command)).or_default().push(c);
    }
    // Spans per app.
    let mut spans: BTreeMap<&str, Vec<(u64, u64, &str)>> = BTreeMap::new();
    let mut takeovers = 0;
    for (dep, cs) in &by_dep {
        let first = cs.first().unwrap().seq;
        let last = cs.last().unwrap().seq;
        spans
            .entry(app_of(dep))
            .or_default()
            .push((first, last, dep));
        let mut owners: Vec<&str> = Vec::new();
        for c in cs {
            match owners.iter().position(|o| *o == c.replica) {
                None => owners.push(&c.replica),
                // A read a paused replica had handed to its executor before the pause
                // (the residual window between its lease check and the call, see
                // docs/service.md) may reach the cloud after the takeover: harmless.
                // A write may not.
                Some(p) if p + 1 != owners.len() && c.write => problems.push(format!(
                    "{dep}: process {} sent the write {} (seq {}) after process {} took over",
                    c.replica,
                    c.command,
                    c.seq,
                    owners.last().unwrap()
                )),
                Some(_) => {}
            }
        }
        takeovers += owners.len().saturating_sub(1);
        let mut writers: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for c in cs.iter().filter(|c| c.write) {
            if let Some(other) = writers.insert((&c.command, c.attempt), &c.replica)
                && other != c.replica
            {
                problems.push(format!(
                    "{dep}: write {} attempt {} sent by two processes ({other}, {})",
                    c.command, c.attempt, c.replica
                ));
            }
        }
        // Write-ahead: every call is an output line of the deployment's journal.
        let journalled: std::collections::BTreeSet<(String, u32)> = journals
            .get(*dep)
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| match &l.entry {
                        JournalEntry::Output {
                            output: Output::Command(c),
                        } => Some((c.id.to_string(), c.attempt)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for c in cs {
            if !journalled.contains(&(c.command.clone(), c.attempt)) {
                problems.push(format!(
                    "{dep}: {} attempt {} reached the cloud but is not in the journal",
                    c.command, c.attempt
                ));
            }
        }
    }
    for (app, mut s) in spans {
        s.sort();
        for w in s.windows(2) {
            if w[1].0 <= w[0].1 {
                problems.push(format!(
                    "{app}: {} (calls {}..{}) and {} (calls {}..{}) drove AWS at the same time",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                ));
            }
        }
    }
    for (id, _, _, _, seq) in rows {
        let lines = journals.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        let whole = seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1);
        if !whole || seqs.len() as i64 != *seq {
            problems.push(format!(
                "{id}: journal has {} lines (whole: {whole}), the row says seq {seq}",
                seqs.len()
            ));
        }
    }
    Audit {
        problems,
        takeovers,
        deployments_driven: by_dep.len(),
    }
}

/// A small deterministic generator for the test's choices (seed printed on failure).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

pub fn seed() -> u64 {
    std::env::var("BLUEGREEN_HA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        })
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
