//! Playing ECS's part where the emulator does not: moto never starts tasks nor registers
//! them in target groups, so targets are made to follow services and task sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types as elb;
use bluegreen_core::{Cloud, Command, CommandError, CommandKind, CommandResult};
use bluegreen_svc::cloud::aws::AwsCloud;

use super::fixture::{API_SERVICE, CLUSTER, Fixture, WEB_SERVICES};

impl Fixture {
    /// Play ECS: make every target group hold as many targets as should run behind it.
    pub async fn reconcile_targets(&self) {
        let mut wanted = [0u32; 4];
        let all_tgs = [
            &self.web_target_groups[0],
            &self.web_target_groups[1],
            &self.api_target_groups[0],
            &self.api_target_groups[1],
        ];
        let index = |tg: &str| all_tgs.iter().position(|t| *t == tg);
        let out = self
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(WEB_SERVICES[0])
            .services(WEB_SERVICES[1])
            .services(API_SERVICE)
            .send()
            .await
            .expect("describe the services");
        for s in out.services() {
            let desired = u32::try_from(s.desired_count()).unwrap_or(0);
            for lb in s.load_balancers() {
                if let Some(i) = lb.target_group_arn().and_then(index) {
                    wanted[i] += desired;
                }
            }
            for ts in s
                .task_sets()
                .iter()
                .filter(|ts| ts.status() != Some("DRAINING"))
            {
                for lb in ts.load_balancers() {
                    if let Some(i) = lb.target_group_arn().and_then(index) {
                        wanted[i] += desired;
                    }
                }
            }
        }
        for (i, tg) in all_tgs.iter().enumerate() {
            let want: Vec<String> = (1..=wanted[i])
                .map(|n| format!("172.31.{}.{n}", 100 + i))
                .collect();
            let have = self.targets(tg).await;
            let add: Vec<elb::TargetDescription> = want
                .iter()
                .filter(|ip| !have.contains(ip))
                .map(|ip| elb::TargetDescription::builder().id(ip).port(80).build())
                .collect();
            let remove: Vec<elb::TargetDescription> = have
                .iter()
                .filter(|ip| !want.contains(ip))
                .map(|ip| elb::TargetDescription::builder().id(ip).port(80).build())
                .collect();
            if !add.is_empty() {
                self.elb
                    .register_targets()
                    .target_group_arn(*tg)
                    .set_targets(Some(add))
                    .send()
                    .await
                    .expect("register targets");
            }
            if !remove.is_empty() {
                self.elb
                    .deregister_targets()
                    .target_group_arn(*tg)
                    .set_targets(Some(remove))
                    .send()
                    .await
                    .expect("deregister targets");
            }
        }
    }

    /// Reconcile targets every `every` until the returned handle is dropped (for a
    /// controller running in another process).
    pub fn spawn_ecs_player(self: &Arc<Self>, every: Duration) -> EcsPlayer {
        let fixture = self.clone();
        EcsPlayer(tokio::spawn(async move {
            // Bounded by the handle: dropping it aborts the task.
            loop {
                fixture.reconcile_targets().await;
                tokio::time::sleep(every).await;
            }
        }))
    }
}

/// The background ECS player; stops when dropped.
pub struct EcsPlayer(tokio::task::JoinHandle<()>);

impl Drop for EcsPlayer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An adapter that also plays ECS: after every ECS write, targets follow (as ECS would
/// register and deregister tasks).
#[derive(Clone)]
pub struct PlaysEcs {
    pub aws: AwsCloud,
    pub fixture: Arc<Fixture>,
    /// Wall time spent playing ECS (not the adapter's), in nanoseconds.
    pub playing_ns: Arc<AtomicU64>,
}

impl PlaysEcs {
    pub fn new(aws: AwsCloud, fixture: Arc<Fixture>) -> Self {
        PlaysEcs {
            aws,
            fixture,
            playing_ns: Arc::default(),
        }
    }
}

impl Cloud for PlaysEcs {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let result = self.aws.execute(command).await;
        if matches!(
            command.kind,
            CommandKind::EnsureGreen(_)
                | CommandKind::ScaleEnvironment { .. }
                | CommandKind::DeleteEnvironment { .. }
                | CommandKind::SetPrimaryTaskSet { .. }
        ) {
            let started = Instant::now();
            self.fixture.reconcile_targets().await;
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.playing_ns.fetch_add(ns, Ordering::Relaxed);
        }
        result
    }
}
