//! A circuit breaker and a bulkhead per webhook URL.
//!
//! ```text
//!  closed ──(threshold consecutive failures)──► open ──(cool-down)──► half-open
//!    ▲                                           ▲                       │ one probe
//!    └──────────────── probe succeeds ───────────┴──── probe fails ──────┘
//! ```
//! While a URL's circuit is open its deliveries go straight to the delayed set, due when
//! the cool-down ends: no attempt, no permit, no counted attempt. Half-open lets one probe
//! through; the rest wait for its answer. Closed, at most `per_destination` attempts to
//! one URL run at once (the bulkhead), so a receiver that hangs until the timeout holds a
//! bounded share of the permits and every other team's webhooks keep theirs.
//!
//! Keyed by URL, not host: Slack serves every team's webhook from one host, and one
//! team's revoked webhook must not stop the others'.
//!
//! State is per process, on purpose: each instance learns a receiver is down from its own
//! first few failures (at most `threshold` wasted attempts per instance per cool-down),
//! without a Redis round trip on every attempt and without shared half-open probes to
//! coordinate. Deliveries themselves are durable in Redis; only this judgement is local.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntGaugeVec;
use tokio::time::Instant;

/// What a delivery may do now.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Attempt it; report the answer through the pass.
    Go(Pass),
    /// Not now: schedule it `after` from now.
    Later { after: Duration, reason: Deferral },
}

/// Why a delivery was deferred without an attempt (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferral {
    CircuitOpen,
    DestinationBusy,
}

impl Deferral {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Deferral::CircuitOpen => "circuit_open",
            Deferral::DestinationBusy => "destination_busy",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BreakerSettings {
    pub(crate) threshold: u32,
    pub(crate) cooldown: Duration,
    pub(crate) per_destination: usize,
    /// How long a delivery to a busy URL waits before it is looked at again.
    pub(crate) busy_delay: Duration,
}

#[derive(Debug)]
pub(crate) struct Circuits {
    settings: BreakerSettings,
    circuits: Mutex<HashMap<String, Circuit>>,
    /// Open circuits by host.
    open_gauge: IntGaugeVec,
}

#[derive(Debug, Default)]
struct Circuit {
    consecutive_failures: u32,
    /// Set while open or half-open.
    open_until: Option<Instant>,
    /// A half-open probe is in flight.
    probing: bool,
    in_flight: usize,
}

/// A granted attempt. Dropped without a verdict (e.g. the target was refused before
/// connecting), it only frees its slot.
#[derive(Debug)]
pub(crate) struct Pass {
    circuits: Arc<Circuits>,
    url: String,
    probe: bool,
}

impl Circuits {
    pub(crate) fn new(settings: BreakerSettings, open_gauge: IntGaugeVec) -> Arc<Self> {
        Arc::new(Self {
            settings,
            circuits: Mutex::new(HashMap::new()),
            open_gauge,
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, url: &str, now: Instant) -> Admission {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let circuit = circuits.entry(url.to_owned()).or_default();
        let probe = match circuit.open_until {
            Some(until) if now < until => {
                return Admission::Later {
                    after: until - now,
                    reason: Deferral::CircuitOpen,
                }
            }
            // Half-open, the probe still out: wait for its answer.
            Some(_) if circuit.probing => {
                return Admission::Later {
                    after: self.settings.cooldown.min(Duration::from_secs(1)),
                    reason: Deferral::CircuitOpen,
                }
            }
            Some(_) => {
                circuit.probing = true;
                true
            }
            None if circuit.in_flight >= self.settings.per_destination => {
                return Admission::Later {
                    after: self.settings.busy_delay,
                    reason: Deferral::DestinationBusy,
                }
            }
            None => false,
        };
        circuit.in_flight += 1;
        Admission::Go(Pass {
            circuits: self.clone(),
            url: url.to_owned(),
            probe,
        })
    }

    fn settle(&self, pass: &Pass, succeeded: bool, now: Instant) {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(circuit) = circuits.get_mut(&pass.url) else {
            return;
        };
        let was_open = circuit.open_until.is_some();
        if succeeded {
            circuit.consecutive_failures = 0;
            circuit.open_until = None;
        } else {
            circuit.consecutive_failures = circuit.consecutive_failures.saturating_add(1);
            // A failed probe reopens at once; a closed circuit opens at the threshold.
            // Failures of attempts started before the circuit opened change nothing.
            if pass.probe || (!was_open && circuit.consecutive_failures >= self.settings.threshold)
            {
                circuit.open_until = Some(now + self.settings.cooldown);
            }
        }
        if pass.probe {
            circuit.probing = false;
        }
        let is_open = circuit.open_until.is_some();
        if was_open != is_open {
            let gauge = self.open_gauge.with_label_values(&[&host_of(&pass.url)]);
            if is_open {
                gauge.inc();
                tracing::warn!(host = %host_of(&pass.url), cooldown_ms = self.settings.cooldown.as_millis() as u64, "webhook circuit opened");
            } else {
                gauge.dec();
                tracing::info!(host = %host_of(&pass.url), "webhook circuit closed");
            }
        }
    }

    fn release(&self, pass: &Pass) {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(circuit) = circuits.get_mut(&pass.url) {
            circuit.in_flight = circuit.in_flight.saturating_sub(1);
            if pass.probe {
                // A probe dropped without a verdict lets the next delivery probe.
                circuit.probing = false;
            }
            // A healthy idle URL needs no state: the map stays as small as the traffic.
            if circuit.in_flight == 0
                && circuit.consecutive_failures == 0
                && circuit.open_until.is_none()
            {
                circuits.remove(&pass.url);
            }
        }
    }
}

impl Pass {
    /// The receiver answered (2xx, or a refusal that says it is alive).
    pub(crate) fn succeeded(self) {
        self.circuits.settle(&self, true, Instant::now());
    }

    /// The receiver failed or did not answer.
    pub(crate) fn failed(self) {
        self.circuits.settle(&self, false, Instant::now());
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.circuits.release(self);
    }
}

/// The metric label of a URL: its host only (paths carry tokens; hosts come from the
/// rules file, a closed set).
pub(crate) fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "invalid".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    const URL: &str = "https://hooks.example.com/services/T1/B1/secret";

    fn circuits(threshold: u32, per_destination: usize) -> Arc<Circuits> {
        let gauge = IntGaugeVec::new(Opts::new("open", "open"), &["host"])
            .unwrap_or_else(|e| panic!("{e}"));
        Circuits::new(
            BreakerSettings {
                threshold,
                cooldown: Duration::from_secs(30),
                per_destination,
                busy_delay: Duration::from_millis(500),
            },
            gauge,
        )
    }

    fn go(admission: Admission) -> Pass {
        match admission {
            Admission::Go(pass) => pass,
            Admission::Later { .. } => panic!("expected an attempt, got {admission:?}"),
        }
    }

    fn later(admission: Admission) -> (Duration, Deferral) {
        match admission {
            Admission::Later { after, reason } => (after, reason),
            Admission::Go(_) => panic!("expected a deferral"),
        }
    }

    #[test]
    fn consecutive_failures_open_the_circuit_for_the_cooldown() {
        let circuits = circuits(3, 8);
        for _ in 0..3 {
            go(circuits.admit(URL, Instant::now())).failed();
        }
        let (after, reason) = later(circuits.admit(URL, Instant::now()));
        assert_eq!(reason, Deferral::CircuitOpen);
        assert!(
            after > Duration::from_secs(29) && after <= Duration::from_secs(30),
            "{after:?}"
        );
        assert_eq!(
            circuits
                .open_gauge
                .with_label_values(&["hooks.example.com"])
                .get(),
            1
        );
        // Another URL on the same host is not affected.
        go(circuits.admit("https://hooks.example.com/services/T2/B2/x", Instant::now()));
    }

    #[test]
    fn a_success_resets_the_count() {
        let circuits = circuits(3, 8);
        go(circuits.admit(URL, Instant::now())).failed();
        go(circuits.admit(URL, Instant::now())).failed();
        go(circuits.admit(URL, Instant::now())).succeeded();
        go(circuits.admit(URL, Instant::now())).failed();
        go(circuits.admit(URL, Instant::now())).failed();
        go(circuits.admit(URL, Instant::now()));
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let circuits = circuits(1, 8);
        go(circuits.admit(URL, Instant::now())).failed();
        let later_on = Instant::now() + Duration::from_secs(31);
        let probe = go(circuits.admit(URL, later_on));
        let (_, reason) = later(circuits.admit(URL, later_on));
        assert_eq!(reason, Deferral::CircuitOpen, "one probe at a time");
        probe.failed();
        let (after, _) = later(circuits.admit(URL, Instant::now()));
        assert!(after > Duration::from_secs(29), "reopened: {after:?}");

        let much_later = Instant::now() + Duration::from_secs(61);
        go(circuits.admit(URL, much_later)).succeeded();
        go(circuits.admit(URL, Instant::now()));
        assert_eq!(
            circuits
                .open_gauge
                .with_label_values(&["hooks.example.com"])
                .get(),
            0
        );
    }

    #[test]
    fn attempts_to_one_url_are_bounded() {
        let circuits = circuits(5, 2);
        let first = go(circuits.admit(URL, Instant::now()));
        let _second = go(circuits.admit(URL, Instant::now()));
        let (after, reason) = later(circuits.admit(URL, Instant::now()));
        assert_eq!(
            (after, reason),
            (Duration::from_millis(500), Deferral::DestinationBusy)
        );
        drop(first);
        go(circuits.admit(URL, Instant::now()));
    }

    #[test]
    fn metric_labels_are_hosts_never_paths() {
        assert_eq!(host_of(URL), "hooks.example.com");
        assert_eq!(host_of("not a url"), "invalid");
    }
}
