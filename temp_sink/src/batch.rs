//! A batch of readings on its way to the database, and which of its records
//! may be written.

use std::collections::BTreeMap;

/// One reading as the sink writes it, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Sensor id.
    pub sensor: String,
    /// Sequence number of the sensor.
    pub seq: i64,
    /// Degrees Celsius.
    pub celsius: f64,
    /// When it was measured, in ms since the Unix epoch.
    pub measured_ms: i64,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The epoch of the assignment it was read under ([`Claim::epoch`]).
    pub epoch: i64,
}

/// A partition as the database holds it for this member: where reading
/// resumes and the epoch of the latest assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The partition.
    pub partition: i32,
    /// The offset after the last record written; `None` before the first.
    pub next_offset: Option<i64>,
    /// Bumped each time the partition is assigned to a member.
    pub epoch: i64,
}

/// What becomes of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Written now.
    Write,
    /// Its offset is before the partition's next offset: the database holds
    /// it already (it was delivered again). Acked, not written.
    Already,
    /// The partition was assigned again since the record was read (to
    /// another member, or anew to this one): not ours to write, nor to ack.
    Fenced,
}

/// The verdict on each row, given the partitions' claims as locked in the
/// writing transaction. Rows of a partition come in offset order; one
/// delivered twice in the same batch is `Already` the second time.
pub fn classify(rows: &[Row], claims: &[Claim]) -> Vec<Verdict> {
    let mut next: BTreeMap<i32, (i64, Option<i64>)> =
        claims.iter().map(|c| (c.partition, (c.epoch, c.next_offset))).collect();
    rows.iter()
        .map(|row| match next.get_mut(&row.partition) {
            Some((epoch, _)) if *epoch != row.epoch => Verdict::Fenced,
            None => Verdict::Fenced,
            Some((_, Some(n))) if row.offset < *n => Verdict::Already,
            Some((_, n)) => {
                *n = Some(row.offset + 1);
                Verdict::Write
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: i32, offset: i64, epoch: i64) -> Row {
        Row { sensor: "s".into(), seq: offset, celsius: 20.0, measured_ms: 0, partition, offset, epoch }
    }

    #[test]
    fn rows_past_the_stored_offset_of_the_current_epoch_are_written() {
        let claims = [Claim { partition: 0, next_offset: Some(10), epoch: 3 }, Claim { partition: 1, next_offset: None, epoch: 1 }];
        let rows = [row(0, 9, 3), row(0, 10, 3), row(1, 0, 1), row(0, 11, 3), row(0, 11, 3), row(1, 5, 1)];
        use Verdict::*;
        assert_eq!(classify(&rows, &claims), [Already, Write, Write, Write, Already, Write]);
    }

    #[test]
    fn rows_of_an_older_assignment_or_an_unknown_partition_are_fenced() {
        let claims = [Claim { partition: 0, next_offset: Some(10), epoch: 4 }];
        let rows = [row(0, 12, 3), row(2, 0, 4), row(0, 12, 4)];
        assert_eq!(classify(&rows, &claims), [Verdict::Fenced, Verdict::Fenced, Verdict::Write]);
    }
}
