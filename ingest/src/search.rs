//! Search in one's own history (an addition, docs/protocol-additions.md):
//! `GET /v1/search?q=&conversation_id=&before=&limit=`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use parley_schemas::ids::{ConversationId, MessageId};
use parley_schemas::wire::MessagesPage;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{parse_param, query, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/search", get(search))
}

/// Search in one's own history (an addition): `q`, and optionally
/// `conversation_id`, `before`, `limit`.
async fn search(
    State(s): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<Json<MessagesPage>, ApiError> {
    #[derive(Deserialize)]
    struct SearchQuery {
        q: Option<String>,
        conversation_id: Option<String>,
        before: Option<String>,
        limit: Option<String>,
    }
    s.edge.guard().history.check(&caller.user)?;
    let q: SearchQuery = query(&uri)?;
    let conversation = parse_param::<ConversationId>("conversation_id", q.conversation_id)?;
    let before = parse_param::<MessageId>("before", q.before)?;
    let limit = parse_param::<u32>("limit", q.limit)?;
    let text = q.q.unwrap_or_default();
    let messages = s
        .edge
        .history()
        .search(caller.user, &text, conversation, before, limit)
        .await?;
    Ok(Json(MessagesPage {
        messages,
        more: false,
    }))
}
