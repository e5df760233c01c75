//! [`AccountStore`](crate::state::AccountStore): sign-up, devices, and
//! accounts restored from the log.

use parley_schemas::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use parley_schemas::wire::{Audience, ReceiptStatus};

use crate::contract::unique;
use crate::state::{
    Account, AccountStore, DeviceSession, JobStore, Marks, PresenceStore, StateOp, StateStore,
    ERASED, ERASED_NAME,
};

pub(super) async fn accounts_and_devices<S: AccountStore>(s: &S) {
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = s
        .create_account(&alice, "$argon2id$x", "Alice")
        .await
        .unwrap()
        .unwrap();
    let b = s
        .create_account(&bob, "$argon2id$y", "")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        s.create_account(&alice, "other", "Eve").await.unwrap(),
        None,
        "name taken"
    );
    let acc = s.account_by_name(&alice).await.unwrap().unwrap();
    assert_eq!(
        (
            acc.user_id,
            acc.username.as_str(),
            acc.password_hash.as_str(),
            acc.display_name.as_str()
        ),
        (a, alice.as_str(), "$argon2id$x", "Alice")
    );
    assert_eq!(s.account(b).await.unwrap().unwrap().username, bob);
    assert_eq!(s.account_by_name(&unique("nobody")).await.unwrap(), None);
    assert_eq!(s.account(UserId(u64::MAX - 1)).await.unwrap(), None);
    let d1 = s.new_device(a).await.unwrap();
    let d2 = s.new_device(a).await.unwrap();
    assert_ne!(d1, d2, "each device id is new");
    assert_eq!(s.devices_issued(a).await.unwrap(), 2);
    assert_eq!(s.devices_issued(b).await.unwrap(), 0);
}

/// Device sessions: a compare-and-set per device, listed per user, and
/// restored from the log by taking the greatest.
pub(super) async fn device_sessions<S: AccountStore + JobStore>(s: &S) {
    let user = s
        .create_account(&unique("sessions"), "$argon2id$s", "S")
        .await
        .unwrap()
        .unwrap();
    let (d1, d2) = (
        s.new_device(user).await.unwrap(),
        s.new_device(user).await.unwrap(),
    );
    let first = DeviceSession {
        session: 1,
        refresh: 0,
        revoked: false,
    };
    assert_eq!(s.device_session(user, d1).await.unwrap(), None);
    assert!(s.swap_device_session(user, d1, None, first).await.unwrap());
    assert!(
        !s.swap_device_session(user, d1, None, first).await.unwrap(),
        "no longer empty"
    );
    let refreshed = DeviceSession {
        refresh: 1,
        ..first
    };
    assert!(
        !s.swap_device_session(user, d1, Some(refreshed), refreshed)
            .await
            .unwrap(),
        "a stale expectation writes nothing"
    );
    assert!(s
        .swap_device_session(user, d1, Some(first), refreshed)
        .await
        .unwrap());
    assert_eq!(s.device_session(user, d1).await.unwrap(), Some(refreshed));
    let revoked = DeviceSession {
        revoked: true,
        ..refreshed
    };
    assert!(s
        .swap_device_session(user, d2, None, revoked)
        .await
        .unwrap());
    assert_eq!(
        s.device_sessions(user).await.unwrap(),
        vec![(d1, refreshed), (d2, revoked)]
    );
    // The log's copies merge by the greatest, in any order; a device id
    // restored this way stays issued.
    let restore = |device, session| StateOp::RestoreDeviceSession {
        user,
        device,
        session,
    };
    let d9 = DeviceId(9);
    s.write(vec![
        restore(d1, first),
        restore(d9, revoked),
        restore(d9, first),
    ])
    .await
    .unwrap();
    assert_eq!(s.device_session(user, d1).await.unwrap(), Some(refreshed));
    assert_eq!(s.device_session(user, d9).await.unwrap(), Some(revoked));
    assert_eq!(s.devices_issued(user).await.unwrap(), 9);
}

/// What the accounts job writes when it replays the log into an empty
/// (wiped) store: the account comes back, and new ids stay above it.
pub(super) async fn accounts_restore_from_the_log<S: AccountStore + JobStore>(s: &S) {
    let first = s
        .create_account(&unique("first"), "$argon2id$f", "F")
        .await
        .unwrap()
        .unwrap();
    let user = UserId(first.0 + 10);
    let name = unique("restored");
    let restore = |username: &str, display: &str| StateOp::RestoreAccount {
        user,
        username: username.to_owned(),
        password_hash: "$argon2id$r".into(),
        display_name: display.into(),
    };
    s.write(vec![restore(&name, "Restored")]).await.unwrap();
    let want = Account {
        user_id: user,
        username: name.clone(),
        password_hash: "$argon2id$r".into(),
        display_name: "Restored".into(),
        about: String::new(),
        avatar_media_id: None,
    };
    assert_eq!(s.account(user).await.unwrap(), Some(want.clone()));
    assert_eq!(s.account_by_name(&name).await.unwrap(), Some(want.clone()));
    // A replay again changes nothing, not even with other values.
    s.write(vec![restore(&unique("other"), "Other")])
        .await
        .unwrap();
    assert_eq!(s.account(user).await.unwrap(), Some(want));
    let next = s
        .create_account(&unique("next"), "$argon2id$n", "N")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, UserId(user.0 + 1), "ids continue above restored ones");

    s.write(vec![StateOp::RestoreDevice {
        user,
        device: DeviceId(7),
    }])
    .await
    .unwrap();
    s.write(vec![StateOp::RestoreDevice {
        user,
        device: DeviceId(3),
    }])
    .await
    .unwrap();
    assert_eq!(s.new_device(user).await.unwrap(), DeviceId(8));

    // Profile changes apply in order; `None` keeps a field, an empty
    // avatar removes it; the user is found by name with the new profile.
    let set =
        |display: Option<&str>, about: Option<&str>, avatar: Option<&str>| StateOp::SetProfile {
            user,
            display_name: display.map(str::to_owned),
            about: about.map(str::to_owned),
            avatar_media_id: avatar.map(str::to_owned),
        };
    s.write(vec![
        set(Some("New name"), Some("hello there"), Some("m-1")),
        set(None, Some("busy"), None),
    ])
    .await
    .unwrap();
    let a = s.account(user).await.unwrap().unwrap();
    assert_eq!(
        (
            a.display_name.as_str(),
            a.about.as_str(),
            a.avatar_media_id.as_deref()
        ),
        ("New name", "busy", Some("m-1"))
    );
    assert_eq!(a.username, name, "the name and hash stay");
    assert_eq!(a.password_hash, "$argon2id$r");
    s.write(vec![set(None, None, Some(""))]).await.unwrap();
    let a = s.account_by_name(&name).await.unwrap().unwrap();
    assert_eq!(
        (a.display_name.as_str(), a.about.as_str()),
        ("New name", "busy")
    );
    assert_eq!(a.avatar_media_id, None, "an empty avatar removes it");
    // A change for a user the store does not know creates nothing.
    let ghost = UserId(user.0 + 1_000_000);
    s.write(vec![StateOp::SetProfile {
        user: ghost,
        display_name: Some("Ghost".into()),
        about: None,
        avatar_media_id: None,
    }])
    .await
    .unwrap();
    assert_eq!(s.account(ghost).await.unwrap(), None);
}

/// A deleted account: no password matches, the profile is a placeholder,
/// contacts (both ways), blocks, privacy and presence are gone; the name
/// stays taken, and others' lists of it are theirs to keep.
pub(super) async fn account_erasure<S: AccountStore + PresenceStore + JobStore>(s: &S) {
    let name = unique("erased");
    let user = s
        .create_account(&name, "$argon2id$e", "Erin")
        .await
        .unwrap()
        .unwrap();
    let (friend, fan) = (super::fresh_user(), super::fresh_user());
    let contact = |user, contact| StateOp::SetContact {
        user,
        contact,
        added: true,
    };
    s.write(vec![
        StateOp::SetProfile {
            user,
            display_name: None,
            about: Some("about me".into()),
            avatar_media_id: Some("m-9".into()),
        },
        contact(user, friend),
        contact(fan, user),
        StateOp::SetBlock {
            user,
            other: friend,
            on: true,
        },
        StateOp::SetPrivacy {
            user,
            presence: Audience::Nobody,
        },
        StateOp::SetPresence {
            user,
            online: true,
            last_seen: Some(5_000),
            at: 5_000,
        },
    ])
    .await
    .unwrap();
    assert!(!s.account(user).await.unwrap().unwrap().erased());

    // Twice: a replay of the log erases again, to the same end.
    for _ in 0..2 {
        s.write(vec![StateOp::EraseAccount { user }]).await.unwrap();
        let a = s.account(user).await.unwrap().unwrap();
        assert!(a.erased());
        assert_eq!(a.password_hash, ERASED);
        assert_eq!(
            (
                a.username.as_str(),
                a.display_name.as_str(),
                a.about.as_str()
            ),
            (name.as_str(), ERASED_NAME, "")
        );
        assert_eq!(a.avatar_media_id, None);
        assert_eq!(
            s.account_by_name(&name).await.unwrap().unwrap().user_id,
            user
        );
        assert_eq!(s.contacts(user).await.unwrap(), vec![]);
        assert_eq!(
            s.watchers(friend).await.unwrap(),
            vec![],
            "the mirror goes too"
        );
        assert_eq!(
            s.watchers(user).await.unwrap(),
            vec![fan],
            "others' lists stay"
        );
        assert_eq!(s.blocked(user).await.unwrap(), vec![]);
        assert_eq!(s.privacy(user).await.unwrap(), Audience::Everyone);
        assert!(s
            .presence(user)
            .await
            .unwrap()
            .is_none_or(|p| p.last_seen == 0 && !p.online));
    }
    assert_eq!(
        s.create_account(&name, "$argon2id$x", "Mallory")
            .await
            .unwrap(),
        None,
        "the name stays taken"
    );
    // An unknown user: nothing is created, but what was set for them
    // goes (a store rebuilt from a compacted log meets the deletion
    // before the tombstone that restores the account).
    let ghost = UserId(user.0 + 2_000_000);
    s.write(vec![contact(ghost, friend)]).await.unwrap();
    s.write(vec![StateOp::EraseAccount { user: ghost }])
        .await
        .unwrap();
    assert_eq!(s.account(ghost).await.unwrap(), None);
    assert_eq!(s.contacts(ghost).await.unwrap(), vec![]);
}

/// A deleted account's inbox, device cursors, read marks and chat
/// settings go too; items and confirmations that come after the deletion
/// (sent, or confirmed, before every edge noticed) are not kept.
pub(super) async fn erasure_takes_the_inbox<S: StateStore>(s: &S) {
    let user = s
        .create_account(&unique("inboxed"), "$argon2id$i", "Ines")
        .await
        .unwrap()
        .unwrap();
    let (peer, group) = (super::fresh_user(), GroupId(super::fresh_user().0));
    let direct = ConversationId::direct(user, peer);
    let item = |seq: u64| StateOp::InboxPut {
        user,
        seq,
        conversation: direct,
        msg_id: MessageId(100 + seq),
        item: bytes::Bytes::from_static(b"item"),
    };
    let run = StateOp::InboxRun {
        user,
        seq: 3,
        count: 2,
        group,
        first: MessageId(200),
        last: MessageId(201),
    };
    let read = |conversation, who| StateOp::AdvanceMark {
        conversation,
        user: who,
        status: ReceiptStatus::Read,
        up_to: MessageId(201),
    };
    let in_group = ConversationId::group(group);
    s.write(vec![
        item(1),
        item(2),
        run,
        read(direct, user),
        read(in_group, user),
        read(in_group, peer),
    ])
    .await
    .unwrap();
    s.advance_cursor(user, DeviceId(1), 2).await.unwrap();
    s.put_notify_settings(user, r#"{"muted":{"g1":0}}"#)
        .await
        .unwrap();
    assert_eq!(s.inbox_range(user, 0, 10).await.unwrap().len(), 3);

    for _ in 0..2 {
        s.write(vec![StateOp::EraseAccount { user }]).await.unwrap();
        assert!(s.inbox_range(user, 0, 10).await.unwrap().is_empty());
        assert_eq!(s.inbox_first(user).await.unwrap(), None);
        assert_eq!(s.cursor(user, DeviceId(1)).await.unwrap(), None);
        assert_eq!(s.inbox_head(user, direct).await.unwrap(), None);
        assert_eq!(s.inbox_head(user, in_group).await.unwrap(), None);
        for c in [direct, in_group] {
            assert_eq!(s.marks(c, user).await.unwrap(), Marks::default(), "{c}");
        }
        assert_eq!(s.notify_settings(user).await.unwrap(), None);
    }
    assert_eq!(
        s.marks(in_group, peer).await.unwrap().read,
        Some(MessageId(201)),
        "others' marks stay"
    );
    assert!(
        s.inbox_seq(user).await.unwrap() >= 4,
        "the seq stays, never handed out twice"
    );

    // Late: an item sent before the edges noticed, a socket's last
    // confirmation.
    s.write(vec![item(6)]).await.unwrap();
    s.advance_cursor(user, DeviceId(1), 6).await.unwrap();
    assert!(s.inbox_range(user, 0, 10).await.unwrap().is_empty());
    assert_eq!(s.cursor(user, DeviceId(1)).await.unwrap(), None);
}
