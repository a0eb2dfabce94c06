//! `notifier.allowed_private_targets`: IP addresses and CIDR blocks, written in the file as a
//! list (`["127.0.0.1", "10.1.2.0/24"]`) or, from an environment variable, comma-separated.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP address (one host) or a CIDR block. Addresses, not host names: the notifier checks
/// the address it connects to, and a name can resolve to anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock(IpNet);

impl AddressBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl From<IpAddr> for AddressBlock {
    fn from(ip: IpAddr) -> Self {
        Self(IpNet::from(ip))
    }
}

impl FromStr for AddressBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            // Host bits set (`10.1.2.3/24`) most likely mean the block: say which one it is.
            .map(|net| Self(net.trunc()))
            .map_err(|_| {
                format!(
                    "`{text}` is not an IP address or CIDR block (e.g. 127.0.0.1 or 10.1.2.0/24)"
                )
            })
    }
}

impl fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Written as the file writes it (`10.1.2.0/24`).
impl Serialize for AddressBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A list, or one comma-separated string (what an environment override gives).
pub(crate) fn list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AddressBlock>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        List(Vec<String>),
        Text(String),
    }
    let items = match Written::deserialize(deserializer)? {
        Written::List(items) => items,
        Written::Text(text) => text
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::to_owned)
            .collect(),
    };
    items
        .iter()
        .map(|item| item.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Result<AddressBlock, String> {
        text.parse()
    }

    #[test]
    fn addresses_and_blocks_parse_and_contain_what_they_say() {
        let one = block("127.0.0.1");
        assert_eq!(one.map(|b| b.to_string()), Ok("127.0.0.1/32".to_owned()));
        let net = block("10.1.2.3/24");
        assert_eq!(net.map(|b| b.to_string()), Ok("10.1.2.0/24".to_owned()));
        let v6 = block("fd00::/8");
        assert!(v6.is_ok_and(|b| b.contains("fd12::1".parse().unwrap_or(IpAddr::from([0; 4])))));
        assert!(block("localhost:8090").is_err());
        assert!(block("10.0.0.0/33").is_err());
    }
}
