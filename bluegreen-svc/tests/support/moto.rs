//! The local AWS emulator (moto server): started on a free loopback port, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::config::Credentials;

/// Readiness polls (every 50 ms: 20 s in all; a cold Python start takes about 1 s).
const READY_POLLS_MAX: u32 = 400;
/// Start attempts (a free port found by binding can be taken before moto binds it).
const START_ATTEMPTS_MAX: u32 = 3;

pub const REGION: &str = "us-east-1";

/// A running moto server. Dropping it kills the process.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    http: reqwest::Client,
}

/// Where moto_server is: `$BLUEGREEN_MOTO_SERVER`, else the repository's `.moto/` venv.
pub fn moto_binary() -> PathBuf {
    std::env::var_os("BLUEGREEN_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.moto/bin/moto_server")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Moto {
    /// Start the emulator, or `None` (with a message) when it is not installed — except
    /// under `CI=true`, where a missing emulator fails the test.
    pub async fn start_or_skip(test: &str) -> Option<Moto> {
        let binary = moto_binary();
        if !binary.exists() {
            let msg = format!(
                "{test}: the AWS emulator is not installed at {} (run scripts/test, which creates .moto/, \
                 or set BLUEGREEN_MOTO_SERVER)",
                binary.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{msg}; CI=true: a missing emulator is a failure");
            }
            eprintln!("SKIPPED {msg}");
            return None;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        for attempt in 1..=START_ATTEMPTS_MAX {
            let port = free_port();
            let mut child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let endpoint = format!("http://127.0.0.1:{port}");
            let mut ready = false;
            for _ in 0..READY_POLLS_MAX {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port was taken, try another
                }
                let probe = http
                    .get(format!("{endpoint}/moto-api/data.json"))
                    .send()
                    .await;
                if probe.is_ok_and(|r| r.status().is_success()) {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if ready {
                let moto = Moto {
                    child,
                    endpoint,
                    http,
                };
                moto.manual_task_transitions().await;
                return Some(moto);
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("moto did not become ready on port {port} (attempt {attempt})");
        }
        panic!("the AWS emulator did not start after {START_ATTEMPTS_MAX} attempts");
    }

    /// Keep ECS tasks where they are instead of stepping them on every describe.
    pub async fn manual_task_transitions(&self) {
        let r = self
            .http
            .post(format!("{}/moto-api/state-manager/set-transition", self.endpoint))
            .body(r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#)
            .send()
            .await
            .expect("set-transition");
        assert!(r.status().is_success(), "set-transition: {}", r.status());
    }

    /// Forget every resource (the default VPC comes back).
    pub async fn reset(&self) {
        let r = self
            .http
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .expect("reset");
        assert!(r.status().is_success(), "reset: {}", r.status());
        self.manual_task_transitions().await;
    }

    /// An SDK configuration pointing at the emulator (dummy credentials; SDK retries are
    /// whatever the caller sets — the adapter disables them).
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_at(&self.endpoint).await
    }

    /// The same, with another endpoint (the CloudWatch bridge).
    pub async fn sdk_config_at(&self, endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
