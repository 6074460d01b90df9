//! Printing deployments for people (and JSON for machines).

use bluegreen_core::{Reason, TargetHealth, Transition};
use serde::Deserialize;
use serde_json::Value;

/// A deployment as `GET /v1/deployments/{id}` returns it, typed for printing. Fields the
/// CLI does not show are not read; missing ones (an older server) take their defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct View {
    pub id: String,
    pub app: String,
    /// A machine phase, or `queued`.
    pub phase: String,
    pub state: String,
    pub image: String,
    pub detail: String,
    pub weights: ViewWeights,
    pub desired_count: Option<u32>,
    pub green_healthy_targets: Option<u32>,
    pub reason: Option<Reason>,
    pub action_required: Option<String>,
    pub note: Option<String>,
    pub transitions: Vec<Transition>,
    pub targets: ViewTargets,
}

/// Production weights in percent.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ViewWeights {
    pub blue: u32,
    pub green: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ViewTargets {
    pub green: Option<TargetHealth>,
}

impl View {
    /// Read an API answer; `None` when it is not a deployment.
    pub(super) fn of(v: &Value) -> Option<View> {
        v.is_object()
            .then(|| serde_json::from_value(v.clone()).ok())
            .flatten()
    }

    pub(super) fn is_over(&self) -> bool {
        matches!(self.state.as_str(), "finished" | "superseded" | "cancelled")
    }
}

/// "2026-… web-a → web-b: reason" for one transition.
pub(super) fn transition_line(t: &Transition) -> String {
    format!("{}  {} → {}: {}", t.at, t.from, t.to, t.reason)
}

pub(super) fn summary(v: &View) -> String {
    let health = match (&v.targets.green, v.green_healthy_targets, v.desired_count) {
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
        v.weights.blue, v.weights.green, v.detail
    )
}

pub(super) fn strip_plan(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("plan");
    }
    v
}

pub(super) fn print_view(raw: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(raw).expect("json"));
        return;
    }
    let Some(view) = View::of(raw) else {
        println!("{raw}");
        return;
    };
    println!(
        "{}  {}  {}  ({})",
        view.id, view.app, view.phase, view.state
    );
    println!("  image    {}", view.image);
    println!("  weights  {}", summary(&view));
    if let Some(r) = &view.reason {
        println!("  reason   {}: {}", r.kind.as_str(), r.detail);
    }
    if let Some(a) = &view.action_required {
        println!("  ACTION REQUIRED: {a}");
    }
    if let Some(n) = &view.note {
        println!("  note     {n}");
    }
    for t in &view.transitions {
        println!("  {}", transition_line(t));
    }
}

/// One line of `GET /v1/deployments`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ListItem {
    id: String,
    app: String,
    phase: String,
    state: String,
    image: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct List {
    deployments: Vec<ListItem>,
}

pub(super) fn print_list(list: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(list).expect("json"));
        return;
    }
    let list: List = serde_json::from_value(list.clone()).unwrap_or_default();
    for d in list.deployments {
        println!(
            "{:<40} {:<10} {:<13} {:<11} {}",
            d.id, d.app, d.phase, d.state, d.image
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
    fn a_view_is_read_typed_and_tolerates_missing_and_unknown_fields() {
        let raw = serde_json::json!({
            "id": "web-1", "app": "web", "phase": "rolled-back", "state": "finished",
            "image": "web:v3", "detail": "rolled back", "weights": {"blue": 100, "green": 0},
            "desired_count": 3,
            "reason": {"kind": "unhealthy", "detail": "0 of 3 targets healthy"},
            "transitions": [{"at": 1_800_000_000_000u64, "from": "health-check", "to": "rollback", "reason": "unhealthy: …"}],
            "targets": {"green": {"healthy": 0, "unhealthy": 3, "initial": 0, "draining": 0, "other": 0,
                "reasons": [{"state": "unhealthy", "reason": "Target.Timeout", "targets": 3}]}},
            "something_new": true
        });
        let v = View::of(&raw).expect("a view");
        assert!(v.is_over());
        assert_eq!(v.reason.as_ref().unwrap().kind.as_str(), "unhealthy");
        assert_eq!(
            transition_line(&v.transitions[0]),
            "2027-01-15T08:00:00.000Z  health-check → rollback: unhealthy: …"
        );
        assert_eq!(
            summary(&v),
            "blue 100 / green 0 · green targets 0 healthy, 3 unhealthy (3× Target.Timeout) of 3 · rolled back"
        );
        // A queued deployment (phase "queued") and an older server's sparse answer.
        let q = View::of(&serde_json::json!({"id": "web-2", "phase": "queued", "state": "queued"}))
            .expect("a sparse view");
        assert_eq!((q.phase.as_str(), q.is_over()), ("queued", false));
        assert!(View::of(&serde_json::json!("not a deployment")).is_none());
    }

    #[test]
    fn the_closest_app_name_is_suggested() {
        assert_eq!(closest("webb", &["web", "api"]), Some("web"));
        assert_eq!(closest("Web", &["web", "api"]), Some("web"));
        assert_eq!(closest("database", &["web", "api"]), None);
    }
}
