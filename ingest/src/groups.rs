//! Group routes: create, read, rename, members in and out, admins
//! (docs/protocol-additions.md, "Groups"); invite links are in
//! [`crate::invites`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use parley_schemas::group::GroupChange;
use parley_schemas::ids::GroupId;
use parley_schemas::wire::{AddMember, CreateGroup, GroupCreated, GroupInfo, RenameGroup};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{user_id, AppState, Body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/groups", post(create_group))
        .route(
            "/v1/groups/{id}",
            axum::routing::get(group_info).patch(rename_group),
        )
        .route("/v1/groups/{id}/members", post(add_member))
        .route("/v1/groups/{id}/members/{user_id}", delete(remove_member))
        .route(
            "/v1/groups/{id}/admins/{user_id}",
            put(promote).delete(demote),
        )
}

pub(crate) fn group_id(id: &str) -> Result<GroupId, ApiError> {
    id.parse()
        .map_err(|e| ApiError::bad_request(format!("group id {id:?}: {e}")))
}

async fn create_group(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateGroup>,
) -> Result<(StatusCode, Json<GroupCreated>), ApiError> {
    let created = s.edge.groups().create(caller, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn group_info(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    Ok(Json(s.edge.groups().info(caller, group_id(&id)?).await?))
}

async fn rename_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<RenameGroup>,
) -> Result<Json<GroupInfo>, ApiError> {
    let change = GroupChange::Renamed(req.name);
    Ok(Json(
        s.edge
            .groups()
            .change(caller, group_id(&id)?, change)
            .await?,
    ))
}

async fn add_member(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<AddMember>,
) -> Result<StatusCode, ApiError> {
    let change = GroupChange::Added(req.user_id);
    s.edge
        .groups()
        .change(caller, group_id(&id)?, change)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (admins), or leaves (anyone, with their own id).
async fn remove_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let change = GroupChange::Removed(user_id(&user)?);
    s.edge
        .groups()
        .change(caller, group_id(&id)?, change)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a member an admin (admins only).
async fn promote(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Json<GroupInfo>, ApiError> {
    set_admin(&s, caller, &id, &user, true).await
}

/// Makes an admin a plain member (admins only; not the last one).
async fn demote(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Json<GroupInfo>, ApiError> {
    set_admin(&s, caller, &id, &user, false).await
}

async fn set_admin(
    s: &AppState,
    caller: Caller,
    id: &str,
    user: &str,
    admin: bool,
) -> Result<Json<GroupInfo>, ApiError> {
    let change = GroupChange::Admin {
        user: user_id(user)?,
        admin,
    };
    let info = s
        .edge
        .groups()
        .change(caller, group_id(id)?, change)
        .await?;
    Ok(Json(info))
}
