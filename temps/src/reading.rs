//! The reading on the wire.

use serde::{Deserialize, Serialize};

/// One temperature reading, the value of every record `temp_gen` writes.
///
/// It travels as plain JSON; the record key is the sensor id:
///
/// ```
/// let r = temps::Reading { sensor: "sensor-001".into(), seq: 7, celsius: 21.37, timestamp: 1_700_000_000_000 };
/// assert_eq!(
///     serde_json::to_string(&r).unwrap(),
///     r#"{"sensor":"sensor-001","seq":7,"celsius":21.37,"timestamp":1700000000000}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Id of the sensor that measured it (also the record key).
    pub sensor: String,
    /// Sequence number per sensor, from 0.
    pub seq: u64,
    /// The temperature in degrees Celsius.
    pub celsius: f64,
    /// When it was measured, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let r = Reading { sensor: "s".into(), seq: u64::MAX, celsius: -40.25, timestamp: -1 };
        let back: Reading = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_fields_are_ignored_missing_ones_are_not() {
        let r: Reading =
            serde_json::from_str(r#"{"sensor":"a","seq":1,"celsius":2.5,"timestamp":3,"unit":"C"}"#).unwrap();
        assert_eq!(r.celsius, 2.5);
        assert!(serde_json::from_str::<Reading>(r#"{"sensor":"a","seq":1,"timestamp":3}"#).is_err());
    }
}
