//! [`MediaStore`]: uploads, what the thumbnail job found, where they were sent.

use parley_schemas::ids::{ConversationId, GroupId, MessageId};
use parley_schemas::media::MediaId;

use super::fresh_user;
use crate::state::{ImageInfo, JobStore, MediaRecord, MediaStore, StateOp};

fn record(uploader: parley_schemas::ids::UserId, size: u64) -> MediaRecord {
    MediaRecord {
        uploader,
        sha256: "ab".repeat(32),
        size,
        mime: "image/png".into(),
        uploaded_at: 1_700_000_000_000,
        image: None,
    }
}

pub(super) async fn uploads_and_their_images<S: MediaStore + JobStore>(s: &S) {
    let (m, user) = (MediaId::random(), fresh_user());
    assert_eq!(s.media(m).await.unwrap(), None);
    let first = record(user, 10);
    s.write(vec![StateOp::PutMedia {
        media: m,
        record: first.clone(),
    }])
    .await
    .unwrap();
    assert_eq!(s.media(m).await.unwrap(), Some(first.clone()));
    // A replay of the log writes it again: the first stays.
    s.write(vec![StateOp::PutMedia {
        media: m,
        record: record(user, 99),
    }])
    .await
    .unwrap();
    assert_eq!(s.media(m).await.unwrap().unwrap().size, 10);
    let image = ImageInfo {
        width: 640,
        height: 480,
        thumbnail: true,
    };
    s.write(vec![StateOp::SetMediaImage { media: m, image }])
        .await
        .unwrap();
    assert_eq!(s.media(m).await.unwrap().unwrap().image, Some(image));

    // The thumbnail job may get there before the record is restored.
    let early = MediaId::random();
    s.write(vec![StateOp::SetMediaImage {
        media: early,
        image,
    }])
    .await
    .unwrap();
    assert_eq!(s.media(early).await.unwrap(), None);
    s.write(vec![StateOp::PutMedia {
        media: early,
        record: record(user, 5),
    }])
    .await
    .unwrap();
    let got = s.media(early).await.unwrap().unwrap();
    assert_eq!((got.size, got.image), (5, Some(image)));
}

pub(super) async fn where_media_was_sent<S: MediaStore + JobStore>(s: &S) {
    let m = MediaId::random();
    assert!(s.media_uses(m, 10).await.unwrap().is_empty());
    let direct = ConversationId::direct(fresh_user(), fresh_user());
    let group = ConversationId::group(GroupId(rand::random::<u64>() >> 2));
    let uses = [
        (direct, MessageId(7)),
        (group, MessageId(9)),
        (group, MessageId(12)),
    ];
    let ops: Vec<StateOp> = uses
        .iter()
        .map(|&(conversation, msg_id)| StateOp::MediaUsed {
            media: m,
            conversation,
            msg_id,
        })
        .collect();
    s.write(ops.clone()).await.unwrap();
    s.write(ops).await.unwrap();
    let mut got = s.media_uses(m, 10).await.unwrap();
    got.sort_by_key(|(_, id)| *id);
    assert_eq!(got, uses);
    assert_eq!(s.media_uses(m, 2).await.unwrap().len(), 2);
    assert!(s
        .media_uses(MediaId::random(), 10)
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn unsent_uploads_and_unreferenced_blobs<S: MediaStore + JobStore>(s: &S) {
    let user = fresh_user();
    // Two uploads of the same bytes, one sent; a third of other bytes.
    let sha = format!("{:064x}", rand::random::<u128>());
    let other = format!("{:064x}", rand::random::<u128>());
    let (a, b, c) = (MediaId::random(), MediaId::random(), MediaId::random());
    let at = |sha: &str, t: u64| MediaRecord {
        sha256: sha.to_owned(),
        uploaded_at: t,
        ..record(user, 1)
    };
    // Far in the past: no other run's uploads are older.
    let t0 = 1_000;
    let ops = vec![
        StateOp::PutMedia {
            media: a,
            record: at(&sha, t0),
        },
        StateOp::PutMedia {
            media: b,
            record: at(&sha, t0 + 1),
        },
        StateOp::PutMedia {
            media: c,
            record: at(&other, t0 + 2),
        },
    ];
    s.write(ops.clone()).await.unwrap();
    s.write(ops).await.unwrap(); // replayed: counted once
    let sent = StateOp::MediaUsed {
        media: b,
        conversation: ConversationId::direct(user, fresh_user()),
        msg_id: MessageId(1),
    };
    s.write(vec![sent]).await.unwrap();
    let unsent = |before| async move {
        let mut v = s.unsent_media(before, 1000).await.unwrap();
        v.retain(|m| [a, b, c].contains(m));
        v
    };
    assert_eq!(unsent(t0 + 10).await, vec![a, c]);
    assert_eq!(unsent(t0 + 1).await, vec![a], "only those before");

    // Deleting `a` leaves its bytes to `b`; deleting `c` frees its blob.
    for m in [a, c] {
        let del = StateOp::DeleteMedia {
            media: m,
            at: 5_000,
        };
        s.write(vec![del.clone()]).await.unwrap();
        s.write(vec![del]).await.unwrap();
    }
    assert_eq!(s.media(a).await.unwrap(), None);
    assert!(unsent(t0 + 10).await.is_empty());
    let (sha_ref, other_ref) = (&sha, &other);
    let unref = |before| async move {
        let mut v = s.unreferenced_blobs(before, 1000).await.unwrap();
        v.retain(|x| x == sha_ref || x == other_ref);
        v
    };
    assert_eq!(unref(6_000).await, vec![other.clone()]);
    assert!(
        unref(5_000).await.is_empty(),
        "only those unreferenced before"
    );

    // An upload pins a blob before a sweeper claims it: no claim.
    assert!(s.pin_blob(&other).await.unwrap());
    assert!(!s.claim_blob(&other, 6_000).await.unwrap());
    // Unreferenced again, then claimed: an upload waits for the delete.
    let d = MediaId::random();
    s.write(vec![StateOp::PutMedia {
        media: d,
        record: at(&other, t0),
    }])
    .await
    .unwrap();
    s.write(vec![StateOp::DeleteMedia {
        media: d,
        at: 5_000,
    }])
    .await
    .unwrap();
    assert!(
        !s.claim_blob(&sha, 6_000).await.unwrap(),
        "b still holds it"
    );
    assert!(s.claim_blob(&other, 6_000).await.unwrap());
    assert!(!s.claim_blob(&other, 6_000).await.unwrap(), "claimed once");
    assert!(!s.pin_blob(&other).await.unwrap());
    s.blob_deleted(&other).await.unwrap();
    assert!(s.pin_blob(&other).await.unwrap());
    assert!(unref(u64::MAX).await.is_empty());
}

/// Sent uploads by age, who fetched them, and the queue of fetches the
/// sweeper has not looked at (`until_delivered` retention).
pub(super) async fn sent_and_fetched<S: MediaStore + JobStore>(s: &S) {
    let (m, user, bob) = (MediaId::random(), fresh_user(), fresh_user());
    // Far in the past, so no other run's uploads are older.
    let rec = MediaRecord {
        uploaded_at: 2_000,
        ..record(user, 7)
    };
    // A fetch of an upload the store does not know is not kept.
    let fetched = |at| StateOp::MediaFetched {
        media: m,
        user: bob,
        at,
    };
    s.write(vec![fetched(1)]).await.unwrap();
    assert!(s.media_fetchers(m).await.unwrap().is_empty());
    let mine = |v: Vec<(MediaId, u64)>| v.into_iter().filter(|x| x.0 == m).collect::<Vec<_>>();
    assert!(mine(s.fetched_media(100_000).await.unwrap()).is_empty());

    let sent = |before| async move {
        let mut v = s.sent_media(before, 100_000).await.unwrap();
        v.retain(|x| *x == m);
        v
    };
    s.write(vec![StateOp::PutMedia {
        media: m,
        record: rec,
    }])
    .await
    .unwrap();
    assert!(sent(u64::MAX).await.is_empty(), "not sent yet");
    let conversation = ConversationId::direct(user, bob);
    let used = StateOp::MediaUsed {
        media: m,
        conversation,
        msg_id: MessageId(9),
    };
    s.write(vec![used.clone(), used]).await.unwrap();
    assert_eq!(sent(2_001).await, vec![m]);
    assert!(sent(2_000).await.is_empty(), "only those before");

    s.write(vec![fetched(10), fetched(30), fetched(20)])
        .await
        .unwrap();
    assert_eq!(s.media_fetchers(m).await.unwrap(), vec![bob]);
    assert_eq!(mine(s.fetched_media(100_000).await.unwrap()), vec![(m, 30)]);
    // Looked at up to 20: the fetch at 30 stays queued; up to 30: gone.
    s.write(vec![StateOp::MediaChecked { media: m, at: 20 }])
        .await
        .unwrap();
    assert_eq!(mine(s.fetched_media(100_000).await.unwrap()), vec![(m, 30)]);
    s.write(vec![StateOp::MediaChecked { media: m, at: 30 }])
        .await
        .unwrap();
    assert!(mine(s.fetched_media(100_000).await.unwrap()).is_empty());

    // Deleted: its uses, fetches and queue entries go with it.
    s.write(vec![fetched(40)]).await.unwrap();
    s.write(vec![StateOp::DeleteMedia { media: m, at: 50 }])
        .await
        .unwrap();
    assert!(sent(u64::MAX).await.is_empty());
    assert!(s.media_fetchers(m).await.unwrap().is_empty());
    assert!(s.media_uses(m, 10).await.unwrap().is_empty());
    assert!(mine(s.fetched_media(100_000).await.unwrap()).is_empty());
}

/// Each user's uploads, found by user; a deleted one leaves the list.
pub(super) async fn uploads_by_user<S: MediaStore + JobStore>(s: &S) {
    let (u, other) = (fresh_user(), fresh_user());
    assert_eq!(s.uploads(u, 10).await.unwrap(), vec![]);
    let (m1, m2, m3) = (MediaId::random(), MediaId::random(), MediaId::random());
    let put = |media, user| StateOp::PutMedia {
        media,
        record: record(user, 1),
    };
    s.write(vec![put(m1, u), put(m2, u), put(m3, other)])
        .await
        .unwrap();
    let mut got = s.uploads(u, 10).await.unwrap();
    got.sort_by_key(|m| m.0);
    let mut mine = vec![m1, m2];
    mine.sort_by_key(|m| m.0);
    assert_eq!(got, mine);
    assert_eq!(s.uploads(u, 1).await.unwrap().len(), 1, "the limit holds");
    s.write(vec![StateOp::DeleteMedia { media: m1, at: 1 }])
        .await
        .unwrap();
    assert_eq!(s.uploads(u, 10).await.unwrap(), vec![m2]);
    assert_eq!(s.uploads(other, 10).await.unwrap(), vec![m3]);
}

/// A deleted message no longer lets anyone fetch its media; once no
/// message uses an upload, it counts as never sent (for the sweeper).
pub(super) async fn deleted_messages_let_go_of_their_media<S: MediaStore + JobStore>(s: &S) {
    let (m, user) = (MediaId::random(), fresh_user());
    let rec = MediaRecord {
        uploaded_at: 3_000,
        ..record(user, 1)
    };
    s.write(vec![StateOp::PutMedia {
        media: m,
        record: rec,
    }])
    .await
    .unwrap();
    let (c1, c2) = (
        ConversationId::direct(user, fresh_user()),
        ConversationId::group(GroupId(rand::random::<u64>() >> 2)),
    );
    let used = |conversation, id| StateOp::MediaUsed {
        media: m,
        conversation,
        msg_id: MessageId(id),
    };
    let unused = |conversation, id| StateOp::MediaUnused {
        media: m,
        conversation,
        msg_id: MessageId(id),
    };
    let listed = |v: Vec<MediaId>| v.contains(&m);
    s.write(vec![used(c1, 1), used(c2, 2)]).await.unwrap();
    assert!(listed(s.sent_media(3_001, 100_000).await.unwrap()));
    s.write(vec![unused(c1, 1), unused(c1, 1)]).await.unwrap();
    assert_eq!(s.media_uses(m, 10).await.unwrap(), vec![(c2, MessageId(2))]);
    assert!(
        listed(s.sent_media(3_001, 100_000).await.unwrap()),
        "still used"
    );
    assert!(!listed(s.unsent_media(3_001, 100_000).await.unwrap()));
    s.write(vec![unused(c2, 2)]).await.unwrap();
    assert!(s.media_uses(m, 10).await.unwrap().is_empty());
    assert!(!listed(s.sent_media(3_001, 100_000).await.unwrap()));
    assert!(
        listed(s.unsent_media(3_001, 100_000).await.unwrap()),
        "unreferenced"
    );
    // An unknown upload: nothing is created.
    let ghost = MediaId::random();
    s.write(vec![StateOp::MediaUnused {
        media: ghost,
        conversation: c1,
        msg_id: MessageId(1),
    }])
    .await
    .unwrap();
    assert_eq!(s.media(ghost).await.unwrap(), None);
}
