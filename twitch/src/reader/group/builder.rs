//! The group reader's settings, and joining the group.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use tracing::info;

use super::flow::{Cursor, Flow};
use super::offsets::OffsetTracker;
use super::protocol::{consumer_protocol_check, GroupProtocol};
use super::rebalance::{GroupContext, RebalanceListener};
use super::typed::DeadLetter;
use super::{GroupReader, Member, OnDecodeError};
use crate::codec::Format;
use crate::config::{validate_topic_name, ClientSettings};
use crate::error::{Error, ErrorKind, Result, TransientLog};
use crate::reader::{Decoding, StartAt, CONSUMER_DEFAULTS};
use crate::writer::KeyedWriter;

/// Where a group starts reading a partition it has no committed offset
/// for. (To start elsewhere, choose the offset in a
/// [`RebalanceListener::on_assigned`].)
///
/// An exact offset is no group-wide start, so the builder does not take one:
///
/// ```compile_fail
/// # fn demo(builder: twitch::reader::GroupReaderBuilder) {
/// builder.start(twitch::StartAt::Offset(5));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupStart {
    /// The oldest record still stored.
    #[default]
    Beginning,
    /// Only records written from now on.
    End,
}

/// The heartbeat interval for a session timeout: a tenth of it, at most
/// librdkafka's default of 3 s (which it pairs with a 45 s session), at
/// least 1 ms.
///
/// librdkafka keeps one heartbeat in flight and drops the member when none
/// succeeded for the session timeout; the heartbeat shares the coordinator's
/// connection with commits and joins, answered in order. Sent every third
/// of the session (Kafka's upper bound, not its default), a heartbeat that
/// a loaded broker answers late, or holds behind a slow commit, has only
/// two thirds of the session left before the member is dropped and the
/// group rebalances: with 6 s that was 4 s, and a full-speed producer once
/// made a test broker take up to 5.9 s to answer commits and heartbeats. Every tenth leaves
/// nine tenths.
pub(crate) fn heartbeat_interval(session_timeout: Duration) -> Duration {
    (session_timeout / 10).clamp(Duration::from_millis(1), Duration::from_secs(3))
}

/// Builds a [`GroupReader`]; get one from
/// [`KafkaCluster::group_reader`](crate::warden::KafkaCluster::group_reader).
pub struct GroupReaderBuilder {
    settings: ClientSettings,
    group_id: String,
    topics: Vec<String>,
    start: GroupStart,
    commit_interval: Duration,
    revoke_grace: Duration,
    max_pending_per_partition: usize,
    decoding: Decoding,
    on_decode_error: OnDecodeError,
    transactional: bool,
    listener: Option<Box<dyn RebalanceListener>>,
}

impl std::fmt::Debug for GroupReaderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupReaderBuilder")
            .field("settings", &self.settings)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("start", &self.start)
            .field("commit_interval", &self.commit_interval)
            .field("revoke_grace", &self.revoke_grace)
            .field("max_pending_per_partition", &self.max_pending_per_partition)
            .field("on_decode_error", &self.on_decode_error)
            .field("transactional", &self.transactional)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl GroupReaderBuilder {
    pub(crate) fn new(settings: ClientSettings, group_id: &str) -> Self {
        GroupReaderBuilder {
            settings,
            group_id: group_id.to_owned(),
            topics: Vec::new(),
            start: GroupStart::Beginning,
            commit_interval: Duration::from_secs(1),
            revoke_grace: Duration::from_secs(5),
            max_pending_per_partition: 10_000,
            decoding: Decoding::default(),
            on_decode_error: OnDecodeError::Fail,
            transactional: false,
            listener: None,
        }
    }

    /// Subscribes to this topic too.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topics.push(topic.to_owned());
        self
    }

    /// Where a partition with no committed offset starts (default
    /// [`GroupStart::Beginning`]).
    pub fn start(mut self, start: GroupStart) -> Self {
        self.start = start;
        self
    }

    /// How often processed offsets are committed (default 1 s). One commit
    /// at a time, and after a slow one (a loaded broker) the next waits as
    /// long as it took, so that commits leave the group coordinator's
    /// connection free for heartbeats at least half of the time.
    pub fn commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = every;
        self
    }

    /// How long a revoke waits for in-flight records of the revoked
    /// partitions to be acked before committing (default 5 s). The reader
    /// waits on its own task, without blocking a thread.
    pub fn revoke_grace(mut self, grace: Duration) -> Self {
        self.revoke_grace = grace;
        self
    }

    /// Unacked records per partition above which fetching of that partition
    /// pauses, until half of them are acked (default 10,000).
    pub fn max_pending_per_partition(mut self, max: usize) -> Self {
        self.max_pending_per_partition = max.max(1);
        self
    }

    /// Format for records that do not name one (default bincode).
    pub fn format(mut self, format: Format) -> Self {
        self.decoding.format = format;
        self
    }

    /// Whether typed reads look at each record's headers (default true): to
    /// follow a [`FORMAT_HEADER`](crate::codec::FORMAT_HEADER) and to carry the
    /// headers in [`RecordMeta::headers`](crate::RecordMeta::headers). Turn it
    /// off when the writers set no headers (twitch's do not, by default):
    /// every record is then decoded with [`format`](Self::format), `headers`
    /// stays empty, and typed reads skip librdkafka's header parse. Reads of
    /// raw records keep their headers either way.
    pub fn typed_headers(mut self, yes: bool) -> Self {
        self.decoding.headers = yes;
        self
    }

    /// What [`GroupReader::typed`] does with undecodable records.
    pub fn on_decode_error(mut self, policy: OnDecodeError) -> Self {
        self.on_decode_error = policy;
        self
    }

    /// Code to run during rebalances: choose where assigned partitions start,
    /// finish work on revoked ones before their offsets are committed.
    pub fn on_rebalance(mut self, listener: impl RebalanceListener + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// How long the coordinator waits for a silent member before giving its
    /// partitions to the others (librdkafka's default is 45 s); heartbeats
    /// go every tenth of it, at most every 3 s, so that a heartbeat that a
    /// loaded broker answers late still leaves the member in the group.
    pub fn session_timeout(self, timeout: Duration) -> Self {
        let ms = timeout.as_millis().max(1);
        self.set("session.timeout.ms", &ms.to_string())
            .set("heartbeat.interval.ms", &heartbeat_interval(timeout).as_millis().to_string())
    }

    /// The consumer-group protocol (default [`GroupProtocol::Classic`]).
    ///
    /// Pick [`GroupProtocol::Consumer`] (KIP-848) when every broker runs
    /// Kafka 4.0 or newer (the protocol is on by default there): the broker
    /// assigns partitions and hands each member its changes incrementally,
    /// so members joining or leaving move only the partitions that move,
    /// with no stop-the-world rebalance and faster hand-overs. Keep
    /// [`GroupProtocol::Classic`] for older brokers, for a group shared with
    /// clients that only speak the classic protocol, or to choose the
    /// assignor, session timeout and heartbeat interval on the client.
    ///
    /// Under the consumer protocol those three are the broker's settings
    /// (`group.consumer.session.timeout.ms`,
    /// `group.consumer.heartbeat.interval.ms`, `group.consumer.assignors`),
    /// and librdkafka refuses the client's: [`build`](Self::build) then
    /// fails with [`ErrorKind::InvalidConfig`] naming the key when
    /// `session.timeout.ms` (so [`session_timeout`](Self::session_timeout)),
    /// `heartbeat.interval.ms`, `group.protocol.type` or an eager
    /// `partition.assignment.strategy` is set. [`cooperative`](Self::cooperative)
    /// is dropped instead: every rebalance of the consumer protocol is
    /// incremental already.
    pub fn group_protocol(self, protocol: GroupProtocol) -> Self {
        self.set("group.protocol", protocol.name())
    }

    /// Static membership: a restart with the same id within the session
    /// timeout gets the same partitions back without a rebalance.
    pub fn static_member(self, instance_id: &str) -> Self {
        self.set("group.instance.id", instance_id)
    }

    /// Cooperative-sticky assignment: rebalances move only the partitions
    /// that must move.
    pub fn cooperative(self) -> Self {
        self.set("partition.assignment.strategy", "cooperative-sticky")
    }

    /// Reads only committed transactional records (`true`, librdkafka's
    /// default) or everything (`false`).
    pub fn read_committed(self, yes: bool) -> Self {
        self.set("isolation.level", if yes { "read_committed" } else { "read_uncommitted" })
    }

    /// For consume-transform-produce: the reader never commits by itself;
    /// its processed offsets are committed only through
    /// [`TransactionalWriter::send_offsets`](crate::writer::TransactionalWriter::send_offsets).
    /// Also reads only committed records. Before it gives partitions up, a
    /// read returns [`ErrorKind::Revoking`] once, so that the open
    /// transaction ends while they are still this member's. A
    /// [`TransactionalStage`](crate::stage::TransactionalStage) does all of
    /// this for you.
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self.read_committed(true)
    }

    /// librdkafka statistics every `interval`, to read with
    /// [`GroupReader::telemetry`] or [`GroupReader::monitor`] (see
    /// [`telemetry`](crate::telemetry)). Off by default: without it
    /// librdkafka gathers none.
    pub fn statistics(self, interval: Duration) -> Self {
        let ms = interval.as_millis().max(1);
        self.set("statistics.interval.ms", &ms.to_string())
    }

    /// Low latency for a trickle of records (a live page, a monitor):
    /// librdkafka answers a fetch as soon as one record is there or after
    /// [`LOW_LATENCY_FETCH_WAIT`](crate::reader::LOW_LATENCY_FETCH_WAIT)
    /// (`fetch.wait.max.ms`, 500 ms by default). At 1,000 records/s on the
    /// embedded broker that takes the end-to-end p99 from about 255 ms to
    /// under 20 ms; an idle reader then sends a fetch every 10 ms instead of
    /// every 500 ms (see docs/observability.md for what it costs).
    pub fn low_latency(self) -> Self {
        self.set("fetch.wait.max.ms", &crate::reader::LOW_LATENCY_FETCH_WAIT.as_millis().to_string())
    }

    /// Any librdkafka consumer setting. `enable.auto.commit` cannot be turned
    /// on: twitch commits only processed records.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings = self.settings.set(key, value);
        self
    }

    /// Creates the consumer and subscribes. Partitions arrive with the
    /// first rebalance, while the reader is being read.
    pub fn build(self) -> Result<GroupReader> {
        self.settings.validate()?;
        if self.group_id.trim().is_empty() {
            return Err(Error::config("the consumer group id is empty"));
        }
        if self.topics.is_empty() {
            return Err(Error::config("a group reader needs at least one topic"));
        }
        for t in &self.topics {
            validate_topic_name(t)?;
        }
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            if self.settings.get(key).is_some_and(|v| v != "false") {
                return Err(Error::config(format!(
                    "`{key}` cannot be enabled: twitch commits only what the application acked"
                )));
            }
        }
        let dropped = consumer_protocol_check(&self.settings)?;
        let mut config = self.settings.client_config(CONSUMER_DEFAULTS);
        if let Some(key) = dropped {
            config.remove(key);
        }
        config.set("group.id", &self.group_id);
        if self.settings.get("auto.offset.reset").is_none() {
            config.set("auto.offset.reset", if self.start == GroupStart::End { "latest" } else { "earliest" });
        }
        let topics: Vec<Arc<str>> = self.topics.iter().map(|t| Arc::from(t.as_str())).collect();
        let context = GroupContext::new(OffsetTracker::new(&topics), !self.transactional);
        let consumer: StreamConsumer<GroupContext> =
            config.create_with_context(context).map_err(|source| ErrorKind::ClientCreation { role: "consumer", source })?;
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| ErrorKind::Subscription { operation: "subscribe", source })?;
        let dead_letter = match &self.on_decode_error {
            OnDecodeError::DeadLetter(topic) => Some(DeadLetter::new(KeyedWriter::new(&self.settings, topic)?)),
            OnDecodeError::Fail => None,
        };
        let reset_to = match self.settings.get("auto.offset.reset") {
            Some("latest" | "largest" | "end") => StartAt::End,
            Some(_) => StartAt::Beginning,
            None if self.start == GroupStart::End => StartAt::End,
            None => StartAt::Beginning,
        };
        info!(group = %self.group_id, topics = ?names, "joined consumer group");
        Ok(GroupReader {
            member: Member { consumer: Some(Arc::new(consumer)), topics },
            flow: Flow {
                cursor: Cursor::default(),
                commit_every: self.commit_interval,
                last_commit: Instant::now(),
                next_commit: Instant::now() + self.commit_interval,
                max_pending: self.max_pending_per_partition,
                full: false,
                paused: HashSet::new(),
                hold_revokes: self.transactional,
                revoke_announced: false,
                transient: TransientLog::default(),
                revoke_grace: self.revoke_grace,
                listener: self.listener,
                events: None,
            },
            decoding: self.decoding,
            dead_letter,
            group_id: self.group_id,
            reset_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat_ms(session: Duration) -> Option<String> {
        let builder = GroupReaderBuilder::new(ClientSettings::new("127.0.0.1:9092", "test"), "g").session_timeout(session);
        builder.settings.get("heartbeat.interval.ms").map(str::to_owned)
    }

    /// The soak's 6 s session: heartbeats every 600 ms, not every 2 s.
    #[test]
    fn heartbeats_go_every_tenth_of_a_short_session() {
        assert_eq!(heartbeat_ms(Duration::from_secs(6)).as_deref(), Some("600"));
        assert_eq!(heartbeat_ms(Duration::from_secs(10)).as_deref(), Some("1000"));
        let builder = GroupReaderBuilder::new(ClientSettings::new("b:9092", "t"), "g").session_timeout(Duration::from_secs(6));
        assert_eq!(builder.settings.get("session.timeout.ms"), Some("6000"));
    }

    #[test]
    fn the_protocol_option_sets_group_protocol() {
        let base = || GroupReaderBuilder::new(ClientSettings::new("127.0.0.1:9092", "test"), "g");
        assert_eq!(base().settings.get("group.protocol"), None);
        assert_eq!(base().group_protocol(GroupProtocol::Consumer).settings.get("group.protocol"), Some("consumer"));
        assert_eq!(base().group_protocol(GroupProtocol::Classic).settings.get("group.protocol"), Some("classic"));
    }

    #[test]
    fn heartbeats_go_at_most_every_three_seconds_and_at_least_every_millisecond() {
        assert_eq!(heartbeat_ms(Duration::from_secs(45)).as_deref(), Some("3000"));
        assert_eq!(heartbeat_ms(Duration::from_secs(600)).as_deref(), Some("3000"));
        assert_eq!(heartbeat_ms(Duration::from_millis(5)).as_deref(), Some("1"));
    }
}
