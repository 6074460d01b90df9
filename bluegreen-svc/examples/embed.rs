//! Embed bluegreen: deploy IMAGE to APP of `bluegreen.toml` on AWS (the standard chain),
//! printing each step. `cargo run -p bluegreen-svc --example embed -- web web:v2`
use bluegreen_core::Cloud;
use bluegreen_svc::config::Config;
use bluegreen_svc::embed::{Deploy, EmbedError, Outcome};

/// Deploy `image` to `app` of the config at `path` with `cloud`, resumable from a
/// snapshot file beside the config.
pub async fn deploy<C: Cloud + 'static>(
    cloud: C,
    path: &std::path::Path,
    app: &str,
    image: &str,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let config = Config::load(Some(path), &Default::default())?;
    let spec = config.app(app).ok_or("no such app")?.spec(image)?;
    let outcome = Deploy::new(cloud, spec)
        .snapshot(path.with_file_name(format!("{app}.deployment.json")))
        .on_progress(|p| {
            if let Some(bluegreen_core::Notice::Transition(t)) = p.notice {
                println!("{} → {}: {}", t.from, t.to, t.reason);
            }
        })
        .run()
        .await
        .map_err(|e: EmbedError| e.to_string())?;
    Ok(outcome)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, image] = &args[..] else {
        return Err("usage: embed APP IMAGE".into());
    };
    let cloud = bluegreen_svc::cloud::aws::build().await?;
    let outcome = deploy(cloud, "bluegreen.toml".as_ref(), app, image).await?;
    println!("{}: {:?}", outcome.phase, outcome.reason);
    std::process::exit(if outcome.succeeded() { 0 } else { 1 })
}
