//! Partitions and topic configs. Not every Kafka-protocol broker has these
//! APIs; where one answers that it lacks them, the error is
//! [`ErrorKind::Unsupported`].

use std::collections::BTreeMap;

use rdkafka::admin::{AlterConfig, ConfigEntry, ConfigSource, NewPartitions, ResourceSpecifier};
use rdkafka::error::RDKafkaErrorCode;

use super::{validate_topic_name, KafkaCluster};
use crate::error::{Error, ErrorKind, Result};

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
        ErrorKind::Unsupported { operation, detail: format!("{code} (topic `{topic}`)") }.into()
    } else {
        ErrorKind::TopicAdmin { operation, topic, code, detail: None }.into()
    }
}

/// Maps the failure of a whole admin request.
fn request_error(operation: &'static str, source: rdkafka::error::KafkaError) -> Error {
    match crate::error::code_of(&source) {
        Some(code) if is_unsupported(code) => ErrorKind::Unsupported { operation, detail: source.to_string() }.into(),
        _ => ErrorKind::Admin { operation, source }.into(),
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

    /// The topic's configs as the broker describes them: on Apache Kafka
    /// every config, defaults included; some brokers list only the configs
    /// set on the topic. Configs whose value the broker hides are left out.
    /// A broker that describes no config at all for the topic gives
    /// [`ErrorKind::Unsupported`] (use [`KafkaCluster::topic_config_overrides`]
    /// for what the topic itself sets). A missing topic is
    /// [`ErrorKind::UnknownTopic`].
    pub async fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        validate_topic_name(topic)?;
        let entries = self.describe_topic_configs(topic).await?;
        if entries.is_empty() {
            // Some brokers describe a missing topic as one without configs.
            self.topic(topic).await?;
            return Err(ErrorKind::Unsupported {
                operation: "describe configs",
                detail: format!("the broker returned no configs for topic `{topic}`"),
            }.into());
        }
        Ok(entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect())
    }

    /// The configs set on the topic itself (its overrides), without the
    /// defaults and broker-wide settings that apply where it sets none.
    /// Empty when the topic overrides nothing. A missing topic is
    /// [`ErrorKind::UnknownTopic`].
    pub async fn topic_config_overrides(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        validate_topic_name(topic)?;
        let entries = self.describe_topic_configs(topic).await?;
        if entries.is_empty() {
            // Some brokers describe a missing topic as one without configs.
            self.topic(topic).await?;
        }
        Ok(entries.into_iter().filter(is_override).filter_map(|e| e.value.map(|v| (e.name, v))).collect())
    }

    /// Sets the configs named in `changes` on `topic` (a key named twice
    /// takes its last value). Configs not named keep what they had: a
    /// config set on the topic earlier stays set, and one that follows the
    /// broker's default keeps following it. With no changes, nothing is
    /// sent.
    ///
    /// librdkafka's Rust binding offers only Kafka's original AlterConfigs
    /// request, which replaces the topic's whole set of overrides. So this
    /// describes the topic, takes the configs set on it (see
    /// [`KafkaCluster::topic_config_overrides`]), applies `changes` to them
    /// and sends that set. Another client altering the same topic at the
    /// same moment can lose its change. Brokers that only have the newer
    /// IncrementalAlterConfigs request answer [`ErrorKind::Unsupported`].
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[(&str, &str)]) -> Result<()> {
        validate_topic_name(topic)?;
        if changes.is_empty() {
            return Ok(());
        }
        let described = self.describe_topic_configs(topic).await?;
        let send = configs_to_send(&described, changes).map_err(|hidden| ErrorKind::Unsupported {
            operation: "alter configs",
            detail: format!(
                "topic `{topic}` sets `{hidden}`, whose value the broker hides, so it cannot be kept \
                 by a request that replaces every override"
            ),
        })?;
        let alter = send
            .iter()
            .fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |a, (k, v)| a.set(k, v));
        let admin = self.admin()?;
        let results = admin
            .alter_configs(&[alter], &self.admin_options())
            .await
            .map_err(|e| request_error("alter configs", e))?;
        for res in results {
            res.map_err(|(_, code)| topic_error("alter configs", topic.to_owned(), code))?;
        }
        Ok(())
    }

    /// Every config entry the broker describes for `topic`.
    async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let admin = self.admin()?;
        let results = admin
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &self.admin_options())
            .await
            .map_err(|e| request_error("describe configs", e))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| ErrorKind::Unsupported {
                operation: "describe configs",
                detail: "the broker returned no result".into(),
            })?
            .map_err(|code| match code {
                RDKafkaErrorCode::UnknownTopicOrPartition => ErrorKind::UnknownTopic { topic: topic.to_owned() }.into(),
                code => topic_error("describe configs", topic.to_owned(), code),
            })?;
        Ok(resource.entries)
    }
}

/// Whether a described config is set on the topic itself. Brokers before
/// Kafka 1.1 give no source, only whether the value is the default; for a
/// topic, a value that is not the default is one the topic sets.
fn is_override(entry: &ConfigEntry) -> bool {
    match entry.source {
        ConfigSource::DynamicTopic => true,
        ConfigSource::Unknown => !entry.is_default,
        _ => false,
    }
}

/// The configs a request that replaces every override of a topic must carry
/// so that only `changes` change: the topic's overrides among `described`,
/// with `changes` applied in order. Fails with the name of an override whose
/// value the broker hid (and `changes` does not replace).
fn configs_to_send(described: &[ConfigEntry], changes: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let mut send = BTreeMap::new();
    for entry in described.iter().filter(|e| is_override(e)) {
        match &entry.value {
            Some(value) => {
                send.insert(entry.name.clone(), value.clone());
            }
            None if changes.iter().any(|(k, _)| *k == entry.name) => {}
            None => return Err(entry.name.clone()),
        }
    }
    send.extend(changes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Ok(send)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: Option<&str>, source: ConfigSource) -> ConfigEntry {
        let is_default = source == ConfigSource::Default;
        ConfigEntry {
            name: name.into(),
            value: value.map(Into::into),
            source,
            is_read_only: false,
            is_default,
            is_sensitive: false,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// What Apache Kafka describes for a topic created with one override.
    fn described() -> Vec<ConfigEntry> {
        vec![
            entry("cleanup.policy", Some("delete"), ConfigSource::Default),
            entry("retention.ms", Some("3600000"), ConfigSource::DynamicTopic),
            entry("segment.bytes", Some("1073741824"), ConfigSource::StaticBroker),
            entry("min.insync.replicas", Some("1"), ConfigSource::DynamicDefaultBroker),
            entry("max.message.bytes", Some("1048588"), ConfigSource::DynamicBroker),
        ]
    }

    #[test]
    fn only_overrides_and_changes_are_sent() {
        let send = configs_to_send(&described(), &[("cleanup.policy", "compact")]).unwrap();
        assert_eq!(send, map(&[("cleanup.policy", "compact"), ("retention.ms", "3600000")]));
    }

    #[test]
    fn a_change_replaces_an_override() {
        let send = configs_to_send(&described(), &[("retention.ms", "60000"), ("retention.ms", "120000")]).unwrap();
        assert_eq!(send, map(&[("retention.ms", "120000")]));
    }

    #[test]
    fn defaults_are_never_pinned() {
        let send = configs_to_send(&described(), &[]).unwrap();
        assert_eq!(send, map(&[("retention.ms", "3600000")]));
    }

    #[test]
    fn without_sources_non_default_values_are_the_overrides() {
        let mut old = entry("retention.ms", Some("60000"), ConfigSource::Unknown);
        old.is_default = false;
        let mut default = entry("segment.bytes", Some("1073741824"), ConfigSource::Unknown);
        default.is_default = true;
        let send = configs_to_send(&[old, default], &[("cleanup.policy", "compact")]).unwrap();
        assert_eq!(send, map(&[("cleanup.policy", "compact"), ("retention.ms", "60000")]));
    }

    #[test]
    fn a_hidden_override_cannot_be_kept_unless_replaced() {
        let mut described = described();
        described.push(entry("secret.thing", None, ConfigSource::DynamicTopic));
        assert_eq!(configs_to_send(&described, &[("retention.ms", "1")]), Err("secret.thing".to_owned()));
        let send = configs_to_send(&described, &[("secret.thing", "s")]).unwrap();
        assert_eq!(send, map(&[("retention.ms", "3600000"), ("secret.thing", "s")]));
        // Hidden defaults do not matter.
        let hidden_default = entry("other.secret", None, ConfigSource::Default);
        assert!(configs_to_send(&[hidden_default], &[("retention.ms", "1")]).is_ok());
    }

    #[test]
    fn is_override_follows_the_source() {
        assert!(is_override(&entry("a", Some("1"), ConfigSource::DynamicTopic)));
        for source in [
            ConfigSource::Default,
            ConfigSource::StaticBroker,
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker,
        ] {
            assert!(!is_override(&entry("a", Some("1"), source)));
        }
    }
}
