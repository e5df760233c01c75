//! The notification routes (additions, docs/protocol-additions.md):
//! push subscriptions, notification settings, and muting a conversation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use parley_schemas::ids::ConversationId;
use parley_schemas::wire::{
    Mute, NotifySettings, PushSubscription, SubscriptionCreated, SubscriptionList, VapidKey,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/push/vapid", get(vapid))
        .route("/v1/push/subscriptions", post(subscribe).get(list))
        .route("/v1/push/subscriptions/{id}", delete(unsubscribe))
        .route("/v1/push/settings", get(settings).put(set_settings))
        .route("/v1/conversations/{cid}/mute", put(mute).delete(unmute))
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
    s.edge
        .notifications()
        .mute(caller, conversation(&cid)?, Some(until))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unmute(
    State(s): State<AppState>,
    caller: Caller,
    Path(cid): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.edge
        .notifications()
        .mute(caller, conversation(&cid)?, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
