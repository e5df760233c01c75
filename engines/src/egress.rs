//! Where outbound requests to URLs a user named (Web Push endpoints) may
//! go: public unicast addresses only. Every range that reaches into the
//! deployment's own network, or embeds an IPv4 address that could (NAT64,
//! 6to4, Teredo, IPv4-mapped and IPv4-compatible IPv6), is refused.
//! Callers check the address actually connected to: the literal host of
//! the parsed URL the client connects with (`url::Url` turns `127.1`,
//! `0x7f000001` and `2130706433` into 127.0.0.1) and every address a name
//! resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const DENY: [([u8; 4], u32); 17] = [
        ([0, 0, 0, 0], 8),       // "this network"
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local (cloud metadata)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 31, 196, 0], 24), // AS112
        ([192, 52, 193, 0], 24), // AMT
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
    ];
    !DENY.iter().any(|&(net, bits)| in_v4(ip, net, bits))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    const DENY: [([u16; 8], u32); 14] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, IPv4-compatible
        ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), // IPv4-mapped
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96), // IPv4-translated
        ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), // NAT64
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local NAT64
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), // Teredo
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48), // benchmarking
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
    ];
    !DENY.iter().any(|&(net, bits)| in_v6(ip, net, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_pass() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} passed");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "142.250.1.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} refused");
        }
    }
}
