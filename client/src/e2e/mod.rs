//! End-to-end encryption in the SDK, with vodozemac's Olm (X3DH-style
//! session setup, then a double ratchet), Apache-2.0 like Parley.
//!
//! - [`Client::enable_e2e`] makes this device's Olm account once and
//!   publishes its keys to the key directory: an identity (Curve25519 and
//!   Ed25519 keys, base64 of both, 64 bytes), a signed prekey (Olm's
//!   fallback key, signed with the Ed25519 key) and one-time prekeys,
//!   topped up to [`PREKEYS`]. A `prekeys_low` signal tops them up again.
//! - [`Client::send_encrypted`] encrypts for every device of every
//!   recipient and for this user's other devices: one Olm ciphertext per
//!   device, in one `e2e` body. Devices are fetched from the directory
//!   (claiming a one-time prekey each) when none is known for a user, and
//!   kept (trust on first use).
//! - Received `e2e` messages are decrypted before they are stored; the
//!   store and [`Event::Message`](crate::Event) hold the plaintext body. A
//!   message this device has no ciphertext or session for (one sent before
//!   it existed, say) keeps its `e2e` body: a new device never gets old
//!   plaintext.
//! - [`Client::safety_number`]: 60 digits both sides compute from the
//!   keys they hold; compared out of band, equal numbers mean no one
//!   swapped a key in the directory.
//!
//! - Group messages are encrypted once, with a Megolm session per group
//!   whose key goes to each member device over Olm, inside the first
//!   message it is to read ([`megolm`]).

pub mod megolm;
pub(crate) mod tables;

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use parley_schemas::ids::{DeviceId, GroupId, UserId};
use parley_schemas::wire::{Body, E2e, GroupInfo, KeyBundles, KeysStatus, MsgFrame, Recipient};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vodozemac::olm::{Account, AccountPickle, OlmMessage, Session, SessionConfig, SessionPickle};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

use crate::error::{ClientError, Result};
use crate::store::{Outgoing, Store};
use crate::Client;
use tables::{AccountRow, DeviceRow};

/// One-time prekeys a device keeps published.
pub const PREKEYS: usize = 50;
/// The `alg` of Parley's e2e bodies.
pub const ALG: &str = "parley.olm.v1";

fn crypto(what: impl std::fmt::Display) -> ClientError {
    ClientError::Crypto(what.to_string())
}

fn load(store: &Store) -> Result<Option<(Account, AccountRow)>> {
    let Some(row) = store.e2e_account()? else {
        return Ok(None);
    };
    let pickle = AccountPickle::from_encrypted(&row.pickle, &row.pickle_key).map_err(crypto)?;
    Ok(Some((Account::from_pickle(pickle), row)))
}

fn save(store: &Store, account: &Account, mut row: AccountRow) -> Result<()> {
    row.pickle = account.pickle().encrypt(&row.pickle_key);
    store.set_e2e_account(&row)
}

/// The directory's `identity_key`: base64 of the Curve25519 key then the
/// Ed25519 key.
fn identity_of(account: &Account) -> String {
    let keys = account.identity_keys();
    let mut bytes = keys.curve25519.to_bytes().to_vec();
    bytes.extend_from_slice(keys.ed25519.as_bytes());
    STANDARD_NO_PAD.encode(bytes)
}

fn parse_identity(identity: &str) -> Result<(Curve25519PublicKey, Ed25519PublicKey)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(identity)
        .or_else(|_| STANDARD_NO_PAD.decode(identity))
        .map_err(crypto)?;
    if bytes.len() != 64 {
        return Err(crypto(format!("identity key of {} bytes", bytes.len())));
    }
    let curve = Curve25519PublicKey::from_slice(&bytes[..32]).map_err(crypto)?;
    let ed =
        Ed25519PublicKey::from_slice(bytes[32..].try_into().expect("32 bytes")).map_err(crypto)?;
    Ok((curve, ed))
}

fn session_of(pickle: &str, key: &[u8; 32]) -> Result<Session> {
    Ok(Session::from_pickle(
        SessionPickle::from_encrypted(pickle, key).map_err(crypto)?,
    ))
}

/// How a device is named in an e2e body: `user:device`.
fn device_key(d: &DeviceRow) -> String {
    format!("{}:{}", d.user, d.device)
}

/// `plaintext` encrypted with the Olm session kept for device `d`;
/// `None` if there is none (its keys were never fetched).
fn olm_encrypt(
    store: &Store,
    pickle_key: &[u8; 32],
    d: &DeviceRow,
    plaintext: &[u8],
) -> Result<Option<Value>> {
    let Some(pickle) = store.e2e_sessions(&d.curve)?.into_iter().next() else {
        return Ok(None);
    };
    let mut session = session_of(&pickle, pickle_key)?;
    let (kind, bytes) = session.encrypt(plaintext).map_err(crypto)?.to_parts();
    let pickled = session.pickle().encrypt(pickle_key);
    store.put_e2e_session(&d.curve, &session.session_id(), &pickled)?;
    Ok(Some(
        json!({"type": kind, "body": STANDARD_NO_PAD.encode(bytes)}),
    ))
}

impl Client {
    /// Turns end-to-end encryption on for this device (its Olm account is
    /// made once and kept in the SQLite file) and publishes its keys,
    /// topping one-time prekeys up to [`PREKEYS`]. Call it again at will.
    pub async fn enable_e2e(&self) -> Result<()> {
        let s = self.session()?.ok_or(ClientError::SignedOut)?;
        let status: KeysStatus = serde_json::from_value(
            self.call(reqwest::Method::GET, "/v1/devices/me/keys", None)
                .await?,
        )
        .map_err(|e| crate::proto(&e))?;
        // The private keys are in the file before the public ones are
        // published: a crash between the two loses nothing.
        let upload = {
            let store = self.store();
            let (mut account, mut row) = match load(&store)? {
                Some(loaded) => loaded,
                None => {
                    let mut account = Account::new();
                    account.generate_fallback_key();
                    let (_, key) = account
                        .fallback_key()
                        .into_iter()
                        .next()
                        .expect("a fallback key was just made");
                    let key = key.to_base64();
                    let signature = account.sign(key.as_bytes()).to_base64();
                    account.mark_keys_as_published();
                    let row = AccountRow {
                        pickle: String::new(),
                        pickle_key: rand::random(),
                        next_prekey: 1,
                        signed_prekey: json!({"id": 1, "key": key, "signature": signature})
                            .to_string(),
                    };
                    (account, row)
                }
            };
            let identity = identity_of(&account);
            let held = if status.identity_key.as_deref() == Some(identity.as_str()) {
                status.one_time_prekeys as usize
            } else {
                0
            };
            if held < PREKEYS {
                account.generate_one_time_keys(PREKEYS - held);
            }
            let mut prekeys = Vec::new();
            for key in account.one_time_keys().into_values() {
                prekeys.push(json!({"id": row.next_prekey, "key": key.to_base64()}));
                row.next_prekey = row.next_prekey.wrapping_add(1).max(1);
            }
            let signed: Value = serde_json::from_str(&row.signed_prekey).map_err(crypto)?;
            save(&store, &account, row)?;
            // This device, as others will know it: safety numbers cover it.
            let keys = account.identity_keys();
            store.put_e2e_device(&DeviceRow {
                user: s.user_id.0,
                device: s.device_id.0,
                curve: keys.curve25519.to_base64(),
                ed: keys.ed25519.to_base64(),
            })?;
            json!({"identity_key": identity, "signed_prekey": signed, "one_time_prekeys": prekeys})
        };
        self.call(reqwest::Method::PUT, "/v1/devices/me/keys", Some(upload))
            .await?;
        let store = self.store();
        if let Some((mut account, row)) = load(&store)? {
            account.mark_keys_as_published();
            save(&store, &account, row)?;
        }
        Ok(())
    }

    /// Encrypts `text` for every device of `to` (each member's, in a group)
    /// and this user's other devices, and sends it through the outbox like
    /// [`send_text`](Self::send_text); this device keeps the plaintext.
    /// A 1:1 message is one Olm ciphertext per device; a group message is
    /// one Megolm ciphertext for all (see [`megolm`]).
    pub async fn send_encrypted(&self, to: Recipient, text: &str) -> Result<String> {
        let me = self.session()?.ok_or(ClientError::SignedOut)?;
        let mut users = BTreeSet::from([me.user_id]);
        match to {
            Recipient::User(u) => {
                users.insert(u);
            }
            Recipient::Group(g) => users.extend(self.group_members(g).await?),
        }
        let mut devices = Vec::new();
        for user in users {
            devices.extend(self.known_devices(user).await?);
        }
        devices.retain(|d| (d.user, d.device) != (me.user_id.0, me.device_id.0));
        let plaintext = serde_json::to_vec(&Body::Text(text.to_owned())).expect("bodies serialize");
        let store = self.store();
        let (account, row) = load(&store)?.ok_or_else(|| crypto("call enable_e2e first"))?;
        let mut body = json!({
            "v": 1,
            "sender_key": account.curve25519_key().to_base64(),
            "sender_device": me.device_id,
        });
        match to {
            Recipient::User(_) => {
                let mut ciphertexts = serde_json::Map::new();
                for d in &devices {
                    if let Some(c) = olm_encrypt(&store, &row.pickle_key, d, &plaintext)? {
                        ciphertexts.insert(device_key(d), c);
                    }
                }
                if ciphertexts.is_empty() {
                    return Err(crypto("no device to encrypt for has published keys"));
                }
                body["alg"] = ALG.into();
                body["ciphertexts"] = ciphertexts.into();
            }
            Recipient::Group(g) => {
                megolm::encrypt(&store, &row.pickle_key, g, &devices, &plaintext, &mut body)?;
            }
        }
        let Value::Object(body) = body else {
            unreachable!("an object literal")
        };
        let m = Outgoing::new(to, Body::E2e(E2e(body)));
        store.push_outbox_keeping(&m, Some(&Body::Text(text.to_owned())))?;
        drop(store);
        self.send_frame(&m);
        Ok(m.client_msg_id)
    }

    /// The safety number of this user and `other`: 12 groups of 5 digits,
    /// the same on both sides when each holds the other's real keys.
    pub async fn safety_number(&self, other: UserId) -> Result<String> {
        let me = self.session()?.ok_or(ClientError::SignedOut)?;
        let theirs = self.known_devices(other).await?;
        let store = self.store();
        let mine = store.e2e_devices(me.user_id.0)?;
        let half = |user: UserId, rows: &[DeviceRow]| {
            let mut h = Sha256::new();
            h.update(b"parley-safety-number-v1");
            h.update(user.0.to_be_bytes());
            for r in rows {
                h.update(r.device.to_be_bytes());
                h.update(r.curve.as_bytes());
                h.update(r.ed.as_bytes());
            }
            let digest = h.finalize();
            (0..6)
                .map(|i| {
                    let mut n = [0u8; 8];
                    n[3..].copy_from_slice(&digest[i * 5..i * 5 + 5]);
                    format!("{:05}", u64::from_be_bytes(n) % 100_000)
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (half(me.user_id, &mine), half(other, &theirs));
        let groups = if me.user_id < other { [a, b] } else { [b, a] };
        Ok(groups.concat().join(" "))
    }

    async fn group_members(&self, group: GroupId) -> Result<Vec<UserId>> {
        let v = self
            .call(reqwest::Method::GET, &format!("/v1/groups/{group}"), None)
            .await?;
        let info: GroupInfo = serde_json::from_value(v).map_err(|e| crate::proto(&e))?;
        Ok(info.members.into_iter().map(|m| m.user_id).collect())
    }

    /// `user`'s devices with keys, fetched from the directory (and a
    /// session started with each) when none but this one is known here.
    async fn known_devices(&self, user: UserId) -> Result<Vec<DeviceRow>> {
        let me = self.session()?.ok_or(ClientError::SignedOut)?;
        let known = self.store().e2e_devices(user.0)?;
        // This device is always known to itself: it does not count.
        if known
            .iter()
            .any(|d| d.device != me.device_id.0 || user != me.user_id)
        {
            return Ok(known);
        }
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/users/{user}/keys"),
                None,
            )
            .await?;
        let bundles: KeyBundles = serde_json::from_value(v).map_err(|e| crate::proto(&e))?;
        let store = self.store();
        let (account, row) = load(&store)?.ok_or_else(|| crypto("call enable_e2e first"))?;
        for b in bundles.devices {
            if (user, b.device_id) == (me.user_id, me.device_id) {
                continue;
            }
            let Ok((curve, ed)) = parse_identity(&b.identity_key) else {
                tracing::warn!(%user, device = %b.device_id, "a device's identity key is not Olm's");
                continue;
            };
            let signature = Ed25519Signature::from_base64(&b.signed_prekey.signature);
            let signed = signature.map_err(crypto).and_then(|sig| {
                ed.verify(b.signed_prekey.key.as_bytes(), &sig)
                    .map_err(crypto)
            });
            if let Err(e) = signed {
                tracing::warn!(%user, device = %b.device_id, error = %e, "a signed prekey's signature is bad; device skipped");
                continue;
            }
            let one_time = match &b.one_time_prekey {
                Some(p) => &p.key,
                None => &b.signed_prekey.key,
            };
            let one_time = Curve25519PublicKey::from_base64(one_time).map_err(crypto)?;
            let d = DeviceRow {
                user: user.0,
                device: b.device_id.0,
                curve: curve.to_base64(),
                ed: ed.to_base64(),
            };
            if store.e2e_sessions(&d.curve)?.is_empty() {
                let session = account
                    .create_outbound_session(SessionConfig::version_1(), curve, one_time)
                    .map_err(crypto)?;
                let pickled = session.pickle().encrypt(&row.pickle_key);
                store.put_e2e_session(&d.curve, &session.session_id(), &pickled)?;
            }
            store.put_e2e_device(&d)?;
        }
        store.e2e_devices(user.0)
    }
}

/// The plaintext body of an `e2e` message for this device, decrypted with
/// the session it names (started now, from a pre-key message); `None` if
/// there is nothing for this device or it cannot be decrypted.
pub(crate) fn decrypt(store: &Store, me: (UserId, DeviceId), m: &MsgFrame) -> Option<Body> {
    let Body::E2e(e2e) = &m.body else {
        return None;
    };
    match try_decrypt(store, me, m.from, &e2e.0) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(msg_id = %m.msg_id, error = %e, "an encrypted message could not be decrypted");
            None
        }
    }
}

fn try_decrypt(
    store: &Store,
    me: (UserId, DeviceId),
    from: UserId,
    e2e: &serde_json::Map<String, Value>,
) -> Result<Option<Body>> {
    let sender_key = e2e
        .get("sender_key")
        .and_then(Value::as_str)
        .ok_or_else(|| crypto("no sender_key"))?;
    // A device we know must still have the key we know: a changed key is
    // refused, as the server could otherwise pass its own off as theirs.
    // An unknown device is taken on first use; safety numbers cover it.
    let device = e2e.get("sender_device").and_then(Value::as_str);
    let known = store.e2e_devices(from.0)?;
    let changed = known
        .iter()
        .any(|d| Some(d.device.to_string().as_str()) == device && d.curve != sender_key);
    if changed {
        return Err(crypto(format!("device {device:?} of {from} has a new key")));
    }
    let mine = format!("{}:{}", me.0, me.1);
    let plaintext = match e2e.get("alg").and_then(Value::as_str) {
        Some(ALG) => {
            let Some(entry) = e2e.get("ciphertexts").and_then(|c| c.get(&mine)) else {
                return Ok(None);
            };
            olm_decrypt(store, sender_key, entry)?
        }
        Some(megolm::ALG) => match megolm::decrypt(store, sender_key, &mine, e2e)? {
            Some(p) => p,
            None => return Ok(None),
        },
        other => return Err(crypto(format!("unknown alg {other:?}"))),
    };
    let body: Body = serde_json::from_slice(&plaintext).map_err(crypto)?;
    if matches!(body, Body::E2e(_)) {
        return Err(crypto("an e2e body inside an e2e body"));
    }
    Ok(Some(body))
}

/// An Olm ciphertext (`{type, body}`) from the device whose key is
/// `sender_key`, decrypted with the session it names (started now, from
/// a pre-key message).
fn olm_decrypt(store: &Store, sender_key: &str, entry: &Value) -> Result<Vec<u8>> {
    let kind = entry["type"].as_u64().ok_or_else(|| crypto("no type"))? as usize;
    let bytes = STANDARD_NO_PAD
        .decode(entry["body"].as_str().ok_or_else(|| crypto("no body"))?)
        .map_err(crypto)?;
    let message = OlmMessage::from_parts(kind, &bytes).map_err(crypto)?;
    let (mut account, row) = load(store)?.ok_or_else(|| crypto("e2e is not enabled"))?;
    let key = row.pickle_key;
    for pickle in store.e2e_sessions(sender_key)? {
        let mut session = session_of(&pickle, &key)?;
        let ours = match &message {
            OlmMessage::PreKey(p) => p.session_id() == session.session_id(),
            OlmMessage::Normal(_) => true,
        };
        if !ours {
            continue;
        }
        if let Ok(p) = session.decrypt(&message) {
            let pickled = session.pickle().encrypt(&key);
            store.put_e2e_session(sender_key, &session.session_id(), &pickled)?;
            return Ok(p);
        }
    }
    let OlmMessage::PreKey(pre) = &message else {
        return Err(crypto("no session decrypts it"));
    };
    let curve = Curve25519PublicKey::from_base64(sender_key).map_err(crypto)?;
    let created = account
        .create_inbound_session(SessionConfig::version_1(), curve, pre)
        .map_err(crypto)?;
    let pickled = created.session.pickle().encrypt(&key);
    store.put_e2e_session(sender_key, &created.session.session_id(), &pickled)?;
    // The one-time key is used up: saved without it.
    save(store, &account, row)?;
    Ok(created.plaintext)
}
