//! Group invite links (additions, docs/protocol-additions.md): admins
//! create, list and revoke them under `/v1/groups/{id}/invites`; anyone
//! signed in joins with `POST /v1/invites` and `{"token": ...}` (the
//! token in the body, where proxies do not log it; `POST
//! /v1/invites/{token}` is still taken, deprecated).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use parley_schemas::group::GroupChange;
use parley_schemas::wire::{CreateInvite, GroupInfo, InviteInfo, InviteList};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::groups::group_id;
use crate::http::{AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/groups/{id}/invites", post(create).get(list))
        .route("/v1/groups/{id}/invites/{invite_id}", delete(revoke))
        .route("/v1/invites", post(join_by_body))
        .route("/v1/invites/{token}", post(join))
}

#[derive(serde::Deserialize)]
struct JoinInvite {
    token: String,
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<CreateInvite>,
) -> Result<(StatusCode, Json<InviteInfo>), ApiError> {
    let invite = s
        .edge
        .groups()
        .create_invite(caller, group_id(&id)?, req)
        .await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InviteList>, ApiError> {
    Ok(Json(s.edge.groups().invites(caller, group_id(&id)?).await?))
}

async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, invite)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if invite.len() > 64 {
        return Err(ApiError::bad_request("not an invite id"));
    }
    let change = GroupChange::InviteRevoked { invite };
    s.edge
        .groups()
        .change(caller, group_id(&id)?, change)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn join(
    State(s): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    Ok(Json(s.edge.groups().join(caller, &token).await?))
}

async fn join_by_body(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<JoinInvite>,
) -> Result<Json<GroupInfo>, ApiError> {
    Ok(Json(s.edge.groups().join(caller, &req.token).await?))
}
