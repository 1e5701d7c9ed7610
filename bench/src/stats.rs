//! Measurements: wall time, CPU time of this process and of the broker, and
//! latency percentiles.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// CPU seconds (user + system, all threads) used so far by process `pid`,
/// or by this process for `None`. `None` where `/proc` is not available.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces; fields start after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 overall, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS)
}

/// CPU seconds used by the whole machine so far (every process, all CPUs),
/// from `/proc/stat`.
pub fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal ...
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum::<f64>();
    Some(busy / CLOCK_TICKS)
}

/// A running measurement: wall clock and CPU of client, broker and machine.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    started: Instant,
    client_cpu: Option<f64>,
    broker_cpu: Option<f64>,
    machine_cpu: Option<f64>,
    broker_pid: Option<u32>,
}

/// Wall and CPU time of a measured span.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub wall: Duration,
    /// CPU seconds used by this process (client; with the mock cluster the
    /// mock brokers' threads too).
    pub client_cpu: Option<f64>,
    /// CPU seconds used by the broker process, when its pid is known.
    pub broker_cpu: Option<f64>,
    /// CPU seconds used by every process on the machine.
    pub machine_cpu: Option<f64>,
}

impl Span {
    /// CPU seconds of processes other than the client and the broker: the
    /// noise from whatever else runs on the machine.
    pub fn other_cpu(&self) -> Option<f64> {
        Some((self.machine_cpu? - self.client_cpu? - self.broker_cpu.unwrap_or(0.0)).max(0.0))
    }
}

impl Meter {
    pub fn start(broker_pid: Option<u32>) -> Self {
        Meter {
            started: Instant::now(),
            client_cpu: cpu_seconds(None),
            broker_cpu: broker_pid.and_then(|p| cpu_seconds(Some(p))),
            machine_cpu: machine_cpu_seconds(),
            broker_pid,
        }
    }

    pub fn stop(&self) -> Span {
        let wall = self.started.elapsed();
        let delta = |before: Option<f64>, now: Option<f64>| Some(now? - before?);
        Span {
            wall,
            client_cpu: delta(self.client_cpu, cpu_seconds(None)),
            broker_cpu: self.broker_pid.and_then(|p| delta(self.broker_cpu, cpu_seconds(Some(p)))),
            machine_cpu: delta(self.machine_cpu, machine_cpu_seconds()),
        }
    }
}

impl std::ops::Add for Span {
    type Output = Span;
    fn add(self, o: Span) -> Span {
        if self.wall.is_zero() {
            return o;
        }
        let sum = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        Span {
            wall: self.wall + o.wall,
            client_cpu: sum(self.client_cpu, o.client_cpu),
            broker_cpu: sum(self.broker_cpu, o.broker_cpu),
            machine_cpu: sum(self.machine_cpu, o.machine_cpu),
        }
    }
}

/// Nanoseconds since the first call, on one monotonic clock for the whole
/// process (producers stamp it into payloads, consumers subtract).
pub fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    /// Percentiles of `samples` (microseconds); sorts them.
    pub fn from_samples(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        // Nearest-rank percentile.
        let rank = |q: f64| {
            let idx = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[idx] as f64
        };
        Latency { p50_us: rank(0.50), p99_us: rank(0.99), max_us: samples[samples.len() - 1] as f64 }
    }
}

/// Median of a non-empty list (lower median for even lengths is avoided:
/// the mean of the two middle values).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let l = Latency::from_samples(&mut s);
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (50.0, 99.0, 100.0));
        let l = Latency::from_samples(&mut [7]);
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (7.0, 7.0, 7.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(min(&[4.0, 1.0]), 1.0);
    }

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds(None).is_some());
        }
    }
}
