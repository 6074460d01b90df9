//! `GET /v1/apps`: the configured apps with the live side and weights *read from the
//! production listener now* (never remembered: the listener is the source of truth, so
//! a change made by hand shows), and the deployment running or queued for each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bluegreen_core::{
    Cloud, Command, CommandId, CommandKind, CommandResult, DeploymentId, EnvironmentModel,
    ListenerRef, ListenerState, Observation, Observe,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{ApiError, ApiState};
use crate::config::AppConfig;

/// Most apps one request observes (each costs one listener read).
pub const APPS_PER_PAGE_MAX: usize = 200;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotView {
    /// `a` (slot 0) or `b` (slot 1).
    pub slot: String,
    pub service: String,
    pub target_group: String,
    /// The listener's weight for this slot's target group, as a percentage of the total.
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub mode: String,
    pub repository: Option<String>,
    pub tags: Vec<String>,
    /// `a`, `b`, `split` (both carry weight: a shift is under way or was left half-done),
    /// or `unknown` (the listener could not be read, or forwards elsewhere).
    pub live: String,
    pub slots: Vec<SlotView>,
    pub listener_error: Option<String>,
    pub deployment: Option<String>,
    pub queued: Option<String>,
    /// Why the app takes no deployment until an operator releases it (a deployment
    /// failed: `POST /v1/apps/{app}/release`).
    #[serde(default)]
    pub held: Option<String>,
}

#[derive(Deserialize)]
pub struct AppsQuery {
    app: Option<String>,
    /// Start after this app name (pages are in name order).
    after: Option<String>,
    limit: Option<usize>,
}

fn live_side(state: &ListenerState, tgs: &[bluegreen_core::Name; 2]) -> (String, [Option<u32>; 2]) {
    let total = state.total_weight();
    if total == 0 {
        return ("unknown".into(), [None, None]);
    }
    let pct = |tg: &str| {
        Some(
            ((u64::from(state.weight_of(tg)) * 100 + u64::from(total) / 2) / u64::from(total))
                as u32,
        )
    };
    let w = [pct(&tgs[0]), pct(&tgs[1])];
    let live = match (state.weight_of(&tgs[0]), state.weight_of(&tgs[1])) {
        (a, 0) if a == total => "a",
        (0, b) if b == total => "b",
        (a, b) if a + b == total => "split",
        _ => "unknown",
    };
    (live.into(), w)
}

/// A listener read as `GET /v1/apps` shows it: the state, or why it could not be read.
type ListenerRead = Result<ListenerState, String>;

/// The app's latest deployment and its journal position when a listener was read: a
/// read is reused only while this is unchanged (our own weight changes show at once).
type Generation = Option<(String, u64)>;

/// Listener reads reused for a short TTL, so a dashboard refreshing `/v1/apps` does not
/// spend the account's ELBv2 budget (shared with every deployment) once per refresh.
/// Bounded by the number of configured listeners.
pub struct ListenerCache {
    ttl: Duration,
    reads: Mutex<HashMap<ListenerRef, (Instant, Generation, ListenerRead)>>,
}

impl ListenerCache {
    pub fn new(ttl: Duration) -> Self {
        ListenerCache {
            ttl,
            reads: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, listener: &ListenerRef, generation: &Generation) -> Option<ListenerRead> {
        let reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        reads
            .get(listener)
            .filter(|(at, g, _)| at.elapsed() < self.ttl && g == generation)
            .map(|(_, _, read)| read.clone())
    }

    fn keep(&self, listener: &ListenerRef, generation: Generation, read: &ListenerRead) {
        if self.ttl.is_zero() {
            return;
        }
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        reads.insert(listener.clone(), (Instant::now(), generation, read.clone()));
    }
}

/// Read `listener`, from the cache when fresh, else through the cloud holding one of the
/// runner's command permits.
async fn read_listener<C: Cloud + 'static>(
    s: &ApiState<C>,
    app: &str,
    listener: &ListenerRef,
) -> ListenerRead {
    let generation = match s.runner.store().latest(app).await {
        Ok(latest) => latest.map(|d| (d.id().to_string(), d.seq)),
        Err(e) => {
            tracing::error!(error = %e, %app, "apps: the store could not be read");
            return Err("the store could not be read (the log has the detail)".into());
        }
    };
    if let Some(read) = s.listeners.fresh(listener, &generation) {
        return read;
    }
    let permits = s.runner.command_permits();
    let Ok(_permit) = permits.acquire_owned().await else {
        return Err("the service is shutting down".into());
    };
    // A read made while we waited for the permit is as good as ours.
    if let Some(read) = s.listeners.fresh(listener, &generation) {
        return read;
    }
    let id = DeploymentId::new(format!("{app}-view"))
        .unwrap_or_else(|_| DeploymentId::new("view").expect("valid"));
    let command = Command {
        id: CommandId::new(&id, "observe-listener"),
        attempt: 1,
        kind: CommandKind::Observe(Observe::Listener(listener.clone())),
    };
    let read = match s.runner.cloud().execute(&command).await {
        Ok(CommandResult::Observed(Observation::Listener(state))) => Ok(state),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    };
    s.listeners.keep(listener, generation, &read);
    read
}

async fn observe<C: Cloud + 'static>(s: Arc<ApiState<C>>, app: AppConfig) -> AppView {
    let d = &app.draft;
    let (live, weights, error) = match read_listener(&s, &d.app, &d.listener).await {
        Ok(state) => {
            let (live, w) = live_side(&state, &d.target_groups);
            (live, w, None)
        }
        Err(e) => ("unknown".into(), [None, None], Some(e)),
    };
    let services = match &d.environment {
        EnvironmentModel::ServicePair { services } => services.clone(),
        EnvironmentModel::TaskSet { service } => [service.clone(), service.clone()],
    };
    let slots = (0..2)
        .map(|i| SlotView {
            slot: ["a", "b"][i].to_string(),
            service: services[i].to_string(),
            target_group: d.target_groups[i].to_string(),
            weight: weights[i],
        })
        .collect();
    let (running, queued) = s.runner.app_slot(&app.name).await;
    let held = s.runner.app_hold(&app.name).await;
    AppView {
        name: app.name.clone(),
        mode: d.environment.mode().as_str().to_string(),
        repository: app.repository.clone(),
        tags: app.tags.clone(),
        live,
        slots,
        listener_error: error,
        deployment: running.map(|i| i.to_string()),
        queued: queued.map(|i| i.to_string()),
        held,
    }
}

/// `POST /v1/apps/{app}/release`: an operator looked at a held app (a deployment of it
/// failed) and lets it take deployments again; its queued deployment starts.
pub async fn release<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    axum::extract::Path(app): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    use bluegreen_core::admission::Next;
    s.authorize_api(&headers)?;
    let next = s.runner.release(&app).await.map_err(|e| match e {
        crate::runner::SubmitError::UnknownApp(_) => {
            ApiError::not_found(format!("no app named {app:?} is configured")).field("app")
        }
        crate::runner::SubmitError::Store(e) => ApiError::store(e),
        other => ApiError::internal(other),
    })?;
    let body = match next {
        Next::Start { id } => {
            serde_json::json!({ "app": app, "released": true, "started": id.as_str() })
        }
        Next::Idle => serde_json::json!({ "app": app, "released": true }),
        Next::Held { .. } | Next::Unchanged => {
            serde_json::json!({ "app": app, "released": false, "reason": "the app was not held" })
        }
    };
    Ok(Json(body).into_response())
}

/// The first `limit` configured apps in name order, each observed now (the status page).
pub async fn observe_apps<C: Cloud + 'static>(s: &Arc<ApiState<C>>, limit: usize) -> Vec<AppView> {
    let mut apps: Vec<&AppConfig> = s.apps.iter().collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let apps: Vec<AppConfig> = apps.into_iter().take(limit).cloned().collect();
    let mut tasks = JoinSet::new();
    for (i, app) in apps.into_iter().enumerate() {
        let s = s.clone();
        tasks.spawn(async move { (i, observe(s, app).await) });
    }
    let mut views = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(v) = joined {
            views.push(v);
        }
    }
    views.sort_by_key(|(i, _)| *i);
    views.into_iter().map(|(_, v)| v).collect()
}

pub async fn list<C: Cloud + 'static>(
    State(s): State<Arc<ApiState<C>>>,
    headers: HeaderMap,
    query: Result<Query<AppsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.authorize_api(&headers)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("limit", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=APPS_PER_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {APPS_PER_PAGE_MAX}"),
        ));
    }
    let mut apps: Vec<&AppConfig> = s.apps.iter().collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let selected: Vec<AppConfig> = apps
        .into_iter()
        .filter(|a| q.app.as_ref().is_none_or(|n| &a.name == n))
        .filter(|a| q.after.as_ref().is_none_or(|after| &a.name > after))
        .take(limit)
        .cloned()
        .collect();
    if let Some(name) = &q.app
        && selected.is_empty()
    {
        return Err(ApiError::not_found(format!("no app named {name:?}")).field("app"));
    }
    let mut tasks = JoinSet::new();
    for (i, app) in selected.into_iter().enumerate() {
        let s = s.clone();
        tasks.spawn(async move { (i, observe(s, app).await) });
    }
    let mut views: Vec<(usize, AppView)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        views.push(joined.map_err(ApiError::internal)?);
    }
    views.sort_by_key(|(i, _)| *i);
    let next = if views.len() == limit {
        views.last().map(|(_, v)| v.name.clone())
    } else {
        None
    };
    let apps: Vec<AppView> = views.into_iter().map(|(_, v)| v).collect();
    Ok(Json(serde_json::json!({ "apps": apps, "next_after": next })).into_response())
}

#[cfg(test)]
mod tests {
    use bluegreen_core::TargetWeight;

    use super::*;

    fn state(a: u32, b: u32) -> ListenerState {
        ListenerState {
            forwards: vec![
                TargetWeight {
                    target_group: "A".into(),
                    weight: a,
                },
                TargetWeight {
                    target_group: "B".into(),
                    weight: b,
                },
            ],
        }
    }

    #[test]
    fn the_live_side_comes_from_the_weights() {
        let tgs = [
            bluegreen_core::Name::from("A"),
            bluegreen_core::Name::from("B"),
        ];
        assert_eq!(
            live_side(&state(1, 0), &tgs),
            ("a".into(), [Some(100), Some(0)])
        );
        assert_eq!(
            live_side(&state(0, 100), &tgs),
            ("b".into(), [Some(0), Some(100)])
        );
        assert_eq!(
            live_side(&state(90, 10), &tgs),
            ("split".into(), [Some(90), Some(10)])
        );
        assert_eq!(
            live_side(&ListenerState { forwards: vec![] }, &tgs).0,
            "unknown"
        );
    }
}
