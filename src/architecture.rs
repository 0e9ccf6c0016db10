//! Checks on the crate's shape, kept in the test suite so that a change which breaks the
//! layering fails `cargo test` instead of waiting for a review:
//! - no circle of imports between the modules of any folder (the top level included);
//! - only `src/cli/` (and `src/main.rs`, a crate of its own) print to stdout.
//!
//! The graph is read from the source with `syn`: every `use` and every path in code
//! (`crate::…`, `super::…`, `self::…`, names brought in by `use`), so comments and doc links
//! do not count. A path through a re-export (`super::Spec`, which `spec/mod.rs` takes from
//! `model.rs`) counts as a use of the module that defines the item, so re-exports cannot hide
//! a circle. Code under `#[cfg(test)]` is left out: tests may reach fixtures anywhere, what
//! must be layered is what ships.
//!
//! Hand-written rather than `cargo-modules` or similar: those are tools to install, not checks
//! that run with `cargo test`, and the rules here are a few lines over syn's syntax tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module path from the crate root, without `crate` (the root is the empty path).
type ModPath = Vec<String>;

/// What one module (a file or an inline `mod x { … }`) declares and refers to.
#[derive(Default)]
struct Module {
    file: PathBuf,
    children: BTreeSet<String>,
    /// Items defined here (structs, functions, …), so a path that names one stops here.
    defined: BTreeSet<String>,
    /// `use` declarations: the name brought in and the path as written.
    imports: HashMap<String, Vec<String>>,
    /// `use x::*`: the paths as written.
    globs: Vec<Vec<String>>,
    /// Every path written in this module's code and `use` trees.
    refs: Vec<Vec<String>>,
    /// Printing macros called here.
    prints: Vec<String>,
}

#[derive(Default)]
struct Crate {
    modules: BTreeMap<ModPath, Module>,
    /// Files reached through `mod` declarations (test modules included).
    files: BTreeSet<PathBuf>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .map(|l| l.tokens.to_string() == "test")
                .unwrap_or(false)
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut krate = Crate::default();
        krate.load_file(Vec::new(), &src.join("lib.rs"), src.to_path_buf());
        krate
    }

    /// Reads the module in `file`; its children's files are under `dir`.
    fn load_file(&mut self, path: ModPath, file: &Path, dir: PathBuf) {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let ast =
            syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        self.files.insert(file.to_path_buf());
        self.load_items(path, file, dir, &ast.items);
    }

    fn load_items(&mut self, path: ModPath, file: &Path, dir: PathBuf, items: &[syn::Item]) {
        let mut module = Module {
            file: file.to_path_buf(),
            ..Module::default()
        };
        let mut submodules = Vec::new();
        for item in items {
            if is_cfg_test(item_attrs(item)) {
                // Still note the file, so the check below sees that it was reached.
                if let syn::Item::Mod(m) = item {
                    if m.content.is_none() {
                        let f = module_file(&dir, m);
                        self.files.insert(f.clone());
                        self.note_test_files(&f, &m.ident.to_string(), &dir);
                    }
                }
                continue;
            }
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    module.children.insert(name.clone());
                    module.defined.insert(name);
                    submodules.push(m);
                }
                syn::Item::Use(u) => collect_use(&u.tree, Vec::new(), &mut module),
                other => {
                    if let Some(name) = item_name(other) {
                        module.defined.insert(name);
                    }
                    let mut refs = Refs::default();
                    refs.visit_item(other);
                    module.refs.extend(refs.paths);
                    module.prints.extend(refs.prints);
                }
            }
        }
        self.modules.insert(path.clone(), module);
        for m in submodules {
            let name = m.ident.to_string();
            let mut child = path.clone();
            child.push(name.clone());
            match &m.content {
                Some((_, items)) => self.load_items(child, file, dir.join(&name), items),
                None => {
                    let f = module_file(&dir, m);
                    let child_dir = if f.file_name().is_some_and(|n| n == "mod.rs") {
                        f.parent().unwrap().to_path_buf()
                    } else {
                        dir.join(&name)
                    };
                    self.load_file(child, &f, child_dir);
                }
            }
        }
    }

    /// A test module's own file children (`image/tests.rs` under `#[cfg(test)] mod tests;`)
    /// are not analysed; only noted as reached.
    fn note_test_files(&mut self, file: &Path, name: &str, dir: &Path) {
        let Ok(text) = std::fs::read_to_string(file) else {
            return;
        };
        let Ok(ast) = syn::parse_file(&text) else {
            return;
        };
        let child_dir = if file.file_name().is_some_and(|n| n == "mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            dir.join(name)
        };
        for item in &ast.items {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() {
                    let f = module_file(&child_dir, m);
                    self.files.insert(f.clone());
                    self.note_test_files(&f, &m.ident.to_string(), &child_dir);
                }
            }
        }
    }

    /// The absolute path that `written`, as written in module `at`, names; `None` for
    /// paths outside the crate (std, other crates, local variables).
    fn absolute(&self, at: &ModPath, written: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > 16 || written.is_empty() {
            return None;
        }
        let first = written[0].as_str();
        let (mut base, rest): (Vec<String>, &[String]) = match first {
            "crate" => (Vec::new(), &written[1..]),
            "self" => (at.clone(), &written[1..]),
            "super" => {
                let mut base = at.clone();
                let mut rest = written;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => {
                let module = self.modules.get(at)?;
                if module.children.contains(first) || module.defined.contains(first) {
                    (at.clone(), written)
                } else if let Some(import) = module.imports.get(first) {
                    let mut full = self.absolute(at, import, depth + 1)?;
                    full.extend_from_slice(&written[1..]);
                    return Some(full);
                } else {
                    return None;
                }
            }
        };
        base.extend_from_slice(rest);
        Some(base)
    }

    /// The module that defines what `absolute` names, following `use` re-exports.
    fn defining_module(&self, absolute: &[String], depth: usize) -> ModPath {
        let mut module: ModPath = Vec::new();
        let mut i = 0;
        while i < absolute.len() {
            let mut next = module.clone();
            next.push(absolute[i].clone());
            if !self.modules.contains_key(&next) {
                break;
            }
            module = next;
            i += 1;
        }
        if i == absolute.len() || depth > 16 {
            return module;
        }
        let name = &absolute[i];
        let m = &self.modules[&module];
        if m.defined.contains(name) {
            return module;
        }
        if let Some(import) = m.imports.get(name) {
            if let Some(mut full) = self.absolute(&module, import, depth + 1) {
                full.extend_from_slice(&absolute[i + 1..]);
                return self.defining_module(&full, depth + 1);
            }
            return module;
        }
        for glob in &m.globs {
            let Some(target) = self.absolute(&module, glob, depth + 1) else {
                continue;
            };
            let Some(g) = self.modules.get(&target) else {
                continue;
            };
            if g.defined.contains(name) || g.imports.contains_key(name) {
                let mut full = target.clone();
                full.extend_from_slice(&absolute[i..]);
                return self.defining_module(&full, depth + 1);
            }
        }
        module
    }

    /// Edges between modules: from the module whose code names a path to the module that
    /// defines it, with one written path kept as the example to show.
    fn edges(&self) -> BTreeMap<(ModPath, ModPath), String> {
        let mut edges = BTreeMap::new();
        for (at, module) in &self.modules {
            let written_paths = module.refs.iter();
            for written in written_paths {
                let Some(abs) = self.absolute(at, written, 0) else {
                    continue;
                };
                let target = self.defining_module(&abs, 0);
                if &target != at {
                    edges.entry((at.clone(), target)).or_insert_with(|| {
                        format!("{} in {}", written.join("::"), module.file.display())
                    });
                }
            }
        }
        edges
    }
}

fn module_file(dir: &Path, m: &syn::ItemMod) -> PathBuf {
    if let Some(p) = path_attr(&m.attrs) {
        return dir.join(p);
    }
    let name = m.ident.to_string();
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        dir.join(name).join("mod.rs")
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

fn collect_use(tree: &syn::UseTree, mut prefix: Vec<String>, module: &mut Module) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            collect_use(&p.tree, prefix, module);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last().cloned() {
                    module.imports.insert(last, prefix.clone());
                }
            } else {
                prefix.push(name.clone());
                module.imports.insert(name, prefix.clone());
            }
            module.refs.push(prefix);
        }
        syn::UseTree::Rename(r) => {
            let name = r.ident.to_string();
            if name != "self" {
                prefix.push(name);
            }
            module.imports.insert(r.rename.to_string(), prefix.clone());
            module.refs.push(prefix);
        }
        syn::UseTree::Glob(_) => {
            module.globs.push(prefix.clone());
            module.refs.push(prefix);
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                collect_use(t, prefix.clone(), module);
            }
        }
    }
}

/// Paths and printing macros in one item, skipping nested `#[cfg(test)]` items.
#[derive(Default)]
struct Refs {
    paths: Vec<Vec<String>>,
    prints: Vec<String>,
}

const PRINTING: &[&str] = &["println", "print", "outln", "out"];

impl<'a> Visit<'a> for Refs {
    fn visit_path(&mut self, p: &'a syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    /// A `use` inside a function body.
    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        let mut local = Module::default();
        collect_use(&u.tree, Vec::new(), &mut local);
        self.paths.extend(local.refs);
    }

    fn visit_item(&mut self, i: &'a syn::Item) {
        if !is_cfg_test(item_attrs(i)) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_macro(&mut self, m: &'a syn::Macro) {
        if let Some(last) = m.path.segments.last() {
            let name = last.ident.to_string();
            if PRINTING.contains(&name.as_str()) {
                self.prints.push(format!("{name}!"));
            }
        }
        // Most macros (format!, assert!, vec!, …) take expressions separated by commas.
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(exprs) = syn::parse::Parser::parse2(parser, m.tokens.clone()) {
            for e in &exprs {
                self.visit_expr(e);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// Circles among the children of each module: an edge between two modules is counted
/// between the children of their closest common ancestor (so `spec::cache` →
/// `buildkit::cache` is `spec` → `buildkit` at the top level). A module using its own
/// ancestor, or an ancestor using its descendant, is not an edge between siblings.
fn sibling_cycles(edges: &BTreeMap<(ModPath, ModPath), String>) -> Vec<String> {
    // folder → (from child, to child) → examples
    let mut folders: BTreeMap<ModPath, BTreeMap<(String, String), Vec<String>>> = BTreeMap::new();
    for ((from, to), example) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue;
        }
        folders
            .entry(from[..common].to_vec())
            .or_default()
            .entry((from[common].clone(), to[common].clone()))
            .or_default()
            .push(format!(
                "{} -> {}: {example}",
                from.join("::"),
                to.join("::")
            ));
    }
    let mut problems = Vec::new();
    for (folder, sibling_edges) in &folders {
        for component in strongly_connected(sibling_edges.keys()) {
            let folder_name = if folder.is_empty() {
                "crate".to_string()
            } else {
                format!("crate::{}", folder.join("::"))
            };
            let mut text = format!("circle in {folder_name}: {}\n", component.join(", "));
            let shortest = shortest_circle(&component, sibling_edges.keys());
            text.push_str(&format!("  for one: {}\n", shortest.join(" -> ")));
            for ((a, b), examples) in sibling_edges {
                if component.contains(a) && component.contains(b) {
                    text.push_str(&format!("  {a} -> {b}\n"));
                    for e in examples.iter().take(3) {
                        text.push_str(&format!("      {e}\n"));
                    }
                }
            }
            problems.push(text);
        }
    }
    problems
}

/// The shortest circle through the first module of `component` (which has one), as a path
/// that ends where it starts: breadth first over the edges inside the component.
fn shortest_circle<'a>(
    component: &[String],
    edges: impl Iterator<Item = &'a (String, String)>,
) -> Vec<String> {
    let inside: Vec<&(String, String)> = edges
        .filter(|(a, b)| component.contains(a) && component.contains(b))
        .collect();
    let start = &component[0];
    let mut came_from: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start.as_str()]);
    while let Some(at) = queue.pop_front() {
        for (a, b) in &inside {
            if a != at {
                continue;
            }
            if b == start {
                let mut path = vec![start.clone()];
                let mut cur = at;
                while cur != start {
                    path.push(cur.to_string());
                    cur = came_from[cur];
                }
                path.push(start.clone());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(b.as_str()) {
                came_from.insert(b, at);
                queue.push_back(b);
            }
        }
    }
    component.to_vec()
}

/// Tarjan's algorithm; only components of more than one node are returned.
fn strongly_connected<'a>(edges: impl Iterator<Item = &'a (String, String)>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        graph.entry(a).or_default().push(b);
        graph.entry(b).or_default();
    }
    struct State<'g> {
        graph: &'g BTreeMap<&'g str, Vec<&'g str>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph: &graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn crate_modules() -> Crate {
    Crate::load(&src_dir())
}

#[test]
fn every_source_file_is_read() {
    let krate = crate_modules();
    let src = src_dir();
    let mut missed = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let path = entry.unwrap().into_path();
        if path.extension().is_some_and(|e| e == "rs")
            && path != src.join("main.rs")
            && !krate.files.contains(&path)
        {
            missed.push(path.display().to_string());
        }
    }
    assert!(
        missed.is_empty(),
        "files under src/ that the module walk did not reach: {missed:?}"
    );
    // The walk found the modules it must judge, and the edges it must see.
    for m in ["spec", "registry::transport::auth", "pipeline::schedule"] {
        let path: ModPath = m.split("::").map(String::from).collect();
        assert!(krate.modules.contains_key(&path), "module {m} not found");
    }
    let edges = krate.edges();
    let has = |from: &str, to: &str| {
        let split = |m: &str| m.split("::").map(String::from).collect::<ModPath>();
        edges.contains_key(&(split(from), split(to)))
    };
    // A `use`, a path in code, a path inside a macro's arguments, through a re-export.
    assert!(has("registry::index", "spec::platform"));
    assert!(has("pipeline::services", "pipeline::steps"));
    assert!(has("cli::build", "pipeline::run"));
    assert!(has("spec::load", "spec::tag_template"));
}

#[test]
fn no_circle_of_imports() {
    let krate = crate_modules();
    let edges = krate.edges();
    let problems = sibling_cycles(&edges);
    assert!(
        problems.is_empty(),
        "modules that import each other:\n{}",
        problems.join("\n")
    );
}

#[test]
fn only_cli_prints() {
    let krate = crate_modules();
    let cli = src_dir().join("cli");
    let mut found = Vec::new();
    for (path, module) in &krate.modules {
        if module.file.starts_with(&cli) {
            continue;
        }
        for p in &module.prints {
            found.push(format!(
                "{p} in {} (crate::{})",
                module.file.display(),
                path.join("::")
            ));
        }
    }
    found.dedup();
    assert!(
        found.is_empty(),
        "printing outside src/cli/ and src/main.rs:\n{}",
        found.join("\n")
    );
}

/// The check itself: a circle made through a re-export and one between nested folders are
/// both found, and a child using its parent is not a circle.
#[test]
fn the_circle_check_sees_through_re_exports() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a; pub mod b; pub mod c;");
    write(
        "a/mod.rs",
        "mod inner; pub use inner::Thing; pub struct Top;",
    );
    write(
        "a/inner.rs",
        "pub struct Thing(crate::b::B); pub fn f() -> super::Top { super::Top }",
    );
    write(
        "b.rs",
        "pub struct B; pub fn g() -> crate::a::Thing { todo!() }",
    );
    write(
        "c.rs",
        "/// [`crate::a::Thing`] in a doc comment is no edge\npub fn h() { println!(\"{}\", 1); }",
    );
    let krate = Crate::load(dir.path());
    let problems = sibling_cycles(&krate.edges());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("circle in crate: a, b"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("b -> a::inner: crate::a::Thing"),
        "{}",
        problems[0]
    );
    assert_eq!(krate.modules[&vec!["c".to_string()]].prints, ["println!"]);
}
