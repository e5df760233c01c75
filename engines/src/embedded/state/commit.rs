//! Group commit of derived writes: callers queue their write, and whoever
//! finds no commit running runs every queued write in one redb transaction
//! on the blocking pool, then answers each. redb takes one writer at a
//! time, so under load the jobs and the edge's small writes queued behind
//! each other one commit each; now a queue costs one commit (its page
//! checksums and root updates, a third of the store's time in profiles).
//!
//! A write that fails aborts its transaction: the others of that batch are
//! told to retry (their writes were in it), never that they were applied.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::{err, Inner};
use crate::error::{EngineError, Result};

type Output = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce(&WriteTransaction) -> Result<Output> + Send>;

struct Queued {
    work: Work,
    reply: oneshot::Sender<Result<Output>>,
}

#[derive(Default)]
pub(super) struct Committer {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    queue: Vec<Queued>,
    /// Whether a task is committing (and will take what is queued next).
    running: bool,
}

impl Committer {
    /// Queues `f`; true if the caller must start [`run`](Self::run).
    fn queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> (bool, oneshot::Receiver<Result<Output>>) {
        let (reply, rx) = oneshot::channel();
        let work: Work = Box::new(move |tx| f(tx).map(|v| Box::new(v) as Output));
        let mut p = self.pending.lock().expect("commit queue");
        p.queue.push(Queued { work, reply });
        (!std::mem::replace(&mut p.running, true), rx)
    }

    /// Commits what is queued, batch after batch, until the queue is empty.
    fn run(&self, db: &Database, committed: impl Fn()) {
        loop {
            let batch = {
                let mut p = self.pending.lock().expect("commit queue");
                if p.queue.is_empty() {
                    p.running = false;
                    return;
                }
                std::mem::take(&mut p.queue)
            };
            if commit(db, batch) {
                committed();
            }
        }
    }
}

impl Inner {
    /// Runs `f` in a non-durable transaction shared with whatever else is
    /// queued, and marks the store dirty for the next checkpoint.
    pub(super) async fn write_derived<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (lead, rx) = self.committer.queue(f);
        if lead {
            let me = self.clone();
            tokio::task::spawn_blocking(move || {
                me.committer
                    .run(&me.db, || me.dirty.store(true, Ordering::Release))
            });
        }
        let out = rx.await.map_err(|_| EngineError::Closed)??;
        Ok(*out
            .downcast::<T>()
            .expect("answered with the type it was queued with"))
    }
}

/// One transaction for the batch; true if it committed.
fn commit(db: &Database, batch: Vec<Queued>) -> bool {
    let fail_all = |batch: Vec<Queued>, why: &str| {
        for q in batch {
            let _ = q.reply.send(Err(EngineError::State(why.to_owned())));
        }
    };
    let mut tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            fail_all(batch, &e.to_string());
            return false;
        }
    };
    if let Err(e) = tx.set_durability(redb::Durability::None) {
        fail_all(batch, &e.to_string());
        return false;
    }
    let mut done = Vec::with_capacity(batch.len());
    let mut rest = batch.into_iter();
    for q in rest.by_ref() {
        match (q.work)(&tx) {
            Ok(v) => done.push((q.reply, v)),
            Err(e) => {
                let _ = q.reply.send(Err(e));
                drop(tx); // aborts
                let retry = || EngineError::Unavailable("a write committed with it failed".into());
                for (reply, _) in done {
                    let _ = reply.send(Err(retry()));
                }
                for q in rest {
                    let _ = q.reply.send(Err(retry()));
                }
                return false;
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (reply, v) in done {
                let _ = reply.send(Ok(v));
            }
            true
        }
        Err(e) => {
            let why = err(e).to_string();
            for (reply, _) in done {
                let _ = reply.send(Err(EngineError::State(why.clone())));
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(k: u64) -> impl FnOnce(&WriteTransaction) -> Result<u64> + Send + 'static {
        move |tx| {
            tx.open_table(T).map_err(err)?.insert(k, k).map_err(err)?;
            Ok(k * 10)
        }
    }

    fn stored(db: &Database) -> Vec<u64> {
        let tx = db.begin_read().unwrap();
        let Ok(t) = tx.open_table(T) else {
            return vec![];
        };
        use redb::ReadableTable;
        t.iter().unwrap().map(|e| e.unwrap().0.value()).collect()
    }

    fn answer(rx: oneshot::Receiver<Result<Output>>) -> Result<u64> {
        rx.blocking_recv()
            .unwrap()
            .map(|v| *v.downcast::<u64>().unwrap())
    }

    #[test]
    fn queued_writes_share_one_commit_and_each_gets_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("c.redb")).unwrap();
        let c = Committer::default();
        let (lead, a) = c.queue(put(1));
        let (second, b) = c.queue(put(2));
        assert!(lead && !second, "only the first caller commits");
        let commits = std::sync::atomic::AtomicU32::new(0);
        c.run(&db, || {
            commits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(commits.into_inner(), 1);
        assert_eq!((answer(a).unwrap(), answer(b).unwrap()), (10, 20));
        assert_eq!(stored(&db), [1, 2]);
        // The queue is free again: the next caller leads.
        assert!(c.queue(put(3)).0);
    }

    #[test]
    fn a_failed_write_aborts_its_batch_and_the_others_are_told_to_retry() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("c.redb")).unwrap();
        let c = Committer::default();
        let (_, a) = c.queue(put(1));
        let (_, b) = c.queue(|_tx| -> Result<u64> { Err(EngineError::State("boom".into())) });
        let (_, d) = c.queue(put(3));
        c.run(&db, || panic!("nothing committed"));
        assert!(matches!(answer(a), Err(EngineError::Unavailable(_))));
        assert!(matches!(answer(b), Err(EngineError::State(m)) if m == "boom"));
        assert!(matches!(answer(d), Err(EngineError::Unavailable(_))));
        assert!(stored(&db).is_empty(), "the batch was aborted");
    }
}
