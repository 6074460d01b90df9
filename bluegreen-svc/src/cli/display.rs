//! Printing deployments for people (and JSON for machines).

use bluegreen_core::TargetHealth;
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
    let green = serde_json::from_value::<TargetHealth>(v["targets"]["green"].clone()).ok();
    let health = match (green, healthy, desired) {
        // Every state with ELBv2's reasons, so a green stuck unhealthy says why (not just
        // "0 healthy").
        (Some(t), _, d) => {
            let of = d.map(|d| format!(" of {d}")).unwrap_or_default();
            format!(" · green targets {}{of}", t.summary())
        }
        (None, Some(h), Some(d)) => format!(" · green healthy {h}/{d}"),
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

/// The name closest to `wanted` (edit distance at most a third of its length, at least 2).
pub(super) fn closest<'a>(wanted: &str, names: &[&'a str]) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(2);
    names
        .iter()
        .map(|n| (edit_distance(wanted, n), *n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance (names are short: O(|a|·|b|) is fine; both are config names).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_app_name_is_suggested() {
        assert_eq!(closest("webb", &["web", "api"]), Some("web"));
        assert_eq!(closest("Web", &["web", "api"]), Some("web"));
        assert_eq!(closest("database", &["web", "api"]), None);
    }
}
