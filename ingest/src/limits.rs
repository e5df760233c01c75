//! Every limit on what one client can send or hold open, with its default.
//! docs/security.md says why each default is what it is; each limit, when
//! met, counts in `parley_limit_hits_total{limit}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The edge's limits (`[limits]` in the config file, `PARLEY__LIMITS__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A write to a socket that waits longer closes it (code 1013): the
    /// client stopped reading.
    pub write_timeout_ms: u64,
    /// A socket that sends nothing for this long (not even a pong) is
    /// closed; clients heartbeat every 5 s.
    pub idle_timeout_ms: u64,
    /// How often the edge pings a socket.
    pub ping_every_ms: u64,
    /// Bytes of answers one socket may have queued for writing.
    pub out_bytes: usize,
    /// Sustained sends per second per user, and the burst above it.
    pub sends_per_sec: u32,
    pub sends_burst: u32,
    /// Receipts per second per user, and the burst.
    pub receipts_per_sec: u32,
    pub receipts_burst: u32,
    /// Heartbeats and typing notices per second per user, and the burst.
    pub heartbeats_per_sec: u32,
    pub heartbeats_burst: u32,
    /// Scrollback and conversation-list reads per second per user, and the burst.
    pub history_per_sec: u32,
    pub history_burst: u32,
    /// Sign-in attempts per minute per client address and per username.
    pub sign_ins_per_min_per_ip: u32,
    pub sign_ins_per_min_per_account: u32,
    /// Sign-ups per hour per client address.
    pub sign_ups_per_hour_per_ip: u32,
    /// Behind a proxy: take the client's address from `X-Forwarded-For`
    /// (the same as `trusted_proxy_hops = 1`). Loopback peers without it
    /// are not limited per address.
    pub trust_forwarded_for: bool,
    /// Proxies in front of the edge that each append the address they saw
    /// to `X-Forwarded-For`: the client's is that many entries from the
    /// right. 0: the header is not read.
    pub trusted_proxy_hops: usize,
    /// Password hashes computed at once; more wait their turn.
    pub hashes_at_once: usize,
    /// Open WebSockets on this edge, and per user.
    pub sockets: usize,
    pub sockets_per_user: usize,
    /// Open connections per listener (a WebSocket counts under `sockets`
    /// once upgraded).
    pub connections: usize,
    /// Open connections per client address (IPv6: per /64), counted at
    /// accept; 0: no cap. Behind a proxy every client shares its address:
    /// raise it or set 0 there.
    pub connections_per_ip: usize,
    /// Loopback peers are not counted per address (load tests). Off by
    /// default: a local attacker counts too.
    pub connections_per_ip_exempt_loopback: bool,
    /// From accept to a request's headers (TLS handshake and HTTP/2
    /// preface included), and for each later request's headers.
    pub header_timeout_ms: u64,
    /// A request body has this long, then must keep up
    /// `body_min_bytes_per_sec` on average (0: no minimum).
    pub body_timeout_ms: u64,
    pub body_min_bytes_per_sec: u32,
    /// Sends are refused (`unavailable`, `Retry-After`) while delivery is
    /// more than this far behind; below it the log absorbs the spike. 0:
    /// never refuse.
    pub shed_behind_ms: u64,
    /// The largest upload, in bytes (`too_large` above it).
    pub media_max_bytes: u64,
    /// Bytes one user may upload per day (UTC), per edge.
    pub media_bytes_per_day: u64,
    /// Uploads per minute per user (and the burst).
    pub media_uploads_per_min: u32,
    /// Resumable upload chunks (`PUT`) per minute per user, and the burst.
    pub media_chunks_per_min: u32,
    /// An upload that sends nothing for this long is dropped.
    pub media_stall_ms: u64,
    /// An upload never sent in a message is deleted after this.
    pub media_unsent_ms: u64,
    /// A resumable upload session is deleted this long after it began.
    pub media_session_ms: u64,
    /// Key bundle fetches (`GET /v1/users/{id}/keys`) per minute per
    /// caller: each takes one-time prekeys that cannot be given back.
    pub key_claims_per_min: u32,
    /// Changes that append to the account log (profile, contacts, blocks,
    /// privacy, groups, invites, push and conversation settings, token
    /// refreshes) per minute per user, and the burst.
    pub account_changes_per_min: u32,
    pub account_changes_burst: u32,
    /// Profile and presence look-ups (`GET /v1/users/{id}`,
    /// `/v1/users/{id}/presence`) per minute per caller, and the burst.
    pub lookups_per_min: u32,
    pub lookups_burst: u32,
    /// Push subscriptions one user may hold, across their devices.
    pub push_subscriptions_per_user: usize,
    /// Accept Web Push endpoints over plain `http://` (a push service on
    /// a private network, or a test's). Off: `https://` only.
    pub push_http_endpoints: bool,
    /// How long after sending a text its sender may edit it.
    pub edit_window_ms: u64,
    /// How long after sending a message its sender (or a group admin)
    /// may delete it for everyone.
    pub delete_window_ms: u64,
    /// Forwarded sends per minute per user, and how many chats one
    /// forward may reach at once (the burst), against viral spam.
    pub forwards_per_min: u32,
    pub forwards_burst: u32,
    /// The largest MQTT packet read; a larger one ends the connection
    /// (MQTT 5: DISCONNECT 0x95).
    pub mqtt_max_packet: u32,
    /// QoS 1 messages an MQTT device holds unacknowledged at once (its
    /// MQTT 5 receive maximum, if smaller, wins).
    pub mqtt_inflight: u16,
    /// MQTT connections a client address may open per minute.
    pub mqtt_connects_per_min_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            ping_every_ms: 20_000,
            out_bytes: 1 << 20,
            sends_per_sec: 100,
            // A client's outbox after a day offline may hold a few
            // thousand; a flood of 3,000 at once still meets the limit.
            sends_burst: 2_000,
            receipts_per_sec: 200,
            receipts_burst: 2_000,
            heartbeats_per_sec: 10,
            heartbeats_burst: 50,
            history_per_sec: 20,
            history_burst: 100,
            sign_ins_per_min_per_ip: 30,
            sign_ins_per_min_per_account: 20,
            sign_ups_per_hour_per_ip: 60,
            trust_forwarded_for: false,
            trusted_proxy_hops: 0,
            hashes_at_once: 4,
            sockets: 200_000,
            sockets_per_user: 16,
            connections: 50_000,
            // Room for a carrier-grade NAT's users behind one address;
            // far below what fills `connections`.
            connections_per_ip: 1_024,
            connections_per_ip_exempt_loopback: false,
            header_timeout_ms: 10_000,
            // Apache's mod_reqtimeout: body=20,MinRate=500.
            body_timeout_ms: 20_000,
            body_min_bytes_per_sec: 500,
            shed_behind_ms: 30_000,
            media_max_bytes: 100 << 20,
            media_bytes_per_day: 2 << 30,
            media_uploads_per_min: 30,
            // A 100 MiB file in 1 MiB chunks, twice over, in a minute.
            media_chunks_per_min: 200,
            media_stall_ms: 30_000,
            media_unsent_ms: 24 * 3600 * 1000,
            media_session_ms: 24 * 3600 * 1000,
            key_claims_per_min: 60,
            // A person changes a setting now and then; a client that
            // migrates a contact list in a burst still fits.
            account_changes_per_min: 60,
            account_changes_burst: 300,
            // Opening a large group looks up its members' profiles.
            lookups_per_min: 600,
            lookups_burst: 1_100,
            push_subscriptions_per_user: 20,
            push_http_endpoints: false,
            edit_window_ms: parley_schemas::wire::EDIT_WINDOW_MS,
            delete_window_ms: parley_schemas::wire::DELETE_WINDOW_MS,
            forwards_per_min: 20,
            // WhatsApp's "forward to at most 5 chats".
            forwards_burst: 5,
            // A frame as large as a WebSocket may send, with room for the
            // topic and properties.
            mqtt_max_packet: (parley_schemas::wire::MAX_FRAME_BYTES + 4096) as u32,
            mqtt_inflight: 128,
            mqtt_connects_per_min_per_ip: 60,
        }
    }
}

/// The client's address in an `X-Forwarded-For` value behind `hops`
/// trusted proxies: the entry `hops` from the right. `None` with no trusted
/// proxy, or when the header holds fewer entries than proxies (it was not
/// written by them).
pub fn forwarded_client(header: &str, hops: usize) -> Option<std::net::IpAddr> {
    if hops == 0 {
        return None;
    }
    let entries: Vec<&str> = header.split(',').map(str::trim).collect();
    let at = entries.len().checked_sub(hops)?;
    entries[at].parse().ok()
}

impl Limits {
    /// How many proxies' `X-Forwarded-For` entries are trusted.
    pub fn proxy_hops(&self) -> usize {
        self.trusted_proxy_hops
            .max(usize::from(self.trust_forwarded_for))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn ping_every(&self) -> Duration {
        Duration::from_millis(self.ping_every_ms.max(1))
    }

    pub fn media_stall(&self) -> Duration {
        Duration::from_millis(self.media_stall_ms.max(1))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;

    #[test]
    fn the_client_is_read_from_the_right_past_the_trusted_proxies() {
        // A client that writes its own header cannot choose its address.
        let h = "6.6.6.6, 203.0.113.9";
        assert_eq!(forwarded_client(h, 1), Some("203.0.113.9".parse().unwrap()));
        let h = "6.6.6.6, 203.0.113.9, 10.0.0.2";
        assert_eq!(forwarded_client(h, 2), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(forwarded_client(h, 0), None, "no proxy trusted");
        assert_eq!(forwarded_client("203.0.113.9", 2), None, "too few entries");
        assert_eq!(forwarded_client("not an address", 1), None);
    }
}
