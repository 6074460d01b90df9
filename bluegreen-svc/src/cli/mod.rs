//! The `bluegreen` command line.
//!
//! `serve` runs the controller. `deploy`, `status`, `promote`, `abort`, `pause`,
//! `resume` and `journal` talk to a running server when there is one — `--server URL`
//! (or `BLUEGREEN_SERVER`), else the config's `server.listen` if a server answers there —
//! and otherwise work in this process on the config's store: `status` and `journal`
//! read it; `deploy`, `promote` and `abort` run the controller here until the deployment
//! finishes (Ctrl-C persists it; `serve` resumes it). `plan` needs neither.

use std::path::PathBuf;

use bluegreen_core::{OperatorRequest, Plan};
use clap::{Parser, Subcommand};

use crate::config::{CloudKind, Config};
use crate::serve::{Secrets, Server, banner, clock_for};
use crate::telemetry::{self, LogFormat};

mod backend;
mod display;

use backend::Backend;
use display::{print_list, print_view};

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
    /// Serve the config's simulated world over HTTP so several `serve` replicas
    /// (`[cloud] kind = "remote"`) share one simulated account (HA tests and demos)
    #[cfg(feature = "sim")]
    SimCloud {
        /// Listen address
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
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
        /// Read the account now (describe calls only) and list the writes the
        /// deployment would make, in order, from its current state
        #[arg(long)]
        live: bool,
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
    crate::alloc::limit_malloc_arenas();
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
                CloudKind::Remote => "remote".to_string(),
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
            live,
            json,
        } => {
            if live {
                plan_live(&config, app, image, json).await
            } else {
                plan(&config, app, image, id, json)
            }
        }
        Command::Deploy {
            app,
            image,
            supersede,
            json,
            no_wait,
            remote,
        } => {
            let backend = Backend::pick(&config, &remote).await;
            // In this process the config is the truth; a server answers 404 by itself.
            if backend.is_local() && config.app(&app).is_none() {
                return Err(backend::unknown_app(&config, &app));
            }
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
                (None, Some(app)) => backend.latest(&config, app).await?,
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
        #[cfg(feature = "sim")]
        Command::SimCloud { listen } => sim_cloud(config, listen).await,
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
    let stop = crate::serve::shutdown_signal_installed();
    match config.cloud.kind {
        CloudKind::Sim => {
            let cloud =
                crate::cloud::sim::build(&config, clock.clone()).map_err(|e| e.to_string())?;
            let server = Server::start(&config, cloud, clock, secrets.clone(), listener)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", banner(&config, server.addr, &secrets));
            server.run_until(stop).await.map_err(|e| e.to_string())?;
        }
        CloudKind::Aws => {
            let cloud = crate::cloud::aws::build()
                .await
                .map_err(|e| e.to_string())?;
            let server = Server::start(&config, cloud, clock, secrets.clone(), listener)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", banner(&config, server.addr, &secrets));
            server.run_until(stop).await.map_err(|e| e.to_string())?;
        }
        CloudKind::Remote => {
            let url = config.cloud.url.as_deref().unwrap_or_default();
            let cloud = crate::cloud::remote::RemoteCloud::new(url)?;
            let server = Server::start(&config, cloud, clock, secrets.clone(), listener)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", banner(&config, server.addr, &secrets));
            server.run_until(stop).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(0)
}

/// `bluegreen sim-cloud`: serve the config's simulated world to several replicas.
#[cfg(feature = "sim")]
async fn sim_cloud(config: Config, listen: String) -> Result<i32, String> {
    let clock = clock_for(&config);
    let cloud = crate::cloud::sim::build(&config, clock).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("bluegreen sim-cloud: serving the simulated world at http://{addr}");
    axum::serve(
        listener,
        crate::cloud::remote::SimServer::new(cloud).router(),
    )
    .with_graceful_shutdown(crate::serve::shutdown_signal_installed())
    .await
    .map_err(|e| e.to_string())?;
    Ok(0)
}

/// The app and spec `plan` is about.
fn plan_spec(
    config: &Config,
    app: Option<String>,
    image: Option<String>,
) -> Result<bluegreen_core::DeploymentSpec, String> {
    let app = match app {
        Some(name) => config
            .app(&name)
            .ok_or_else(|| backend::unknown_app(config, &name))?,
        None => config.apps.first().ok_or("the config has no apps")?,
    };
    let image = image
        .or_else(|| app.image.clone())
        .unwrap_or_else(|| format!("{}:latest", app.name));
    app.spec(&image).map_err(|e| format!("--image: {e}"))
}

/// `plan --live`: exit 0 when the deployment could run to completion from the account's
/// state, 1 when it would be rejected (the reason is printed).
async fn plan_live(
    config: &Config,
    app: Option<String>,
    image: Option<String>,
    json: bool,
) -> Result<i32, String> {
    let spec = plan_spec(config, app, image)?;
    let cloud = backend::build_cloud(config, clock_for(config)).await?;
    let plan = crate::plan_live::plan_live(&cloud, &spec).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plans serialise")
        );
    } else {
        print!("{plan}");
    }
    Ok(if plan.outcome == bluegreen_core::PhaseName::Completed {
        0
    } else {
        1
    })
}

fn plan(
    config: &Config,
    app: Option<String>,
    image: Option<String>,
    id: Option<String>,
    json: bool,
) -> Result<i32, String> {
    let spec = plan_spec(config, app, image)?;
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
        // What the phases take on a real account, not an ideal one (checked against the
        // simulated world in bluegreen-sim/tests/plan_durations.rs).
        let t = bluegreen_core::plan::Timings::AWS;
        let (phases, total) = plan.expected(&spec, &t);
        let human = bluegreen_core::time::format_duration_human;
        let parts: Vec<String> = phases
            .iter()
            .map(|p| format!("{} {}", p.phase, human(p.expected_ms)))
            .collect();
        println!(
            "expected on AWS timings (tasks start in {}–{}, health checks every {} × {}, {} deregistration delay): {}; about {} in all",
            human(t.task_start_ms.0),
            human(t.task_start_ms.1),
            human(t.health_interval_ms),
            t.healthy_threshold,
            human(t.deregistration_delay_ms),
            parts.join(" · "),
            human(total)
        );
    }
    Ok(0)
}
