//! The retry poller: claims due deliveries from the delayed set and attempts them.
//!
//! ```text
//!  tick ──► wait for a permit, take as many more as are free (≤ batch)
//!       ──► claim that many due deliveries (and expired claims) with a lease
//!       ──► each: spawn resume (circuit? attempt : reschedule); unused permits go back
//! ```
//! Permits are taken before claiming, so a claim's lease never runs while it waits for
//! one. Every instance runs a poller; the claim is atomic, so each due delivery goes to
//! one of them. A poller that dies leaves claims that come back after their lease.

use std::sync::Arc;
use std::time::Duration;

use handoff_kafka::WorkGate;
use tokio_util::sync::CancellationToken;

use crate::delivery::Deliveries;

/// At most this many deliveries are claimed per round.
const BATCH: usize = 100;

#[derive(Debug)]
pub(crate) struct RetryPoller {
    deliveries: Arc<Deliveries>,
    interval: Duration,
    lease: Duration,
    /// Closed while the Redis state is lost: the retry schedule and de-duplication marks
    /// are part of it, and a rolled-back schedule would send again what was delivered.
    gate: WorkGate,
}

impl RetryPoller {
    pub(crate) fn new(
        deliveries: Arc<Deliveries>,
        interval: Duration,
        lease: Duration,
        gate: WorkGate,
    ) -> Self {
        Self {
            deliveries,
            interval,
            lease,
            gate,
        }
    }

    /// Polls until `shutdown`. Redis trouble is logged and retried on the next tick.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if !self.gate.is_open() {
                continue;
            }
            loop {
                let claimed = tokio::select! {
                    () = shutdown.cancelled() => return,
                    claimed = self.round() => claimed,
                };
                match claimed {
                    // A full batch: more may be due right now.
                    Ok(n) if n == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        self.deliveries
                            .metrics()
                            .consumer_errors
                            .with_label_values(&["notifier", "transient"])
                            .inc();
                        tracing::warn!(error = %e, "webhook retry poll failed; retrying next tick");
                        break;
                    }
                }
            }
            round = round.wrapping_add(1);
            if round % 10 == 0 {
                if let Ok(pending) = self.deliveries.store().pending_deliveries().await {
                    self.deliveries.metrics().webhook_pending.set(pending);
                }
            }
        }
    }

    /// One claim round; returns how many deliveries were claimed.
    async fn round(&self) -> Result<usize, handoff_store::StoreError> {
        let permits = self.deliveries.permits().clone();
        let Ok(mut held) = permits.clone().acquire_owned().await else {
            return Ok(0);
        };
        let free = permits.available_permits().min(BATCH - 1);
        if free > 0 {
            if let Ok(more) = permits.clone().try_acquire_many_owned(free as u32) {
                held.merge(more);
            }
        }
        let token = format!("{:016x}", rand::random::<u64>());
        let claimed = self
            .deliveries
            .store()
            .claim_deliveries(&token, self.lease, held.num_permits())
            .await?;
        let count = claimed.len();
        for item in claimed {
            let Some(permit) = held.split(1) else {
                break;
            };
            let deliveries = self.deliveries.clone();
            self.deliveries.tracker().spawn(async move {
                deliveries.resume(item.delivery, item.token, permit).await;
            });
        }
        Ok(count)
    }
}
