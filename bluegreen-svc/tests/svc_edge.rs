//! The service's edges as an attacker meets them (issue 10): pinned registries, secrets,
//! 5xx bodies, control characters, rate limits, the connection cap and header-read
//! timeout, cached `/v1/apps` reads, paginated lists and journals, retention.

mod svc_util;

use std::collections::BTreeMap;
use std::time::Duration;

use bluegreen_svc::api::error::INTERNAL_MESSAGE;
use bluegreen_svc::config::{Config, Origin};
use bluegreen_svc::serve::Secrets;
use reqwest::Method;
use serde_json::Value;
use svc_util::{API_TOKEN, Harness, WEBHOOK_TOKEN, app_toml, digest, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn push_from(account: &str, region: &str, repository: &str, tag: &str, digest: &str) -> String {
    serde_json::json!({
        "version": "0", "id": "e1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": account, "time": "2026-11-22T03:04:05Z", "region": region, "resources": [],
        "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": repository,
                   "image-digest": digest, "image-tag": tag}
    })
    .to_string()
}

async fn metrics(h: &Harness) -> String {
    let (status, v) = h.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 200);
    v.as_str().expect("text").to_string()
}

fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn a_push_from_another_account_or_region_is_ignored_with_its_reason_and_counted() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let series = r#"bluegreen_webhook_ignored_total{reason="foreign-registry"}"#;
    let before = counter(&metrics(&h).await, series);
    for (account, region) in [("999999999999", "us-east-1"), ("123456789012", "eu-west-1")] {
        let (status, v) = h
            .webhook(&push_from(account, region, "web", "v2", &digest(1)))
            .await;
        assert_eq!(status, 200, "{v}");
        let reason = v["ignored"].as_str().expect("ignored");
        assert!(reason.starts_with("foreign registry"), "{reason}");
        assert!(
            reason.contains(account) && reason.contains(region),
            "{reason}"
        );
        assert!(
            reason.contains("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            "names the pinned registry: {reason}"
        );
    }
    assert_eq!(counter(&metrics(&h).await, series), before + 2);
    let (_, list) = h.get("/v1/deployments").await;
    assert_eq!(
        list["deployments"].as_array().unwrap().len(),
        0,
        "nothing deployed"
    );
    // The app's own registry (the listener ARN's account and region) deploys.
    let (status, v) = h
        .webhook(&push_from(
            "123456789012",
            "us-east-1",
            "web",
            "v2",
            &digest(2),
        ))
        .await;
    assert_eq!(status, 202, "{v}");
    h.stop().await;
}

#[tokio::test]
async fn a_registry_in_the_config_pins_pushes_to_it() {
    let app = app_toml(
        "web",
        r#"registry = "210987654321.dkr.ecr.eu-central-1.amazonaws.com""#,
    );
    let mut h = Harness::start(&app).await;
    let (status, v) = h
        .webhook(&push_from(
            "123456789012",
            "us-east-1",
            "web",
            "v2",
            &digest(3),
        ))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("210987654321.dkr.ecr.eu-central-1")
    );
    let (status, v) = h
        .webhook(&push_from(
            "210987654321",
            "eu-central-1",
            "web",
            "v2",
            &digest(3),
        ))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["deployment"].as_str().unwrap();
    let d = h.deployment(id).await;
    assert_eq!(
        d["image"],
        format!(
            "210987654321.dkr.ecr.eu-central-1.amazonaws.com/web@{}",
            digest(3)
        )
    );
    h.stop().await;
}

#[tokio::test]
async fn a_bad_registry_in_the_config_is_refused_naming_the_key() {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}",
        app_toml("web", r#"registry = "evil.example.com""#)
    );
    let e = Config::parse(&text, Origin::BuiltIn, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.key, "apps[0].registry", "{e}");
}

fn aws_config() -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[cloud]\nkind = \"aws\"\n{}",
        app_toml("web", "")
    );
    Config::parse(&text, Origin::BuiltIn, &BTreeMap::new()).unwrap()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn equal_or_short_tokens_refuse_to_start_and_file_newlines_are_trimmed() {
    let config = aws_config();
    let same = "the-same-token-0123456789";
    let hook = ("BLUEGREEN_HOOK_SECRET", "hook-secret-0123456789");
    let e = Secrets::from_env(
        &config,
        &env(&[
            ("BLUEGREEN_API_TOKEN", same),
            ("BLUEGREEN_WEBHOOK_TOKEN", same),
            hook,
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("must differ"), "{e}");
    // A trailing newline does not make two equal tokens differ.
    let e = Secrets::from_env(
        &config,
        &env(&[
            ("BLUEGREEN_API_TOKEN", same),
            ("BLUEGREEN_WEBHOOK_TOKEN", &format!("{same}\n")),
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("must differ"), "{e}");
    let e = Secrets::from_env(
        &config,
        &env(&[
            ("BLUEGREEN_API_TOKEN", "short-token\n\n\n\n\n\n"),
            ("BLUEGREEN_WEBHOOK_TOKEN", "webhook-token-0123456789"),
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("at least 16"), "{e}");
    let s = Secrets::from_env(
        &config,
        &env(&[
            ("BLUEGREEN_API_TOKEN", "api-token-from-a-file-0123\n"),
            ("BLUEGREEN_WEBHOOK_TOKEN", " webhook-token-0123456789 "),
        ]),
    )
    .unwrap();
    assert_eq!(s.api_token, "api-token-from-a-file-0123");
    assert_eq!(s.webhook_token, "webhook-token-0123456789");
}

#[tokio::test]
async fn a_token_with_a_trailing_newline_admits_the_trimmed_bearer() {
    let token = bluegreen_svc::api::Token::new("api-token-from-a-file-0123\n");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        "Bearer api-token-from-a-file-0123".parse().unwrap(),
    );
    assert!(token.admits(&headers));
}

/// Run the binary with `env` (and no other BLUEGREEN_ variable); (exit code, stderr).
fn run_serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bluegreen"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BLUEGREEN_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_store_password_is_never_printed() {
    let dir = svc_util::TempDir::new("password");
    let password = "Sup3r-Secret-Pa55word";
    for url in [
        // refused at once (nothing listens on port 1)
        format!("postgres://bluegreen:{password}@127.0.0.1:1/bluegreen"),
        // not a URL the driver can parse
        format!("postgres://bluegreen:{password}@127.0.0.1:notaport/bluegreen"),
        // not a store kind at all
        format!("mysql://bluegreen:{password}@127.0.0.1/bluegreen"),
    ] {
        let (code, output) = run_serve(
            &dir.0,
            &[
                ("BLUEGREEN_SERVER_STORE", &url),
                ("BLUEGREEN_API_TOKEN", "api-token-0123456789"),
                ("BLUEGREEN_WEBHOOK_TOKEN", "webhook-token-0123456789"),
            ],
        );
        assert_ne!(code, Some(0), "{url}: {output}");
        assert!(!output.is_empty(), "{url}: says why it stopped");
        assert!(
            !output.contains(password),
            "{url}: the password is printed:\n{output}"
        );
    }
}

#[tokio::test]
async fn an_internal_error_answers_a_request_id_and_a_generic_message() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let id = h.deploy("web", "web:v2").await;
    h.finished(&id).await;
    // Break the store under the server: the journal table is gone.
    let url = h.dir.store_url();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE journal")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let resp = h
        .http
        .get(format!("{}/v1/deployments/{id}/journal", h.base))
        .bearer_auth(API_TOKEN)
        .header("x-request-id", "req-from-the-client-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let header = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(header, "req-from-the-client-1");
    assert_eq!(v["error"]["request_id"], header.as_str(), "{v}");
    assert_eq!(v["error"]["message"], INTERNAL_MESSAGE, "{v}");
    let text = v.to_string();
    assert!(
        !text.contains("journal") && !text.contains("table"),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn control_characters_are_refused_naming_the_field() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    for (body, field) in [
        (r#"{"app":"web","image":"web:v2\u001b[2J"}"#, "image"),
        (r#"{"app":"we\nb","image":"web:v2"}"#, "app"),
        (r#"{"app":"web","image":"web:v2\u0000"}"#, "image"),
    ] {
        let (status, v) = h.post("/v1/deployments", body).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let id = h.deploy("web", "web:v2").await;
    let (status, v) = h
        .post(
            &format!("/v1/deployments/{id}/abort"),
            r#"{"reason":"bad\u0007bell"}"#,
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["field"], "reason");
    let event = push_from(
        "123456789012",
        "us-east-1",
        "web",
        "v2\u{1b}]0;pwned\u{7}",
        &digest(4),
    );
    let (status, v) = h.webhook(&event).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["field"], "detail.image-tag");
    h.stop().await;
}

#[tokio::test]
async fn each_token_has_its_own_rate_limit_answered_429_with_retry_after() {
    let mut h = Harness::start_server(
        "api_rate = 1\napi_burst = 2\nwebhook_rate = 1\nwebhook_burst = 1",
        &app_toml("web", ""),
    )
    .await;
    for _ in 0..2 {
        let (status, v) = h.get("/v1/deployments").await;
        assert_eq!(status, 200, "{v}");
    }
    let resp = h
        .http
        .get(format!("{}/v1/deployments", h.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // The webhook token's bucket is its own; a wrong token is 401, not counted.
    let (status, _) = h
        .send(
            Method::GET,
            "/v1/deployments",
            Some("wrong-token-0123456789"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, v) = h
        .webhook(&push_from(
            "123456789012",
            "us-east-1",
            "web",
            "v2",
            &digest(5),
        ))
        .await;
    assert_eq!(status, 202, "{v}");
    let (status, _) = h
        .webhook(&push_from(
            "123456789012",
            "us-east-1",
            "web",
            "v2",
            &digest(6),
        ))
        .await;
    assert_eq!(status, 429);
    assert!(
        counter(
            &metrics(&h).await,
            r#"bluegreen_http_rate_limited_total{token="api"}"#
        ) >= 1
    );
    h.stop().await;
}

#[tokio::test]
async fn a_connection_over_the_cap_is_answered_503_and_the_cap_frees_when_one_closes() {
    let mut h = Harness::start_server("connections_max = 2", &app_toml("web", "")).await;
    let addr = h.base.trim_start_matches("http://").to_string();
    // Two idle connections hold the cap.
    let a = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let over = wait_for(
        "the third connection to be refused",
        Duration::from_secs(10),
        || async {
            let resp = fresh().get(format!("{}/healthz", h.base)).send().await;
            let resp = resp.ok()?;
            (resp.status() == 503).then_some(resp)
        },
    )
    .await;
    assert_eq!(over.headers()["retry-after"], "1");
    let v: Value = over.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_connections");
    drop(a);
    drop(b);
    wait_for(
        "a connection slot to free",
        Duration::from_secs(10),
        || async {
            let resp = fresh()
                .get(format!("{}/healthz", h.base))
                .send()
                .await
                .ok()?;
            (resp.status() == 200).then_some(())
        },
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let mut h =
        Harness::start_server("header_read_timeout = \"200ms\"", &app_toml("web", "")).await;
    let addr = h.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Bounded: the server closes after its 200 ms header timeout; 10 s is the test's limit.
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection is still open after 10 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn apps_reuse_a_fresh_listener_read() {
    let mut h = Harness::start_server("apps_cache_ttl = \"1h\"", &app_toml("web", "")).await;
    for _ in 0..3 {
        let (status, v) = h.get("/v1/apps").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["apps"][0]["live"], "a", "{v}");
    }
    assert_eq!(
        h.cloud.counts("web").commands,
        1,
        "one listener read for three requests"
    );
    h.stop().await;
    let mut h = Harness::start_server("apps_cache_ttl = \"0s\"", &app_toml("web", "")).await;
    for _ in 0..3 {
        h.get("/v1/apps").await;
    }
    assert_eq!(
        h.cloud.counts("web").commands,
        3,
        "no cache: one read per request"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_deployment_list_pages_with_a_cursor() {
    let apps = format!(
        "{}{}{}",
        app_toml("a1", ""),
        app_toml("a2", ""),
        app_toml("a3", "")
    );
    let mut h = Harness::start(&apps).await;
    let mut ids = Vec::new();
    for app in ["a1", "a2", "a3"] {
        ids.push(h.deploy(app, &format!("{app}:v2")).await);
    }
    let (status, first) = h.get("/v1/deployments?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let page: Vec<&str> = first["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(page.len(), 2);
    let next = first["next"].as_str().expect("a cursor");
    let (status, second) = h
        .get(&format!("/v1/deployments?limit=2&after={next}"))
        .await;
    assert_eq!(status, 200, "{second}");
    let rest: Vec<&str> = second["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest.len(), 1);
    assert!(second["next"].is_null());
    let mut all: Vec<&str> = page.into_iter().chain(rest).collect();
    all.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(all, expected, "every deployment once");
    let (status, v) = h.get("/v1/deployments?after=not-a-cursor").await;
    assert_eq!(status, 422);
    assert_eq!(v["error"]["field"], "after");
    h.stop().await;
}

#[tokio::test]
async fn the_journal_pages_and_streams_the_same_lines() {
    let mut h = Harness::start(&app_toml("web", "")).await;
    let id = h.deploy("web", "web:v2").await;
    h.finished(&id).await;
    let text = |path: String| {
        let req = h
            .http
            .get(format!("{}{path}", h.base))
            .bearer_auth(API_TOKEN);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let next = resp
                .headers()
                .get("x-bluegreen-next-after")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.text().await.unwrap(), next)
        }
    };
    let (whole, next) = text(format!("/v1/deployments/{id}/journal")).await;
    assert!(next.is_none());
    let total = whole.lines().count();
    assert!(total > 10, "{total} lines");
    let mut paged = String::new();
    let mut after = 0u64;
    for _ in 0..total {
        let (page, next) = text(format!(
            "/v1/deployments/{id}/journal?after={after}&limit=7"
        ))
        .await;
        assert!(page.lines().count() <= 7);
        paged.push_str(&page);
        match next {
            Some(n) => after = n.parse().unwrap(),
            None => break,
        }
    }
    assert_eq!(paged, whole, "the pages add up to the whole journal");
    let (status, _) = h.get("/v1/deployments/nope/journal").await;
    assert_eq!(status, 404);
    let (status, v) = h
        .get(&format!("/v1/deployments/{id}/journal?limit=0"))
        .await;
    assert_eq!(status, 422, "{v}");
    h.stop().await;
}

#[tokio::test]
async fn finished_deployments_past_the_retention_are_pruned_with_their_journals() {
    // 2 s of the test clock (20x) is 100 ms of real time; a pass runs every second.
    let mut h = Harness::start_server("retention = \"2s\"", &app_toml("web", "")).await;
    let id = h.deploy("web", "web:v2").await;
    h.finished(&id).await;
    wait_for(
        "the finished deployment to be pruned",
        Duration::from_secs(30),
        || async {
            let (status, _) = h.get(&format!("/v1/deployments/{id}")).await;
            (status == 404).then_some(())
        },
    )
    .await;
    let store = h.server.as_ref().unwrap().runner.store().clone();
    assert!(
        store.journal(&id).await.unwrap().is_empty(),
        "its journal went too"
    );
    assert!(counter(&metrics(&h).await, "bluegreen_deployments_pruned_total") >= 1);
    // A webhook token is not an API token.
    let (status, _) = h
        .send(Method::GET, "/v1/deployments", Some(WEBHOOK_TOKEN), None)
        .await;
    assert_eq!(status, 401);
    h.stop().await;
}
