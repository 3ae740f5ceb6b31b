//! The layering, kept by tests that read the source: the engine and the commands name no kind, the kinds do
//! not reach up into the engine, and no module imports another that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file: its module path (`["commands", "bootstrap"]`; `mod.rs` is its directory's module) and its
/// text outside `#[cfg(test)]` items.
struct Source {
    module: Vec<String>,
    path: PathBuf,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = Vec::new();
    for path in files {
        let raw = std::fs::read_to_string(&path).unwrap();
        let (text, test_mods) = without_test_items(&raw);
        let dir = if path.file_name().is_some_and(|n| n == "mod.rs" || n == "main.rs") {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        for m in test_mods {
            test_only.insert(dir.join(format!("{m}.rs")));
            test_only.insert(dir.join(&m).join("mod.rs"));
        }
        let rel = path.strip_prefix(&root).unwrap().with_extension("");
        let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if module.last().is_some_and(|m| m == "mod" || m == "main") {
            module.pop();
        }
        out.push(Source { module, path, text });
    }
    out.retain(|s| !test_only.contains(&s.path));
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` without the items marked `#[cfg(test)]`, and the names of the `#[cfg(test)] mod NAME;` files.
fn without_test_items(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut mods = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let semi = item.find(';').unwrap_or(item.len());
        let brace = item.find('{').unwrap_or(item.len());
        if semi < brace {
            if let Some(name) = item[..semi].trim().strip_prefix("mod ") {
                mods.push(name.trim().to_string());
            }
            rest = &item[semi + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item.char_indices().skip(brace) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, mods)
}

/// Every `Name::Variant` path with `Name` a whole word (so `ErrorKind::` is not `Kind::`).
fn variant_uses<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let pattern = format!("{name}::");
    text.match_indices(&pattern)
        .filter(|(i, _)| !text[..*i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_'))
        .filter(|(i, _)| text[i + pattern.len()..].chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(|(i, _)| {
            let line_start = text[..i].rfind('\n').map_or(0, |s| s + 1);
            let line_end = text[i..].find('\n').map_or(text.len(), |e| i + e);
            text[line_start..line_end].trim()
        })
        .collect()
}

#[test]
fn the_engine_and_the_commands_name_no_kind_and_no_change_outside_tests() {
    let mut found = Vec::new();
    let above = |s: &&Source| matches!(s.module.first().map(String::as_str), Some("engine" | "pipeline" | "commands"));
    for s in sources().iter().filter(above) {
        for name in ["Change", "Kind"] {
            for line in variant_uses(&s.text, name) {
                found.push(format!("{}: {line}", s.path.display()));
            }
        }
    }
    assert!(found.is_empty(), "a kind named outside resources/ (ask the registry instead):\n{}", found.join("\n"));
}

/// A verb takes the pipeline's steps, never another verb's: a step two verbs need lives in `pipeline/`, where the
/// single-account and the fleet form of every verb find it.
#[test]
fn no_verb_calls_another_verb() {
    let sources = sources();
    let verbs: Vec<&str> = sources
        .iter()
        .filter(|s| s.module.len() == 2 && s.module[0] == "commands")
        .map(|s| s.module[1].as_str())
        .collect();
    assert!(verbs.contains(&"bootstrap") && verbs.contains(&"destroy"), "{verbs:?}");
    let mut found = Vec::new();
    for s in sources.iter().filter(|s| s.module.len() == 2 && s.module[0] == "commands") {
        for other in verbs.iter().filter(|v| **v != s.module[1]) {
            for pattern in [format!("commands::{other}::"), format!("super::{other}::"), format!("commands::{other};")]
            {
                if s.text.contains(&pattern) {
                    found.push(format!("{}: {pattern}", s.path.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "a verb calls another verb's steps (move the step to pipeline/):\n{}", found.join("\n"));
}

#[test]
fn the_resources_import_nothing_from_the_engine() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "resources"))
        .filter(|s| s.text.contains("crate::engine"))
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(found.is_empty(), "resources/ reaches up into the engine: {found:?}");
}

/// The modules `text` (of the module `from`) refers to: `crate::a::b` paths, and `super::b` siblings.
fn references(from: &[String], text: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let words = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|w| w.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
            .take_while(|w| !w.is_empty())
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let path = words(&text[i + "crate::".len()..]);
        if let Some(m) = (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| known.contains(p)) {
            out.insert(m);
        }
    }
    if let Some((_, parent)) = from.split_last() {
        for (i, _) in text.match_indices("super::") {
            if text[..i].ends_with("::") || text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric()) {
                continue;
            }
            let path = words(&text[i + "super::".len()..]);
            if let Some(first) = path.first() {
                let mut m = parent.to_vec();
                m.push(first.clone());
                if known.contains(&m) {
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// No import circle, between the crate's top-level modules (`cli` -> `commands` -> `output` -> `cli` was one)
/// and between the files of one directory (`commands/bootstrap` <-> `commands/accounts` was one); a module and
/// its own submodules may refer to each other.
#[test]
fn no_module_imports_one_that_imports_it_back() {
    let sources = sources();
    let known: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources.iter().filter(|s| !s.module.is_empty()) {
        for to in references(&s.module, &s.text, &known).into_iter().filter(|t| !t.is_empty()) {
            if to[0] != s.module[0] {
                top.entry(s.module[0].clone()).or_default().insert(to[0].clone());
            }
            let shared = s.module.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // Under one module, neither inside the other: an edge between the two children that hold them.
            if shared >= 1 && shared < s.module.len() && shared < to.len() {
                let key = |m: &[String]| m[..=shared].join("::");
                siblings.entry(key(&s.module)).or_default().insert(key(&to));
            }
        }
    }
    assert_eq!(cycle(&top), None, "an import circle between top-level modules");
    assert_eq!(cycle(&siblings), None, "an import circle between the files of one directory");
}

/// The files the registry (`resources/mod.rs`) lists as kinds: the modules of its `registry!` lines.
fn kind_files(sources: &[Source]) -> Vec<&Source> {
    let registry = sources.iter().find(|s| s.module == ["resources"]).expect("resources/mod.rs");
    let lines = &registry.text[registry.text.rfind("registry! {").expect("the registry! list")..];
    let lines = &lines[..lines.find('}').unwrap_or(lines.len())];
    let kinds: BTreeSet<&str> = lines.lines().filter_map(|l| l.split('=').nth(1)?.trim().split("::").next()).collect();
    sources
        .iter()
        .filter(|s| s.module.len() == 2 && s.module[0] == "resources" && kinds.contains(s.module[1].as_str()))
        .collect()
}

/// What `text` (a file of `resources/`) takes from the registry itself: `super::NAME` and
/// `crate::resources::NAME` where NAME is no module of `resources/`.
fn from_the_registry(text: &str, known: &BTreeSet<Vec<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["super::", "crate::resources::"] {
        for (i, _) in text.match_indices(prefix) {
            if prefix == "super::" && (text[..i].ends_with("::") || text[..i].ends_with("super::")) {
                continue;
            }
            let rest = &text[i + prefix.len()..];
            if rest.starts_with("super::") {
                continue;
            }
            let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                group[..group.find('}').unwrap_or(group.len())].split(',').map(|n| n.trim().to_string()).collect()
            } else {
                vec![rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()]
            };
            for name in names.into_iter().filter(|n| !n.is_empty() && n != "self") {
                let first = name.split("::").next().unwrap_or_default().to_string();
                if !known.contains(&vec!["resources".to_string(), first]) {
                    found.push(format!("{prefix}{name}"));
                }
            }
        }
    }
    found
}

/// A kind's file takes the shared words from `resources/vocab.rs` and the trait from `resources/kind.rs`, never
/// anything from the registry, which imports every kind.
#[test]
fn no_kind_imports_the_registry() {
    let sources = sources();
    let known: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let kinds = kind_files(&sources);
    assert!(kinds.len() >= 5, "the registry's kinds: {:?}", kinds.iter().map(|s| &s.path).collect::<Vec<_>>());
    let mut found = Vec::new();
    for s in kinds {
        for name in from_the_registry(&s.text, &known) {
            found.push(format!("{}: {name}", s.path.display()));
        }
    }
    assert!(found.is_empty(), "a kind takes from the registry (use resources::vocab):\n{}", found.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    let (text, mods) =
        without_test_items("a\n#[cfg(test)]\nmod tests {\n fn f() { Kind::Role }\n}\nb #[cfg(test)]\nmod t;\n");
    assert_eq!((text.replace('\n', ""), mods), ("ab ".to_string(), vec!["t".to_string()]));
    assert_eq!(variant_uses("x ErrorKind::Usage; Kind::Role", "Kind"), ["x ErrorKind::Usage; Kind::Role"]);
    assert!(variant_uses("ErrorKind::Usage", "Kind").is_empty());
    let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()])))
        .collect();
    assert!(cycle(&edges).is_some());
    assert!(!sources().is_empty());
    let known: BTreeSet<Vec<String>> =
        [vec!["resources".to_string(), "vocab".to_string()], vec!["resources".to_string(), "plan".to_string()]].into();
    assert_eq!(
        from_the_registry("use super::{owner_tag, Ownership};\nuse super::vocab::Key; super::plan::Kind", &known),
        ["super::owner_tag", "super::Ownership"]
    );
    assert_eq!(
        from_the_registry("use crate::resources::Change; super::super::X", &known),
        ["crate::resources::Change"]
    );
}
