//! Building the apps from a test: `cargo build -p temp_gen -p average_temp`,
//! with the executables' paths taken from Cargo's JSON messages.

use std::collections::BTreeMap;
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
        let mut exes = build_executables(&["temp_gen", "average_temp"])?;
        let mut take = |name| exes.remove(name).unwrap_or_default();
        Ok(Binaries { temp_gen: take("temp_gen"), average_temp: take("average_temp") })
    }
}

/// Builds the binaries of these packages (each named as its package) with
/// `cargo build`, in the profile of the running executable, and returns
/// their paths by name. Cargo's output goes to this process's stderr.
pub fn build_executables(packages: &[&str]) -> Result<BTreeMap<String, PathBuf>, Error> {
    let build = |message: String| Error::Build { message };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build");
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // target/<profile>/deps/<test>-<hash>, or target/<profile>/<binary>
    let exe = std::env::current_exe().map_err(Error::CurrentExe)?;
    let profile_dir = match exe.parent() {
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
    let list = packages.join(" -p ");
    let out = cmd.output().map_err(|e| build(format!("cannot run cargo build: {e}")))?;
    if !out.status.success() {
        return Err(build(format!("cargo build -p {list} failed: {}", out.status)));
    }
    let mut exes = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            if packages.contains(&name) {
                exes.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
    }
    match packages.iter().find(|p| !exes.contains_key(**p)) {
        None => Ok(exes),
        Some(missing) => Err(build(format!("cargo build -p {list} did not report the {missing} executable"))),
    }
}
