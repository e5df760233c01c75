//! Safety and privacy (additions, docs/protocol-additions.md): blocking
//! (`GET /v1/blocks`, `PUT` and `DELETE /v1/blocks/{user_id}`), reports
//! (`POST /v1/reports`), account export (`GET /v1/users/me/export`) and
//! deletion (`DELETE /v1/users/me`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use parley_schemas::wire::{BlockList, DeleteAccount, ReportCreated, ReportRequest};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{user_id, AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/blocks", get(list))
        .route("/v1/blocks/{id}", put(block).delete(unblock))
        .route("/v1/reports", axum::routing::post(report))
        .route("/v1/users/me/export", get(export))
}

/// The caller's data as a JSON file to download.
async fn export(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let archive = s.edge.export(caller).await?;
    let disposition = format!("attachment; filename=\"parley-{}.json\"", caller.user);
    Ok((
        [
            (axum::http::header::CONTENT_DISPOSITION, disposition),
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_owned(),
            ),
        ],
        axum::body::Body::from_stream(archive),
    ))
}

/// Deletes the caller's account: the body says `{"password": ...}`, or for
/// an identity provider's account `{"id_token": ...}` of a fresh sign-in.
pub(crate) async fn delete_account(
    State(s): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let req: DeleteAccount = if body.is_empty() {
        DeleteAccount::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let proof = crate::edge::accounts::DeletionProof {
        password: req.password,
        id_token: req.id_token,
    };
    s.edge.delete_account(caller, proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<ReportRequest>,
) -> Result<(StatusCode, Json<ReportCreated>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.edge.report(caller, req).await?)))
}

async fn list(State(s): State<AppState>, caller: Caller) -> Result<Json<BlockList>, ApiError> {
    Ok(Json(s.edge.contacts().blocked(caller.user).await?))
}

async fn block(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = user_id(&id)?;
    s.edge.contacts().block(caller.user, other, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unblock(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = user_id(&id)?;
    s.edge.contacts().block(caller.user, other, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
