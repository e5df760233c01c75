//! The key directory's seam: each device's public keys for end-to-end
//! encryption, and its one-time prekeys, each handed out once.
//!
//! Keys are facts no log holds (like accounts): a backend writes them
//! durably at once. One-time prekeys are never restored from anywhere, so
//! none can be handed out twice; a device that finds its count low (or 0
//! after a store was rebuilt) uploads more.

use async_trait::async_trait;
use parley_schemas::ids::{DeviceId, UserId};
use parley_schemas::wire::{KeyBundle, Prekey, SignedPrekey};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A device's long-lived public keys, as stored (JSON in both backends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeys {
    pub identity_key: String,
    pub signed_prekey: SignedPrekey,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysPut {
    /// Stored; this many one-time prekeys are now held for the device.
    Stored(usize),
    /// Nothing changed: the device would hold more than the cap.
    OverCap,
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores `device`'s keys and adds `one_time` prekeys to it (an id it
    /// holds already gets the new key). A new identity key drops the
    /// prekeys made for the old one. All or nothing, within `cap` held.
    async fn put_keys(
        &self,
        user: UserId,
        device: DeviceId,
        keys: DeviceKeys,
        one_time: Vec<Prekey>,
        cap: usize,
    ) -> Result<KeysPut>;

    /// One bundle per device of `user` with keys, each with one one-time
    /// prekey taken from the store (if any is left), atomically: no two
    /// callers anywhere get the same one. With each bundle, how many
    /// one-time prekeys that device has left.
    async fn claim_keys(&self, user: UserId) -> Result<Vec<(KeyBundle, usize)>>;

    /// `device`'s keys and how many one-time prekeys it holds; `None` if
    /// it never uploaded (or its keys were removed).
    async fn device_keys(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<(DeviceKeys, usize)>>;

    /// Removes every key of `device` (it was revoked or signed out).
    async fn remove_keys(&self, user: UserId, device: DeviceId) -> Result<()>;
}
