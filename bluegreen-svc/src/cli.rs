//! The `bluegreen` command line.
//!
//! `serve` runs the controller. `deploy`, `status`, `promote`, `abort`, `pause`,
//! `resume` and `journal` talk to a running server when there is one — `--server URL`
//! (or `BLUEGREEN_SERVER`), else the config's `server.listen` if a server answers there —
//! and otherwise work in this process on the config's store: `status` and `journal`
//! read it; `deploy`, `promote` and `abort` run the controller here until the deployment
//! finishes (Ctrl-C persists it; `serve` resumes it). `plan` needs neither.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bluegreen_core::{OperatorRequest, PhaseName, Plan};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::api::error::ErrorBody;
use crate::config::{CloudKind, Config};
use crate::runner::{Runner, Source, Submit};
use crate::serve::{DEV_TOKEN, Secrets, Server, banner, clock_for, shutdown_signal};
use crate::store::Store;
use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "bluegreen",
    version,
    about = "Blue/green deployments for Amazon ECS services behind an ALB"
)]
pub struct Cli {
    /// Configuration file [default: ./bluegreen.toml if present, else the built-in example on the simulated cloud]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format (logs go to stderr; RUST_LOG filters)
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Remote {
    /// A running server's URL (token from BLUEGREEN_API_TOKEN) [default: the config's server.listen when a server answers there; else work in this process]
    #[arg(long, env = "BLUEGREEN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Never look for a server: work in this process on the config's store
    #[arg(long, conflicts_with = "server")]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: HTTP API, ECR webhook, and every deployment to completion
    Serve {
        /// Listen address [config: server.listen]
        #[arg(long)]
        listen: Option<String>,
        /// Store URL [config: server.store]
        #[arg(long)]
        store: Option<String>,
        /// Cloud [config: cloud.kind]
        #[arg(long, value_enum)]
        cloud: Option<CloudKind>,
    },
    /// Deploy an image to an app and follow it live
    Deploy {
        app: String,
        #[arg(long)]
        image: String,
        /// Replace the app's running deployment (it is rolled back first)
        #[arg(long)]
        supersede: bool,
        /// Print JSON lines (one per change, the final deployment last) instead of a progress display
        #[arg(long)]
        json: bool,
        /// Return once the deployment is accepted
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a deployment (or an app's latest, or the most recent ones)
    Status {
        id: Option<String>,
        #[arg(long)]
        app: Option<String>,
        /// Follow until it finishes
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pass the approval gate or end the current wait early
    Promote {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Roll a deployment back (or cancel it while queued)
    Abort {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop forward progress (rollback signals are still watched)
    Pause {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Continue a paused deployment
    Resume {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print the compiled plan: steps, weights, waits, deadlines, AWS calls
    Plan {
        /// The app [default: the first configured]
        app: Option<String>,
        /// Image to plan for [default: the app's `image`]
        #[arg(long)]
        image: Option<String>,
        /// The deployment id the plan is for (waits carry its poll jitter)
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a deployment's journal as JSON lines (input for `bluegreen-sim replay`)
    Journal {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bluegreen: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bluegreen: {message}");
            2
        }
    }
}

fn load(cli: &Cli) -> Result<Config, String> {
    Config::load(cli.config.as_deref(), &Config::environment()).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<i32, String> {
    let config = load(&cli)?;
    let format = cli.log_format.unwrap_or(config.log.format);
    let serving = matches!(cli.command, Command::Serve { .. });
    if serving || std::env::var_os("RUST_LOG").is_some() {
        telemetry::init_tracing(format);
    }
    match cli.command {
        Command::Serve {
            listen,
            store,
            cloud,
        } => {
            // Flags override like environment variables do (and are checked the same way).
            let mut env = Config::environment();
            let cloud = cloud.map(|c| match c {
                CloudKind::Sim => "sim".to_string(),
                CloudKind::Aws => "aws".to_string(),
            });
            for (key, value) in [
                ("BLUEGREEN_SERVER_LISTEN", listen),
                ("BLUEGREEN_SERVER_STORE", store),
                ("BLUEGREEN_CLOUD_KIND", cloud),
            ] {
                if let Some(v) = value {
                    env.insert(key.to_string(), v);
                }
            }
            let config = Config::load(cli.config.as_deref(), &env).map_err(|e| e.to_string())?;
            serve(config).await
        }
        Command::Plan {
            app,
            image,
            id,
            json,
        } => plan(&config, app, image, id, json),
        Command::Deploy {
            app,
            image,
            supersede,
            json,
            no_wait,
            remote,
        } => {
            let backend = Backend::pick(&config, &remote).await;
            let id = backend.deploy(&config, &app, &image, supersede).await?;
            if no_wait {
                println!("{id}");
                return Ok(0);
            }
            backend.follow(&id, json).await
        }
        Command::Status {
            id,
            app,
            follow,
            json,
            remote,
        } => {
            let backend = Backend::pick(&config, &remote).await;
            let id = match (id, &app) {
                (Some(id), _) => id,
                (None, Some(app)) => backend.latest(app).await?,
                (None, None) => {
                    let list = backend.list().await?;
                    print_list(&list, json);
                    return Ok(0);
                }
            };
            if follow {
                backend.follow(&id, json).await
            } else {
                let view = backend.get(&id).await?;
                print_view(&view, json);
                Ok(0)
            }
        }
        Command::Promote { id, json, remote } => {
            let backend = Backend::pick(&config, &remote).await;
            backend
                .operate(&config, &id, OperatorRequest::Promote, json)
                .await
        }
        Command::Abort {
            id,
            reason,
            json,
            remote,
        } => {
            let backend = Backend::pick(&config, &remote).await;
            backend
                .operate(&config, &id, OperatorRequest::Abort { reason }, json)
                .await
        }
        Command::Pause { id, remote } => {
            let backend = Backend::pick(&config, &remote).await;
            backend
                .operate(&config, &id, OperatorRequest::Pause, false)
                .await
        }
        Command::Resume { id, remote } => {
            let backend = Backend::pick(&config, &remote).await;
            backend
                .operate(&config, &id, OperatorRequest::Resume, false)
                .await
        }
        Command::Journal { id, remote } => {
            let backend = Backend::pick(&config, &remote).await;
            print!("{}", backend.journal(&id).await?);
            Ok(0)
        }
    }
}

async fn serve(config: Config) -> Result<i32, String> {
    let secrets = Secrets::from_env(&config, &Config::environment()).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen()))?;
    let clock = clock_for(&config);
    match config.cloud.kind {
        CloudKind::Sim => {
            let cloud =
                crate::simcloud::build(&config, clock.clone()).map_err(|e| e.to_string())?;
            let server = Server::start(&config, cloud, clock, secrets.clone(), listener)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", banner(&config, server.addr, &secrets));
            server
                .run_until(shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
        }
        CloudKind::Aws => {
            let cloud = crate::awscloud::build().await.map_err(|e| e.to_string())?;
            let server = Server::start(&config, cloud, clock, secrets.clone(), listener)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", banner(&config, server.addr, &secrets));
            server
                .run_until(shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(0)
}

fn plan(
    config: &Config,
    app: Option<String>,
    image: Option<String>,
    id: Option<String>,
    json: bool,
) -> Result<i32, String> {
    let app = match app {
        Some(name) => config
            .app(&name)
            .ok_or_else(|| format!("no app named {name:?} in the config"))?,
        None => config.apps.first().ok_or("the config has no apps")?,
    };
    let image = image
        .or_else(|| app.image.clone())
        .unwrap_or_else(|| format!("{}:latest", app.name));
    let spec = app.spec(&image).map_err(|e| format!("--image: {e}"))?;
    let plan = match id {
        Some(id) => {
            let id = bluegreen_core::DeploymentId::new(id).map_err(|e| format!("--id: {e}"))?;
            Plan::for_deployment(&id, &spec)
        }
        None => Plan::compile(&spec),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plans serialise")
        );
    } else {
        print!("{plan}");
    }
    Ok(0)
}

// ---------- talking to a server, or working in-process ----------

enum Backend {
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

impl Backend {
    async fn pick(config: &Config, remote: &Remote) -> Backend {
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
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| format!("{base}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| format!("{base}: {e}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let err: Option<ErrorBody> = value
                .get("error")
                .and_then(|e| serde_json::from_value(e.clone()).ok());
            return Err(match err {
                Some(e) => format!("HTTP {status} {}: {}", e.code, e.message),
                None => format!("HTTP {status}: {value}"),
            });
        }
        Ok((status, value))
    }

    async fn store(config: &Config) -> Result<Store, String> {
        Store::connect(&config.server.store)
            .await
            .map_err(|e| format!("store {}: {e}", config.server.store))
    }

    async fn get(&self, id: &str) -> Result<Value, String> {
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

    async fn list(&self) -> Result<Value, String> {
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

    async fn latest(&self, app: &str) -> Result<String, String> {
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
            .ok_or_else(|| format!("app {app} has no deployments"))
    }

    async fn journal(&self, id: &str) -> Result<String, String> {
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

    async fn deploy(
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
                    .map_err(|e| e.to_string())?;
                LOCAL.with_local(local);
                Ok(submitted.id().to_string())
            }
        }
    }

    async fn operate(
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
    async fn follow(&self, id: &str, json: bool) -> Result<i32, String> {
        let bar = (!json).then(|| {
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
        let mut last = Value::Null;
        let stop = shutdown_signal();
        tokio::pin!(stop);
        // Bounded by the deployment's own deadlines; Ctrl-C stops following.
        loop {
            let view = self.get(id).await?;
            let transitions = view["transitions"].as_array().cloned().unwrap_or_default();
            for t in transitions.iter().skip(seen_transitions) {
                let line = format!(
                    "{}  {} → {}: {}",
                    t["at"]
                        .as_u64()
                        .map(|ms| bluegreen_core::Timestamp::from_millis(ms).to_string())
                        .unwrap_or_default(),
                    t["from"].as_str().unwrap_or("?"),
                    t["to"].as_str().unwrap_or("?"),
                    t["reason"].as_str().unwrap_or("")
                );
                if let Some(pb) = &bar {
                    pb.println(line);
                }
            }
            seen_transitions = transitions.len();
            let summary = summary(&view);
            if json && summary != summary_of(&last) {
                println!(
                    "{}",
                    serde_json::to_string(&strip_plan(&view)).expect("json")
                );
            }
            if let Some(pb) = &bar {
                pb.set_prefix(view["phase"].as_str().unwrap_or("?").to_string());
                pb.set_position(view["weights"]["green"].as_u64().unwrap_or(0));
                pb.set_message(summary.clone());
            }
            last = view.clone();
            let phase = view["phase"].as_str().unwrap_or("");
            let state = view["state"].as_str().unwrap_or("");
            let done = matches!(state, "finished" | "superseded" | "cancelled");
            if done {
                if let Some(pb) = &bar {
                    pb.finish_and_clear();
                    print_view(&view, false);
                }
                if let Some(local) = LOCAL.take() {
                    local.stop().await;
                }
                return Ok(if phase == PhaseName::Completed.as_str() {
                    0
                } else {
                    1
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = &mut stop => {
                    if let Some(pb) = &bar { pb.finish_and_clear(); }
                    eprintln!("bluegreen: stopped following {id} (phase {phase})");
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

fn summary_of(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        summary(v)
    }
}

fn summary(v: &Value) -> String {
    let healthy = v["green_healthy_targets"].as_u64();
    let desired = v["desired_count"].as_u64();
    let health = match (healthy, desired) {
        (Some(h), Some(d)) => format!(" · green healthy {h}/{d}"),
        _ => String::new(),
    };
    format!(
        "blue {} / green {}{health} · {}",
        v["weights"]["blue"].as_u64().unwrap_or(0),
        v["weights"]["green"].as_u64().unwrap_or(0),
        v["detail"].as_str().unwrap_or("")
    )
}

fn strip_plan(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("plan");
    }
    v
}

fn print_view(view: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(view).expect("json"));
        return;
    }
    println!(
        "{}  {}  {}  ({})",
        view["id"].as_str().unwrap_or("?"),
        view["app"].as_str().unwrap_or("?"),
        view["phase"].as_str().unwrap_or("?"),
        view["state"].as_str().unwrap_or("?")
    );
    println!("  image    {}", view["image"].as_str().unwrap_or("?"));
    println!("  weights  {}", summary(view));
    if let Some(r) = view["reason"].as_object() {
        println!(
            "  reason   {}: {}",
            r.get("kind").and_then(Value::as_str).unwrap_or("?"),
            r.get("detail").and_then(Value::as_str).unwrap_or("")
        );
    }
    if let Some(a) = view["action_required"].as_str() {
        println!("  ACTION REQUIRED: {a}");
    }
    if let Some(n) = view["note"].as_str() {
        println!("  note     {n}");
    }
    for t in view["transitions"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} → {}: {}",
            t["at"]
                .as_u64()
                .map(|ms| bluegreen_core::Timestamp::from_millis(ms).to_string())
                .unwrap_or_default(),
            t["from"].as_str().unwrap_or("?"),
            t["to"].as_str().unwrap_or("?"),
            t["reason"].as_str().unwrap_or("")
        );
    }
}

fn print_list(list: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(list).expect("json"));
        return;
    }
    for d in list["deployments"].as_array().into_iter().flatten() {
        println!(
            "{:<40} {:<10} {:<13} {:<11} {}",
            d["id"].as_str().unwrap_or("?"),
            d["app"].as_str().unwrap_or("?"),
            d["phase"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["image"].as_str().unwrap_or("?")
        );
    }
}

// ---------- the in-process controller ----------

/// A runner started by this CLI process (no server is running).
struct Local {
    runner: Runner<crate::hooks::HookedCloud<crate::simcloud::AnyCloud>>,
}

impl Local {
    async fn start(config: &Config) -> Result<Local, String> {
        let clock = clock_for(config);
        let cloud = match config.cloud.kind {
            CloudKind::Sim => crate::simcloud::AnyCloud::Sim(Box::new(
                crate::simcloud::build(config, clock.clone()).map_err(|e| e.to_string())?,
            )),
            CloudKind::Aws => crate::simcloud::AnyCloud::Aws(Box::new(
                crate::awscloud::build().await.map_err(|e| e.to_string())?,
            )),
        };
        let hook_secret = std::env::var("BLUEGREEN_HOOK_SECRET")
            .ok()
            .map(String::into_bytes);
        let store = Backend::store(config).await?;
        // Without a server there is no one to wait for: a live holder of the store's
        // lease is another controller, and this process must not drive beside it.
        let limits = crate::runner::Limits {
            lease_wait: Duration::ZERO,
            ..config.runner.limits()
        };
        let runner = Runner::start(
            crate::hooks::HookedCloud::new(cloud, hook_secret),
            store,
            clock,
            config.templates(),
            limits,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Local { runner })
    }

    async fn stop(self) {
        self.runner.shutdown().await;
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
