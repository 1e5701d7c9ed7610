//! The last line each app prints on stdout, and its parser.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// What [`Display`](fmt::Display) prints for the mean of no values.
const NO_MEAN: &str = "n/a";
/// What [`Display`](fmt::Display) prints for no partitions.
const NO_PARTITIONS: &str = "none";

/// `temp_gen`'s last line: `produced <N> readings, mean <X>`, the mean with 6
/// decimals (`n/a` when nothing was produced).
///
/// ```
/// let s = temps::ProducerSummary { produced: 300, mean: Some(21.0123456) };
/// assert_eq!(s.to_string(), "produced 300 readings, mean 21.012346");
/// assert_eq!("produced 300 readings, mean 21.012346".parse(), Ok(temps::ProducerSummary { produced: 300, mean: Some(21.012346) }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerSummary {
    /// Readings produced (and acknowledged by the broker).
    pub produced: u64,
    /// Mean temperature of those readings; `None` when there were none.
    pub mean: Option<f64>,
}

/// `average_temp`'s last line: `consumed <N> readings, average <X>,
/// partitions <list>`, the average with 6 decimals (`n/a` when nothing was
/// consumed) and the partitions as `0,1,2` (`none` when it had none).
///
/// ```
/// let s = temps::ConsumerSummary { consumed: 100, average: Some(20.5), partitions: [2, 0].into() };
/// assert_eq!(s.to_string(), "consumed 100 readings, average 20.500000, partitions 0,2");
/// let empty = temps::ConsumerSummary { consumed: 0, average: None, partitions: Default::default() };
/// assert_eq!(empty.to_string(), "consumed 0 readings, average n/a, partitions none");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSummary {
    /// Readings consumed (and processed).
    pub consumed: u64,
    /// Their average temperature; `None` when there were none.
    pub average: Option<f64>,
    /// Partitions the consumer was assigned at any point.
    pub partitions: BTreeSet<i32>,
}

/// A line that is not the summary line it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {kind} summary line ({reason}): `{line}`")]
pub struct ParseSummaryError {
    kind: &'static str,
    reason: String,
    line: String,
}

impl ParseSummaryError {
    fn new(kind: &'static str, line: &str, reason: impl Into<String>) -> Self {
        ParseSummaryError { kind, reason: reason.into(), line: line.to_owned() }
    }
}

fn fmt_mean(f: &mut fmt::Formatter<'_>, mean: Option<f64>) -> fmt::Result {
    match mean {
        Some(x) => write!(f, "{x:.6}"),
        None => f.write_str(NO_MEAN),
    }
}

fn parse_mean(s: &str) -> Result<Option<f64>, String> {
    if s == NO_MEAN {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(format!("`{s}` is not a finite number or `{NO_MEAN}`")),
    }
}

fn parse_count(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("`{s}` is not a count"))
}

impl fmt::Display for ProducerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "produced {} readings, mean ", self.produced)?;
        fmt_mean(f, self.mean)
    }
}

impl FromStr for ProducerSummary {
    type Err = ParseSummaryError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseSummaryError::new("producer", line, reason);
        let rest = line.trim().strip_prefix("produced ").ok_or_else(|| err("no `produced `".into()))?;
        let (count, mean) = rest.split_once(" readings, mean ").ok_or_else(|| err("no ` readings, mean `".into()))?;
        Ok(ProducerSummary { produced: parse_count(count).map_err(err)?, mean: parse_mean(mean).map_err(err)? })
    }
}

impl fmt::Display for ConsumerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consumed {} readings, average ", self.consumed)?;
        fmt_mean(f, self.average)?;
        f.write_str(", partitions ")?;
        if self.partitions.is_empty() {
            return f.write_str(NO_PARTITIONS);
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl FromStr for ConsumerSummary {
    type Err = ParseSummaryError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseSummaryError::new("consumer", line, reason);
        let rest = line.trim().strip_prefix("consumed ").ok_or_else(|| err("no `consumed `".into()))?;
        let (count, rest) =
            rest.split_once(" readings, average ").ok_or_else(|| err("no ` readings, average `".into()))?;
        let (average, list) = rest.split_once(", partitions ").ok_or_else(|| err("no `, partitions `".into()))?;
        let partitions = if list == NO_PARTITIONS {
            BTreeSet::new()
        } else {
            list.split(',')
                .map(|p| match p.parse::<i32>() {
                    Ok(p) if p >= 0 => Ok(p),
                    _ => Err(err(format!("`{p}` is not a partition number"))),
                })
                .collect::<Result<_, _>>()?
        };
        Ok(ConsumerSummary {
            consumed: parse_count(count).map_err(err)?,
            average: parse_mean(average).map_err(err)?,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_lines_round_trip() {
        for s in [
            ProducerSummary { produced: 0, mean: None },
            ProducerSummary { produced: 1, mean: Some(-12.5) },
            ProducerSummary { produced: u64::MAX, mean: Some(21.123457) },
        ] {
            assert_eq!(s.to_string().parse::<ProducerSummary>(), Ok(s), "{s}");
        }
        assert_eq!("produced 0 readings, mean n/a".parse(), Ok(ProducerSummary { produced: 0, mean: None }));
    }

    #[test]
    fn consumer_lines_round_trip() {
        let s = ConsumerSummary { consumed: 300, average: Some(20.999999), partitions: [0, 1, 2].into() };
        assert_eq!(s.to_string(), "consumed 300 readings, average 20.999999, partitions 0,1,2");
        assert_eq!(s.to_string().parse::<ConsumerSummary>(), Ok(s));
        let none = ConsumerSummary { consumed: 0, average: None, partitions: BTreeSet::new() };
        assert_eq!(none.to_string().parse::<ConsumerSummary>(), Ok(none));
    }

    #[test]
    fn means_print_six_decimals() {
        let s = ProducerSummary { produced: 3, mean: Some(1.0 / 3.0) };
        assert_eq!(s.to_string(), "produced 3 readings, mean 0.333333");
        let s = ProducerSummary { produced: 3, mean: Some(-0.0000004) };
        assert_eq!(s.to_string(), "produced 3 readings, mean -0.000000");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert!("  produced 2 readings, mean 1.000000\n".parse::<ProducerSummary>().is_ok());
        assert!("consumed 2 readings, average 1.000000, partitions 1\r\n".parse::<ConsumerSummary>().is_ok());
    }

    #[test]
    fn other_lines_are_rejected_with_the_reason() {
        for bad in [
            "",
            "consumed 3 readings, average 1.0, partitions 0",
            "produced three readings, mean 1.0",
            "produced 3 readings, mean NaN",
            "produced 3 readings, mean inf",
            "produced -3 readings, mean 1.0",
            "produced 3 readings mean 1.0",
        ] {
            let e = bad.parse::<ProducerSummary>().unwrap_err();
            assert!(e.to_string().starts_with("not a producer summary line"), "{bad}: {e}");
        }
        for bad in [
            "produced 3 readings, mean 1.0",
            "consumed 3 readings, average 1.0",
            "consumed 3 readings, average 1.0, partitions ",
            "consumed 3 readings, average 1.0, partitions 0,,1",
            "consumed 3 readings, average 1.0, partitions -1",
            "consumed 3 readings, average x, partitions 0",
            "sensor-001 p0@1 21.50 °C",
        ] {
            assert!(bad.parse::<ConsumerSummary>().is_err(), "{bad}");
        }
        let e = "consumed 3 readings, average 1.0, partitions a".parse::<ConsumerSummary>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a consumer summary line (`a` is not a partition number): `consumed 3 readings, average 1.0, partitions a`"
        );
    }
}
