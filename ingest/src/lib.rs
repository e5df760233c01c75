//! The edge: authenticates clients over HTTP and WebSocket, validates their
//! frames and appends every message, receipt and heartbeat to the log,
//! acknowledging a send only once its append is durable. In this design the
//! edge also hosts delivery for the devices connected to it (see
//! ARCHITECTURE.md, "Where sockets live"), and answers scrollback and the
//! conversation list from the history store.
//!
//! Layout:
//! - [`edge`]: what the edge does, one part per concern: messages (and
//!   the per-partition appenders that issue `msg_id`s in log order and make
//!   resends idempotent), accounts and profiles, groups, contacts and
//!   privacy, presence and typing, sockets, the members-only history
//!   reads, media, and the key directory for end-to-end encryption; what
//!   they share is in `edge::core`.
//! - [`http`]: the protocol's HTTP routes; [`media`]: the media routes
//!   (streamed uploads, ranged downloads); [`keys`]: the key directory's;
//!   [`notify`]: push subscriptions, notification settings, mutes;
//!   [`safety`]: blocking users and reports for operators; [`groups`]:
//!   groups, members and admins; [`invites`]: group invite links; [`search`]: search in one's own history.
//! - [`mqtt`]: the MQTT edge (3.1.1 and 5, on its own listener or over
//!   WebSocket at `/v1/mqtt`), a client of the same socket code.
//! - [`socket`]: the WebSocket side: one socket's reader and writer tasks
//!   (generic over `Sink`/`Stream`), the hub of connected devices, and each
//!   device's feed (catch-up and gap-fill from the store).
//! - [`web`]: the web client (`web/`), built into the binary and served
//!   at `/`.
//! - [`auth`]: argon2id passwords and HS256 session tokens; [`idp`]:
//!   sign-in with an outside provider's RS256/ES256 ID token (JWKS).
//! - [`limits`]: every limit on what a client sends or holds open, with
//!   its default; [`guard`]: the rate limits checked per request.
//! - [`internal_events`]: the edge's telemetry, logged and counted at once.
//! - [`error`]: every client-visible error, mapped to HTTP or to an
//!   `error` frame in one place.
//! - [`serve`]: the accept loop (TLS, header deadline, connection cap);
//!   [`run`]: serve the protocol on a listener until a shutdown future
//!   resolves.

pub mod auth;
pub mod edge;
pub mod error;
pub mod groups;
pub mod guard;
pub mod http;
pub mod idp;
pub mod internal_events;
pub mod invites;
pub mod keys;
pub mod limits;
pub mod media;
pub mod mqtt;
pub mod notify;
pub mod safety;
pub mod search;
pub mod serve;
pub mod socket;
pub mod web;

pub use limits::Limits;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the protocol on `listener` until `shutdown` resolves, then stops
/// accepting and lets open requests finish.
pub async fn run(
    listener: TcpListener,
    state: http::AppState,
    opts: serve::ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::serve(listener, http::router(state), opts, shutdown).await
}
