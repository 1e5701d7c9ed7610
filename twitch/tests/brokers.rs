//! Broker configs against the real broker: described with their sources,
//! altered one key at a time, and restored.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster;
use twitch::warden::{ConfigEntry, ConfigSource, KafkaCluster};
use twitch::ErrorKind;

/// The two dynamic configs the test sets on the broker, and what they are
/// without an override (Kafka's defaults).
const BACKOFF: (&str, &str) = ("log.cleaner.backoff.ms", "15000");
const THREADS: (&str, &str) = ("log.cleaner.threads", "1");

fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} is not described"))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Waits until the broker's overrides are `want` (a change takes a moment
/// to go through the controller).
async fn wait_for_overrides(cluster: &KafkaCluster, id: i32, want: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = cluster.broker_config_overrides(id).await.unwrap();
        if &now == want {
            return;
        }
        assert!(Instant::now() < deadline, "overrides of broker {id}: {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One test, as the steps share the broker's configs.
#[tokio::test(flavor = "multi_thread")]
async fn broker_configs_are_described_and_altered_one_key_at_a_time() {
    let cluster = cluster();
    let id = cluster.brokers().await.unwrap()[0].id;
    // A run that failed half-way may have left its overrides.
    cluster.reset_broker_configs(id, &[BACKOFF.0, THREADS.0]).await.unwrap();
    wait_for_overrides(&cluster, id, &BTreeMap::new()).await;

    let entries = cluster.broker_configs(id).await.unwrap();
    assert!(entries.len() > 100, "Kafka describes every broker config: {}", entries.len());
    for (name, value) in [BACKOFF, THREADS, ("message.max.bytes", "1048588")] {
        let e = find(&entries, name);
        assert_eq!((e.value.as_deref(), e.source, e.default, e.read_only), (Some(value), ConfigSource::Default, true, false), "{e:?}");
    }
    // From deploy/kafka/server.properties.
    let delay = find(&entries, "group.initial.rebalance.delay.ms");
    assert_eq!((delay.value.as_deref(), delay.source, delay.default), (Some("0"), ConfigSource::StaticBroker, false), "{delay:?}");
    let id_entry = find(&entries, "node.id");
    assert_eq!((id_entry.value.clone(), id_entry.read_only), (Some(id.to_string()), true), "{id_entry:?}");

    // A first override, then a second: the first stays.
    cluster.alter_broker_configs(id, &[(BACKOFF.0, "20000")]).await.unwrap();
    wait_for_overrides(&cluster, id, &map(&[(BACKOFF.0, "20000")])).await;
    cluster.alter_broker_configs(id, &[(THREADS.0, "2")]).await.unwrap();
    wait_for_overrides(&cluster, id, &map(&[(BACKOFF.0, "20000"), (THREADS.0, "2")])).await;
    let entries = cluster.broker_configs(id).await.unwrap();
    let threads = find(&entries, THREADS.0);
    assert_eq!((threads.value.as_deref(), threads.source, threads.default), (Some("2"), ConfigSource::Broker, false));
    // A default stays a default, a static setting stays static.
    let max = find(&entries, "message.max.bytes");
    assert_eq!((max.value.as_deref(), max.source), (Some("1048588"), ConfigSource::Default));
    assert_eq!(find(&entries, "group.initial.rebalance.delay.ms").source, ConfigSource::StaticBroker);

    // Removing one override leaves the other.
    cluster.reset_broker_configs(id, &[THREADS.0]).await.unwrap();
    wait_for_overrides(&cluster, id, &map(&[(BACKOFF.0, "20000")])).await;
    let entries = cluster.broker_configs(id).await.unwrap();
    assert_eq!((find(&entries, THREADS.0).value.as_deref(), find(&entries, THREADS.0).source), (Some(THREADS.1), ConfigSource::Default));

    // A config that is not dynamic is refused before anything is sent; an
    // invalid value is refused by the broker. Nothing changes.
    let err = cluster.alter_broker_configs(id, &[("log.dirs", "/nowhere")]).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }) && err.to_string().contains("log.dirs"), "{err}");
    let quick = KafkaCluster::builder(common::brokers()).request_timeout(Duration::from_secs(2)).build().unwrap();
    let err = quick.alter_broker_configs(id, &[(THREADS.0, "many")]).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Admin { operation: "alter configs", .. }), "{err}");
    assert_eq!(cluster.broker_config_overrides(id).await.unwrap(), map(&[(BACKOFF.0, "20000")]));

    // Restored: no override left for the other tests.
    cluster.reset_broker_configs(id, &[BACKOFF.0]).await.unwrap();
    wait_for_overrides(&cluster, id, &BTreeMap::new()).await;
    let entries = cluster.broker_configs(id).await.unwrap();
    assert_eq!((find(&entries, BACKOFF.0).value.as_deref(), find(&entries, BACKOFF.0).source), (Some(BACKOFF.1), ConfigSource::Default));
}

/// A broker id the cluster does not have.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_broker_is_an_error() {
    let quick = KafkaCluster::builder(common::brokers()).request_timeout(Duration::from_secs(2)).build().unwrap();
    let err = quick.broker_configs(4242).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Admin { operation: "describe configs", .. }), "{err}");
}
