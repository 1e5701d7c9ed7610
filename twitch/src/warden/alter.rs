//! How an incremental change of configs is carried out with a request that
//! replaces every override of a resource (rdkafka 0.39 has only that one):
//! what to send, what to refuse before sending, and how to tell that the
//! broker applied it. rdkafka 0.39 reports every resource of an
//! AlterConfigs request as altered, even one the broker refused, so the
//! change is checked by describing the resource again.

use std::collections::BTreeMap;

use super::ConfigEntry;

/// The configs a request that replaces every override of a resource must
/// carry so that only `set` and `reset` change: the overrides among
/// `described` (`owned`), without `reset`, with `set` applied in order.
/// Fails with the name of an override whose value the broker hid (and that
/// is neither set nor reset).
pub(super) fn configs_to_send(
    described: &[ConfigEntry],
    owned: impl Fn(&ConfigEntry) -> bool,
    set: &[(&str, &str)],
    reset: &[&str],
) -> Result<BTreeMap<String, String>, String> {
    let mut send = BTreeMap::new();
    let named = |name: &str| reset.contains(&name) || set.iter().any(|(k, _)| *k == name);
    for entry in described.iter().filter(|e| owned(e)) {
        match &entry.value {
            _ if reset.contains(&entry.name.as_str()) => {}
            Some(value) => {
                send.insert(entry.name.clone(), value.clone());
            }
            None if named(&entry.name) => {}
            None => return Err(entry.name.clone()),
        }
    }
    send.extend(set.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Ok(send)
}

/// The first key of `set` that the broker describes as read-only (it
/// cannot change while the broker runs), if any.
pub(super) fn read_only<'a>(described: &[ConfigEntry], set: &[(&'a str, &str)]) -> Option<&'a str> {
    set.iter().map(|(k, _)| *k).find(|k| described.iter().any(|e| e.name == *k && e.read_only))
}

/// Whether `described` shows the change applied: each key of `set` an
/// override (`owned`) with its last value (or a hidden one), and each key of
/// `reset` that is not also set no override any more.
pub(super) fn applied(
    described: &[ConfigEntry],
    owned: impl Fn(&ConfigEntry) -> bool,
    set: &[(&str, &str)],
    reset: &[&str],
) -> bool {
    let last: BTreeMap<&str, &str> = set.iter().copied().collect();
    let is_set = |k: &str, v: &str| {
        described.iter().any(|e| e.name == k && owned(e) && e.value.as_deref().is_none_or(|now| now == v))
    };
    let gone = |k: &str| !described.iter().any(|e| e.name == k && owned(e));
    last.iter().all(|(k, v)| is_set(k, v)) && reset.iter().filter(|k| !last.contains_key(*k)).all(|k| gone(k))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::warden::configs::{ConfigSource, Resource};

    fn entry(name: &str, value: Option<&str>, source: ConfigSource) -> ConfigEntry {
        let default = source == ConfigSource::Default;
        ConfigEntry { name: name.into(), value: value.map(Into::into), source, read_only: false, default, sensitive: false }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// What Apache Kafka describes for a topic created with one override.
    fn described() -> Vec<ConfigEntry> {
        vec![
            entry("cleanup.policy", Some("delete"), ConfigSource::Default),
            entry("retention.ms", Some("3600000"), ConfigSource::Topic),
            entry("segment.bytes", Some("1073741824"), ConfigSource::StaticBroker),
            entry("min.insync.replicas", Some("1"), ConfigSource::ClusterDefault),
            entry("max.message.bytes", Some("1048588"), ConfigSource::Broker),
        ]
    }

    fn topic_send(described: &[ConfigEntry], set: &[(&str, &str)], reset: &[&str]) -> Result<BTreeMap<String, String>, String> {
        configs_to_send(described, |e| Resource::Topic("t").owns(e), set, reset)
    }

    #[test]
    fn only_overrides_and_changes_are_sent() {
        let send = topic_send(&described(), &[("cleanup.policy", "compact")], &[]).unwrap();
        assert_eq!(send, map(&[("cleanup.policy", "compact"), ("retention.ms", "3600000")]));
    }

    #[test]
    fn a_change_replaces_an_override() {
        let send = topic_send(&described(), &[("retention.ms", "60000"), ("retention.ms", "120000")], &[]).unwrap();
        assert_eq!(send, map(&[("retention.ms", "120000")]));
    }

    #[test]
    fn defaults_are_never_pinned() {
        assert_eq!(topic_send(&described(), &[], &[]).unwrap(), map(&[("retention.ms", "3600000")]));
    }

    #[test]
    fn a_reset_drops_only_its_override() {
        let mut d = described();
        d.push(entry("cleanup.policy", Some("compact"), ConfigSource::Topic));
        assert_eq!(topic_send(&d, &[], &["retention.ms"]).unwrap(), map(&[("cleanup.policy", "compact")]));
        assert_eq!(topic_send(&d, &[], &["segment.bytes"]).unwrap(), map(&[("cleanup.policy", "compact"), ("retention.ms", "3600000")]));
    }

    #[test]
    fn a_broker_owns_only_its_per_broker_overrides() {
        let owns = |source| Resource::Broker(1).owns(&entry("a", Some("1"), source));
        assert!(owns(ConfigSource::Broker));
        for source in [ConfigSource::Topic, ConfigSource::ClusterDefault, ConfigSource::StaticBroker, ConfigSource::Default, ConfigSource::Unknown] {
            assert!(!owns(source), "{source:?}");
        }
        let send = configs_to_send(&described(), |e| Resource::Broker(1).owns(e), &[("log.cleaner.threads", "2")], &[]).unwrap();
        assert_eq!(send, map(&[("log.cleaner.threads", "2"), ("max.message.bytes", "1048588")]));
    }

    #[test]
    fn without_sources_non_default_values_are_the_topic_overrides() {
        let mut old = entry("retention.ms", Some("60000"), ConfigSource::Unknown);
        old.default = false;
        let mut default = entry("segment.bytes", Some("1073741824"), ConfigSource::Unknown);
        default.default = true;
        let send = topic_send(&[old, default], &[("cleanup.policy", "compact")], &[]).unwrap();
        assert_eq!(send, map(&[("cleanup.policy", "compact"), ("retention.ms", "60000")]));
    }

    #[test]
    fn a_hidden_override_cannot_be_kept_unless_replaced_or_reset() {
        let mut described = described();
        described.push(entry("secret.thing", None, ConfigSource::Topic));
        assert_eq!(topic_send(&described, &[("retention.ms", "1")], &[]), Err("secret.thing".to_owned()));
        let send = topic_send(&described, &[("secret.thing", "s")], &[]).unwrap();
        assert_eq!(send, map(&[("retention.ms", "3600000"), ("secret.thing", "s")]));
        assert_eq!(topic_send(&described, &[], &["secret.thing"]).unwrap(), map(&[("retention.ms", "3600000")]));
        // Hidden defaults do not matter.
        let hidden_default = entry("other.secret", None, ConfigSource::Default);
        assert!(topic_send(&[hidden_default], &[("retention.ms", "1")], &[]).is_ok());
    }

    #[test]
    fn read_only_configs_are_refused_before_sending() {
        let mut d = described();
        d.push(ConfigEntry { read_only: true, ..entry("log.dirs", Some("/data"), ConfigSource::StaticBroker) });
        assert_eq!(read_only(&d, &[("log.cleaner.threads", "2"), ("retention.ms", "1")]), None);
        assert_eq!(read_only(&d, &[("retention.ms", "1"), ("log.dirs", "/x")]), Some("log.dirs"));
    }

    #[test]
    fn a_change_counts_as_applied_once_described_as_an_override() {
        let owned = |e: &ConfigEntry| Resource::Topic("t").owns(e);
        let d = described();
        assert!(applied(&d, owned, &[("retention.ms", "3600000")], &[]));
        assert!(!applied(&d, owned, &[("retention.ms", "1")], &[]), "another value");
        assert!(!applied(&d, owned, &[("cleanup.policy", "delete")], &[]), "the default value is no override");
        assert!(applied(&d, owned, &[("retention.ms", "1"), ("retention.ms", "3600000")], &[]), "the last value counts");
        assert!(applied(&d, owned, &[], &["cleanup.policy"]));
        assert!(!applied(&d, owned, &[], &["retention.ms"]), "still an override");
        assert!(applied(&d, owned, &[("retention.ms", "3600000")], &["retention.ms"]), "a key both set and reset is set");
        let hidden = vec![entry("secret", None, ConfigSource::Topic)];
        assert!(applied(&hidden, owned, &[("secret", "s")], &[]), "a hidden value cannot be compared");
    }
}
