//! The accounts job, on `accounts` (by user): restores accounts and device
//! counters a lost state store lacks, and derives profiles, contact lists,
//! privacy settings and uploads, so the whole store can be rebuilt from
//! the log.

use async_trait::async_trait;
use parley_engines::job::{events, Processor};
use parley_engines::{Record, Result, StateOp};
use parley_schemas::event::Event;
use parley_schemas::topics;

pub const JOB: &str = parley_schemas::jobs::ACCOUNTS;

/// Replays accounts and device ids from the log into the state store, and
/// derives profiles, contact lists and privacy settings from their changes
/// (those are written nowhere else).
/// The edge writes both to the store first (a username must be unique the
/// moment it is taken) and then to the log, so normally this restores
/// nothing; after the store is lost it brings every account back.
#[derive(Default)]
pub struct AccountsJob;

#[async_trait]
impl Processor for AccountsJob {
    async fn process(&mut self, partition: u32, records: &[Record]) -> Result<Vec<StateOp>> {
        let mut ops = Vec::new();
        for (offset, event) in events(topics::ACCOUNTS, partition, records)? {
            match event {
                Event::AccountCreated(a) => ops.push(StateOp::RestoreAccount {
                    user: a.user,
                    username: a.username,
                    password_hash: a.password_hash,
                    display_name: a.display_name,
                }),
                Event::DeviceAdded(d) => ops.push(StateOp::RestoreDevice {
                    user: d.user,
                    device: d.device,
                }),
                Event::DeviceSession(d) => ops.push(StateOp::RestoreDeviceSession {
                    user: d.user,
                    device: d.device,
                    session: d.session,
                }),
                Event::ProfileUpdated(u) => ops.push(StateOp::SetProfile {
                    user: u.user,
                    display_name: u.display_name,
                    about: u.about,
                    avatar_media_id: u.avatar_media_id,
                }),
                Event::BlockChanged(b) => ops.push(StateOp::SetBlock {
                    user: b.user,
                    other: b.other,
                    on: b.on,
                }),
                Event::ContactChanged(c) => ops.push(StateOp::SetContact {
                    user: c.user,
                    contact: c.contact,
                    added: c.added,
                }),
                Event::PrivacySet(p) => ops.push(StateOp::SetPrivacy {
                    user: p.user,
                    presence: p.presence,
                }),
                Event::MediaAdded(m) => ops.push(StateOp::put_media(&m)),
                Event::AccountDeleted(d) => ops.push(StateOp::EraseAccount { user: d.user }),
                Event::MediaDeleted(m) => ops.push(StateOp::DeleteMedia {
                    media: m.media,
                    at: m.ts,
                }),
                other => tracing::warn!(
                    partition,
                    offset,
                    kind = other.kind(),
                    "unexpected event on accounts"
                ),
            }
        }
        Ok(ops)
    }
}
