//! The notification routes (additions, docs/protocol-additions.md):
//! push subscriptions, notification settings, and how a user keeps a
//! conversation (muted, pinned, archived).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use parley_schemas::ids::ConversationId;
use parley_schemas::wire::{
    Mute, NotifySettings, PushSubscription, SubscriptionCreated, SubscriptionList, VapidKey,
};

use crate::auth::Caller;
use crate::edge::notify::Keep;
use crate::error::ApiError;
use crate::http::{AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/push/vapid", get(vapid))
        .route("/v1/push/subscriptions", post(subscribe).get(list))
        .route("/v1/push/subscriptions/{id}", delete(unsubscribe))
        .route("/v1/push/settings", get(settings).put(set_settings))
        .route("/v1/conversations/{cid}/mute", put(mute).delete(unmute))
        .route("/v1/conversations/{cid}/pin", put(pin).delete(unpin))
        .route(
            "/v1/conversations/{cid}/archive",
            put(archive).delete(unarchive),
        )
}

async fn vapid(State(s): State<AppState>) -> Result<Json<VapidKey>, ApiError> {
    Ok(Json(s.edge.notifications().vapid()?))
}

async fn subscribe(
    State(s): State<AppState>,
    caller: Caller,
    Body(sub): Body<PushSubscription>,
) -> Result<(StatusCode, Json<SubscriptionCreated>), ApiError> {
    let created = s.edge.notifications().subscribe(caller, sub).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    Ok(Json(s.edge.notifications().list(caller).await?))
}

async fn unsubscribe(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.edge.notifications().unsubscribe(caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn settings(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<NotifySettings>, ApiError> {
    Ok(Json(s.edge.notifications().settings(caller).await?))
}

async fn set_settings(
    State(s): State<AppState>,
    caller: Caller,
    Body(new): Body<NotifySettings>,
) -> Result<Json<NotifySettings>, ApiError> {
    Ok(Json(
        s.edge.notifications().set_previews(caller, new).await?,
    ))
}

fn conversation(cid: &str) -> Result<ConversationId, ApiError> {
    cid.parse()
        .map_err(|_| ApiError::bad_request(format!("conversation id {cid:?}")))
}

async fn mute(
    State(s): State<AppState>,
    caller: Caller,
    Path(cid): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // No body (or `{}`) mutes for ever.
    let until: Mute = if body.iter().all(u8::is_ascii_whitespace) {
        Mute::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("mute: {e}")))?
    };
    keep(&s, caller, &cid, Keep::Mute(Some(until))).await
}

async fn unmute(
    State(s): State<AppState>,
    caller: Caller,
    Path(cid): Path<String>,
) -> Result<StatusCode, ApiError> {
    keep(&s, caller, &cid, Keep::Mute(None)).await
}

async fn keep(
    s: &AppState,
    caller: Caller,
    cid: &str,
    change: Keep,
) -> Result<StatusCode, ApiError> {
    let c = conversation(cid)?;
    s.edge.notifications().keep(caller, c, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pin(
    s: State<AppState>,
    caller: Caller,
    cid: Path<String>,
) -> Result<StatusCode, ApiError> {
    keep(&s, caller, &cid, Keep::Pin(true)).await
}

async fn unpin(
    s: State<AppState>,
    caller: Caller,
    cid: Path<String>,
) -> Result<StatusCode, ApiError> {
    keep(&s, caller, &cid, Keep::Pin(false)).await
}

async fn archive(
    s: State<AppState>,
    caller: Caller,
    cid: Path<String>,
) -> Result<StatusCode, ApiError> {
    keep(&s, caller, &cid, Keep::Archive(true)).await
}

async fn unarchive(
    s: State<AppState>,
    caller: Caller,
    cid: Path<String>,
) -> Result<StatusCode, ApiError> {
    keep(&s, caller, &cid, Keep::Archive(false)).await
}
