//! MQTT as the edge's second client protocol (docs/mqtt.md): packets of
//! MQTT 3.1.1 and 5, parsed and written by `rmqtt-codec`, seen through
//! one version-free vocabulary, so the edge handles both alike.
//!
//! Layout:
//! - this file: [`Codec`] (the protocol level is read from CONNECT, then
//!   every packet goes through that level's codec), what a client sends
//!   ([`In`]), what the server sends ([`Out`]), and MQTT 5's [`Reason`]
//!   codes with 3.1.1's nearest equivalents.
//! - `convert`: each version's packets to and from that vocabulary.
//! - [`topics`]: the topic mapping: which topic carries which frame of
//!   the JSON protocol, and which subscriptions a device may hold.

mod convert;
pub mod topics;

use bytes::{Bytes, BytesMut};
use convert::{from_v3, from_v5, to_v3, to_v5};
use rmqtt_codec::v5::ToReasonCode;
use rmqtt_codec::{v3, v5, MqttCodec, MqttPacket};
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 3.1 and 3.1.1.
    V3,
    V5,
}

/// A CONNECT, either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// The client asks to carry on a session: 3.1.1 `clean_session = 0`,
    /// MQTT 5 `clean_start = 0`.
    pub resume: bool,
    /// Seconds; 0 is none.
    pub keep_alive: u16,
    /// MQTT 5: QoS 1 publishes the client takes unacknowledged at once.
    pub receive_max: Option<u16>,
    /// MQTT 5: the largest packet the client takes.
    pub max_packet_size: Option<u32>,
    /// A will message was given (Parley publishes none: refused).
    pub will: bool,
}

/// A PUBLISH, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    /// 0, 1 or 2 as sent; the edge refuses 2.
    pub qos: u8,
    pub packet_id: Option<u16>,
    pub retain: bool,
    pub dup: bool,
    pub payload: Bytes,
    /// MQTT 5 request/response: where the answer goes, and what it echoes.
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In {
    Connect(Box<Connect>),
    Publish(Box<Publish>),
    PubAck(u16),
    Subscribe {
        packet_id: u16,
        /// Each filter with the QoS asked for.
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet a client has no business sending here (a server's
    /// packet, or QoS 2's handshake): its name.
    Unexpected(&'static str),
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    ConnAck {
        session_present: bool,
        /// `None` accepts the connection.
        refused: Option<Reason>,
        /// MQTT 5: the id the server gave a client that sent none.
        assigned_client_id: Option<String>,
        /// MQTT 5: QoS 1 publishes the server takes unacknowledged at once.
        receive_max: u16,
        max_packet_size: u32,
        /// MQTT 5: the keep-alive the server holds the client to.
        server_keep_alive: Option<u16>,
        text: Option<String>,
    },
    Publish(Box<Publish>),
    PubAck {
        packet_id: u16,
        /// MQTT 5 only; 3.1.1 has no way to refuse one publish.
        refused: Option<Reason>,
        text: Option<String>,
    },
    SubAck {
        packet_id: u16,
        /// Per filter: the QoS granted, or why not.
        results: Vec<Result<u8, Reason>>,
    },
    UnsubAck {
        packet_id: u16,
        count: usize,
    },
    PingResp,
    /// MQTT 5 only; a 3.1.1 server just closes the connection.
    Disconnect {
        reason: Reason,
        text: Option<String>,
    },
}

impl Out {
    /// The packet's name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Out::ConnAck { .. } => "connack",
            Out::Publish(_) => "publish",
            Out::PubAck { .. } => "puback",
            Out::SubAck { .. } => "suback",
            Out::UnsubAck { .. } => "unsuback",
            Out::PingResp => "pingresp",
            Out::Disconnect { .. } => "disconnect",
        }
    }
}

impl In {
    /// The packet's name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            In::Connect(_) => "connect",
            In::Publish(_) => "publish",
            In::PubAck(_) => "puback",
            In::Subscribe { .. } => "subscribe",
            In::Unsubscribe { .. } => "unsubscribe",
            In::PingReq => "pingreq",
            In::Disconnect => "disconnect",
            In::Unexpected(_) => "unexpected",
        }
    }
}

macro_rules! reasons {
    ($($name:ident = $code:literal, $label:literal;)+) => {
        /// The MQTT 5 reason codes Parley answers with. 3.1.1 has a few
        /// of them as CONNACK return codes and SUBACK's one failure; where
        /// it has none, the connection is closed and the reason logged.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Reason {
            $($name = $code,)+
        }

        impl Reason {
            /// Its name, for metrics and logs.
            pub fn label(self) -> &'static str {
                match self {
                    $(Reason::$name => $label,)+
                }
            }

            fn from_code(code: u8) -> Option<Reason> {
                match code {
                    $($code => Some(Reason::$name),)+
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    Normal = 0x00, "normal";
    UnspecifiedError = 0x80, "unspecified_error";
    MalformedPacket = 0x81, "malformed_packet";
    ProtocolError = 0x82, "protocol_error";
    ImplementationSpecific = 0x83, "implementation_specific";
    UnsupportedProtocolVersion = 0x84, "unsupported_protocol_version";
    ClientIdNotValid = 0x85, "client_id_not_valid";
    BadUserNameOrPassword = 0x86, "bad_username_or_password";
    NotAuthorized = 0x87, "not_authorized";
    ServerUnavailable = 0x88, "server_unavailable";
    ServerBusy = 0x89, "server_busy";
    ServerShuttingDown = 0x8B, "server_shutting_down";
    KeepAliveTimeout = 0x8D, "keep_alive_timeout";
    SessionTakenOver = 0x8E, "session_taken_over";
    TopicFilterInvalid = 0x8F, "topic_filter_invalid";
    TopicNameInvalid = 0x90, "topic_name_invalid";
    ReceiveMaximumExceeded = 0x93, "receive_maximum_exceeded";
    PacketTooLarge = 0x95, "packet_too_large";
    QuotaExceeded = 0x97, "quota_exceeded";
    PayloadFormatInvalid = 0x99, "payload_format_invalid";
    RetainNotSupported = 0x9A, "retain_not_supported";
    QosNotSupported = 0x9B, "qos_not_supported";
    ConnectionRateExceeded = 0x9F, "connection_rate_exceeded";
    WildcardsNotSupported = 0xA2, "wildcards_not_supported";
}

impl Reason {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// 3.1.1's CONNACK return code for a refusal.
    fn v3_connack(self) -> v3::ConnectAckReason {
        use v3::ConnectAckReason as R;
        match self {
            Reason::UnsupportedProtocolVersion => R::UnacceptableProtocolVersion,
            Reason::ClientIdNotValid => R::IdentifierRejected,
            Reason::BadUserNameOrPassword => R::BadUserNameOrPassword,
            Reason::NotAuthorized => R::NotAuthorized,
            _ => R::ServiceUnavailable,
        }
    }
}

/// A packet that could not be read: the connection ends with `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub reason: Reason,
    pub message: String,
}

impl From<rmqtt_codec::error::DecodeError> for DecodeError {
    fn from(e: rmqtt_codec::error::DecodeError) -> DecodeError {
        use rmqtt_codec::error::DecodeError as E;
        let reason = match &e {
            E::MaxSizeExceeded { .. } => Reason::PacketTooLarge,
            E::InvalidProtocol | E::UnsupportedProtocolLevel => Reason::UnsupportedProtocolVersion,
            other => Reason::from_code(u8::from(other.to_reason_code()))
                .unwrap_or(Reason::MalformedPacket),
        };
        DecodeError {
            reason,
            message: e.to_string(),
        }
    }
}

/// A packet could not be written (larger than the client takes, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

/// MQTT on one connection: the first packet must be a CONNECT, whose
/// protocol level picks the codec of every packet after it.
pub struct Codec {
    inner: MqttCodec,
    max_in: u32,
}

impl Codec {
    /// Packets larger than `max_in` bytes are refused (`PacketTooLarge`)
    /// before their body is read.
    pub fn new(max_in: u32) -> Codec {
        Codec {
            inner: MqttCodec::Version(rmqtt_codec::version::VersionCodec),
            max_in,
        }
    }

    /// A codec for a session whose CONNECT was read at `version`.
    pub fn for_version(version: Version, max_in: u32) -> Codec {
        let inner = match version {
            Version::V3 => MqttCodec::V3(v3::Codec::new(max_in)),
            Version::V5 => MqttCodec::V5(v5::Codec::new(max_in, 0)),
        };
        Codec { inner, max_in }
    }

    pub fn version(&self) -> Option<Version> {
        match self.inner {
            MqttCodec::V3(_) => Some(Version::V3),
            MqttCodec::V5(_) => Some(Version::V5),
            MqttCodec::Version(_) => None,
        }
    }

    /// Limits what this server writes to what the client said it takes.
    pub fn limit_out(&mut self, max: u32) {
        if let MqttCodec::V5(c) = &mut self.inner {
            c.set_max_outbound_size(max);
        }
    }

    /// The next whole packet in `buf`, if one is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<In>, DecodeError> {
        loop {
            let Some((packet, _)) = self.inner.decode(buf)? else {
                return Ok(None);
            };
            match packet {
                MqttPacket::Version(v) => {
                    self.inner = match v {
                        rmqtt_codec::version::ProtocolVersion::MQTT3 => {
                            MqttCodec::V3(v3::Codec::new(self.max_in))
                        }
                        rmqtt_codec::version::ProtocolVersion::MQTT5 => {
                            MqttCodec::V5(v5::Codec::new(self.max_in, 0))
                        }
                    };
                }
                MqttPacket::V3(p) => return Ok(Some(from_v3(p))),
                MqttPacket::V5(p) => return Ok(Some(from_v5(p))),
            }
        }
    }

    /// Writes `out` to `buf`; nothing for what the version has no packet
    /// for (a 3.1.1 DISCONNECT from a server).
    pub fn encode(&mut self, out: Out, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let packet = match self.version() {
            Some(Version::V3) => match to_v3(out) {
                Some(p) => MqttPacket::V3(p),
                None => return Ok(()),
            },
            Some(Version::V5) => MqttPacket::V5(to_v5(out)),
            // Before a CONNECT was read, the version is unknown: 3.1.1's
            // CONNACK is the one every client reads.
            None => {
                self.inner = MqttCodec::V3(v3::Codec::new(self.max_in));
                match to_v3(out) {
                    Some(p) => MqttPacket::V3(p),
                    None => return Ok(()),
                }
            }
        };
        self.inner
            .encode(packet, buf)
            .map_err(|e| EncodeError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
