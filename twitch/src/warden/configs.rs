//! Configs of topics and brokers, described and altered one key at a time,
//! and adding partitions. Proven on Apache Kafka 4.1 (`twitch/tests/warden.rs`,
//! `twitch/tests/brokers.rs`). A broker that answers that it lacks one of
//! these requests (another Kafka-protocol broker, say) gives
//! [`ErrorKind::Unsupported`].
//!
//! rdkafka 0.39 wraps only Kafka's original AlterConfigs request, which
//! replaces every override of a resource at once. twitch makes it
//! incremental: it describes the resource, takes the overrides set on it,
//! applies the changes to them and sends that whole set. Keys not named keep
//! what they had: an override stays, and a default keeps following the
//! default. Another client altering the same resource at the same moment can
//! lose its change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AlterConfig, ConfigEntry as RdEntry, ConfigSource as RdSource, NewPartitions, ResourceSpecifier};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::alter::{applied, configs_to_send, read_only};
use super::{validate_topic_name, KafkaCluster};
use crate::error::{Error, ErrorKind, Result};

/// Where the value of a described config comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Set on this topic (an override of the topic).
    Topic,
    /// Set at run time on this one broker (a per-broker override).
    Broker,
    /// Set at run time as the default of every broker of the cluster.
    ClusterDefault,
    /// The broker's `server.properties`.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// The broker did not say (Kafka before 1.1).
    Unknown,
}

impl From<&RdSource> for ConfigSource {
    fn from(source: &RdSource) -> Self {
        match source {
            RdSource::DynamicTopic => ConfigSource::Topic,
            RdSource::DynamicBroker => ConfigSource::Broker,
            RdSource::DynamicDefaultBroker => ConfigSource::ClusterDefault,
            RdSource::StaticBroker => ConfigSource::StaticBroker,
            RdSource::Default => ConfigSource::Default,
            RdSource::Unknown => ConfigSource::Unknown,
        }
    }
}

/// One config of a topic or a broker, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, such as `retention.ms`.
    pub name: String,
    /// Its value; `None` when the broker hides it (a sensitive one).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered at run time.
    pub read_only: bool,
    /// Whether it holds a secret (its value is then hidden).
    pub sensitive: bool,
    /// Whether the value is the default.
    pub default: bool,
}

impl From<&RdEntry> for ConfigEntry {
    fn from(e: &RdEntry) -> Self {
        ConfigEntry {
            name: e.name.clone(),
            value: e.value.clone(),
            source: ConfigSource::from(&e.source),
            read_only: e.is_read_only,
            sensitive: e.is_sensitive,
            default: e.is_default,
        }
    }
}

/// A resource whose configs twitch describes and alters.
#[derive(Debug, Clone, Copy)]
pub(super) enum Resource<'a> {
    Topic(&'a str),
    Broker(i32),
}

impl Resource<'_> {
    fn specifier(&self) -> ResourceSpecifier<'_> {
        match *self {
            Resource::Topic(t) => ResourceSpecifier::Topic(t),
            Resource::Broker(id) => ResourceSpecifier::Broker(id),
        }
    }

    fn describe(&self) -> String {
        match self {
            Resource::Topic(t) => format!("topic `{t}`"),
            Resource::Broker(id) => format!("broker {id}"),
        }
    }

    /// Whether a described config is an override set on this resource
    /// itself: a topic's own configs, or a broker's per-broker dynamic
    /// ones. Brokers before Kafka 1.1 give no source, only whether the value
    /// is the default; for a topic, a value that is not the default is one
    /// the topic sets (for a broker it may come from its static file).
    pub(super) fn owns(&self, entry: &ConfigEntry) -> bool {
        match (self, entry.source) {
            (Resource::Topic(_), ConfigSource::Topic) | (Resource::Broker(_), ConfigSource::Broker) => true,
            (Resource::Topic(_), ConfigSource::Unknown) => !entry.default,
            _ => false,
        }
    }

    /// The error of an operation on this resource that the broker refused
    /// with `code`.
    fn error(&self, operation: &'static str, code: RDKafkaErrorCode) -> Error {
        match self {
            _ if is_unsupported(code) => ErrorKind::Unsupported { operation, detail: format!("{code} ({})", self.describe()) }.into(),
            Resource::Topic(t) if code == RDKafkaErrorCode::UnknownTopicOrPartition => {
                ErrorKind::UnknownTopic { topic: (*t).to_owned() }.into()
            }
            Resource::Topic(t) => ErrorKind::TopicAdmin { operation, topic: (*t).to_owned(), code, detail: None }.into(),
            Resource::Broker(_) => ErrorKind::Admin { operation, source: KafkaError::AdminOp(code) }.into(),
        }
    }
}

/// Error codes by which a broker says it lacks an API or a version of it.
/// (Not `InvalidRequest`: Kafka answers that to a config it cannot alter
/// while it runs.)
fn is_unsupported(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::UnsupportedForMessageFormat
    )
}

/// Maps the failure of a whole admin request.
pub(super) fn request_error(operation: &'static str, source: KafkaError) -> Error {
    match crate::error::code_of(&source) {
        Some(code) if is_unsupported(code) => ErrorKind::Unsupported { operation, detail: source.to_string() }.into(),
        _ => ErrorKind::Admin { operation, source }.into(),
    }
}

/// `entries` as a map of name to value, hidden values left out.
pub(super) fn values(entries: impl IntoIterator<Item = ConfigEntry>) -> BTreeMap<String, String> {
    entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect()
}

impl KafkaCluster {
    /// Grows `topic` to `total` partitions (Kafka never shrinks a topic).
    /// Writers learn of the new partitions from their next metadata refresh
    /// (see [`KeyedWriter::refresh_partitions`](crate::writer::KeyedWriter::refresh_partitions)).
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
            res.map_err(|(t, code)| match is_unsupported(code) {
                true => Resource::Topic(&t).error("add partitions", code),
                false => ErrorKind::TopicAdmin { operation: "add partitions", topic: t, code, detail: None }.into(),
            })?;
        }
        Ok(())
    }

    /// Every config of `topic` as the broker describes it: on Apache Kafka
    /// every config, defaults included, each with its source. A missing
    /// topic is [`ErrorKind::UnknownTopic`].
    pub async fn topic_config_entries(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        validate_topic_name(topic)?;
        let entries = self.describe_configs(Resource::Topic(topic)).await?;
        if entries.is_empty() {
            // Some brokers describe a missing topic as one without configs.
            self.topic(topic).await?;
        }
        Ok(entries)
    }

    /// The values of [`topic_config_entries`](Self::topic_config_entries),
    /// by name; configs whose value the broker hides are left out. A broker
    /// that describes no config at all for the topic gives
    /// [`ErrorKind::Unsupported`] (use
    /// [`topic_config_overrides`](Self::topic_config_overrides) for what the
    /// topic itself sets).
    pub async fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let entries = self.topic_config_entries(topic).await?;
        if entries.is_empty() {
            return Err(ErrorKind::Unsupported {
                operation: "describe configs",
                detail: format!("the broker returned no configs for topic `{topic}`"),
            }
            .into());
        }
        Ok(values(entries))
    }

    /// The configs set on the topic itself (its overrides), without the
    /// defaults and broker-wide settings that apply where it sets none.
    /// Empty when the topic overrides nothing.
    pub async fn topic_config_overrides(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let entries = self.topic_config_entries(topic).await?;
        Ok(values(entries.into_iter().filter(|e| Resource::Topic(topic).owns(e))))
    }

    /// Sets the configs named in `changes` on `topic` (a key named twice
    /// takes its last value). Configs not named keep what they had: an
    /// override stays, and a config that follows the broker's default keeps
    /// following it. With no changes, nothing is sent.
    ///
    /// rdkafka 0.39 wraps only Kafka's original AlterConfigs request, which
    /// replaces every override at once: this describes the topic, sends its
    /// overrides with `changes` applied, and then waits (up to the request
    /// timeout) until the broker describes the change, as rdkafka 0.39
    /// reports a refused change as done. A config the broker describes as
    /// read-only is refused with [`ErrorKind::InvalidConfig`]; a change the
    /// broker does not apply (an invalid value) with
    /// [`ErrorKind::TopicAdmin`]. Another client altering the same topic at
    /// the same moment can lose its change.
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[(&str, &str)]) -> Result<()> {
        validate_topic_name(topic)?;
        self.alter_configs(Resource::Topic(topic), changes, &[]).await
    }

    /// Removes the overrides named in `keys` from `topic`: those configs
    /// follow the broker's default again. Other overrides stay.
    pub async fn reset_topic_configs(&self, topic: &str, keys: &[&str]) -> Result<()> {
        validate_topic_name(topic)?;
        self.alter_configs(Resource::Topic(topic), &[], keys).await
    }

    /// Every config entry the broker describes for `resource`.
    pub(super) async fn describe_configs(&self, resource: Resource<'_>) -> Result<Vec<ConfigEntry>> {
        let admin = self.admin()?;
        let results = admin
            .describe_configs(&[resource.specifier()], &self.admin_options())
            .await
            .map_err(|e| request_error("describe configs", e))?;
        let described = results
            .into_iter()
            .next()
            .ok_or_else(|| ErrorKind::Unsupported { operation: "describe configs", detail: "the broker returned no result".into() })?
            .map_err(|code| resource.error("describe configs", code))?;
        Ok(described.entries.iter().map(ConfigEntry::from).collect())
    }

    /// Sets `set` and removes the overrides `reset` on `resource`, keeping
    /// every other override as it is, and waits (up to the request
    /// timeout) until the broker describes the change.
    pub(super) async fn alter_configs(&self, resource: Resource<'_>, set: &[(&str, &str)], reset: &[&str]) -> Result<()> {
        if set.is_empty() && reset.is_empty() {
            return Ok(());
        }
        let described = self.describe_configs(resource).await?;
        if let Some(key) = read_only(&described, set) {
            return Err(Error::config(format!("`{key}` of {} is read-only: it cannot change while the broker runs", resource.describe())));
        }
        let send = configs_to_send(&described, |e| resource.owns(e), set, reset).map_err(|hidden| {
            Error::config(format!(
                "{} overrides `{hidden}`, whose value the broker hides, so it cannot be kept by a request that \
                 replaces every override: name it in the changes (a new value) or in the keys to reset",
                resource.describe()
            ))
        })?;
        let alter = send.iter().fold(AlterConfig::new(resource.specifier()), |a, (k, v)| a.set(k, v));
        let results = self
            .admin()?
            .alter_configs(&[alter], &self.admin_options())
            .await
            .map_err(|e| request_error("alter configs", e))?;
        for res in results {
            res.map_err(|(_, code)| resource.error("alter configs", code))?;
        }
        // rdkafka 0.39 reports a resource the broker refused as altered:
        // look at what the broker describes now.
        let deadline = Instant::now() + self.request_timeout();
        loop {
            let now = self.describe_configs(resource).await?;
            if applied(&now, |e| resource.owns(e), set, reset) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let detail = format!(
                    "{} does not show the change after {:?}: the broker refused it (an unknown config, or an invalid \
                     value?); rdkafka 0.39 does not pass the broker's reason on",
                    resource.describe(),
                    self.request_timeout()
                );
                return Err(match resource {
                    Resource::Topic(t) => ErrorKind::TopicAdmin {
                        operation: "alter configs",
                        topic: t.to_owned(),
                        code: RDKafkaErrorCode::InvalidConfig,
                        detail: Some(detail),
                    }
                    .into(),
                    Resource::Broker(_) => ErrorKind::Admin { operation: "alter configs", source: KafkaError::AdminOpCreation(detail) }.into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_map_one_to_one() {
        let pairs = [
            (RdSource::DynamicTopic, ConfigSource::Topic),
            (RdSource::DynamicBroker, ConfigSource::Broker),
            (RdSource::DynamicDefaultBroker, ConfigSource::ClusterDefault),
            (RdSource::StaticBroker, ConfigSource::StaticBroker),
            (RdSource::Default, ConfigSource::Default),
            (RdSource::Unknown, ConfigSource::Unknown),
        ];
        for (rd, ours) in pairs {
            assert_eq!(ConfigSource::from(&rd), ours);
        }
    }

    #[test]
    fn refusals_are_typed_by_resource() {
        let unknown = Resource::Topic("t").error("describe configs", RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(matches!(unknown.kind(), ErrorKind::UnknownTopic { .. }));
        let old = Resource::Broker(3).error("alter configs", RDKafkaErrorCode::UnsupportedVersion);
        assert!(matches!(old.kind(), ErrorKind::Unsupported { operation: "alter configs", .. }), "{old}");
        assert!(old.to_string().contains("broker 3"), "{old}");
        let bad = Resource::Broker(3).error("alter configs", RDKafkaErrorCode::InvalidConfig);
        assert!(matches!(bad.kind(), ErrorKind::Admin { operation: "alter configs", .. }), "{bad}");
    }
}
