//! Talking to a running server, or working in-process on the config's store (the
//! in-process controller).

use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::{OperatorRequest, PhaseName};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::Remote;
use super::display::{View, print_view, strip_plan, summary, transition_line};
use crate::api::error::ErrorBody;
use crate::config::{CloudKind, Config};
use crate::runner::{Runner, Source, Submit};
use crate::serve::{DEV_TOKEN, clock_for, shutdown_signal};
use crate::store::Store;

// ---------- talking to a server, or working in-process ----------

pub(super) enum Backend {
    Remote {
        client: reqwest::Client,
        base: String,
        token: String,
    },
    Local {
        config: Box<Config>,
    },
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    matches!(host, "127.0.0.1" | "localhost" | "[") || host.starts_with("127.")
}

/// Tries of one request to the server, the first included.
const REQUEST_ATTEMPTS_MAX: u32 = 6;
/// Longest wait between tries, whatever `Retry-After` asks.
const RETRY_WAIT_MAX_S: u64 = 10;

/// A gateway's or the server's "not now" (502, 503, 504): a read is asked again; a write
/// only when the server said nothing was done (`store_unavailable`).
fn retryable(method: &reqwest::Method, status: u16, err: Option<&ErrorBody>) -> bool {
    matches!(status, 502..=504)
        && (method == reqwest::Method::GET || err.is_some_and(|e| e.code == "store_unavailable"))
}

/// `Retry-After` when given (capped), else 1, 2, 4, 8 s…
fn retry_wait(attempt: u32, retry_after_s: Option<u64>) -> Duration {
    let backoff_s = 1u64 << (attempt - 1).min(4);
    Duration::from_secs(
        retry_after_s
            .unwrap_or(backoff_s)
            .clamp(1, RETRY_WAIT_MAX_S),
    )
}

impl Backend {
    pub(super) fn is_local(&self) -> bool {
        matches!(self, Backend::Local { .. })
    }

    pub(super) async fn pick(config: &Config, remote: &Remote) -> Backend {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let token_for = |base: &str| {
            std::env::var("BLUEGREEN_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| {
                    if is_loopback_url(base) {
                        DEV_TOKEN.to_string()
                    } else {
                        String::new()
                    }
                })
        };
        if let Some(base) = &remote.server {
            let base = base.trim_end_matches('/').to_string();
            return Backend::Remote {
                token: token_for(&base),
                client,
                base,
            };
        }
        if !remote.local {
            let base = format!("http://{}", config.server.listen);
            let probe = client
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                eprintln!("bluegreen: using the server at {base}");
                return Backend::Remote {
                    token: token_for(&base),
                    client,
                    base,
                };
            }
        }
        Backend::Local {
            config: Box::new(config.clone()),
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let Backend::Remote {
            client,
            base,
            token,
        } = self
        else {
            unreachable!("only remote backends make requests")
        };
        // Bounded: a store restart or a replica's takeover is seconds; a `deploy` being
        // followed must not exit 1 ("did not complete") over one of those.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                // A read that never reached the server (connection refused or reset):
                // nothing happened, so it may go again. A write may have landed: never.
                Err(e) if method == reqwest::Method::GET && attempt < REQUEST_ATTEMPTS_MAX => {
                    let wait = retry_wait(attempt, None);
                    eprintln!("bluegreen: {base}: {e}; retrying in {}s", wait.as_secs());
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(format!("{base}: {e}")),
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let text = resp.text().await.map_err(|e| format!("{base}: {e}"))?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status < 400 {
                return Ok((status, value));
            }
            let err: Option<ErrorBody> = value
                .get("error")
                .and_then(|e| serde_json::from_value(e.clone()).ok());
            if retryable(&method, status, err.as_ref()) && attempt < REQUEST_ATTEMPTS_MAX {
                let wait = retry_wait(attempt, retry_after);
                let code = err.as_ref().map_or("", |e| e.code.as_str());
                eprintln!(
                    "bluegreen: HTTP {status} {code} from {base}; retrying in {}s (attempt {} of {REQUEST_ATTEMPTS_MAX})",
                    wait.as_secs(),
                    attempt + 1
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(match err {
                Some(e) => format!("HTTP {status} {}: {}", e.code, cli_words(&e.message)),
                None => format!("HTTP {status}: {value}"),
            });
        }
    }

    async fn store(config: &Config) -> Result<Store, String> {
        Store::connect(&config.server.store)
            .await
            // issue 10: never print the store's password (URL and error text redacted).
            .map_err(|e| crate::serve::ServeError::store(&config.server.store, &e).to_string())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Value, String> {
        match self {
            Backend::Remote { .. } => Ok(self
                .request(reqwest::Method::GET, &format!("/v1/deployments/{id}"), None)
                .await?
                .1),
            Backend::Local { config } => {
                let store = Self::store(config).await?;
                let s = store
                    .get(id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no deployment {id}"))?;
                Ok(serde_json::to_value(crate::api::deployments_view(&s, true))
                    .expect("views serialise"))
            }
        }
    }

    pub(super) async fn list(&self) -> Result<Value, String> {
        match self {
            Backend::Remote { .. } => Ok(self
                .request(reqwest::Method::GET, "/v1/deployments?limit=20", None)
                .await?
                .1),
            Backend::Local { config } => {
                let store = Self::store(config).await?;
                let rows = store.list(None, 20).await.map_err(|e| e.to_string())?;
                let views: Vec<_> = rows
                    .iter()
                    .map(|r| crate::api::deployments_view(r, false))
                    .collect();
                Ok(serde_json::json!({ "deployments": views }))
            }
        }
    }

    pub(super) async fn latest(&self, config: &Config, app: &str) -> Result<String, String> {
        let list = match self {
            Backend::Remote { .. } => {
                self.request(
                    reqwest::Method::GET,
                    &format!("/v1/deployments?app={app}&limit=1"),
                    None,
                )
                .await?
                .1
            }
            Backend::Local { config } => {
                let store = Self::store(config).await?;
                let rows = store.list(Some(app), 1).await.map_err(|e| e.to_string())?;
                let views: Vec<_> = rows
                    .iter()
                    .map(|r| crate::api::deployments_view(r, false))
                    .collect();
                serde_json::json!({ "deployments": views })
            }
        };
        list["deployments"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| match (config.app(app), self) {
                (Some(_), _) => format!("app {app} has no deployments yet"),
                (None, Backend::Local { .. }) => unknown_app(config, app),
                (None, Backend::Remote { .. }) => format!(
                    "the server has no deployments for app {app:?} (is it configured there? GET /v1/apps lists the server's apps)"
                ),
            })
    }

    pub(super) async fn journal(&self, id: &str) -> Result<String, String> {
        match self {
            Backend::Remote { .. } => match self
                .request(
                    reqwest::Method::GET,
                    &format!("/v1/deployments/{id}/journal"),
                    None,
                )
                .await?
                .1
            {
                Value::String(s) => Ok(s),
                other => Ok(format!("{other}\n")),
            },
            Backend::Local { config } => {
                let store = Self::store(config).await?;
                let lines = store.journal(id).await.map_err(|e| e.to_string())?;
                if lines.is_empty() {
                    return Err(format!("no deployment {id}"));
                }
                Ok(lines
                    .iter()
                    .map(|l| serde_json::to_string(l).expect("journal lines serialise") + "\n")
                    .collect())
            }
        }
    }

    pub(super) async fn deploy(
        &self,
        config: &Config,
        app: &str,
        image: &str,
        supersede: bool,
    ) -> Result<String, String> {
        match self {
            Backend::Remote { .. } => {
                let body =
                    serde_json::json!({ "app": app, "image": image, "supersede": supersede });
                let (status, v) = self
                    .request(reqwest::Method::POST, "/v1/deployments", Some(body))
                    .await?;
                let id = v["id"]
                    .as_str()
                    .ok_or("the server answered without an id")?
                    .to_string();
                if status == 200 {
                    eprintln!("bluegreen: {app} is already deploying {image} as {id}");
                }
                Ok(id)
            }
            Backend::Local { .. } => {
                let local = Local::start(config).await?;
                let submitted = local
                    .runner
                    .submit(Submit {
                        app: app.to_string(),
                        image: image.to_string(),
                        source: Source::Api { supersede },
                    })
                    .await
                    .map_err(|e| cli_words(&e.to_string()))?;
                LOCAL.with_local(local);
                match submitted {
                    crate::runner::Submitted::Ignored(why) => Err(why.to_string()),
                    other => Ok(other.id().map(|i| i.to_string()).unwrap_or_default()),
                }
            }
        }
    }

    pub(super) async fn operate(
        &self,
        config: &Config,
        id: &str,
        request: OperatorRequest,
        json: bool,
    ) -> Result<i32, String> {
        let name = request.name();
        match self {
            Backend::Remote { .. } => {
                let body = match &request {
                    OperatorRequest::Abort { reason: Some(r) } => {
                        Some(serde_json::json!({ "reason": r }))
                    }
                    _ => None,
                };
                self.request(
                    reqwest::Method::POST,
                    &format!("/v1/deployments/{id}/{name}"),
                    body,
                )
                .await?;
                eprintln!("bluegreen: {name} accepted for {id}");
                Ok(0)
            }
            Backend::Local { .. } => {
                // No server drives this deployment: drive it here, apply the request,
                // and follow it to the end.
                let local = Local::start(config).await?;
                local
                    .runner
                    .operate(id, request)
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "bluegreen: {name} accepted for {id}; no server is running, so this process drives it"
                );
                LOCAL.with_local(local);
                self.follow(id, json).await
            }
        }
    }

    /// Follow a deployment until it finishes; exit code 0 when it completed.
    pub(super) async fn follow(&self, id: &str, json: bool) -> Result<i32, String> {
        // A progress bar for a person at a terminal; otherwise (a pipe, a CI log) one
        // plain line per change, printed as it happens.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let plain = !json && !tty;
        let bar = (!json && tty).then(|| {
            let pb = ProgressBar::new(100);
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:>13} [{bar:20}] green {pos:>3}% {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        let mut seen_transitions = 0usize;
        let mut last_summary: Option<String> = None;
        let stop = shutdown_signal();
        tokio::pin!(stop);
        // Bounded by the deployment's own deadlines; Ctrl-C stops following.
        loop {
            let raw = self.get(id).await?;
            let view = View::of(&raw).ok_or_else(|| format!("not a deployment: {raw}"))?;
            for t in view.transitions.iter().skip(seen_transitions) {
                let line = transition_line(t);
                if let Some(pb) = &bar {
                    pb.println(line);
                } else if plain {
                    println!("{line}");
                }
            }
            seen_transitions = view.transitions.len();
            let summary = summary(&view);
            let changed = last_summary.as_deref() != Some(summary.as_str());
            if plain && changed {
                println!("{:<13} {summary}", view.phase);
            }
            if json && changed {
                println!(
                    "{}",
                    serde_json::to_string(&strip_plan(&raw)).expect("json")
                );
            }
            if let Some(pb) = &bar {
                pb.set_prefix(view.phase.clone());
                pb.set_position(u64::from(view.weights.green));
                pb.set_message(summary.clone());
            }
            last_summary = Some(summary);
            if view.is_over() {
                if let Some(pb) = &bar {
                    pb.finish_and_clear();
                }
                if !json {
                    print_view(&raw, false);
                }
                if let Some(local) = LOCAL.take() {
                    local.stop().await;
                }
                return Ok(if view.phase == PhaseName::Completed.as_str() {
                    0
                } else {
                    1
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = &mut stop => {
                    if let Some(pb) = &bar { pb.finish_and_clear(); }
                    eprintln!("bluegreen: stopped following {id} (phase {})", view.phase);
                    if let Some(local) = LOCAL.take() {
                        eprintln!("bluegreen: persisting; `bluegreen serve` resumes it");
                        local.stop().await;
                    }
                    return Ok(130);
                }
            }
        }
    }
}

// ---------- the in-process controller ----------

/// A runner started by this CLI process (no server is running).
struct Local {
    runner: Runner<crate::hooks::HookedCloud<crate::cloud::AnyCloud>>,
}

/// The cloud `[cloud] kind` names, for a process of its own (the CLI's in-process
/// controller, `plan --live`).
pub(super) async fn build_cloud(
    config: &Config,
    clock: std::sync::Arc<dyn crate::runner::Clock>,
) -> Result<crate::cloud::AnyCloud, String> {
    Ok(match config.cloud.kind {
        CloudKind::Sim => crate::cloud::AnyCloud::Sim(Box::new(
            crate::cloud::sim::build(config, clock).map_err(|e| e.to_string())?,
        )),
        CloudKind::Aws => crate::cloud::AnyCloud::Aws(Box::new(
            crate::cloud::aws::build()
                .await
                .map_err(|e| e.to_string())?,
        )),
        CloudKind::Remote => {
            crate::cloud::AnyCloud::Remote(Box::new(crate::cloud::remote::RemoteCloud::new(
                config.cloud.url.as_deref().unwrap_or_default(),
            )?))
        }
    })
}

impl Local {
    async fn start(config: &Config) -> Result<Local, String> {
        let clock = clock_for(config);
        let cloud = build_cloud(config, clock.clone()).await?;
        let hook_secret = std::env::var("BLUEGREEN_HOOK_SECRET")
            .ok()
            .map(String::into_bytes);
        // `[[notify]]` entries notify for in-process deployments as they do for a server's.
        let notify_targets = crate::notify::Notifier::targets(
            &config.notify,
            |name| std::env::var(name).ok(),
            hook_secret.as_deref(),
        )?;
        let store = Backend::store(config).await?;
        // Another controller on the same store (a server) keeps driving its apps: this
        // process only drives the apps whose leases are free.
        let limits = config.runner_limits();
        let runner = Runner::start(
            crate::hooks::HookedCloud::new(cloud, hook_secret.clone()),
            store,
            clock,
            config.templates(),
            limits,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !notify_targets.is_empty() {
            runner.set_notifier(crate::notify::Notifier::start(
                notify_targets,
                hook_secret.clone(),
            ));
        }
        Ok(Local { runner })
    }

    async fn stop(self) {
        self.runner.shutdown().await;
        self.runner.flush_notifications().await;
        self.runner.store().clone().close().await;
    }
}

/// The process's in-process controller, kept alive while `follow` runs.
struct LocalSlot(std::sync::Mutex<Option<Arc<Local>>>);

static LOCAL: LocalSlot = LocalSlot(std::sync::Mutex::new(None));

impl LocalSlot {
    fn with_local(&self, local: Local) {
        *self.0.lock().expect("local lock") = Some(Arc::new(local));
    }

    fn take(&self) -> Option<Local> {
        let arc = self.0.lock().expect("local lock").take()?;
        Arc::into_inner(arc)
    }
}

/// Server wording → CLI wording: the API's `"supersede": true` is the CLI's `--supersede`.
pub(super) fn cli_words(message: &str) -> String {
    message.replace("pass \"supersede\": true", "pass --supersede")
}

/// "no app named "webb" in the config (did you mean "web"?)"
pub(super) fn unknown_app(config: &Config, app: &str) -> String {
    let names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
    let hint = match super::display::closest(app, &names) {
        Some(n) => format!(" (did you mean {n:?}?)"),
        None if names.is_empty() => " (the config has no apps)".to_string(),
        None => format!(" (apps: {})", names.join(", ")),
    };
    format!("no app named {app:?} is configured{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflict_message_names_the_cli_flag() {
        let m =
            "app web already has deployment web-1 running (pass \"supersede\": true to replace it)";
        assert_eq!(
            cli_words(m),
            "app web already has deployment web-1 running (pass --supersede to replace it)"
        );
    }
}
