//! Group messages with Megolm: one encryption per message, whatever the
//! group's size.
//!
//! A sender keeps one outbound Megolm session per group. Its key goes to
//! each recipient device (every member's, and the sender's other devices)
//! over that device's Olm session, in the `keys` of the first message the
//! device is to read with it; later messages carry only the ciphertext.
//! A device gets the key at the session's current index, so it reads
//! nothing sent before it was given the key: a device added later never
//! gets old plaintext. The session is replaced when a device that had its
//! key is no longer a recipient (a member left or was removed, a device
//! signed out), and after [`ROTATE_AFTER`] messages.
//!
//! The body: `{v: 1, alg: "parley.megolm.v1", sender_key, sender_device,
//! session_id, ciphertext, keys: {"user:device": olm ciphertext}}`.

use std::collections::BTreeSet;

use parley_schemas::ids::GroupId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vodozemac::megolm::{
    GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle,
    MegolmMessage, SessionConfig, SessionKey,
};

use super::tables::{DeviceRow, OutboundGroupRow};
use super::{crypto, device_key, olm_decrypt, olm_encrypt};
use crate::error::Result;
use crate::store::Store;

/// The `alg` of group e2e bodies.
pub const ALG: &str = "parley.megolm.v1";
/// Messages one outbound session encrypts before it is replaced (so a
/// key that leaks reads a bounded run of messages).
pub const ROTATE_AFTER: u32 = 100;

/// What an Olm ciphertext in `keys` holds.
#[derive(Serialize, Deserialize)]
struct KeyShare {
    group: GroupId,
    session_id: String,
    session_key: String,
}

/// Encrypts `plaintext` for group `group`, whose recipient devices (this
/// one aside) are `devices`, into `body`.
pub(super) fn encrypt(
    store: &Store,
    pickle_key: &[u8; 32],
    group: GroupId,
    devices: &[DeviceRow],
    plaintext: &[u8],
    body: &mut Value,
) -> Result<()> {
    let now: BTreeSet<String> = devices.iter().map(device_key).collect();
    let kept = store.e2e_outbound_group(group.0)?.and_then(|row| {
        let shared: BTreeSet<String> = serde_json::from_str(&row.shared).ok()?;
        let fresh = shared.is_subset(&now) && row.sent < ROTATE_AFTER;
        let pickle = GroupSessionPickle::from_encrypted(&row.pickle, pickle_key).ok()?;
        fresh.then(|| (GroupSession::from_pickle(pickle), shared, row.sent))
    });
    let (mut session, mut shared, sent) = kept.unwrap_or_else(|| {
        (
            GroupSession::new(SessionConfig::version_1()),
            BTreeSet::new(),
            0,
        )
    });
    // The key at the index this message will use: new devices read from
    // here on, nothing before.
    let share = serde_json::to_vec(&KeyShare {
        group,
        session_id: session.session_id(),
        session_key: session.session_key().to_base64(),
    })
    .expect("key shares serialize");
    let mut keys = serde_json::Map::new();
    for d in devices {
        let name = device_key(d);
        if shared.contains(&name) {
            continue;
        }
        if let Some(c) = olm_encrypt(store, pickle_key, d, &share)? {
            keys.insert(name.clone(), c);
            shared.insert(name);
        }
    }
    if shared.is_empty() {
        return Err(crypto("no device to encrypt for has published keys"));
    }
    let ciphertext = session.encrypt(plaintext).to_base64();
    body["alg"] = ALG.into();
    body["session_id"] = session.session_id().into();
    body["ciphertext"] = ciphertext.into();
    if !keys.is_empty() {
        body["keys"] = keys.into();
    }
    store.put_e2e_outbound_group(
        group.0,
        &OutboundGroupRow {
            pickle: session.pickle().encrypt(pickle_key),
            shared: serde_json::to_string(&shared).expect("sets serialize"),
            sent: sent + 1,
        },
    )
}

/// The plaintext of a group e2e body for this device (`mine`: its
/// `user:device`), taking the session's key from `keys` if it is there;
/// `None` if this device was never given the key.
pub(super) fn decrypt(
    store: &Store,
    sender_key: &str,
    mine: &str,
    e2e: &serde_json::Map<String, Value>,
) -> Result<Option<Vec<u8>>> {
    let field = |k: &str| {
        e2e.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| crypto(format!("no {k}")))
    };
    let session_id = field("session_id")?;
    let message = MegolmMessage::from_base64(field("ciphertext")?).map_err(crypto)?;
    let (_, row) = super::load(store)?.ok_or_else(|| crypto("e2e is not enabled"))?;
    let key = row.pickle_key;
    let mut session = match store.e2e_inbound_group(sender_key, session_id)? {
        Some(pickle) => InboundGroupSession::from_pickle(
            InboundGroupSessionPickle::from_encrypted(&pickle, &key).map_err(crypto)?,
        ),
        None => {
            // Once stored, a replayed share is not decrypted again (its
            // Olm message keys are spent).
            let Some(entry) = e2e.get("keys").and_then(|k| k.get(mine)) else {
                return Ok(None);
            };
            let share: KeyShare =
                serde_json::from_slice(&olm_decrypt(store, sender_key, entry)?).map_err(crypto)?;
            if share.session_id != session_id {
                return Err(crypto("a key share for another session"));
            }
            let session_key = SessionKey::from_base64(&share.session_key).map_err(crypto)?;
            let session = InboundGroupSession::new(&session_key, SessionConfig::version_1());
            if session.session_id() != session_id {
                return Err(crypto("a key share whose key is not the session's"));
            }
            // Kept under the key of the device that sent it over Olm:
            // only that device's messages are read with it.
            let pickled = session.pickle().encrypt(&key);
            store.put_e2e_inbound_group(sender_key, session_id, &pickled)?;
            session
        }
    };
    let decrypted = session.decrypt(&message).map_err(crypto)?;
    Ok(Some(decrypted.plaintext))
}
