//! `bluegreen serve`: the store, the runner, the hook executor and the HTTP server wired
//! together, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::Cloud;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::listen::ConnLimits;
use crate::api::{self, ApiState};
use crate::config::{CloudKind, Config};
use crate::hooks::HookedCloud;
use crate::runner::{Clock, Runner, ScaledClock, StartError, SystemClock};
use crate::store::{Store, StoreError};
use crate::telemetry;

/// The documented development token: used for both tokens when they are unset and the
/// service runs the simulated cloud on a loopback address (never otherwise).
pub const DEV_TOKEN: &str = "dev-token";
/// The hook secret in the same development case.
pub const DEV_HOOK_SECRET: &str = "dev-hook-secret";
/// Shortest token accepted from the environment.
pub const TOKEN_CHARS_MIN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Secrets(String),
    /// `url` is always redacted (see [`crate::store::redact`]), and so is the error text.
    #[error("store {url}: {error}")]
    Store { url: String, error: String },
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{0}")]
    Cloud(String),
    #[error("server: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Notify(String),
}

impl ServeError {
    /// A store error with the URL's password removed from both the URL and the error's
    /// text (a driver may quote the URL it was given).
    pub fn store(url: &str, error: &StoreError) -> ServeError {
        ServeError::Store {
            url: crate::store::redact(url),
            error: crate::store::scrub(url, &error.to_string()),
        }
    }
}

/// The secrets the service needs, all from the environment.
#[derive(Clone)]
pub struct Secrets {
    pub api_token: String,
    pub webhook_token: String,
    pub hook_secret: Option<Vec<u8>>,
    /// The development tokens are in use.
    pub dev: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Read `BLUEGREEN_API_TOKEN`, `BLUEGREEN_WEBHOOK_TOKEN`, `BLUEGREEN_HOOK_SECRET` from
    /// `env`. Unset tokens are an error unless the service runs the simulated cloud on a
    /// loopback address, where the documented [`DEV_TOKEN`] stands in.
    pub fn from_env(
        config: &Config,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<Secrets, ServeError> {
        // Trimmed: a secret read from a file (`$(cat token)`, a Kubernetes secret) often
        // ends in a newline, and the presented token is trimmed the same way.
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let dev_allowed = config.cloud.kind == CloudKind::Sim && config.listen().ip().is_loopback();
        let mut dev = false;
        let mut token = |name: &str| -> Result<String, ServeError> {
            match get(name) {
                Some(t) if t.chars().count() >= TOKEN_CHARS_MIN => Ok(t),
                Some(_) => Err(ServeError::Secrets(format!(
                    "{name} must be at least {TOKEN_CHARS_MIN} characters"
                ))),
                None if dev_allowed => {
                    dev = true;
                    Ok(DEV_TOKEN.to_string())
                }
                None => Err(ServeError::Secrets(format!(
                    "{name} is not set: it is required unless the service runs the simulated cloud on a loopback address"
                ))),
            }
        };
        let api_token = token("BLUEGREEN_API_TOKEN")?;
        let webhook_token = token("BLUEGREEN_WEBHOOK_TOKEN")?;
        // Separate tokens: whoever holds the webhook token (EventBridge's connection)
        // must not be able to operate deployments, and the reverse.
        if !dev && api_token == webhook_token {
            return Err(ServeError::Secrets(
                "BLUEGREEN_API_TOKEN and BLUEGREEN_WEBHOOK_TOKEN must differ: the webhook token is held by EventBridge and must not operate the API".into(),
            ));
        }
        let hooks = config.apps.iter().any(|a| !a.draft.hooks.is_empty());
        let hook_secret = match get("BLUEGREEN_HOOK_SECRET") {
            Some(s) => Some(s.into_bytes()),
            None if hooks && dev_allowed => Some(DEV_HOOK_SECRET.as_bytes().to_vec()),
            None if hooks => {
                return Err(ServeError::Secrets(
                    "BLUEGREEN_HOOK_SECRET is not set: apps with hooks need it to sign hook calls"
                        .into(),
                ));
            }
            None => None,
        };
        Ok(Secrets {
            api_token,
            webhook_token,
            hook_secret,
            dev,
        })
    }
}

/// The clock the config asks for (faster than real time only on the simulated cloud).
pub fn clock_for(config: &Config) -> Arc<dyn Clock> {
    if config.cloud.kind == CloudKind::Sim && config.cloud.speed > 1 {
        Arc::new(ScaledClock::starting_now(config.cloud.speed))
    } else {
        Arc::new(SystemClock)
    }
}

/// A running server (tests, benches and `serve` itself).
pub struct Server<C> {
    pub addr: SocketAddr,
    pub runner: Runner<HookedCloud<C>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl<C: Cloud + 'static> Server<C> {
    /// Start the store, the runner (resuming unfinished deployments) and the HTTP server
    /// on `listener`.
    pub async fn start(
        config: &Config,
        cloud: C,
        clock: Arc<dyn Clock>,
        secrets: Secrets,
        listener: TcpListener,
    ) -> Result<Server<C>, ServeError> {
        let store_error = |error: StoreError| ServeError::store(&config.server.store, &error);
        let store = Store::connect(&config.server.store)
            .await
            .map_err(store_error)?;
        // Notification URLs come from the environment variables the config names.
        let notify_targets = crate::notify::Notifier::targets(
            &config.notify,
            |name| std::env::var(name).ok(),
            secrets.hook_secret.as_deref(),
        )
        .map_err(ServeError::Notify)?;
        let cloud = HookedCloud::new(cloud, secrets.hook_secret.clone());
        let runner = Runner::start(
            cloud,
            store,
            clock,
            config.templates(),
            config.runner_limits(),
        )
        .await
        .map_err(|e| match e {
            StartError::Store(error) => store_error(error),
        })?;
        if !notify_targets.is_empty() {
            let notifier =
                crate::notify::Notifier::start(notify_targets, secrets.hook_secret.clone());
            runner.set_notifier(notifier);
        }
        let state = Arc::new(ApiState::new(
            runner.clone(),
            config,
            &secrets.api_token,
            &secrets.webhook_token,
            telemetry::install(),
        ));
        let router = api::router(state, Duration::from_millis(config.server.request_timeout));
        let addr = listener.local_addr().map_err(ServeError::Server)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task_runner = runner.clone();
        let limits = ConnLimits {
            header_read_timeout: Duration::from_millis(config.server.header_read_timeout),
            connections_max: config.server.connections_max,
            drain: Duration::from_millis(config.server.request_timeout),
        };
        let pruner = crate::store::retention::spawn(
            runner.store().clone(),
            runner.clock().clone(),
            Duration::from_millis(config.server.retention),
        );
        let task = tokio::spawn(async move {
            let served = api::listen::serve(listener, router, limits, async move {
                let _ = stopped.await;
            })
            .await;
            pruner.abort();
            // The HTTP side has stopped accepting; now let every deployment persist and stop.
            task_runner.shutdown().await;
            task_runner.flush_notifications().await;
            task_runner.store().clone().close().await;
            served.map_err(ServeError::Server)
        });
        Ok(Server {
            addr,
            runner,
            stop: Some(stop),
            task,
        })
    }

    /// Stop accepting, finish in-flight requests, persist every deployment, close the store.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(ServeError::Server(std::io::Error::other(e.to_string()))))
    }

    /// Wait until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) -> Result<(), ServeError> {
        let Server { task, stop, .. } = self;
        let result = task
            .await
            .unwrap_or_else(|e| Err(ServeError::Server(std::io::Error::other(e.to_string()))));
        drop(stop);
        result
    }

    /// Stop when `signal` resolves.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        signal.await;
        tracing::info!(
            "shutting down: no new requests; deployments persist and resume at the next start"
        );
        self.shutdown().await
    }
}

/// Like [`shutdown_signal`], but the handlers are installed *now*, not at the first
/// poll: `serve` calls it before printing its banner, so a SIGTERM sent as soon as the
/// address is known (a supervisor, a test) shuts down cleanly instead of killing the
/// process with the default action.
pub fn shutdown_signal_installed() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
        #[cfg(not(unix))]
        shutdown_signal().await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The lines `serve` prints so a newcomer can start and watch a deployment.
pub fn banner(config: &Config, addr: SocketAddr, secrets: &Secrets) -> String {
    let base = format!("http://{addr}");
    let names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
    let cloud = match config.cloud.kind {
        CloudKind::Sim => "the simulated cloud",
        CloudKind::Aws => "AWS",
        CloudKind::Remote => "a shared simulated cloud",
    };
    let mut out = format!(
        "bluegreen: serving {} app(s) ({}) on {cloud} at {base}\n",
        names.len(),
        names.join(", ")
    );
    let token = if secrets.dev {
        out.push_str(&format!(
            "  BLUEGREEN_API_TOKEN / BLUEGREEN_WEBHOOK_TOKEN are unset: both are the development token {DEV_TOKEN:?} (loopback only)\n"
        ));
        DEV_TOKEN.to_string()
    } else {
        "$BLUEGREEN_API_TOKEN".to_string()
    };
    if let Some(app) = config.apps.first() {
        let image = app
            .image
            .as_deref()
            .and_then(|i| i.rsplit_once(':').map(|(repo, _)| format!("{repo}:v2")))
            .unwrap_or_else(|| format!("{}:v2", app.name));
        out.push_str(&format!(
            "  start a deployment:\n    curl -sS -X POST {base}/v1/deployments -H 'Authorization: Bearer {token}' -d '{{\"app\":\"{}\",\"image\":\"{image}\"}}'\n",
            app.name
        ));
        // The same config the server runs, or the CLI would look at another store.
        let config_arg = match &config.origin {
            crate::config::Origin::File(p) => {
                format!(" --config {}", shell_quote(&p.display().to_string()))
            }
            crate::config::Origin::BuiltIn => String::new(),
        };
        out.push_str(&format!(
            "  watch it:\n    {} status --app {}{config_arg} --follow\n    curl -sS {base}/v1/deployments?app={} -H 'Authorization: Bearer {token}'\n",
            cli_command(),
            app.name,
            app.name
        ));
    }
    out.push_str(&format!(
        "  status page: {base}/ui (log in with the API token)\n"
    ));
    out.push_str(&format!(
        "  metrics: {base}/metrics   stop: Ctrl-C (deployments resume at the next start)\n"
    ));
    out
}

/// How to run this CLI again: `bluegreen` when installed, the cargo command when it runs
/// from a build directory (a newcomer who started it with `cargo run`).
fn cli_command() -> &'static str {
    let from_target = std::env::current_exe()
        .ok()
        .is_some_and(|p| p.components().any(|c| c.as_os_str() == "target"));
    if from_target {
        "cargo run -p bluegreen-svc --"
    } else {
        "bluegreen"
    }
}

/// Quote a path for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod banner_tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{EXAMPLE_TOML, Origin};

    fn secrets() -> Secrets {
        Secrets {
            api_token: DEV_TOKEN.into(),
            webhook_token: DEV_TOKEN.into(),
            hook_secret: None,
            dev: true,
        }
    }

    #[test]
    fn the_watch_command_carries_the_config_the_server_runs() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let c = Config::parse(
            EXAMPLE_TOML,
            Origin::File("my conf/bg.toml".into()),
            &BTreeMap::new(),
        )
        .unwrap();
        let text = banner(&c, addr, &secrets());
        assert!(
            text.contains("status --app web --config 'my conf/bg.toml' --follow"),
            "{text}"
        );
        assert!(
            text.contains("status page: http://127.0.0.1:8080/ui"),
            "{text}"
        );
        let c = Config::parse(EXAMPLE_TOML, Origin::BuiltIn, &BTreeMap::new()).unwrap();
        assert!(!banner(&c, addr, &secrets()).contains("--config"));
    }
}
