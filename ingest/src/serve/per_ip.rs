//! Open connections per client address, counted at accept, before any
//! byte is read or any sign-in: one host cannot take the listener's
//! places from everyone else. IPv6 addresses count per /64, the block one
//! subscriber is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections open per address, capped.
#[derive(Clone)]
pub struct PerIp {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
    exempt_loopback: bool,
}

/// A connection's place under its address's cap; given back on drop.
pub struct IpPlace {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl PerIp {
    /// At most `max` open per address (0: no cap); loopback peers are
    /// counted too unless `exempt_loopback`.
    pub fn new(max: usize, exempt_loopback: bool) -> PerIp {
        PerIp {
            open: Arc::default(),
            max,
            exempt_loopback,
        }
    }

    /// A place for a connection from `ip`, or `None` when its address
    /// already holds the most it may. `Some(None)`: not counted.
    pub fn admit(&self, ip: IpAddr) -> Option<Option<IpPlace>> {
        if self.max == 0 || (self.exempt_loopback && ip.to_canonical().is_loopback()) {
            return Some(None);
        }
        let key = key(ip);
        let mut open = self.open.lock().expect("per-ip map");
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Some(IpPlace {
            open: self.open.clone(),
            key,
        }))
    }
}

impl Drop for IpPlace {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("per-ip map");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What one client is: its IPv4 address (an IPv4-mapped IPv6 address is
/// the same client), or its IPv6 /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_places_back() {
        let cap = PerIp::new(2, false);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = cap.admit(ip).unwrap();
        let b = cap.admit(ip).unwrap();
        assert!(cap.admit(ip).is_none(), "a third is refused");
        assert!(cap.admit("203.0.113.8".parse().unwrap()).is_some());
        drop(a);
        assert!(cap.admit(ip).is_some(), "a place given back is free");
        drop(b);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let cap = PerIp::new(1, false);
        let _a = cap.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(cap.admit("2001:db8:1:2:ffff::9".parse().unwrap()).is_none());
        assert!(cap.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _b = cap.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert!(cap.admit("::ffff:192.0.2.1".parse().unwrap()).is_none());
    }

    #[test]
    fn loopback_is_counted_unless_exempted() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let counted = PerIp::new(1, false);
        let _a = counted.admit(lo).unwrap();
        assert!(counted.admit(lo).is_none());
        let exempt = PerIp::new(1, true);
        assert!(matches!(exempt.admit(lo), Some(None)));
        assert!(matches!(exempt.admit(lo), Some(None)));
    }
}
