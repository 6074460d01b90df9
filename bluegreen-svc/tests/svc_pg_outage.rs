//! The store goes away mid-deployment: a private PostgreSQL server (started by this test
//! on a port of its own, so the machine's shared server is never touched) is stopped for
//! 10 s while the real `bluegreen serve` drives deployments, then started again. Nothing
//! is dropped: `/readyz` says 503 meanwhile, and every deployment completes after.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const API_TOKEN: &str = "outage-api-token-0123456789";

/// A PostgreSQL server of this test's own (initdb into a temporary directory, run as
/// the `postgres` user).
struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn missing(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}; CI=true: a missing dependency is a failure, not a skip");
    }
    eprintln!("SKIPPED: {what}");
    true
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivatePg {
    fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    fn as_postgres(&self, args: &[&str]) -> bool {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start_new() -> Option<PrivatePg> {
        let bin = Self::bin_dir()?;
        let dir = std::env::temp_dir().join(format!("bluegreen-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .ok()?;
        if !chown.success() {
            return None;
        }
        let pg = PrivatePg {
            dir,
            bin,
            port: free_port(),
        };
        let data = pg.dir.join("data");
        let initdb = pg.bin.join("initdb");
        if !pg.as_postgres(&[
            initdb.to_str()?,
            "-D",
            data.to_str()?,
            "-A",
            "trust",
            "-U",
            "root",
            "--no-sync",
        ]) {
            return None;
        }
        pg.start().then_some(pg)
    }

    fn start(&self) -> bool {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            self.dir.join("log").to_str().unwrap(),
            "-w",
            "start",
        ])
    }

    fn stop(&self) -> bool {
        let data = self.dir.join("data");
        self.as_postgres(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ])
    }

    fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let r = http.get(url).bearer_auth(API_TOKEN).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_ten_seconds_mid_deployment_drops_nothing() {
    let Some(pg) = PrivatePg::start_new() else {
        missing("a private PostgreSQL server could not be started (initdb/pg_ctl as postgres)");
        return;
    };
    let dir = pg.dir.join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
    let mut apps = String::new();
    for name in ["o1", "o2", "o3"] {
        apps.push_str(&format!(
            r#"
[[apps]]
name = "{name}"
cluster = "outage"
services = ["{name}-a", "{name}-b"]
target_groups = ["{arn}:targetgroup/{name}-a/0001", "{arn}:targetgroup/{name}-b/0002"]
listener = "{arn}:listener/app/{name}/0003/0004"
container = "{name}"
strategy = {{ kind = "linear", step = 25, interval = "2s" }}
bake = "4s"
drain = "1s"
health = {{ healthy_observations_min = 2, degraded_observations_max = 3 }}
timeouts = {{ deploy = "10m", health = "10m", approval = "1h", command = "30s", scale_down = "10m" }}
pacing = {{ poll_interval = "500ms", attempts_max = 8, retry_min = "200ms", retry_max = "1s" }}
"#
        ));
    }
    let config = dir.join("bluegreen.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstore = \"{}\"\n[cloud]\nkind = \"sim\"\n\
             [runner]\nlease_ttl = \"3s\"\nscan = \"200ms\"\n{apps}",
            pg.url()
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_bluegreen"))
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(&dir)
            .env("BLUEGREEN_API_TOKEN", API_TOKEN)
            .env("BLUEGREEN_WEBHOOK_TOKEN", "outage-webhook-token-0123456789")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("bluegreen serve starts"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&http, &format!("{base}/readyz")).await != Some(200) {
        assert!(Instant::now() < deadline, "never ready: {}", log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids = Vec::new();
    for app in ["o1", "o2", "o3"] {
        let r = http
            .post(format!("{base}/v1/deployments"))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"app":"{app}","image":"{app}:v2"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // Mid-deployment: the first one is shifting traffic.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = json(&http, &format!("{base}/v1/deployments/{}", ids[0])).await;
        if v.as_ref().is_some_and(|v| v["phase"] == "shift") {
            break;
        }
        assert!(Instant::now() < deadline, "never shifted: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pg.stop(), "the private server stops");
    let stopped = Instant::now();
    // Meanwhile a read is answered "not answering; retry" (503 with Retry-After), never a
    // 500, and nothing it asked is lost.
    let r = http
        .get(format!("{base}/v1/deployments/{}", ids[1]))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a read while the store is down");
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
    // And the replica says it cannot take work.
    let mut saw_unready = false;
    while stopped.elapsed() < Duration::from_secs(10) {
        if status(&http, &format!("{base}/readyz")).await == Some(503) {
            saw_unready = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(pg.start(), "the private server starts again");
    assert!(saw_unready, "/readyz answered 503 while the store was down");
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let v = json(&http, &format!("{base}/v1/deployments/{id}")).await;
            if let Some(v) = &v
                && v["state"] == "finished"
            {
                assert_eq!(v["phase"], "completed", "{id}: {v}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never finished after the outage: {v:?}\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(status(&http, &format!("{base}/readyz")).await, Some(200));
    let text = log_text();
    assert!(
        text.contains("retrying") || text.contains("heartbeat"),
        "the outage was seen and ridden out: {text}"
    );
}
