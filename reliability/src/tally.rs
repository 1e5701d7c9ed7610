//! What was produced, delivered, consumed, lost and duplicated, by sensor
//! and sequence number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use tokio::time::Instant;
use twitch::{Format, KafkaCluster, StartAt, TopicPartition};

/// A reading's identity: its sensor and its sequence number there.
pub type Key = (String, u64);

/// One reading as a consumer printed it (or as it is stored in the topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Sensor id.
    pub sensor: String,
    /// Sequence number of the sensor.
    pub seq: u64,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When the test saw the line.
    pub at: Instant,
}

impl Processed {
    /// Sensor and sequence number.
    pub fn key(&self) -> Key {
        (self.sensor.clone(), self.seq)
    }
}

/// Parses `average_temp`'s per-reading line,
/// `<sensor> #<seq> p<partition>@<offset> <celsius> °C | ...`; `None` for
/// any other line (such as the summary).
pub fn parse_reading_line(line: &str, at: Instant) -> Option<Processed> {
    let mut words = line.split_whitespace();
    let sensor = words.next()?;
    let seq = words.next()?.strip_prefix('#')?.parse().ok()?;
    let (partition, offset) = words.next()?.strip_prefix('p')?.split_once('@')?;
    Some(Processed {
        sensor: sensor.to_owned(),
        seq,
        partition: partition.parse().ok()?,
        offset: offset.parse().ok()?,
        at,
    })
}

/// The readings `temp_gen --count count --sensors sensors` produces: the
/// sensors take turns, so reading `i` is sensor `i % sensors` (named
/// `sensor-001`, ...) with sequence number `i / sensors`.
pub fn expected_readings(count: u64, sensors: u32) -> BTreeSet<Key> {
    let sensors = u64::from(sensors.max(1));
    (0..count).map(|i| (format!("sensor-{:03}", i % sensors + 1), i / sensors)).collect()
}

/// Every reading stored in `topic`, read back from the beginning of each
/// partition to its end (with a partition reader, no group).
pub async fn topic_readings(cluster: &KafkaCluster, topic: &str) -> Result<Vec<Processed>> {
    let info = cluster.topic(topic).await.with_context(|| format!("describing topic {topic}"))?;
    let mut builder = cluster.partition_reader().format(Format::Json).start(StartAt::Beginning).stop_at_end(true);
    for p in &info.partitions {
        builder = builder.partition(TopicPartition::new(topic, p.id));
    }
    let mut reader = builder.build().context("building a partition reader")?;
    let mut out = Vec::new();
    let read = async {
        let mut readings = reader.typed::<temps::Reading>();
        while let Some(item) = readings.next().await {
            let d = item.context("reading the topic back")?;
            out.push(Processed {
                sensor: d.value.sensor,
                seq: d.value.seq,
                partition: d.record.partition,
                offset: d.record.offset,
                at: Instant::now(),
            });
        }
        anyhow::Ok(())
    };
    let stored: i64 = info.partitions.iter().map(|p| p.len()).sum();
    // A minute, and a second more per 5,000 records (a soak's million).
    let limit = Duration::from_secs(60 + u64::try_from(stored / 5_000).unwrap_or(0));
    tokio::time::timeout(limit, read).await.with_context(|| format!("reading the topic back took over {limit:?}"))??;
    anyhow::ensure!(
        i64::try_from(out.len()).is_ok_and(|n| n >= stored),
        "read {} records back, but the topic held {stored} when reading started",
        out.len()
    );
    Ok(out)
}

/// The figures of one run of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// The scenario.
    pub scenario: String,
    /// Readings the producer made (its summary line).
    pub produced: u64,
    /// Distinct produced readings stored in the topic: what the broker
    /// acknowledged, read back.
    pub delivered: u64,
    /// Records in the topic, duplicates included.
    pub stored: u64,
    /// Reading lines the consumers printed, duplicates included.
    pub consumed: u64,
    /// Distinct readings the consumers printed.
    pub distinct: u64,
    /// Produced readings no consumer printed.
    pub lost: u64,
    /// Readings printed more than once, counted once per extra print.
    pub duplicated: u64,
    /// Produced readings missing from the topic.
    pub not_delivered: u64,
    /// Keys of the lost readings (at most 10), for the failure message.
    pub lost_sample: Vec<Key>,
}

impl Figures {
    /// Tallies `processed` (every reading line of every consumer) against
    /// the `produced` readings and what the topic holds (`stored`).
    pub fn new(scenario: &str, produced: &BTreeSet<Key>, stored: &[Processed], processed: &[Processed]) -> Figures {
        let in_topic: BTreeSet<Key> = stored.iter().map(Processed::key).collect();
        let mut seen: BTreeMap<Key, u64> = BTreeMap::new();
        for p in processed {
            *seen.entry(p.key()).or_default() += 1;
        }
        let lost: Vec<Key> = produced.iter().filter(|k| !seen.contains_key(*k)).cloned().collect();
        Figures {
            scenario: scenario.to_owned(),
            produced: produced.len() as u64,
            delivered: produced.intersection(&in_topic).count() as u64,
            stored: stored.len() as u64,
            consumed: processed.len() as u64,
            distinct: seen.len() as u64,
            lost: lost.len() as u64,
            duplicated: seen.values().map(|n| n - 1).sum(),
            not_delivered: produced.difference(&in_topic).count() as u64,
            lost_sample: lost.into_iter().take(10).collect(),
        }
    }

    /// The readings printed more than once, with how often.
    pub fn duplicates(processed: &[Processed]) -> BTreeMap<Key, u64> {
        let mut seen: BTreeMap<Key, u64> = BTreeMap::new();
        for p in processed {
            *seen.entry(p.key()).or_default() += 1;
        }
        seen.retain(|_, n| *n > 1);
        seen
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FIGURES {}: produced {}, delivered {} (topic holds {}), consumed {} ({} distinct), lost {}, duplicated {}",
            self.scenario,
            self.produced,
            self.delivered,
            self.stored,
            self.consumed,
            self.distinct,
            self.lost,
            self.duplicated
        )?;
        if !self.lost_sample.is_empty() {
            write!(f, "; lost e.g. {:?}", self.lost_sample)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reading_lines_only() {
        let now = Instant::now();
        let p = parse_reading_line(
            "sensor-002 #17 p0@42 19.00 °C | sensor avg 19.000000 (n=1) | overall avg 19.0 (n=1)",
            now,
        )
        .unwrap();
        assert_eq!((p.sensor.as_str(), p.seq, p.partition, p.offset), ("sensor-002", 17, 0, 42));
        assert!(parse_reading_line("consumed 3 readings, average 1.000000, partitions 0", now).is_none());
        assert!(parse_reading_line("sensor-002 p0@42 19.00 °C", now).is_none(), "the line without #seq");
        assert!(parse_reading_line("", now).is_none());
    }

    #[test]
    fn expected_readings_follow_temp_gen_round_robin() {
        let e = expected_readings(7, 3);
        assert_eq!(e.len(), 7);
        assert!(e.contains(&("sensor-001".to_owned(), 2)));
        assert!(!e.contains(&("sensor-002".to_owned(), 2)));
    }

    fn reading(sensor: &str, seq: u64) -> Processed {
        Processed { sensor: sensor.into(), seq, partition: 0, offset: seq as i64, at: Instant::now() }
    }

    #[test]
    fn a_missing_reading_is_lost_and_an_extra_print_a_duplicate() {
        let produced = expected_readings(6, 2);
        let stored: Vec<Processed> = produced.iter().map(|(s, q)| reading(s, *q)).collect();
        let mut processed = stored.clone();
        processed.retain(|p| !(p.sensor == "sensor-002" && p.seq == 1));
        processed.push(reading("sensor-001", 0));
        let f = Figures::new("t", &produced, &stored, &processed);
        assert_eq!((f.produced, f.delivered, f.consumed, f.distinct), (6, 6, 6, 5));
        assert_eq!((f.lost, f.duplicated, f.not_delivered), (1, 1, 0));
        assert_eq!(f.lost_sample, vec![("sensor-002".to_owned(), 1)]);
        assert_eq!(Figures::duplicates(&processed).len(), 1);
        assert!(f.to_string().contains("lost 1, duplicated 1"), "{f}");
    }
}
