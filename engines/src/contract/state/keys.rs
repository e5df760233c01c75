//! [`KeyStore`]: device keys, and one-time prekeys handed out once.

use std::collections::HashSet;

use parley_schemas::ids::DeviceId;
use parley_schemas::wire::{Prekey, SignedPrekey};

use super::fresh_user;
use crate::state::{DeviceKeys, KeyStore, KeysPut};

fn keys(identity: &str) -> DeviceKeys {
    DeviceKeys {
        identity_key: identity.into(),
        signed_prekey: SignedPrekey {
            id: 1,
            key: format!("spk-{identity}"),
            signature: "sig".into(),
        },
    }
}

fn prekeys(ids: std::ops::Range<u32>) -> Vec<Prekey> {
    ids.map(|id| Prekey {
        id,
        key: format!("otk{id}"),
    })
    .collect()
}

pub(super) async fn uploads_and_claims<S: KeyStore>(s: &S) {
    let (user, d1, d2) = (fresh_user(), DeviceId(1), DeviceId(2));
    assert_eq!(s.device_keys(user, d1).await.unwrap(), None);
    assert!(s.claim_keys(user).await.unwrap().is_empty());
    let put = s.put_keys(user, d1, keys("A"), prekeys(10..13), 100);
    assert_eq!(put.await.unwrap(), KeysPut::Stored(3));
    let put = s.put_keys(user, d2, keys("B"), prekeys(1..2), 100);
    assert_eq!(put.await.unwrap(), KeysPut::Stored(1));
    assert_eq!(s.device_keys(user, d1).await.unwrap(), Some((keys("A"), 3)));

    // One prekey per device per claim, lowest id first, then none.
    let first = s.claim_keys(user).await.unwrap();
    let got: Vec<_> = first
        .iter()
        .map(|(b, left)| (b.device_id, b.one_time_prekey.as_ref().map(|p| p.id), *left))
        .collect();
    assert_eq!(got, vec![(d1, Some(10), 2), (d2, Some(1), 0)]);
    assert_eq!(first[0].0.identity_key, "A");
    assert_eq!(first[0].0.signed_prekey, keys("A").signed_prekey);
    assert_eq!(first[0].0.one_time_prekey.as_ref().unwrap().key, "otk10");
    let second = s.claim_keys(user).await.unwrap();
    assert_eq!(second[1].0.one_time_prekey, None, "device 2 ran out");
    assert_eq!(second[1].0.identity_key, "B", "its bundle is still given");

    // A re-upload under the same identity adds; a known id is replaced.
    let put = s.put_keys(user, d1, keys("A"), prekeys(12..15), 100);
    assert_eq!(
        put.await.unwrap(),
        KeysPut::Stored(3),
        "12 was held: 12, 13, 14"
    );
    // Over the cap: nothing changes.
    let put = s.put_keys(user, d1, keys("A"), prekeys(20..30), 5);
    assert_eq!(put.await.unwrap(), KeysPut::OverCap);
    assert_eq!(s.device_keys(user, d1).await.unwrap().unwrap().1, 3);
    // A new identity drops the prekeys made for the old one.
    let put = s.put_keys(user, d1, keys("A2"), prekeys(50..51), 5);
    assert_eq!(put.await.unwrap(), KeysPut::Stored(1));
    let claimed = s.claim_keys(user).await.unwrap();
    assert_eq!(claimed[0].0.identity_key, "A2");
    assert_eq!(claimed[0].0.one_time_prekey.as_ref().unwrap().id, 50);

    // A removed device is gone from the directory, prekeys and all.
    s.remove_keys(user, d1).await.unwrap();
    assert_eq!(s.device_keys(user, d1).await.unwrap(), None);
    let left: Vec<_> = s.claim_keys(user).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0.device_id, d2);
    // Other users' directories are their own.
    assert!(s.claim_keys(fresh_user()).await.unwrap().is_empty());
}

pub(super) async fn concurrent_claims_never_share_a_prekey<S: KeyStore>(s: &S) {
    let (user, device) = (fresh_user(), DeviceId(7));
    let put = s.put_keys(user, device, keys("C"), prekeys(0..20), 100);
    assert_eq!(put.await.unwrap(), KeysPut::Stored(20));
    let claims = (0..30).map(|_| s.claim_keys(user));
    let mut handed = Vec::new();
    for bundles in futures::future::join_all(claims).await {
        let bundles = bundles.unwrap();
        assert_eq!(bundles.len(), 1);
        handed.extend(bundles[0].0.one_time_prekey.as_ref().map(|p| p.id));
    }
    let unique: HashSet<_> = handed.iter().collect();
    assert_eq!(handed.len(), 20, "every prekey handed out: {handed:?}");
    assert_eq!(unique.len(), 20, "none twice: {handed:?}");
}
