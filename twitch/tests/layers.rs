//! twitch's modules depend one way: records and codecs at the bottom, then
//! the error type and settings, then writers, readers, the transactional
//! stage made of both, and the cluster that makes them all. A module may name only modules of a lower layer in its code
//! (doc comments and tests aside), so no two modules depend on each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module with its layer; a module may use lower layers only.
const LAYERS: &[(&str, u8)] = &[
    ("codec", 0),
    ("record", 1),
    ("error", 2),
    ("config", 3),
    ("partitioner", 3),
    ("rt", 3),
    ("telemetry", 3),
    ("writer", 4),
    ("reader", 5),
    ("stage", 6),
    ("warden", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("twitch's sources are readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `code` names as `crate::module`, outside comments
/// and from its first `#[cfg(test)]` on.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String =
                code[at + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            named.insert(name);
        }
    }
    named
}

#[test]
fn modules_depend_on_lower_layers_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a path").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs");
        if module == "lib" || relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let own = layer(module).unwrap_or_else(|| panic!("module `{module}` has no layer in LAYERS"));
        let code = std::fs::read_to_string(file).expect("a readable source file");
        for named in named_modules(&code) {
            let theirs = layer(&named).unwrap_or_else(|| panic!("{} names `crate::{named}`, which has no layer", relative.display()));
            if named != module && theirs >= own {
                edges.push(format!("{} ({module}) uses crate::{named}", relative.display()));
            }
        }
    }
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), src.display());
    assert!(edges.is_empty(), "modules using a module of the same or a higher layer:\n{}", edges.join("\n"));
}

#[test]
fn names_in_comments_and_tests_do_not_count() {
    let code = "use crate::record::Record;\n/// See [`x`](crate::warden::KafkaCluster).\nlet a = 1; // crate::reader\n#[cfg(test)]\nmod tests { use crate::writer::X; }";
    assert_eq!(named_modules(code), BTreeSet::from(["record".to_owned()]));
}
