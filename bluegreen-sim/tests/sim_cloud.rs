//! `SimCloud` behind core's `Cloud` port: the machine, driven by hand with a manual
//! clock, deploys on the simulated world exactly as the service's runner would.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bluegreen_core::plan::example_draft;
use bluegreen_core::{
    Cloud, Deployment, DeploymentId, DeploymentSpec, EnvironmentModel, Input, Output, PhaseName,
    SpecDraft, Timestamp,
};
use bluegreen_sim::{SimCloud, World, WorldProfile};

const START_MS: u64 = 1_800_000_000_000;

/// Poll a future that never waits (SimCloud answers at once) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("SimCloud::execute must answer without waiting"),
    }
}

fn drive(draft: SpecDraft, profile: WorldProfile) -> (Deployment, SimCloud) {
    let clock_ms = Arc::new(AtomicU64::new(START_MS));
    let c = clock_ms.clone();
    let world = World::seeded(
        std::slice::from_ref(&draft),
        &profile,
        7,
        Timestamp::from_millis(START_MS),
    );
    let cloud = SimCloud::new(
        world,
        Arc::new(move || Timestamp::from_millis(c.load(Ordering::SeqCst))),
    );
    let spec = DeploymentSpec::new(draft).unwrap();
    let mut d = Deployment::new(
        DeploymentId::new("web-1").unwrap(),
        spec,
        Timestamp::from_millis(START_MS),
    );
    let mut inbox = vec![Input::Wake];
    for _ in 0..100_000 {
        let now = Timestamp::from_millis(clock_ms.load(Ordering::SeqCst));
        for input in inbox.drain(..) {
            let _ = d.handle(now, input);
        }
        let wake = loop {
            match d.poll(now) {
                Output::Command(cmd) => {
                    let result = ready(cloud.execute(&cmd));
                    inbox.push(Input::CommandDone {
                        id: cmd.id.clone(),
                        result,
                    });
                }
                Output::Notice(_) => {}
                Output::Idle { wake_at } => break wake_at,
            }
        };
        if inbox.is_empty() {
            match wake {
                Some(t) => {
                    clock_ms.store(t.as_millis(), Ordering::SeqCst);
                    inbox.push(Input::Wake);
                }
                None => break,
            }
        }
    }
    (d, cloud)
}

fn assert_green_owns_everything(cloud: &SimCloud) {
    cloud.with_world(|w| {
        let app = &w.apps[0];
        let f = &w.elb.forwards[app.prod as usize];
        let [tg0, tg1] = app.target_groups;
        assert_eq!(bluegreen_sim::world::Forward::weight_of(&f.config, tg0), 0);
        assert!(bluegreen_sim::world::Forward::weight_of(&f.config, tg1) > 0);
        assert_eq!(w.elb.healthy(tg1), 3, "green serves on 3 healthy targets");
        assert_eq!(
            w.elb.target_groups[tg0 as usize].targets.len(),
            0,
            "blue drained"
        );
    });
}

#[test]
fn the_machine_completes_a_canary_on_sim_cloud_with_fast_timings() {
    let (d, cloud) = drive(example_draft(), WorldProfile::fast());
    assert_eq!(d.phase_name(), PhaseName::Completed, "{:?}", d.history());
    assert_green_owns_everything(&cloud);
    cloud.with_world(|w| {
        let blue = &w.ecs.services[w.apps[0].services[0] as usize];
        assert_eq!((blue.desired, blue.tasks.len()), (0, 0));
        assert!(
            w.api.stats.total() >= d.aws_calls_min(),
            "the sim makes at least the lower bound of calls"
        );
    });
}

#[test]
fn the_machine_completes_a_task_set_deployment_with_aws_timings() {
    let mut draft = example_draft();
    draft.environment = EnvironmentModel::TaskSet {
        service: "web".into(),
    };
    let (d, cloud) = drive(draft, WorldProfile::aws());
    assert_eq!(d.phase_name(), PhaseName::Completed, "{:?}", d.history());
    assert_green_owns_everything(&cloud);
    cloud.with_world(|w| {
        let svc = w.apps[0].services[0];
        let listed: Vec<u32> = w.ecs.listed_task_sets(svc).collect();
        assert_eq!(listed.len(), 1, "only green's task set is left");
        let ts = &w.ecs.task_sets[listed[0] as usize];
        assert_eq!(ts.external_id.as_deref(), Some("web-1"));
        assert_eq!(ts.state.as_str(), "PRIMARY");
    });
}

#[test]
fn a_crash_looping_image_rolls_back_on_sim_cloud() {
    let mut draft = example_draft();
    draft.artifact = bluegreen_core::Artifact::Image("web:v2-crashloop".into());
    let (d, cloud) = drive(draft, WorldProfile::fast());
    assert_eq!(d.phase_name(), PhaseName::RolledBack, "{:?}", d.history());
    cloud.with_world(|w| {
        let green = &w.ecs.services[w.apps[0].services[1] as usize];
        assert_eq!((green.desired, green.tasks.len()), (0, 0));
    });
}
