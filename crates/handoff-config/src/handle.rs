//! The rules in force, shared by every service and swapped whole on reload: each decision
//! reads one snapshot, so a reload never mixes two rule sets within one lead.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Rules;

#[derive(Debug, Clone)]
pub struct RulesHandle {
    current: watch::Receiver<Arc<Rules>>,
}

/// Publishes new rules to every [`RulesHandle`].
#[derive(Debug)]
pub struct RulesPublisher {
    sender: watch::Sender<Arc<Rules>>,
}

impl RulesHandle {
    pub fn new(rules: Rules) -> (Self, RulesPublisher) {
        let (sender, current) = watch::channel(Arc::new(rules));
        (Self { current }, RulesPublisher { sender })
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Rules> {
        self.current.borrow().clone()
    }
}

impl RulesPublisher {
    pub fn publish(&self, rules: Rules) {
        self.sender.send_replace(Arc::new(rules));
    }

    pub fn current(&self) -> Arc<Rules> {
        self.sender.borrow().clone()
    }
}
