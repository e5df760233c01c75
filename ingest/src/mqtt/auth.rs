//! Who a CONNECT signs in, and on which device (docs/mqtt.md, "CONNECT").

use std::net::IpAddr;

use crate::mqtt::codec::{Connect, Reason, Version};
use parley_schemas::ids::DeviceId;
use parley_schemas::wire::{CreateSession, ErrorCode};

use crate::auth::Caller;
use crate::edge::Edge;
use crate::error::ApiError;

/// The device a CONNECT signs in: by access token (username `token`), or
/// by username and password on the device its client id names (MQTT 5
/// may leave the id empty for a new device, whose id the CONNACK carries).
pub(super) async fn authenticate(
    edge: &Edge,
    c: &Connect,
    peer: Option<IpAddr>,
) -> Result<(Caller, Option<DeviceId>), (Reason, String)> {
    let bad = || {
        (
            Reason::BadUserNameOrPassword,
            "give a username and password, or username `token` and an access token".to_owned(),
        )
    };
    if c.will {
        return Err((
            Reason::ImplementationSpecific,
            "will messages are not supported".into(),
        ));
    }
    let (Some(username), Some(password)) = (&c.username, &c.password) else {
        return Err(bad());
    };
    let password = std::str::from_utf8(password).map_err(|_| bad())?;
    if username == "token" {
        let caller = edge
            .sessions()
            .verify_access(password)
            .await
            .map_err(|e| api_refusal(e, Reason::NotAuthorized))?;
        return Ok((caller, None));
    }
    let device_id = match (c.client_id.as_str(), c.version) {
        ("", Version::V5) => None,
        (id, _) => match id.parse::<u64>() {
            Ok(n) => Some(DeviceId(n)),
            Err(_) => {
                return Err((
                    Reason::ClientIdNotValid,
                    "the client id must be a device id issued to this user (MQTT 5: or empty, for a new device)".into(),
                ))
            }
        },
    };
    let session = edge
        .accounts()
        .sign_in(
            CreateSession {
                username: username.clone(),
                password: password.to_owned(),
                device_id,
            },
            peer,
        )
        .await
        .map_err(|e| api_refusal(e, Reason::BadUserNameOrPassword))?;
    let caller = Caller {
        user: session.user_id,
        device: session.device_id,
    };
    Ok((caller, device_id.is_none().then_some(session.device_id)))
}

/// A refused sign-in as a CONNACK reason.
fn api_refusal(e: ApiError, unauthorized: Reason) -> (Reason, String) {
    let reason = match e.code {
        ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::NotFound => unauthorized,
        ErrorCode::BadRequest => Reason::ClientIdNotValid,
        ErrorCode::RateLimited => Reason::ConnectionRateExceeded,
        _ => Reason::ServerUnavailable,
    };
    (reason, e.message)
}
