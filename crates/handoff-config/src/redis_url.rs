//! `redis.url`: which Redis topology handoff talks to. One URL names all three, so an
//! environment override (`HANDOFF_REDIS_URL`) can move a deployment between them:
//!
//! - `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS), `unix:///path`: one
//!   server (or a managed endpoint that fails over behind one address);
//! - `redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://` for
//!   TLS): Redis Cluster, from any of its nodes;
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`
//!   (`rediss+sentinel://`): the master Sentinel names `service`; the credentials and TLS
//!   apply to the data nodes, the sentinels are asked in the clear.
//!
//! Why one deployment stays on one slot (and so one shard) and how to spread past it:
//! docs/adr/0007-redis-topologies-and-scale-out.md.

use std::fmt;

/// The parsed `redis.url`. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server, as the `redis` crate reads the URL.
    Server {
        url: String,
    },
    /// Cluster seed nodes, each a one-server URL carrying the credentials and TLS mode.
    Cluster {
        nodes: Vec<String>,
    },
    Sentinel(SentinelTarget),
}

#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// `host:port` of each sentinel.
    pub sentinels: Vec<String>,
    /// The master's name in Sentinel (`sentinel monitor <service> …`).
    pub service: String,
    pub db: i64,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

const FORMS: &str = "redis://host:port[/db], rediss://…, unix:///path, \
    redis+cluster://host:port[,host:port…], redis+sentinel://host:port[,host:port…]/service[/db] \
    (rediss+… for TLS)";

impl RedisTopology {
    /// Reads a `redis.url`. The error says what is wrong and which forms are allowed.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("redis.url is not a URL; allowed forms: {FORMS}"));
        };
        match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => {
                if rest.is_empty() {
                    return Err(format!("redis.url has no host; allowed forms: {FORMS}"));
                }
                Ok(Self::Server {
                    url: url.to_owned(),
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                let tls = scheme.starts_with("rediss");
                let (credentials, hosts, path) = split_authority(rest);
                if !path.is_empty() {
                    return Err(
                        "redis.url: a cluster URL takes no path (Redis Cluster has only db 0)"
                            .to_owned(),
                    );
                }
                let hosts = host_list(hosts)?;
                let base = if tls { "rediss" } else { "redis" };
                let nodes = hosts
                    .iter()
                    .map(|host| match credentials {
                        Some(credentials) => format!("{base}://{credentials}@{host}"),
                        None => format!("{base}://{host}"),
                    })
                    .collect();
                Ok(Self::Cluster { nodes })
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let (credentials, hosts, path) = split_authority(rest);
                let sentinels = host_list(hosts)?;
                let mut segments = path.split('/').filter(|segment| !segment.is_empty());
                let Some(service) = segments.next() else {
                    return Err(
                        "redis.url: a sentinel URL names the master after the hosts: \
                         redis+sentinel://host:port/mymaster"
                            .to_owned(),
                    );
                };
                let db = match segments.next() {
                    None => 0,
                    Some(db) => db
                        .parse::<i64>()
                        .map_err(|_| format!("redis.url: database `{db}` is not a number"))?,
                };
                if segments.next().is_some() {
                    return Err(
                        "redis.url: a sentinel URL's path is /service[/db], nothing more"
                            .to_owned(),
                    );
                }
                let (username, password) = match credentials {
                    None => (None, None),
                    Some(credentials) => match credentials.split_once(':') {
                        Some((user, password)) => (
                            Some(user.to_owned()).filter(|user| !user.is_empty()),
                            Some(password.to_owned()),
                        ),
                        None => (Some(credentials.to_owned()), None),
                    },
                };
                Ok(Self::Sentinel(SentinelTarget {
                    sentinels,
                    service: service.to_owned(),
                    db,
                    tls: scheme.starts_with("rediss"),
                    username,
                    password,
                }))
            }
            other => Err(format!(
                "redis.url has scheme `{other}`; allowed forms: {FORMS}"
            )),
        }
    }
}

/// `[credentials@]hosts[/path]` → (credentials, hosts, path without the leading `/`).
fn split_authority(rest: &str) -> (Option<&str>, &str, &str) {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts, path),
        None => (None, authority, path),
    }
}

fn host_list(hosts: &str) -> Result<Vec<String>, String> {
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        return Err(format!("redis.url names no host; allowed forms: {FORMS}"));
    }
    for host in &hosts {
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "redis.url: `{host}` is not host:port (cluster and sentinel URLs list each node with its port)"
            ));
        }
    }
    Ok(hosts)
}

/// Replaces the password in a one-server URL, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match split_authority(rest) {
            (Some(credentials), hosts, path) => {
                let user = credentials.split_once(':').map_or("", |(user, _)| user);
                let path = if path.is_empty() {
                    String::new()
                } else {
                    format!("/{path}")
                };
                format!("{scheme}://{user}:***@{hosts}{path}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server { url } => f.debug_struct("Server").field("url", &redact(url)).finish(),
            Self::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field(
                    "nodes",
                    &nodes.iter().map(|n| redact(n)).collect::<Vec<_>>(),
                )
                .finish(),
            Self::Sentinel(target) => target.fmt(f),
        }
    }
}

impl fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinel")
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_urls_pass_through() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://user:pw@redis.internal:6380/2",
            "unix:///run/redis.sock",
        ] {
            assert_eq!(
                RedisTopology::parse(url),
                Ok(RedisTopology::Server {
                    url: url.to_owned()
                })
            );
        }
    }

    #[test]
    fn cluster_urls_list_every_seed_with_the_credentials() {
        assert_eq!(
            RedisTopology::parse("rediss+cluster://:secret@a:7000, b:7001"),
            Ok(RedisTopology::Cluster {
                nodes: vec![
                    "rediss://:secret@a:7000".to_owned(),
                    "rediss://:secret@b:7001".to_owned()
                ]
            })
        );
    }

    #[test]
    fn sentinel_urls_name_the_service_and_database() {
        let Ok(RedisTopology::Sentinel(target)) =
            RedisTopology::parse("redis+sentinel://app:pw@s1:26379,s2:26379/orders/3")
        else {
            panic!("a sentinel URL");
        };
        assert_eq!(target.sentinels, ["s1:26379", "s2:26379"]);
        assert_eq!(target.service, "orders");
        assert_eq!(target.db, 3);
        assert_eq!(target.username.as_deref(), Some("app"));
        assert_eq!(target.password.as_deref(), Some("pw"));
        assert!(!target.tls);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("localhost:6379", "not a URL"),
            ("http://x:1", "scheme `http`"),
            ("redis+sentinel://s1:26379", "names the master"),
            ("redis+sentinel://s1:26379/m/x", "not a number"),
            ("redis+cluster://a", "not host:port"),
            ("redis+cluster://a:1/0", "no path"),
            ("redis+cluster://", "names no host"),
            ("redis://", "no host"),
        ] {
            match RedisTopology::parse(url) {
                Err(error) => assert!(error.contains(says), "{url}: {error}"),
                Ok(parsed) => panic!("{url} was accepted as {parsed:?}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_a_password() {
        for url in [
            "redis://user:hunter2@h:1",
            "redis+cluster://:hunter2@a:1,b:2",
            "redis+sentinel://u:hunter2@s:1/m",
        ] {
            let shown = format!("{:?}", RedisTopology::parse(url));
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
