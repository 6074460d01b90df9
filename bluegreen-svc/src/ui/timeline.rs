//! A deployment's traffic-split timeline: green's production weight over time, the
//! phases as bands, and the rollback moment with its reason — built from the journal
//! (every listener write the machine asked for, with its time) and drawn as SVG.

use std::fmt::Write as _;

use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::{CommandKind, Deployment, Output, PhaseName, Timestamp};

use super::render::esc;

/// One phase's stretch of time.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub phase: PhaseName,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What the SVG shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Green's production percentage from each point on (a step line).
    pub points: Vec<(Timestamp, u8)>,
    pub bands: Vec<Band>,
    /// When the rollback began, and why.
    pub rollback: Option<(Timestamp, String)>,
    /// When the machine next wakes up by itself (from its last `Idle`).
    pub wake_at: Option<Timestamp>,
}

/// Most points drawn (a long deployment's extra writes are merged).
const POINTS_MAX: usize = 500;

impl Timeline {
    /// `now` ends the chart while the deployment runs.
    pub fn build(d: &Deployment, journal: &[JournalLine], now: Timestamp) -> Timeline {
        let start = d.created_at();
        let end = if d.is_terminal() {
            d.updated_at()
        } else {
            now.max(d.updated_at())
        };
        let status = d.status();
        let prod = &d.spec().listener;
        let green_tg = status.green.as_ref().map(|g| g.target_group.clone());
        let mut points = vec![(start, 0u8)];
        let mut wake_at = None;
        for line in journal {
            let JournalEntry::Output { output } = &line.entry else {
                continue;
            };
            match output {
                Output::Command(c) => {
                    if let CommandKind::SetListenerWeights { listener, weights } = &c.kind
                        && listener == prod
                        && let Some(green) = &green_tg
                    {
                        let total: u64 = weights.iter().map(|w| u64::from(w.weight)).sum();
                        let g: u64 = weights
                            .iter()
                            .filter(|w| &w.target_group == green)
                            .map(|w| u64::from(w.weight))
                            .sum();
                        if let Some(pct) = (g * 100 + total / 2).checked_div(total)
                            && points.len() < POINTS_MAX
                        {
                            points.push((line.at, pct as u8));
                        }
                    }
                }
                Output::Idle { wake_at: w } => wake_at = *w,
                Output::Notice(_) => {}
            }
        }
        // The weights as last read back close the line.
        points.push((end, status.weights.green));
        let mut bands = Vec::new();
        let mut from = start;
        let mut rollback = None;
        for t in d.history() {
            bands.push(Band {
                phase: t.from,
                from,
                to: t.at,
            });
            if t.to == PhaseName::Rollback && rollback.is_none() {
                rollback = Some((t.at, t.reason.clone()));
            }
            from = t.at;
        }
        if !d.is_terminal() {
            bands.push(Band {
                phase: d.phase_name(),
                from,
                to: end,
            });
        }
        Timeline {
            start,
            end,
            points,
            bands,
            rollback,
            wake_at: if d.is_terminal() { None } else { wake_at },
        }
    }

    /// The chart as an inline SVG element (styled by classes in `style.css`).
    pub fn svg(&self) -> String {
        const W: f64 = 760.0;
        const H: f64 = 170.0;
        const LEFT: f64 = 40.0;
        const RIGHT: f64 = 12.0;
        const TOP: f64 = 22.0;
        const BOTTOM: f64 = 22.0;
        let plot_w = W - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let span = self.end.ms_since(self.start).max(1) as f64;
        let x = |t: Timestamp| LEFT + plot_w * (t.ms_since(self.start) as f64 / span).min(1.0);
        let y = |pct: u8| TOP + plot_h * (1.0 - f64::from(pct) / 100.0);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="timeline" viewBox="0 0 {W} {H}" role="img" aria-label="traffic split over time">"#
        );
        for b in &self.bands {
            let (x0, x1) = (x(b.from), x(b.to));
            let _ = write!(
                s,
                r#"<rect class="band band-{p}" x="{x0:.1}" y="{TOP}" width="{w:.1}" height="{plot_h}"><title>{p}</title></rect>"#,
                p = b.phase.as_str(),
                w = (x1 - x0).max(0.5),
            );
            if x1 - x0 > 8.0 * b.phase.as_str().len() as f64 * 0.75 {
                let _ = write!(
                    s,
                    r#"<text class="band-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    x0 + 3.0,
                    TOP - 6.0,
                    b.phase.as_str()
                );
            }
        }
        for pct in [0u8, 50, 100] {
            let yy = y(pct);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{pct}%</text>"#,
                LEFT + plot_w,
                LEFT - 5.0,
                yy + 4.0,
            );
        }
        // The weights as a step line: each write holds until the next.
        let mut path = String::new();
        let mut area = format!("M{:.1},{:.1}", x(self.start), y(0));
        for (i, (t, pct)) in self.points.iter().enumerate() {
            let (px, py) = (x(*t), y(*pct));
            if i == 0 {
                let _ = write!(path, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(path, " H{px:.1} V{py:.1}");
            }
            let _ = write!(area, " H{px:.1} V{py:.1}");
        }
        let _ = write!(area, " V{:.1} Z", y(0));
        let _ = write!(
            s,
            r#"<path class="green-area" d="{area}"/><path class="green-line" d="{path}"/>"#
        );
        if let Some((at, reason)) = &self.rollback {
            let rx = x(*at);
            let short: String = reason.chars().take(70).collect();
            let anchor = if rx > LEFT + plot_w * 0.6 {
                "end"
            } else {
                "start"
            };
            let tx = if anchor == "end" { rx - 4.0 } else { rx + 4.0 };
            let _ = write!(
                s,
                r#"<line class="rollback" x1="{rx:.1}" x2="{rx:.1}" y1="{TOP}" y2="{:.1}"/><text class="rollback-label" x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">rollback: {}</text>"#,
                TOP + plot_h,
                TOP + 14.0,
                esc(&short)
            );
        }
        if let Some(w) = self.wake_at
            && w > self.start
            && w <= self.end
        {
            let wx = x(w);
            let _ = write!(
                s,
                r#"<circle class="wake" cx="{wx:.1}" cy="{:.1}" r="3"/>"#,
                TOP + plot_h
            );
        }
        let _ = write!(
            s,
            r#"<text class="axis" x="{LEFT}" y="{:.1}">{}</text><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text></svg>"#,
            H - 6.0,
            clock_time(self.start),
            LEFT + plot_w,
            H - 6.0,
            clock_time(self.end)
        );
        s
    }
}

/// `hh:mm:ss` (UTC) of a timestamp.
pub fn clock_time(t: Timestamp) -> String {
    let s = t.to_string();
    s.get(11..19).unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: u64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + s * 1000)
    }

    #[test]
    fn the_svg_draws_bands_the_step_line_and_the_rollback_reason() {
        let t = Timeline {
            start: ts(0),
            end: ts(100),
            points: vec![(ts(0), 0), (ts(40), 20), (ts(70), 0), (ts(100), 0)],
            bands: vec![
                Band {
                    phase: PhaseName::HealthCheck,
                    from: ts(0),
                    to: ts(40),
                },
                Band {
                    phase: PhaseName::Shift,
                    from: ts(40),
                    to: ts(70),
                },
                Band {
                    phase: PhaseName::Rollback,
                    from: ts(70),
                    to: ts(100),
                },
            ],
            rollback: Some((ts(70), "alarm <web-5xx> in ALARM".into())),
            wake_at: None,
        };
        let svg = t.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"band band-").count(), 3);
        assert!(svg.contains("band-shift"));
        assert!(
            svg.contains("rollback: alarm &lt;web-5xx&gt; in ALARM"),
            "{svg}"
        );
        // 20 % green sits at 80 % of the plot height below the top.
        assert!(svg.contains("V122.8"), "{svg}");
    }

    #[test]
    fn clock_time_is_the_time_of_day() {
        assert_eq!(clock_time(Timestamp::from_millis(3_723_000)), "01:02:03");
    }
}
