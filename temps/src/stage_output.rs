//! What `average_stage` writes: per transaction, one record per sensor,
//! saying which readings it covers.

use serde::{Deserialize, Serialize};

/// Consecutive input offsets `first..=last` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// Input partition.
    pub partition: i32,
    /// First offset covered.
    pub first: i64,
    /// Last offset covered (inclusive).
    pub last: i64,
}

impl Span {
    /// How many offsets it covers.
    pub fn len(&self) -> u64 {
        u64::try_from(self.last - self.first + 1).unwrap_or(0)
    }

    /// Whether it covers nothing (`last < first`; never made by [`Covers`]).
    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }
}

/// The input readings an output record covers, as `(partition, offset)`
/// spans, in the order they were added; offsets added one after the other
/// on one partition join one span.
///
/// ```
/// let mut c = temps::Covers::default();
/// for (p, o) in [(0, 7), (0, 8), (0, 9), (2, 3), (0, 11)] {
///     c.push(p, o);
/// }
/// assert_eq!(c.len(), 5);
/// assert_eq!(c.spans().len(), 3);
/// assert_eq!(c.offsets().collect::<Vec<_>>(), [(0, 7), (0, 8), (0, 9), (2, 3), (0, 11)]);
/// assert_eq!(serde_json::to_string(&c).unwrap(),
///     r#"[{"partition":0,"first":7,"last":9},{"partition":2,"first":3,"last":3},{"partition":0,"first":11,"last":11}]"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Covers(Vec<Span>);

impl Covers {
    /// Adds the reading at `offset` of `partition`.
    pub fn push(&mut self, partition: i32, offset: i64) {
        match self.0.last_mut() {
            Some(s) if s.partition == partition && offset == s.last + 1 => s.last = offset,
            _ => self.0.push(Span { partition, first: offset, last: offset }),
        }
    }

    /// Readings covered.
    pub fn len(&self) -> u64 {
        self.0.iter().map(Span::len).sum()
    }

    /// Whether it covers no reading.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its spans.
    pub fn spans(&self) -> &[Span] {
        &self.0
    }

    /// Every `(partition, offset)` covered, span by span.
    pub fn offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.0.iter().flat_map(|s| (s.first..=s.last).map(move |o| (s.partition, o)))
    }
}

/// One output record of `average_stage`, keyed by its sensor (plain JSON).
///
/// Each transaction of a member writes one per sensor it read readings of:
/// the readings of that transaction (`covers`, `readings`, `readings_sum`)
/// and the member's running figures for the sensor, over every transaction
/// this process of the member committed, this one included (`count`, `sum`,
/// `average`). A restarted member starts again from zero with a new
/// `instance`.
///
/// ```
/// let mut covers = temps::Covers::default();
/// covers.push(1, 40);
/// covers.push(1, 41);
/// let o = temps::StageOutput {
///     sensor: "sensor-002".into(), member: "average-stage-a".into(), instance: 7,
///     readings: 2, readings_sum: 43.0, count: 5, sum: 106.0, average: 21.2, covers,
/// };
/// let json = serde_json::to_string(&o).unwrap();
/// assert!(json.contains(r#""covers":[{"partition":1,"first":40,"last":41}]"#), "{json}");
/// assert_eq!(serde_json::from_str::<temps::StageOutput>(&json).unwrap(), o);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutput {
    /// The sensor (also the record key).
    pub sensor: String,
    /// The member that wrote it: its transactional id.
    pub member: String,
    /// Random number of the member's process: a restart changes it (and
    /// starts the running figures again).
    pub instance: u64,
    /// Readings of the sensor in this transaction: `covers.len()`.
    pub readings: u64,
    /// Their sum in °C.
    pub readings_sum: f64,
    /// Readings of the sensor this process of the member committed, these included.
    pub count: u64,
    /// Their sum in °C.
    pub sum: f64,
    /// Their mean in °C.
    pub average: f64,
    /// The readings of this transaction, as input `(partition, offset)` spans.
    pub covers: Covers,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_join_spans_only_when_consecutive_on_one_partition() {
        let mut c = Covers::default();
        assert!(c.is_empty());
        for (p, o) in [(1, 5), (1, 6), (2, 7), (2, 9), (2, 10), (1, 7)] {
            c.push(p, o);
        }
        let spans: Vec<(i32, i64, i64)> = c.spans().iter().map(|s| (s.partition, s.first, s.last)).collect();
        assert_eq!(spans, [(1, 5, 6), (2, 7, 7), (2, 9, 10), (1, 7, 7)]);
        assert_eq!(c.len(), 6);
        assert_eq!(c.offsets().count(), 6);
        assert!(Span { partition: 0, first: 3, last: 2 }.is_empty());
        assert_eq!(Span { partition: 0, first: 3, last: 2 }.len(), 0);
    }
}
