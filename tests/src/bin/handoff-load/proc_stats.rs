//! What Linux says about one process: resident memory (`/proc/<pid>/status`: `VmRSS`,
//! and `VmHWM`, its peak since start) and CPU time (`/proc/<pid>/stat`: user + system),
//! for measuring `handoff all` from outside, and a sampler of its RSS over a run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Resident and peak resident memory, KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

pub fn memory(pid: &str) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// CPU time the process has used (user + system), seconds.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no `)` in /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("field {i} of /proc/{pid}/stat"))
    };
    // USER_HZ is 100 on every Linux this runs on.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// RSS samples of one process every `every`, until stopped.
#[derive(Debug)]
pub struct RssSampler {
    samples: Arc<Mutex<Vec<u64>>>,
    stop: CancellationToken,
}

impl RssSampler {
    pub fn start(pid: String, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (into, until) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = until.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let Ok(now) = memory(&pid) else { return };
                if let Ok(mut samples) = into.lock() {
                    samples.push(now.rss_kib);
                }
            }
        });
        Self { samples, stop }
    }

    /// Takes the samples so far (the next call starts afresh): (mean, max) KiB.
    pub fn take(&self) -> (u64, u64) {
        let taken = self
            .samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let max = taken.iter().copied().max().unwrap_or_default();
        let mean = taken.iter().sum::<u64>() / (taken.len().max(1) as u64);
        (mean, max)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
