//! The key directory's routes: `PUT`/`GET /v1/devices/me/keys` (the
//! caller's device publishes its keys, and sees what it holds) and
//! `GET /v1/users/{id}/keys` (one bundle per device of a user).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use parley_schemas::wire::{KeyBundles, KeysStatus, KeysUpload};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{user_id, AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/devices/me/keys", get(status).put(upload))
        .route("/v1/users/{id}/keys", get(claim))
}

async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Body(up): Body<KeysUpload>,
) -> Result<StatusCode, ApiError> {
    s.edge.keys().upload(caller, up).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(State(s): State<AppState>, caller: Caller) -> Result<Json<KeysStatus>, ApiError> {
    Ok(Json(s.edge.keys().status(caller).await?))
}

async fn claim(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyBundles>, ApiError> {
    Ok(Json(s.edge.keys().claim(caller, user_id(&id)?).await?))
}
