//! Partitions and topic configs. Not every Kafka-protocol broker has these
//! APIs; where one answers that it lacks them, the error is
//! [`Error::Unsupported`].

use std::collections::BTreeMap;

use rdkafka::admin::{AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::error::RDKafkaErrorCode;

use super::{validate_topic_name, KafkaCluster};
use crate::error::{Error, Result};

/// Error codes by which a broker says it lacks an API or a version of it.
fn is_unsupported(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::InvalidRequest
            | RDKafkaErrorCode::UnsupportedForMessageFormat
    )
}

fn topic_error(operation: &'static str, topic: String, code: RDKafkaErrorCode) -> Error {
    if is_unsupported(code) {
        Error::Unsupported { operation, detail: format!("{code} (topic `{topic}`)") }
    } else {
        Error::TopicAdmin { operation, topic, code, detail: None }
    }
}

/// Maps the failure of a whole admin request.
fn request_error(operation: &'static str, source: rdkafka::error::KafkaError) -> Error {
    match crate::error::code_of(&source) {
        Some(code) if is_unsupported(code) => Error::Unsupported { operation, detail: source.to_string() },
        _ => Error::Admin { operation, source },
    }
}

impl KafkaCluster {
    /// Grows `topic` to `total` partitions (Kafka never shrinks a topic).
    pub async fn add_partitions(&self, topic: &str, total: i32) -> Result<()> {
        validate_topic_name(topic)?;
        let total = usize::try_from(total)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| Error::config(format!("topic `{topic}` needs at least 1 partition, not {total}")))?;
        let admin = self.admin()?;
        let results = admin
            .create_partitions(&[NewPartitions::new(topic, total)], &self.admin_options())
            .await
            .map_err(|e| request_error("add partitions", e))?;
        for res in results {
            res.map_err(|(t, code)| topic_error("add partitions", t, code))?;
        }
        Ok(())
    }

    /// The topic's configs as the broker reports them (defaults included).
    pub async fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        validate_topic_name(topic)?;
        let admin = self.admin()?;
        let results = admin
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &self.admin_options())
            .await
            .map_err(|e| request_error("describe configs", e))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Unsupported {
                operation: "describe configs",
                detail: "the broker returned no result".into(),
            })?
            .map_err(|code| topic_error("describe configs", topic.to_owned(), code))?;
        if resource.entries.is_empty() {
            return Err(Error::Unsupported {
                operation: "describe configs",
                detail: format!("the broker returned no configs for topic `{topic}`"),
            });
        }
        Ok(resource.entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect())
    }

    /// Sets topic configs. Kafka's AlterConfigs replaces the topic's whole
    /// set of non-default configs, so this reads the current ones first and
    /// sends them back with `changes` applied.
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[(&str, &str)]) -> Result<()> {
        let admin = self.admin()?;
        let current = self.topic_configs(topic).await?;
        let mut merged: BTreeMap<&str, &str> = current.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        merged.extend(changes.iter().copied());
        let alter = merged
            .into_iter()
            .fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |a, (k, v)| a.set(k, v));
        let results = admin
            .alter_configs(&[alter], &self.admin_options())
            .await
            .map_err(|e| request_error("alter configs", e))?;
        for res in results {
            res.map_err(|(_, code)| topic_error("alter configs", topic.to_owned(), code))?;
        }
        Ok(())
    }
}
