//! The member's running figures per sensor, and what one batch adds to
//! them: derived into a [`Pending`] that is applied only once the batch's
//! transaction committed, so the figures never count a reading of an
//! aborted transaction (its readings come again, here or at another member).

use std::collections::BTreeMap;

use temps::{Covers, Reading, RunningMean, StageOutput};

/// One sensor's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SensorFigures {
    /// Sum of its readings in °C.
    pub sum: f64,
    /// Their mean (and count).
    pub mean: RunningMean,
}

/// The running figures of every sensor this member's committed
/// transactions covered, since this process started.
#[derive(Debug)]
pub struct Running {
    member: String,
    instance: u64,
    sensors: BTreeMap<String, SensorFigures>,
    /// Readings of committed transactions.
    readings: u64,
    /// Records of committed transactions that were not readings.
    undecodable: u64,
    /// Output records committed.
    outputs: u64,
}

/// What the open transaction's batches derived: the figures of the
/// sensors they touched, not yet part of the [`Running`] figures.
#[derive(Debug, Default)]
pub struct Pending {
    updated: BTreeMap<String, SensorFigures>,
    readings: u64,
    undecodable: u64,
    outputs: u64,
}

impl Pending {
    /// Counts a record of the transaction that was not a reading.
    pub fn undecodable(&mut self) {
        self.undecodable += 1;
    }

    /// Readings of the transaction.
    pub fn readings(&self) -> u64 {
        self.readings
    }
}

/// One sensor's readings in a batch.
#[derive(Debug, Default)]
struct BatchSensor {
    sum: f64,
    mean: RunningMean,
    covers: Covers,
}

impl Running {
    /// No figures yet, for the member `member` (its transactional id) in
    /// its process `instance`.
    pub fn new(member: &str, instance: u64) -> Running {
        Running {
            member: member.to_owned(),
            instance,
            sensors: BTreeMap::new(),
            readings: 0,
            undecodable: 0,
            outputs: 0,
        }
    }

    /// The output records of a batch of `(partition, offset, reading)`,
    /// one per sensor in sensor order, on top of the committed figures and
    /// of the open transaction's earlier batches (`pending`), to which the
    /// batch is added; `self` is left as it is.
    pub fn derive(&self, pending: &mut Pending, readings: impl IntoIterator<Item = (i32, i64, Reading)>) -> Vec<StageOutput> {
        let mut batch: BTreeMap<String, BatchSensor> = BTreeMap::new();
        for (partition, offset, reading) in readings {
            let entry = batch.entry(reading.sensor).or_default();
            entry.sum += reading.celsius;
            entry.mean.add(reading.celsius);
            entry.covers.push(partition, offset);
            pending.readings += 1;
        }
        let mut outputs = Vec::with_capacity(batch.len());
        for (sensor, b) in batch {
            let before = pending.updated.get(&sensor).or_else(|| self.sensors.get(&sensor));
            let mut figures = before.copied().unwrap_or_default();
            figures.sum += b.sum;
            figures.mean.merge(&b.mean);
            outputs.push(StageOutput {
                sensor: sensor.clone(),
                member: self.member.clone(),
                instance: self.instance,
                readings: b.mean.count(),
                readings_sum: b.sum,
                count: figures.mean.count(),
                sum: figures.sum,
                average: figures.mean.mean().unwrap_or(f64::NAN),
                covers: b.covers,
            });
            pending.updated.insert(sensor, figures);
        }
        pending.outputs += outputs.len() as u64;
        outputs
    }

    /// Makes a committed transaction's figures the running ones.
    pub fn apply(&mut self, pending: Pending) {
        self.readings += pending.readings;
        self.undecodable += pending.undecodable;
        self.outputs += pending.outputs;
        self.sensors.extend(pending.updated);
    }

    /// Readings of committed transactions.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// Records of committed transactions that were not readings.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// Output records committed.
    pub fn outputs(&self) -> u64 {
        self.outputs
    }

    /// Every sensor's figures, by sensor.
    pub fn sensors(&self) -> impl Iterator<Item = (&str, &SensorFigures)> + '_ {
        self.sensors.iter().map(|(s, f)| (s.as_str(), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sensor: &str, celsius: f64) -> Reading {
        Reading { sensor: sensor.into(), seq: 0, celsius, timestamp: 0 }
    }

    #[test]
    fn a_batch_writes_one_output_per_sensor_with_what_it_covers() {
        let running = Running::new("g-1", 9);
        let mut pending = Pending::default();
        let outputs = running.derive(
            &mut pending,
            [(0, 10, reading("b", 20.0)), (1, 4, reading("a", 10.0)), (0, 11, reading("b", 22.0)), (1, 6, reading("a", 14.0))],
        );
        assert_eq!(outputs.len(), 2);
        let (a, b) = (&outputs[0], &outputs[1]);
        assert_eq!((a.sensor.as_str(), a.readings, a.readings_sum, a.count, a.sum, a.average), ("a", 2, 24.0, 2, 24.0, 12.0));
        assert_eq!(a.covers.offsets().collect::<Vec<_>>(), [(1, 4), (1, 6)]);
        assert_eq!((b.sensor.as_str(), b.readings, b.count, b.average), ("b", 2, 2, 21.0));
        assert_eq!(b.covers.spans().len(), 1);
        assert_eq!((b.member.as_str(), b.instance), ("g-1", 9));
        assert_eq!((running.readings(), pending.readings()), (0, 4), "nothing counts before the commit");
    }

    #[test]
    fn only_committed_transactions_add_to_the_running_figures() {
        let mut running = Running::new("g-1", 1);
        let mut first = Pending::default();
        running.derive(&mut first, [(0, 0, reading("a", 10.0)), (0, 1, reading("a", 20.0))]);
        running.apply(first);
        // Aborted: derived, then dropped.
        let mut aborted = Pending::default();
        assert_eq!(running.derive(&mut aborted, [(0, 2, reading("a", 1000.0))])[0].count, 3);
        drop(aborted);
        // The same reading again after the rewind, then a second batch in
        // the same transaction, on top of the first.
        let mut again = Pending::default();
        let a = running.derive(&mut again, [(0, 2, reading("a", 30.0)), (0, 3, reading("c", 5.0))]).remove(0);
        assert_eq!((a.readings, a.readings_sum, a.count, a.sum, a.average), (1, 30.0, 3, 60.0, 20.0));
        let a = running.derive(&mut again, [(0, 4, reading("a", 40.0))]).remove(0);
        assert_eq!((a.readings, a.readings_sum, a.count, a.sum, a.average), (1, 40.0, 4, 100.0, 25.0));
        again.undecodable();
        running.apply(again);
        assert_eq!((running.readings(), running.outputs(), running.undecodable()), (5, 4, 1));
        let sensors: Vec<(&str, u64, f64)> = running.sensors().map(|(s, f)| (s, f.mean.count(), f.sum)).collect();
        assert_eq!(sensors, [("a", 4, 100.0), ("c", 1, 5.0)]);
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let mut running = Running::new("g-1", 1);
        let mut pending = Pending::default();
        assert!(running.derive(&mut pending, []).is_empty());
        running.apply(pending);
        assert_eq!((running.readings(), running.outputs()), (0, 0));
    }
}
