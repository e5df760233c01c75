//! Shares a topic's partitions among the live nodes of a role, by leases in
//! the [`Cluster`], and runs one task per partition this node holds.
//!
//! Every tick a node heartbeats its group, renews its leases, gives up
//! partitions above its fair share (`ceil(partitions / live nodes)`) and
//! takes free ones below it. A dead node's leases lapse after the TTL and
//! the survivors take them on their next tick, so a partition is without an
//! owner for at most TTL + one tick. A node that cannot renew for longer
//! than [`FENCE`] before the TTL stops its tasks by itself, so it has
//! stopped before anyone else may take them over.
//!
//! A partition is given up only after its task has finished (appenders
//! drain their batch), so two nodes never knowingly run it at once. Jobs are
//! safe even if they do (a slow node, a paused process): their output is
//! applied together with their offset, and a stale batch is refused.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{lease_name, Cluster, Member};
use crate::internal_events::{Ownership, PartitionOwned};
use crate::telemetry::emit;

/// Margin before the lease's TTL at which a node that could not renew
/// stops its partitions by itself.
pub const FENCE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct OwnershipSpec {
    /// The role's group, e.g. `process`.
    pub group: String,
    /// Lease names are `{scope}/{partition}`, e.g. `append/events`.
    pub scope: String,
    pub partitions: u32,
    pub member: Member,
    pub ttl: Duration,
    pub tick: Duration,
}

impl OwnershipSpec {
    /// The default timing: partitions of a dead node move within 8 s.
    pub fn new(group: &str, scope: &str, partitions: u32, member: Member) -> OwnershipSpec {
        OwnershipSpec {
            group: group.into(),
            scope: scope.into(),
            partitions,
            member,
            ttl: Duration::from_secs(6),
            tick: Duration::from_secs(1),
        }
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Stops a partition's task and waits for it, at most `wait`: a task stuck
/// (say, on a hung append) must not hold up the renewal of the others.
/// Returns whether it finished; if not, it is aborted and its lease is left
/// to lapse rather than released, since it may still act until then.
async fn finish(r: Running, wait: Duration) -> bool {
    r.stop.cancel();
    let abort = r.task.abort_handle();
    match tokio::time::timeout(wait, r.task).await {
        Ok(_) => true,
        Err(_) => {
            tracing::warn!(
                "a partition task did not stop in {wait:?}; aborted, its lease will lapse"
            );
            abort.abort();
            false
        }
    }
}

/// Holds this node's share of the partitions until `stop`, running
/// `start(partition, stop)` for each partition while held.
pub async fn run_owned<F, Fut>(
    cluster: Arc<dyn Cluster>,
    spec: OwnershipSpec,
    stop: CancellationToken,
    start: F,
) where
    F: Fn(u32, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let node = spec.member.node;
    let mut held: BTreeMap<u32, Running> = BTreeMap::new();
    let mut renewed_at = Instant::now();
    let owned = |partition: u32, what: Ownership| {
        emit(PartitionOwned {
            scope: &spec.scope,
            partition,
            node,
            what,
        })
    };
    let spawn = |p: u32| {
        let token = stop.child_token();
        let task = tokio::spawn(start(p, token.clone()));
        Running { stop: token, task }
    };
    let mut tick = tokio::time::interval(spec.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        // Tasks that ended on their own are started again while held.
        let ended: Vec<u32> = held
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in ended {
            tracing::warn!(scope = %spec.scope, partition = p, "partition task ended; restarting it");
            held.insert(p, spawn(p));
        }

        let started = Instant::now();
        // Could not renew for nearly a TTL: others may take over any
        // moment, so stop first.
        let fence = |held: &mut BTreeMap<u32, Running>, renewed_at: Instant| {
            if renewed_at.elapsed() + FENCE >= spec.ttl && !held.is_empty() {
                tracing::error!(scope = %spec.scope, "leases may lapse; stopping every partition");
                for (p, r) in std::mem::take(held) {
                    r.stop.cancel();
                    owned(p, Ownership::MayLapse);
                }
            }
        };
        let members = match cluster.heartbeat(&spec.group, &spec.member, spec.ttl).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, scope = %spec.scope, "cluster heartbeat failed");
                fence(&mut held, renewed_at);
                continue;
            }
        };
        let live = members.len().max(1) as u32;
        let fair = spec.partitions.div_ceil(live) as usize;

        // Renew what we hold; a lease found taken is lost at once.
        let mut all_renewed = true;
        for p in held.keys().copied().collect::<Vec<_>>() {
            match cluster
                .lease(&lease_name(&spec.scope, p), node, spec.ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(r) = held.remove(&p) {
                        r.stop.cancel();
                    }
                    owned(p, Ownership::LeaseLost);
                }
                Err(e) => {
                    all_renewed = false;
                    tracing::warn!(error = %e, partition = p, "lease renewal failed");
                }
            }
        }
        if all_renewed {
            renewed_at = started;
        } else {
            fence(&mut held, renewed_at);
        }

        // Above the fair share: hand the highest partitions back, each
        // once its task has finished.
        while held.len() > fair {
            let (p, r) = held.pop_last().expect("non-empty");
            if finish(r, spec.ttl / 3).await {
                let _ = cluster.release(&lease_name(&spec.scope, p), node).await;
            }
            owned(p, Ownership::HandedBack);
        }

        // Below it: take free ones, starting at a place that depends on
        // our rank, so that nodes starting together try different ones.
        if held.len() < fair {
            let rank = members.iter().position(|m| m.node == node).unwrap_or(0) as u32;
            let first = rank * spec.partitions / live;
            for i in 0..spec.partitions {
                if held.len() >= fair {
                    break;
                }
                let p = (first + i) % spec.partitions;
                if held.contains_key(&p) {
                    continue;
                }
                match cluster
                    .lease(&lease_name(&spec.scope, p), node, spec.ttl)
                    .await
                {
                    Ok(true) => {
                        held.insert(p, spawn(p));
                        owned(p, Ownership::Taken);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, partition = p, "lease request failed");
                        break;
                    }
                }
            }
        }
    }
    // A clean stop: finish every task, then free its lease for the others.
    for (p, r) in std::mem::take(&mut held) {
        if finish(r, spec.ttl / 3).await {
            let _ = cluster.release(&lease_name(&spec.scope, p), node).await;
        }
        owned(p, Ownership::Stopped);
    }
    let _ = cluster.leave(&spec.group, node).await;
}
