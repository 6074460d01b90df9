//! The `bluegreen` binary: plan, config errors with key and line, secure-by-default
//! tokens, and a one-shot in-process `deploy` on the built-in example.

use std::process::{Command, Output};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bluegreen-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run the binary in `dir` with a clean BLUEGREEN_* environment plus `env`.
fn bluegreen(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bluegreen"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BLUEGREEN_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn plan_prints_the_built_in_example_as_text_and_json() {
    let dir = temp_dir("plan");
    let out = bluegreen(&dir, &["plan"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Plan for web (service-pair, canary)"),
        "{stdout}"
    );
    let out = bluegreen(&dir, &["plan", "web", "--image", "web:v9", "--json"], &[]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    assert!(plan["steps"].as_array().unwrap().len() >= 6);
    let out = bluegreen(&dir, &["plan", "web", "--image", "has space"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("image"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_error_names_the_file_key_and_line() {
    let dir = temp_dir("config");
    std::fs::write(
        dir.join("bad.toml"),
        "[server]\nlisten = \"127.0.0.1:8080\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = bluegreen(&dir, &["--config", "bad.toml", "plan"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:") && stderr.contains("colour"),
        "{stderr}"
    );
    let out = bluegreen(&dir, &["plan"], &[("BLUEGREEN_RUNNER_SPEED", "3")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("BLUEGREEN_RUNNER_SPEED"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_to_start_without_tokens_off_loopback() {
    let dir = temp_dir("tokens");
    let store = format!("sqlite://{}", dir.join("b.db").display());
    let out = bluegreen(
        &dir,
        &["serve", "--listen", "0.0.0.0:0"],
        &[("BLUEGREEN_SERVER_STORE", &store)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("BLUEGREEN_API_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    let out = bluegreen(
        &dir,
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("BLUEGREEN_SERVER_STORE", &store),
            ("BLUEGREEN_API_TOKEN", "short"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at least 16"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_without_a_server_runs_the_deployment_in_process_to_completion() {
    let dir = temp_dir("deploy");
    let store = format!("sqlite://{}", dir.join("b.db").display());
    // The built-in example on a clock 50× faster than real time (about a second).
    let env = [
        ("BLUEGREEN_SERVER_STORE", store.as_str()),
        ("BLUEGREEN_CLOUD_SPEED", "50"),
    ];
    let out = bluegreen(
        &dir,
        &["deploy", "web", "--image", "web:v2", "--local", "--json"],
        &env,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("JSON lines")).unwrap();
    assert_eq!(last["phase"], "completed", "{last}");
    assert_eq!(last["weights"]["green"], 100);
    // The store has it, and the journal replays.
    let out = bluegreen(&dir, &["status", "--app", "web", "--local", "--json"], &env);
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["state"], "finished");
    let id = view["id"].as_str().unwrap();
    let out = bluegreen(&dir, &["journal", id, "--local"], &env);
    let lines: Vec<bluegreen_core::journal::JournalLine> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a journal line"))
        .collect();
    assert_eq!(
        bluegreen_core::journal::replay(&lines).unwrap().divergence,
        None
    );
    // An unhealthy image rolls back, and the exit code says so.
    let out = bluegreen(
        &dir,
        &[
            "deploy",
            "web",
            "--image",
            "web:v3-unhealthy",
            "--local",
            "--json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
