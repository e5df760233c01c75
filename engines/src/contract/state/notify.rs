//! [`NotifyStore`]: queued notifications collapse per conversation and
//! leave the queue when sent; subscriptions and settings.

use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId};

use super::fresh_user;
use crate::state::{JobStore, NotifyItem, NotifyStore, StateOp, StoredSubscription};

fn queue(partition: u32, item: NotifyItem) -> StateOp {
    StateOp::QueueNotification { partition, item }
}

pub(super) async fn notifications_collapse_and_leave_when_sent<S: NotifyStore + JobStore>(s: &S) {
    let (user, from) = (fresh_user(), fresh_user());
    let part = (user.0 % 1000) as u32 + 7;
    let c = ConversationId::direct(user, from);
    let d = ConversationId::group(GroupId(user.0));
    let item = |conversation, msg_id, at| NotifyItem {
        user,
        conversation,
        msg_id: MessageId(msg_id),
        from,
        at,
        preview: Some(format!("text {msg_id}")),
    };
    assert!(s
        .due_notifications(part, u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    s.write(vec![
        queue(part, item(c, 10, 1000)),
        queue(part, item(c, 12, 1001)),
        queue(part, item(c, 11, 1002)),
    ])
    .await
    .unwrap();
    s.write(vec![queue(part, item(d, 20, 1500))]).await.unwrap();

    let due = s.due_notifications(part, 1001, 10).await.unwrap();
    assert_eq!(due.len(), 1, "only the one due before 1001: {due:?}");
    let c_pending = due[0].clone();
    assert_eq!(
        (
            c_pending.conversation,
            c_pending.count,
            c_pending.msg_id,
            c_pending.first_at
        ),
        (c, 3, MessageId(12), 1000),
        "three items, one notification, the newest's id"
    );
    assert_eq!(c_pending.preview.as_deref(), Some("text 12"));
    assert_eq!(c_pending.from, from);
    let both = s.due_notifications(part, 2000, 10).await.unwrap();
    let order: Vec<_> = both.iter().map(|p| p.conversation).collect();
    assert_eq!(order, vec![c, d], "oldest first");
    assert!(s
        .due_notifications(part + 1, 2000, 10)
        .await
        .unwrap()
        .is_empty());

    // Sent: gone.
    s.notification_sent(part, &c_pending, 3000).await.unwrap();
    let left = s.due_notifications(part, 5000, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    let d_pending = left[0].clone();
    assert_eq!(d_pending.conversation, d);
    // A newer item came while it was being sent: it stays, due anew.
    s.write(vec![queue(part, item(d, 21, 1600))]).await.unwrap();
    s.notification_sent(part, &d_pending, 4000).await.unwrap();
    assert!(s
        .due_notifications(part, 4000, 10)
        .await
        .unwrap()
        .is_empty());
    let again = s.due_notifications(part, 4001, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].msg_id, again[0].count), (MessageId(21), 1));
    s.notification_sent(part, &again[0], 5000).await.unwrap();
    assert!(s
        .due_notifications(part, u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    // A sent notice for a row already gone changes nothing.
    s.notification_sent(part, &again[0], 6000).await.unwrap();
}

pub(super) async fn subscriptions_and_settings<S: NotifyStore>(s: &S) {
    let user = fresh_user();
    let sub = |id: &str, device| StoredSubscription {
        id: id.into(),
        device: DeviceId(device),
        json: format!("{{\"kind\":\"webhook\",\"token\":\"{id}|x\"}}"),
    };
    assert!(s.subscriptions(user).await.unwrap().is_empty());
    for (id, device) in [("b", 1), ("a", 1), ("c", 2)] {
        s.put_subscription(user, sub(id, device)).await.unwrap();
    }
    assert_eq!(
        s.subscriptions(user).await.unwrap(),
        vec![sub("a", 1), sub("b", 1), sub("c", 2)]
    );
    assert!(s.subscriptions(fresh_user()).await.unwrap().is_empty());
    assert!(s.remove_subscription(user, "b").await.unwrap());
    assert!(!s.remove_subscription(user, "b").await.unwrap());
    s.remove_device_subscriptions(user, DeviceId(1))
        .await
        .unwrap();
    assert_eq!(s.subscriptions(user).await.unwrap(), vec![sub("c", 2)]);

    assert_eq!(s.notify_settings(user).await.unwrap(), None);
    s.put_notify_settings(user, "{\"previews\":true}")
        .await
        .unwrap();
    s.put_notify_settings(user, "{\"previews\":false}")
        .await
        .unwrap();
    assert_eq!(
        s.notify_settings(user).await.unwrap().as_deref(),
        Some("{\"previews\":false}")
    );
}
