//! HTTP request and response bodies (and the additions to the spec,
//! marked as such).

use serde::{Deserialize, Serialize};

use super::MsgFrame;
use crate::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: UserId,
}

/// `POST /v1/sessions/idp` (an addition): sign in with an outside
/// identity provider's ID token instead of a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpSession {
    pub id_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<crate::ids::DeviceId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<crate::ids::DeviceId>,
}

/// The answer to a sign-in or a refresh: an access token, and (an
/// addition) the refresh token that gets the next pair once, and how many
/// seconds the access token lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub user_id: UserId,
    pub device_id: crate::ids::DeviceId,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// `POST /v1/sessions/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    pub refresh_token: String,
}

/// `GET /v1/devices`: the caller's devices that ever signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device_id: crate::ids::DeviceId,
    /// The device this request came from.
    pub current: bool,
    /// Signed in now (not signed out or revoked).
    pub signed_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub about: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
    /// The account was deleted: the profile is a placeholder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// `DELETE /v1/users/me`: the password again (none for an account of an
/// identity provider), so a stolen token alone cannot delete an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAccount {
    #[serde(default)]
    pub password: Option<String>,
    /// For an identity provider's account: an ID token of a sign-in of
    /// the last five minutes.
    #[serde(default)]
    pub id_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    pub name: String,
    pub members: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: GroupId,
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    pub user_id: UserId,
}

/// Who may see a user's presence (online and last seen), as WhatsApp
/// offers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    #[default]
    Everyone,
    /// Only the users in the owner's contact list.
    Contacts,
    Nobody,
}

impl Audience {
    /// Whether someone may see the owner's presence; `in_contacts`: they
    /// are in the owner's contact list. (The owner always sees their own.)
    pub fn allows(self, in_contacts: bool) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Contacts => in_contacts,
            Audience::Nobody => false,
        }
    }
}

/// `GET`/`PUT /v1/users/me/privacy` (an addition to the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    pub presence: Audience,
}

/// `POST /v1/contacts` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddContact {
    pub user_id: UserId,
}

/// `GET /v1/contacts` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub user_id: UserId,
    pub display_name: String,
}

/// `PATCH /v1/groups/{id}` (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameGroup {
    pub name: String,
}

/// `GET /v1/groups/{id}`, to its members (an addition to the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group_id: GroupId,
    pub conversation_id: ConversationId,
    pub name: String,
    pub members: Vec<GroupMember>,
}

/// `POST /v1/groups/{id}/invites` (an addition): an invite link that
/// expires after `expires_in_s` and admits at most `max_uses` joins, each
/// if given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateInvite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

/// An invite as admins see it; `token` (what joins, `POST
/// /v1/invites/{token}`) only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub invite_id: String,
    pub group_id: GroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub created_by: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
}

/// `GET /v1/groups/{id}/invites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteList {
    pub invites: Vec<InviteInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub user_id: UserId,
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    pub messages: Vec<MsgFrame>,
    /// As [`super::HistoryPage::more`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// Messages in a scrollback page when the client names no `limit`.
pub const DEFAULT_PAGE: u32 = 50;

/// The answer of `GET /v1/conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsPage {
    pub conversations: Vec<ConversationEntry>,
}

/// One conversation of the caller's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationEntry {
    pub conversation_id: ConversationId,
    pub last_message: MsgFrame,
    /// Messages from others after the caller's last `read` receipt.
    pub unread: u64,
    /// Parley's additions: the caller pinned or archived it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    pub sha256: String,
    pub size: u64,
    pub mime: String,
}

/// Below this many one-time prekeys a device is told to upload more.
pub const LOW_PREKEYS: u32 = 10;
/// One-time prekeys one upload may carry, and one device may hold.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 100;
pub const MAX_PREKEYS_STORED: usize = 500;

/// `PUT /v1/devices/me/keys`: the caller's device's public keys, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysUpload {
    pub identity_key: String,
    pub signed_prekey: SignedPrekey,
    #[serde(default)]
    pub one_time_prekeys: Vec<Prekey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPrekey {
    pub id: u32,
    pub key: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prekey {
    pub id: u32,
    pub key: String,
}

/// `GET /v1/users/{id}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBundles {
    pub devices: Vec<KeyBundle>,
}

/// One device's keys; `one_time_prekey` is absent once they ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBundle {
    pub device_id: DeviceId,
    pub identity_key: String,
    pub signed_prekey: SignedPrekey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_prekey: Option<Prekey>,
}

/// `GET /v1/devices/me/keys` (an addition): what the caller's device has
/// stored, so it knows when to upload more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysStatus {
    pub identity_key: Option<String>,
    pub one_time_prekeys: u32,
}

/// `POST /v1/push/subscriptions` (an addition): where this device's
/// notifications go. `webhook`: a token the deployment's own gateway
/// (to FCM or APNs) knows; `webpush`: a browser's `PushSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushSubscription {
    Webhook {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        platform: Option<String>,
    },
    Webpush {
        endpoint: String,
        keys: WebPushKeys,
    },
}

/// `POST /v1/reports` (an addition): a user, a chat, or a message in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    #[serde(default)]
    pub user_id: Option<UserId>,
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    #[serde(default)]
    pub msg_id: Option<MessageId>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportCreated {
    pub report_id: String,
}

/// `GET /v1/blocks` (an addition): whom the caller blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockList {
    pub blocked: Vec<Contact>,
}

/// `GET /v1/push/vapid` (an addition): the key browsers subscribe with
/// (`applicationServerKey`), base64url of the uncompressed P-256 point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapidKey {
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCreated {
    pub subscription_id: String,
}

/// `GET /v1/push/subscriptions`: the caller's, across their devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub subscription_id: String,
    pub device_id: DeviceId,
    pub kind: String,
}

/// `GET`/`PUT /v1/push/settings` (an addition): whether notifications may
/// show message text (never for `e2e` bodies), and the muted
/// conversations (`PUT`/`DELETE /v1/conversations/{cid}/mute`): id → until
/// (ms; 0 for ever).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySettings {
    #[serde(default)]
    pub previews: bool,
    #[serde(default)]
    pub muted: std::collections::BTreeMap<String, u64>,
    /// Conversations pinned to the top of the list, per user.
    #[serde(default)]
    pub pinned: std::collections::BTreeSet<String>,
    /// Conversations archived (out of the main list), per user.
    #[serde(default)]
    pub archived: std::collections::BTreeSet<String>,
}

impl NotifySettings {
    /// The settings as the state store keeps them (JSON); the defaults if
    /// none or unreadable.
    pub fn from_stored(json: Option<&str>) -> NotifySettings {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// Whether `conversation` is muted at `now`.
    pub fn muted(&self, conversation: &ConversationId, now: u64) -> bool {
        self.muted
            .get(&conversation.to_string())
            .is_some_and(|&until| until == 0 || until > now)
    }
}

/// `PUT /v1/conversations/{cid}/mute`: until when (ms), or for ever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mute {
    #[serde(default)]
    pub until: Option<u64>,
}

/// `GET /v1/users/me/export` (an addition): the caller's data as one
/// archive. `conversations` hold messages oldest first, as scrollback
/// shows them to the caller; `truncated` when the archive's cap cut it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountExport {
    pub exported_at: u64,
    pub profile: Profile,
    pub contacts: Vec<Contact>,
    pub blocked: Vec<Contact>,
    pub privacy: Privacy,
    pub settings: NotifySettings,
    pub groups: Vec<GroupInfo>,
    pub conversations: Vec<ExportedConversation>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedConversation {
    pub conversation_id: ConversationId,
    pub messages: Vec<MsgFrame>,
}
