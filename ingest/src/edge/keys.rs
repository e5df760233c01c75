//! The key directory for end-to-end encryption: a device publishes its
//! public keys (identity key, signed prekey, one-time prekeys); anyone
//! signed in fetches one bundle per device of a user, each with a one-time
//! prekey that no one else will ever get. The server checks only that
//! keys are base64 of sane sizes: clients verify the signed prekey's
//! signature against the identity key they trust (the safety number).

use std::collections::HashSet;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use parley_engines::push::{Push, Pusher};
use parley_engines::state::{DeviceKeys, KeysPut};
use parley_engines::telemetry::emit;
use parley_schemas::ids::UserId;
use parley_schemas::wire::{
    KeyBundles, KeysStatus, KeysUpload, PrekeysLow, ServerFrame, LOW_PREKEYS,
    MAX_PREKEYS_PER_UPLOAD, MAX_PREKEYS_STORED,
};

use super::Core;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Guard;
use crate::internal_events::{KeysClaimed, KeysUploaded, Limit, LimitHit};

/// Decoded size bounds: 32-byte Curve25519/Ed25519 keys, 33 with Signal's
/// type byte, 65 for an uncompressed P-256 point; room for others.
const MAX_KEY_BYTES: usize = 256;
const MAX_SIGNATURE_BYTES: usize = 512;

/// Padding optional: libsodium and vodozemac write base64 without it.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `value` is base64 (standard or URL-safe) of 1..=`max` bytes.
fn check_base64(what: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let decoded = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE.decode(value))
        .map_err(|_| ApiError::bad_request(format!("{what} is not base64")))?;
    if decoded.is_empty() || decoded.len() > max {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1..{max} bytes, got {}",
            decoded.len()
        )));
    }
    Ok(())
}

fn validate(up: &KeysUpload) -> Result<(), ApiError> {
    check_base64("identity_key", &up.identity_key, MAX_KEY_BYTES)?;
    check_base64("signed_prekey.key", &up.signed_prekey.key, MAX_KEY_BYTES)?;
    check_base64(
        "signed_prekey.signature",
        &up.signed_prekey.signature,
        MAX_SIGNATURE_BYTES,
    )?;
    if up.one_time_prekeys.len() > MAX_PREKEYS_PER_UPLOAD {
        return Err(ApiError::too_large(format!(
            "at most {MAX_PREKEYS_PER_UPLOAD} one-time prekeys per upload"
        )));
    }
    let mut ids = HashSet::new();
    for p in &up.one_time_prekeys {
        if !ids.insert(p.id) {
            return Err(ApiError::bad_request(format!(
                "one-time prekey id {} appears twice",
                p.id
            )));
        }
        check_base64("one_time_prekeys[].key", &p.key, MAX_KEY_BYTES)?;
    }
    Ok(())
}

pub struct Keys {
    core: Arc<Core>,
    guard: Arc<Guard>,
    /// Where low-prekey signals go: the owner's devices, on any edge.
    pusher: Arc<dyn Pusher>,
}

impl Keys {
    pub fn new(core: Arc<Core>, guard: Arc<Guard>, pusher: Arc<dyn Pusher>) -> Keys {
        Keys {
            core,
            guard,
            pusher,
        }
    }

    /// `PUT /v1/devices/me/keys`.
    pub async fn upload(&self, caller: Caller, up: KeysUpload) -> Result<(), ApiError> {
        validate(&up)?;
        let prekeys = up.one_time_prekeys.len();
        let keys = DeviceKeys {
            identity_key: up.identity_key,
            signed_prekey: up.signed_prekey,
        };
        let put = self.core.state.put_keys(
            caller.user,
            caller.device,
            keys,
            up.one_time_prekeys,
            MAX_PREKEYS_STORED,
        );
        match put.await? {
            KeysPut::Stored(_) => {
                emit(KeysUploaded { prekeys });
                Ok(())
            }
            KeysPut::OverCap => {
                emit(LimitHit {
                    limit: Limit::Prekeys,
                });
                Err(ApiError::too_large(format!(
                    "a device holds at most {MAX_PREKEYS_STORED} one-time prekeys"
                )))
            }
        }
    }

    /// `GET /v1/devices/me/keys`.
    pub async fn status(&self, caller: Caller) -> Result<KeysStatus, ApiError> {
        let stored = self
            .core
            .state
            .device_keys(caller.user, caller.device)
            .await?;
        Ok(match stored {
            Some((keys, held)) => KeysStatus {
                identity_key: Some(keys.identity_key),
                one_time_prekeys: held as u32,
            },
            None => KeysStatus {
                identity_key: None,
                one_time_prekeys: 0,
            },
        })
    }

    /// `GET /v1/users/{id}/keys`: one bundle per device of `owner`, each
    /// with a one-time prekey taken for good. Devices left with few are
    /// told to upload more.
    pub async fn claim(&self, caller: Caller, owner: UserId) -> Result<KeyBundles, ApiError> {
        self.guard.key_claims.check(&caller.user)?;
        self.core.require_user(owner).await?;
        let claimed = self.core.state.claim_keys(owner).await?;
        let with_prekey = claimed
            .iter()
            .filter(|(b, _)| b.one_time_prekey.is_some())
            .count();
        emit(KeysClaimed {
            with_prekey,
            without: claimed.len() - with_prekey,
        });
        let low: Vec<_> = claimed
            .iter()
            .filter(|(_, left)| *left < LOW_PREKEYS as usize)
            .map(|(b, left)| {
                let frame = ServerFrame::PrekeysLow(PrekeysLow {
                    device_id: b.device_id,
                    remaining: *left as u32,
                });
                (owner, Push::Frame(Arc::new(frame)))
            })
            .collect();
        if !low.is_empty() {
            self.pusher.deliver(low);
        }
        Ok(KeyBundles {
            devices: claimed.into_iter().map(|(b, _)| b).collect(),
        })
    }

    /// What a device that just connected is told: that it runs low, if it
    /// published keys and holds fewer than [`LOW_PREKEYS`].
    pub async fn low_on_connect(&self, caller: Caller) -> Result<Option<PrekeysLow>, ApiError> {
        let stored = self
            .core
            .state
            .device_keys(caller.user, caller.device)
            .await?;
        Ok(stored
            .filter(|(_, held)| *held < LOW_PREKEYS as usize)
            .map(|(_, held)| PrekeysLow {
                device_id: caller.device,
                remaining: held as u32,
            }))
    }

    /// The device was revoked or signed out: its keys leave the directory,
    /// so no one starts a session with a device that will never read it.
    pub async fn remove(&self, caller: Caller) -> Result<(), ApiError> {
        Ok(self
            .core
            .state
            .remove_keys(caller.user, caller.device)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_schemas::wire::{Prekey, SignedPrekey};

    fn upload() -> KeysUpload {
        KeysUpload {
            identity_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
            signed_prekey: SignedPrekey {
                id: 1,
                key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
                signature: "_-8".into(),
            },
            one_time_prekeys: vec![Prekey {
                id: 1,
                key: "AAEC".into(),
            }],
        }
    }

    #[test]
    fn keys_are_base64_of_bounded_size_with_unique_ids() {
        validate(&upload()).expect("padded, unpadded and URL-safe base64");
        let mut up = upload();
        up.identity_key = "not base64!".into();
        assert!(validate(&up).is_err());
        let mut up = upload();
        up.signed_prekey.key = STANDARD.encode([0u8; MAX_KEY_BYTES + 1]);
        assert!(validate(&up).is_err());
        let mut up = upload();
        up.identity_key = String::new();
        assert!(validate(&up).is_err());
        let mut up = upload();
        up.one_time_prekeys.push(up.one_time_prekeys[0].clone());
        assert!(validate(&up).is_err(), "a repeated id");
        let mut up = upload();
        up.one_time_prekeys = (0..=MAX_PREKEYS_PER_UPLOAD as u32)
            .map(|id| Prekey {
                id,
                key: "AAEC".into(),
            })
            .collect();
        assert!(validate(&up).is_err(), "too many at once");
    }
}
