//! HTTP routes of the protocol.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use parley_schemas::ids::{ConversationId, DeviceId, MessageId, UserId};
use parley_schemas::wire::{
    Ack, AddContact, ContactList, ConversationsPage, CreateSession, CreateUser, DeviceList,
    ErrorCode, IdpSession, MessagesPage, PresenceFrame, Privacy, Profile, ProfilePatch,
    RefreshSession, SendFrame, Session, UserCreated, MAX_FRAME_BYTES,
};
use serde::Deserialize;

use crate::auth::Caller;
use crate::edge::Edge;
use crate::error::ApiError;
use crate::socket;

#[derive(Clone)]
pub struct AppState {
    pub edge: Arc<Edge>,
    /// Set once the pipeline's jobs run: `/readyz` answers 200 from then on.
    pub ready: Arc<AtomicBool>,
    /// Whether `/metrics` is served here (not when an ops listener has it).
    pub metrics: bool,
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/v1/users", post(create_user).get(find_user))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/refresh", post(refresh_session))
        .route("/v1/sessions/idp", post(create_idp_session))
        .route("/v1/sessions/current", delete(sign_out))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/{id}", delete(revoke_device))
        .route("/v1/messages", post(send_message))
        .route("/v1/users/{id}/presence", get(presence))
        .route("/v1/users/{id}", get(profile))
        .route(
            "/v1/users/me",
            get(my_profile)
                .patch(update_profile)
                .delete(crate::safety::delete_account),
        )
        .route("/v1/users/me/privacy", get(privacy).put(set_privacy))
        .route("/v1/contacts", get(contacts).post(add_contact))
        .route("/v1/contacts/{id}", delete(remove_contact))
        .route("/v1/conversations", get(conversations))
        .route("/v1/conversations/{cid}/messages", get(messages))
        .route("/v1/ws", get(websocket))
        .route("/v1/mqtt", get(crate::mqtt::upgrade))
        .route("/readyz", get(readyz))
        .merge(crate::media::routes())
        .merge(crate::keys::routes())
        .merge(crate::notify::routes())
        .merge(crate::safety::routes())
        .merge(crate::groups::routes())
        .merge(crate::invites::routes())
        .merge(crate::search::routes())
        .merge(crate::web::routes());
    let ops = if state.metrics {
        health_and_metrics()
    } else {
        Router::new().route("/healthz", get(|| async { "ok" }))
    };
    router.with_state(state).merge(ops)
}

/// Health, readiness and metrics alone, for roles without a public API:
/// ready as soon as they serve.
pub fn ops_router() -> Router {
    health_and_metrics().route("/readyz", get(|| async { "ready" }))
}

fn health_and_metrics() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
}

/// JSON bodies whose errors are ours (`bad_request` with the reason), not
/// axum's plain-text rejections.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::too_large(e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        #[derive(Deserialize)]
        struct TokenQuery {
            token: Option<String>,
        }
        // Only the WebSocket upgrade takes `?token=` (browsers cannot set
        // its headers): anywhere else a token in the URL would end up in
        // access logs.
        let from_query = (parts.uri.path() == "/v1/ws")
            .then(|| Query::<TokenQuery>::try_from_uri(&parts.uri).ok())
            .flatten()
            .and_then(|q| q.0.token);
        let token = from_header
            .map(str::to_owned)
            .or(from_query)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        // A send forwarded by another edge carries an edge-only token; a
        // client's token is never accepted as one.
        if parts.headers.contains_key(crate::edge::FORWARDED) && parts.uri.path() == "/v1/messages"
        {
            return state.edge.sessions().verify_edge(&token);
        }
        let caller = state.edge.verify_token(&token).await?;
        let route = (&parts.method, parts.uri.path());
        state.edge.guard().check_route(route, caller.user)?;
        Ok(caller)
    }
}

/// The client's address, for the per-address limits: the peer's, or
/// behind `limits.trusted_proxy_hops` proxies the `X-Forwarded-For` entry
/// that many from the right (what the nearest trusted proxy saw; entries
/// further left are the client's to write). `None` for loopback peers
/// with no proxy header: local tools and tests are not throttled per
/// address.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hops = state.edge.limits().proxy_hops();
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::limits::forwarded_client(v, hops));
        if forwarded.is_some() {
            return Ok(ClientIp(forwarded));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.filter(|ip| !ip.is_loopback())))
    }
}

async fn create_user(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<CreateUser>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    let user_id = s.edge.accounts().sign_up(req, ip).await?;
    Ok((StatusCode::CREATED, Json(UserCreated { user_id })))
}

async fn create_session(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<CreateSession>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(s.edge.accounts().sign_in(req, ip).await?))
}

async fn create_idp_session(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<IdpSession>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(s.edge.accounts().sign_in_idp(req, ip).await?))
}

async fn refresh_session(
    State(s): State<AppState>,
    Body(req): Body<RefreshSession>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(s.edge.sessions().refresh(&req.refresh_token).await?))
}

/// This device's tokens stop working and its sockets close.
async fn sign_out(State(s): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    s.edge
        .sessions()
        .sign_out(caller.user, caller.device)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn devices(State(s): State<AppState>, caller: Caller) -> Result<Json<DeviceList>, ApiError> {
    Ok(Json(s.edge.sessions().list(caller).await?))
}

/// Signs one of the caller's devices out (a lost phone).
async fn revoke_device(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let device: DeviceId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("device id {id:?}")))?;
    let known = s
        .edge
        .sessions()
        .list(caller)
        .await?
        .devices
        .iter()
        .any(|d| d.device_id == device);
    if !known {
        return Err(ApiError::not_found(format!("no device {id} of yours")));
    }
    s.edge.sessions().sign_out(caller.user, device).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn send_message(
    State(s): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Body(frame): Body<SendFrame>,
) -> Result<Json<Ack>, ApiError> {
    s.edge.guard().sends.check(&caller.user)?;
    // A send another edge forwarded is never forwarded again (no loops
    // while a partition moves).
    let may_forward = !headers.contains_key(crate::edge::FORWARDED);
    Ok(Json(
        s.edge
            .messages()
            .send_with(caller, frame, may_forward)
            .await?,
    ))
}

/// Auth happens before the upgrade: a bad token is a 401, not a socket.
async fn websocket(
    State(s): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let slot = s.edge.sockets().admit(caller.user, s.edge.limits())?;
    // Before the client learns it is connected: items after this are live
    // to it, and come without a `sync` even if their push is missed.
    let backlog_to = s.edge.sockets().inbox_seq(caller.user).await?;
    // Frames up to 4x the limit are read and refused with an error frame;
    // only larger ones close the socket, to bound memory. The buffers
    // start small (tungstenite's default reserves 128 KiB to read into on
    // every socket, most of an idle socket's memory) and grow per frame.
    Ok(upgrade
        .max_message_size(4 * MAX_FRAME_BYTES)
        .max_frame_size(4 * MAX_FRAME_BYTES)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = futures::StreamExt::split(socket);
            socket::serve(s.edge, caller, Some(backlog_to), sink, stream).await;
            drop(slot);
        }))
}

/// A socket's read buffer to start with; larger frames grow it.
pub(crate) const WS_READ_BUFFER: usize = 4 * 1024;
/// Bytes written frames gather before they go to the network (besides
/// the writer's own flushes).
pub(crate) const WS_WRITE_BUFFER: usize = 16 * 1024;
/// What a socket's write buffer may hold at most: above the largest frame
/// (a history page, cut at `MAX_PAGE_BYTES`, plus its last message), so
/// only a runaway fails the socket instead of growing without bound.
const WS_MAX_WRITE_BUFFER: usize = 8 * MAX_FRAME_BYTES;

/// Presence as derived from heartbeats, as the owner's privacy setting
/// lets the caller see it.
async fn presence(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<PresenceFrame>, ApiError> {
    Ok(Json(
        s.edge
            .presence()
            .presence(caller.user, user_id(&id)?)
            .await?,
    ))
}

async fn contacts(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<ContactList>, ApiError> {
    Ok(Json(s.edge.contacts().list(caller.user).await?))
}

async fn add_contact(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<AddContact>,
) -> Result<StatusCode, ApiError> {
    s.edge
        .contacts()
        .set(caller.user, req.user_id, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_contact(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    s.edge
        .contacts()
        .set(caller.user, user_id(&id)?, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn privacy(State(s): State<AppState>, caller: Caller) -> Result<Json<Privacy>, ApiError> {
    Ok(Json(s.edge.contacts().privacy(caller.user).await?))
}

async fn set_privacy(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<Privacy>,
) -> Result<Json<Privacy>, ApiError> {
    s.edge.contacts().set_privacy(caller.user, req).await?;
    Ok(Json(req))
}

async fn profile(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let user = user_id(&id)?;
    Ok(Json(
        s.edge.accounts().profile_for(caller.user, user).await?,
    ))
}

/// A user id from a path, or `bad_request` saying why not.
pub(crate) fn user_id(id: &str) -> Result<UserId, ApiError> {
    id.parse()
        .map_err(|e| ApiError::bad_request(format!("user id {id:?}: {e}")))
}

#[derive(Deserialize)]
struct FindUser {
    username: String,
}

/// `GET /v1/users?username=NAME`: whom to write to, by name (sign-up
/// tells whether a name is taken anyway); limited like reads.
async fn find_user(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<FindUser>,
) -> Result<Json<Profile>, ApiError> {
    s.edge.guard().history.check(&caller.user)?;
    Ok(Json(
        s.edge
            .accounts()
            .profile_by_name(caller.user, &q.username)
            .await?,
    ))
}

async fn my_profile(State(s): State<AppState>, caller: Caller) -> Result<Json<Profile>, ApiError> {
    Ok(Json(s.edge.accounts().profile(caller.user).await?))
}

async fn update_profile(
    State(s): State<AppState>,
    caller: Caller,
    Body(patch): Body<ProfilePatch>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(
        s.edge.accounts().update_profile(caller.user, patch).await?,
    ))
}

/// `?before=&limit=` as text, so a bad value gets our `bad_request` with
/// the reason rather than axum's rejection.
#[derive(Deserialize)]
struct PageQuery {
    before: Option<String>,
    limit: Option<String>,
}

pub(crate) fn parse_param<T: std::str::FromStr>(
    name: &str,
    v: Option<String>,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    match v.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{name}={v:?}: {e}"))),
    }
}

pub(crate) fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Scrollback: newest first, members only.
async fn messages(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::Path(cid): axum::extract::Path<String>,
    uri: axum::http::Uri,
) -> Result<Json<MessagesPage>, ApiError> {
    s.edge.guard().history.check(&caller.user)?;
    let conversation: ConversationId = cid
        .parse()
        .map_err(|e| ApiError::bad_request(format!("conversation {cid:?}: {e}")))?;
    let q: PageQuery = query(&uri)?;
    let before = parse_param::<MessageId>("before", q.before)?;
    let limit = parse_param::<u32>("limit", q.limit)?;
    let p = s
        .edge
        .history()
        .page(caller.user, conversation, before, limit)
        .await?;
    Ok(Json(MessagesPage {
        messages: p.messages,
        more: p.more,
    }))
}

async fn conversations(
    State(s): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<Json<ConversationsPage>, ApiError> {
    #[derive(Deserialize)]
    struct ListQuery {
        limit: Option<String>,
    }
    s.edge.guard().history.check(&caller.user)?;
    let q: ListQuery = query(&uri)?;
    let limit = parse_param::<u32>("limit", q.limit)?;
    let conversations = s.edge.history().conversations(caller.user, limit).await?;
    Ok(Json(ConversationsPage { conversations }))
}

/// Ready once the pipeline runs, and while the log takes appends (not
/// while a partition waits to mend after a failed write, a full disk).
async fn readyz(State(s): State<AppState>) -> Response {
    if !s.ready.load(Ordering::Acquire) {
        return ApiError::new(ErrorCode::Unavailable, "starting").into_response();
    }
    match s.edge.log_healthy() {
        Ok(()) => "ready".into_response(),
        Err(_) => {
            ApiError::new(ErrorCode::Unavailable, "the log takes no appends now").into_response()
        }
    }
}

async fn metrics() -> Response {
    let body = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
