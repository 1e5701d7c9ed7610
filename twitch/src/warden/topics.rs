//! What a topic should look like, what the cluster says it looks like, and
//! creating and deleting topics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use tracing::{debug, info};

use super::{KafkaCluster, UNKNOWN_WATERMARK};
use crate::config::validate_topic_name;
use crate::error::{Error, ErrorKind, Result};

/// What a topic should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfiguration {
    /// Topic name.
    pub name: String,
    /// Number of partitions (at least 1).
    pub partitions: i32,
    /// Replication factor; `-1` takes the broker's default.
    pub replication: i32,
    /// Topic configs such as `retention.ms` or `cleanup.policy`.
    pub configs: BTreeMap<String, String>,
}

impl TopicConfiguration {
    /// One partition, the broker's default replication, no configs.
    pub fn new_with_default(name: &str) -> Self {
        Self::new(name, 1)
    }

    /// `partitions` partitions, the broker's default replication.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicConfiguration { name: name.into(), partitions, replication: -1, configs: BTreeMap::new() }
    }

    /// Sets the replication factor.
    pub fn with_replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }

    /// Adds a topic config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }

    /// Checks the name, the partition count and the replication factor.
    pub(super) fn validate(&self) -> Result<()> {
        validate_topic_name(&self.name)?;
        if self.partitions < 1 {
            return Err(Error::config(format!(
                "topic `{}` needs at least 1 partition, not {}",
                self.name, self.partitions
            )));
        }
        if self.replication == 0 || self.replication < -1 {
            return Err(Error::config(format!(
                "topic `{}`: replication factor must be at least 1 (or -1 for the broker default), not {}",
                self.name, self.replication
            )));
        }
        Ok(())
    }
}

/// A partition of a topic, with its watermarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub id: i32,
    /// Node id of the leader (-1 when there is none).
    pub leader: i32,
    /// Replica node ids (the leader among them).
    pub replicas: Vec<i32>,
    /// In-sync replica node ids: the replicas that have every record the
    /// partition acknowledged (`acks=all` waits for these).
    pub isr: Vec<i32>,
    /// Oldest offset still stored; [`UNKNOWN_WATERMARK`] when the partition
    /// has no leader to ask.
    pub low_watermark: i64,
    /// Offset the next record will get (for a `read_committed` client, as
    /// twitch's are by default, the first offset of the oldest open
    /// transaction); [`UNKNOWN_WATERMARK`] when the partition has no leader
    /// to ask.
    pub high_watermark: i64,
}

impl PartitionInfo {
    /// Whether the partition has a leader and its watermarks were read.
    pub fn is_available(&self) -> bool {
        self.leader >= 0 && self.high_watermark != UNKNOWN_WATERMARK
    }

    /// Records stored in the partition (0 when its watermarks are unknown).
    pub fn len(&self) -> i64 {
        (self.high_watermark - self.low_watermark).max(0)
    }

    /// True when the partition holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Records stored over all partitions.
    pub fn len(&self) -> i64 {
        self.partitions.iter().map(PartitionInfo::len).sum()
    }

    /// True when the topic holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KafkaCluster {
    /// Creates topics; a topic that already exists is not an error (its
    /// partition count is not checked; see [`KafkaCluster::ensure_topic`]).
    /// Returns once the new topics show in the cluster's metadata.
    pub async fn create_topics(&self, topics: &[TopicConfiguration]) -> Result<()> {
        for t in topics {
            t.validate()?;
        }
        let admin = self.admin()?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                t.configs.iter().fold(
                    NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication)),
                    |nt, (k, v)| nt.set(k, v),
                )
            })
            .collect();
        let results = admin
            .create_topics(&new_topics, &self.admin_options())
            .await
            .map_err(|source| ErrorKind::Admin { operation: "create topics", source })?;
        for res in results {
            match res {
                Ok(name) => info!(topic = %name, "topic created"),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => debug!(topic = %name, "topic exists"),
                Err((topic, code)) => {
                    return Err(ErrorKind::TopicAdmin { operation: "creation", topic, code, detail: None }.into());
                }
            }
        }
        for t in topics {
            self.wait_for_topic(&t.name).await?;
        }
        Ok(())
    }

    /// Waits until metadata shows `topic` with a leader for every partition,
    /// up to the request timeout: [`ErrorKind::UnknownTopic`] then if no
    /// answer listed the topic, [`ErrorKind::TopicNotReady`] if one did.
    pub async fn wait_for_topic(&self, topic: &str) -> Result<()> {
        validate_topic_name(topic)?;
        let started = Instant::now();
        let mut last: Option<String> = None;
        loop {
            match self.metadata(Some(topic.to_owned()), self.inner.request_timeout).await {
                Ok(md) => {
                    if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                        let leaderless = t.partitions().iter().filter(|p| p.leader() < 0).count();
                        match t.error().map(RDKafkaErrorCode::from) {
                            None if !t.partitions().is_empty() && leaderless == 0 => return Ok(()),
                            None => {
                                last = Some(format!("{} partitions, {leaderless} without a leader", t.partitions().len()));
                            }
                            // A node that has not applied the creation yet.
                            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {}
                            Some(code) => last = Some(code.to_string()),
                        }
                    }
                }
                Err(e) => debug!(topic, error = %e, "topic metadata failed; asking again"),
            }
            let waited = started.elapsed();
            if waited >= self.inner.request_timeout {
                let topic = topic.to_owned();
                return Err(match last {
                    None => ErrorKind::UnknownTopic { topic },
                    last => ErrorKind::TopicNotReady { topic, waited, last },
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the topic if needed and checks it has the configured number of
    /// partitions ([`ErrorKind::PartitionCountMismatch`] otherwise).
    pub async fn ensure_topic(&self, config: &TopicConfiguration) -> Result<TopicInfo> {
        self.create_topics(std::slice::from_ref(config)).await?;
        let info = self.created_topic(&config.name).await?;
        let actual = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX);
        if actual != config.partitions {
            return Err(ErrorKind::PartitionCountMismatch {
                topic: config.name.clone(),
                expected: config.partitions,
                actual,
            }.into());
        }
        Ok(info)
    }

    /// Deletes topics. A topic that does not exist is reported as
    /// [`ErrorKind::TopicAdmin`] with code `UnknownTopicOrPartition`.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<()> {
        let admin = self.admin()?;
        let results = admin
            .delete_topics(topics, &self.admin_options())
            .await
            .map_err(|source| ErrorKind::Admin { operation: "delete topics", source })?;
        for res in results {
            match res {
                Ok(name) => info!(topic = %name, "topic deleted"),
                Err((topic, code)) => {
                    return Err(ErrorKind::TopicAdmin { operation: "deletion", topic, code, detail: None }.into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_configuration_is_validated() {
        assert!(TopicConfiguration::new("t", 3).validate().is_ok());
        assert!(TopicConfiguration::new("t", 0).validate().is_err());
        assert!(TopicConfiguration::new("t", -2).validate().is_err());
        assert!(TopicConfiguration::new("t", 1).with_replication(0).validate().is_err());
        assert!(TopicConfiguration::new("t", 1).with_replication(-1).validate().is_ok());
        let d = TopicConfiguration::new_with_default("t");
        assert_eq!((d.partitions, d.replication), (1, -1));
    }
}
