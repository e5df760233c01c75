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
