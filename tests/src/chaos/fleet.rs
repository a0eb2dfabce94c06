//! handoff's services as separate processes (`handoff <service> --config F`), each
//! instance killed, restarted or stopped on its own. Their logs go to `<dir>/<name>.log`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// One instance of a service.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub service: &'static str,
    child: Option<Child>,
}

impl Instance {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

#[derive(Debug)]
pub struct Fleet {
    binary: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    /// Ingest's fixed listen address (traffic follows it across restarts).
    pub ingest_listen: String,
    /// Static group membership: every instance runs with its name as
    /// `kafka.group_instance_id`, and a restarted instance keeps it, as a Kubernetes pod
    /// restarted in place keeps its name (deploy/k8s sets it from the pod name).
    pub static_ids: bool,
    pub instances: Vec<Instance>,
}

impl Fleet {
    pub fn new(
        config: PathBuf,
        env: Vec<(String, String)>,
        log_dir: PathBuf,
        ingest_listen: String,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            binary: super::binary("handoff")?,
            config,
            env,
            log_dir,
            ingest_listen,
            static_ids: false,
            instances: Vec::new(),
        })
    }

    /// Adds and starts an instance; returns its index.
    pub fn add(&mut self, service: &'static str, name: &str) -> anyhow::Result<usize> {
        self.instances.push(Instance {
            name: name.to_owned(),
            service,
            child: None,
        });
        let index = self.instances.len() - 1;
        self.start(index)?;
        Ok(index)
    }

    /// Starts instance `index` (again).
    pub fn start(&mut self, index: usize) -> anyhow::Result<()> {
        let instance = self.instances.get_mut(index).context("no such instance")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", instance.name)))?;
        let mut command = Command::new(&self.binary);
        command
            .arg(instance.service)
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if instance.service == "ingest" {
            command.env("HANDOFF_INGEST_LISTEN", &self.ingest_listen);
        }
        if self.static_ids {
            command.env("HANDOFF_KAFKA_GROUP_INSTANCE_ID", &instance.name);
        }
        instance.child = Some(
            command
                .spawn()
                .with_context(|| format!("starting {}", instance.name))?,
        );
        Ok(())
    }

    /// `kill -9` of instance `index`.
    pub async fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.instances.get_mut(index).and_then(|i| i.child.take()) {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM (drain and commit), then `kill -9` if it has not ended within `grace`.
    pub async fn stop(&mut self, index: usize, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.instances.get_mut(index).and_then(|i| i.child.take()) else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Restarts every instance that is not running, and any that died by itself.
    pub fn ensure_running(&mut self, wanted: &[usize]) -> anyhow::Result<Vec<String>> {
        let mut restarted = Vec::new();
        for &index in wanted {
            let Some(instance) = self.instances.get_mut(index) else {
                continue;
            };
            let exited = match instance.child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited {
                restarted.push(instance.name.clone());
                instance.child = None;
                self.start(index)?;
            }
        }
        Ok(restarted)
    }

    /// Stops every instance (SIGTERM, then `kill -9`).
    pub async fn stop_all(&mut self) {
        for index in 0..self.instances.len() {
            let _ = self.stop(index, Duration::from_secs(15)).await;
        }
    }
}
