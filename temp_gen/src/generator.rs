//! Random temperatures, reproducible from a seed.

use rand::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use temps::Reading;

/// How much of a sensor's drift survives each step: the walk pulls back to
/// the sensor's base, so it wanders but does not run away.
const DRIFT_KEEP: f64 = 0.9;
/// How far apart the sensors' bases are, at most, on either side of `base`.
const SENSOR_SPREAD: f64 = 2.0;

/// The id of sensor `index` (from 0): `sensor-001`, `sensor-002`, ...
///
/// The ids are also the record keys. Kafka's default partitioner (murmur2)
/// puts `sensor-0`, `sensor-1` and `sensor-2` on partitions 0, 1 and 1 of a
/// 3-partition topic, leaving partition 2 empty; `sensor-001`, `sensor-002`
/// and `sensor-003` land on 2, 0 and 1, so the default three sensors cover
/// every partition (a unit test checks it).
pub fn sensor_id(index: u32) -> String {
    format!("sensor-{:03}", u64::from(index) + 1)
}

struct Sensor {
    id: String,
    base: f64,
    drift: f64,
    next_seq: u64,
}

/// Produces readings of several sensors in turn (round robin). Each sensor
/// has its own base temperature and does a random walk around it; every step
/// adds `(rng.gen() - rng.gen()) * spread`.
pub struct Generator {
    rng: XorShiftRng,
    sensors: Vec<Sensor>,
    next: usize,
    spread: f64,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("sensors", &self.sensors.len()).finish_non_exhaustive()
    }
}

impl Generator {
    /// `sensors` sensors (at least one) around `base` °C, steps scaled by
    /// `spread`. The same seed gives the same readings.
    pub fn new(seed: u64, sensors: u32, base: f64, spread: f64) -> Self {
        let mut rng = XorShiftRng::seed_from_u64(seed);
        let sensors = (0..sensors.max(1))
            .map(|i| Sensor {
                id: sensor_id(i),
                base: base + (rng.gen::<f64>() - rng.gen::<f64>()) * SENSOR_SPREAD,
                drift: 0.0,
                next_seq: 0,
            })
            .collect();
        Generator { rng, sensors, next: 0, spread }
    }

    /// The sensor ids, in the order they report.
    pub fn sensor_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.sensors.iter().map(|s| s.id.as_str())
    }

    /// The next sensor's next reading, stamped `timestamp` (ms since the
    /// epoch). Temperatures have a resolution of 0.01 °C, like a real sensor.
    pub fn next_reading(&mut self, timestamp: i64) -> Reading {
        let step = (self.rng.gen::<f64>() - self.rng.gen::<f64>()) * self.spread;
        let index = self.next;
        self.next = (index + 1) % self.sensors.len();
        let sensor = &mut self.sensors[index];
        sensor.drift = sensor.drift * DRIFT_KEEP + step;
        let celsius = ((sensor.base + sensor.drift) * 100.0).round() / 100.0;
        let seq = sensor.next_seq;
        sensor.next_seq += 1;
        Reading { sensor: sensor.id.clone(), seq, celsius, timestamp }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use twitch::partitioner::partition_for_key;

    fn take(g: &mut Generator, n: usize) -> Vec<Reading> {
        (0..n).map(|i| g.next_reading(i as i64)).collect()
    }

    #[test]
    fn default_sensors_cover_all_three_partitions() {
        let parts: BTreeSet<i32> = (0..3).map(|i| partition_for_key(sensor_id(i).as_bytes(), 3)).collect();
        assert_eq!(parts, BTreeSet::from([0, 1, 2]));
        // The obvious naming would not.
        let naive: BTreeSet<i32> = (0..3).map(|i| partition_for_key(format!("sensor-{i}").as_bytes(), 3)).collect();
        assert_ne!(naive.len(), 3);
    }

    #[test]
    fn same_seed_same_readings_other_seed_other_readings() {
        let a = take(&mut Generator::new(7, 3, 21.0, 0.5), 100);
        let b = take(&mut Generator::new(7, 3, 21.0, 0.5), 100);
        let c = take(&mut Generator::new(8, 3, 21.0, 0.5), 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sensors_take_turns_with_their_own_sequence() {
        let mut g = Generator::new(1, 3, 21.0, 0.5);
        assert_eq!(g.sensor_ids().collect::<Vec<_>>(), ["sensor-001", "sensor-002", "sensor-003"]);
        let r = take(&mut g, 7);
        let got: Vec<(&str, u64)> = r.iter().map(|r| (r.sensor.as_str(), r.seq)).collect();
        assert_eq!(
            got,
            [
                ("sensor-001", 0),
                ("sensor-002", 0),
                ("sensor-003", 0),
                ("sensor-001", 1),
                ("sensor-002", 1),
                ("sensor-003", 1),
                ("sensor-001", 2)
            ]
        );
        assert_eq!(Generator::new(1, 0, 21.0, 0.5).sensor_ids().count(), 1, "at least one sensor");
    }

    #[test]
    fn temperatures_vary_but_stay_near_the_base() {
        let (base, spread) = (21.0, 0.5);
        let readings = take(&mut Generator::new(3, 5, base, spread), 100_000);
        // The drift is bounded by spread / (1 - DRIFT_KEEP).
        let bound = SENSOR_SPREAD + spread / (1.0 - DRIFT_KEEP) + 0.005;
        assert!(readings.iter().all(|r| (r.celsius - base).abs() <= bound));
        let distinct: BTreeSet<i64> = readings.iter().map(|r| (r.celsius * 100.0).round() as i64).collect();
        assert!(distinct.len() > 100, "only {} distinct values", distinct.len());
        // A resolution of 0.01 °C.
        assert!(readings.iter().all(|r| ((r.celsius * 100.0).round() / 100.0 - r.celsius).abs() < 1e-12));
        // No spread: every sensor stays at its own base.
        let flat = take(&mut Generator::new(3, 2, base, 0.0), 10);
        assert_eq!(flat[0].celsius, flat[2].celsius);
    }
}
