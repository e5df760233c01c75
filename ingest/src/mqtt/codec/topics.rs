//! The topic mapping (docs/mqtt.md): a client publishes each frame of the
//! JSON protocol to a topic named after it, and subscribes to one topic,
//! [`ME`], that carries everything the server has for this device.
//! Nothing else exists: no wildcards, no one else's topics, no retained
//! messages.

use super::Reason;

/// Where the server publishes `msg`, `status`, `presence`, `typing` and
/// every other server frame for this device.
pub const ME: &str = "parley/me";

/// Each publish topic and the client frame its payload is.
pub const PUBLISH_TOPICS: [(&str, &str); 7] = [
    ("parley/send", "send"),
    ("parley/receipt", "receipt"),
    ("parley/heartbeat", "heartbeat"),
    ("parley/typing", "typing"),
    ("parley/sync", "sync"),
    ("parley/received", "received"),
    ("parley/history", "history"),
];

/// Why a publish is refused before it reaches the edge's frame handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Reason,
    pub message: String,
}

fn refused(reason: Reason, message: impl Into<String>) -> Refused {
    Refused {
        reason,
        message: message.into(),
    }
}

/// A client frame read from a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its `type`.
    pub kind: &'static str,
    /// Its JSON text, `type` included.
    pub text: String,
    /// A send's `client_msg_id`, if it has one (a string).
    pub client_msg_id: Option<String>,
}

/// The client frame a PUBLISH to `topic` carries: the payload is that
/// frame, its `type` given by the topic (it may repeat it). Only its
/// shape is checked here; the edge reads it as any frame.
pub fn client_frame(topic: &str, payload: &[u8]) -> Result<Frame, Refused> {
    let Some(&(_, ty)) = PUBLISH_TOPICS.iter().find(|(t, _)| *t == topic) else {
        return Err(refused(
            Reason::TopicNameInvalid,
            format!("no topic {topic:?}: publish to parley/send, parley/receipt, parley/heartbeat, parley/typing, parley/sync, parley/received or parley/history"),
        ));
    };
    let text = std::str::from_utf8(payload).map_err(|_| {
        refused(
            Reason::PayloadFormatInvalid,
            "the payload is not UTF-8 JSON",
        )
    })?;
    // An empty payload is the frame with no fields (`sync`, say).
    let mut value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_str(text).map_err(|e| {
            refused(
                Reason::PayloadFormatInvalid,
                format!("the payload is not JSON: {e}"),
            )
        })?
    };
    let Some(object) = value.as_object_mut() else {
        return Err(refused(
            Reason::PayloadFormatInvalid,
            "the payload must be a JSON object",
        ));
    };
    match object.get("type") {
        None => {
            object.insert("type".into(), ty.into());
        }
        Some(t) if t == ty => {}
        Some(t) => {
            return Err(refused(
                Reason::PayloadFormatInvalid,
                format!("a {t} frame on {topic}, which carries {ty} frames"),
            ))
        }
    }
    let client_msg_id = object
        .get("client_msg_id")
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    Ok(Frame {
        kind: ty,
        text: value.to_string(),
        client_msg_id,
    })
}

/// Whether a device may subscribe to `filter`: only to [`ME`]. Wildcards
/// and other `parley/` topics would reach what is not the device's own.
pub fn subscription(filter: &str) -> Result<(), Reason> {
    if filter == ME {
        Ok(())
    } else if filter.contains(['#', '+']) || filter.starts_with("parley/") {
        Err(Reason::NotAuthorized)
    } else {
        Err(Reason::TopicFilterInvalid)
    }
}
