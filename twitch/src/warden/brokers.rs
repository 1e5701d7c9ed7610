//! Broker configs: described, and altered one key at a time (see
//! [`configs`](super::configs) for how).
//!
//! A broker's overrides are its per-broker dynamic configs (source
//! [`ConfigSource::Broker`]); cluster-wide dynamic defaults
//! ([`ConfigSource::ClusterDefault`]) and `server.properties`
//! ([`ConfigSource::StaticBroker`]) are left alone. Only configs Kafka marks
//! dynamic can be altered; the broker refuses others with an
//! [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) error (read-only ones, before anything is
//! sent) or an [`ErrorKind::Admin`](crate::ErrorKind::Admin) one.

use std::collections::BTreeMap;

use super::configs::{values, Resource};
use super::{ConfigEntry, ConfigSource, KafkaCluster};
use crate::error::Result;

impl KafkaCluster {
    /// Every config of broker `id` as it describes them, defaults included,
    /// each with its source. The request goes to that broker.
    pub async fn broker_configs(&self, id: i32) -> Result<Vec<ConfigEntry>> {
        self.describe_configs(Resource::Broker(id)).await
    }

    /// The per-broker dynamic configs set on broker `id` (its overrides),
    /// by name; empty when it has none.
    pub async fn broker_config_overrides(&self, id: i32) -> Result<BTreeMap<String, String>> {
        let entries = self.broker_configs(id).await?;
        Ok(values(entries.into_iter().filter(|e| e.source == ConfigSource::Broker)))
    }

    /// Sets the dynamic configs named in `changes` on broker `id` (a key
    /// named twice takes its last value). Its other overrides stay, and
    /// configs that follow a default keep following it. With no changes,
    /// nothing is sent. Carried out and checked like
    /// [`alter_topic_configs`](Self::alter_topic_configs); a change the
    /// broker does not apply is [`ErrorKind::Admin`](crate::ErrorKind::Admin).
    ///
    /// ```no_run
    /// # async fn demo(cluster: twitch::KafkaCluster) -> twitch::Result<()> {
    /// cluster.alter_broker_configs(1, &[("log.cleaner.threads", "2")]).await?;
    /// cluster.reset_broker_configs(1, &["log.cleaner.threads"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn alter_broker_configs(&self, id: i32, changes: &[(&str, &str)]) -> Result<()> {
        self.alter_configs(Resource::Broker(id), changes, &[]).await
    }

    /// Removes the per-broker overrides named in `keys` from broker `id`:
    /// those configs follow the cluster-wide or static value again. Its
    /// other overrides stay.
    pub async fn reset_broker_configs(&self, id: i32, keys: &[&str]) -> Result<()> {
        self.alter_configs(Resource::Broker(id), &[], keys).await
    }
}
