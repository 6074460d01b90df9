//! `DescribeAlarms` batched across deployments (DESIGN §5 "API budget"): deployments
//! reading their alarms while a call is out share the next call, up to a hundred names
//! (AWS's limit). Opportunistic, like the `DescribeServices` batch: a lone read goes at
//! once; under load, waiting reads share calls.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use bluegreen_core::{AlarmObservation, CommandError, Name};
use tokio::sync::oneshot;

use super::AwsCloud;
use super::cloudwatch::{ALARM_NAMES_PER_CALL, fetch};

type Found = BTreeMap<Name, AlarmObservation>;
type Reply = oneshot::Sender<Result<Found, CommandError>>;

/// Reads waiting, and whether a worker is draining them.
#[derive(Default)]
pub(crate) struct AlarmBatches {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    draining: bool,
    waiting: VecDeque<(Vec<Name>, Reply)>,
}

/// Reads that may wait before new ones are refused as throttled (bounded memory).
const WAITING_MAX: usize = 10_000;

impl AlarmBatches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The states of `names` (at most a hundred), read in whichever call goes next.
pub(crate) async fn read(cloud: &AwsCloud, names: &[Name]) -> Result<Found, CommandError> {
    debug_assert!(names.len() <= ALARM_NAMES_PER_CALL);
    let (tx, rx) = oneshot::channel();
    let start_worker = {
        let mut q = cloud.shared.alarm_batches.lock();
        if q.waiting.len() >= WAITING_MAX {
            return Err(CommandError::throttled(
                "BatchQueueFull",
                format!("{WAITING_MAX} alarm reads are already waiting"),
            ));
        }
        q.waiting.push_back((names.to_vec(), tx));
        !std::mem::replace(&mut q.draining, true)
    };
    if start_worker {
        tokio::spawn(drain(cloud.clone()));
    }
    rx.await.unwrap_or_else(|_| {
        Err(CommandError::retryable(
            "BatchDropped",
            "the batched DescribeAlarms read ended without an answer",
        ))
    })
}

/// Call for whoever waits, up to a hundred names at a time, until nobody does.
async fn drain(cloud: AwsCloud) {
    loop {
        let (batch, names) = {
            let mut q = cloud.shared.alarm_batches.lock();
            if q.waiting.is_empty() {
                q.draining = false;
                return;
            }
            let mut names: BTreeSet<Name> = BTreeSet::new();
            let mut batch = Vec::new();
            while let Some((wanted, _)) = q.waiting.front() {
                let new = wanted.iter().filter(|n| !names.contains(*n)).count();
                if !batch.is_empty() && names.len() + new > ALARM_NAMES_PER_CALL {
                    break;
                }
                let (wanted, reply) = q.waiting.pop_front().expect("the front exists");
                names.extend(wanted.iter().cloned());
                batch.push((wanted, reply));
            }
            (batch, names.into_iter().collect::<Vec<_>>())
        };
        match fetch(&cloud, &names).await {
            Ok(found) => {
                for (wanted, reply) in batch {
                    let mine = wanted
                        .iter()
                        .filter_map(|n| found.get(n).map(|a| (n.clone(), a.clone())))
                        .collect();
                    let _ = reply.send(Ok(mine));
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
