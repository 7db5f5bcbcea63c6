//! `dsn.rpc_address`: an IPv4 endpoint packed in an i64,
//! `(ipv4 << 32) | (port << 16) | type` with type 1 = IPv4 and 0 = invalid.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// A server address as Pegasus sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RpcAddress(u64);

const TYPE_IPV4: u64 = 1;

impl RpcAddress {
    /// The invalid (empty) address.
    pub const INVALID: RpcAddress = RpcAddress(0);

    /// From the packed wire form.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The packed wire form.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// An IPv4 endpoint.
    pub fn from_v4(addr: SocketAddrV4) -> Self {
        Self((u64::from(u32::from(*addr.ip())) << 32) | (u64::from(addr.port()) << 16) | TYPE_IPV4)
    }

    /// From any socket address; IPv6 has no encoding and gives [`RpcAddress::INVALID`].
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(v4) => Self::from_v4(v4),
            SocketAddr::V6(_) => Self::INVALID,
        }
    }

    /// The endpoint, unless the address is invalid.
    pub fn to_socket_addr(self) -> Option<SocketAddr> {
        if self.0 & 0xffff != TYPE_IPV4 {
            return None;
        }
        let ip = Ipv4Addr::from((self.0 >> 32) as u32);
        let port = ((self.0 >> 16) & 0xffff) as u16;
        Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    }

    /// Whether this is a real address.
    pub fn is_valid(self) -> bool {
        self.to_socket_addr().is_some()
    }
}

impl fmt::Display for RpcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_socket_addr() {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("invalid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_packs_ip_port_and_type() {
        let a = RpcAddress::from_v4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 34801));
        assert_eq!(a.raw(), (0x7f00_0001u64 << 32) | (34801u64 << 16) | 1);
        assert_eq!(a.to_string(), "127.0.0.1:34801");
        assert_eq!(RpcAddress::from_raw(a.raw()), a);
        assert!(!RpcAddress::INVALID.is_valid());
        assert_eq!(RpcAddress::INVALID.to_string(), "invalid");
    }
}
