//! The checks at rest: one owner per app once a deployment ends (its listeners all on the
//! live side, the other side empty, no stray task set), and the final check of the run.

use bluegreen_core::PhaseName;

use super::checks::{all_on, episode_deadlines};
use super::{Auditor, Episode, Invariant};
use crate::world::{AppIx, World};

/// One owner: every listener of the app sends all its weight to `live`, the other side
/// holds no tasks and no extra task set exists. (`effective`: judge what traffic sees.)
fn owner_problems(
    world: &World,
    app: AppIx,
    live: usize,
    effective: bool,
) -> Vec<(Invariant, String)> {
    let res = &world.apps[app as usize];
    let (live_tg, idle) = (res.target_groups[live], 1 - live);
    let mut out = Vec::new();
    for (name, f) in [("production", Some(res.prod)), ("test", res.test)] {
        let Some(f) = f else { continue };
        let f = &world.elb.forwards[f as usize];
        let config = if effective { &f.effective } else { &f.config };
        if !all_on(config, live_tg) {
            out.push((
                Invariant::OneOwnerAtRest,
                format!(
                    "the {name} listener does not send 100 % to {} ({config:?})",
                    world.elb.target_groups[live_tg as usize].name
                ),
            ));
        }
    }
    if res.task_set_mode {
        let svc = res.services[0];
        let sets: Vec<u32> = world.ecs.listed_task_sets(svc).collect();
        let stray: Vec<String> = sets
            .iter()
            .map(|t| &world.ecs.task_sets[*t as usize])
            .filter(|t| t.tg != live_tg)
            .map(|t| format!("{} ({}, {} tasks)", t.id, t.state.as_str(), t.tasks.len()))
            .collect();
        if !stray.is_empty() {
            out.push((
                Invariant::OneOwnerAtRest,
                format!("the idle side still holds task sets: {}", stray.join(", ")),
            ));
        }
        if sets.len() != 1 {
            out.push((
                Invariant::NoLeaksNoDuplicates,
                format!("{} task sets listed, expected exactly 1", sets.len()),
            ));
        }
    } else {
        let s = &world.ecs.services[res.services[idle] as usize];
        if s.desired > 0 || !s.tasks.is_empty() {
            out.push((
                Invariant::OneOwnerAtRest,
                format!(
                    "the idle service {} still holds {} task(s) (desired {})",
                    s.name,
                    s.tasks.len(),
                    s.desired
                ),
            ));
        }
        let l = &world.ecs.services[res.services[live] as usize];
        if l.desired == 0 {
            out.push((
                Invariant::OneOwnerAtRest,
                format!("the live service {} has desired count 0", l.name),
            ));
        }
    }
    out
}

pub(super) fn at_rest(a: &mut Auditor, world: &World, dep: u32, phase: PhaseName) {
    let d = &a.deps[dep as usize];
    let app = d.info.app;
    let live = match (phase, d.blue_slot) {
        (PhaseName::Completed, Some(b)) => Some(1 - b),
        (PhaseName::RolledBack, Some(b)) => Some(b),
        (PhaseName::Completed | PhaseName::RolledBack, None) => {
            let detail = format!("ended {phase} although production was not at rest when it began");
            a.violation(
                world,
                world.now(),
                Invariant::OneOwnerAtRest,
                app,
                Some(dep),
                detail,
            );
            None
        }
        (PhaseName::Rejected, _) if d.writes > 0 => {
            let detail = format!("rejected, yet it changed the world ({} write(s))", d.writes);
            a.violation(
                world,
                world.now(),
                Invariant::NoLeaksNoDuplicates,
                app,
                Some(dep),
                detail,
            );
            None
        }
        _ => None,
    };
    if let Some(live) = live {
        for (inv, detail) in owner_problems(world, app, live, false) {
            a.violation(
                world,
                world.now(),
                inv,
                app,
                Some(dep),
                format!("{phase}: {detail}"),
            );
        }
    }
}

pub(super) fn final_check(a: &mut Auditor, world: &World) {
    episode_deadlines(a, world);
    let now = world.now();
    for app in 0..a.apps.len() {
        let Some(last) = a.apps[app].last else {
            continue;
        };
        let d = &a.deps[last as usize];
        let live = match (d.terminal, d.blue_slot) {
            (Some(PhaseName::Completed), Some(b)) => 1 - b,
            (Some(PhaseName::RolledBack), Some(b)) => b,
            _ => continue,
        };
        for (inv, detail) in owner_problems(world, app as AppIx, live, true) {
            a.violation(
                world,
                now,
                inv,
                app as AppIx,
                Some(last),
                format!("at the end of the run: {detail}"),
            );
        }
    }
    // Nothing may stay dark at rest while something could serve instead.
    for app in 0..a.apps.len() {
        let open: Vec<Episode> = a.apps[app]
            .episodes
            .iter()
            .filter(|e| !e.reported)
            .copied()
            .collect();
        for e in open {
            if world.standby_for(app as AppIx, e.tg) {
                let tg = world.elb.target_groups[e.tg as usize].name.clone();
                a.violation(
                    world,
                    now,
                    Invariant::NoDarkTraffic,
                    app as AppIx,
                    a.apps[app].last,
                    format!("at the end of the run traffic to {tg} still finds no healthy target (since {})", e.since),
                );
            }
        }
    }
}
