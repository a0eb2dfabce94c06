use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use handoff_config::KafkaSettings;
use handoff_domain::accounts::ACCOUNT_OWNER_TOPIC_SUFFIX;
use handoff_domain::events::EventKind;
use handoff_domain::rep_overrides::REP_STATE_TOPIC_SUFFIX;

use crate::{base_config, KafkaError};

/// Topic names of one deployment: `<prefix><kind>`, e.g. `handoff.lead.created`.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn of(&self, kind: EventKind) -> String {
        format!("{}{}", self.prefix, kind.topic_suffix())
    }

    /// Where events that cannot be processed go, with the reason in their headers.
    pub fn dead_letter(&self) -> String {
        format!("{}deadletter", self.prefix)
    }

    /// Account owners published by other systems (a CRM connector), keyed by domain:
    /// compacted, so it holds the latest owner of every domain (proto/handoff/v1/accounts.proto).
    pub fn account_owner(&self) -> String {
        format!("{}{ACCOUNT_OWNER_TOPIC_SUFFIX}", self.prefix)
    }

    /// Reps' runtime overrides as the API changed them last, keyed by rep id: compacted,
    /// the durable copy of what Redis holds (proto/handoff/v1/reps.proto).
    pub fn rep_state(&self) -> String {
        format!("{}{REP_STATE_TOPIC_SUFFIX}", self.prefix)
    }

    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = EventKind::ALL.iter().map(|k| self.of(*k)).collect();
        all.push(self.dead_letter());
        all.push(self.account_owner());
        all.push(self.rep_state());
        all
    }

    /// Topic-level settings a topic is created with: only the compacted ones
    /// (`account.owner`, `rep.state`) have any.
    pub fn config_of(&self, topic: &str) -> &'static [(&'static str, &'static str)] {
        if topic == self.account_owner() || topic == self.rep_state() {
            // The latest record per key is the state; a tombstone removes the key. (Tansu
            // 0.6 with SQLite keeps this setting and compacts in its periodic maintenance,
            // every 10 minutes by default; librdkafka's mock cluster never compacts.)
            &[("cleanup.policy", "compact")]
        } else {
            &[]
        }
    }
}

/// Creates any missing topic, with its settings. Brokers such as Tansu do not auto-create
/// topics, and auto-created ones get the broker's defaults rather than ours. An existing
/// topic is left as it is (check `account.owner` and `rep.state` are compacted when they were made by hand).
pub async fn ensure_topics(settings: &KafkaSettings, topics: &Topics) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(settings, "handoff-admin")?.create()?;
    let names = topics.all();
    let replication = i32::try_from(settings.replication_factor).unwrap_or(1);
    let partitions = i32::try_from(settings.partitions).unwrap_or(1);
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            topics.config_of(name).iter().fold(
                NewTopic::new(name, partitions, TopicReplication::Fixed(replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new_topics, &options).await?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(())
}
