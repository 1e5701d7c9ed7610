//! Describing consumer-protocol (KIP-848) groups.
//!
//! Kafka answers the classic DescribeGroups request, the only one librdkafka
//! offers through rdkafka 0.39, with `GROUP_ID_NOT_FOUND` for a group of the
//! consumer protocol (librdkafka then lists it as `Dead`, without members).
//! Such groups are described with the ConsumerGroupDescribe request (API key
//! 69, version 0), which twitch sends itself over a plain TCP connection to
//! each broker in turn until the group's coordinator answers. That needs a
//! `PLAINTEXT` listener: with TLS or SASL configured
//! (`security.protocol`), consumer-protocol groups stay unknown to
//! [`KafkaCluster::consumer_group`].

use std::time::Duration;

use rdkafka::error::KafkaError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BrokerInfo, GroupInfo, GroupProtocol, KafkaCluster, MemberInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::record::TopicPartition;

const API_KEY: i16 = 69;
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const GROUP_ID_NOT_FOUND: i16 = 69;
/// A response larger than this is refused (a broker describing thousands
/// of members stays far below it).
const MAX_RESPONSE: usize = 64 << 20;

/// The request, framed: size, header v2 (flexible), body.
fn encode_request(correlation: i32, client_id: &str, groups: &[String]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(API_KEY.to_be_bytes());
    b.extend(0i16.to_be_bytes()); // version
    b.extend(correlation.to_be_bytes());
    let id = &client_id.as_bytes()[..client_id.len().min(i16::MAX as usize)];
    b.extend(u16::try_from(id.len()).unwrap_or(0).to_be_bytes());
    b.extend(id);
    b.push(0); // header tags
    uvarint(&mut b, groups.len() + 1);
    for g in groups {
        uvarint(&mut b, g.len() + 1);
        b.extend(g.as_bytes());
    }
    b.push(0); // IncludeAuthorizedOperations = false
    b.push(0); // body tags
    let mut framed = u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes().to_vec();
    framed.extend(b);
    framed
}

fn uvarint(b: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        b.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    b.push(n as u8);
}

/// One described group: its error code, and what it says when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Described {
    pub(super) error: i16,
    pub(super) group: GroupInfo,
}

/// Reads Kafka's big-endian wire types off the front of a byte slice;
/// every read is `None` past the end. Also reads the classic protocol's
/// assignments ([`decode_assignment`](super::decode_assignment)).
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl Cursor<'_> {
    pub(super) fn take(&mut self, n: usize) -> Option<&[u8]> {
        (self.0.len() >= n).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }
    pub(super) fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = *self.take(1)?.first()?;
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    /// A compact array's length (`None` for a null array, as for an empty one).
    fn len(&mut self) -> Option<usize> {
        let n = self.uvarint()?.saturating_sub(1);
        (n <= self.0.len()).then_some(n)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn skip_tags(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(size)?;
        }
        Some(())
    }
    fn assignment(&mut self) -> Option<Vec<TopicPartition>> {
        let mut out = Vec::new();
        for _ in 0..self.len()? {
            self.take(16)?; // topic id
            let topic = self.string()?;
            for _ in 0..self.len()? {
                out.push(TopicPartition::new(topic.clone(), self.i32()?));
            }
            self.skip_tags()?;
        }
        self.skip_tags()?;
        out.sort();
        Some(out)
    }
}

/// Decodes a response (without its size) to the request `correlation`.
fn decode_response(bytes: &[u8], correlation: i32) -> Option<Vec<Described>> {
    let mut c = Cursor(bytes);
    if c.i32()? != correlation {
        return None;
    }
    c.skip_tags()?;
    c.i32()?; // throttle time
    let mut out = Vec::new();
    for _ in 0..c.len()? {
        let error = c.i16()?;
        c.string()?; // error message (null reads as empty)
        let name = c.string()?;
        let state = c.string()?;
        c.i32()?; // group epoch
        c.i32()?; // assignment epoch
        let protocol = c.string()?;
        let mut members = Vec::new();
        for _ in 0..c.len()? {
            let id = c.string()?;
            c.string()?; // instance id
            c.string()?; // rack id
            c.i32()?; // member epoch
            let client_id = c.string()?;
            let host = c.string()?;
            for _ in 0..c.len()? {
                c.string()?; // subscribed topic
            }
            c.string()?; // subscribed regex
            let assignment = c.assignment()?;
            c.assignment()?; // target assignment
            c.skip_tags()?;
            members.push(MemberInfo { id, client_id, host, assignment });
        }
        c.i32()?; // authorized operations
        c.skip_tags()?;
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let group = GroupInfo { name, state, protocol, group_protocol: GroupProtocol::Consumer, members };
        out.push(Described { error, group });
    }
    c.skip_tags()?;
    Some(out)
}

fn failure(detail: String) -> Error {
    ErrorKind::Admin { operation: "describe groups", source: KafkaError::AdminOpCreation(detail) }.into()
}

/// Sends the request to `broker` and reads the answer.
async fn ask(broker: &BrokerInfo, request: &[u8], correlation: i32) -> Result<Vec<Described>> {
    let addr = format!("{}:{}", broker.host, broker.port);
    let io = |e: std::io::Error| failure(format!("ConsumerGroupDescribe to {addr}: {e}"));
    let mut stream = TcpStream::connect(&addr).await.map_err(io)?;
    stream.write_all(request).await.map_err(io)?;
    let size = usize::try_from(stream.read_u32().await.map_err(io)?).unwrap_or(usize::MAX);
    if size > MAX_RESPONSE {
        return Err(failure(format!("ConsumerGroupDescribe to {addr}: a response of {size} bytes")));
    }
    let mut body = vec![0; size];
    stream.read_exact(&mut body).await.map_err(io)?;
    decode_response(&body, correlation).ok_or_else(|| failure(format!("ConsumerGroupDescribe to {addr}: an undecodable response")))
}

impl KafkaCluster {
    /// Whether twitch can open plain connections to the brokers.
    fn plaintext(&self) -> bool {
        self.settings().get("security.protocol").is_none_or(|p| p.eq_ignore_ascii_case("plaintext"))
    }

    /// Describes `groups` as consumer-protocol groups. Groups that are not
    /// (unknown, or classic ones) are left out, and so is everything when
    /// the brokers cannot be reached in plain text (see the module docs).
    pub(super) async fn describe_consumer_groups(&self, groups: &[String]) -> Result<Vec<GroupInfo>> {
        if groups.is_empty() || !self.plaintext() {
            return Ok(Vec::new());
        }
        let brokers = self.brokers().await?;
        let request = encode_request(1, self.settings().client_id(), groups);
        let mut found: Vec<GroupInfo> = Vec::new();
        let mut left: Vec<String> = groups.to_vec();
        let deadline = tokio::time::Instant::now() + self.request_timeout();
        // Each group's coordinator answers for it; the others say they are
        // not its coordinator. A coordinator still loading is asked again.
        while !left.is_empty() {
            let mut loading = false;
            for broker in &brokers {
                let left_now = left.clone();
                let request = if left_now.len() == groups.len() { request.clone() } else { encode_request(1, self.settings().client_id(), &left_now) };
                let answer = tokio::time::timeout_at(deadline, ask(broker, &request, 1))
                    .await
                    .map_err(|_| failure(format!("ConsumerGroupDescribe timed out after {:?}", self.request_timeout())))??;
                for d in answer {
                    match d.error {
                        0 | GROUP_ID_NOT_FOUND => {
                            left.retain(|g| *g != d.group.name);
                            if d.error == 0 {
                                found.push(d.group);
                            }
                        }
                        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE => loading = true,
                        NOT_COORDINATOR => {}
                        code => {
                            return Err(failure(format!("ConsumerGroupDescribe of `{}`: Kafka error code {code}", d.group.name)));
                        }
                    }
                }
                if left.is_empty() {
                    break;
                }
            }
            if !left.is_empty() && !loading {
                // No broker is the coordinator of these: unknown groups.
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failure(format!("the coordinator of {left:?} did not answer within {:?}", self.request_timeout())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(b: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => b.push(0),
            Some(s) => {
                uvarint(b, s.len() + 1);
                b.extend(s.as_bytes());
            }
        }
    }

    fn assignment(b: &mut Vec<u8>, topics: &[(&str, &[i32])]) {
        uvarint(b, topics.len() + 1);
        for (t, ps) in topics {
            b.extend([7u8; 16]);
            string(b, Some(t));
            uvarint(b, ps.len() + 1);
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
            b.push(0);
        }
        b.push(0);
    }

    /// A response as Kafka 4.1 encodes it: one group with one member, one
    /// unknown group.
    fn response(correlation: i32) -> Vec<u8> {
        let mut b = correlation.to_be_bytes().to_vec();
        b.push(0);
        b.extend(0i32.to_be_bytes());
        uvarint(&mut b, 3);
        b.extend(0i16.to_be_bytes());
        string(&mut b, None);
        string(&mut b, Some("g"));
        string(&mut b, Some("Stable"));
        b.extend(5i32.to_be_bytes());
        b.extend(5i32.to_be_bytes());
        string(&mut b, Some("uniform"));
        uvarint(&mut b, 2);
        string(&mut b, Some("m-1"));
        string(&mut b, None);
        string(&mut b, None);
        b.extend(5i32.to_be_bytes());
        string(&mut b, Some("app"));
        string(&mut b, Some("/127.0.0.1"));
        uvarint(&mut b, 2);
        string(&mut b, Some("t"));
        string(&mut b, None);
        assignment(&mut b, &[("t", &[2, 0]), ("u", &[1])]);
        assignment(&mut b, &[("t", &[2, 0])]);
        b.push(0);
        b.extend(i32::MIN.to_be_bytes());
        b.push(0);
        b.extend(GROUP_ID_NOT_FOUND.to_be_bytes());
        string(&mut b, Some("Group nobody not found."));
        string(&mut b, Some("nobody"));
        string(&mut b, Some(""));
        b.extend([0u8; 8]);
        string(&mut b, Some(""));
        uvarint(&mut b, 1);
        b.extend(i32::MIN.to_be_bytes());
        b.push(0);
        b.push(0);
        b
    }

    #[test]
    fn decodes_a_described_group_with_its_members() {
        let out = decode_response(&response(9), 9).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].error, 0);
        let g = &out[0].group;
        assert_eq!((g.name.as_str(), g.state.as_str(), g.protocol.as_str()), ("g", "Stable", "uniform"));
        assert_eq!(g.group_protocol, GroupProtocol::Consumer);
        let m = &g.members[0];
        assert_eq!((m.id.as_str(), m.client_id.as_str(), m.host.as_str()), ("m-1", "app", "/127.0.0.1"));
        assert_eq!(m.assignment, vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2), TopicPartition::new("u", 1)]);
        assert_eq!((out[1].error, out[1].group.name.as_str(), out[1].group.members.len()), (GROUP_ID_NOT_FOUND, "nobody", 0));
    }

    #[test]
    fn refuses_another_correlation_and_truncated_bytes_without_panicking() {
        let bytes = response(9);
        assert!(decode_response(&bytes, 8).is_none());
        for n in 0..bytes.len() {
            assert!(decode_response(&bytes[..n], 9).is_none(), "{n} bytes");
        }
    }

    #[test]
    fn encodes_the_request_header_and_groups() {
        let b = encode_request(7, "cli", &["ab".to_owned()]);
        let want: Vec<u8> = [
            &[0, 0, 0, 20][..],
            &[0, 69, 0, 0, 0, 0, 0, 7, 0, 3, b'c', b'l', b'i', 0],
            &[2, 3, b'a', b'b', 0, 0],
        ]
        .concat();
        assert_eq!(b, want);
        let mut long = Vec::new();
        uvarint(&mut long, 300);
        assert_eq!(long, [0xac, 0x02]);
        assert_eq!(Cursor(&long).uvarint(), Some(300));
    }
}
