//! Compiles the seed's producer example unchanged.
//!
//! The seed text (`shared/seeds/braiins-kafka.txt`, beside the repository)
//! holds a producer written against the original twitch. This script cuts the
//! Rust code out of it, byte for byte, into `$OUT_DIR/seed_producer.rs`, which
//! `src/bin/seed_producer.rs` includes. Nothing of it is copied into the
//! repository. If the seed is missing, the binary says so and exits 2.

use std::env;
use std::fs;
use std::path::PathBuf;

const START: &str = "Here is an example of a producer written with twitch:";
const END: &str = "Try to get it working :)";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let seed = env::var_os("TWITCH_SEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/seeds/braiins-kafka.txt"));
    println!("cargo:rerun-if-changed={}", seed.display());
    println!("cargo:rerun-if-env-changed=TWITCH_SEED");

    let code = fs::read_to_string(&seed).ok().and_then(|text| {
        let start = text.find(START)? + START.len();
        let end = start + text[start..].find(END)?;
        Some(text[start..end].trim().to_owned())
    });
    let code = match code {
        Some(code) => code,
        None => {
            println!("cargo:warning=seed producer not found at {}; seed_producer will exit 2", seed.display());
            format!(
                "fn main() {{ eprintln!(\"seed text not found at {}: set TWITCH_SEED\"); std::process::exit(2); }}",
                seed.display()
            )
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default()).join("seed_producer.rs");
    if let Err(e) = fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
