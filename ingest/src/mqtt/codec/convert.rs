//! Each version's packets (`rmqtt-codec`'s types) to and from the
//! version-free vocabulary of [`super`].

use std::num::{NonZeroU16, NonZeroU32};

use rmqtt_codec::types::QoS;
use rmqtt_codec::{v3, v5};

use super::{Connect, In, Out, Publish, Reason, Version};

fn qos_u8(q: QoS) -> u8 {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

fn qos_of(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn text<T: std::fmt::Display>(b: &T) -> String {
    b.to_string()
}

fn publish_in(p: rmqtt_codec::types::Publish) -> In {
    let (response_topic, correlation) = match p.properties {
        Some(props) => (
            props.response_topic.map(|t| text(&t)),
            props.correlation_data,
        ),
        None => (None, None),
    };
    In::Publish(Box::new(Publish {
        topic: text(&p.topic),
        qos: qos_u8(p.qos),
        packet_id: p.packet_id.map(NonZeroU16::get),
        retain: p.retain,
        dup: p.dup,
        payload: p.payload,
        response_topic,
        correlation,
    }))
}

pub(super) fn from_v3(p: v3::Packet) -> In {
    use v3::Packet as P;
    match p {
        P::Connect(c) => In::Connect(Box::new(Connect {
            version: Version::V3,
            client_id: text(&c.client_id),
            username: c.username.as_ref().map(text),
            password: c.password,
            resume: !c.clean_session,
            keep_alive: c.keep_alive,
            receive_max: None,
            max_packet_size: None,
            will: c.last_will.is_some(),
        })),
        P::Publish(p) => publish_in(*p),
        P::PublishAck { packet_id } => In::PubAck(packet_id.get()),
        P::Subscribe {
            packet_id,
            topic_filters,
        } => In::Subscribe {
            packet_id: packet_id.get(),
            filters: topic_filters
                .iter()
                .map(|(f, q)| (text(f), qos_u8(*q)))
                .collect(),
        },
        P::Unsubscribe {
            packet_id,
            topic_filters,
        } => In::Unsubscribe {
            packet_id: packet_id.get(),
            filters: topic_filters.iter().map(text).collect(),
        },
        P::PingRequest => In::PingReq,
        P::Disconnect => In::Disconnect,
        P::ConnectAck(_) => In::Unexpected("connack"),
        P::PublishReceived { .. } => In::Unexpected("pubrec"),
        P::PublishRelease { .. } => In::Unexpected("pubrel"),
        P::PublishComplete { .. } => In::Unexpected("pubcomp"),
        P::SubscribeAck { .. } => In::Unexpected("suback"),
        P::UnsubscribeAck { .. } => In::Unexpected("unsuback"),
        P::PingResponse => In::Unexpected("pingresp"),
    }
}

pub(super) fn from_v5(p: v5::Packet) -> In {
    use v5::Packet as P;
    match p {
        P::Connect(c) => In::Connect(Box::new(Connect {
            version: Version::V5,
            client_id: text(&c.client_id),
            username: c.username.as_ref().map(text),
            password: c.password,
            resume: !c.clean_start,
            keep_alive: c.keep_alive,
            receive_max: c.receive_max.map(NonZeroU16::get),
            max_packet_size: c.max_packet_size.map(NonZeroU32::get),
            will: c.last_will.is_some(),
        })),
        P::Publish(p) => publish_in(*p),
        P::PublishAck(a) => In::PubAck(a.packet_id.get()),
        P::Subscribe(s) => In::Subscribe {
            packet_id: s.packet_id.get(),
            filters: s
                .topic_filters
                .iter()
                .map(|(f, o)| (text(f), qos_u8(o.qos)))
                .collect(),
        },
        P::Unsubscribe(u) => In::Unsubscribe {
            packet_id: u.packet_id.get(),
            filters: u.topic_filters.iter().map(text).collect(),
        },
        P::PingRequest => In::PingReq,
        P::Disconnect(_) => In::Disconnect,
        P::ConnectAck(_) => In::Unexpected("connack"),
        P::PublishReceived(_) => In::Unexpected("pubrec"),
        P::PublishRelease(_) => In::Unexpected("pubrel"),
        P::PublishComplete(_) => In::Unexpected("pubcomp"),
        P::SubscribeAck(_) => In::Unexpected("suback"),
        P::UnsubscribeAck(_) => In::Unexpected("unsuback"),
        P::PingResponse => In::Unexpected("pingresp"),
        P::Auth(_) => In::Unexpected("auth"),
    }
}

/// Packet ids are never 0 (the decoder refuses 0 from clients; ours start at 1).
fn pid(id: u16) -> NonZeroU16 {
    NonZeroU16::new(id).unwrap_or(NonZeroU16::MIN)
}

fn publish_out(p: Publish, v5: bool) -> rmqtt_codec::types::Publish {
    let properties = v5.then(|| v5::PublishProperties {
        correlation_data: p.correlation,
        is_utf8_payload: true,
        content_type: Some("application/json".into()),
        ..Default::default()
    });
    rmqtt_codec::types::Publish {
        dup: p.dup,
        retain: false,
        qos: qos_of(p.qos),
        topic: p.topic.into(),
        packet_id: p.packet_id.map(pid),
        payload: p.payload,
        properties,
    }
}

pub(super) fn to_v3(out: Out) -> Option<v3::Packet> {
    use v3::Packet as P;
    Some(match out {
        Out::ConnAck {
            session_present,
            refused,
            ..
        } => P::ConnectAck(v3::ConnectAck {
            return_code: refused
                .map_or(v3::ConnectAckReason::ConnectionAccepted, Reason::v3_connack),
            // A refused connection has no session (MQTT-3.2.2-4).
            session_present: session_present && refused.is_none(),
        }),
        Out::Publish(p) => P::Publish(Box::new(publish_out(*p, false))),
        Out::PubAck { packet_id, .. } => P::PublishAck {
            packet_id: pid(packet_id),
        },
        Out::SubAck { packet_id, results } => P::SubscribeAck {
            packet_id: pid(packet_id),
            status: results
                .into_iter()
                .map(|r| match r {
                    Ok(q) => v3::SubscribeReturnCode::Success(qos_of(q)),
                    Err(_) => v3::SubscribeReturnCode::Failure,
                })
                .collect(),
        },
        Out::UnsubAck { packet_id, .. } => P::UnsubscribeAck {
            packet_id: pid(packet_id),
        },
        Out::PingResp => P::PingResponse,
        Out::Disconnect { .. } => return None,
    })
}

fn reason5<T: TryFrom<u8>>(r: Reason, otherwise: T) -> T {
    T::try_from(r.code()).unwrap_or(otherwise)
}

pub(super) fn to_v5(out: Out) -> v5::Packet {
    use v5::Packet as P;
    match out {
        Out::ConnAck {
            session_present,
            refused,
            assigned_client_id,
            receive_max,
            max_packet_size,
            server_keep_alive,
            text,
        } => P::ConnectAck(Box::new(v5::ConnectAck {
            session_present: session_present && refused.is_none(),
            reason_code: refused.map_or(v5::ConnectAckReason::Success, |r| {
                reason5(r, v5::ConnectAckReason::UnspecifiedError)
            }),
            receive_max: NonZeroU16::new(receive_max).unwrap_or(NonZeroU16::MIN),
            max_qos: QoS::AtLeastOnce,
            max_packet_size: Some(max_packet_size),
            assigned_client_id: assigned_client_id.map(Into::into),
            topic_alias_max: 0,
            retain_available: false,
            wildcard_subscription_available: false,
            subscription_identifiers_available: false,
            shared_subscription_available: false,
            server_keepalive_sec: server_keep_alive,
            reason_string: text.map(Into::into),
            ..Default::default()
        })),
        Out::Publish(p) => P::Publish(Box::new(publish_out(*p, true))),
        Out::PubAck {
            packet_id,
            refused,
            text,
        } => P::PublishAck(v5::PublishAck {
            packet_id: pid(packet_id),
            reason_code: refused.map_or(v5::PublishAckReason::Success, |r| {
                reason5(r, v5::PublishAckReason::UnspecifiedError)
            }),
            properties: Vec::new(),
            reason_string: text.map(Into::into),
        }),
        Out::SubAck { packet_id, results } => P::SubscribeAck(v5::SubscribeAck {
            packet_id: pid(packet_id),
            properties: Vec::new(),
            reason_string: None,
            status: results
                .into_iter()
                .map(|r| match r {
                    Ok(0) => v5::SubscribeAckReason::GrantedQos0,
                    Ok(_) => v5::SubscribeAckReason::GrantedQos1,
                    Err(r) => reason5(r, v5::SubscribeAckReason::UnspecifiedError),
                })
                .collect(),
        }),
        Out::UnsubAck { packet_id, count } => P::UnsubscribeAck(v5::UnsubscribeAck {
            packet_id: pid(packet_id),
            properties: Vec::new(),
            reason_string: None,
            status: vec![v5::UnsubscribeAckReason::Success; count],
        }),
        Out::PingResp => P::PingResponse,
        Out::Disconnect { reason, text } => P::Disconnect(v5::Disconnect {
            reason_code: reason5(reason, v5::DisconnectReasonCode::UnspecifiedError),
            reason_string: text.map(Into::into),
            ..Default::default()
        }),
    }
}
