//! Printing deployments for people (and JSON for machines).

use serde_json::Value;

pub(super) fn summary_of(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        summary(v)
    }
}

pub(super) fn summary(v: &Value) -> String {
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

pub(super) fn strip_plan(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("plan");
    }
    v
}

pub(super) fn print_view(view: &Value, json: bool) {
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

pub(super) fn print_list(list: &Value, json: bool) {
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
