//! Config parsing: errors with key and line, overrides, secrets, app mapping.
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Origin::File("t.toml".into()), &BTreeMap::new())
}

const APP: &str = r#"
[[apps]]
name = "web"
cluster = "prod"
services = ["web-a", "web-b"]
target_groups = ["arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-a/1", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-b/2"]
listener = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/3/4"
container = "web"
repository = "web"
tags = ["v*"]
strategy = { kind = "canary", percent = 10, wait = "5m" }
"#;

#[test]
fn the_built_in_example_parses() {
    let c = Config::parse(EXAMPLE_TOML, Origin::BuiltIn, &BTreeMap::new()).unwrap();
    assert_eq!(c.cloud.kind, CloudKind::Sim);
    assert_eq!(c.apps[0].name, "web");
}

#[test]
fn a_bad_strategy_percent_names_the_key_and_its_line() {
    let text = APP.replace("percent = 10", "percent = 100");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "apps[0].strategy.percent");
    assert_eq!(e.line, Some(11), "{e}");
    assert!(
        e.to_string()
            .starts_with("t.toml:11: apps[0].strategy.percent:"),
        "{e}"
    );
}

#[test]
fn a_type_error_names_the_key_and_its_line() {
    let text = format!("[server]\nlisten = 8080\n{APP}");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "server.listen");
    assert_eq!(e.line, Some(2));
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let text = format!("{APP}colour = \"blue\"\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line, Some(12), "{e}");
    assert!(e.message.contains("colour"), "{e}");
}

#[test]
fn secrets_in_the_file_are_refused() {
    let e = parse("[server]\napi_token = \"x\"\n").unwrap_err();
    assert!(e.message.contains("environment"), "{e}");
    let e = parse("[server]\nstore = \"postgres://u:pw@db/bg\"\n").unwrap_err();
    assert_eq!(e.key, "server.store");
    assert_eq!(e.line, Some(2));
}

#[test]
fn environment_overrides_scalar_keys_and_names_bad_ones() {
    let mut env = BTreeMap::new();
    env.insert(
        "BLUEGREEN_SERVER_LISTEN".to_string(),
        "127.0.0.1:9999".to_string(),
    );
    env.insert("BLUEGREEN_CLOUD_SEED".to_string(), "42".to_string());
    env.insert("BLUEGREEN_MOTO_SERVER".to_string(), "/x".to_string());
    let c = Config::parse(APP, Origin::BuiltIn, &env).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:9999");
    assert_eq!(c.cloud.seed, 42);
    env.insert("BLUEGREEN_SERVER_PORT".to_string(), "1".to_string());
    let e = Config::parse(APP, Origin::BuiltIn, &env).unwrap_err();
    assert!(e.origin.contains("BLUEGREEN_SERVER_PORT"), "{e}");
    env.remove("BLUEGREEN_SERVER_PORT");
    env.insert("BLUEGREEN_CLOUD_KIND".to_string(), "azure".to_string());
    let e = Config::parse(APP, Origin::BuiltIn, &env).unwrap_err();
    assert_eq!(e.key, "cloud.kind");
}

#[test]
fn service_pair_needs_two_services() {
    let text = APP.replace(
        r#"services = ["web-a", "web-b"]"#,
        r#"services = ["web-a"]"#,
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "apps[0].services");
    assert_eq!(e.line, Some(5));
}

#[test]
fn the_full_example_in_docs_config_md_parses() {
    let doc = include_str!("../../../docs/config.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    let c = Config::parse(
        &doc[start..end],
        Origin::File("docs/config.md".into()),
        &BTreeMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let web = c.app("web").unwrap();
    assert_eq!(web.draft.metrics.len(), 3);
    assert_eq!(web.draft.hooks.len(), 2);
    assert_eq!(web.draft.approval_timeout_ms, Some(3_600_000));
    assert!(web.watches("web", Some("release-7")));
}

#[test]
fn tag_globs_match_like_a_shell() {
    assert!(glob_match("v*", "v1.2"));
    assert!(!glob_match("v*", "latest"));
    assert!(glob_match("release-?", "release-1"));
    assert!(glob_match("*-prod", "web-prod"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("a*b", "a-c"));
}

#[test]
fn apps_watch_their_repository_and_tags() {
    let c = parse(APP).unwrap();
    let web = c.app("web").unwrap();
    assert!(web.watches("web", Some("v2")));
    assert!(!web.watches("web", Some("latest")));
    assert!(!web.watches("web", None));
    assert!(!web.watches("api", Some("v2")));
}

// ---- what a new user tripped over (issue 12) ----

#[test]
fn a_range_error_from_the_environment_blames_the_variable_not_the_file() {
    let mut env = BTreeMap::new();
    env.insert("BLUEGREEN_CLOUD_SPEED".to_string(), "5000".to_string());
    let text = format!("[cloud]\nkind = \"sim\"\nspeed = 2\n{APP}");
    let e = Config::parse(&text, Origin::File("t.toml".into()), &env).unwrap_err();
    assert_eq!(e.key, "cloud.speed");
    assert_eq!(e.line, None, "{e}");
    assert!(e.origin.contains("BLUEGREEN_CLOUD_SPEED"), "{e}");
    assert!(!e.to_string().contains("t.toml"), "{e}");
    // The same key set badly in the file still names the file and line.
    let e = parse(&text.replace("speed = 2", "speed = 5000")).unwrap_err();
    assert_eq!((e.origin.as_str(), e.line), ("t.toml", Some(3)), "{e}");
}

#[test]
fn a_bad_strategy_field_is_named_with_its_dotted_key() {
    let text = APP.replace(
        r#"strategy = { kind = "canary", percent = 10, wait = "5m" }"#,
        r#"strategy = { kind = "linear", step = "fifty", interval = "1m" }"#,
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "apps[0].strategy.step", "{e}");
    assert_eq!(e.line, Some(11), "{e}");
    assert!(!e.message.contains("u8"), "{e}");
    assert!(e.message.contains("whole number"), "{e}");
    let text = APP.replace("wait = \"5m\"", "wait = \"soon\"");
    assert_eq!(parse(&text).unwrap_err().key, "apps[0].strategy.wait");
    let text = APP.replace("percent = 10", "pct = 10");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "apps[0].strategy.pct", "{e}");
    // Both spellings of the linear step work (README and docs/config.md agree on `step`).
    for key in ["step", "step_percent"] {
        let text = APP.replace(
            r#"strategy = { kind = "canary", percent = 10, wait = "5m" }"#,
            &format!(r#"strategy = {{ kind = "linear", {key} = 25, interval = "1m" }}"#),
        );
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.apps[0].draft.strategy,
            bluegreen_core::spec::Strategy::Linear {
                step_percent: 25,
                interval_ms: 60_000
            }
        );
    }
}

#[test]
fn a_spelled_out_duration_says_how_to_write_it() {
    let e = parse(&format!("{APP}bake = \"5 minutes\"\n")).unwrap_err();
    assert_eq!(e.key, "apps[0].bake", "{e}");
    assert!(e.message.contains("\"5m\""), "{e}");
    assert!(!e.message.contains("without a unit"), "{e}");
}

#[test]
fn a_syntax_error_shows_file_and_line_without_a_bare_dash() {
    let e = parse("[server]\nlisten = \"127.0.0.1:8080\nstore = 1\n").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("t.toml:2: "), "{text}");
    assert!(!text.contains("-:"), "{text}");
}

#[test]
fn uppercase_repository_names_are_refused_with_the_lowercase_spelling() {
    let e = parse(&APP.replace("repository = \"web\"", "repository = \"Web\"")).unwrap_err();
    assert_eq!(e.key, "apps[0].repository");
    assert!(e.message.contains("\"web\""), "{e}");
    assert!(parse(&APP.replace("repository = \"web\"", "repository = \"team/web-app\"")).is_ok());
    for bad in ["-web", "web/", "a//b", "w"] {
        let text = APP.replace("repository = \"web\"", &format!("repository = \"{bad}\""));
        assert!(parse(&text).is_err(), "{bad}");
    }
}

#[test]
fn notify_entries_are_checked_with_their_keys() {
    let ok = format!(
        "{APP}\n[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\napps = [\"web\"]\nevents = [\"rolled-back\", \"traffic-shifted\"]\n"
    );
    let c = parse(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.notify.len(), 1);
    let e = parse(&ok.replace("apps = [\"web\"]", "apps = [\"api\"]")).unwrap_err();
    assert_eq!(e.key, "notify[0].apps[0]", "{e}");
    assert!(e.message.contains("web"), "{e}");
    let e = parse(&ok.replace("\"rolled-back\"", "\"exploded\"")).unwrap_err();
    assert!(e.key.starts_with("notify[0].events"), "{e}");
    let e = parse(&ok.replace("SLACK_URL", "https://hooks.slack.com/x")).unwrap_err();
    assert_eq!(e.key, "notify[0].url_env", "{e}");
}

#[test]
fn the_api_budget_and_the_signal_poll_are_configured_and_checked() {
    let c = parse(APP).unwrap();
    let shape = c.runner_limits().api_budget.expect("on by default");
    assert_eq!((shape.share_permille, shape.reserve_permille), (800, 200));
    let text = format!("[runner]\napi_share = 50\napi_reserve = 10\n{APP}");
    let shape = parse(&text).unwrap().runner_limits().api_budget.unwrap();
    assert_eq!((shape.share_permille, shape.reserve_permille), (500, 100));
    let off = format!("[runner]\napi_share = 0\n{APP}");
    assert_eq!(parse(&off).unwrap().runner_limits().api_budget, None);
    let unlimited = format!("[cloud]\nkind = \"sim\"\nthrottle = false\n{APP}");
    assert_eq!(
        parse(&unlimited).unwrap().runner_limits().api_budget,
        None,
        "a simulated account without API limits needs no budget"
    );
    for (bad, key) in [
        ("api_share = 101", "runner.api_share"),
        ("api_reserve = 60", "runner.api_reserve"),
    ] {
        let e = parse(&format!("[runner]\n{bad}\n{APP}")).unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }
    let slow = format!("{APP}pacing = {{ poll_interval = \"10s\", signal_poll = \"1m\" }}\n");
    let c = parse(&slow).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.apps[0].draft.pacing.signal_poll_ms, Some(60_000));
    let fast = slow.replace("signal_poll = \"1m\"", "signal_poll = \"1s\"");
    let e = parse(&fast).unwrap_err();
    assert!(e.key.ends_with("pacing.signal_poll"), "{e}");
}
