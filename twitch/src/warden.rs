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
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use tracing::{debug, info};

use crate::config::ClientSettings;

mod configs;
mod groups;
mod topics;

pub use groups::{decode_assignment, GroupInfo, MemberInfo};
pub use topics::{BrokerInfo, PartitionInfo, TopicConfiguration, TopicInfo};

pub use crate::config::validate_topic_name;
pub use crate::reader::PartitionLag;
use crate::error::{Error, ErrorKind, Result};
use crate::reader::{GroupReaderBuilder, PartitionReaderBuilder};
use crate::record::TopicPartition;
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
            inner: Arc::new(Inner { settings, broker_timeout, request_timeout, admin: Mutex::new(None) }),
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

    /// Runs a blocking librdkafka call on Tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AdminClient<DefaultClientContext>) -> T + Send + 'static,
    ) -> Result<T> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || f(&admin)).await.map_err(|e| ErrorKind::Task(e.to_string()).into())
    }

    async fn metadata(&self, topic: Option<String>, timeout: Duration) -> Result<Metadata, KafkaError> {
        match self.blocking(move |a| a.inner().fetch_metadata(topic.as_deref(), timeout)).await {
            Ok(res) => res,
            Err(e) => Err(KafkaError::MetadataFetch(match e.kafka_code() {
                Some(code) => code,
                None => RDKafkaErrorCode::Fail,
            })),
        }
    }

    /// Waits until a broker answers a metadata request, retrying with
    /// exponential backoff (100 ms up to 2 s) until the broker timeout, then
    /// fails with [`ErrorKind::BrokersUnavailable`].
    pub async fn wait_for_brokers(&self) -> Result<Vec<BrokerInfo>> {
        self.inner.settings.validate()?;
        let started = Instant::now();
        let deadline = started + self.inner.broker_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = remaining.min(self.inner.request_timeout).max(Duration::from_millis(100));
            let err = match self.metadata(None, attempt).await {
                Ok(md) if !md.brokers().is_empty() => {
                    let brokers: Vec<BrokerInfo> = md
                        .brokers()
                        .iter()
                        .map(|b| BrokerInfo { id: b.id(), host: b.host().to_owned(), port: b.port() })
                        .collect();
                    info!(brokers = brokers.len(), waited = ?started.elapsed(), "Kafka brokers are up");
                    return Ok(brokers);
                }
                Ok(_) => KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerNotAvailable),
                Err(e) => e,
            };
            if Instant::now() + backoff >= deadline {
                return Err(ErrorKind::BrokersUnavailable {
                    brokers: self.inner.settings.brokers().to_owned(),
                    waited: started.elapsed(),
                    source: err,
                }.into());
            }
            debug!(error = %err, ?backoff, "brokers not ready yet");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.inner.request_timeout))
            .operation_timeout(Some(self.inner.request_timeout))
    }

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
    /// up to the request timeout ([`ErrorKind::UnknownTopic`] then).
    pub async fn wait_for_topic(&self, topic: &str) -> Result<()> {
        validate_topic_name(topic)?;
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            let md = self.metadata(Some(topic.to_owned()), self.inner.request_timeout).await;
            let ready = md.as_ref().is_ok_and(|md| {
                md.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ErrorKind::UnknownTopic { topic: topic.to_owned() }.into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the topic if needed and checks it has the configured number of
    /// partitions ([`ErrorKind::PartitionCountMismatch`] otherwise).
    pub async fn ensure_topic(&self, config: &TopicConfiguration) -> Result<TopicInfo> {
        self.create_topics(std::slice::from_ref(config)).await?;
        let info = self.topic(&config.name).await?;
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

    /// All topics (internal ones included) with partitions and watermarks.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.topic_infos(None).await
    }

    /// One topic with partitions and watermarks.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        validate_topic_name(name)?;
        self.topic_infos(Some(name.to_owned()))
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ErrorKind::UnknownTopic { topic: name.to_owned() }.into())
    }

    /// Topics with partitions and watermarks. A topic whose metadata says
    /// its leader is moving (just created, or a broker failed over) is asked
    /// for again, every 100 ms, up to the request timeout.
    async fn topic_infos(&self, only: Option<String>) -> Result<Vec<TopicInfo>> {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            match self.topic_infos_once(only.clone()).await {
                Err(e) if is_leader_moving(&e) && Instant::now() < deadline => {
                    debug!(error = %e, "topic metadata without a leader; asking again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                res => return res,
            }
        }
    }

    async fn topic_infos_once(&self, only: Option<String>) -> Result<Vec<TopicInfo>> {
        let timeout = self.inner.request_timeout;
        let res = self
            .blocking(move |admin| -> Result<Vec<TopicInfo>> {
                let client = admin.inner();
                // A request for all topics never auto-creates one; a request
                // naming a missing topic may, on some brokers.
                let md = client.fetch_metadata(None, timeout).map_err(|source| ErrorKind::Metadata { source })?;
                let mut out = Vec::new();
                for t in md.topics().iter().filter(|t| only.as_deref().is_none_or(|o| o == t.name())) {
                    if let Some(err) = t.error() {
                        let code = RDKafkaErrorCode::from(err);
                        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                            continue;
                        }
                        return Err(ErrorKind::Metadata { source: KafkaError::MetadataFetch(code) }.into());
                    }
                    let mut partitions = Vec::with_capacity(t.partitions().len());
                    for p in t.partitions() {
                        let (low, high) = client
                            .fetch_watermarks(t.name(), p.id(), timeout)
                            .map_err(|source| ErrorKind::Metadata { source })?;
                        partitions.push(PartitionInfo {
                            id: p.id(),
                            leader: p.leader(),
                            replicas: p.replicas().to_vec(),
                            low_watermark: low,
                            high_watermark: high,
                        });
                    }
                    partitions.sort_by_key(|p| p.id);
                    out.push(TopicInfo { name: t.name().to_owned(), partitions });
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
            .await?;
        res
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

/// Whether a metadata error says that a leader is being elected or moved.
fn is_leader_moving(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Metadata { source: KafkaError::MetadataFetch(
            RDKafkaErrorCode::LeaderNotAvailable | RDKafkaErrorCode::NotLeaderForPartition
        ) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_leaders_are_asked_again_and_other_errors_are_not() {
        let md = |code| Error::from(ErrorKind::Metadata { source: KafkaError::MetadataFetch(code) });
        assert!(is_leader_moving(&md(RDKafkaErrorCode::LeaderNotAvailable)));
        assert!(is_leader_moving(&md(RDKafkaErrorCode::NotLeaderForPartition)));
        assert!(!is_leader_moving(&md(RDKafkaErrorCode::TopicAuthorizationFailed)));
        assert!(!is_leader_moving(&ErrorKind::UnknownTopic { topic: "t".into() }.into()));
    }

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
