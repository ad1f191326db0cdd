//! Which addresses plugins' outbound HTTP may connect to: every public address, and an address
//! outside the public internet (loopback, private, link-local, CGNAT, multicast, documentation,
//! benchmarking, reserved, cloud metadata; IPv4 and IPv6, including the IPv4-mapped,
//! -compatible, NAT64 and 6to4 forms of such an IPv4 address) only when its range is granted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

/// A network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        AddressRange {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        AddressRange {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in the range, either as it is or, for an IPv6 address that carries an
    /// IPv4 address (mapped, compatible, NAT64, 6to4), as that IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_exactly(ip)
            || embedded_v4(ip).is_some_and(|v4| self.contains_exactly(v4.into()))
    }

    fn contains_exactly(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of the `width` bits of `a` and `b` agree.
fn prefix_matches(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix);
    (a >> shift) == (b >> shift)
}

impl FromStr for AddressRange {
    type Err = String;

    /// `127.0.0.1`, `10.0.0.0/8`, `::1`, `[::1]`, `fd00::/8`; the bits after the prefix must be
    /// zero.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("{text:?} is not an address or range: {why}");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let network: IpAddr = addr.parse().map_err(|_| {
            bad("write an IP address, optionally with `/prefix` (10.0.0.0/8, fd00::/8)")
        })?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| bad(&format!("the prefix must be 0..={width}")))?,
        };
        let range = AddressRange { network, prefix };
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => v6.to_bits(),
        };
        let host_bits = if prefix == width {
            0
        } else {
            bits(network) & (u128::MAX >> (128 - u32::from(width - prefix)))
        };
        if host_bits != 0 {
            return Err(bad("it has bits set after the prefix"));
        }
        Ok(range)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == width {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// Cloud metadata services (AWS, GCP, Azure, Huawei: 169.254.169.254; ECS: 169.254.170.2;
/// Tencent Cloud: 169.254.0.23; Alibaba Cloud: 100.100.100.200; Oracle: 192.0.0.192; AWS over
/// IPv6: fd00:ec2::254). Each is in a non-public range anyway; naming them makes the refusal
/// say what was at stake.
const METADATA: &[AddressRange] = &[
    AddressRange::v4(169, 254, 169, 254, 32),
    AddressRange::v4(169, 254, 170, 2, 32),
    AddressRange::v4(169, 254, 0, 23, 32),
    AddressRange::v4(100, 100, 100, 200, 32),
    AddressRange::v4(192, 0, 0, 192, 32),
    AddressRange::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
];

/// IPv4 ranges that are not the public internet (IANA special-purpose registry), most specific
/// first.
const NON_PUBLIC_V4: &[(AddressRange, &str)] = &[
    (AddressRange::v4(0, 0, 0, 0, 32), "unspecified"),
    (AddressRange::v4(255, 255, 255, 255, 32), "broadcast"),
    (AddressRange::v4(0, 0, 0, 0, 8), "reserved (this network)"),
    (AddressRange::v4(10, 0, 0, 0, 8), "private"),
    (AddressRange::v4(100, 64, 0, 0, 10), "shared (CGNAT)"),
    (AddressRange::v4(127, 0, 0, 0, 8), "loopback"),
    (AddressRange::v4(169, 254, 0, 0, 16), "link-local"),
    (AddressRange::v4(172, 16, 0, 0, 12), "private"),
    (
        AddressRange::v4(192, 0, 0, 0, 24),
        "reserved (IETF protocol assignments)",
    ),
    (AddressRange::v4(192, 0, 2, 0, 24), "documentation"),
    (
        AddressRange::v4(192, 88, 99, 0, 24),
        "reserved (6to4 relay)",
    ),
    (AddressRange::v4(192, 168, 0, 0, 16), "private"),
    (AddressRange::v4(198, 18, 0, 0, 15), "benchmarking"),
    (AddressRange::v4(198, 51, 100, 0, 24), "documentation"),
    (AddressRange::v4(203, 0, 113, 0, 24), "documentation"),
    (AddressRange::v4(224, 0, 0, 0, 4), "multicast"),
    (AddressRange::v4(240, 0, 0, 0, 4), "reserved"),
];

/// IPv6 ranges inside global unicast (2000::/3) that are not the public internet; everything
/// outside 2000::/3 is refused too, except the NAT64 and mapped forms of public IPv4.
const NON_PUBLIC_V6: &[(AddressRange, &str)] = &[
    (
        AddressRange::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation",
    ),
    (
        AddressRange::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "reserved (IETF protocol assignments)",
    ),
    (
        AddressRange::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation",
    ),
];

/// Why `ip` is not a public internet address (`"loopback"`, `"private"`, …), or `None` when it
/// is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    if METADATA.iter().any(|m| m.contains(ip)) {
        return Some("cloud metadata");
    }
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    NON_PUBLIC_V4
        .iter()
        .find(|(range, _)| range.contains_exactly(ip.into()))
        .map(|(_, kind)| *kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_v4(ip.into()) {
        // The mapped, NAT64 and 6to4 forms reach the IPv4 address they carry; the deprecated
        // compatible form (`::a.b.c.d`) is reserved space whatever it carries.
        let compatible = ip.segments()[..6] == [0; 6];
        return match non_public_v4(v4) {
            Some(kind) => Some(kind),
            None if compatible => Some("reserved (IPv4-compatible)"),
            None => None,
        };
    }
    let first = ip.segments()[0];
    if first & 0xfe00 == 0xfc00 {
        return Some("private (unique local)");
    }
    if first & 0xffc0 == 0xfe80 {
        return Some("link-local");
    }
    if first & 0xffc0 == 0xfec0 {
        return Some("site-local (deprecated)");
    }
    if first & 0xff00 == 0xff00 {
        return Some("multicast");
    }
    if first & 0xe000 != 0x2000 {
        return Some("reserved");
    }
    NON_PUBLIC_V6
        .iter()
        .find(|(range, _)| range.contains_exactly(ip.into()))
        .map(|(_, kind)| *kind)
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, other than `::` and `::1`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] if !v6.is_unspecified() && !v6.is_loopback() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The addresses one plugin's outbound HTTP may connect to: every public address, and the
/// non-public ones in its granted ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    granted: Arc<[AddressRange]>,
}

/// A connection refused by an [`AddressPolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The address.
    pub ip: IpAddr,
    /// Why it is not public (`"loopback"`, …).
    pub kind: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is a {} address, not granted to this plugin",
            self.ip, self.kind
        )
    }
}

impl std::error::Error for Refused {}

impl AddressPolicy {
    /// Public addresses, and the non-public ones in `granted`.
    pub fn new(granted: impl Into<Arc<[AddressRange]>>) -> Self {
        AddressPolicy {
            granted: granted.into(),
        }
    }

    /// Whether only public addresses are allowed.
    pub fn is_public_only(&self) -> bool {
        self.granted.is_empty()
    }

    /// The granted non-public ranges.
    pub fn granted(&self) -> &[AddressRange] {
        &self.granted
    }

    /// Whether a connection to `ip` is allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        match non_public(ip) {
            None => Ok(()),
            Some(_) if self.granted.iter().any(|range| range.contains(ip)) => Ok(()),
            Some(kind) => Err(Refused { ip, kind }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn range(text: &str) -> AddressRange {
        text.parse().expect("a range")
    }

    #[test]
    fn public_addresses_are_public() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "101.226.103.106",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2400:3200::1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn every_special_range_is_refused_with_its_kind() {
        for (address, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.1.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.0.23", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("192.0.0.192", "cloud metadata"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "reserved (this network)"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.0.8", "reserved (IETF protocol assignments)"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:10.0.0.1", "private"),
            ("::8.8.8.8", "reserved (IPv4-compatible)"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("64:ff9b:1::1", "reserved"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
            ("100::1", "reserved"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "reserved (IETF protocol assignments)"),
            ("2001:2::1", "reserved (IETF protocol assignments)"),
            ("4000::1", "reserved"),
        ] {
            assert_eq!(non_public(ip(address)), Some(kind), "{address}");
        }
    }

    #[test]
    fn ranges_parse_strictly_and_print_back() {
        assert_eq!(range("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("127.0.0.1").to_string(), "127.0.0.1");
        assert_eq!(range("127.0.0.1/32").to_string(), "127.0.0.1");
        assert_eq!(range("[::1]").to_string(), "::1");
        assert_eq!(range("fd00::/8").to_string(), "fd00::/8");
        assert_eq!(range("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "localhost",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_contain_their_addresses_in_every_form() {
        let loopback = range("127.0.0.0/8");
        assert!(loopback.contains(ip("127.0.0.1")) && loopback.contains(ip("127.9.9.9")));
        assert!(loopback.contains(ip("::ffff:127.0.0.1")));
        assert!(loopback.contains(ip("64:ff9b::7f00:1")));
        assert!(!loopback.contains(ip("128.0.0.1")) && !loopback.contains(ip("::1")));
        let one = range("10.1.2.3");
        assert!(one.contains(ip("10.1.2.3")) && !one.contains(ip("10.1.2.4")));
        let ula = range("fd00::/8");
        assert!(ula.contains(ip("fd12::1")) && !ula.contains(ip("fc00::1")));
        assert!(range("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!range("0.0.0.0/0").contains(ip("2400::1")));
    }

    #[test]
    fn a_policy_allows_public_addresses_and_only_granted_others() {
        let public_only = AddressPolicy::default();
        assert!(public_only.check(ip("8.8.8.8")).is_ok());
        let refused = public_only.check(ip("127.0.0.1")).expect_err("loopback");
        assert_eq!(refused.kind, "loopback");
        assert_eq!(
            refused.to_string(),
            "127.0.0.1 is a loopback address, not granted to this plugin"
        );
        let granted = AddressPolicy::new(vec![range("127.0.0.1"), range("10.0.0.0/8")]);
        assert!(granted.check(ip("127.0.0.1")).is_ok());
        assert!(granted.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(granted.check(ip("10.200.0.1")).is_ok());
        assert!(granted.check(ip("127.0.0.2")).is_err());
        assert!(granted.check(ip("::1")).is_err());
        assert!(granted.check(ip("169.254.169.254")).is_err());
        assert!(granted.check(ip("8.8.8.8")).is_ok());
    }
}
