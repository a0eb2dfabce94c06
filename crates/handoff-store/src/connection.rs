//! One connection type over the three Redis topologies `redis.url` can name (see
//! handoff_config::RedisTopology). Every key of a deployment shares one hash tag, so each
//! script and pipeline addresses one slot and runs unchanged on a cluster; the rest of the
//! store only sees `ConnectionLike`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use handoff_config::{RedisTopology, SentinelTarget};

/// Bounded so a hung Redis shows up as an error to retry rather than a stuck consumer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: usize = 1;
const MAX_RECONNECT_DELAY_MS: u64 = 500;

#[derive(Clone)]
pub(crate) enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConnection),
}

impl Connection {
    pub async fn open(topology: &RedisTopology) -> RedisResult<Self> {
        Ok(match topology {
            RedisTopology::Server { url } => {
                Self::Server(manager(redis::Client::open(url.as_str())?).await?)
            }
            RedisTopology::Cluster { nodes } => Self::Cluster(
                ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(RETRIES as u32)
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
            RedisTopology::Sentinel(target) => {
                Self::Sentinel(SentinelConnection::open(target).await?)
            }
        })
    }

    /// Runs a command that names no key (SCAN) on the node holding `key`'s slot: on a
    /// cluster it would otherwise go to a random node, which does not hold our keys.
    pub async fn on_node_of(&mut self, key: &str, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Cluster(cluster) => {
                let slot: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(cluster)
                    .await?;
                let route = Route::new(slot, SlotAddr::Master);
                cluster
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
            }
            other => other.req_packed_command(cmd).await,
        }
    }
}

async fn manager(client: redis::Client) -> RedisResult<ConnectionManager> {
    // The reconnect backoff is the `backon` crate's: a 1 s first delay multiplied by
    // `factor` each time. The redis crate's default factor (100) makes the second delay
    // 100 s, so a request that met a dead server waited minutes (measured: 210 s) instead
    // of failing for its caller to retry with its own budget. Short and bounded instead.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT)
        .set_factor(2)
        .set_max_delay(MAX_RECONNECT_DELAY_MS)
        .set_number_of_retries(RETRIES);
    ConnectionManager::new_with_config(client, config).await
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
            Self::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
            Self::Sentinel(connection) => connection.get_db(),
        }
    }
}

/// The master Sentinel names, re-asked when the master stops answering as one: a
/// `ConnectionManager` reconnects to the address it was given, which after a failover is
/// a replica (READONLY) or gone. The request that saw the failover fails transiently, as
/// any Redis blip does, and the caller's retry reaches the new master.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<SentinelShared>,
    current: ConnectionManager,
}

struct SentinelShared {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The newest connection; each clone checks it before a request.
    latest: RwLock<(u64, ConnectionManager)>,
}

impl SentinelConnection {
    async fn open(target: &SentinelTarget) -> RedisResult<Self> {
        let scheme = "redis";
        let sentinels: Vec<String> = target
            .sentinels
            .iter()
            .map(|host| format!("{scheme}://{host}"))
            .collect();
        let node = SentinelNodeConnectionInfo {
            tls_mode: target.tls.then_some(redis::TlsMode::Secure),
            redis_connection_info: Some(redis::RedisConnectionInfo {
                db: target.db,
                username: target.username.clone(),
                password: target.password.clone(),
                ..Default::default()
            }),
        };
        let mut sentinel = SentinelClient::build(
            sentinels,
            target.service.clone(),
            Some(node),
            SentinelServerType::Master,
        )?;
        let current = manager(sentinel.async_get_client().await?).await?;
        Ok(Self {
            shared: Arc::new(SentinelShared {
                sentinel: tokio::sync::Mutex::new(sentinel),
                latest: RwLock::new((0, current.clone())),
            }),
            current,
        })
    }

    fn latest(&self) -> (u64, ConnectionManager) {
        match self.shared.latest.read() {
            Ok(latest) => latest.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Asks Sentinel for the master again, once per failover however many requests saw it.
    async fn follow_failover(shared: &SentinelShared, seen: u64) {
        let mut sentinel = shared.sentinel.lock().await;
        let current = match shared.latest.read() {
            Ok(latest) => latest.0,
            Err(poisoned) => poisoned.into_inner().0,
        };
        if current != seen {
            return; // another request already followed it
        }
        let Ok(client) = sentinel.async_get_client().await else {
            return; // sentinels unreachable: the next failure asks again
        };
        if let Ok(connection) = manager(client).await {
            let mut latest = match shared.latest.write() {
                Ok(latest) => latest,
                Err(poisoned) => poisoned.into_inner(),
            };
            *latest = (seen + 1, connection);
            tracing::warn!("redis: followed a Sentinel failover to the new master");
        }
    }

    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, connection) = self.latest();
            self.current = connection;
            let result = self.current.req_packed_command(cmd).await;
            self.after(generation, result).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, connection) = self.latest();
            self.current = connection;
            let result = self
                .current
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.after(generation, result).await
        })
    }

    async fn after<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(error) = &result {
            if master_moved(error) {
                Self::follow_failover(&self.shared, generation).await;
            }
        }
        result
    }

    fn get_db(&self) -> i64 {
        self.current.get_db()
    }
}

/// Errors after which the address we hold may no longer be the master.
fn master_moved(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(error.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
}
