//! The producer from the seed text, compiled unchanged against this twitch
//! (see `build.rs`). Run with `KAFKA_BROKERS=127.0.0.1:9092`.
#![allow(clippy::all, unused)]
include!(concat!(env!("OUT_DIR"), "/seed_producer.rs"));
