//! `bluegreen-sim replay JOURNAL --world`: a deployment the service ran (its journal) is
//! rebuilt as a simulated world and run again by *this* build's machine, with the auditor
//! on every step — once per seed, so the same situation is tried with varied timings.
//!
//! What the journal's observations say becomes the world:
//! - the app's resources come from the journal's spec (`Created`);
//! - how green behaved: never healthy → an image whose targets fail their checks;
//!   tasks stopped by failure up to the breaker → a crash-looping image; else healthy;
//! - every alarm seen in ALARM (by a poll or an alarm event) is forced into ALARM at the
//!   same moment *of the same phase* (e.g. 40 s into the bake) — anchored to phases,
//!   not to wall time, since the world's timings are not the recorded account's;
//! - operator requests are made at the same moments of the same phases;
//! - errors AWS answered become fault rules on the same command kinds, as often as they
//!   happened (at most half the time), for the whole run;
//! - alarm events, when the journal has any, are delivered (promptly).
//!
//! Each seed's run is compared with the recording: the sequence of phases, the outcome
//! and its reason's kind. The report says, per seed, whether this build decided the
//! same, and where it first did not.

use std::collections::BTreeMap;
use std::fmt;

use bluegreen_core::command::AlarmState;
use bluegreen_core::journal::{JournalEntry, JournalLine};
use bluegreen_core::{
    Artifact, CommandKind, CommandResult, Deployment, DeploymentSpec, ErrorClass, Input, Notice,
    Observation, Observe, OperatorRequest, Output, PhaseName, Timestamp,
};

use crate::faults::{Applies, Effect, Rule, Rules};
use crate::harness::{AlarmEvents, AppPlan, OperatorPlan};
use crate::{Scenario, Sim, SimOptions, WorldProfile};

/// What a deployment did, as far as the comparison goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Story {
    /// Phases entered, in order (preflight first).
    pub phases: Vec<PhaseName>,
    pub outcome: Option<PhaseName>,
    /// The outcome reason's kind (`alarm`, `unhealthy`, …), as its text starts.
    pub reason: Option<String>,
}

impl fmt::Display for Story {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phases: Vec<&str> = self.phases.iter().map(|p| p.as_str()).collect();
        write!(f, "{}", phases.join(" → "))?;
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// Something the recording saw at a moment of a phase, to make happen again there.
#[derive(Clone, Debug, PartialEq)]
enum Moment {
    Alarm(String),
    Operator(OperatorRequest),
    /// Green's targets lost health (`all`: every one of them) after green had been
    /// healthy: a health flap of the recorded account.
    Flap {
        all: bool,
    },
}

/// The world a journal describes.
#[derive(Clone, Debug)]
pub struct Facts {
    pub spec: DeploymentSpec,
    /// `unhealthy`, `crashloop` or empty: how green behaved.
    pub quality: &'static str,
    /// (index of the phase visit in the recorded story, offset into it, what).
    anchors: Vec<(usize, u64, Moment)>,
    rules: Vec<Rule>,
    /// Hooks that answered `fail` in the recording fail here too.
    failing_hooks: Vec<String>,
    pub alarm_events: bool,
    pub recorded: Story,
}

/// One seed's run.
#[derive(Clone, Debug)]
pub struct SeedRun {
    pub seed: u64,
    pub story: Story,
    pub violations: Vec<String>,
    /// Where it first differs from the recording (`None`: decided the same).
    pub difference: Option<String>,
}

/// One deployment replayed in the world.
#[derive(Clone, Debug)]
pub struct WorldReplay {
    pub deployment: String,
    pub facts: Facts,
    pub runs: Vec<SeedRun>,
}

impl WorldReplay {
    pub fn same_everywhere(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.difference.is_none() && r.violations.is_empty())
    }
}

fn reason_kind(text: &str) -> String {
    text.split(':').next().unwrap_or("").trim().to_string()
}

/// Read the world a journal (one deployment's lines, in order) describes.
pub fn facts(lines: &[JournalLine]) -> Result<Facts, String> {
    let spec = lines
        .iter()
        .find_map(|l| match &l.entry {
            JournalEntry::Created { spec } => Some((**spec).clone()),
            _ => None,
        })
        .ok_or("the journal has no Created line (its first line holds the spec)")?;
    // Re-drive the recorded machine to learn which slot was blue.
    let created_at = lines.first().map(|l| l.at).unwrap_or(Timestamp::EPOCH);
    let id = lines
        .first()
        .map(|l| l.deployment.clone())
        .ok_or("an empty journal")?;
    let mut machine = Deployment::new(id, spec.clone(), created_at);
    let mut phase_start = created_at;
    let mut recorded = Story {
        phases: vec![PhaseName::Preflight],
        outcome: None,
        reason: None,
    };
    let mut anchors: Vec<(usize, u64, Moment)> = Vec::new();
    let mut alarmed: BTreeMap<String, ()> = BTreeMap::new();
    let (mut healthy_seen, mut unhealthy_seen, mut crashloop) = (false, false, false);
    let mut sent: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut failed: BTreeMap<&'static str, (u64, Effect)> = BTreeMap::new();
    let mut in_flight: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut alarm_events = false;
    let mut rollback_reason: Option<String> = None;
    let (mut green_best, mut flapping) = (0u32, false);
    let mut failing_hooks: Vec<String> = Vec::new();
    let mut hook_names: BTreeMap<String, String> = BTreeMap::new();
    // Operator requests replay only if the recorded machine accepted them.
    let mut operator_pending: Option<usize> = None;
    let mut refused: Vec<usize> = Vec::new();
    for l in lines {
        match &l.entry {
            JournalEntry::Created { .. } => {}
            JournalEntry::Output { output } => match output {
                Output::Notice(Notice::Transition(t)) => {
                    phase_start = t.at;
                    recorded.phases.push(t.to);
                    match t.to {
                        // The cause is on the way in; the end only says it is done.
                        PhaseName::Rollback => rollback_reason = Some(reason_kind(&t.reason)),
                        PhaseName::RolledBack => {
                            recorded.outcome = Some(t.to);
                            recorded.reason = rollback_reason.clone();
                        }
                        PhaseName::Failed | PhaseName::Rejected => {
                            recorded.outcome = Some(t.to);
                            recorded.reason = Some(reason_kind(&t.reason));
                        }
                        PhaseName::Completed => recorded.outcome = Some(t.to),
                        _ => {}
                    }
                }
                Output::Command(c) => {
                    *sent.entry(c.kind.name()).or_default() += 1;
                    in_flight.insert(c.id.to_string(), c.kind.name());
                    if let CommandKind::CallHook(h) = &c.kind {
                        hook_names.insert(c.id.to_string(), h.name.to_string());
                    }
                }
                Output::Notice(Notice::Operator { .. }) => operator_pending = None,
                _ => {}
            },
            JournalEntry::Input { input } => {
                let offset = l.at.ms_since(phase_start);
                let visit = recorded.phases.len() - 1;
                match input {
                    Input::Operator(req) => {
                        if let Some(i) = operator_pending.take() {
                            refused.push(i);
                        }
                        operator_pending = Some(anchors.len());
                        anchors.push((visit, offset, Moment::Operator(req.clone())));
                    }
                    Input::Alarm(e) => {
                        alarm_events = true;
                        if e.state == AlarmState::Alarm
                            && alarmed.insert(e.name.clone(), ()).is_none()
                        {
                            anchors.push((visit, offset, Moment::Alarm(e.name.clone())));
                        }
                    }
                    Input::CommandDone { id, result } => {
                        let kind = in_flight.get(id.as_str()).copied();
                        match result {
                            Err(e) => {
                                if let Some(kind) = kind {
                                    let effect = if e.code.contains("Throttl") {
                                        Effect::Throttle
                                    } else if e.class == ErrorClass::Ambiguous {
                                        Effect::Lost
                                    } else {
                                        Effect::ServerError
                                    };
                                    failed.entry(kind).or_insert((0, effect)).0 += 1;
                                }
                            }
                            Ok(CommandResult::Observed(Observation::Alarms(a))) => {
                                for x in a.alarms.iter().filter(|x| x.state == AlarmState::Alarm) {
                                    if alarmed.insert(x.name.to_string(), ()).is_none() {
                                        anchors.push((
                                            visit,
                                            offset,
                                            Moment::Alarm(x.name.to_string()),
                                        ));
                                    }
                                }
                            }
                            Ok(CommandResult::Observed(Observation::TargetHealth(h))) => {
                                if let Some(sides) = machine.sides()
                                    && in_flight_target(lines, id.as_str())
                                        .is_some_and(|tg| tg == spec.target_groups[sides.green()])
                                {
                                    // Green had been fully healthy and lost some: a flap.
                                    if green_best > 0 && h.healthy < green_best && !flapping {
                                        flapping = true;
                                        anchors.push((
                                            visit,
                                            offset,
                                            Moment::Flap {
                                                all: h.healthy == 0,
                                            },
                                        ));
                                    }
                                    if h.healthy >= green_best {
                                        flapping = false;
                                    }
                                    green_best = green_best.max(h.healthy);
                                    healthy_seen |= h.healthy > 0;
                                    unhealthy_seen |= h.unhealthy > 0;
                                }
                            }
                            Ok(CommandResult::Hook(bluegreen_core::HookVerdict::Fail {
                                ..
                            })) => {
                                if let Some(name) = hook_names.get(id.as_str())
                                    && !failing_hooks.contains(name)
                                {
                                    failing_hooks.push(name.clone());
                                }
                            }
                            Ok(CommandResult::Observed(Observation::Service(s))) => {
                                crashloop |=
                                    s.failed_tasks >= spec.circuit_breaker.failed_tasks_max;
                            }
                            _ => {}
                        }
                    }
                    Input::Wake | Input::Restarted => {}
                }
                // Keep the re-driven machine in step (for its sides).
                let _ = machine.handle(l.at, input.clone());
                for _ in 0..1_000 {
                    if let Output::Idle { .. } = machine.poll(l.at) {
                        break;
                    }
                }
            }
        }
    }
    if let Some(i) = operator_pending {
        refused.push(i);
    }
    let anchors: Vec<(usize, u64, Moment)> = anchors
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !refused.contains(i))
        .map(|(_, a)| a)
        .collect();
    let quality = if crashloop {
        "crashloop"
    } else if unhealthy_seen && !healthy_seen {
        "unhealthy"
    } else {
        ""
    };
    let rules = failed
        .into_iter()
        .map(|(kind, (n, effect))| Rule {
            name: "replayed",
            applies: Applies::Kind(kind),
            probability: (n as f64 / sent.get(kind).copied().unwrap_or(n).max(1) as f64).min(0.5),
            effect,
        })
        .collect();
    Ok(Facts {
        spec,
        quality,
        anchors,
        rules,
        failing_hooks,
        alarm_events,
        recorded,
    })
}

/// The target group an observe-target-health command asked about.
fn in_flight_target<'a>(lines: &'a [JournalLine], id: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| match &l.entry {
        JournalEntry::Output {
            output: Output::Command(c),
        } if c.id.as_str() == id => match &c.kind {
            CommandKind::Observe(Observe::TargetHealth { target_group }) => {
                Some(target_group.as_str())
            }
            _ => None,
        },
        _ => None,
    })
}

/// Every deployment of a journal file (JSON lines, deployments possibly interleaved),
/// replayed in the world.
pub fn replay_file(
    text: &str,
    seeds: u64,
    profile: &WorldProfile,
) -> Result<Vec<WorldReplay>, String> {
    let lines = crate::replay::parse(text).map_err(|e| e.to_string())?;
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<JournalLine>> = BTreeMap::new();
    for l in lines {
        let id = l.deployment.to_string();
        if !by.contains_key(&id) {
            order.push(id.clone());
        }
        by.entry(id).or_default().push(l);
    }
    let mut out = Vec::new();
    for id in order {
        let mut lines = by.remove(&id).unwrap_or_default();
        lines.sort_by_key(|l| l.seq);
        let f = facts(&lines).map_err(|e| format!("deployment {id}: {e}"))?;
        out.push(run_facts(&id, f, seeds, profile));
    }
    Ok(out)
}

/// Run the facts in the world for seeds `0..seeds` on `profile`'s timings.
pub fn run_facts(
    deployment: &str,
    facts: Facts,
    seeds: u64,
    profile: &WorldProfile,
) -> WorldReplay {
    let mut runs = Vec::new();
    for seed in 0..seeds {
        runs.push(run_seed(&facts, seed, profile));
    }
    WorldReplay {
        deployment: deployment.to_string(),
        facts,
        runs,
    }
}

fn run_seed(facts: &Facts, seed: u64, profile: &WorldProfile) -> SeedRun {
    let mut draft: bluegreen_core::SpecDraft = facts.spec.clone().into();
    let image = match &draft.artifact {
        Artifact::Image(i) if !facts.quality.is_empty() => {
            Artifact::Image(format!("{i}-{}", facts.quality).into())
        }
        other => other.clone(),
    };
    let image_name = match &image {
        Artifact::Image(i) | Artifact::TaskDefinition(i) => i.clone(),
    };
    draft.artifact = image;
    let mut s = Scenario::quiet(seed, profile.clone());
    // Only the recording's operators act: no approver, no resume of our own.
    s.operator = OperatorPlan {
        approver: 0.0,
        resume: 0.0,
        ..OperatorPlan::NONE
    };
    let mut app = AppPlan::new(draft, &[(0, image_name.as_str())]);
    app.hooks = facts
        .failing_hooks
        .iter()
        .map(|h| (h.into(), crate::world::HookBehaviour::Fail))
        .collect();
    s.apps.push(app);
    if !facts.rules.is_empty() {
        s.rules = Rules::new(facts.rules.clone(), 2, seed);
        s.safety_ms = 86_400_000;
    }
    if facts.alarm_events {
        s.alarm_events = AlarmEvents::PROMPT;
    }
    let mut sim = Sim::new(s, SimOptions::default());
    let mut anchors = facts.anchors.clone();
    anchors.sort_by_key(|(visit, off, _)| (*visit, *off));
    for (visit, offset, moment) in anchors {
        let phase = facts.recorded.phases[visit];
        // The same visit of the same phase (a phase can be entered twice: approval,
        // paused, approval); a run that went elsewhere gets no more of the recording.
        let mut diverged = false;
        let reached = sim.run_until(|s| {
            let Some(d) = s.deps.first().and_then(|d| d.machine.as_ref()) else {
                return false;
            };
            let visits = d.history().len();
            if visits > visit || d.is_terminal() {
                diverged = true;
                return true;
            }
            let since = d.history().last().map(|t| t.at).unwrap_or(d.created_at());
            visits == visit && d.phase_name() == phase && s.now().ms_since(since) >= offset
        });
        if !reached || diverged {
            break;
        }
        match moment {
            Moment::Alarm(name) => {
                let now = sim.now().plus_ms(1);
                sim.world.force_alarm(&name, now, now.plus_ms(3_600_000));
            }
            Moment::Operator(req) => sim.operator(0, req),
            Moment::Flap { all } => {
                let green = sim.deps[0]
                    .machine
                    .as_ref()
                    .and_then(|d| d.sides())
                    .map(|sides| facts.spec.target_groups[sides.green()].clone());
                if let Some(tg) = green.and_then(|arn| sim.world.lookup_tg(&arn).ok()) {
                    sim.world.flap_group(tg, all, 600_000);
                }
            }
        }
    }
    sim.run_until(Sim::all_done);
    let story = match sim.deps.first().and_then(|d| d.machine.as_ref()) {
        Some(d) => {
            let mut phases = vec![PhaseName::Preflight];
            phases.extend(d.history().iter().map(|t| t.to));
            Story {
                phases,
                outcome: d.is_terminal().then(|| d.phase_name()),
                reason: d.outcome_reason().map(|r| r.kind.as_str().to_string()),
            }
        }
        None => Story {
            phases: vec![],
            outcome: None,
            reason: None,
        },
    };
    let report = sim.run();
    let violations = report.violations.iter().map(|v| v.to_string()).collect();
    let difference = compare(&facts.recorded, &story);
    SeedRun {
        seed,
        story,
        violations,
        difference,
    }
}

fn compare(recorded: &Story, now: &Story) -> Option<String> {
    let n = recorded.phases.len().min(now.phases.len());
    if let Some(i) = (0..n).find(|&i| recorded.phases[i] != now.phases[i]) {
        return Some(format!(
            "after {}: recorded → {}, this build → {}",
            recorded.phases[i.saturating_sub(1)],
            recorded.phases[i],
            now.phases[i]
        ));
    }
    if recorded.phases.len() != now.phases.len() {
        return Some(format!("recorded {recorded}; this build {now}"));
    }
    if recorded.reason != now.reason {
        return Some(format!(
            "the same phases, but the reason: recorded {:?}, this build {:?}",
            recorded.reason, now.reason
        ));
    }
    None
}

impl fmt::Display for WorldReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let same = self
            .runs
            .iter()
            .filter(|r| r.difference.is_none() && r.violations.is_empty())
            .count();
        writeln!(f, "{}: recorded {}", self.deployment, self.facts.recorded)?;
        writeln!(
            f,
            "  world: green {}, {} moment(s) replayed by phase, {} fault rule(s), alarm events {}",
            if self.facts.quality.is_empty() {
                "healthy"
            } else {
                self.facts.quality
            },
            self.facts.anchors.len(),
            self.facts.rules.len(),
            if self.facts.alarm_events { "on" } else { "off" }
        )?;
        writeln!(f, "  {same}/{} seeds decide as recorded", self.runs.len())?;
        for r in &self.runs {
            if let Some(d) = &r.difference {
                writeln!(f, "  seed {}: {d}", r.seed)?;
            }
            for v in &r.violations {
                writeln!(f, "  seed {}: {v}", r.seed)?;
            }
        }
        Ok(())
    }
}
