//! What the Redis server itself counts: its CPU time (`INFO cpu`) and the commands it ran
//! (`INFO commandstats`, commands called from scripts included), read around a measured
//! phase so that set-up, warm-up and the floor's own commits are left out.

use std::time::{Duration, Instant};

use anyhow::Context;

/// Redis's own CPU time (`INFO cpu`: user + system of the server), seconds.
pub async fn cpu_seconds(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(redis).await?;
    let field = |name: &str| -> anyhow::Result<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("INFO cpu without {name}"))
    };
    Ok(field("used_cpu_user:")? + field("used_cpu_sys:")?)
}

/// Commands the server ran since its statistics were last reset: all of them (those
/// scripts call included), and the script calls themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commands {
    pub all: u64,
    pub scripts: u64,
}

/// `INFO commandstats`, summed. The `INFO` and `CONFIG` calls of this measurement are left
/// out (they are not the services').
pub async fn commands(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Commands> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    let mut counted = Commands::default();
    for line in info.lines() {
        let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let calls: u64 = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("commandstats line without calls: {line}"))?;
        if matches!(name, "info" | "config|resetstat" | "config") {
            continue;
        }
        counted.all += calls;
        if matches!(
            name,
            "evalsha" | "eval" | "fcall" | "evalsha_ro" | "eval_ro"
        ) {
            counted.scripts += calls;
        }
    }
    Ok(counted)
}

/// Resets the server's statistics: the next [`commands`] counts from here.
pub async fn reset(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(redis)
        .await?;
    Ok(())
}

/// The server's counts over a stretch of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub commands: Commands,
    pub cpu_seconds: f64,
    pub seconds: f64,
}

impl Sample {
    /// This sample less what `idle` would have done in the same time.
    pub fn less_idle(&self, idle: &Sample) -> Sample {
        let share = if idle.seconds > 0.0 {
            self.seconds / idle.seconds
        } else {
            0.0
        };
        let scaled = |n: u64| (n as f64 * share).round() as u64;
        Sample {
            commands: Commands {
                all: self.commands.all.saturating_sub(scaled(idle.commands.all)),
                scripts: self
                    .commands
                    .scripts
                    .saturating_sub(scaled(idle.commands.scripts)),
            },
            cpu_seconds: (self.cpu_seconds - idle.cpu_seconds * share).max(0.0),
            seconds: self.seconds,
        }
    }
}

/// Resets the statistics and counts what the services do with no traffic for `window`:
/// their polling (deadlines, queues, the state check), to subtract from a measured phase.
pub async fn idle(
    redis: &mut redis::aio::MultiplexedConnection,
    window: Duration,
) -> anyhow::Result<Sample> {
    reset(redis).await?;
    let (started, cpu) = (Instant::now(), cpu_seconds(redis).await?);
    tokio::time::sleep(window).await;
    Ok(Sample {
        commands: commands(redis).await?,
        cpu_seconds: cpu_seconds(redis).await? - cpu,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A phase being measured: from [`Phase::start`] (statistics reset) until the services
/// are back to their idle rate, with the idle work taken out.
pub struct Phase {
    started: Instant,
    cpu: f64,
}

impl Phase {
    pub async fn start(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Self> {
        reset(redis).await?;
        Ok(Self {
            started: Instant::now(),
            cpu: cpu_seconds(redis).await?,
        })
    }

    /// Waits until a half-second sees no more commands than idle polling makes (or
    /// `deadline`): work after the last assignment (notifications, clocks, the funnel)
    /// belongs to the leads too. Returns the phase less the idle work.
    pub async fn finish(
        &self,
        redis: &mut redis::aio::MultiplexedConnection,
        idle: &Sample,
        deadline: Duration,
    ) -> anyhow::Result<Sample> {
        let give_up = Instant::now() + deadline;
        let step = Duration::from_millis(500);
        let idle_per_step = if idle.seconds > 0.0 {
            idle.commands.all as f64 * step.as_secs_f64() / idle.seconds
        } else {
            0.0
        };
        let mut last = commands(redis).await?;
        loop {
            tokio::time::sleep(step).await;
            let now = commands(redis).await?;
            let busy = (now.all - last.all.min(now.all)) as f64 > idle_per_step * 1.5 + 2.0;
            last = now;
            if !busy || Instant::now() >= give_up {
                break;
            }
        }
        let sample = Sample {
            commands: last,
            cpu_seconds: cpu_seconds(redis).await? - self.cpu,
            seconds: self.started.elapsed().as_secs_f64(),
        };
        Ok(sample.less_idle(idle))
    }
}
