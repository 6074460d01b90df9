//! `DescribeServices` batched across deployments (DESIGN §5 "API budget"): reads of
//! services in one cluster that arrive while a call for that cluster is out ride in the
//! next call together, up to ten a call (AWS's limit). Opportunistic: a lone read goes at
//! once, with no added latency; under load — many deployments watching services in one
//! cluster — waiting reads share calls.

use bluegreen_core::Name;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aws_sdk_ecs::types::Service;
use bluegreen_core::CommandError;
use bluegreen_core::budget::SERVICES_PER_CALL;
use tokio::sync::oneshot;

use super::AwsCloud;

type Reply = oneshot::Sender<Result<Service, CommandError>>;

/// Reads waiting per cluster, and whether a worker is draining them.
#[derive(Default)]
pub(crate) struct ServiceBatches {
    clusters: Mutex<HashMap<String, Queue>>,
}

#[derive(Default)]
struct Queue {
    draining: bool,
    waiting: VecDeque<(Name, Reply)>,
}

/// Reads one cluster may queue before new ones are refused as throttled (bounded
/// memory; at ten a call that is 1,000 calls of backlog).
const WAITING_MAX: usize = 10_000;

impl ServiceBatches {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.clusters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One service, read in whichever call for its cluster goes next.
pub(crate) async fn describe_one(
    cloud: &AwsCloud,
    cluster: &str,
    service: &str,
) -> Result<Service, CommandError> {
    let mut found = describe_many(cloud, cluster, &[service]).await?;
    Ok(found.remove(0))
}

/// Services of one cluster (at most ten), queued together so that they ride in one
/// call (a monitor's read of green with blue); in the order asked.
pub(crate) async fn describe_many(
    cloud: &AwsCloud,
    cluster: &str,
    services: &[&str],
) -> Result<Vec<Service>, CommandError> {
    debug_assert!(!services.is_empty() && services.len() <= SERVICES_PER_CALL);
    let mut replies = Vec::with_capacity(services.len());
    let start_worker = {
        let mut clusters = cloud.shared.service_batches.lock();
        let q = clusters.entry(cluster.to_string()).or_default();
        if q.waiting.len() + services.len() > WAITING_MAX {
            return Err(CommandError::throttled(
                "BatchQueueFull",
                format!("{WAITING_MAX} reads of cluster {cluster} are already waiting"),
            ));
        }
        for service in services {
            let (tx, rx) = oneshot::channel();
            q.waiting.push_back((Name::from(*service), tx));
            replies.push(rx);
        }
        !std::mem::replace(&mut q.draining, true)
    };
    if start_worker {
        tokio::spawn(drain(cloud.clone(), cluster.to_string()));
    }
    let mut found = Vec::with_capacity(replies.len());
    for rx in replies {
        found.push(rx.await.unwrap_or_else(|_| {
            Err(CommandError::retryable(
                "BatchDropped",
                "the batched DescribeServices read ended without an answer",
            ))
        })?);
    }
    Ok(found)
}

/// Call for whoever waits, ten services at a time, until nobody does.
async fn drain(cloud: AwsCloud, cluster: String) {
    loop {
        let batch: Vec<(Name, Reply)> = {
            let mut clusters = cloud.shared.service_batches.lock();
            let Some(q) = clusters.get_mut(&cluster) else {
                return;
            };
            if q.waiting.is_empty() {
                clusters.remove(&cluster);
                return;
            }
            // Up to ten distinct services; a service asked for twice shares one answer.
            let mut taken: Vec<(Name, Reply)> = Vec::new();
            let mut distinct = 0;
            while let Some((name, _)) = q.waiting.front() {
                let new = !taken.iter().any(|(n, _)| n == name);
                if new && distinct == SERVICES_PER_CALL {
                    break;
                }
                distinct += usize::from(new);
                taken.push(q.waiting.pop_front().expect("the front exists"));
            }
            taken
        };
        let mut names: Vec<Name> = batch.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        match super::describe_services_each(&cloud, &cluster, &names).await {
            Ok(found) => {
                for (name, reply) in batch {
                    let answer = found
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| {
                            Err(CommandError::retryable("BadResponse", "not in the batch"))
                        });
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
