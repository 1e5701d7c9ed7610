//! Incremental averages in O(1) memory.

use std::collections::BTreeMap;

/// The mean of a stream of numbers, updated one value at a time in O(1)
/// memory: a count, the current mean, and the rounding error of the mean.
///
/// Each value moves the mean by `(x - mean) / n` (the mean half of
/// Welford's update), so no running sum is kept: the state never grows past
/// the magnitude of the values themselves (a sum of 10 values near
/// `f64::MAX` overflows, this mean does not). The rounding error of each step
/// is carried over to the next (compensated as in Kahan summation), so even a
/// million values around 1e12 give the exact mean to within an ulp or two,
/// where a plain sum (or the uncompensated update) drifts by hundreds of ulps.
///
/// ```
/// let mut m = temps::RunningMean::new();
/// assert_eq!(m.mean(), None);
/// m.extend([20.0, 21.0, 25.0]);
/// assert_eq!((m.count(), m.mean()), (3, Some(22.0)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningMean {
    count: u64,
    /// The mean, rounded.
    mean: f64,
    /// What rounding lost: the exact mean is about `mean + low`.
    low: f64,
}

impl RunningMean {
    /// An empty mean: no values yet.
    pub const fn new() -> Self {
        RunningMean { count: 0, mean: 0.0, low: 0.0 }
    }

    /// Adds one value. A non-finite value makes the mean non-finite.
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        // Precision: converting the count loses nothing below 2^53 values.
        let step = ((x - self.mean) - self.low) / self.count as f64;
        self.shift(step);
    }

    /// Moves the exact mean `mean + low` by `step`, keeping what the new
    /// rounded mean cannot hold in `low` (Fast2Sum, larger operand first, so
    /// `mean + low` is exactly the sum).
    fn shift(&mut self, step: f64) {
        let d = self.low + step;
        let (a, b) = if self.mean.abs() >= d.abs() { (self.mean, d) } else { (d, self.mean) };
        let sum = a + b;
        self.low = (a - sum) + b;
        self.mean = sum;
    }

    /// Values added so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean of the values added so far; `None` before the first.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean + self.low)
    }

    /// Adds every value another mean has seen, as if they had been added
    /// here one by one (the weighted mean of both).
    ///
    /// ```
    /// use temps::RunningMean;
    /// let mut a: RunningMean = [1.0, 2.0].into_iter().collect();
    /// let b: RunningMean = [6.0].into_iter().collect();
    /// a.merge(&b);
    /// assert_eq!((a.count(), a.mean()), (3, Some(3.0)));
    /// ```
    pub fn merge(&mut self, other: &RunningMean) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        let diff = (other.mean - self.mean) + (other.low - self.low);
        self.shift(diff * (other.count as f64 / self.count as f64));
    }
}

impl Extend<f64> for RunningMean {
    fn extend<I: IntoIterator<Item = f64>>(&mut self, values: I) {
        for x in values {
            self.add(x);
        }
    }
}

impl FromIterator<f64> for RunningMean {
    fn from_iter<I: IntoIterator<Item = f64>>(values: I) -> Self {
        let mut m = RunningMean::new();
        m.extend(values);
        m
    }
}

/// Running means over all readings and per sensor: O(1) memory per sensor,
/// whatever the number of readings.
///
/// ```
/// let mut a = temps::Averages::default();
/// a.add("sensor-001", 20.0);
/// a.add("sensor-002", 30.0);
/// a.add("sensor-001", 22.0);
/// assert_eq!(a.overall().mean(), Some(24.0));
/// assert_eq!(a.sensor("sensor-001").and_then(|m| m.mean()), Some(21.0));
/// assert_eq!(a.sensors().count(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Averages {
    overall: RunningMean,
    per_sensor: BTreeMap<String, RunningMean>,
}

impl Averages {
    /// Adds a reading of `sensor`; returns the sensor's updated mean.
    pub fn add(&mut self, sensor: &str, celsius: f64) -> RunningMean {
        self.overall.add(celsius);
        let mean = match self.per_sensor.get_mut(sensor) {
            Some(mean) => mean,
            None => self.per_sensor.entry(sensor.to_owned()).or_default(),
        };
        mean.add(celsius);
        *mean
    }

    /// The mean over every reading.
    pub fn overall(&self) -> RunningMean {
        self.overall
    }

    /// The mean of one sensor's readings, if it sent any.
    pub fn sensor(&self, sensor: &str) -> Option<RunningMean> {
        self.per_sensor.get(sensor).copied()
    }

    /// Every sensor seen and its mean, by sensor id.
    pub fn sensors(&self) -> impl Iterator<Item = (&str, RunningMean)> + '_ {
        self.per_sensor.iter().map(|(s, m)| (s.as_str(), *m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xorshift::XorShiftRng;

    fn rng() -> XorShiftRng {
        XorShiftRng::seed_from_u64(0x7e57)
    }

    fn naive_mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    #[test]
    fn empty_has_no_mean() {
        let mut m = RunningMean::new();
        assert_eq!((m.count(), m.mean()), (0, None));
        m.merge(&RunningMean::new());
        assert_eq!(m, RunningMean::default());
        assert_eq!(std::mem::size_of::<RunningMean>(), 24, "O(1): a count, a mean, its rounding error");
    }

    #[test]
    fn single_and_constant_values_are_exact() {
        let mut m = RunningMean::new();
        m.add(-3.25);
        assert_eq!(m.mean(), Some(-3.25));
        let c: RunningMean = std::iter::repeat_n(0.1, 1_000_000).collect();
        assert_eq!(c.mean(), Some(0.1));
    }

    /// A million temperatures in hundredths of a degree: the exact mean is
    /// computable in integers.
    #[test]
    fn million_temperatures_match_the_naive_and_the_exact_mean() {
        let mut rng = rng();
        let centi: Vec<i64> = (0..1_000_000).map(|_| rng.gen_range(-5_000..=5_000)).collect();
        let values: Vec<f64> = centi.iter().map(|&c| c as f64 / 100.0).collect();
        let exact = centi.iter().sum::<i64>() as f64 / (100.0 * values.len() as f64);
        let m: RunningMean = values.iter().copied().collect();
        let mean = m.mean().unwrap();
        assert_eq!(m.count(), 1_000_000);
        assert!((mean - naive_mean(&values)).abs() < 1e-9, "{mean} vs naive {}", naive_mean(&values));
        assert!((mean - exact).abs() < 1e-9, "{mean} vs exact {exact}");
    }

    /// Values 1e12 + k/1024 are exact in f64, and their exact mean is known
    /// from integers; an ulp at 1e12 is 1.2e-4.
    #[test]
    fn large_offsets_stay_within_a_few_ulps() {
        let mut rng = rng();
        let n = 1_000_000i64;
        let ks: Vec<i64> = (0..n).map(|_| rng.gen_range(-50_000..=50_000)).collect();
        let values: Vec<f64> = ks.iter().map(|&k| 1e12 + k as f64 / 1024.0).collect();
        let exact = 1e12 + ks.iter().sum::<i64>() as f64 / (1024.0 * n as f64);
        let mean = values.iter().copied().collect::<RunningMean>().mean().unwrap();
        let naive = naive_mean(&values);
        let ulp = 2f64.powi(-13); // of numbers in [2^39, 2^40)
        assert!((mean - exact).abs() <= 2.0 * ulp, "running {mean} vs exact {exact}");
        // A naive sum is good to about 1e-13 here (hundreds of ulps).
        assert!((mean - naive).abs() <= 1e-13 * exact, "running {mean} vs naive {naive}");
    }

    #[test]
    fn huge_values_do_not_overflow_where_a_sum_does() {
        let values = [f64::MAX, f64::MAX / 2.0, f64::MAX, f64::MAX / 2.0];
        assert!(values.iter().sum::<f64>().is_infinite());
        let mean = values.iter().copied().collect::<RunningMean>().mean().unwrap();
        assert!((mean / f64::MAX - 0.75).abs() < 1e-15, "{mean}");
        let same: RunningMean = std::iter::repeat_n(1e308, 10).collect();
        assert_eq!(same.mean(), Some(1e308));
    }

    #[test]
    fn merging_chunks_equals_adding_everything() {
        let mut rng = rng();
        let values: Vec<f64> = (0..100_000).map(|_| 21.0 + rng.gen::<f64>() - rng.gen::<f64>()).collect();
        let whole: RunningMean = values.iter().copied().collect();
        let mut merged = RunningMean::new();
        for chunk in values.chunks(777) {
            merged.merge(&chunk.iter().copied().collect());
        }
        assert_eq!(merged.count(), whole.count());
        assert!((merged.mean().unwrap() - whole.mean().unwrap()).abs() < 1e-12);
    }

    #[test]
    fn per_sensor_averages_match_naive_per_sensor_means() {
        let mut rng = rng();
        let sensors = ["sensor-001", "sensor-002", "sensor-003", "sensor-004", "sensor-005"];
        let mut averages = Averages::default();
        let mut by_sensor: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut all = Vec::new();
        for i in 0..200_000 {
            let s = sensors[rng.gen_range(0..sensors.len())];
            // Sensors far apart, one of them at a large offset.
            let x = i as f64 * 1e-6 + 1e12 * f64::from(u8::from(s == "sensor-005")) + rng.gen::<f64>() - rng.gen::<f64>();
            let returned = averages.add(s, x);
            by_sensor.entry(s).or_default().push(x);
            all.push(x);
            assert_eq!(Some(returned), averages.sensor(s));
        }
        assert_eq!(averages.sensors().count(), sensors.len(), "memory grows with sensors, not readings");
        let mut merged = RunningMean::new();
        for (s, m) in averages.sensors() {
            let naive = naive_mean(&by_sensor[s]);
            assert_eq!(m.count(), by_sensor[s].len() as u64);
            assert!((m.mean().unwrap() - naive).abs() <= 1e-9 * naive.abs().max(1.0), "{s}");
            merged.merge(&m);
        }
        let overall = averages.overall();
        assert_eq!(overall.count(), 200_000);
        let naive = naive_mean(&all);
        assert!((overall.mean().unwrap() - naive).abs() <= 1e-12 * naive);
        assert!((merged.mean().unwrap() - naive).abs() <= 1e-12 * naive);
        assert_eq!(averages.sensor("nope"), None);
    }
}
