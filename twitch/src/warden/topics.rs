//! What a topic should look like, and what the cluster says it looks like.

use std::collections::BTreeMap;

use crate::config::validate_topic_name;
use crate::error::{Error, Result};

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

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// A partition of a topic, with its watermarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub id: i32,
    /// Node id of the leader (-1 when there is none).
    pub leader: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// Oldest offset still stored.
    pub low_watermark: i64,
    /// Offset the next record will get.
    pub high_watermark: i64,
}

impl PartitionInfo {
    /// Records stored in the partition.
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
