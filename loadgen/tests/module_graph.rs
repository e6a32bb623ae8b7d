//! The loadgen's modules form a DAG (issue 12): every `crate::NAME` a file in `src/` names,
//! in code, tests or doc links, is an edge, and no path of edges returns to where it
//! started. Also keeps each file under the size the issue set.

use std::collections::BTreeMap;
use std::path::Path;

/// Longest file in `src/`, in lines.
const LINES_MAX: usize = 600;

/// Module -> the modules it names, for every `src/*.rs` but `lib.rs` and `main.rs`.
fn graph() -> BTreeMap<String, Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ lists") {
        let path = entry.expect("src/ entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
        if path.extension().is_none_or(|e| e != "rs") || name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source reads");
        let mut deps: Vec<String> = named_modules(&text).into_iter().filter(|d| *d != name).collect();
        deps.sort();
        deps.dedup();
        g.insert(name, deps);
    }
    g
}

/// The first segment after every `crate::`, including each item of `crate::{a, b::c}`.
fn named_modules(text: &str) -> Vec<String> {
    let ident =
        |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += (c == '{') as i32 - (c == '}') as i32;
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            let mut item_depth = 0;
            let mut start = 0;
            for (j, c) in group[..end].char_indices().chain([(end, ',')]) {
                match c {
                    '{' => item_depth += 1,
                    '}' => item_depth -= 1,
                    ',' if item_depth == 0 => {
                        out.push(ident(group[start..j].trim_start()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Every cycle's modules, one strongly connected component of two or more per entry.
fn cycles(g: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct State<'a> {
        g: &'a BTreeMap<String, Vec<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeMap<&'a str, bool>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v, true);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.get(w).copied().unwrap_or(false) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = s.stack.pop().expect("on the stack");
                s.on_stack.insert(w, false);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeMap::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn show(g: &BTreeMap<String, Vec<String>>) -> String {
    g.iter().map(|(m, d)| format!("{m} -> {}\n", d.join(", "))).collect()
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let g = graph();
    assert!(g.len() > 20, "src/ was read:\n{}", show(&g));
    let c = cycles(&g);
    assert!(c.is_empty(), "import cycles {c:?} in\n{}", show(&g));
    // The layering the issue asked for, beyond the absence of cycles.
    let imports = |m: &str, d: &str| g[m].iter().any(|x| x == d);
    for role in ["client", "publisher", "subscriber", "role_ctx"] {
        assert!(!imports(role, "worker"), "{role} imports worker");
    }
    assert!(!imports("client", "publisher") && !imports("client", "subscriber"));
    assert!(!imports("plot", "report"));
    for m in ["report", "plot"] {
        for above in ["runner", "worker", "monitor", "phases", "summarize"] {
            assert!(!imports(m, above), "{m} imports {above}");
        }
    }
}

#[test]
fn the_cycle_check_finds_cycles() {
    let g: BTreeMap<String, Vec<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
            .collect();
    assert_eq!(cycles(&g), [["a", "b", "c"]]);
    assert_eq!(
        named_modules("use crate::{a::B, b, c::{d, e}};\n/// [`crate::f`] crate::self"),
        ["a", "b", "c", "f"]
    );
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src/ lists") {
        let path = entry.expect("src/ entry").path();
        let lines = std::fs::read_to_string(&path).expect("source reads").lines().count();
        assert!(lines <= LINES_MAX, "{} has {lines} lines (at most {LINES_MAX})", path.display());
    }
}
