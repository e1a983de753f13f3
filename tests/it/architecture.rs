//! The module structure, checked from the source: arrows between the top-level modules of
//! `src/` point one way (no import cycle), and only the wiring knows the assembled `App`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it names through `crate::…`.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/postgres.rs` → `store`, `src/worker.rs` → `worker`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names as `crate::name` (in `use` lines and in paths), and the
/// ones it names inside `use crate::{a, b::c}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in top_level_items(group) {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    names.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The items of a `{…}` group up to its closing brace, split at the commas of its own level.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn graph() -> (Graph, BTreeMap<PathBuf, BTreeSet<String>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    let mut per_file = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        let code = std::fs::read_to_string(&file).expect("read source");
        let named: BTreeSet<String> = named_modules(&code)
            .into_iter()
            .filter(|to| modules.contains(to) && *to != from)
            .collect();
        graph.entry(from).or_default().extend(named.iter().cloned());
        per_file.insert(file, named);
    }
    (graph, per_file)
}

/// A cycle through the graph, if there is one (depth-first search with colours).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        named_modules(
            "use crate::{store::{Store}, feed::SnapshotFeed};\nlet x = crate::domain::f();"
        ),
        ["domain", "feed", "store"].map(String::from).into()
    );
}

#[test]
fn modules_of_src_import_each_other_without_cycles() {
    let (graph, _) = graph();
    assert!(graph.len() > 10, "read the modules of src/: {graph:?}");
    assert_eq!(find_cycle(&graph), None, "import cycle among src/ modules");
    // The pure rules depend on nothing else of ours.
    assert_eq!(
        graph["domain"],
        BTreeSet::new(),
        "domain/ imports only itself"
    );
}

#[test]
fn only_the_wiring_knows_the_app() {
    let (_, per_file) = graph();
    let importers: Vec<&PathBuf> = per_file
        .iter()
        .filter(|(_, named)| named.contains("app"))
        .map(|(file, _)| file)
        .collect();
    // main.rs names it as `tax_budget::app`, not `crate::app`, so no file of src/ may.
    assert_eq!(
        importers,
        Vec::<&PathBuf>::new(),
        "files importing crate::app"
    );
}
