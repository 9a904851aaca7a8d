//! `cargo xtask parity`: every public capability of the Rust API (`core/src`) has its C
//! counterpart (`include/underlay.h`) and its Python one (`py/python/underlay/_underlay.pyi`),
//! or both say why not, as listed in `docs/parity.md`.
//!
//! Fails on a capability the listing lacks, an entry whose capability is gone, a C function
//! the header lacks, a Python name the stub lacks, and an entry where one binding has the
//! capability and the other says "n/a". Also run by `cargo test -p xtask` (the unit test
//! below), so `cargo test --workspace` in CI fails on a gap.
//!
//! The Rust side is read from the source, not rustdoc: `pub fn`/`pub const` inside inherent
//! `impl` blocks (`Type::item`, generic arguments kept: `LinkBuilder<Vlan>::protocol`), free
//! `pub fn`/`pub const` (`item`), methods of public traits (`Trait::item`), named fields of
//! `pub struct`s (`Type.field`) and of `pub enum` variants (`Enum::Variant.field`). Items of
//! `core/src/ipam/` and `core/src/network/` are prefixed with their module (`ipam::`,
//! `network::`); `#[doc(hidden)]` items, `#[cfg(test)]` modules and `doc_support.rs` are
//! left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

/// Runs the check; returns the exit status.
/// `--list` prints the capabilities as the listing names them instead.
pub(crate) fn run(list: bool) -> io::Result<i32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    if list {
        for item in rust_api(&root.join("core/src"))? {
            println!("{item}");
        }
        return Ok(0);
    }
    let (problems, gaps) = check(&root)?;
    for p in &problems {
        eprintln!("parity: {p}");
    }
    if gaps > 0 {
        println!("parity: {gaps} known gap(s) listed in docs/parity.md (`gap:`)");
    }
    if problems.is_empty() {
        println!("parity: docs/parity.md lists every public Rust capability with its C and Python counterparts");
        Ok(0)
    } else {
        eprintln!(
            "parity: {} problem(s); see docs/ARCHITECTURE.md (\"Parity\") for how to add an entry",
            problems.len()
        );
        Ok(1)
    }
}

/// Every problem found (empty when the listing holds) and the number of known gaps.
pub(crate) fn check(root: &Path) -> io::Result<(Vec<String>, usize)> {
    let rust = rust_api(&root.join("core/src"))?;
    let c = c_functions(&fs::read_to_string(root.join("include/underlay.h"))?);
    let py = PyStub::parse(&fs::read_to_string(
        root.join("py/python/underlay/_underlay.pyi"),
    )?);
    let listing = fs::read_to_string(root.join("docs/parity.md"))?;
    let mut problems = Vec::new();
    let mut listed = BTreeMap::new();
    let mut gaps = 0;
    // Every C and Python name some row gives (Python names without their `(param, ...)`).
    let mut named: BTreeSet<String> = BTreeSet::new();
    for (n, line) in listing.lines().enumerate() {
        let Some(row) = Row::parse(line) else {
            continue;
        };
        let at = format!("docs/parity.md:{}", n + 1);
        if listed.insert(row.rust.clone(), at.clone()).is_some() {
            problems.push(format!("{at}: `{}` is listed twice", row.rust));
        }
        if !rust.contains(&row.rust) {
            problems.push(format!(
                "{at}: `{}` is not in core's public API (renamed or removed? update the entry)",
                row.rust
            ));
        }
        match (&row.c, &row.py) {
            (Side::Na, Side::Names(_) | Side::Gap) | (Side::Names(_) | Side::Gap, Side::Na) => {
                problems.push(format!(
                    "{at}: `{}` has a counterpart in one binding only: give the other one too, or \
                 say in both why neither has it",
                    row.rust
                ))
            }
            _ => {}
        }
        gaps += usize::from(matches!(row.c, Side::Gap)) + usize::from(matches!(row.py, Side::Gap));
        for side in [&row.c, &row.py] {
            if let Side::Names(names) = side {
                for n in names {
                    named.insert(n.split('(').next().unwrap_or(n).to_string());
                }
            }
        }
        if let Side::Names(names) = &row.c {
            for f in names {
                if !c.contains(f) {
                    problems.push(format!(
                        "{at}: C function `{f}` (for `{}`) is not in include/underlay.h",
                        row.rust
                    ));
                }
            }
        }
        if let Side::Names(names) = &row.py {
            for name in names {
                if let Err(why) = py.resolve(name) {
                    problems.push(format!(
                        "{at}: Python `{name}` (for `{}`): {why} in py/python/underlay/_underlay.pyi",
                        row.rust
                    ));
                }
            }
        }
    }
    // The other way round: every C function and Python name belongs to some row, so that no
    // binding has a capability the listing (and so the other binding) lacks. List plumbing
    // (`_free`, `_list_count`, `_list_get`) and Python's classes themselves are exempt.
    for f in &c {
        let plumbing =
            f.ends_with("_free") || f.ends_with("_list_count") || f.ends_with("_list_get");
        if !plumbing && !named.contains(f.as_str()) {
            problems.push(format!(
                "C function `{f}` (include/underlay.h) is in no row of docs/parity.md: name it in \
                 the row of the capability it gives"
            ));
        }
    }
    for p in py.names() {
        if !named.contains(p.as_str()) {
            problems.push(format!(
                "Python `{p}` (py/python/underlay/_underlay.pyi) is in no row of docs/parity.md: \
                 name it in the row of the capability it gives"
            ));
        }
    }
    for item in &rust {
        if !listed.contains_key(item) {
            problems.push(format!(
                "`{item}` (core) is not in docs/parity.md: add a row with its C function and \
                 Python name (or `n/a: why` in both)"
            ));
        }
    }
    Ok((problems, gaps))
}

/// One binding's column: names, or "n/a: reason".
enum Side {
    Names(Vec<String>),
    Na,
    /// A known hole (`gap: what`).
    Gap,
}

struct Row {
    rust: String,
    c: Side,
    py: Side,
}

impl Row {
    /// A table row `| `rust` | `c`, `c2` | `Py.name` |`; None for other lines (text, the
    /// header row, the separator).
    fn parse(line: &str) -> Option<Row> {
        let cells: Vec<&str> = line
            .trim()
            .strip_prefix('|')?
            .strip_suffix('|')?
            .split('|')
            .collect();
        if cells.len() != 3 {
            return None;
        }
        let rust = cells[0]
            .trim()
            .strip_prefix('`')?
            .strip_suffix('`')?
            .to_string();
        Some(Row {
            rust,
            c: Side::parse(cells[1]),
            py: Side::parse(cells[2]),
        })
    }
}

impl Side {
    fn parse(cell: &str) -> Side {
        let cell = cell.trim();
        if cell.starts_with("n/a") {
            return Side::Na;
        }
        if cell.starts_with("gap:") {
            return Side::Gap;
        }
        let mut names = Vec::new();
        let mut rest = cell;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            names.push(after[..end].to_string());
            rest = &after[end + 1..];
        }
        Side::Names(names)
    }
}

/// The function names the header declares.
fn c_functions(header: &str) -> BTreeSet<String> {
    let flat = header.replace('\n', " ");
    let mut out = BTreeSet::new();
    let bytes = flat.as_bytes();
    let mut i = 0;
    while let Some(pos) = flat[i..].find("underlay_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if before_ok && flat[end..].trim_start().starts_with('(') {
            out.insert(flat[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// The public items of core, as keys of the listing.
fn rust_api(src: &Path) -> io::Result<BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files)?;
    files.sort();
    let mut out = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(src)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "doc_support.rs" || rel == "sys.rs" || rel.starts_with("sys/") {
            continue;
        }
        let module = match rel.split('/').next() {
            Some("ipam") if rel.contains('/') => "ipam::",
            Some("network") if rel.contains('/') => "network::",
            _ => "",
        };
        scan(&fs::read_to_string(&f)?, module, &mut out);
    }
    Ok(out)
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_rs(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// What the enclosing top-level block is.
enum Block {
    None,
    /// `impl Type` (inherent) or `pub trait Type`.
    Items(String),
    /// `impl Trait for Type`, a private item, a `mod`: nothing public inside counts.
    Skip,
    Struct(String),
    Enum(String),
}

fn scan(text: &str, module: &str, out: &mut BTreeSet<String>) {
    let mut block = Block::None;
    let mut hidden = false;
    let mut variant: Option<String> = None;
    let mut cfg_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if t.starts_with("#[cfg(test)]") {
            cfg_test = true;
            continue;
        }
        if t.starts_with("#[doc(hidden)]") {
            hidden = true;
            continue;
        }
        if t.starts_with("///") || t.starts_with("//") || t.starts_with("#[") || t.is_empty() {
            continue;
        }
        let was_hidden = std::mem::take(&mut hidden);
        if indent == 0 {
            variant = None;
            if std::mem::take(&mut cfg_test) {
                block = Block::Skip;
                if t.ends_with('}') || t.ends_with(';') {
                    block = Block::None;
                }
                continue;
            }
            if t.starts_with('}') {
                block = Block::None;
                continue;
            }
            if was_hidden {
                block = Block::Skip;
                if t.ends_with(';') {
                    block = Block::None;
                }
                continue;
            }
            if let Some(rest) = t.strip_prefix("impl") {
                block = match impl_type(rest) {
                    Some(ty) => Block::Items(format!("{module}{ty}")),
                    None => Block::Skip,
                };
            } else if let Some(rest) = t.strip_prefix("pub trait ") {
                block = Block::Items(format!("{module}{}", ident(rest)));
            } else if let Some(rest) = t.strip_prefix("pub struct ") {
                block = if t.ends_with('{') {
                    Block::Struct(format!("{module}{}", ident(rest)))
                } else {
                    Block::None
                };
            } else if let Some(rest) = t.strip_prefix("pub enum ") {
                block = Block::Enum(format!("{module}{}", ident(rest)));
            } else if let Some(name) = pub_item(t) {
                out.insert(format!("{module}{name}"));
                block = if t.ends_with('{') {
                    Block::Skip
                } else {
                    Block::None
                };
            } else if t.ends_with('{') {
                block = Block::Skip;
            }
            continue;
        }
        if was_hidden {
            continue;
        }
        match &block {
            Block::Items(ty) if indent == 4 => {
                let trait_fn = t
                    .strip_prefix("fn ")
                    .or_else(|| t.strip_prefix("async fn "));
                if let Some(name) = pub_item(t) {
                    out.insert(format!("{ty}::{name}"));
                } else if let (Some(rest), true) = (trait_fn, !ty.is_empty()) {
                    // Methods of a public trait are public (inherent impls have no bare `fn`
                    // that counts: those are private).
                    if text_is_trait(text, ty) {
                        out.insert(format!("{ty}::{}", ident(rest)));
                    }
                } else if t.contains("attach_to_netns!(") {
                    out.insert(format!("{ty}::attach_to_netns"));
                }
            }
            Block::Struct(ty) if indent == 4 => {
                if let Some(rest) = t.strip_prefix("pub ") {
                    if !rest.starts_with('(') {
                        out.insert(format!("{ty}.{}", ident(rest)));
                    }
                }
            }
            Block::Enum(ty) => {
                if indent == 4 {
                    variant = t.ends_with('{').then(|| ident(t));
                } else if indent == 8 {
                    if let Some(v) = &variant {
                        if t.contains(':') {
                            out.insert(format!("{ty}::{v}.{}", ident(t)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `ty` (module prefix included) names a `pub trait` of `text`.
fn text_is_trait(text: &str, ty: &str) -> bool {
    let bare = ty.rsplit("::").next().unwrap_or(ty);
    text.lines().any(|l| {
        l.strip_prefix("pub trait ")
            .is_some_and(|r| ident(r) == bare)
    })
}

/// The type of an inherent `impl` line (`<K: X> LinkBuilder<K> {` -> `LinkBuilder<K>`), None
/// for a trait impl.
fn impl_type(rest: &str) -> Option<String> {
    let rest = rest.trim_end_matches('{').trim();
    let rest = if rest.starts_with('<') {
        let mut depth = 0;
        let mut cut = 0;
        for (i, ch) in rest.char_indices() {
            match ch {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        cut = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest[cut..].trim()
    } else {
        rest
    };
    if rest.contains(" for ") {
        return None;
    }
    let ty = rest.split(" where").next().unwrap_or(rest).trim();
    Some(ty.replace(' ', ""))
}

/// `pub fn x`, `pub async fn x`, `pub const fn x`, `pub const X` -> `x` / `X`.
fn pub_item(t: &str) -> Option<String> {
    let rest = t.strip_prefix("pub ")?;
    let rest = rest.strip_prefix("const ").map_or(rest, |r| r);
    let rest = rest.strip_prefix("async ").map_or(rest, |r| r);
    let rest = rest.strip_prefix("unsafe ").map_or(rest, |r| r);
    if let Some(f) = rest.strip_prefix("fn ") {
        return Some(ident(f));
    }
    if t.starts_with("pub const ") {
        return Some(ident(rest));
    }
    None
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The stub's names: classes with their members (and each method's parameters), and
/// module-level functions.
struct PyStub {
    classes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    functions: BTreeMap<String, Vec<String>>,
}

impl PyStub {
    fn parse(text: &str) -> PyStub {
        let mut classes: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut functions = BTreeMap::new();
        let mut class: Option<String> = None;
        // A `def` may span lines: gather until its `)`.
        let mut pending: Option<(bool, String)> = None;
        for line in text.lines() {
            if let Some((in_class, acc)) = &mut pending {
                acc.push_str(line);
                if line.contains("->") {
                    let (in_class, acc) = (*in_class, std::mem::take(acc));
                    pending = None;
                    add_def(&acc, in_class, &class, &mut classes, &mut functions);
                }
                continue;
            }
            let t = line.trim_start();
            let indent = line.len() - t.len();
            if t.is_empty() || t.starts_with('#') || t.starts_with('@') {
                continue;
            }
            if indent == 0 {
                class = t.strip_prefix("class ").map(ident);
                if let Some(c) = &class {
                    classes.entry(c.clone()).or_default();
                } else if let Some(r) = t.strip_prefix("def ") {
                    if t.contains("->") {
                        add_def(r, false, &class, &mut classes, &mut functions);
                    } else {
                        pending = Some((false, r.to_string()));
                    }
                } else if t.contains(':') {
                    // `VERSION: str`
                    functions.insert(ident(t), Vec::new());
                }
                continue;
            }
            let Some(c) = &class else { continue };
            if let Some(r) = t.strip_prefix("def ") {
                if t.contains("->") {
                    add_def(r, true, &class, &mut classes, &mut functions);
                } else {
                    pending = Some((true, r.to_string()));
                }
            } else if indent == 4 && t.contains(':') && !t.starts_with('"') {
                // `NAME: ClassVar[int]`
                let name = ident(t);
                if !name.is_empty() {
                    classes
                        .entry(c.clone())
                        .or_default()
                        .insert(name, Vec::new());
                }
            }
        }
        PyStub { classes, functions }
    }

    /// Every public name a row must give: `Class.member` (not `_private` nor dunder) and
    /// module-level functions and constants; classes themselves are containers.
    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .functions
            .keys()
            .filter(|f| !f.starts_with('_'))
            .cloned()
            .collect();
        for (class, members) in &self.classes {
            for m in members.keys() {
                if !m.starts_with('_') {
                    out.push(format!("{class}.{m}"));
                }
            }
        }
        out
    }

    /// Checks `Class`, `Class.member`, `Class.method(param, ...)`, `function` or
    /// `function(param)`.
    fn resolve(&self, name: &str) -> Result<(), String> {
        let (path, params) = match name.split_once('(') {
            Some((p, rest)) => (
                p,
                rest.trim_end_matches(')')
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
            None => (name, Vec::new()),
        };
        let have = match path.split_once('.') {
            Some((class, member)) => {
                let members = self
                    .classes
                    .get(class)
                    .ok_or_else(|| format!("no class `{class}`"))?;
                members
                    .get(member)
                    .ok_or_else(|| format!("class `{class}` has no `{member}`"))?
            }
            None => match (self.classes.get(path), self.functions.get(path)) {
                (Some(_), _) if params.is_empty() => return Ok(()),
                // `Class(param)`: a constructor's keyword.
                (Some(members), _) => members
                    .get("__new__")
                    .ok_or_else(|| format!("class `{path}` has no constructor"))?,
                (_, Some(p)) => p,
                _ => return Err(format!("no class or function `{path}`")),
            },
        };
        for p in &params {
            if !have.contains(p) {
                return Err(format!("`{path}` has no parameter `{p}`"));
            }
        }
        Ok(())
    }
}

fn add_def(
    def: &str,
    in_class: bool,
    class: &Option<String>,
    classes: &mut BTreeMap<String, BTreeMap<String, Vec<String>>>,
    functions: &mut BTreeMap<String, Vec<String>>,
) {
    let name = ident(def);
    let inside = def
        .split_once('(')
        .map_or("", |(_, r)| r.rsplit_once(')').map_or(r, |(a, _)| a));
    let params: Vec<String> = inside
        .split(',')
        .map(|p| ident(p.trim().trim_start_matches('*')))
        .filter(|p| !p.is_empty() && p != "self" && p != "cls")
        .collect();
    match (in_class, class) {
        (true, Some(c)) => {
            classes.entry(c.clone()).or_default().insert(name, params);
        }
        _ => {
            functions.insert(name, params);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_listing_is_complete() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let (problems, _gaps) = check(root).unwrap();
        assert!(
            problems.is_empty(),
            "docs/parity.md does not hold ({} problems):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    #[test]
    fn rust_items_are_read_as_the_listing_names_them() {
        let mut out = BTreeSet::new();
        scan(
            "impl<K: Spec> LinkBuilder<K> {\n    pub fn name(self) {}\n    fn private() {}\n}\n\
             impl LinkBuilder<Vlan> {\n    pub fn protocol(self) {}\n}\n\
             impl Display for X {\n    pub fn no(&self) {}\n}\n\
             pub struct S {\n    pub a: u8,\n    b: u8,\n}\n\
             pub enum K {\n    V {\n        id: u16,\n    },\n    W,\n}\n\
             pub trait T {\n    fn m(&self);\n}\n\
             pub const fn f() {}\n#[doc(hidden)]\npub fn hidden() {}\n\
             #[cfg(test)]\nmod tests {\n    pub fn t() {}\n}\n",
            "",
            &mut out,
        );
        let got: Vec<_> = out.into_iter().collect();
        assert_eq!(
            got,
            [
                "K::V.id",
                "LinkBuilder<K>::name",
                "LinkBuilder<Vlan>::protocol",
                "S.a",
                "T::m",
                "f"
            ]
        );
    }

    #[test]
    fn python_names_resolve_with_parameters() {
        let py = PyStub::parse(
            "class Vlan:\n    X: ClassVar[int]\n    @staticmethod\n    def create(\n        handle: H,\n        *,\n        protocol: str = \"\",\n    ) -> Link: ...\n    @property\n    def name(self) -> str: ...\n\ndef render_vlan(format: str) -> list: ...\n",
        );
        assert!(py.resolve("Vlan.create(protocol)").is_ok());
        assert!(py.resolve("Vlan.create(flags)").is_err());
        assert!(py.resolve("Vlan.name").is_ok());
        assert!(py.resolve("Vlan.X").is_ok());
        assert!(py.resolve("Vlan.nope").is_err());
        assert!(py.resolve("render_vlan(format)").is_ok());
        assert!(py.resolve("Vlan").is_ok());
    }
}
