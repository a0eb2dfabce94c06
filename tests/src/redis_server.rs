//! A redis-server of one test's own, for the tests that kill, restart or wipe Redis (the
//! shared one on `HANDOFF_TEST_REDIS` serves every other test at the same time).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How the server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// No RDB, no AOF: a restart comes back empty (as `make run`'s Redis does).
    None,
    /// AOF fsynced on every write, as production runs it: a `kill -9` loses nothing.
    AofAlways,
}

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub async fn start(persistence: Persistence) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let dir = std::env::temp_dir().join(format!("handoff-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("the server's folder");
        let mut server = Self {
            port,
            dir,
            persistence,
            child: None,
        };
        server.up().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`Self::kill`]) on the same port and folder: with
    /// `AofAlways` it comes back with every acknowledged write.
    pub async fn up(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::AofAlways => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"])
            }
        };
        self.child = Some(
            command
                .spawn()
                .expect("redis-server (make test installs it)"),
        );
        let client = redis::Client::open(self.url()).expect("redis url");
        crate::eventually(
            Duration::from_secs(10),
            "redis-server to answer",
            || async {
                let mut connection = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .ok()
            },
        )
        .await;
    }

    /// `kill -9`: no goodbye, no final save.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Kills the server and starts it again: empty without persistence.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.up().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The server dies with its handle (kill_on_drop); its folder goes too.
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
