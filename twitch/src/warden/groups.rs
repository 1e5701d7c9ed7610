//! Consumer groups: members, assignments, committed offsets, lag, resets.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset as RdOffset, TopicPartitionList};

use super::describe::Cursor;
use super::KafkaCluster;
use crate::error::{Error, ErrorKind, Result};
use crate::reader::{GroupProtocol, PartitionLag, StartAt};
use crate::record::TopicPartition;

/// A consumer group as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group id.
    pub name: String,
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`.
    pub state: String,
    /// Assignment strategy in use: under the classic protocol the members'
    /// assignor, such as `range` or `cooperative-sticky`; under the consumer
    /// protocol the broker's, such as `uniform`.
    pub protocol: String,
    /// The group protocol its members speak.
    pub group_protocol: GroupProtocol,
    /// Current members.
    pub members: Vec<MemberInfo>,
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member id the coordinator gave it.
    pub id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// Host it connects from.
    pub host: String,
    /// Partitions assigned to it.
    pub assignment: Vec<TopicPartition>,
}

/// Decodes a member's assignment in Kafka's consumer protocol
/// (`ConsumerProtocolAssignment`: version, then topics with partitions).
/// Returns `None` for bytes that are not such an assignment.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    let mut c = Cursor(bytes);
    let _version = c.i16()?;
    let topics = c.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(c.i16()?).ok()?;
        let topic = std::str::from_utf8(c.take(len)?).ok()?.to_owned();
        let partitions = c.i32()?;
        if usize::try_from(partitions).ok()? > c.0.len() / 4 {
            return None;
        }
        for _ in 0..partitions {
            out.push(TopicPartition::new(topic.clone(), c.i32()?));
        }
    }
    out.sort();
    Some(out)
}

fn group_info(g: &rdkafka::groups::GroupInfo) -> GroupInfo {
    GroupInfo {
        name: g.name().to_owned(),
        state: g.state().to_owned(),
        protocol: g.protocol().to_owned(),
        group_protocol: GroupProtocol::Classic,
        members: g
            .members()
            .iter()
            .map(|m| MemberInfo {
                id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                host: m.client_host().to_owned(),
                assignment: m.assignment().and_then(decode_assignment).unwrap_or_default(),
            })
            .collect(),
    }
}

impl KafkaCluster {
    /// Every consumer group with its members and their assignments, under
    /// either group protocol (see [`GroupProtocol`]).
    pub async fn consumer_groups(&self) -> Result<Vec<GroupInfo>> {
        self.describe_groups(None).await
    }

    /// One consumer group ([`ErrorKind::UnknownGroup`] if the coordinator does
    /// not know it).
    pub async fn consumer_group(&self, group: &str) -> Result<GroupInfo> {
        let groups = self.describe_groups(Some(group.to_owned())).await?;
        groups
            .into_iter()
            .find(|g| g.name == group && g.state != "Dead")
            .ok_or_else(|| ErrorKind::UnknownGroup { group: group.to_owned() }.into())
    }

    async fn describe_groups(&self, group: Option<String>) -> Result<Vec<GroupInfo>> {
        let timeout = self.request_timeout();
        let mut groups = self
            .blocking(move |admin| {
                let list = admin.inner().fetch_group_list(group.as_deref(), timeout)?;
                Ok::<_, rdkafka::error::KafkaError>(list.groups().iter().map(group_info).collect::<Vec<_>>())
            })
            .await?
            .map_err(|source| ErrorKind::Admin { operation: "describe groups", source })?;
        // Kafka describes a consumer-protocol group to the classic request
        // as not found, which librdkafka lists as `Dead`: ask again with the
        // request of that protocol.
        let dead: Vec<String> = groups.iter().filter(|g| g.state == "Dead").map(|g| g.name.clone()).collect();
        let found = self.describe_consumer_groups(&dead).await?;
        groups.retain(|g| !found.iter().any(|f| f.name == g.name));
        groups.extend(found);
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// A consumer that speaks for `group` without joining it.
    fn group_client(&self, group: &str) -> Result<BaseConsumer> {
        self.settings()
            .client_config(&[("enable.auto.commit", "false")])
            .set("group.id", group)
            .create()
            .map_err(|source| ErrorKind::ClientCreation { role: "consumer", source }.into())
    }

    /// The group's committed offset and lag in every partition of `topic`.
    /// Every partition needs a leader (to read its watermarks): while one
    /// has none, this asks again up to the request timeout, then fails.
    pub async fn group_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>> {
        let info = self.topic_with_leaders(topic).await?;
        let consumer = self.group_client(group)?;
        let timeout = self.request_timeout();
        let topic = topic.to_owned();
        let committed = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in &info.partitions {
                tpl.add_partition(&topic, p.id);
            }
            let committed = consumer.committed_offsets(tpl, timeout);
            (committed, info, topic)
        })
        .await
        .map_err(|e| ErrorKind::Task(e.to_string()))?;
        let (committed, info, topic) = committed;
        let committed = committed.map_err(|source| ErrorKind::Admin { operation: "fetch committed offsets", source })?;
        Ok(info
            .partitions
            .iter()
            .map(|p| PartitionLag::of(TopicPartition::new(topic.clone(), p.id), &committed, p.low_watermark, p.high_watermark))
            .collect())
    }

    /// Moves the group's committed offsets in every partition of `topic` to
    /// the beginning, the end, or an offset. The group must have no active
    /// members: one that has some is refused with
    /// [`ErrorKind::InvalidConfig`], and so is a reset whose group cannot be
    /// described (the error of the describe is returned); a group the
    /// coordinator does not know yet has no members.
    pub async fn reset_group_offsets(&self, group: &str, topic: &str, to: StartAt) -> Result<()> {
        no_active_members(group, self.consumer_group(group).await)?;
        let info = self.topic_with_leaders(topic).await?;
        let mut tpl = TopicPartitionList::new();
        for p in &info.partitions {
            let offset = match to {
                StartAt::Beginning => p.low_watermark,
                StartAt::End => p.high_watermark,
                StartAt::Offset(o) => o.clamp(p.low_watermark, p.high_watermark),
            };
            tpl.add_partition_offset(topic, p.id, RdOffset::Offset(offset))
                .map_err(|source| ErrorKind::Commit { source })?;
        }
        let consumer = self.group_client(group)?;
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| ErrorKind::Task(e.to_string()))?
            .map_err(|source| ErrorKind::Commit { source }.into())
    }
}

/// Whether offsets of `group` may be reset, given what describing it gave:
/// only a group without members, or one the coordinator does not know.
fn no_active_members(group: &str, described: Result<GroupInfo>) -> Result<()> {
    match described {
        Ok(g) if !g.members.is_empty() => Err(Error::config(format!(
            "group `{group}` has {} active member(s); stop them before resetting its offsets",
            g.members.len()
        ))),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::UnknownGroup { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: usize) -> GroupInfo {
        let member = |i: usize| MemberInfo { id: format!("m{i}"), client_id: "c".into(), host: "/127.0.0.1".into(), assignment: vec![] };
        GroupInfo {
            name: "g".into(),
            state: "Stable".into(),
            protocol: "range".into(),
            group_protocol: GroupProtocol::Classic,
            members: (0..members).map(member).collect(),
        }
    }

    #[test]
    fn a_reset_needs_a_group_without_members_and_a_describe_that_worked() {
        assert!(no_active_members("g", Ok(group(0))).is_ok());
        assert!(no_active_members("g", Err(ErrorKind::UnknownGroup { group: "g".into() }.into())).is_ok());
        let busy = no_active_members("g", Ok(group(2))).unwrap_err();
        assert!(matches!(busy.kind(), ErrorKind::InvalidConfig { .. }) && busy.to_string().contains("2 active"), "{busy}");
        // A describe that failed for another reason must not skip the check.
        let down = ErrorKind::Admin {
            operation: "describe groups",
            source: rdkafka::error::KafkaError::GroupListFetch(rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure),
        };
        let err = no_active_members("g", Err(down.into())).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Admin { operation: "describe groups", .. }), "{err}");
    }

    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // null user data
        b
    }

    #[test]
    fn decodes_consumer_protocol_assignments() {
        let bytes = encode(&[("temps", &[2, 0]), ("other", &[1])]);
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![TopicPartition::new("other", 1), TopicPartition::new("temps", 0), TopicPartition::new("temps", 2)]
        );
        assert_eq!(decode_assignment(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode_assignment(&[]).is_none());
        assert!(decode_assignment(&[0, 0, 0, 0, 0, 1, 0, 9, b'a']).is_none());
        // A partition count far beyond the bytes present.
        let mut b = encode(&[("t", &[])]);
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_assignment(&b[..n - 4]).is_none());
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode_assignment(&junk);
        }
    }
}
