//! Requests any replica takes: submissions (through the app's admission value in one
//! store transaction), operator requests (to this replica's driver, or routed through
//! the store to the replica that drives the deployment), releasing a held app.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bluegreen_core::admission::{Cancel, Decision, Next};
use bluegreen_core::{
    AlarmEvent, Artifact, Deployment, DeploymentSpec, Input, OperatorRequest, Refused,
};
use tokio::sync::oneshot;

use super::{
    AlarmDelivery, Control, OperateError, Runner, Source, Submit, SubmitError, Submitted, make_id,
    random_u64,
};
use crate::store::{AdmitError, RowState, Signal, StoreError, SubmitRow, image_key};

/// How often a replica waiting for another's answer to an operator request looks.
const ANSWER_POLL: Duration = Duration::from_millis(50);

impl<C: bluegreen_core::Cloud + 'static> Runner<C> {
    /// Deploy `image` to `app` (see `docs/service.md` for queueing and superseding).
    pub async fn submit(&self, req: Submit) -> Result<Submitted, SubmitError> {
        let inner = self.inner();
        if self.is_stopping() {
            return Err(SubmitError::ShuttingDown);
        }
        let template = inner
            .templates
            .get(&req.app)
            .ok_or_else(|| SubmitError::UnknownApp(req.app.clone()))?;
        let mut draft = template.clone();
        draft.artifact = Artifact::Image(req.image.clone().into());
        let spec = DeploymentSpec::new(draft).map_err(SubmitError::Invalid)?;
        let key = image_key(&req.image);
        let now = inner.clock.now();
        make_id(&req.app, now, 1).map_err(SubmitError::Invalid)?;
        let source = match req.source {
            Source::Api { supersede } => bluegreen_core::admission::Source::Api { supersede },
            Source::Webhook { event_time } => {
                bluegreen_core::admission::Source::Push { event_time }
            }
        };
        let app = req.app.clone();
        let admitted = inner
            .store
            .admit(
                SubmitRow {
                    app: &req.app,
                    image: &req.image,
                    image_key: &key,
                    source,
                    open_max: inner.limits.deployments_open_max,
                    now,
                },
                &inner.me,
                |n| {
                    let id = make_id(&app, now, n).expect("validated with the same app above");
                    Deployment::new(id, spec, now)
                },
            )
            .await
            .map_err(|e| match e {
                AdmitError::Store(e) => SubmitError::Store(e),
                AdmitError::Full(n) => SubmitError::Full(n),
            })?;
        match admitted.decision {
            Decision::Start { id } => {
                tracing::info!(app = %req.app, %id, "deployment started");
                match admitted.lease {
                    // The app's lease is this replica's: drive it now.
                    Some(epoch) => self.adopt(&req.app, &id, epoch).await,
                    // Another live replica holds the app (it is finishing the previous
                    // deployment): it starts this one at its next scan.
                    None => {
                        tracing::info!(app = %req.app, %id, "another replica drives this app; it starts the deployment")
                    }
                }
                Ok(Submitted::Created { id, queued: false })
            }
            Decision::Queue {
                id,
                superseded,
                abort,
            } => {
                if let Some(old) = &superseded {
                    tracing::info!(app = %req.app, old = %old, new = %id, "queued deployment superseded");
                }
                tracing::info!(app = %req.app, %id, "deployment queued");
                if let Some(running) = abort {
                    let reason = Some(format!("superseded by {id}"));
                    match self
                        .operate(running.as_str(), OperatorRequest::Abort { reason })
                        .await
                    {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::info!(%id, error = %e, "the running deployment cannot be aborted; the new one waits for it")
                        }
                    }
                }
                Ok(Submitted::Created { id, queued: true })
            }
            Decision::Existing { id } => Ok(Submitted::Existing { id }),
            Decision::Conflict { running } => Err(SubmitError::Conflict {
                app: req.app,
                active: running,
            }),
            Decision::Ignored(why) => {
                tracing::info!(app = %req.app, image = %req.image, reason = %why, "submission ignored");
                Ok(Submitted::Ignored(why))
            }
        }
    }

    /// Apply an operator request to a deployment: sent to its driver (here, or on the
    /// replica that drives it); an abort cancels a queued one; anything else is refused
    /// (409) with the reason.
    pub async fn operate(&self, id: &str, request: OperatorRequest) -> Result<(), OperateError> {
        let inner = self.inner();
        let stored = inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| OperateError::NotFound(id.to_string()))?;
        if stored.state == RowState::Queued {
            if !matches!(request, OperatorRequest::Abort { .. }) {
                return Err(OperateError::Refused(Refused {
                    request: request.name().to_string(),
                    phase: bluegreen_core::PhaseName::Preflight,
                    reason: "the deployment is queued behind the app's running one; only abort is allowed".into(),
                }));
            }
            let note = match &request {
                OperatorRequest::Abort { reason: Some(r) } => {
                    format!("cancelled while queued: {r}")
                }
                _ => "cancelled while queued by an operator".to_string(),
            };
            match inner
                .store
                .cancel(&stored.app, stored.id(), note, inner.clock.now())
                .await?
            {
                Cancel::Cancelled { .. } => return Ok(()),
                // It started in between: abort it where it runs.
                Cancel::Running { .. } => {}
                Cancel::Unknown => {
                    return Err(OperateError::Refused(Refused {
                        request: request.name().to_string(),
                        phase: stored.deployment.phase_name(),
                        reason: "the deployment is no longer queued".into(),
                    }));
                }
            }
        } else if stored.state != RowState::Running {
            let refused = match stored.deployment.check_operator(&request) {
                Err(refused) => refused,
                Ok(()) => Refused {
                    request: request.name().to_string(),
                    phase: stored.deployment.phase_name(),
                    reason: format!("the deployment is {}", stored.state.as_str()),
                },
            };
            return Err(OperateError::Refused(refused));
        }
        self.signal(&stored.app, id, Signal::Operator(request))
            .await
    }

    /// Hand `signal` to the driver of running deployment `id` of `app`: this replica's
    /// own, or through the store to the replica that drives it.
    pub(super) async fn signal(
        &self,
        app: &str,
        id: &str,
        signal: Signal,
    ) -> Result<(), OperateError> {
        let name = signal.name();
        match self.deliver(app, id, signal).await {
            Err(OperateError::Unavailable(_)) => self.finished_meanwhile(id, name).await,
            other => other,
        }
    }

    /// No driver answered. A driver that finishes persists the terminal row before it
    /// lets go of its inbox, so a signal that met a finished deployment (it was read as
    /// running, then ended before the signal got in) is refused with why; only a
    /// deployment still running in the store is truly not driven right now (a takeover).
    pub(super) async fn finished_meanwhile(
        &self,
        id: &str,
        request: &str,
    ) -> Result<(), OperateError> {
        match self.inner().store.get(id).await? {
            Some(stored) if stored.state != RowState::Running => {
                Err(OperateError::Refused(Refused {
                    request: request.to_string(),
                    phase: stored.deployment.phase_name(),
                    reason: format!("the deployment is {}", stored.state.as_str()),
                }))
            }
            _ => Err(OperateError::Unavailable(id.to_string())),
        }
    }

    async fn deliver(&self, app: &str, id: &str, signal: Signal) -> Result<(), OperateError> {
        let inner = self.inner();
        let local = {
            let drivers = inner.drivers.lock().expect("drivers lock");
            drivers
                .get(app)
                .filter(|l| l.id.as_str() == id)
                .map(|l| l.tx.clone())
        };
        match local {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Control::Signal(signal, reply))
                    .await
                    .map_err(|_| OperateError::Unavailable(id.to_string()))?;
                match rx.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(refused)) => Err(OperateError::Refused(refused)),
                    Err(_) => Err(OperateError::Unavailable(id.to_string())),
                }
            }
            None => self.route(id, signal).await,
        }
    }

    /// An alarm event (`POST /v1/webhooks/cloudwatch`): hand it to every running
    /// deployment that watches the alarm, at once and concurrently. Each answer says
    /// whether that deployment's rollback started, or why not.
    /// `app_admits` narrows it to the apps the event may speak for (its account and
    /// region).
    pub async fn alarm(
        &self,
        event: AlarmEvent,
        app_admits: impl Fn(&str) -> bool,
    ) -> Result<Vec<AlarmDelivery>, StoreError> {
        let open = self.inner().store.open().await?;
        let mut set = tokio::task::JoinSet::new();
        for s in open {
            if s.state != RowState::Running
                || !app_admits(&s.app)
                || !s.deployment.spec().alarms.iter().any(|a| *a == event.name)
            {
                continue;
            }
            let runner = self.clone();
            let event = event.clone();
            set.spawn(async move {
                let id = s.id().to_string();
                let outcome = runner.signal(&s.app, &id, Signal::Alarm(event)).await;
                AlarmDelivery {
                    deployment: id,
                    outcome,
                }
            });
        }
        let mut out = Vec::with_capacity(set.len());
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(d) => out.push(d),
                Err(e) => tracing::error!(error = %e, "delivering an alarm event panicked"),
            }
        }
        out.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        Ok(out)
    }

    /// Post the request for the replica that drives the deployment and wait (bounded)
    /// for its answer.
    async fn route(&self, id: &str, request: Signal) -> Result<(), OperateError> {
        let inner = self.inner();
        let request_id = format!("{id}/{:016x}", random_u64());
        inner
            .store
            .post_request(&request_id, id, &request, inner.clock.now())
            .await?;
        let deadline = Instant::now() + inner.limits.request_wait;
        let mut withdrawn_tried = false;
        // Bounded: by the request wait, then once more by the same amount for a request
        // that was claimed (it is being applied: its answer is on the way).
        loop {
            if let Some(answer) = inner.store.request_answer(&request_id).await? {
                return answer.map_err(OperateError::Refused);
            }
            if Instant::now() >= deadline {
                if !withdrawn_tried {
                    withdrawn_tried = true;
                    if inner.store.withdraw_request(&request_id).await? {
                        return Err(OperateError::Unavailable(id.to_string()));
                    }
                }
                if Instant::now() >= deadline + inner.limits.request_wait {
                    return Err(OperateError::Unavailable(id.to_string()));
                }
            }
            tokio::time::sleep(ANSWER_POLL).await;
        }
    }

    /// An operator released a held app: its queued deployment (if any) starts.
    pub async fn release(&self, app: &str) -> Result<Next, SubmitError> {
        let inner = self.inner();
        if !inner.templates.contains_key(app) {
            return Err(SubmitError::UnknownApp(app.to_string()));
        }
        let next = inner.store.release(app, inner.clock.now()).await?;
        tracing::info!(%app, ?next, "app released by an operator");
        Ok(next)
    }

    /// Drive `id` (the app's running deployment, whose lease this replica holds at
    /// `epoch`) from its stored state.
    pub(crate) async fn adopt(&self, app: &str, id: &bluegreen_core::DeploymentId, epoch: u64) {
        let inner = self.inner();
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stored = match inner.store.get(id.as_str()).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::error!(%app, %id, "the app's running deployment has no row");
                return;
            }
            Err(e) => {
                tracing::warn!(%app, %id, error = %e, "reading a deployment to drive failed; the next scan retries");
                return;
            }
        };
        match stored.state {
            RowState::Running => {}
            RowState::Finished => {
                // Finished, but its app was not freed (a store failure after the last
                // turn): free it now.
                let outcome = stored.deployment.phase_name();
                Box::pin(self.on_finished(app, id, outcome, epoch)).await;
                return;
            }
            other => {
                tracing::error!(%app, %id, state = other.as_str(), "the app's running deployment is not running by its row");
                return;
            }
        }
        // A deployment that never took a turn starts; one that did resumes: writes that
        // were out are resolved by observation before anything else.
        let first = if stored.seq <= 1 {
            Input::Wake
        } else {
            Input::Restarted
        };
        self.spawn(app, stored.deployment, stored.seq, first, epoch);
    }
}
