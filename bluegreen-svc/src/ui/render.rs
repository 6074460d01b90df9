//! The status page's HTML, rendered on the server. The page's script only swaps `<main>`
//! for a fresh copy of the same markup (`GET /ui/live`), so there is one renderer.

use std::fmt::Write as _;

use bluegreen_core::{TargetHealth, Timestamp};

use super::timeline::{Timeline, clock_time};
use crate::api::AppView;
use crate::store::{RowState, Stored};

/// HTML-escape text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One running or queued deployment, with what the card shows.
pub struct Card {
    pub stored: Stored,
    pub timeline: Timeline,
    /// The operator actions its phase allows now (`promote`, `abort`, `pause`, `resume`).
    pub actions: Vec<&'static str>,
}

/// Everything one rendering of the page shows.
pub struct Page {
    pub apps: Vec<AppView>,
    pub cards: Vec<Card>,
    pub history: Vec<Stored>,
    pub csrf: String,
    pub now: Timestamp,
    /// A message after an action (`ok`) or its refusal (`error`).
    pub flash: Option<(bool, String)>,
}

const HEAD: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/ui/assets/style.css"><link rel="icon" href="data:,">"#;

/// The whole page.
pub fn page(p: &Page) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"{HEAD}<title>bluegreen · status</title><script src="/ui/assets/app.js" defer></script></head><body><header><h1><span class="logo-b">blue</span><span class="logo-g">green</span> <span class="sub">status</span></h1><span id="live" class="live" title="updates every 2 s">live</span><form method="post" action="/ui/logout"><input type="hidden" name="csrf" value="{}"><button class="btn subtle" type="submit">Log out</button></form></header><main id="main">{}</main></body></html>"#,
        esc(&p.csrf),
        main(p)
    );
    s
}

/// The login form (`error`: why the last attempt failed).
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="flash error" id="login-error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    format!(
        r#"{HEAD}<title>bluegreen · log in</title></head><body class="login"><form class="login-box" method="post" action="/ui/login"><h1><span class="logo-b">blue</span><span class="logo-g">green</span></h1><p>The status page needs the API token (<code>BLUEGREEN_API_TOKEN</code>; <code>dev-token</code> on the simulated cloud on loopback).</p>{error}<label for="token">API token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus required><button id="login" class="btn promote" type="submit">Log in</button></form></body></html>"#
    )
}

/// The part of the page that live updates replace.
pub fn main(p: &Page) -> String {
    let mut s = String::new();
    if let Some((ok, text)) = &p.flash {
        let _ = write!(
            s,
            r#"<p class="flash {}">{}</p>"#,
            if *ok { "ok" } else { "error" },
            esc(text)
        );
    }
    s.push_str(r#"<section><h2>Apps</h2><table class="apps"><thead><tr><th>app</th><th>mode</th><th>live</th><th>weights (slot a / b)</th><th>in flight</th><th>queued</th></tr></thead><tbody>"#);
    for a in &p.apps {
        let w = |i: usize| a.slots.get(i).and_then(|s| s.weight);
        let weights = match (w(0), w(1)) {
            (Some(x), Some(y)) => format!("{} {x} / {y}", bar(x, y, "a", "b")),
            _ => a
                .listener_error
                .as_deref()
                .map(|e| format!(r#"<span class="muted">{}</span>"#, esc(e)))
                .unwrap_or_else(|| "–".into()),
        };
        let _ = write!(
            s,
            r#"<tr data-app="{n}"><td class="name">{n}</td><td>{}</td><td><span class="side side-{l}">{l}</span></td><td>{weights}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&a.mode),
            esc(a.deployment.as_deref().unwrap_or("–")),
            esc(a.queued.as_deref().unwrap_or("–")),
            n = esc(&a.name),
            l = esc(&a.live),
        );
    }
    s.push_str("</tbody></table></section>");
    s.push_str("<section><h2>Deployments in flight</h2>");
    if p.cards.is_empty() {
        s.push_str(r#"<p class="muted" id="none-running">None right now. Start one with <code>bluegreen deploy APP --image IMAGE</code> or a push to the app's repository.</p>"#);
    }
    for c in &p.cards {
        card(&mut s, c, p);
    }
    s.push_str("</section>");
    s.push_str(r#"<section><h2>History</h2><table class="history"><thead><tr><th>deployment</th><th>image</th><th>outcome</th><th>finished</th><th>took</th><th>reason</th></tr></thead><tbody>"#);
    for h in &p.history {
        let d = &h.deployment;
        let outcome = match h.state {
            RowState::Finished => d.phase_name().as_str(),
            other => other.as_str(),
        };
        let reason = d
            .outcome_reason()
            .map(|r| r.to_string())
            .or_else(|| h.note.clone())
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<tr data-deployment="{id}"><td class="name">{id}</td><td class="mono">{}</td><td><span class="pill pill-{o}">{o}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&h.image),
            clock_time(d.updated_at()),
            bluegreen_core::time::format_duration_human(d.updated_at().ms_since(d.created_at())),
            esc(&reason),
            id = esc(d.id().as_str()),
            o = esc(outcome),
        );
    }
    if p.history.is_empty() {
        s.push_str(r#"<tr><td colspan="6" class="muted">No finished deployments yet.</td></tr>"#);
    }
    s.push_str("</tbody></table></section>");
    let _ = write!(
        s,
        r#"<p class="footer muted">rendered {} UTC</p>"#,
        clock_time(p.now)
    );
    s
}

fn card(s: &mut String, c: &Card, p: &Page) {
    let d = &c.stored.deployment;
    let st = d.status();
    let id = d.id().as_str();
    let phase = if c.stored.state == RowState::Queued {
        "queued"
    } else {
        st.phase.as_str()
    };
    let _ = write!(
        s,
        r#"<article class="card" data-deployment="{id}"><div class="card-head"><span class="name">{id}</span><span class="pill pill-{phase}" data-phase="{phase}">{phase}</span><span class="mono image">{}</span><span class="strategy">{}</span></div>"#,
        esc(&c.stored.image),
        esc(&st.strategy),
        id = esc(id),
    );
    let _ = write!(
        s,
        r#"<p class="detail" data-detail>{}</p><div class="facts"><div><span class="label">production</span> {} blue {} / green {}</div>"#,
        esc(&st.detail),
        bar(
            u32::from(st.weights.blue),
            u32::from(st.weights.green),
            "blue",
            "green"
        ),
        st.weights.blue,
        st.weights.green
    );
    let sides = [("blue", st.blue.as_ref()), ("green", st.green.as_ref())];
    for (name, side) in sides {
        let Some(side) = side else { continue };
        let health = d
            .knowledge()
            .target_health
            .get(&side.target_group)
            .map(|h| targets(&h.value, st.desired_count))
            // The machine watches green's targets; blue's only when it needs them.
            .unwrap_or_else(|| {
                if name == "blue" {
                    "serving (not watched)"
                } else {
                    "not observed yet"
                }
                .into()
            });
        let _ = write!(
            s,
            r#"<div data-side="{name}"><span class="label">{name}</span> slot {} ({}) · {health}</div>"#,
            ["a", "b"][side.slot.min(1)],
            esc(&side.service)
        );
    }
    if let Some(w) = c.timeline.wake_at {
        let secs = w.ms_since(p.now).div_ceil(1000);
        let _ = write!(
            s,
            r#"<div><span class="label">next wake-up</span> {} UTC (in {secs} s)</div>"#,
            clock_time(w)
        );
    }
    s.push_str("</div>");
    s.push_str(&c.timeline.svg());
    s.push_str(r#"<div class="actions">"#);
    for action in &c.actions {
        let _ = write!(
            s,
            r#"<form method="post" action="/ui/deployments/{}/{action}"><input type="hidden" name="csrf" value="{}"><button class="btn {action}" type="submit" data-action="{action}">{}</button></form>"#,
            esc(id),
            esc(&p.csrf),
            capitalised(action)
        );
    }
    s.push_str("</div></article>");
}

/// "2 healthy, 1 unhealthy (1× Target.Timeout: …) of 3 wanted" — every state present,
/// with ELBv2's reasons, so a green stuck unhealthy shows why it is not passing.
pub fn targets(h: &TargetHealth, desired: Option<u32>) -> String {
    match desired {
        Some(d) => format!("{} of {d} wanted", h.summary()),
        None => h.summary(),
    }
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A two-colour bar as inline SVG (inline styles are refused by the page's CSP).
fn bar(left: u32, right: u32, left_class: &str, right_class: &str) -> String {
    let total = (left + right).max(1);
    let l = f64::from(left) * 100.0 / f64::from(total);
    format!(
        r#"<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none"><rect class="bar-{left_class}" width="{l:.1}" height="8"/><rect class="bar-{right_class}" x="{l:.1}" width="{:.1}" height="8"/></svg>"#,
        100.0 - l
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn target_states_are_all_shown() {
        let mut h = TargetHealth {
            healthy: 0,
            unhealthy: 2,
            initial: 1,
            ..TargetHealth::default()
        };
        assert_eq!(
            targets(&h, Some(3)),
            "0 healthy, 2 unhealthy, 1 initial of 3 wanted"
        );
        h.note_reason(
            "unhealthy",
            "Target.Timeout",
            Some("Request timed out".into()),
            2,
        );
        assert_eq!(
            targets(&h, Some(3)),
            "0 healthy, 2 unhealthy, 1 initial (2× Target.Timeout: Request timed out) of 3 wanted"
        );
    }

    #[test]
    fn the_login_page_escapes_its_error() {
        let html = login(Some("<script>"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }
}
