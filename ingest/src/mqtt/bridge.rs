//! One MQTT session as a client of the socket code: its publishes become
//! the JSON protocol's client frames, and the server frames the socket's
//! writer produces become PUBLISHes to `parley/me`, PUBACKs and DISCONNECTs.
//! No I/O here: [`Bridge`] turns each input into [`Actions`].

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::mqtt::codec::topics::{self, ME};
use crate::mqtt::codec::{Out, Publish, Reason, Version};
use bytes::Bytes;
use parley_schemas::wire::ErrorCode;
use serde::Deserialize;

/// What one input asks of the connection.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Actions {
    /// Packets to the client.
    pub out: Vec<Out>,
    /// Client frames (JSON) for the socket's reader.
    pub forward: Vec<String>,
    /// End the connection, for this reason.
    pub close: Option<(Reason, String)>,
    /// A refusal that does not end the connection, for the metric.
    pub refused: Option<(Reason, String)>,
    /// The device now confirms its inbox up to this seq (`received`).
    pub confirm: Option<u64>,
}

/// A send waiting for its `ack` or `error`.
#[derive(Debug)]
struct Pending {
    packet_id: Option<u16>,
    /// MQTT 5: the response topic and correlation data the ack goes to.
    reply: Option<(String, Option<Bytes>)>,
}

/// The server's QoS 1 publishes the client has not acknowledged, and how
/// far its acknowledgements confirm the inbox. A device's cursor moves
/// only past seqs the client PUBACKed, never past one still open.
#[derive(Debug, Default)]
pub(super) struct Inflight {
    by_packet: HashMap<u16, u64>,
    /// Seqs sent and not acknowledged, or dropped while the device had
    /// no subscription (a `sync` brings them back).
    open: BTreeSet<u64>,
    acked_to: u64,
    confirmed: u64,
}

impl Inflight {
    pub fn len(&self) -> usize {
        self.by_packet.len()
    }

    fn sent(&mut self, packet_id: u16, seq: u64) {
        self.by_packet.insert(packet_id, seq);
        self.open.insert(seq);
    }

    fn held(&mut self, seq: u64) {
        self.open.insert(seq);
    }

    fn in_use(&self, packet_id: u16) -> bool {
        self.by_packet.contains_key(&packet_id)
    }

    /// The seq the device now confirms, if the ack moved it.
    fn acked(&mut self, packet_id: u16) -> Option<u64> {
        let seq = self.by_packet.remove(&packet_id)?;
        // The same seq may be in flight twice (a live push, then a replay).
        if !self.by_packet.values().any(|s| *s == seq) {
            self.open.remove(&seq);
        }
        self.acked_to = self.acked_to.max(seq);
        let upto = match self.open.first() {
            Some(&first) => self.acked_to.min(first.saturating_sub(1)),
            None => self.acked_to,
        };
        (upto > self.confirmed).then(|| {
            self.confirmed = upto;
            upto
        })
    }
}

/// Dropped `msg`s a session without a subscription may hold back before
/// it is closed: subscribe to `parley/me`, or do not stay connected.
const HELD_MAX: usize = 4096;

pub(super) struct Bridge {
    version: Version,
    /// The QoS of the device's subscription to `parley/me`.
    subscribed: Option<u8>,
    pending: HashMap<String, VecDeque<Pending>>,
    inflight: Inflight,
    next_packet: u16,
    window: usize,
}

#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    ty: String,
    seq: Option<u64>,
    client_msg_id: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    code: Option<ErrorCode>,
    message: Option<String>,
}

fn publish(topic: &str, qos: u8, packet_id: Option<u16>, payload: Bytes) -> Out {
    Out::Publish(Box::new(Publish {
        topic: topic.to_owned(),
        qos,
        packet_id,
        retain: false,
        dup: false,
        payload,
        response_topic: None,
        correlation: None,
    }))
}

/// The PUBACK reason for an `error` frame answering a send.
fn puback_reason(code: ErrorCode) -> Reason {
    match code {
        ErrorCode::BadRequest | ErrorCode::TooLarge => Reason::PayloadFormatInvalid,
        ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::NotFound => {
            Reason::NotAuthorized
        }
        ErrorCode::RateLimited => Reason::QuotaExceeded,
        ErrorCode::Conflict | ErrorCode::Unavailable | ErrorCode::Internal => {
            Reason::UnspecifiedError
        }
    }
}

impl Bridge {
    /// A session resumed (`resume`) is subscribed from the start: MQTT
    /// keeps a persistent session's subscriptions.
    pub fn new(version: Version, resume: bool, window: usize) -> Bridge {
        Bridge {
            version,
            subscribed: resume.then_some(1),
            pending: HashMap::new(),
            inflight: Inflight::default(),
            next_packet: 1,
            window: window.max(1),
        }
    }

    /// Whether the device holds a subscription to `parley/me`.
    pub fn subscribed(&self) -> bool {
        self.subscribed.is_some()
    }

    /// Whether the client holds as many unacknowledged messages as it may.
    pub fn full(&self) -> bool {
        self.inflight.len() >= self.window
    }

    /// A refusal of something the client published: MQTT 5 answers the
    /// QoS 1 publish with the reason; 3.1.1 has no such answer, so the
    /// connection ends.
    fn refuse(&self, a: &mut Actions, packet_id: Option<u16>, reason: Reason, why: String) {
        match (self.version, packet_id) {
            (Version::V5, Some(packet_id)) => {
                a.out.push(Out::PubAck {
                    packet_id,
                    refused: Some(reason),
                    text: Some(why.clone()),
                });
                a.refused = Some((reason, why));
            }
            (Version::V5, None) => a.refused = Some((reason, why)),
            (Version::V3, _) => a.close = Some((reason, why)),
        }
    }

    pub fn publish(&mut self, p: Publish) -> Actions {
        let mut a = Actions::default();
        if p.qos > 1 {
            a.close = Some((
                Reason::QosNotSupported,
                "QoS 2 is not supported: publish with QoS 1".into(),
            ));
            return a;
        }
        if p.retain {
            a.close = Some((
                Reason::RetainNotSupported,
                "retained messages are not supported".into(),
            ));
            return a;
        }
        let frame = match topics::client_frame(&p.topic, &p.payload) {
            Ok(f) => f,
            Err(r) if r.reason == Reason::TopicNameInvalid => {
                self.refuse(&mut a, p.packet_id, r.reason, r.message);
                return a;
            }
            Err(r) => {
                self.bad_payload(&mut a, p.packet_id, r.message);
                return a;
            }
        };
        if frame.kind != "send" {
            a.forward.push(frame.text);
            if let Some(packet_id) = p.packet_id {
                a.out.push(Out::PubAck {
                    packet_id,
                    refused: None,
                    text: None,
                });
            }
            return a;
        }
        // The edge reads the frame in full; its answer, an `ack` or an
        // `error`, names the client_msg_id, which finds the PUBACK owed.
        let Some(client_msg_id) = frame.client_msg_id else {
            self.bad_payload(&mut a, p.packet_id, "a send needs a client_msg_id".into());
            return a;
        };
        let reply = match (self.version, p.response_topic) {
            (Version::V5, Some(t)) => Some((t, p.correlation)),
            _ => None,
        };
        self.pending
            .entry(client_msg_id)
            .or_default()
            .push_back(Pending {
                packet_id: p.packet_id,
                reply,
            });
        a.forward.push(frame.text);
        a
    }

    /// A payload that is no frame of its topic: MQTT 5 refuses the
    /// publish; 3.1.1 acknowledges it (resending would not mend it) and
    /// the `error` frame says why on `parley/me`.
    fn bad_payload(&self, a: &mut Actions, packet_id: Option<u16>, why: String) {
        match self.version {
            Version::V5 => self.refuse(a, packet_id, Reason::PayloadFormatInvalid, why.clone()),
            Version::V3 => {
                if let Some(packet_id) = packet_id {
                    a.out.push(Out::PubAck {
                        packet_id,
                        refused: None,
                        text: None,
                    });
                }
                a.refused = Some((Reason::PayloadFormatInvalid, why.clone()));
            }
        }
        if self.subscribed.is_some() {
            let frame = serde_json::json!({"type": "error", "code": "bad_request", "message": why});
            a.out.push(publish(ME, 0, None, frame.to_string().into()));
        }
    }

    /// The client acknowledged one of the server's QoS 1 publishes.
    pub fn puback(&mut self, packet_id: u16) -> Actions {
        Actions {
            confirm: self.inflight.acked(packet_id),
            ..Actions::default()
        }
    }

    pub fn subscribe(&mut self, packet_id: u16, filters: Vec<(String, u8)>) -> Actions {
        let mut a = Actions::default();
        let mut results = Vec::with_capacity(filters.len());
        for (filter, qos) in filters {
            match topics::subscription(&filter) {
                Ok(()) => {
                    let granted = qos.min(1);
                    if self.subscribed.is_none() {
                        // What was dropped before comes again from the
                        // device's confirmed cursor.
                        a.forward.push(r#"{"type":"sync"}"#.into());
                    }
                    self.subscribed = Some(granted);
                    results.push(Ok(granted));
                }
                Err(reason) => {
                    a.refused = Some((reason, format!("subscription to {filter:?} refused")));
                    results.push(Err(reason));
                }
            }
        }
        a.out.push(Out::SubAck { packet_id, results });
        a
    }

    pub fn unsubscribe(&mut self, packet_id: u16, filters: Vec<String>) -> Actions {
        if filters.iter().any(|f| f == ME) {
            self.subscribed = None;
        }
        Actions {
            out: vec![Out::UnsubAck {
                packet_id,
                count: filters.len(),
            }],
            ..Actions::default()
        }
    }

    fn packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet;
            self.next_packet = self.next_packet.checked_add(1).unwrap_or(1);
            if !self.inflight.in_use(id) {
                return id;
            }
        }
    }

    /// A frame the socket's writer produced for this device.
    pub fn server_frame(&mut self, json: String) -> Actions {
        let mut a = Actions::default();
        // `msg` frames, most of what goes out, are not parsed: the writer
        // renders them `{"type":"msg","seq":N,...`.
        if let Some(seq) = msg_seq(&json) {
            self.msg(&mut a, seq, json);
            return a;
        }
        let Ok(peek) = serde_json::from_str::<Peek>(&json) else {
            return a;
        };
        match peek.ty.as_str() {
            "ack" => {
                if let Some(p) = self.take_pending(peek.client_msg_id.as_deref()) {
                    if let Some(packet_id) = p.packet_id {
                        a.out.push(Out::PubAck {
                            packet_id,
                            refused: None,
                            text: None,
                        });
                    }
                    if let Some((topic, correlation)) = p.reply {
                        let mut reply = publish(&topic, 0, None, json.into());
                        if let Out::Publish(r) = &mut reply {
                            r.correlation = correlation;
                        }
                        a.out.push(reply);
                    }
                }
                return a;
            }
            "error" => {
                let code = peek.code.unwrap_or(ErrorCode::Internal);
                if let Some(p) = self.take_pending(peek.reference.as_deref()) {
                    let why = peek.message.clone().unwrap_or_default();
                    let retry = matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable);
                    match (self.version, p.packet_id) {
                        // 3.1.1 cannot refuse a publish: one to retry
                        // is left unacknowledged and the connection
                        // closed, so the client sends it again later.
                        (Version::V3, Some(_)) if retry => {
                            a.close = Some((puback_reason(code), why));
                            return a;
                        }
                        (Version::V3, Some(packet_id)) => a.out.push(Out::PubAck {
                            packet_id,
                            refused: None,
                            text: None,
                        }),
                        (Version::V5, Some(packet_id)) => a.out.push(Out::PubAck {
                            packet_id,
                            refused: Some(puback_reason(code)),
                            text: Some(why.clone()),
                        }),
                        (_, None) => {}
                    }
                    a.refused = Some((puback_reason(code), why));
                }
            }
            "msg" => {
                if let Some(seq) = peek.seq {
                    self.msg(&mut a, seq, json);
                    return a;
                }
            }
            _ => {}
        }
        if self.subscribed.is_some() {
            a.out.push(publish(ME, 0, None, json.into()));
        }
        a
    }

    /// A `msg` for the device: at its subscription's QoS, or held back.
    fn msg(&mut self, a: &mut Actions, seq: u64, json: String) {
        match self.subscribed {
            Some(1) => {
                let id = self.packet_id();
                self.inflight.sent(id, seq);
                a.out.push(publish(ME, 1, Some(id), json.into()));
            }
            Some(_) => a.out.push(publish(ME, 0, None, json.into())),
            None => {
                self.inflight.held(seq);
                if self.inflight.open.len() > HELD_MAX {
                    a.close = Some((
                        Reason::QuotaExceeded,
                        "messages are waiting: subscribe to parley/me".into(),
                    ));
                }
            }
        }
    }

    fn take_pending(&mut self, client_msg_id: Option<&str>) -> Option<Pending> {
        let id = client_msg_id?;
        let queue = self.pending.get_mut(id)?;
        let p = queue.pop_front();
        if queue.is_empty() {
            self.pending.remove(id);
        }
        p
    }
}

/// The seq of a `msg` frame as the socket writer renders it.
fn msg_seq(json: &str) -> Option<u64> {
    let rest = json.strip_prefix(r#"{"type":"msg","seq":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests;
