//! What a new user tripped over (issue 12), each pinned by a test: the CLI through the
//! binary a user runs, the API through a server on loopback.

mod svc_util;
mod ui_util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use svc_util::{Harness, app_toml, digest, push_event};
use ui_util::{Scratch, Serve, example_config};

fn bluegreen(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bluegreen"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BLUEGREEN_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn following_into_a_pipe_prints_a_line_per_change_while_it_runs() {
    let dir = Scratch::new("newcomer-follow");
    let store = format!("sqlite://{}", dir.0.join("b.db").display());
    // The built-in example at 4× real time: about 15 s, long enough to see lines early.
    let mut child = bluegreen(
        &dir.0,
        &["deploy", "web", "--image", "web:v2", "--local"],
        &[
            ("BLUEGREEN_SERVER_STORE", &store),
            ("BLUEGREEN_CLOUD_SPEED", "4"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{first}\n{}", rest.join("\n"));
    assert!(
        still_running,
        "the first line came before the deployment ended: {first}"
    );
    let all = format!("{first}\n{}", rest.join("\n"));
    assert!(all.contains("preflight → create-green"), "{all}");
    assert!(all.contains("shift → bake"), "{all}");
    assert!(
        all.contains("green 20"),
        "the canary step has its line: {all}"
    );
}

#[test]
fn an_unknown_app_is_named_with_the_closest_configured_one() {
    let dir = Scratch::new("newcomer-unknown");
    let store = format!("sqlite://{}", dir.0.join("b.db").display());
    let env = [("BLUEGREEN_SERVER_STORE", store.as_str())];
    for args in [
        &["status", "--app", "webb", "--local"][..],
        &["deploy", "webb", "--image", "web:v2", "--local"][..],
        &["plan", "webb"][..],
    ] {
        let out = run(&mut bluegreen(&dir.0, args, &env));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("no app named \"webb\"") && err.contains("did you mean \"web\"?"),
            "{args:?}: {err}"
        );
    }
    // A configured app with no deployments says exactly that.
    let out = run(&mut bluegreen(
        &dir.0,
        &["status", "--app", "web", "--local"],
        &env,
    ));
    assert!(
        text(&out.stderr).contains("app web has no deployments yet"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_prints_durations_people_read() {
    let dir = Scratch::new("newcomer-plan");
    let out = run(&mut bluegreen(&dir.0, &["plan"], &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    // No compound "2s49ms": seconds with a fraction instead.
    let compound = plan.split_whitespace().any(|w| {
        w.starts_with(|c: char| c.is_ascii_digit())
            && w.ends_with("ms")
            && w[..w.len() - 2].contains('s')
    });
    assert!(!compound, "{plan}");
}

#[test]
fn serve_with_a_config_file_prints_commands_that_use_it_and_plain_logs() {
    let dir = Scratch::new("newcomer-serve");
    let mut serve = Serve::start(&dir.0, &example_config(|t| t), &[]);
    let config = dir.0.join("bluegreen.toml");
    assert!(
        serve
            .banner
            .contains(&format!("--config {}", config.display())),
        "{}",
        serve.banner
    );
    assert!(serve.banner.contains("/ui"), "{}", serve.banner);
    assert_eq!(serve.stop(), Some(0));
    let logs = serve.stderr();
    assert!(logs.contains("INFO"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "no ANSI colours into a pipe: {logs:?}"
    );
}

#[tokio::test]
async fn a_push_whose_tag_misses_the_filter_says_so() {
    let h = Harness::start(&app_toml("web", "")).await;
    let (status, v) = h
        .webhook(&push_event("web", Some("latest"), &digest(1)))
        .await;
    assert_eq!(status, 200, "{v}");
    let reason = v["ignored"].as_str().unwrap();
    assert!(
        reason.contains("tag \"latest\"")
            && reason.contains("matches no tag filter")
            && reason.contains("v*"),
        "{reason}"
    );
    let (_, v) = h.webhook(&push_event("api", Some("v1"), &digest(2))).await;
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("no app watches repository \"api\"")
    );
}

#[tokio::test]
async fn a_queued_deployment_says_queued_and_the_view_shows_target_states() {
    let h = Harness::start(&app_toml("web", "")).await;
    let (s1, first) = h.webhook(&push_event("web", Some("v1"), &digest(1))).await;
    assert_eq!(s1, 202, "{first}");
    let (s2, second) = h.webhook(&push_event("web", Some("v2"), &digest(2))).await;
    assert_eq!(s2, 202, "{second}");
    let queued = second["deployment"].as_str().unwrap();
    let v = h.deployment(queued).await;
    assert_eq!(v["state"], "queued", "{v}");
    assert_eq!(v["phase"], "queued", "{v}");
    let running = first["deployment"].as_str().unwrap();
    let v = svc_util::wait_for(
        "green's targets to be observed",
        Duration::from_secs(30),
        || async {
            let v = h.deployment(running).await;
            v["targets"]["green"].is_object().then_some(v)
        },
    )
    .await;
    for k in ["healthy", "unhealthy", "initial", "draining"] {
        assert!(v["targets"]["green"][k].is_u64(), "{k}: {v}");
    }
    // Slots are a and b everywhere, transitions included.
    let first = v["transitions"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        first.contains("live side is slot a") && first.contains("green is slot b"),
        "{first}"
    );
}

/// An unhealthy green says *why* while it waits and when it rolls back: the targets'
/// states with ELBv2's reason codes and descriptions (the simulated world gives AWS's own
/// texts), not only "0 consecutive healthy".
#[test]
fn an_unhealthy_green_shows_the_targets_reasons_while_waiting_and_in_the_rollback() {
    let dir = Scratch::new("newcomer-reasons");
    let store = format!("sqlite://{}", dir.0.join("b.db").display());
    let out = run(&mut bluegreen(
        &dir.0,
        &["deploy", "web", "--image", "web:v3-unhealthy", "--local"],
        &[
            ("BLUEGREEN_SERVER_STORE", &store),
            ("BLUEGREEN_CLOUD_SPEED", "50"),
        ],
    ));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "rolled back: {stdout}");
    let waiting = stdout
        .lines()
        .find(|l| l.contains("green targets") && l.contains("unhealthy ("))
        .unwrap_or_else(|| panic!("a line with the targets' reasons: {stdout}"));
    assert!(
        waiting.contains("Target.ResponseCodeMismatch: Health checks failed with these codes"),
        "{waiting}"
    );
    let out = run(&mut bluegreen(
        &dir.0,
        &["status", "--app", "web", "--local", "--json"],
        &[("BLUEGREEN_SERVER_STORE", &store)],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["phase"], "rolled-back", "{v}");
    let reason = v["reason"]["detail"].as_str().unwrap();
    assert!(
        reason.contains("Target.ResponseCodeMismatch"),
        "the rollback's reason names ELBv2's reason: {reason}"
    );
}
