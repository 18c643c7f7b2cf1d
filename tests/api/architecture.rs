//! The layering holds: no cycle among the crate's modules, read from every `crate::` path in
//! `src/` outside unit tests, at two depths: the top-level modules (`flows`, `store`, `config`,
//! `telemetry`, ...), and two levels deep (`flows::auth`, `store::postgres`, ...). A cycle would
//! mean two modules that can no longer change, or be understood, one without the other. The top
//! level is checked on its own because a parent and its children (which always refer to each
//! other) are one node there: `telemetry -> config` and `config::validation -> telemetry` is a
//! cycle through `config`, invisible two levels deep.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// `src/flows/auth.rs` -> ["flows", "auth"]; `mod.rs`, `lib.rs` and `main.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The longest prefix of `path` that is a module file or folder under `src`.
fn resolve(src: &Path, path: &[&str]) -> Vec<String> {
    let mut node = src.to_path_buf();
    let mut module = Vec::new();
    for part in path {
        let dir = node.join(part);
        if dir.is_dir() || node.join(format!("{part}.rs")).is_file() {
            module.push(part.to_string());
            node = dir;
        } else {
            break;
        }
    }
    module
}

/// The modules `depth` levels deep and the ones each refers to (not its parent or children).
fn graph(src: &Path, depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        // Unit tests may reach anywhere; they sit at the end of their file.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or(&text);
        let from = module_of(src, &file);
        let from = from[..from.len().min(depth)].join("::");
        let node = edges.entry(from.clone()).or_default();
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|p| !p.is_empty())
                .collect();
            let to = resolve(src, &path);
            let to = to[..to.len().min(depth)].join("::");
            let related = to.is_empty()
                || to == from
                || from.starts_with(&format!("{to}::"))
                || to.starts_with(&format!("{from}::"));
            if !related {
                node.insert(to);
            }
        }
    }
    edges
}

/// One cycle, as the modules along it, if there is any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = graph(&src, 2);
    let uses = |edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str| {
        edges.get(from).is_some_and(|to_set| to_set.contains(to))
    };
    assert!(uses(&modules, "flows::auth", "actors::tokens"));
    let top_level = graph(&src, 1);
    assert!(uses(&top_level, "flows", "actors") && uses(&top_level, "telemetry", "config"));
    for (depth, edges) in [(1, &top_level), (2, &modules)] {
        if let Some(cycle) = find_cycle(edges) {
            panic!("a module cycle ({depth} deep): {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("d".into()).or_default().insert("a".into());
    let cycle = find_cycle(&edges).expect("the cycle a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    edges.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&edges), None);
}
