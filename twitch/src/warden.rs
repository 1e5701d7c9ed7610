//! The cluster: brokers, topics, metadata, and the factory for writers and
//! readers.
//!
//! ```no_run
//! # async fn demo() -> twitch::Result<()> {
//! use std::time::Duration;
//! use twitch::warden::{KafkaCluster, TopicConfiguration};
//!
//! let cluster = KafkaCluster::builder("127.0.0.1:9092")
//!     .client_id("inventory")
//!     .broker_timeout(Duration::from_secs(30))
//!     .build()?;
//! cluster.wait_for_brokers().await?;
//! cluster
//!     .create_topics(&[TopicConfiguration::new("orders", 3).with_config("retention.ms", "86400000")])
//!     .await?;
//! for topic in cluster.topics().await? {
//!     println!("{} has {} partitions", topic.name, topic.partitions.len());
//! }
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;

use crate::config::ClientSettings;

mod alter;
mod brokers;
mod cluster;
mod configs;
mod describe;
mod groups;
mod topics;

pub use cluster::{BrokerInfo, UNKNOWN_WATERMARK};
pub use configs::{ConfigEntry, ConfigSource};
pub use groups::{decode_assignment, GroupInfo, MemberInfo};
pub use crate::reader::GroupProtocol;
pub use topics::{PartitionInfo, TopicConfiguration, TopicInfo};

pub use crate::config::validate_topic_name;
pub use crate::reader::PartitionLag;
use crate::error::{ErrorKind, Result};
use crate::reader::{GroupReaderBuilder, PartitionReaderBuilder};
use crate::record::TopicPartition;
use crate::stage::TransactionalStageBuilder;
use crate::writer::{KeyedWriter, PartitionWriter, TransactionalWriter};

/// Default time [`KafkaCluster::wait_for_brokers`] keeps trying.
pub const DEFAULT_BROKER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default timeout of one metadata or admin request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Inner {
    settings: ClientSettings,
    broker_timeout: Duration,
    request_timeout: Duration,
    admin: Mutex<Option<Arc<AdminClient<DefaultClientContext>>>>,
    /// A consumer outside any group, for batched offset look-ups.
    offsets: Mutex<Option<Arc<BaseConsumer>>>,
}

/// A Kafka cluster: the entry point of twitch. Cheap to clone.
#[derive(Clone)]
pub struct KafkaCluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

/// Builds a [`KafkaCluster`]; every setting has a documented default.
#[derive(Debug, Clone)]
pub struct KafkaClusterBuilder {
    settings: ClientSettings,
    broker_timeout: Duration,
    request_timeout: Duration,
}

impl KafkaClusterBuilder {
    /// Client id (default `twitch`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.settings = self.settings.with_client_id(id);
        self
    }

    /// Any librdkafka setting, passed through to every client (for example
    /// `security.protocol`, `sasl.mechanism`, `ssl.ca.location`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings = self.settings.set(key, value);
        self
    }

    /// librdkafka statistics every `interval` from every client this cluster
    /// creates, to read with `telemetry()` on readers and writers (see
    /// [`telemetry`](crate::telemetry)). Off by default: without it
    /// librdkafka gathers none.
    pub fn statistics(self, interval: Duration) -> Self {
        let ms = interval.as_millis().max(1);
        self.set("statistics.interval.ms", ms.to_string())
    }

    /// How long [`KafkaCluster::wait_for_brokers`] keeps trying (default
    /// [`DEFAULT_BROKER_TIMEOUT`]).
    pub fn broker_timeout(mut self, timeout: Duration) -> Self {
        self.broker_timeout = timeout;
        self
    }

    /// Timeout of one metadata or admin request (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Checks the settings and builds the cluster handle. No connection is
    /// made yet.
    pub fn build(self) -> Result<KafkaCluster> {
        self.settings.validate()?;
        Ok(KafkaCluster::from_settings(self.settings, self.broker_timeout, self.request_timeout))
    }
}

impl KafkaCluster {
    /// A cluster handle for the comma-separated `brokers`, with `name` as the
    /// client id. Settings are checked on first use; see
    /// [`KafkaCluster::builder`] for more options.
    pub fn new(brokers: String, name: String) -> Self {
        Self::from_settings(ClientSettings::new(brokers, name), DEFAULT_BROKER_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)
    }

    /// A builder for a cluster handle.
    pub fn builder(brokers: impl Into<String>) -> KafkaClusterBuilder {
        KafkaClusterBuilder {
            settings: ClientSettings::new(brokers, "twitch"),
            broker_timeout: DEFAULT_BROKER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    fn from_settings(settings: ClientSettings, broker_timeout: Duration, request_timeout: Duration) -> Self {
        KafkaCluster {
            inner: Arc::new(Inner {
                settings,
                broker_timeout,
                request_timeout,
                admin: Mutex::new(None),
                offsets: Mutex::new(None),
            }),
        }
    }

    /// The settings every client of this cluster starts from.
    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    /// Timeout of one metadata or admin request.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    fn admin(&self) -> Result<Arc<AdminClient<DefaultClientContext>>> {
        let mut slot = self.inner.admin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(admin) = slot.as_ref() {
            return Ok(Arc::clone(admin));
        }
        self.inner.settings.validate()?;
        let admin: AdminClient<DefaultClientContext> = self
            .inner
            .settings
            // Asking about a topic must never create it (brokers with
            // auto.create.topics.enable would).
            .client_config(&[("allow.auto.create.topics", "false")])
            .create()
            .map_err(|source| ErrorKind::ClientCreation { role: "admin client", source })?;
        let admin = Arc::new(admin);
        *slot = Some(Arc::clone(&admin));
        Ok(admin)
    }

    /// A consumer that joins no group, created once: librdkafka's batched
    /// offset look-up (`offsets_for_times`) is a consumer call.
    fn offsets_client(&self) -> Result<Arc<BaseConsumer>> {
        let mut slot = self.inner.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(Arc::clone(client));
        }
        self.inner.settings.validate()?;
        let client: BaseConsumer = self
            .inner
            .settings
            .client_config(&[("allow.auto.create.topics", "false"), ("enable.auto.commit", "false")])
            .create()
            .map_err(|source| ErrorKind::ClientCreation { role: "offsets consumer", source })?;
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.inner.request_timeout))
            .operation_timeout(Some(self.inner.request_timeout))
    }

    /// Runs a blocking librdkafka call on Tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AdminClient<DefaultClientContext>) -> T + Send + 'static,
    ) -> Result<T> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || f(&admin)).await.map_err(|e| ErrorKind::Task(e.to_string()).into())
    }

    /// A writer for one partition. Each writer owns its own producer, so
    /// create one and keep it.
    pub fn get_writer_for_partition(&self, tp: TopicPartition) -> Result<PartitionWriter> {
        PartitionWriter::new(&self.inner.settings, tp)
    }

    /// A writer that spreads records over `topic`'s partitions by key.
    pub fn keyed_writer(&self, topic: &str) -> Result<KeyedWriter> {
        KeyedWriter::new(&self.inner.settings, topic)
    }

    /// A transactional writer to `topic` with this `transactional_id`
    /// (stable across restarts of the same logical writer). Fences older
    /// writers with the same id.
    pub async fn transactional_writer(&self, topic: &str, transactional_id: &str) -> Result<TransactionalWriter> {
        TransactionalWriter::new(&self.inner.settings, topic, transactional_id).await
    }

    /// A stage that reads the group of `reader` and writes to
    /// `output_topic` in transactions that commit the input offsets too:
    /// exactly once (see [`stage`](crate::stage)). `transactional_id` names
    /// this member's writer; keep it across restarts.
    pub fn transactional_stage(&self, reader: GroupReaderBuilder, output_topic: &str, transactional_id: &str) -> TransactionalStageBuilder {
        TransactionalStageBuilder::new(self.inner.settings.clone(), reader, output_topic, transactional_id)
    }

    /// A reader of explicitly chosen partitions (no consumer group).
    pub fn partition_reader(&self) -> PartitionReaderBuilder {
        PartitionReaderBuilder::new(self.inner.settings.clone())
    }

    /// A member of consumer group `group_id`; add topics with
    /// [`GroupReaderBuilder::topic`].
    pub fn group_reader(&self, group_id: &str) -> GroupReaderBuilder {
        GroupReaderBuilder::new(self.inner.settings.clone(), group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "test_topic", "a.b-c_D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "has space", "ümlaut", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builder_rejects_bad_brokers_and_keeps_settings() {
        assert!(KafkaCluster::builder("nonsense").build().is_err());
        let c = KafkaCluster::builder("127.0.0.1:1").client_id("me").set("sasl.username", "u").build().unwrap();
        assert_eq!(c.settings().client_id(), "me");
        assert_eq!(c.settings().get("sasl.username"), Some("u"));
    }
}
