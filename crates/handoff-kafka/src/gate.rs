//! Whether this process may take new work. Closed while the state in Redis is known to be
//! lost (docs/operations.md): a decision made on an empty Redis would start rotations,
//! capacity counts and deadlines from nothing. Consumers wait at the gate before handling
//! an event (the consume loop keeps polling, so the group membership stays; a partition
//! whose worker waits fills up and pauses); pollers skip their rounds; ingest answers 503.

use std::sync::Arc;

use tokio::sync::watch;

/// Open by default. Cheap to clone; every clone sees the same state.
#[derive(Debug, Clone)]
pub struct WorkGate {
    open: Arc<watch::Sender<bool>>,
}

impl Default for WorkGate {
    fn default() -> Self {
        Self {
            open: Arc::new(watch::Sender::new(true)),
        }
    }
}

impl WorkGate {
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Stops new work. `true` if the gate was open.
    pub fn close(&self) -> bool {
        self.open.send_replace(false)
    }

    /// Lets work flow again. `true` if the gate was closed.
    pub fn open(&self) -> bool {
        !self.open.send_replace(true)
    }

    /// Resolves once the gate is open (at once if it is).
    pub async fn opened(&self) {
        let mut open = self.open.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while we hold it.
        let _ = open.wait_for(|open| *open).await;
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // assertions in tests
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_pass_once_the_gate_opens() {
        let gate = WorkGate::default();
        assert!(gate.is_open());
        assert!(gate.close());
        assert!(!gate.close());
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(gate.open());
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("the waiter passes")
            .expect("the waiter does not panic");
    }
}
