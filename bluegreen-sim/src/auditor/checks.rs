//! The checks made as the world changes, each reading the world: dark episodes, and
//! every write judged (rollback order, blue's removal, duplicate revisions).

use super::{Auditor, Episode, Invariant};
use crate::world::{AppIx, Forward, TaskSetState, World, WriteEffect};

/// Default detection bound for an app no deployment has touched yet.
const DETECTION_DEFAULT_MS: u64 = 600_000;

pub(super) fn all_on(config: &[(u32, u32)], tg: u32) -> bool {
    let total = Forward::total(config);
    total > 0 && Forward::weight_of(config, tg) == total
}

/// Which slot is live (all production weight), blue's size and blue's task set.
pub(super) fn blue_at_start(world: &World, app: AppIx) -> (Option<usize>, u32, Option<u32>) {
    let res = &world.apps[app as usize];
    let config = &world.elb.forwards[res.prod as usize].config;
    let Some(slot) = (0..2).find(|s| all_on(config, res.target_groups[*s])) else {
        return (None, 0, None);
    };
    let tg = res.target_groups[slot];
    if res.task_set_mode {
        let svc = res.services[0];
        let ts = world
            .ecs
            .listed_task_sets(svc)
            .filter(|t| {
                let t = &world.ecs.task_sets[*t as usize];
                t.tg == tg && t.state != TaskSetState::Draining
            })
            .max_by_key(|t| world.ecs.task_sets[*t as usize].state == TaskSetState::Primary);
        (Some(slot), world.ecs.services[svc as usize].desired, ts)
    } else {
        let svc = res.services[slot];
        (Some(slot), world.ecs.services[svc as usize].desired, None)
    }
}

fn detection_ms(a: &Auditor, app: AppIx) -> u64 {
    let app = &a.apps[app as usize];
    app.current
        .or(app.last)
        .map(|d| a.deps[d as usize].info.detection_ms)
        .unwrap_or(DETECTION_DEFAULT_MS)
}

/// Open and close dark episodes of `app` as its listeners and targets change.
pub(super) fn dark_scan(a: &mut Auditor, world: &World, app: AppIx) {
    a.checks += 1;
    let res = &world.apps[app as usize];
    let now = world.now();
    let d_ms = {
        a.app_mut(app);
        detection_ms(a, app)
    };
    let forwards = [Some(res.prod), res.test];
    let app_audit = &mut a.apps[app as usize];
    let before = app_audit.episodes.len();
    app_audit.episodes.retain(|e| {
        let f = &world.elb.forwards[e.forward as usize];
        Forward::weight_of(&f.effective, e.tg) > 0 && world.elb.healthy(e.tg) == 0
    });
    if a.keep_notes && app_audit.episodes.len() < before {
        a.notes
            .push(format!("audit: {now} a dark episode of {} ended", res.name));
    }
    for f in forwards.into_iter().flatten() {
        for &(tg, w) in &world.elb.forwards[f as usize].effective {
            if w == 0 || world.elb.healthy(tg) > 0 {
                continue;
            }
            if app_audit
                .episodes
                .iter()
                .any(|e| e.forward == f && e.tg == tg)
            {
                continue;
            }
            app_audit.episodes.push(Episode {
                forward: f,
                tg,
                since: now,
                reported: false,
            });
            if a.keep_notes {
                let name = &world.elb.target_groups[tg as usize].name;
                a.notes.push(format!(
                    "audit: {now} traffic to {name} (weight {w}) finds no healthy target; bound {} s",
                    d_ms / 1000
                ));
            }
            a.dark_episodes += 1;
            a.deadlines.push(now.plus_ms(d_ms));
        }
    }
}

pub(super) fn episode_deadlines(a: &mut Auditor, world: &World) {
    let now = world.now();
    for app in 0..a.apps.len() {
        let d_ms = detection_ms(a, app as AppIx);
        for i in 0..a.apps[app].episodes.len() {
            let e = a.apps[app].episodes[i];
            if e.reported || now < e.since.plus_ms(d_ms) {
                continue;
            }
            a.apps[app].episodes[i].reported = true;
            if world.standby_for(app as AppIx, e.tg) {
                let dep = a.apps[app].current.or(a.apps[app].last);
                let tg = &world.elb.target_groups[e.tg as usize].name;
                a.violation(
                    world,
                    now,
                    Invariant::NoDarkTraffic,
                    app as AppIx,
                    dep,
                    format!(
                        "traffic to {tg} found no healthy target for {} s (since {}; bound {} s) while the other side was a warm standby: no rollback",
                        now.ms_since(e.since) / 1000,
                        e.since,
                        d_ms / 1000
                    ),
                );
            } else {
                a.unfixable_dark += 1;
            }
        }
    }
}

/// The rollback's order, judged on the world: no change other than restoring
/// production to 100 % blue while production is not there; then none other than
/// restoring the test listener while it is not there. (A restore the machine found
/// already applied needs no write: the world is what counts.)
fn rollback_order(a: &mut Auditor, world: &World, dep: u32, effect: &WriteEffect) {
    let d = &a.deps[dep as usize];
    let app = d.info.app;
    let res = &world.apps[app as usize];
    let Some(blue) = d.blue_slot else { return };
    let blue_tg = res.target_groups[blue];
    let prod_blue = all_on(&world.elb.forwards[res.prod as usize].config, blue_tg);
    let test_blue = res
        .test
        .is_none_or(|t| all_on(&world.elb.forwards[t as usize].config, blue_tg));
    let problem = match effect {
        WriteEffect::Forward { forward, after, .. } if *forward == res.prod => {
            (!all_on(after, blue_tg)).then_some("instead of production → 100 % blue")
        }
        WriteEffect::Forward { forward, after, .. } if Some(*forward) == res.test => {
            if !prod_blue {
                Some("before production was back to 100 % blue")
            } else {
                (!all_on(after, blue_tg)).then_some("instead of the test listener → blue")
            }
        }
        _ if !prod_blue => Some("before production was back to 100 % blue"),
        _ if !test_blue => Some("before the test listener was back on blue"),
        _ => None,
    };
    if let Some(when) = problem {
        a.violation(
            world,
            world.now(),
            Invariant::RollbackIsSafe,
            app,
            Some(dep),
            format!("the rollback wrote {} {when}", describe(world, effect)),
        );
    }
}

fn describe(world: &World, e: &WriteEffect) -> String {
    match e {
        WriteEffect::Forward { forward, after, .. } => {
            let parts: Vec<String> = after
                .iter()
                .map(|(tg, w)| format!("{}={w}", world.elb.target_groups[*tg as usize].name))
                .collect();
            format!("listener forward #{forward} [{}]", parts.join(", "))
        }
        WriteEffect::Service {
            service,
            desired_after,
            ..
        } => format!(
            "service {} desired {desired_after}",
            world.ecs.services[*service as usize].name
        ),
        WriteEffect::TaskSetCreated { task_set } => {
            format!(
                "a new task set {}",
                world.ecs.task_sets[*task_set as usize].id
            )
        }
        WriteEffect::TaskSetDeleted { task_set } => {
            format!(
                "deleting task set {}",
                world.ecs.task_sets[*task_set as usize].id
            )
        }
        WriteEffect::PrimarySet { task_set, .. } => {
            format!(
                "primary task set {}",
                world.ecs.task_sets[*task_set as usize].id
            )
        }
        WriteEffect::Registered { td } => {
            format!("task definition {}", world.ecs.task_def_arn(*td))
        }
    }
}

/// Blue loses capacity: only after production (and test) weight left it for the drain
/// time, outside a rollback, and never while green is dark.
fn blue_removal(a: &mut Auditor, world: &World, dep: u32, rolling_back: bool, what: &str) {
    let d = &a.deps[dep as usize];
    let app = d.info.app;
    let res = &world.apps[app as usize];
    let Some(blue) = d.blue_slot else { return };
    let (blue_tg, green_tg) = (res.target_groups[blue], res.target_groups[1 - blue]);
    let prod = &world.elb.forwards[res.prod as usize].config;
    let now = world.now();
    let mut problems = Vec::new();
    if rolling_back {
        problems.push("during a rollback".to_string());
    }
    let w = Forward::weight_of(prod, blue_tg);
    if w > 0 {
        problems.push(format!("while blue still had production weight {w}"));
    }
    if let Some(t) = res.test {
        let w = Forward::weight_of(&world.elb.forwards[t as usize].config, blue_tg);
        if w > 0 {
            problems.push(format!(
                "while the test listener still sent weight {w} to blue"
            ));
        }
    }
    match d.blue_zero_since {
        Some(t) if t.plus_ms(d.info.drain_ms) <= now => {}
        Some(t) => problems.push(format!(
            "{} ms after blue's last production weight (drain {} ms)",
            now.ms_since(t),
            d.info.drain_ms
        )),
        None => problems.push("without this deployment having moved production off blue".into()),
    }
    // Green dark when blue goes: the controller's fault if the darkness is older than
    // the freshest look it could have had.
    let dark_since = (world.elb.healthy(green_tg) == 0).then(|| {
        a.apps[app as usize]
            .episodes
            .iter()
            .filter(|e| e.tg == green_tg)
            .map(|e| e.since)
            .min()
            .unwrap_or(now)
    });
    let dark =
        problems.is_empty() && dark_since.is_some_and(|t| now.ms_since(t) > d.info.look_grace_ms);
    if !problems.is_empty() {
        a.violation(
            world,
            now,
            Invariant::RollbackIsSafe,
            app,
            Some(dep),
            format!("blue lost capacity ({what}) {}", problems.join(", ")),
        );
    }
    if dark {
        a.violation(
            world,
            now,
            Invariant::NoDarkTraffic,
            app,
            Some(dep),
            format!(
                "blue was removed ({what}) while green ({}) had had no healthy target for {} ms (a fresh look would have seen it): nothing is left to serve",
                world.elb.target_groups[green_tg as usize].name,
                dark_since.map(|t| now.ms_since(t)).unwrap_or(0)
            ),
        );
    }
}

/// Judge every change the last command of `dep` made.
pub(super) fn writes(a: &mut Auditor, world: &World, dep: u32, issued: u64) {
    let now = world.now();
    for effect in world.last_effects() {
        a.checks += 1;
        let d = &mut a.deps[dep as usize];
        d.writes += 1;
        let app = d.info.app;
        let rolling_back = d.rollback_since.is_some_and(|r| issued > r);
        if let Some(phase) = d.terminal {
            a.violation(
                world,
                now,
                Invariant::OneDeploymentPerApp,
                app,
                Some(dep),
                format!(
                    "the deployment had ended ({phase}) and still changed the world: {}",
                    describe(world, effect)
                ),
            );
        }
        let owner = effect_app(world, effect);
        if owner != app {
            a.violation(
                world,
                now,
                Invariant::OneDeploymentPerApp,
                app,
                Some(dep),
                format!(
                    "wrote another app's resource ({}): {}",
                    world
                        .apps
                        .get(owner as usize)
                        .map(|x| x.name.as_str())
                        .unwrap_or("?"),
                    describe(world, effect)
                ),
            );
            continue;
        }
        if rolling_back {
            rollback_order(a, world, dep, effect);
        }
        let d = &a.deps[dep as usize];
        let res = &world.apps[app as usize];
        let blue_tg = d.blue_slot.map(|b| res.target_groups[b]);
        match effect {
            WriteEffect::Forward {
                forward,
                before,
                after,
            } => {
                for &(tg, w) in after {
                    if w <= Forward::weight_of(before, tg) {
                        continue;
                    }
                    if rolling_back && Some(tg) != blue_tg {
                        a.violation(
                            world,
                            now,
                            Invariant::RollbackIsSafe,
                            app,
                            Some(dep),
                            format!(
                                "the rollback added weight to green: {}",
                                describe(world, effect)
                            ),
                        );
                    }
                    if world.elb.healthy(tg) > 0 {
                        continue;
                    }
                    let told = a.deps[dep as usize]
                        .told
                        .iter()
                        .find(|(t, _, _)| *t == tg)
                        .copied();
                    let name = &world.elb.target_groups[tg as usize].name;
                    let why = match told {
                        None => Some(format!(
                            "weight {w} sent to {name}, which has no healthy target, without ever having been told its health"
                        )),
                        Some((_, at, 0)) => Some(format!(
                            "weight {w} sent to {name}, which has no healthy target, after being told at {at} it had none"
                        )),
                        Some(_) => None,
                    };
                    if let Some(why) = why {
                        a.violation(world, now, Invariant::NoDarkTraffic, app, Some(dep), why);
                    }
                }
                if *forward == res.prod
                    && let Some(btg) = blue_tg
                {
                    let d = &mut a.deps[dep as usize];
                    let (was, is) = (
                        Forward::weight_of(before, btg),
                        Forward::weight_of(after, btg),
                    );
                    if is > 0 {
                        d.blue_zero_since = None;
                    } else if was > 0 || d.blue_zero_since.is_none() {
                        d.blue_zero_since = Some(now);
                    }
                }
            }
            WriteEffect::Service {
                service,
                desired_after,
                td_before,
                td_after,
                ..
            } => {
                let blue_service = d
                    .blue_slot
                    .filter(|_| !res.task_set_mode)
                    .map(|b| res.services[b]);
                if Some(*service) == blue_service {
                    if td_after != td_before {
                        a.violation(
                            world,
                            now,
                            Invariant::RollbackIsSafe,
                            app,
                            Some(dep),
                            format!(
                                "blue's service was moved to another task definition: {}",
                                describe(world, effect)
                            ),
                        );
                    }
                    if *desired_after < a.deps[dep as usize].blue_desired {
                        blue_removal(a, world, dep, rolling_back, &describe(world, effect));
                    }
                }
            }
            WriteEffect::TaskSetCreated { task_set } => {
                let d = &mut a.deps[dep as usize];
                d.task_sets_created += 1;
                let svc = world.ecs.task_sets[*task_set as usize].service;
                let id = d.info.id.clone();
                let ours = world
                    .ecs
                    .listed_task_sets(svc)
                    .filter(|t| {
                        let t = &world.ecs.task_sets[*t as usize];
                        t.state != TaskSetState::Draining
                            && t.external_id.as_deref() == Some(id.as_str())
                    })
                    .count();
                if d.task_sets_created > 1 || ours > 1 {
                    let created = d.task_sets_created;
                    a.violation(
                        world,
                        now,
                        Invariant::NoLeaksNoDuplicates,
                        app,
                        Some(dep),
                        format!("a second green: {created} task sets created, {ours} live with external id {id}"),
                    );
                }
            }
            WriteEffect::TaskSetDeleted { task_set } => {
                if Some(*task_set) == d.blue_task_set {
                    blue_removal(a, world, dep, rolling_back, &describe(world, effect));
                }
            }
            WriteEffect::PrimarySet { .. } => {}
            WriteEffect::Registered { td } => {
                if let Some(why) = duplicate_revision(world, *td) {
                    a.violation(
                        world,
                        now,
                        Invariant::NoLeaksNoDuplicates,
                        app,
                        Some(dep),
                        why,
                    );
                }
            }
        }
    }
}

fn effect_app(world: &World, e: &WriteEffect) -> AppIx {
    match e {
        WriteEffect::Forward { forward, .. } => world.elb.forwards[*forward as usize].app,
        WriteEffect::Service { service, .. } | WriteEffect::PrimarySet { service, .. } => {
            world.ecs.services[*service as usize].app
        }
        WriteEffect::TaskSetCreated { task_set } | WriteEffect::TaskSetDeleted { task_set } => {
            let s = world.ecs.task_sets[*task_set as usize].service;
            world.ecs.services[s as usize].app
        }
        WriteEffect::Registered { td } => world.ecs.task_defs[*td as usize].app,
    }
}

/// One image, one revision per base: a revision registered for (base, image) when one
/// exists already — or when the base itself runs the image — is a duplicate.
fn duplicate_revision(world: &World, td: u32) -> Option<String> {
    let new = &world.ecs.task_defs[td as usize];
    let (base, image) = new.tags.as_ref()?;
    if let Some(&b) = world.ecs.td_by_arn.get(base)
        && world.ecs.task_defs[b as usize].image == *image
    {
        return Some(format!(
            "registered {} although its base {base} already runs {image}",
            new.arn
        ));
    }
    let revs = world.ecs.families.get(&new.family)?;
    let other = revs.iter().find(|r| {
        **r != td
            && world.ecs.task_defs[**r as usize].tags.as_ref()
                == Some(&(base.clone(), image.clone()))
    })?;
    Some(format!(
        "a second revision for image {image} on base {base}: {} and {}",
        world.ecs.task_def_arn(*other),
        new.arn
    ))
}
