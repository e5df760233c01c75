//! The key directory on redb:
//! - `device_keys`: `(user, device)` → [`DeviceKeys`] as JSON
//! - `prekeys`: `(user, device, prekey id)` → the one-time prekey
//!
//! Every call is one durable write transaction (keys are facts): redb's
//! single writer makes a claim atomic.

use parley_schemas::wire::{KeyBundle, Prekey};

use super::*;
use crate::state::{DeviceKeys, KeyStore, KeysPut};

const DEVICE_KEYS: TableDefinition<(u64, u64), &str> = TableDefinition::new("device_keys");
const PREKEYS: TableDefinition<(u64, u64, u32), &str> = TableDefinition::new("prekeys");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(DEVICE_KEYS).map_err(err)?;
    tx.open_table(PREKEYS).map_err(err)?;
    Ok(())
}

fn held(t: &impl ReadableTable<(u64, u64, u32), &'static str>, u: u64, d: u64) -> Result<usize> {
    let mut n = 0;
    for row in t.range((u, d, 0)..=(u, d, u32::MAX)).map_err(err)? {
        row.map_err(err)?;
        n += 1;
    }
    Ok(n)
}

fn parse(json: &str) -> Result<DeviceKeys> {
    serde_json::from_str(json).map_err(err)
}

#[async_trait]
impl KeyStore for RedbState {
    async fn put_keys(
        &self,
        user: UserId,
        device: DeviceId,
        keys: DeviceKeys,
        one_time: Vec<Prekey>,
        cap: usize,
    ) -> Result<KeysPut> {
        let (u, d) = (user.0, device.0);
        let json = serde_json::to_string(&keys).map_err(err)?;
        self.write_kind(Kind::Fact, move |tx| {
            let mut stored = tx.open_table(DEVICE_KEYS).map_err(err)?;
            let mut prekeys = tx.open_table(PREKEYS).map_err(err)?;
            let old = stored
                .get((u, d))
                .map_err(err)?
                .map(|v| v.value().to_owned());
            let renewed = match old {
                Some(old) => parse(&old)?.identity_key != keys.identity_key,
                None => false,
            };
            let mut count = if renewed { 0 } else { held(&prekeys, u, d)? };
            for p in &one_time {
                if renewed || prekeys.get((u, d, p.id)).map_err(err)?.is_none() {
                    count += 1;
                }
            }
            if count > cap {
                return Ok(KeysPut::OverCap);
            }
            if renewed {
                prekeys
                    .retain_in((u, d, 0)..=(u, d, u32::MAX), |_, _| false)
                    .map_err(err)?;
            }
            stored.insert((u, d), json.as_str()).map_err(err)?;
            for p in &one_time {
                prekeys.insert((u, d, p.id), p.key.as_str()).map_err(err)?;
            }
            Ok(KeysPut::Stored(count))
        })
        .await
    }

    async fn claim_keys(&self, user: UserId) -> Result<Vec<(KeyBundle, usize)>> {
        let u = user.0;
        self.write_kind(Kind::Fact, move |tx| {
            let stored = tx.open_table(DEVICE_KEYS).map_err(err)?;
            let mut prekeys = tx.open_table(PREKEYS).map_err(err)?;
            let mut out = Vec::new();
            for row in stored.range((u, 0)..=(u, u64::MAX)).map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let d = k.value().1;
                let keys = parse(v.value())?;
                let first = prekeys
                    .range((u, d, 0)..=(u, d, u32::MAX))
                    .map_err(err)?
                    .next()
                    .transpose()
                    .map_err(err)?
                    .map(|(k, v)| Prekey {
                        id: k.value().2,
                        key: v.value().to_owned(),
                    });
                if let Some(p) = &first {
                    prekeys.remove((u, d, p.id)).map_err(err)?;
                }
                let left = held(&prekeys, u, d)?;
                out.push((
                    KeyBundle {
                        device_id: DeviceId(d),
                        identity_key: keys.identity_key,
                        signed_prekey: keys.signed_prekey,
                        one_time_prekey: first,
                    },
                    left,
                ));
            }
            Ok(out)
        })
        .await
    }

    async fn device_keys(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<(DeviceKeys, usize)>> {
        let (u, d) = (user.0, device.0);
        self.read(move |tx| {
            let stored = tx.open_table(DEVICE_KEYS).map_err(err)?;
            let Some(v) = stored.get((u, d)).map_err(err)? else {
                return Ok(None);
            };
            let prekeys = tx.open_table(PREKEYS).map_err(err)?;
            Ok(Some((parse(v.value())?, held(&prekeys, u, d)?)))
        })
        .await
    }

    async fn remove_keys(&self, user: UserId, device: DeviceId) -> Result<()> {
        let (u, d) = (user.0, device.0);
        self.write_kind(Kind::Fact, move |tx| {
            tx.open_table(DEVICE_KEYS)
                .map_err(err)?
                .remove((u, d))
                .map_err(err)?;
            tx.open_table(PREKEYS)
                .map_err(err)?
                .retain_in((u, d, 0)..=(u, d, u32::MAX), |_, _| false)
                .map_err(err)?;
            Ok(())
        })
        .await
    }
}
