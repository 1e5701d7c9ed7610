//! Building the apps from a test: `cargo build -p temp_gen -p average_temp`,
//! with the executables' paths taken from Cargo's JSON messages.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Binaries, Error};

impl Binaries {
    /// Builds `temp_gen` and `average_temp` with `cargo build` (a no-op when
    /// they are fresh), in the profile of the running executable (a test
    /// binary in `target/<profile>/deps/`, or a binary in
    /// `target/<profile>/`), and returns their paths.
    ///
    /// The apps are separate crates, so Cargo does not build them for another
    /// crate's tests; integration tests call this once (behind a `OnceLock`).
    /// Cargo's output goes to this process's stderr.
    pub fn build_with_cargo() -> Result<Self, Error> {
        let build = |message: String| Error::Build { message };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "temp_gen", "-p", "average_temp", "--message-format=json-render-diagnostics"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        // target/<profile>/deps/<test>-<hash>, or target/<profile>/<binary>
        let exe = std::env::current_exe().map_err(Error::CurrentExe)?;
        let dir = exe.parent();
        let profile_dir = match dir {
            Some(deps) if deps.file_name().is_some_and(|n| n == "deps") => deps.parent(),
            other => other,
        };
        match profile_dir.and_then(|p| p.file_name()).and_then(|p| p.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
        }
        let out = cmd.output().map_err(|e| build(format!("cannot run cargo build: {e}")))?;
        if !out.status.success() {
            return Err(build(format!("cargo build -p temp_gen -p average_temp failed: {}", out.status)));
        }
        let (mut temp_gen, mut average_temp) = (None, None);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let exe = msg["executable"].as_str().map(PathBuf::from);
            match msg["target"]["name"].as_str() {
                Some("temp_gen") => temp_gen = exe,
                Some("average_temp") => average_temp = exe,
                _ => {}
            }
        }
        match (temp_gen, average_temp) {
            (Some(temp_gen), Some(average_temp)) => Ok(Binaries { temp_gen, average_temp }),
            _ => Err(build("cargo build did not report the temp_gen and average_temp executables".to_owned())),
        }
    }
}
