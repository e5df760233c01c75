//! The state-store contract, one part per narrow trait. Writes go through
//! [`JobStore`] (`write`, `apply`) in every part, since job output is the
//! only way state changes.

mod accounts;
mod conversations;
mod inboxes;
mod jobs;
mod keys;
mod media;
mod notify;
mod presence;

use std::sync::Arc;

use parley_schemas::ids::{ConversationId, MessageId, UserId};

use crate::state::{
    AccountStore, ConversationStore, InboxStore, JobStore, KeyStore, MediaStore, NotifyStore,
    PresenceStore, StateOp, StateStore,
};
use accounts::*;
use conversations::*;
use inboxes::*;
use jobs::*;
use keys::*;
use media::*;
use notify::*;
use presence::*;

/// Users no other run touches, so the suite can share a server.
fn fresh_user() -> UserId {
    UserId(rand::random::<u64>() >> 2)
}

/// Runs the state-store contract against `store`.
pub async fn state_contract<S: StateStore>(store: Arc<S>) {
    job_store_contract(&*store).await;
    account_store_contract(&*store).await;
    erasure_takes_the_inbox(&*store).await;
    presence_store_contract(&*store).await;
    conversation_store_contract(&*store).await;
    inbox_store_contract(&*store).await;
    media_store_contract(&*store).await;
    key_store_contract(&*store).await;
    notify_store_contract(&*store).await;
}

/// [`NotifyStore`]: queued notifications, subscriptions, settings.
pub async fn notify_store_contract<S: NotifyStore + JobStore>(s: &S) {
    notifications_collapse_and_leave_when_sent(s).await;
    subscriptions_and_settings(s).await;
}

/// [`KeyStore`]: the key directory.
pub async fn key_store_contract<S: KeyStore>(s: &S) {
    uploads_and_claims(s).await;
    concurrent_claims_never_share_a_prekey(s).await;
}

/// [`MediaStore`]: uploads, their images, and where they were sent.
pub async fn media_store_contract<S: MediaStore + JobStore>(s: &S) {
    uploads_and_their_images(s).await;
    where_media_was_sent(s).await;
    sent_and_fetched(s).await;
    unsent_uploads_and_unreferenced_blobs(s).await;
    uploads_by_user(s).await;
    deleted_messages_let_go_of_their_media(s).await;
}

/// [`JobStore`]: output and offset together, a compare-and-set.
pub async fn job_store_contract<S: JobStore + InboxStore>(s: &S) {
    apply_is_atomic_and_idempotent(s).await;
}

/// [`AccountStore`]: sign-up, devices, and accounts restored from the log.
pub async fn account_store_contract<S: AccountStore + PresenceStore + JobStore>(s: &S) {
    accounts_and_devices(s).await;
    device_sessions(s).await;
    accounts_restore_from_the_log(s).await;
    account_erasure(s).await;
}

/// [`PresenceStore`]: presence and last seen, contacts, watchers, privacy.
pub async fn presence_store_contract<S: PresenceStore + InboxStore + JobStore>(s: &S) {
    presence_and_seq(s).await;
    contacts_and_privacy(s).await;
    blocks(s).await;
}

/// [`ConversationStore`]: the idempotency map, marks and group state.
pub async fn conversation_store_contract<S: ConversationStore + PresenceStore + JobStore>(s: &S) {
    idempotency(s).await;
    marks(s).await;
    derived_idempotency_and_last_seen(s).await;
    groups(s).await;
    memberships(s).await;
    message_index(s).await;
}

/// [`InboxStore`]: items and runs, reads that cost the backlog, cursors.
pub async fn inbox_store_contract<S: InboxStore + JobStore>(s: &S) {
    cursors(s).await;
    inbox_items(s).await;
    inbox_runs_and_group_posts(s).await;
    inbox_expiry(s).await;
    inbox_redaction(s).await;
}

/// Item `seq` of `user`'s inbox: moves the user's seq to it (never back).
fn inbox_put(user: UserId, seq: u64) -> StateOp {
    StateOp::InboxPut {
        user,
        seq,
        conversation: ConversationId::direct(user, UserId(user.0 + 1)),
        msg_id: MessageId(seq),
        item: bytes::Bytes::from_static(b"item"),
    }
}
