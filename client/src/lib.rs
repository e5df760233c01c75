//! A Rust client for Parley (`shared/protocol.md`), for apps, bots and
//! tools: sign-in with renewed tokens, one WebSocket kept open (reconnect
//! with backoff and jitter), and a SQLite file that holds what a phone
//! would: the outbox, the messages received and the last `seq` stored.
//!
//! The guarantees it adds to the server's:
//! - a message handed to [`Client::send_text`] is in the outbox before
//!   the call returns, and is sent (again, with the same `client_msg_id`)
//!   on every connect until it is acked: through a killed process or a
//!   network gone for days, it arrives once;
//! - a received message is stored before it is confirmed (`received`),
//!   and a reconnect syncs from the last one stored, so none is lost and
//!   a replayed one is dropped by its `msg_id`.
//!
//! Layout:
//! - this file: [`Client`] (sign-in, send, read, groups, media, history;
//!   edits, deletions, reactions, replies and forwards, each through the
//!   outbox) and [`Event`];
//! - `conn`: the connection loop (connect, sync, flush the outbox,
//!   handle frames, heartbeat, reconnect);
//! - [`e2e`]: end-to-end encryption (Olm and Megolm, through vodozemac):
//!   keys published, 1:1 messages encrypted per device and group messages
//!   once ([`e2e::megolm`]), decrypted before they are stored, safety
//!   numbers;
//! - [`store`]: the SQLite file; [`error`]: [`ClientError`].
//! - `src/bin/chat.rs`: `parley-chat`, a terminal chat on this crate
//!   (the server binary does not link the SDK).

mod conn;
pub mod e2e;
pub mod error;
pub mod store;

use std::path::Path;
use std::sync::{Arc, Mutex};

use parley_schemas::ids::{ConversationId, GroupId, MessageId, UserId};
use parley_schemas::wire::{
    Ack, Body, ClientFrame, ConversationEntry, ConversationsPage, Delete, Edit, ErrorBody, Media,
    MediaUploaded, MessagesPage, MsgFrame, PrekeysLow, PresenceFrame, Reaction, ReceiptFrame,
    ReceiptStatus, Recipient, StatusFrame, TypingNotice,
};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, Notify};

pub use error::{ClientError, Result};
pub use store::{Outgoing, Session, Store};

/// What happens, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connected,
    Disconnected,
    /// A new message (never a replay of one already stored).
    Message(MsgFrame),
    /// One of ours is durably on the server (one tick).
    Acked(Ack),
    /// Refused for good (`forbidden`, `bad_request`, ...): out of the outbox.
    Refused {
        client_msg_id: String,
        error: ErrorBody,
    },
    Status(StatusFrame),
    Presence(PresenceFrame),
    Typing(TypingNotice),
    /// A device of ours should upload more one-time prekeys.
    PrekeysLow(PrekeysLow),
    /// Items up to this seq expired on the server before this device got
    /// them (`retention.undelivered_days`); scrollback may hold them.
    Expired(u64),
    /// A conversation was pinned, archived or muted (or undone), on this
    /// device or another of this user's.
    ConversationSettings(parley_schemas::wire::ConversationSettings),
}

/// A Parley client bound to one SQLite file; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    http: reqwest::Client,
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    /// Frames for the socket now open, if one is.
    socket: Mutex<Option<mpsc::UnboundedSender<String>>>,
    stop: Notify,
}

impl Client {
    /// A client of the server at `url` (`http://HOST:PORT`), keeping its
    /// state in the SQLite file `db` (made if missing).
    pub fn open(db: impl AsRef<Path>, url: &str) -> Result<Client> {
        let (events, _) = broadcast::channel(4096);
        Ok(Client {
            inner: Arc::new(Inner {
                url: url.trim_end_matches('/').to_owned(),
                http: reqwest::Client::new(),
                store: Mutex::new(Store::open(db.as_ref())?),
                events,
                socket: Mutex::new(None),
                stop: Notify::new(),
            }),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.store.lock().expect("the store lock")
    }

    /// Registers `username`; `conflict` if it is taken.
    pub async fn sign_up(&self, username: &str, password: &str) -> Result<UserId> {
        let v = self
            .post(
                "/v1/users",
                json!({"username": username, "password": password}),
            )
            .await?;
        v["user_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("sign-up answered {v}")))
    }

    /// Signs in, as the device this file signed in as before if it did.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<Session> {
        let mut body = json!({"username": username, "password": password});
        if let Some(s) = self.session()?.filter(|s| s.username == username) {
            body["device_id"] = json!(s.device_id.to_string());
        }
        let v = self.post("/v1/sessions", body).await?;
        let parse = |k: &str| v[k].as_str().and_then(|s| s.parse::<u64>().ok());
        let session = Session {
            user_id: UserId(parse("user_id").ok_or_else(|| bad_answer(&v))?),
            device_id: parley_schemas::ids::DeviceId(
                parse("device_id").ok_or_else(|| bad_answer(&v))?,
            ),
            username: username.to_owned(),
            token: v["token"]
                .as_str()
                .ok_or_else(|| bad_answer(&v))?
                .to_owned(),
            refresh_token: v["refresh_token"].as_str().unwrap_or_default().to_owned(),
        };
        self.store().set_session(&session)?;
        Ok(session)
    }

    /// The stored session, if this file signed in.
    pub fn session(&self) -> Result<Option<Session>> {
        self.store().session()
    }

    /// Renews the access token with the refresh token; false if that failed.
    pub(crate) async fn refresh(&self) -> bool {
        let Ok(Some(s)) = self.session() else {
            return false;
        };
        let Ok(v) = self
            .post(
                "/v1/sessions/refresh",
                json!({"refresh_token": s.refresh_token}),
            )
            .await
        else {
            return false;
        };
        let (Some(token), Some(refresh)) = (v["token"].as_str(), v["refresh_token"].as_str())
        else {
            return false;
        };
        let renewed = Session {
            token: token.to_owned(),
            refresh_token: refresh.to_owned(),
            ..s
        };
        self.store().set_session(&renewed).is_ok()
    }

    /// The id of the user called `username`.
    pub async fn user_by_name(&self, username: &str) -> Result<UserId> {
        let r = self
            .authed(reqwest::Method::GET, "/v1/users", |r| {
                r.query(&[("username", username)])
            })
            .await?;
        field(&answer(r).await?, "user_id")
    }

    /// The username of user `id`.
    pub async fn username(&self, id: UserId) -> Result<String> {
        let v = self
            .call(reqwest::Method::GET, &format!("/v1/users/{id}"), None)
            .await?;
        field(&v, "username")
    }

    /// Creates a group of the caller and `members`.
    pub async fn create_group(&self, name: &str, members: &[UserId]) -> Result<GroupId> {
        let body = json!({"name": name, "members": members});
        let v = self
            .call(reqwest::Method::POST, "/v1/groups", Some(body))
            .await?;
        field(&v, "group_id")
    }

    /// Adds `user` to `group` (an admin's call).
    pub async fn add_member(&self, group: GroupId, user: UserId) -> Result<()> {
        let path = format!("/v1/groups/{group}/members");
        self.call(reqwest::Method::POST, &path, Some(json!({"user_id": user})))
            .await
            .map(drop)
    }

    /// Removes `user` from `group` (an admin's call, or `user` leaving).
    pub async fn remove_member(&self, group: GroupId, user: UserId) -> Result<()> {
        let path = format!("/v1/groups/{group}/members/{user}");
        self.call(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// Blocks `user` (`on`) or no longer does: a blocked user's messages
    /// to this one are refused, and they lose this user's presence and
    /// photo. The same on every device of this user.
    pub async fn block(&self, user: UserId, on: bool) -> Result<()> {
        let method = if on {
            reqwest::Method::PUT
        } else {
            reqwest::Method::DELETE
        };
        self.call(method, &format!("/v1/blocks/{user}"), None)
            .await
            .map(drop)
    }

    /// The users this one blocks.
    pub async fn blocked(&self) -> Result<Vec<UserId>> {
        let v = self.call(reqwest::Method::GET, "/v1/blocks", None).await?;
        let list: parley_schemas::wire::BlockList =
            serde_json::from_value(v).map_err(|e| proto(&e))?;
        Ok(list.blocked.into_iter().map(|c| c.user_id).collect())
    }

    /// The caller's conversations, newest activity first.
    pub async fn conversations(&self) -> Result<Vec<ConversationEntry>> {
        let v = self
            .call(reqwest::Method::GET, "/v1/conversations", None)
            .await?;
        let page: ConversationsPage = serde_json::from_value(v).map_err(|e| proto(&e))?;
        Ok(page.conversations)
    }

    /// Up to `limit` messages of `conversation` before `before` (newest
    /// first), from the server's history; stored here too, so a new
    /// device fills its store.
    pub async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MsgFrame>> {
        let mut path = format!("/v1/conversations/{conversation}/messages?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        let page: MessagesPage = serde_json::from_value(v).map_err(|e| proto(&e))?;
        let mut store = self.store();
        for m in &page.messages {
            store.put_message(m)?;
        }
        Ok(page.messages)
    }

    /// Uploads a file (`POST /v1/media`).
    pub async fn upload(&self, bytes: Vec<u8>, mime: &str) -> Result<MediaUploaded> {
        // Shared, not copied, if the call is made again with a new token.
        let bytes = bytes::Bytes::from(bytes);
        let r = self
            .authed(reqwest::Method::POST, "/v1/media", |r| {
                r.header("content-type", mime).body(bytes.clone())
            })
            .await?;
        serde_json::from_value(answer(r).await?).map_err(|e| proto(&e))
    }

    /// Downloads a file this user may fetch.
    pub async fn download(&self, media_id: &str) -> Result<Vec<u8>> {
        let id: parley_schemas::media::MediaId = media_id
            .parse()
            .map_err(|e: parley_schemas::media::BadMediaId| ClientError::Protocol(e.to_string()))?;
        let path = format!("/v1/media/{id}");
        let r = self.authed(reqwest::Method::GET, &path, |r| r).await?;
        if !r.status().is_success() {
            return Err(answer(r).await.expect_err("a failed call answers an error"));
        }
        Ok(r.bytes().await?.to_vec())
    }

    /// Puts a media message in the outbox, as [`send_text`](Self::send_text).
    pub fn send_media(
        &self,
        to: Recipient,
        media_id: &str,
        caption: Option<&str>,
    ) -> Result<String> {
        self.send_body(
            to,
            Body::Media(Media {
                media_id: media_id.to_owned(),
                caption: caption.map(str::to_owned),
                ..Media::default()
            }),
        )
    }

    /// An authenticated call with a JSON body, if any, and a JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let r = self
            .authed(method, path, |r| match &body {
                Some(b) => r.json(b),
                None => r,
            })
            .await?;
        answer(r).await
    }

    /// Sends the request `build` makes of `method path` with the session's
    /// token, and once more with a renewed one if it had expired.
    async fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.inner.url);
        let mut renewed = false;
        loop {
            let s = self.session()?.ok_or(ClientError::SignedOut)?;
            let req = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(&s.token);
            let r = build(req).send().await?;
            if r.status() == 401 && !renewed && self.refresh().await {
                renewed = true;
                continue;
            }
            return Ok(r);
        }
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        let r = self
            .inner
            .http
            .post(format!("{}{path}", self.inner.url))
            .json(&body)
            .send()
            .await?;
        answer(r).await
    }

    /// Every event from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Keeps a socket open (connecting again after every loss) until
    /// [`stop`](Self::stop): spawn it.
    pub async fn run(&self) {
        conn::run(self.clone()).await
    }

    /// Ends [`run`](Self::run).
    pub fn stop(&self) {
        self.inner.stop.notify_waiters();
    }

    /// Puts a text message in the outbox and sends it if connected; its
    /// `client_msg_id`. It is in the SQLite file before this returns.
    pub fn send_text(&self, to: Recipient, text: &str) -> Result<String> {
        self.send_body(to, Body::Text(text.to_owned()))
    }

    fn send_body(&self, to: Recipient, body: Body) -> Result<String> {
        self.send_outgoing(Outgoing::new(to, body))
    }

    fn send_outgoing(&self, m: Outgoing) -> Result<String> {
        self.store().push_outbox(&m)?;
        self.send_frame(&m);
        Ok(m.client_msg_id)
    }

    /// A text message answering `reply_to` (a message of the same
    /// conversation), through the outbox.
    pub fn reply(&self, to: Recipient, reply_to: MessageId, text: &str) -> Result<String> {
        self.send_outgoing(Outgoing {
            reply_to: Some(reply_to),
            ..Outgoing::new(to, Body::Text(text.to_owned()))
        })
    }

    /// Sends the content of `message` on to each of `to`, marked
    /// forwarded and without its first sender; one `client_msg_id` per
    /// chat. The server takes 5 chats at once, refilling at 20 a minute
    /// (past that, the outbox waits and sends again).
    pub fn forward(&self, message: &MsgFrame, to: &[Recipient]) -> Result<Vec<String>> {
        if message.body.is_action() || matches!(message.body, Body::E2e(_)) {
            return Err(ClientError::Protocol(
                "only a text or media message can be forwarded".into(),
            ));
        }
        to.iter()
            .map(|r| {
                self.send_outgoing(Outgoing {
                    forwarded: true,
                    ..Outgoing::new(*r, message.body.clone())
                })
            })
            .collect()
    }

    /// Tells the senders of `conversation` that every message up to
    /// `msg_id` was read (cumulative, as the protocol's receipts are).
    /// `delivered` receipts go out by themselves as messages are stored.
    /// Sent only while connected; a read mark missed offline is sent again
    /// by the next call.
    pub fn mark_read(&self, conversation: ConversationId, msg_id: MessageId) {
        self.send_raw(frame(ClientFrame::Receipt(ReceiptFrame {
            conversation_id: conversation,
            msg_id,
            status: ReceiptStatus::Read,
        })));
    }

    /// Messages waiting for their ack.
    pub fn outbox(&self) -> Result<Vec<Outgoing>> {
        self.store().outbox()
    }

    /// A conversation's messages as stored here, oldest first, as the
    /// user sees them: edits, deletions and reactions that arrived are
    /// folded into the messages they act on (and are not listed), and
    /// what this user hid is left out.
    pub fn messages(&self, conversation: &ConversationId) -> Result<Vec<MsgFrame>> {
        let all = self.store().messages(conversation)?;
        let me = self.session()?.map_or(UserId(0), |s| s.user_id);
        Ok(parley_schemas::wire::fold(me, &all, &all, &all))
    }

    /// Edits the text of one of this user's messages (within the server's
    /// window); goes through the outbox like a message. Its
    /// `client_msg_id`.
    pub fn edit(&self, to: Recipient, msg_id: MessageId, text: &str) -> Result<String> {
        let edit = Edit {
            msg_id,
            text: text.to_owned(),
        };
        self.send_body(to, Body::Edit(edit))
    }

    /// Deletes a message for everyone (its sender, or a group admin), or
    /// hides it on this user's devices (`for_me`).
    pub fn delete(&self, to: Recipient, msg_id: MessageId, for_me: bool) -> Result<String> {
        self.send_body(to, Body::Delete(Delete { msg_id, for_me }))
    }

    /// This user's reaction to a message; `""` removes it.
    pub fn react(&self, to: Recipient, msg_id: MessageId, emoji: &str) -> Result<String> {
        let reaction = Reaction {
            msg_id,
            emoji: emoji.to_owned(),
        };
        self.send_body(to, Body::Reaction(reaction))
    }

    fn send_frame(&self, m: &Outgoing) {
        self.send_raw(m.frame());
    }

    fn send_raw(&self, text: String) {
        if let Some(tx) = self.inner.socket.lock().expect("socket lock").as_ref() {
            let _ = tx.send(text);
        }
    }

    fn emit(&self, e: Event) {
        let _ = self.inner.events.send(e);
    }
}

/// A string id field of an answer, parsed.
fn field<T: std::str::FromStr>(v: &serde_json::Value, name: &str) -> Result<T> {
    v[name]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_answer(v))
}

pub(crate) fn proto(e: &serde_json::Error) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// A JSON answer, or the protocol's error as a [`ClientError::Server`].
async fn answer(r: reqwest::Response) -> Result<serde_json::Value> {
    let ok = r.status().is_success();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if ok {
        return Ok(v);
    }
    let e: ErrorBody = serde_json::from_value(v.clone()).map_err(|_| bad_answer(&v))?;
    Err(ClientError::Server {
        code: e.code,
        message: e.message,
    })
}

/// A client frame as the wire has it.
pub(crate) fn frame(f: ClientFrame) -> String {
    serde_json::to_string(&f).expect("client frames serialize")
}

fn bad_answer(v: &serde_json::Value) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {v}"))
}
