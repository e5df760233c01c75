//! [`JobStore`](crate::state::JobStore): a job's output and offset are
//! written together, as a compare-and-set.

use super::{fresh_user, inbox_put};
use crate::contract::unique;
use crate::state::{Applied, InboxStore, JobStore};

pub(super) async fn apply_is_atomic_and_idempotent<S: JobStore + InboxStore>(s: &S) {
    let job = unique("job");
    let (u, v) = (fresh_user(), fresh_user());
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), None);
    let ops = vec![inbox_put(u, 1), inbox_put(v, 1)];
    assert_eq!(
        s.apply(&job, 0, None, 10, ops.clone()).await.unwrap(),
        Applied::Written
    );
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), Some(10));
    assert_eq!(
        (s.inbox_seq(u).await.unwrap(), s.inbox_seq(v).await.unwrap()),
        (1, 1)
    );

    // A replay of the same or an older batch writes nothing, nor does a
    // second runner that expects another offset, nor one that expects an
    // offset where none is stored (a wiped store).
    let replay = vec![inbox_put(u, 5)];
    assert_eq!(
        s.apply(&job, 0, None, 10, replay.clone()).await.unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 0, Some(3), 4, replay.clone()).await.unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 0, Some(12), 20, replay.clone())
            .await
            .unwrap(),
        Applied::Stale {
            committed: Some(10)
        }
    );
    assert_eq!(
        s.apply(&job, 2, Some(10), 11, replay).await.unwrap(),
        Applied::Stale { committed: None }
    );
    assert_eq!(s.job_offset(&job, 2).await.unwrap(), None);
    assert_eq!(
        s.inbox_seq(u).await.unwrap(),
        1,
        "a stale batch wrote nothing"
    );
    assert_eq!(s.job_offset(&job, 0).await.unwrap(), Some(10));

    // Offsets are per job and partition.
    assert_eq!(s.job_offset(&job, 1).await.unwrap(), None);
    assert_eq!(
        s.apply(&job, 1, None, 3, vec![]).await.unwrap(),
        Applied::Written
    );
    assert_eq!(s.job_offset(&job, 1).await.unwrap(), Some(3));
    assert_eq!(s.job_offset(&unique("other"), 0).await.unwrap(), None);
    assert_eq!(
        s.apply(&job, 0, Some(10), 11, vec![inbox_put(u, 2)])
            .await
            .unwrap(),
        Applied::Written
    );
    assert_eq!(
        (
            s.job_offset(&job, 0).await.unwrap(),
            s.inbox_seq(u).await.unwrap()
        ),
        (Some(11), 2)
    );
}
