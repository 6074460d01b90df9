//! Shared by the status-page and notification tests: `bluegreen serve` started as a
//! child process (the binary a user runs, on the embedded default's simulated cloud),
//! and a minimal W3C WebDriver client for chromedriver over reqwest.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The embedded default (`bluegreen-svc/src/example.toml`) with `edit` applied to its text.
pub fn example_config(edit: impl Fn(String) -> String) -> String {
    edit(include_str!("../../src/example.toml").to_string())
}

/// A running `bluegreen serve`, killed (SIGTERM, then waited for) on drop.
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub banner: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub dir: PathBuf,
}

impl Serve {
    /// Start `bluegreen --config <dir>/bluegreen.toml serve` on 127.0.0.1:0 and wait
    /// (bounded) for the banner's address. `env`: extra variables (BLUEGREEN_* from the
    /// test's own environment are removed first).
    pub fn start(dir: &Path, config: &str, env: &[(&str, String)]) -> Serve {
        let path = dir.join("bluegreen.toml");
        std::fs::write(&path, config).expect("config written");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bluegreen"));
        cmd.arg("--config")
            .arg(&path)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BLUEGREEN_")) {
            cmd.env_remove(k);
        }
        cmd.env(
            "BLUEGREEN_SERVER_STORE",
            format!("sqlite://{}", dir.join("bluegreen.db").display()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("bluegreen serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if line.contains("status page:") {
                        let url = line
                            .split_whitespace()
                            .find(|w| w.starts_with("http://"))
                            .expect("an address on the status page line");
                        break url.trim_end_matches("/ui").to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "serve printed no status page address within 60 s; stdout so far:\n{banner}\nstderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        Serve {
            child,
            base,
            banner,
            stderr,
            dir: dir.to_path_buf(),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: kill(2) with SIGTERM on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("bluegreen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Poll `check` (blocking) until it yields, or panic naming `what` after `limit`.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------- WebDriver ----------------

/// chromedriver started by the test on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    pub base: String,
}

/// Where chromedriver and chromium are: `BLUEGREEN_CHROMEDRIVER` / `BLUEGREEN_CHROMIUM`,
/// else Debian's paths, else the PATH.
pub fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var) {
            return Some(PathBuf::from(p));
        }
        for n in names {
            let p = PathBuf::from(n);
            if p.is_absolute() && p.exists() {
                return Some(p);
            }
            if let Some(path) = std::env::var_os("PATH") {
                for d in std::env::split_paths(&path) {
                    let c = d.join(n);
                    if c.exists() {
                        return Some(c);
                    }
                }
            }
        }
        None
    };
    let driver = find(
        "BLUEGREEN_CHROMEDRIVER",
        &["/usr/bin/chromedriver", "chromedriver"],
    )?;
    let chromium = find(
        "BLUEGREEN_CHROMIUM",
        &["/usr/bin/chromium", "chromium", "chromium-browser"],
    )?;
    Some((driver, chromium))
}

impl Driver {
    pub async fn start(path: &Path) -> Driver {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().unwrap().port()
        };
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        until(
            "chromedriver to answer /status",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let url = format!("{base}/status");
                async move {
                    let r = http.get(url).send().await.ok()?;
                    let v: Value = r.json().await.ok()?;
                    (v["value"]["ready"] == true).then_some(())
                }
            },
        )
        .await;
        Driver { child, base }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
pub struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    pub async fn new(driver: &Driver, chromium: &Path, profile: &Path) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    "--window-size=1200,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let r = http
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = r.json().await.expect("session JSON");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Session {
            http,
            url: format!("{}/session/{id}", driver.base),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver JSON");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let v = self
            .call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        assert!(v.is_null(), "navigate to {url}: {v}");
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// An element's visible text (`None` if it went stale or is gone).
    pub async fn text(&self, css: &str) -> Option<String> {
        let id = self.find(css).await?;
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        v.as_str().map(str::to_string)
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css).await?;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/attribute/{name}"),
                None,
            )
            .await;
        v.as_str().map(str::to_string)
    }

    /// The page's HTML (for failure messages).
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let Some(id) = self.find(css).await else {
            panic!(
                "no {css} in {}:\n{}",
                self.current_url().await,
                self.source().await
            );
        };
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{id}/value"),
                Some(json!({ "text": text })),
            )
            .await;
        assert!(v.is_null(), "type into {css}: {v}");
    }

    /// Click the element; `false` when it is gone or went stale (the page's live update
    /// replaced it) so the caller can find it again.
    pub async fn click(&self, css: &str) -> bool {
        let Some(id) = self.find(css).await else {
            return false;
        };
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{id}/click"),
                Some(json!({})),
            )
            .await;
        v.is_null()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(v.as_str().expect("base64 screenshot"))
    }

    pub async fn close(mut self) {
        let _ = self.http.delete(&self.url).send().await;
        self.url.clear();
    }
}

impl Drop for Session {
    /// A test that fails mid-way still ends its browser: chromedriver only quits Chromium
    /// when the session is deleted (killing chromedriver would orphan it). A blocking
    /// one-shot HTTP/1.1 DELETE, since `Drop` cannot await.
    fn drop(&mut self) {
        use std::io::Write;
        let Some(rest) = self.url.strip_prefix("http://") else {
            return;
        };
        let Some((host, path)) = rest.split_once('/') else {
            return;
        };
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

/// Standard base64 (the screenshot's encoding).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
