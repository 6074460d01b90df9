//! A small in-process cloud for tests and for running without the simulator: one
//! [`IdealCloud`] per app (everything healthy at once), routed by the resources a
//! command names. It also counts what was asked of it, so tests can check that a
//! crash-and-resume did not create a second green.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bluegreen_core::plan::IdealCloud;
use bluegreen_core::{
    Cloud, Command, CommandError, CommandKind, CommandResult, DeploymentSpec, EnsureGreen, Observe,
    SpecDraft,
};

/// What the dev cloud was asked, per app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub commands: u64,
    /// `RegisterTaskDefinition` commands that made a new revision.
    pub revisions_registered: u64,
    /// `EnsureGreen` commands executed (retries and re-sends after a restart included).
    pub ensure_green: u64,
}

struct App {
    cloud: IdealCloud,
    counts: Counts,
    /// Resource names that route a command here.
    keys: Vec<bluegreen_core::Name>,
    family: String,
}

/// Many apps' ideal clouds behind one [`Cloud`].
pub struct DevCloud {
    apps: Mutex<BTreeMap<bluegreen_core::Name, App>>,
}

impl DevCloud {
    /// One ideal world per app draft (slot 0 live at 100 %).
    pub fn new(drafts: &[SpecDraft]) -> Result<Self, bluegreen_core::SpecError> {
        let mut apps = BTreeMap::new();
        for d in drafts {
            let spec = DeploymentSpec::new(d.clone())?;
            let mut keys = vec![d.listener.listener_arn.clone()];
            keys.extend(d.target_groups.iter().cloned());
            match &d.environment {
                bluegreen_core::EnvironmentModel::ServicePair { services } => {
                    keys.extend(services.iter().cloned())
                }
                bluegreen_core::EnvironmentModel::TaskSet { service } => keys.push(service.clone()),
            }
            apps.insert(
                d.app.clone(),
                App {
                    cloud: IdealCloud::new(&spec),
                    counts: Counts::default(),
                    keys,
                    family: format!("task-definition/{}:", d.app),
                },
            );
        }
        Ok(DevCloud {
            apps: Mutex::new(apps),
        })
    }

    pub fn counts(&self, app: &str) -> Counts {
        let apps = self.apps.lock().expect("dev cloud lock");
        apps.get(app).map(|a| a.counts.clone()).unwrap_or_default()
    }

    /// Production weights as (slot 0, slot 1).
    pub fn weights(&self, app: &str) -> Option<(u32, u32)> {
        let apps = self.apps.lock().expect("dev cloud lock");
        apps.get(app).map(|a| a.cloud.weights_of_listener())
    }

    /// Tasks running behind a target group.
    pub fn tasks_behind(&self, app: &str, target_group: &str) -> u32 {
        let apps = self.apps.lock().expect("dev cloud lock");
        apps.get(app)
            .map(|a| a.cloud.tasks_behind(target_group))
            .unwrap_or(0)
    }
}

/// The resource a command is about, to find its app.
fn route_key(kind: &CommandKind) -> Option<&str> {
    Some(match kind {
        CommandKind::Preflight(p) => p.services.first()?,
        CommandKind::FindTaskDefinition { base, .. }
        | CommandKind::RegisterTaskDefinition { base, .. } => base,
        CommandKind::EnsureGreen(EnsureGreen::Service { service, .. })
        | CommandKind::EnsureGreen(EnsureGreen::TaskSet { service, .. })
        | CommandKind::ScaleEnvironment { service, .. }
        | CommandKind::DeleteEnvironment { service, .. }
        | CommandKind::SetPrimaryTaskSet { service, .. }
        | CommandKind::Observe(Observe::Service { service, .. }) => service,
        CommandKind::SetListenerWeights { listener, .. }
        | CommandKind::Observe(Observe::Listener(listener)) => &listener.listener_arn,
        CommandKind::Observe(Observe::TargetHealth { target_group }) => target_group,
        CommandKind::TagSlots { target_groups, .. } => &target_groups[0],
        CommandKind::PlaceScaling { services, .. } => &services[0],
        CommandKind::Observe(Observe::Alarms { .. })
        | CommandKind::Observe(Observe::Metrics(_))
        | CommandKind::CallHook(_) => return None,
    })
}

impl Cloud for DevCloud {
    async fn execute(&self, command: &Command) -> Result<CommandResult, CommandError> {
        let mut apps = self.apps.lock().expect("dev cloud lock");
        let key = route_key(&command.kind);
        let app = match key {
            Some(k) => apps
                .values_mut()
                .find(|a| a.keys.iter().any(|x| x == k) || k.contains(&a.family)),
            // Alarms, metrics and hooks look the same in every ideal world.
            None => apps.values_mut().next(),
        };
        let Some(app) = app else {
            return Err(CommandError::fatal(
                "ResourceNotFound",
                format!("no simulated resource {}", key.unwrap_or("?")),
            ));
        };
        app.counts.commands += 1;
        if matches!(command.kind, CommandKind::EnsureGreen(_)) {
            app.counts.ensure_green += 1;
        }
        let before = app.cloud.clone();
        let result = app.cloud.respond(command);
        if let (CommandKind::RegisterTaskDefinition { base, image, .. }, Ok(_)) =
            (&command.kind, &result)
        {
            let find = Command {
                id: command.id.clone(),
                attempt: 1,
                kind: CommandKind::FindTaskDefinition {
                    base: base.clone(),
                    container: bluegreen_core::Name::default(),
                    image: image.clone(),
                },
            };
            let mut probe = before;
            if let Ok(CommandResult::TaskDefinitionFound { arn: None }) = probe.respond(&find) {
                app.counts.revisions_registered += 1;
            }
        }
        result
    }
}
