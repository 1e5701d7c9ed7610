//! Measurements: wall time, CPU time of this process and of the broker, and
//! latency percentiles.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/stat` (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

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

/// CPU nanoseconds each live thread of process `pid` (this one for `None`)
/// has run so far, from `/proc/*/task/*/schedstat` (nanoseconds, where
/// `/proc/*/stat` counts 10 ms ticks: a read case's round lasts about
/// 0.1 s), with whether the thread is librdkafka's (librdkafka names its
/// threads `rdk:…`).
fn thread_cpu_ns(pid: Option<u32>) -> Vec<(u32, bool, u64)> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/task"),
        None => "/proc/self/task".to_owned(),
    };
    let Ok(tasks) = std::fs::read_dir(dir) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            // A thread may end between the listing and these reads.
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = schedstat.split_whitespace().next()?.parse().ok()?;
            Some((tid, comm.starts_with("rdk:"), ns))
        })
        .collect()
}

/// CPU seconds this process's threads ran between two [`thread_cpu_ns`]
/// listings, as (librdkafka's threads, the others). A thread that started
/// in between counts from zero; one that ended in between is missing.
fn thread_cpu_split(before: &[(u32, bool, u64)], now: &[(u32, bool, u64)]) -> Option<(f64, f64)> {
    if now.is_empty() {
        return None;
    }
    let (mut rdkafka, mut app) = (0u64, 0u64);
    for (tid, is_rdkafka, ns) in now {
        let start = before.iter().find(|(t, ..)| t == tid).map_or(0, |(.., ns)| *ns);
        let ran = ns.saturating_sub(start);
        if *is_rdkafka {
            rdkafka += ran;
        } else {
            app += ran;
        }
    }
    Some((rdkafka as f64 / 1e9, app as f64 / 1e9))
}

/// A running measurement: wall clock and CPU of client, broker and machine.
#[derive(Debug, Clone)]
pub struct Meter {
    started: Instant,
    threads: Vec<(u32, bool, u64)>,
    broker_threads: Vec<(u32, bool, u64)>,
    machine_cpu: Option<f64>,
    broker_pid: Option<u32>,
}

/// Wall and CPU time of a measured span.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub wall: Duration,
    /// CPU seconds used by this process's librdkafka threads (`rdk:…`; with
    /// the mock cluster the mock brokers' threads too) and by its
    /// application threads (tokio workers, main thread), to the nanosecond.
    pub rdkafka_cpu: Option<f64>,
    pub app_cpu: Option<f64>,
    /// CPU seconds used by the broker process's threads, when its pid is
    /// known.
    pub broker_cpu: Option<f64>,
    /// CPU seconds used by every process on the machine.
    pub machine_cpu: Option<f64>,
}

impl Span {
    /// CPU seconds of processes other than the client and the broker: the
    /// noise from whatever else runs on the machine. `None` for spans under
    /// half a second: the machine's total comes in 10 ms ticks per CPU.
    pub fn other_cpu(&self) -> Option<f64> {
        if self.wall < Duration::from_millis(500) {
            return None;
        }
        Some((self.machine_cpu? - self.client_cpu()? - self.broker_cpu.unwrap_or(0.0)).max(0.0))
    }

    /// CPU seconds used by the client process's threads: librdkafka's and
    /// the application's.
    pub fn client_cpu(&self) -> Option<f64> {
        Some(self.rdkafka_cpu? + self.app_cpu?)
    }
}

/// CPU microseconds per record: the client's application threads, its
/// librdkafka threads, and the broker process when its pid is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerRecord {
    pub app_us: f64,
    pub rdkafka_us: f64,
    pub broker_us: Option<f64>,
}

impl CpuPerRecord {
    pub fn of(span: &Span, records: u64) -> Option<CpuPerRecord> {
        let per = |seconds: f64| seconds * 1e6 / records.max(1) as f64;
        Some(CpuPerRecord {
            app_us: per(span.app_cpu?),
            rdkafka_us: per(span.rdkafka_cpu?),
            broker_us: span.broker_cpu.map(per),
        })
    }
}

impl std::fmt::Display for CpuPerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, " cpu us/rec: app {:.3} + librdkafka {:.3}", self.app_us, self.rdkafka_us)?;
        match self.broker_us {
            Some(b) => write!(f, " + broker {b:.3}"),
            None => Ok(()),
        }
    }
}

impl Meter {
    pub fn start(broker_pid: Option<u32>) -> Self {
        // The /proc reads first, the clock last, so that reading a few dozen
        // files is not in the measured span (`stop` reads the clock first).
        let threads = thread_cpu_ns(None);
        let broker_threads = broker_pid.map(|p| thread_cpu_ns(Some(p))).unwrap_or_default();
        let machine_cpu = machine_cpu_seconds();
        Meter { started: Instant::now(), threads, broker_threads, machine_cpu, broker_pid }
    }

    pub fn stop(&self) -> Span {
        let wall = self.started.elapsed();
        let delta = |before: Option<f64>, now: Option<f64>| Some(now? - before?);
        let split = thread_cpu_split(&self.threads, &thread_cpu_ns(None));
        let broker = self.broker_pid.and_then(|p| thread_cpu_split(&self.broker_threads, &thread_cpu_ns(Some(p))));
        Span {
            wall,
            rdkafka_cpu: split.map(|(rdkafka, _)| rdkafka),
            app_cpu: split.map(|(_, app)| app),
            broker_cpu: broker.map(|(rdkafka, other)| rdkafka + other),
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
            rdkafka_cpu: sum(self.rdkafka_cpu, o.rdkafka_cpu),
            app_cpu: sum(self.app_cpu, o.app_cpu),
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

/// A confidence interval of at least 95 % for the median of the population
/// `values` were drawn from, from their order statistics alone (no
/// assumption about the distribution): the k-th smallest and k-th largest
/// value, k the largest with P(Binomial(n, 1/2) < k) <= 2.5 %. `None` for
/// fewer than 6 values, which are too few for one.
pub fn median_ci95(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    // P(Binomial(n, 1/2) <= i), summed term by term.
    let mut term = 0.5f64.powi(i32::try_from(n).ok()?);
    let (mut below, mut k) = (0.0, 0);
    for i in 0..n {
        if below + term > 0.025 {
            break;
        }
        below += term;
        k = i + 1;
        term *= (n - i) as f64 / (i + 1) as f64;
    }
    (k >= 1).then(|| (v[k - 1], v[n - k]))
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
    fn median_confidence_intervals_come_from_order_statistics() {
        let v: Vec<f64> = (1..=9).map(f64::from).rev().collect();
        // n = 9: P(Bin <= 1) = 10/512 <= 2.5 % < P(Bin <= 2), so the 2nd
        // smallest and 2nd largest.
        assert_eq!(median_ci95(&v), Some((2.0, 8.0)));
        // n = 6: P(Bin = 0) = 1/64; the extremes.
        assert_eq!(median_ci95(&[6.0, 1.0, 5.0, 2.0, 4.0, 3.0]), Some((1.0, 6.0)));
        // n = 27: P(Bin <= 7) = 0.96 %, P(Bin <= 8) = 2.6 %.
        let v: Vec<f64> = (1..=27).map(f64::from).collect();
        assert_eq!(median_ci95(&v), Some((8.0, 20.0)));
        assert_eq!(median_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]), None, "even the extremes cover only 94 %");
    }


    #[test]
    fn thread_cpu_is_split_by_thread_name() {
        let before = [(1, false, 100), (2, true, 1_000), (3, true, 5)];
        // Thread 3 ended, thread 4 started.
        let now = [(1, false, 400), (2, true, 3_000), (4, true, 7)];
        let (rdkafka, app) = thread_cpu_split(&before, &now).unwrap();
        assert_eq!(((rdkafka * 1e9).round(), (app * 1e9).round()), (2_007.0, 300.0));
        assert_eq!(thread_cpu_split(&before, &[]), None);
        if cfg!(target_os = "linux") {
            let busy = thread_cpu_ns(None);
            assert!(busy.iter().any(|(_, is_rdkafka, ns)| !is_rdkafka && *ns > 0));
        }
    }
}
