//! Storage formats: how typed values become record payloads and back.
//!
//! Payloads carry no envelope (a JSON payload is plain JSON any client can
//! read). Readers decode with the format they are given; a record that names
//! its format in the [`FORMAT_HEADER`] header is decoded by that instead, and
//! writers add the header when asked (`with_format_header(true)`), for topics
//! that mix formats.
//!
//! This module deals in bytes only. The helpers that take or make a whole
//! [`Record`](crate::Record) ([`Format::to_record`], [`Format::decode_record`],
//! [`Format::of_record`]) live with the record type in [`crate::record`].
//!
//! ```
//! use twitch::codec::Format;
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Reading { sensor: u32, celsius: f64 }
//!
//! let bytes = Format::Json.encode(&Reading { sensor: 1, celsius: 21.5 }).unwrap();
//! assert_eq!(bytes, br#"{"sensor":1,"celsius":21.5}"#);
//! let back: Reading = Format::Json.decode(&bytes).unwrap();
//! assert_eq!(back, Reading { sensor: 1, celsius: 21.5 });
//! ```

use std::fmt;
use std::str::FromStr;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Name of the record header that tells a record's format.
pub const FORMAT_HEADER: &str = "twitch.format";

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// bincode (de)serialization failed.
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::Error),
    /// The record names a format twitch does not know.
    #[error("unknown format `{0}` (known: json, bincode)")]
    UnknownFormat(String),
}

/// A serde storage format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// Plain JSON (`serde_json`), readable by any client.
    Json,
    /// Compact binary (`bincode` 1.x with its default fixed-int encoding, the
    /// same bytes `bincode::serialize` produces).
    #[default]
    Bincode,
}

impl Format {
    /// The name written into [`FORMAT_HEADER`].
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Bincode => "bincode",
        }
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut buf = Vec::new();
        self.encode_into(value, &mut buf)?;
        Ok(buf)
    }

    /// Encodes a value into `buf` (cleared first), so a caller can reuse one
    /// buffer for many values.
    pub fn encode_into<T: Serialize + ?Sized>(self, value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.clear();
        match self {
            Format::Json => serde_json::to_writer(&mut *buf, value)?,
            Format::Bincode => bincode_options().serialize_into(&mut *buf, value)?,
        }
        Ok(())
    }

    /// Decodes a value. Arbitrary bytes give an error, never a panic, and
    /// never an allocation larger than the input.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Format::Json => Ok(serde_json::from_slice(bytes)?),
            Format::Bincode => Ok(bincode_options()
                .with_limit(bytes.len() as u64)
                .deserialize(bytes)?),
        }
    }

    /// The format named by a [`FORMAT_HEADER`] value (`None`: no header).
    /// Allocates only to report an unknown name.
    pub fn of_header(value: Option<&[u8]>) -> Result<Option<Format>, CodecError> {
        match value {
            None => Ok(None),
            Some(name) => Format::from_name(name)
                .map(Some)
                .ok_or_else(|| CodecError::UnknownFormat(String::from_utf8_lossy(name).into_owned())),
        }
    }

    /// The format with this name, ignoring ASCII case.
    fn from_name(name: &[u8]) -> Option<Format> {
        [Format::Json, Format::Bincode].into_iter().find(|f| f.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// bincode 1.x as `bincode::serialize` configures it, but strict about
/// trailing bytes so a record of another type is caught.
fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().reject_trailing_bytes()
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::from_name(s.as_bytes()).ok_or_else(|| CodecError::UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Msg {
        Reset,
        Data(Box<[u8]>),
        Reading { sensor: String, seq: u64, celsius: f64 },
    }

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Reset,
            Msg::Data(vec![1, 2, 3].into_boxed_slice()),
            Msg::Reading { sensor: "s-1".into(), seq: 7, celsius: -3.25 },
        ]
    }

    #[test]
    fn round_trips_in_both_formats() {
        for format in [Format::Json, Format::Bincode] {
            for m in samples() {
                let bytes = format.encode(&m).unwrap();
                assert_eq!(format.decode::<Msg>(&bytes).unwrap(), m, "{format}");
            }
        }
    }

    #[test]
    fn bincode_matches_bincode_serialize() {
        for m in samples() {
            assert_eq!(Format::Bincode.encode(&m).unwrap(), bincode::serialize(&m).unwrap());
        }
    }

    #[test]
    fn json_is_plain_json() {
        let bytes = Format::Json.encode(&Msg::Reset).unwrap();
        assert_eq!(bytes, br#""Reset""#);
    }

    #[test]
    fn unknown_format_is_an_error() {
        assert!(matches!(Format::of_header(Some(b"avro")), Err(CodecError::UnknownFormat(f)) if f == "avro"));
        assert_eq!(Format::of_header(Some(b"Json")).unwrap(), Some(Format::Json));
        assert_eq!(Format::of_header(None).unwrap(), None);
        assert!("protobuf".parse::<Format>().is_err());
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let bytes = Format::Bincode.encode(&samples()[2]).unwrap();
        assert!(Format::Bincode.decode::<Msg>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Format::Bincode.decode::<Msg>(&longer).is_err());
        let json = Format::Json.encode(&samples()[2]).unwrap();
        assert!(Format::Json.decode::<Msg>(&json[..json.len() - 2]).is_err());
    }

    #[test]
    fn random_bytes_never_panic_or_overallocate() {
        let mut rng = rand_xorshift_free_rng();
        for len in 0..2_000usize {
            let bytes: Vec<u8> = (0..len % 64).map(|_| rng.gen()).collect();
            let _ = Format::Bincode.decode::<Msg>(&bytes);
            let _ = Format::Json.decode::<Msg>(&bytes);
            let _ = Format::Bincode.decode::<Vec<String>>(&bytes);
        }
        // A length prefix claiming 2^60 bytes must fail fast, not allocate.
        let mut huge = vec![1, 0, 0, 0];
        huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(Format::Bincode.decode::<Msg>(&huge).is_err());
    }

    fn rand_xorshift_free_rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(42)
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic a decoder, in either format, for
        /// several target types.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Format::Bincode.decode::<Msg>(&bytes);
            let _ = Format::Json.decode::<Msg>(&bytes);
            let _ = Format::Bincode.decode::<(String, Vec<u64>, Option<f64>)>(&bytes);
            let _ = Format::Json.decode::<serde_json::Value>(&bytes);
        }

        /// Whatever a value is, it comes back unchanged.
        #[test]
        fn any_reading_round_trips(sensor in ".{0,40}", seq in proptest::num::u64::ANY, celsius in -1e12f64..1e12) {
            let m = Msg::Reading { sensor, seq, celsius };
            for format in [Format::Json, Format::Bincode] {
                let back: Msg = format.decode(&format.encode(&m).unwrap()).unwrap();
                proptest::prop_assert_eq!(&back, &m);
            }
        }

        /// A truncated bincode value is an error, never a different value.
        #[test]
        fn truncated_values_are_errors(seq in proptest::num::u64::ANY, cut in 1usize..20) {
            let bytes = Format::Bincode.encode(&Msg::Reading { sensor: "abc".into(), seq, celsius: 1.5 }).unwrap();
            let cut = cut.min(bytes.len());
            proptest::prop_assert!(Format::Bincode.decode::<Msg>(&bytes[..bytes.len() - cut]).is_err());
        }
    }
}
