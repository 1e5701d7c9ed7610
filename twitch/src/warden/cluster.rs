//! What the cluster's metadata says: brokers, topics, partitions with their
//! leaders, replicas and in-sync replicas, and watermarks.
//!
//! Metadata is one request. Watermarks are two more in all, however many
//! partitions: librdkafka's `offsets_for_times` with Kafka's special
//! timestamps `-2` (earliest) and `-1` (latest) sends one ListOffsets request
//! per partition leader for a whole list of partitions, and the earliest
//! and latest look-ups run side by side. (Asking partition by partition,
//! as twitch once did, costs one blocking round trip per partition.)
//!
//! The controller's id is not reported: librdkafka keeps it inside its
//! metadata cache, and rdkafka 0.39 does not wrap `DescribeCluster`.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use tracing::{debug, info};

use super::{validate_topic_name, KafkaCluster, PartitionInfo, TopicInfo};
use crate::error::{Error, ErrorKind, Result};

/// The watermarks of a partition that has no leader (or whose leader did not
/// answer): they cannot be read, and [`PartitionInfo::len`] counts 0.
pub const UNKNOWN_WATERMARK: i64 = -1;

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// A partition as the metadata describes it, before its watermarks are read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawPartition {
    id: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// A topic as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawTopic {
    name: String,
    /// The topic-level error, if any.
    error: Option<RDKafkaErrorCode>,
    partitions: Vec<RawPartition>,
}

/// Low and high watermarks by topic and partition.
type Marks = HashMap<(String, i32), (i64, i64)>;

fn raw_topics(md: &Metadata, only: Option<&str>) -> Vec<RawTopic> {
    md.topics()
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name()))
        .map(|t| RawTopic {
            name: t.name().to_owned(),
            error: t.error().map(RDKafkaErrorCode::from),
            partitions: t
                .partitions()
                .iter()
                .map(|p| RawPartition { id: p.id(), leader: p.leader(), replicas: p.replicas().to_vec(), isr: p.isr().to_vec() })
                .collect(),
        })
        .collect()
}

/// The topics to report: unknown ones left out, a topic whose leader is
/// being elected (just created) kept, any other topic error returned.
fn listed(raw: Vec<RawTopic>) -> Result<Vec<RawTopic>> {
    let mut out = Vec::with_capacity(raw.len());
    for t in raw {
        match t.error {
            None | Some(RDKafkaErrorCode::LeaderNotAvailable) => out.push(t),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {}
            Some(code) => return Err(ErrorKind::Metadata { source: KafkaError::MetadataFetch(code) }.into()),
        }
    }
    Ok(out)
}

/// The partitions whose watermarks can be asked for: those with a leader.
fn with_leaders(topics: &[RawTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|p| p.leader >= 0).map(move |p| (t.name.clone(), p.id)))
        .collect()
}

/// Topics with their partitions by id and their watermarks from `marks`
/// ([`UNKNOWN_WATERMARK`] where there are none), sorted by name.
fn assemble(raw: Vec<RawTopic>, marks: &Marks) -> Vec<TopicInfo> {
    let mut out: Vec<TopicInfo> = raw
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| {
                    let (low, high) =
                        marks.get(&(t.name.clone(), p.id)).copied().unwrap_or((UNKNOWN_WATERMARK, UNKNOWN_WATERMARK));
                    PartitionInfo {
                        id: p.id,
                        leader: p.leader,
                        replicas: p.replicas,
                        isr: p.isr,
                        low_watermark: low,
                        high_watermark: high,
                    }
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            TopicInfo { name: t.name, partitions }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The offsets a batched look-up found, per partition; partitions that came
/// back with an error or without an offset are left out.
fn offsets_of(tpl: &TopicPartitionList) -> HashMap<(String, i32), i64> {
    tpl.elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .filter_map(|e| match e.offset() {
            RdOffset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// Pairs earliest and latest offsets; a partition needs both.
fn pair(low: HashMap<(String, i32), i64>, mut high: HashMap<(String, i32), i64>) -> Marks {
    low.into_iter().filter_map(|(k, l)| high.remove(&k).map(|h| (k, (l, h)))).collect()
}

impl KafkaCluster {
    pub(super) async fn metadata(&self, topic: Option<String>, timeout: Duration) -> Result<Metadata, KafkaError> {
        match self.blocking(move |a| a.inner().fetch_metadata(topic.as_deref(), timeout)).await {
            Ok(res) => res,
            Err(e) => Err(KafkaError::MetadataFetch(e.kafka_code().unwrap_or(RDKafkaErrorCode::Fail))),
        }
    }

    /// Waits until a broker answers a metadata request, retrying with
    /// exponential backoff (100 ms up to 2 s) until the broker timeout, then
    /// fails with [`ErrorKind::BrokersUnavailable`].
    pub async fn wait_for_brokers(&self) -> Result<Vec<BrokerInfo>> {
        self.settings().validate()?;
        let started = Instant::now();
        let deadline = started + self.inner.broker_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = remaining.min(self.request_timeout()).max(Duration::from_millis(100));
            let err = match self.metadata(None, attempt).await {
                Ok(md) if !md.brokers().is_empty() => {
                    let brokers = brokers_of(&md);
                    info!(brokers = brokers.len(), waited = ?started.elapsed(), "Kafka brokers are up");
                    return Ok(brokers);
                }
                Ok(_) => KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerNotAvailable),
                Err(e) => e,
            };
            if Instant::now() + backoff >= deadline {
                return Err(ErrorKind::BrokersUnavailable {
                    brokers: self.settings().brokers().to_owned(),
                    waited: started.elapsed(),
                    source: err,
                }
                .into());
            }
            debug!(error = %err, ?backoff, "brokers not ready yet");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The brokers the metadata lists now (one request, no waiting), by id.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>> {
        let md = self.metadata(None, self.request_timeout()).await.map_err(|source| ErrorKind::Metadata { source })?;
        Ok(brokers_of(&md))
    }

    /// All topics (internal ones included), with each partition's leader,
    /// replicas, in-sync replicas and watermarks, as the cluster is now: no
    /// waiting. A partition without a leader (its only replica's broker is
    /// down, an election is under way) is listed with leader `-1` and both
    /// watermarks at [`UNKNOWN_WATERMARK`]; so is one whose leader did not
    /// answer the watermark request. A topic being created may show no
    /// partitions yet.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>> {
        let md = self.metadata(None, self.request_timeout()).await.map_err(|source| ErrorKind::Metadata { source })?;
        let raw = listed(raw_topics(&md, None))?;
        self.with_watermarks(raw).await
    }

    /// One topic, like [`topics`](Self::topics). While a partition has no
    /// leader (or its watermarks could not be read), or the topic is still being created, it is asked for again
    /// every 100 ms, up to the request timeout; a partition still without a
    /// leader then is listed with leader `-1` and watermarks at
    /// [`UNKNOWN_WATERMARK`]. A missing topic is [`ErrorKind::UnknownTopic`].
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        self.topic_until_known(name, false).await
    }

    /// [`topic`](Self::topic) for a topic this client has just created: the
    /// node asked may not have applied the creation yet (each node of a
    /// cluster learns of it on its own), so "unknown topic" is asked again
    /// too, up to the request timeout.
    pub(super) async fn created_topic(&self, name: &str) -> Result<TopicInfo> {
        self.topic_until_known(name, true).await
    }

    async fn topic_until_known(&self, name: &str, just_created: bool) -> Result<TopicInfo> {
        validate_topic_name(name)?;
        let deadline = Instant::now() + self.request_timeout();
        loop {
            match self.topic_once(name).await {
                Ok(info) if !all_known(&info) && Instant::now() < deadline => {
                    debug!(topic = name, "a partition without a leader or watermarks; asking again");
                }
                Err(e) if is_leader_moving(&e) && Instant::now() < deadline => {
                    debug!(error = %e, "topic metadata without a leader; asking again");
                }
                Err(e) if just_created && matches!(e.kind(), ErrorKind::UnknownTopic { .. }) && Instant::now() < deadline => {
                    debug!(topic = name, "a node has not learned of the new topic yet; asking again");
                }
                res => return res,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`topic`](Self::topic) where every partition must have a leader and
    /// watermarks (offset resets need them): still without after the
    /// request timeout, it fails with a `LeaderNotAvailable` metadata error.
    pub(super) async fn topic_with_leaders(&self, name: &str) -> Result<TopicInfo> {
        let info = self.topic(name).await?;
        if !all_known(&info) {
            return Err(ErrorKind::Metadata { source: KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable) }.into());
        }
        Ok(info)
    }

    async fn topic_once(&self, name: &str) -> Result<TopicInfo> {
        // A request for all topics never auto-creates one; a request naming
        // a missing topic may, on some brokers.
        let md = self.metadata(None, self.request_timeout()).await.map_err(|source| ErrorKind::Metadata { source })?;
        let raw = raw_topics(&md, Some(name));
        if let Some(code) = raw.iter().find_map(|t| t.error.filter(|c| *c != RDKafkaErrorCode::UnknownTopicOrPartition)) {
            return Err(ErrorKind::Metadata { source: KafkaError::MetadataFetch(code) }.into());
        }
        self.with_watermarks(listed(raw)?)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ErrorKind::UnknownTopic { topic: name.to_owned() }.into())
    }

    /// Reads the watermarks of every partition with a leader: the earliest
    /// and latest look-ups at once, each one request per leader.
    async fn with_watermarks(&self, raw: Vec<RawTopic>) -> Result<Vec<TopicInfo>> {
        let wanted = with_leaders(&raw);
        if wanted.is_empty() {
            return Ok(assemble(raw, &Marks::new()));
        }
        let (low, high) = tokio::join!(self.offsets_at(&wanted, RdOffset::Beginning), self.offsets_at(&wanted, RdOffset::End));
        Ok(assemble(raw, &pair(low?, high?)))
    }

    /// The earliest (`Beginning`) or latest (`End`) offsets of `partitions`.
    async fn offsets_at(&self, partitions: &[(String, i32)], at: RdOffset) -> Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            tpl.add_partition_offset(topic, *partition, at).map_err(|source| ErrorKind::Metadata { source })?;
        }
        let client = self.offsets_client()?;
        let timeout = self.request_timeout();
        let look_up = move || {
            let refresh = |topics: BTreeSet<String>| {
                for topic in topics {
                    if let Err(e) = client.fetch_metadata(Some(&topic), timeout) {
                        debug!(topic, error = %e, "refreshing the offsets client's metadata failed");
                    }
                }
            };
            let found = match client.offsets_for_times(tpl.clone(), timeout) {
                Ok(found) => found,
                Err(e) => {
                    // A topic the client has not seen yet (just created)
                    // fails the whole look-up: once more, after a refresh.
                    debug!(error = %e, "offsets look-up failed; refreshing metadata and asking again");
                    refresh(tpl.elements().iter().map(|e| e.topic().to_owned()).collect());
                    client.offsets_for_times(tpl, timeout)?
                }
            };
            // A partition whose leader the client did not know (or no longer
            // knew) comes back with an error: refresh the client's view of
            // its topic for the next look-up.
            refresh(found.elements().iter().filter(|e| e.error().is_err()).map(|e| e.topic().to_owned()).collect());
            Ok(found)
        };
        let found = tokio::task::spawn_blocking(look_up)
            .await
            .map_err(|e| Error::from(ErrorKind::Task(e.to_string())))?
            .map_err(|source| ErrorKind::Metadata { source })?;
        Ok(offsets_of(&found))
    }
}

/// Whether every partition has a leader and watermarks.
fn all_known(info: &TopicInfo) -> bool {
    info.partitions.iter().all(|p| p.leader >= 0 && p.high_watermark != UNKNOWN_WATERMARK)
}

fn brokers_of(md: &Metadata) -> Vec<BrokerInfo> {
    let mut brokers: Vec<BrokerInfo> =
        md.brokers().iter().map(|b| BrokerInfo { id: b.id(), host: b.host().to_owned(), port: b.port() }).collect();
    brokers.sort_by_key(|b| b.id);
    brokers
}

/// Whether a metadata error says that a leader is being elected or moved.
fn is_leader_moving(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Metadata {
            source: KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable | RDKafkaErrorCode::NotLeaderForPartition)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: i32, leader: i32) -> RawPartition {
        RawPartition { id, leader, replicas: vec![1, 2], isr: if leader >= 0 { vec![leader] } else { vec![] } }
    }

    fn raw(name: &str, error: Option<RDKafkaErrorCode>, partitions: Vec<RawPartition>) -> RawTopic {
        RawTopic { name: name.into(), error, partitions }
    }

    #[test]
    fn moving_leaders_are_asked_again_and_other_errors_are_not() {
        let md = |code| Error::from(ErrorKind::Metadata { source: KafkaError::MetadataFetch(code) });
        assert!(is_leader_moving(&md(RDKafkaErrorCode::LeaderNotAvailable)));
        assert!(is_leader_moving(&md(RDKafkaErrorCode::NotLeaderForPartition)));
        assert!(!is_leader_moving(&md(RDKafkaErrorCode::TopicAuthorizationFailed)));
        assert!(!is_leader_moving(&ErrorKind::UnknownTopic { topic: "t".into() }.into()));
    }

    #[test]
    fn only_partitions_with_a_leader_are_asked_for_watermarks() {
        let topics = [raw("a", None, vec![part(0, 1), part(1, -1), part(2, 2)]), raw("b", None, vec![part(0, -1)])];
        assert_eq!(with_leaders(&topics), vec![("a".to_owned(), 0), ("a".to_owned(), 2)]);
    }

    #[test]
    fn a_partition_without_leader_or_watermarks_is_reported_not_fatal() {
        let topics = vec![raw("b", None, vec![part(1, 1), part(0, -1)]), raw("a", None, vec![part(0, 2)])];
        let marks: Marks = [(("b".to_owned(), 1), (3, 10)), (("a".to_owned(), 0), (0, 0))].into_iter().collect();
        let out = assemble(topics, &marks);
        assert_eq!(out.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let b = &out[1];
        assert_eq!(b.partitions.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1]);
        let (lost, ok) = (&b.partitions[0], &b.partitions[1]);
        assert_eq!((lost.leader, lost.low_watermark, lost.high_watermark, lost.len()), (-1, -1, -1, 0));
        assert_eq!(lost.isr, Vec::<i32>::new());
        assert_eq!((ok.leader, ok.low_watermark, ok.high_watermark, ok.len()), (1, 3, 10, 7));
        assert_eq!((ok.replicas.clone(), ok.isr.clone()), (vec![1, 2], vec![1]));
        assert_eq!(b.len(), 7);
    }

    #[test]
    fn watermarks_need_both_ends() {
        let low = [(("t".to_owned(), 0), 2), (("t".to_owned(), 1), 0)].into_iter().collect();
        let high = [(("t".to_owned(), 0), 9)].into_iter().collect();
        let marks = pair(low, high);
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[&("t".to_owned(), 0)], (2, 9));
    }

    #[test]
    fn unknown_topics_are_left_out_and_other_topic_errors_fail() {
        let topics = vec![
            raw("gone", Some(RDKafkaErrorCode::UnknownTopicOrPartition), vec![]),
            raw("new", Some(RDKafkaErrorCode::LeaderNotAvailable), vec![]),
            raw("ok", None, vec![part(0, 1)]),
        ];
        let names: Vec<String> = listed(topics).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["new", "ok"]);
        let denied = vec![raw("secret", Some(RDKafkaErrorCode::TopicAuthorizationFailed), vec![])];
        assert!(matches!(listed(denied).map_err(Error::into_kind), Err(ErrorKind::Metadata { .. })));
    }

    #[test]
    fn offsets_of_an_empty_list_are_empty() {
        assert!(offsets_of(&TopicPartitionList::new()).is_empty());
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, RdOffset::Offset(5)).unwrap();
        tpl.add_partition_offset("t", 1, RdOffset::End).unwrap();
        let found = offsets_of(&tpl);
        assert_eq!(found.len(), 1);
        assert_eq!(found[&("t".to_owned(), 0)], 5);
    }
}
