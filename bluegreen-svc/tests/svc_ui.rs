//! The status page in a real browser: headless Chromium driven over WebDriver loads the
//! page of `bluegreen serve` on the embedded default (approval gate on), logs in, watches
//! a deployment appear and reach the gate without a reload, clicks promote, sees the
//! phase move on, and keeps a screenshot (`target/artifacts/status-page.png`; with
//! `BLUEGREEN_UPDATE_SCREENSHOT=1` also `docs/status-page.png`, the README's copy).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Without them the test skips — except under `CI=true`, where
//! that is a failure.

mod ui_util;

use std::time::Duration;

use serde_json::Value;
use ui_util::{Driver, Scratch, Serve, Session, browser_paths, example_config, until};

const DEV_TOKEN: &str = "dev-token";

/// Evaluate `$check` (an `Option`) until it is `Some`, at most `$secs` seconds.
macro_rules! wait {
    ($what:expr, $secs:expr, $check:expr) => {{
        let deadline = std::time::Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {} s waiting for {}",
                $secs,
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

async fn api(http: &reqwest::Client, base: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut r = match body {
        Some(b) => http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => http.get(format!("{base}{path}")),
    };
    r = r.bearer_auth(DEV_TOKEN);
    let resp = r.send().await.expect("API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_a_deployment_live_and_promotes_it_in_a_real_browser() {
    let Some((driver_path, chromium)) = browser_paths() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipping: chromium/chromedriver not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let dir = Scratch::new("ui-browser");
    let config = example_config(|t| t.replace("approval      = false", "approval      = true"));
    assert!(
        config.contains("approval      = true"),
        "the example still has the key"
    );
    let mut serve = Serve::start(&dir.0, &config, &[]);
    let http = reqwest::Client::new();

    // A deployment that rolls back first, so the history has an outcome with a reason.
    let (status, v) = api(
        &http,
        &serve.base,
        "/v1/deployments",
        Some(r#"{"app":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2-crashloop"}"#),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let first = v["id"].as_str().unwrap().to_string();
    until(
        "the crash-looping deployment to roll back",
        Duration::from_secs(120),
        || {
            let (http, base, first) = (http.clone(), serve.base.clone(), first.clone());
            async move {
                let (_, v) = api(&http, &base, &format!("/v1/deployments/{first}"), None).await;
                (v["state"] == "finished").then_some(())
            }
        },
    )
    .await;

    let driver = Driver::start(&driver_path).await;
    let s = Session::new(&driver, &chromium, &dir.0.join("profile")).await;

    // No session: the page sends the browser to the login form.
    s.goto(&format!("{}/ui", serve.base)).await;
    assert!(
        s.current_url().await.ends_with("/ui/login"),
        "{}",
        s.current_url().await
    );
    s.type_into("#token", "not-the-token").await;
    assert!(s.click("#login").await);
    wait!("the login error", 10, s.find("#login-error").await);
    s.type_into("#token", DEV_TOKEN).await;
    assert!(s.click("#login").await);
    wait!("the page after login", 10, s.find("main#main").await);
    assert!(s.current_url().await.ends_with("/ui"));
    let app_row = wait!("the app row", 10, s.text("tr[data-app=\"web\"]").await);
    assert!(app_row.contains("service-pair"), "{app_row}");
    let history = s.text("table.history").await.unwrap_or_default();
    assert!(
        history.contains(&first) && history.contains("rolled-back"),
        "{history}"
    );

    // A deployment started elsewhere appears without a reload and reaches the gate.
    let (status, v) = api(
        &http,
        &serve.base,
        "/v1/deployments",
        Some(r#"{"app":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2"}"#),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let card = format!("article[data-deployment=\"{id}\"]");
    let phase_sel = format!("{card} [data-phase]");
    let mut seen: Vec<String> = Vec::new();
    wait!("the card to show the approval gate", 90, {
        let p = s.attribute(&phase_sel, "data-phase").await;
        if let Some(p) = &p
            && seen.last() != Some(p)
        {
            seen.push(p.clone());
        }
        p.filter(|p| p == "approval")
    });
    eprintln!("phases seen in the browser before promote: {seen:?}");
    let detail = s
        .text(&format!("{card} [data-detail]"))
        .await
        .unwrap_or_default();
    assert!(detail.contains("waiting for promote"), "{detail}");
    let green = s
        .text(&format!("{card} [data-side=\"green\"]"))
        .await
        .unwrap_or_default();
    assert!(
        green.contains("healthy"),
        "healthy targets per side: {green}"
    );
    assert!(s.find(&format!("{card} svg.timeline")).await.is_some());

    // Click promote (the live update may replace the button between find and click).
    let button = format!("{card} button[data-action=\"promote\"]");
    wait!(
        "promote to be clicked",
        20,
        s.click(&button).await.then_some(())
    );
    wait!("the phase to move past approval", 60, {
        let p = s.attribute(&phase_sel, "data-phase").await;
        if let Some(p) = &p
            && seen.last() != Some(p)
        {
            seen.push(p.clone());
        }
        p.filter(|p| p != "approval")
    });
    // The canary step is on: the timeline's green line has left zero.
    wait!(
        "the canary step on the page",
        60,
        s.text(&format!("{card} [data-detail]"))
            .await
            .filter(|d| d.contains("green 20 %"))
    );
    // One more live refresh so the chart has some canary time on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let png = s.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("status-page.png"), &png).unwrap();
    if std::env::var("BLUEGREEN_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status-page.png");
        std::fs::write(docs, &png).unwrap();
    }
    eprintln!("phases seen in the browser: {seen:?}");

    // The API agrees: promote was accepted and the deployment moved on.
    let (_, v) = api(&http, &serve.base, &format!("/v1/deployments/{id}"), None).await;
    assert_ne!(v["phase"], "approval", "{v}");
    assert!(
        v["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["from"] == "approval"),
        "{v}"
    );
    s.close().await;
    assert_eq!(
        serve.stop(),
        Some(0),
        "serve stops cleanly: {}",
        serve.stderr()
    );
}

mod svc_util;

/// A form body (reqwest is built without its `form` feature).
trait FormBody {
    fn form_body(self, body: String) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, body: String) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// Guessing the token through the login form is slowed to the failure bucket's rate:
/// after LOGIN_FAILURES_BURST wrong tokens every login (even the right token) gets 429
/// with Retry-After until the bucket refills.
#[tokio::test]
async fn wrong_logins_are_rate_limited_for_the_whole_server() {
    let h = svc_util::Harness::start(&svc_util::app_toml("web", "")).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |token: &str| {
        http.post(format!("{}/ui/login", h.base))
            .form_body(format!("token={token}"))
            .send()
    };
    for _ in 0..bluegreen_svc::api::LOGIN_FAILURES_BURST {
        assert_eq!(login("wrong").await.unwrap().status(), 401);
    }
    let r = login("wrong").await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "retry after {wait} s");
    assert!(r.text().await.unwrap().contains("Too many wrong tokens"));
    let r = login(svc_util::API_TOKEN).await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "the right token waits too: no guess is checked"
    );
    assert!(r.headers().get("set-cookie").is_none());
}

/// Without a browser: what the page answers to requests without a session, with a
/// wrong token, and to writes without the CSRF token.
#[tokio::test]
async fn the_page_needs_a_session_and_its_writes_need_the_csrf_token() {
    let h = svc_util::Harness::start(&svc_util::app_toml("web", "approval = true")).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = &h.base;
    let r = http.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let r = http.get(format!("{base}/ui/live")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/ui/login"))
        .form_body("token=wrong".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(format!("{base}/ui/login"))
        .form_body(format!("token={}", svc_util::API_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let r = http
        .get(format!("{base}/ui"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_string();
    let id = h.deploy("web", "web:v2").await;
    h.phase_is(&id, "approval").await;
    let promote = format!("{base}/ui/deployments/{id}/promote");
    // A cookie alone is not enough to write.
    for form in [String::new(), format!("csrf={}", "0".repeat(32))] {
        let r = http
            .post(&promote)
            .header("cookie", &session)
            .form_body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    assert_eq!(h.deployment(&id).await["phase"], "approval");
    // A CSRF token without the cookie is not enough either.
    let r = http
        .post(&promote)
        .form_body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Both: accepted, and the page says so.
    let r = http
        .post(&promote)
        .header("cookie", &session)
        .form_body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/ui?ok=promote%20accepted"),
        "{location}"
    );
    h.phase_is(&id, "shift").await;
    // An action the phase refuses comes back as an error message, not a crash.
    let r = http
        .post(promote.replace("/promote", "/resume"))
        .header("cookie", &session)
        .form_body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui?error=")
    );
    let r = http
        .post(format!("{base}/ui/deployments/{id}/explode"))
        .header("cookie", &session)
        .form_body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
