//! The layering holds: no cycle among the modules of `src/` or of
//! `operations/src/` (a module is a top-level file or directory; its
//! submodules count as itself), and the operations crate names neither
//! clap nor axum nor the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn modules_of(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(dir).expect("under dir");
                let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
                found.push((first.trim_end_matches(".rs").to_string(), path));
            }
        }
    }
    found
}

/// The top-level modules a file names through `crate::`, outside comments.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inside = group.split('}').next().unwrap_or("");
                for item in inside.split(',') {
                    let name = item.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        named.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    named.insert(name);
                }
            }
        }
    }
    named
}

/// Module → the other modules it uses.
fn graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = modules_of(dir);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).expect("a source file");
        let used = edges.entry(module.clone()).or_default();
        for name in named_modules(&text) {
            if name != *module && modules.contains(&name) {
                used.insert(name);
            }
        }
    }
    edges
}

/// A cycle, if there is one, as the modules along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(node, edges, &mut marks, &mut path) {
            return Some(cycle);
        }
    }
    None
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_binarys_modules_have_no_cycle() {
    let edges = graph(&root().join("src"));
    assert!(edges.len() > 5, "src/ has its modules: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("a cycle among src/'s modules: {}", cycle.join(" → "));
    }
}

#[test]
fn the_operations_modules_have_no_cycle() {
    let edges = graph(&root().join("operations/src"));
    assert!(edges.len() > 5, "operations/src has its modules: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("a cycle among operations' modules: {}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_the_reader_reads_groups() {
    let named = named_modules("use crate::{exit::BadInput, lookup};\nlet x = crate::family::f();\n// crate::serve\n");
    assert_eq!(named, ["exit", "family", "lookup"].map(String::from).into_iter().collect());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges), Some(["a", "b", "c", "a"].map(String::from).to_vec()));
    edges.get_mut("c").expect("c").clear();
    assert_eq!(find_cycle(&edges), None);
}

#[test]
fn operations_names_no_frontend() {
    let manifest = std::fs::read_to_string(root().join("operations/Cargo.toml")).expect("the manifest");
    for frontend in ["clap", "axum", "hyper", "anyhow", "yibao"] {
        let named = manifest.lines().any(|line| {
            line.trim_start().starts_with(&format!("{frontend} "))
                || line.trim_start().starts_with(&format!("{frontend}."))
        });
        assert!(!named, "operations depends on {frontend}");
    }
}
