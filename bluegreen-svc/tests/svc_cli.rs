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

/// A server on 127.0.0.1 that answers each request (one per connection) with the next of
/// `answers`, and records the request lines it saw. Stops after the last answer, or when
/// no request came for 30 s (a client that stopped asking must not hang the test).
fn scripted_server(answers: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        listener.set_nonblocking(true).unwrap();
        for answer in answers {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break Some(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if std::time::Instant::now() >= deadline {
                            break None;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            let Some(stream) = stream else {
                return seen;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            seen.push(line.trim_end().to_string());
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim_end().is_empty() {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream.write_all(answer.as_bytes()).unwrap();
        }
        seen
    });
    (base, handle)
}

fn http_answer(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// The server's answer when its store is not answering (`api/error.rs`), asking for a
/// retry after 1 s so the tests wait no longer than that.
fn store_unavailable() -> String {
    http_answer(
        "503 Service Unavailable",
        "retry-after: 1\r\n",
        r#"{"error":{"code":"store_unavailable","message":"the deployment store is not answering right now; nothing was done, retry shortly","field":null}}"#,
    )
}

#[test]
fn a_read_that_meets_a_store_not_answering_is_asked_again_after_retry_after() {
    let dir = temp_dir("retry-read");
    let unavailable = store_unavailable();
    let view = http_answer(
        "200 OK",
        "",
        r#"{"id":"web-20261130T120000-1","phase":"shift"}"#,
    );
    let (base, server) = scripted_server(vec![unavailable, view]);
    let out = bluegreen(
        &dir,
        &[
            "status",
            "web-20261130T120000-1",
            "--json",
            "--server",
            &base,
        ],
        &[("BLUEGREEN_API_TOKEN", "cli-test-token-0123456789")],
    );
    let seen = server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|l| l.starts_with("GET /v1/deployments/web-20261130T120000-1 "))
    );
    let printed: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(printed["phase"], "shift");
    assert!(
        text(&out.stderr).contains("HTTP 503 store_unavailable")
            && text(&out.stderr).contains("retrying in 1s"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_write_is_sent_again_only_when_the_server_said_nothing_was_done() {
    let dir = temp_dir("retry-write");
    // A 503 that does not say "nothing was done" (a gateway's, a server shutting down):
    // the submission may have landed, so the CLI reports it and does not send it twice.
    let shutting_down = http_answer(
        "503 Service Unavailable",
        "",
        r#"{"error":{"code":"shutting_down","message":"the service is shutting down","field":null}}"#,
    );
    let deploy_to = |base: &str| {
        let args = [
            "deploy",
            "web",
            "--image",
            "web:v2",
            "--no-wait",
            "--server",
            base,
        ];
        bluegreen(
            &dir,
            &args,
            &[("BLUEGREEN_API_TOKEN", "cli-test-token-0123456789")],
        )
    };
    let (base, server) = scripted_server(vec![shutting_down]);
    let out = deploy_to(&base);
    assert_eq!(server.join().unwrap().len(), 1);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("HTTP 503 shutting_down"),
        "{}",
        text(&out.stderr)
    );
    // The store's "nothing was done": sent again, and accepted.
    let unavailable = store_unavailable();
    let created = http_answer("201 Created", "", r#"{"id":"web-20261130T120000-2"}"#);
    let (base, server) = scripted_server(vec![unavailable, created]);
    let out = deploy_to(&base);
    let seen = server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(seen, ["POST /v1/deployments HTTP/1.1"; 2]);
    assert_eq!(text(&out.stdout).trim(), "web-20261130T120000-2");
}
