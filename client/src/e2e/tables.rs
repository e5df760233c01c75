//! The SQLite tables of end-to-end encryption, in the client's file:
//! - `e2e_account`: this device's Olm account (pickled, encrypted with a
//!   random key kept beside it: protecting the file at rest is the
//!   device's disk encryption's job), the next prekey id to publish, and
//!   the signed prekey published last (every upload carries it);
//! - `e2e_devices`: the devices of others (and of this user) whose keys
//!   were fetched: trust on first use, and what safety numbers cover;
//! - `e2e_sessions`: Olm sessions, by the other device's Curve25519 key;
//! - `e2e_outbound_groups`: this device's Megolm session per group, and
//!   the devices given its key;
//! - `e2e_inbound_groups`: Megolm sessions of others, by the sending
//!   device's Curve25519 key and the session id.

use rusqlite::{params, OptionalExtension};

use crate::error::Result;
use crate::store::Store;

pub(crate) struct AccountRow {
    pub pickle: String,
    pub pickle_key: [u8; 32],
    pub next_prekey: u32,
    pub signed_prekey: String,
}

/// A device's published identity: Curve25519 and Ed25519 keys, base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRow {
    pub user: u64,
    pub device: u64,
    pub curve: String,
    pub ed: String,
}

pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS e2e_account (
        id INTEGER PRIMARY KEY CHECK (id = 1), pickle TEXT NOT NULL, pickle_key BLOB NOT NULL,
        next_prekey INTEGER NOT NULL, signed_prekey TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS e2e_devices (
        user INTEGER NOT NULL, device INTEGER NOT NULL, curve TEXT NOT NULL, ed TEXT NOT NULL,
        PRIMARY KEY (user, device));
    CREATE TABLE IF NOT EXISTS e2e_sessions (
        their_key TEXT NOT NULL, session_id TEXT NOT NULL, pickle TEXT NOT NULL,
        used INTEGER NOT NULL, PRIMARY KEY (their_key, session_id));
    CREATE TABLE IF NOT EXISTS e2e_outbound_groups (
        grp INTEGER PRIMARY KEY, pickle TEXT NOT NULL, shared TEXT NOT NULL,
        sent INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS e2e_inbound_groups (
        sender_key TEXT NOT NULL, session_id TEXT NOT NULL, pickle TEXT NOT NULL,
        PRIMARY KEY (sender_key, session_id));";

/// This device's Megolm session for one group.
pub(crate) struct OutboundGroupRow {
    pub pickle: String,
    /// JSON array of the `user:device` names given its key.
    pub shared: String,
    /// Messages it has encrypted.
    pub sent: u32,
}

impl Store {
    pub(crate) fn e2e_account(&self) -> Result<Option<AccountRow>> {
        Ok(self
            .db
            .query_row(
                "SELECT pickle, pickle_key, next_prekey, signed_prekey FROM e2e_account",
                [],
                |r| {
                    let key: Vec<u8> = r.get(1)?;
                    Ok(AccountRow {
                        pickle: r.get(0)?,
                        pickle_key: key.try_into().unwrap_or([0; 32]),
                        next_prekey: r.get::<_, i64>(2)? as u32,
                        signed_prekey: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub(crate) fn set_e2e_account(&self, a: &AccountRow) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_account (id, pickle, pickle_key, next_prekey, signed_prekey)
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![a.pickle, a.pickle_key.to_vec(), a.next_prekey as i64, a.signed_prekey],
        )?;
        Ok(())
    }

    pub(crate) fn e2e_devices(&self, user: u64) -> Result<Vec<DeviceRow>> {
        let mut q = self.db.prepare(
            "SELECT user, device, curve, ed FROM e2e_devices WHERE user = ?1 ORDER BY device",
        )?;
        let rows = q.query_map([user as i64], |r| {
            Ok(DeviceRow {
                user: r.get::<_, i64>(0)? as u64,
                device: r.get::<_, i64>(1)? as u64,
                curve: r.get(2)?,
                ed: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn put_e2e_device(&self, d: &DeviceRow) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_devices (user, device, curve, ed) VALUES (?1, ?2, ?3, ?4)",
            params![d.user as i64, d.device as i64, d.curve, d.ed],
        )?;
        Ok(())
    }

    /// Sessions with the device whose Curve25519 key is `their_key`, the
    /// one used last first.
    pub(crate) fn e2e_sessions(&self, their_key: &str) -> Result<Vec<String>> {
        let mut q = self
            .db
            .prepare("SELECT pickle FROM e2e_sessions WHERE their_key = ?1 ORDER BY used DESC")?;
        let rows = q.query_map([their_key], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn put_e2e_session(&self, their_key: &str, id: &str, pickle: &str) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_sessions (their_key, session_id, pickle, used)
             VALUES (?1, ?2, ?3, (SELECT coalesce(max(used), 0) + 1 FROM e2e_sessions))",
            params![their_key, id, pickle],
        )?;
        Ok(())
    }

    pub(crate) fn e2e_outbound_group(&self, group: u64) -> Result<Option<OutboundGroupRow>> {
        Ok(self
            .db
            .query_row(
                "SELECT pickle, shared, sent FROM e2e_outbound_groups WHERE grp = ?1",
                [group as i64],
                |r| {
                    Ok(OutboundGroupRow {
                        pickle: r.get(0)?,
                        shared: r.get(1)?,
                        sent: r.get::<_, i64>(2)? as u32,
                    })
                },
            )
            .optional()?)
    }

    pub(crate) fn put_e2e_outbound_group(&self, group: u64, row: &OutboundGroupRow) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_outbound_groups (grp, pickle, shared, sent)
             VALUES (?1, ?2, ?3, ?4)",
            params![group as i64, row.pickle, row.shared, row.sent as i64],
        )?;
        Ok(())
    }

    pub(crate) fn e2e_inbound_group(&self, sender_key: &str, id: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row(
                "SELECT pickle FROM e2e_inbound_groups WHERE sender_key = ?1 AND session_id = ?2",
                [sender_key, id],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub(crate) fn put_e2e_inbound_group(
        &self,
        sender_key: &str,
        id: &str,
        pickle: &str,
    ) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_inbound_groups (sender_key, session_id, pickle)
             VALUES (?1, ?2, ?3)",
            params![sender_key, id, pickle],
        )?;
        Ok(())
    }
}
