//! The consumer-group protocols, and the settings each one takes.

use crate::config::ClientSettings;
use crate::error::{Error, Result};

/// The consumer-group protocol a group reader speaks; see
/// [`GroupReaderBuilder::group_protocol`](super::GroupReaderBuilder::group_protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// Kafka's original protocol (`group.protocol=classic`): the members
    /// join, one of them computes the assignment, and every rebalance
    /// stops the whole group (the eager assignors) or needs two rounds
    /// (cooperative-sticky). Every Kafka version and client speaks it. The
    /// default.
    #[default]
    Classic,
    /// KIP-848's protocol (`group.protocol=consumer`), on Kafka 4.0 and
    /// newer: the broker computes the assignment and hands each member its
    /// changes through heartbeats, so a member joining or leaving moves
    /// only the partitions that move, without stopping the others. Session
    /// timeout, heartbeat interval and assignor are the broker's settings
    /// (`group.consumer.*`), not the client's.
    Consumer,
}

impl GroupProtocol {
    /// librdkafka's name for it, the value of `group.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// Classic-protocol settings that librdkafka refuses under
/// `group.protocol=consumer`, with what replaces them.
const CLASSIC_ONLY: &[(&str, &str)] = &[
    ("session.timeout.ms", "the broker's `group.consumer.session.timeout.ms`"),
    ("heartbeat.interval.ms", "the broker's `group.consumer.heartbeat.interval.ms`"),
    ("group.protocol.type", "nothing: the consumer protocol has one type"),
    ("partition.assignment.strategy", "`group.remote.assignor` (`uniform` or `range`), chosen by the broker by default"),
];

/// Checks a group reader's settings against the group protocol they name.
/// Under the consumer protocol the classic-only keys are refused with
/// [`ErrorKind::InvalidConfig`], except the cooperative-sticky strategy,
/// which that protocol always follows: its key is returned, to be dropped.
pub(crate) fn consumer_protocol_check(settings: &ClientSettings) -> Result<Option<&'static str>> {
    match settings.get("group.protocol") {
        None | Some("classic") => return Ok(None),
        Some("consumer") => {}
        Some(other) => return Err(Error::config(format!("`group.protocol` is `classic` or `consumer`, not `{other}`"))),
    }
    let mut drop = None;
    for (key, instead) in CLASSIC_ONLY {
        match settings.get(key) {
            None => {}
            Some("cooperative-sticky") if *key == "partition.assignment.strategy" => drop = Some(*key),
            Some(_) => {
                return Err(Error::config(format!(
                    "`{key}` is a classic-protocol setting that `group.protocol=consumer` does not take \
                     (session_timeout() sets it too); use {instead}, or GroupProtocol::Classic"
                )));
            }
        }
    }
    Ok(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_consumer_protocol_refuses_classic_settings_and_drops_cooperative() {
        let consumer = || ClientSettings::new("127.0.0.1:9092", "test").set("group.protocol", "consumer");
        assert_eq!(consumer_protocol_check(&consumer()).unwrap(), None);
        let cooperative = consumer().set("partition.assignment.strategy", "cooperative-sticky");
        assert_eq!(consumer_protocol_check(&cooperative).unwrap(), Some("partition.assignment.strategy"));
        for (key, value, instead) in [
            ("session.timeout.ms", "6000", "group.consumer.session.timeout.ms"),
            ("heartbeat.interval.ms", "500", "group.consumer.heartbeat.interval.ms"),
            ("partition.assignment.strategy", "range", "group.remote.assignor"),
            ("group.protocol.type", "consumer", "one type"),
        ] {
            let err = consumer_protocol_check(&consumer().set(key, value)).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::InvalidConfig { .. }), "{err}");
            assert!(err.to_string().contains(key) && err.to_string().contains(instead), "{err}");
        }
        // The classic protocol (the default) takes them all.
        let classic = ClientSettings::new("127.0.0.1:9092", "test").set("session.timeout.ms", "6000").set("partition.assignment.strategy", "range");
        assert_eq!(consumer_protocol_check(&classic).unwrap(), None);
        assert_eq!(consumer_protocol_check(&classic.set("group.protocol", "classic")).unwrap(), None);
        let next = ClientSettings::new("127.0.0.1:9092", "test").set("group.protocol", "next");
        assert!(consumer_protocol_check(&next).is_err());
    }

    #[test]
    fn protocols_have_librdkafkas_names() {
        assert_eq!(GroupProtocol::default(), GroupProtocol::Classic);
        assert_eq!((GroupProtocol::Classic.name(), GroupProtocol::Consumer.name()), ("classic", "consumer"));
    }
}
