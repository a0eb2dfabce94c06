//! Which addresses webhooks may go to. A webhook URL comes from the rules file, and the
//! notifier runs inside the network: without a check, a URL naming `127.0.0.1`, an
//! internal service or the cloud metadata endpoint (169.254.169.254) turns the notifier
//! into a way in. Only public addresses are allowed, plus what
//! `notifier.allowed_private_targets` names.
//!
//! The check is on the address actually connected to, not on the URL's text: IP literals
//! are checked before the request, and host names are resolved by [`GuardedResolver`],
//! which hands reqwest only permitted addresses. reqwest connects to exactly those, so a
//! name that resolves to loopback (`localhost`, a rebinding DNS server) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use handoff_config::AddressBlock;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Addresses that are not the public internet (IANA special-purpose registries).
const NON_PUBLIC_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8), // "this network" (0.0.0.0 reaches localhost)
    (Ipv4Addr::new(10, 0, 0, 0), 8), // private
    (Ipv4Addr::new(100, 64, 0, 0), 10), // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12), // private
    (Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24), // documentation
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24), // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, broadcast
];

const NON_PUBLIC_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),  // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),  // multicast
];

/// Why a webhook target was refused; never carries the URL (URLs carry tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedTarget {
    #[error("webhook target {0} is a private, loopback or link-local address not in notifier.allowed_private_targets")]
    NonPublic(IpAddr),
    #[error("webhook host resolves only to private, loopback or link-local addresses ({}) not in notifier.allowed_private_targets", list(.0))]
    NonPublicName(Vec<IpAddr>),
    #[error("webhook URL has no host or is not http(s)")]
    NotHttp,
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The addresses webhooks may reach.
#[derive(Debug, Clone, Default)]
pub(crate) struct EgressPolicy {
    allowed_private: Vec<AddressBlock>,
}

impl EgressPolicy {
    pub(crate) fn new(allowed_private: Vec<AddressBlock>) -> Self {
        Self { allowed_private }
    }

    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.allowed_private.iter().any(|block| block.contains(ip))
    }

    /// Checks what can be checked before connecting: the scheme, and the address when
    /// the URL names one (reqwest does not resolve IP literals, so the resolver never
    /// sees them).
    pub(crate) fn check_url(&self, url: &str) -> Result<(), RefusedTarget> {
        let url = reqwest::Url::parse(url).map_err(|_| RefusedTarget::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RefusedTarget::NotHttp);
        }
        let host = url.host_str().ok_or(RefusedTarget::NotHttp)?;
        // The parser normalizes every spelling of an address (`2130706433`, `0x7f.1`) to
        // dotted or bracketed form, so what does not parse here is a name.
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(RefusedTarget::NonPublic(ip))
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::7f00:1`) is
/// judged, and allowed, as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let [a, b, c, d, e, f, _, _] = v6.segments();
            if [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., w, x, y, z] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(w, x, y, z));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => !NON_PUBLIC_V4
            .iter()
            .any(|(net, bits)| in_v4_block(v4, *net, *bits)),
        IpAddr::V6(v6) => !NON_PUBLIC_V6
            .iter()
            .any(|(net, bits)| in_v6_block(v6, *net, *bits)),
    }
}

fn in_v4_block(ip: Ipv4Addr, net: Ipv4Addr, bits: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6_block(ip: Ipv6Addr, net: Ipv6Addr, bits: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Resolves with the system resolver and passes on only permitted addresses; when none
/// is left, fails with [`RefusedTarget`] (found again in the request error's sources).
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (permitted, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|addr| policy.permits(addr.ip()));
            if permitted.is_empty() && !refused.is_empty() {
                let refused = refused.iter().map(SocketAddr::ip).collect();
                return Err(Box::new(RefusedTarget::NonPublicName(refused)) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The [`RefusedTarget`] behind a request error, if that is why it failed.
pub(crate) fn refusal(error: &reqwest::Error) -> Option<RefusedTarget> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RefusedTarget>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn blocks(items: &[&str]) -> Vec<AddressBlock> {
        items.iter().filter_map(|b| b.parse().ok()).collect()
    }

    #[test]
    fn only_public_addresses_pass_by_default() {
        let policy = EgressPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(policy.permits(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_allowlist_opens_exactly_what_it_names() {
        let policy = EgressPolicy::new(blocks(&["127.0.0.1", "10.1.2.0/24", "fd00::/8"]));
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(
            policy.permits(ip("::ffff:127.0.0.1")),
            "mapped v6 is the v4 address"
        );
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("10.1.2.200")));
        assert!(!policy.permits(ip("10.1.3.1")));
        assert!(policy.permits(ip("fd00::5")));
        assert!(!policy.permits(ip("::1")));
        assert!(!policy.permits(ip("169.254.169.254")));
    }

    #[test]
    fn urls_naming_addresses_are_checked_before_connecting() {
        let policy = EgressPolicy::default();
        let refused = |url: &str| policy.check_url(url).err();
        assert_eq!(
            refused("http://127.0.0.1:8090/hooks/a?token=x"),
            Some(RefusedTarget::NonPublic(ip("127.0.0.1")))
        );
        // Other spellings of loopback, normalized by the URL parser.
        assert!(refused("http://2130706433/").is_some());
        assert!(refused("http://0x7f.1/").is_some());
        assert!(refused("http://[::ffff:7f00:1]/").is_some());
        assert!(refused("http://[::1]:80/").is_some());
        assert!(refused("http://169.254.169.254/latest/meta-data/").is_some());
        assert_eq!(refused("file:///etc/passwd"), Some(RefusedTarget::NotHttp));
        // Names are left to the resolver.
        assert_eq!(refused("https://hooks.slack.com/services/x"), None);
        assert_eq!(refused("https://1.1.1.1/hook"), None);
    }

    #[test]
    fn a_refusal_never_names_the_url() {
        let message = RefusedTarget::NonPublicName(vec![ip("127.0.0.1"), ip("::1")]).to_string();
        assert_eq!(
            message,
            "webhook host resolves only to private, loopback or link-local addresses (127.0.0.1, ::1) not in notifier.allowed_private_targets"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_to_nothing_the_default_policy_permits() {
        let resolver = GuardedResolver::new(Arc::new(EgressPolicy::default()));
        let name: Name = match "localhost".parse() {
            Ok(name) => name,
            Err(_) => panic!("a valid name"),
        };
        let outcome = resolver.resolve(name).await;
        let refused = outcome
            .err()
            .and_then(|e| e.downcast_ref::<RefusedTarget>().cloned());
        assert!(
            matches!(refused, Some(RefusedTarget::NonPublicName(_))),
            "{refused:?}"
        );
    }
}
