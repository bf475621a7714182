//! The declarative-file parser, the keyring's ciphertext and key parsing,
//! the duration parser and the JSONPath parser and evaluator never panic on
//! arbitrary input and keep the same properties the fuzz targets in `fuzz/`
//! assert (`decl_file`, `keyring_ciphertext`, `duration`, and the path half
//! of `json_mask`): over the seed corpus files, then ~20,000 deterministic
//! pseudo-random and mutated inputs per decoder (an xorshift generator, so a
//! failure reproduces), so CI keeps the targets honest without running a
//! fuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gatehouse_core::decl::{self, SecretSource};
use gatehouse_core::duration::{format_duration, parse_duration};
use gatehouse_core::keyring::Keyring;
use gatehouse_core::policy::json_path::{JsonPath, MAX_PATH_LEN, MAX_SEGMENTS};
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// The committed seeds of a fuzz target (`fuzz/corpus/<target>/seed-*`).
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "too few seeds in {}", dir.display());
    out
}

/// Byte-level edits: overwrite with a byte from `alphabet` (which includes
/// multi-byte UTF-8 pieces), delete, insert, duplicate or truncate.
fn mutate(rng: &mut Rng, seed: &[u8], alphabet: &[&[u8]]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(m.len() + 1);
        match rng.below(5) {
            0 if at < m.len() => m[at] = rng.pick(alphabet)[0],
            1 if at < m.len() => {
                m.remove(at);
            }
            2 if at < m.len() => {
                let end = (at + rng.below(16)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            3 => m.truncate(at),
            _ => {
                let piece = rng.pick(alphabet);
                m.splice(at..at, piece.iter().copied());
            }
        }
    }
    m
}

fn random(rng: &mut Rng, max: usize, alphabet: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(max) {
        out.extend_from_slice(rng.pick(alphabet));
    }
    out
}

fn ascii(chars: &'static [u8]) -> Vec<&'static [u8]> {
    chars.chunks(1).collect()
}

// === decl_file ===

struct Fixed;

impl SecretSource for Fixed {
    fn env(&self, name: &str) -> Option<String> {
        (name != "UNSET").then(|| "pw-env".into())
    }
    fn file(&self, _: &Path) -> std::io::Result<String> {
        Ok("pw-file\n".into())
    }
}

/// What `fuzz/fuzz_targets/decl_file.rs` asserts.
fn check_decl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match decl::parse(text, &Fixed) {
        Ok(d) => {
            let mut names: Vec<&str> = Vec::new();
            for c in &d.connections {
                assert!(c.spec.validate().is_ok(), "{:?}", c.spec);
                assert!(!names.contains(&c.spec.name.as_str()), "{text}");
                names.push(&c.spec.name);
                assert!((1..=lines).contains(&c.line));
                if let Some(p) = &c.password {
                    assert!(["pw-env", "pw-file"].contains(&p.expose()));
                }
            }
        }
        Err(e) => assert!((1..=lines + 1).contains(&e.line), "{e} in {text:?}"),
    }
}

const TOML_ALPHABET: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\"",
    b"'",
    b".",
    b",",
    b" ",
    b"\n",
    b"\r\n",
    b"#",
    b"\\",
    b"a",
    b"e",
    b"n",
    b"s",
    b"0",
    b"9",
    b":",
    b"/",
    b"@",
    b"_",
    b"-",
    b"\t",
    "é".as_bytes(),
    "☕".as_bytes(),
    "\u{10348}".as_bytes(),
    b"\xff",
    b"[[connections]]\n",
    b"name = ",
    b"kind = \"mysql\"",
    b"url = \"postgres://h/db\"",
    b"password = { env = \"UNSET\" }",
    b"password = { file = \"p\" }",
    b"groups = [\"g\"]",
    b"statement_timeout = \"1h\"",
    b"max_session = ",
    b"row_limit = 1",
];

#[test]
fn declarative_files_keep_their_properties() {
    let seeds = seeds("decl_file");
    for (path, s) in &seeds {
        check_decl(s);
        let text = std::str::from_utf8(s).unwrap();
        if path.ends_with("seed-documented") || path.ends_with("seed-two") {
            assert!(decl::parse(text, &Fixed).is_ok(), "{}", path.display());
        }
    }
    let mut rng = Rng(7);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng, 64, TOML_ALPHABET)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, TOML_ALPHABET)
        };
        check_decl(&input);
    }
}

#[test]
fn declarative_files_have_a_size_limit_and_linear_line_numbers() {
    // Over the limit: refused before parsing (line 0: not a place in the file).
    let big = " ".repeat(decl::MAX_FILE + 1);
    let e = decl::parse(&big, &Fixed).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.message.contains("limit"), "{e}");
    assert!(decl::parse(&" ".repeat(decl::MAX_FILE), &Fixed).is_ok());

    // Many connections: each one's line is right, and the duplicate is found
    // (line numbers used to rescan the file per connection, which made a
    // 1.5 MB file take 14 s).
    let one = |i: usize| {
        format!(
            "[[connections]]\nname = \"c{i}\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n"
        )
    };
    let text: String = (0..2_000).map(one).collect();
    let d = decl::parse(&text, &Fixed).unwrap();
    assert_eq!(d.connections.len(), 2_000);
    for (i, c) in d.connections.iter().enumerate() {
        assert_eq!(c.line, 4 * i + 1);
    }
    let e = decl::parse(&format!("{text}{}", one(1_234)), &Fixed).unwrap_err();
    assert_eq!(e.line, 4 * 2_000 + 2, "{e}");
    assert!(e.message.contains("declared twice"), "{e}");
}

// === keyring_ciphertext ===

/// The fuzz target's fixed key (32 zero bytes); the seed ciphertexts were
/// sealed with it for context `connection:shop`.
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const CONTEXT: &str = "connection:shop";

/// What `fuzz/fuzz_targets/keyring_ciphertext.rs` asserts.
fn check_keyring(ring: &Keyring, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plain) = ring.decrypt(text, CONTEXT) {
        assert!(plain.is_empty() || plain.as_slice() == b"s3cret", "{text}");
    }
    assert!(ring.decrypt(text, "connection:other").is_err());
    let _ = ring.is_stale(text);
    if let Ok(k) = Keyring::parse(text) {
        let ids = k.key_ids();
        assert!(!ids.is_empty());
        assert!(
            ids.iter()
                .all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let c = k.encrypt(b"x", "ctx");
        assert!(c.starts_with(&format!("gh1.{}.", k.primary_id())));
        assert_eq!(
            k.decrypt(&c, "ctx").ok().as_deref().map(Vec::as_slice),
            Some(&b"x"[..])
        );
    }
}

const B64_ALPHABET: &[&[u8]] = &[
    b"A",
    b"Q",
    b"g",
    b"w",
    b"z",
    b"0",
    b"9",
    b"+",
    b"/",
    b"=",
    b".",
    b",",
    b" ",
    b"\n",
    b"#",
    b"-",
    b"_",
    b"gh1.",
    b"66687aadf862.",
    "é".as_bytes(),
    b"\xff",
];

#[test]
fn ciphertexts_and_keys_keep_their_properties() {
    let ring = Keyring::parse(KEY).unwrap();
    assert_eq!(ring.primary_id(), "66687aadf862");
    let seeds = seeds("keyring_ciphertext");
    for (path, s) in &seeds {
        check_keyring(&ring, s);
        let text = std::str::from_utf8(s).unwrap();
        let opened = ring.decrypt(text, CONTEXT);
        if path.ends_with("seed-ct") {
            assert_eq!(opened.unwrap().as_slice(), b"s3cret");
        } else if path.ends_with("seed-ct-empty") {
            assert!(opened.unwrap().is_empty());
        } else {
            assert!(opened.is_err(), "{}", path.display());
        }
    }
    let mut rng = Rng(99);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng, 80, B64_ALPHABET)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, B64_ALPHABET)
        };
        check_keyring(&ring, &input);
    }
}

// === duration ===

/// What `fuzz/fuzz_targets/duration.rs` asserts.
fn check_duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert_eq!(d.subsec_nanos() % 1_000_000, 0);
        assert!(d.as_millis() <= u128::from(u64::MAX));
        let f = format_duration(d);
        assert_eq!(parse_duration(&f), Ok(d), "{text:?} -> {f:?}");
    }
}

#[test]
fn durations_keep_their_properties() {
    let seeds = seeds("duration");
    for (path, s) in &seeds {
        check_duration(s);
        let ok = parse_duration(std::str::from_utf8(s).unwrap()).is_ok();
        assert_eq!(ok, !path.ends_with("seed-overflow"), "{}", path.display());
    }
    let alphabet = ascii(b"0123456789smhdw  \t.-+x");
    let mut with_unicode = alphabet.clone();
    with_unicode.extend(["µ".as_bytes(), "\u{a0}".as_bytes(), "٣".as_bytes()]);
    let mut rng = Rng(3);
    for i in 0..20_000 {
        let input = if i % 2 == 0 {
            random(&mut rng, 24, &alphabet)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, &with_unicode)
        };
        check_duration(&input);
    }
}

// === json_path (the path half of fuzz/fuzz_targets/json_mask.rs) ===

/// Every node of a document in document order (pre-order, members in the
/// map's iteration order, as `JsonPath` walks it), with its RFC 6901 pointer
/// and the end of its subtree (nodes `i..end` are the node and everything
/// below it).
struct Flat<'a> {
    nodes: Vec<FlatNode<'a>>,
    index: HashMap<*const Value, usize>,
}

struct FlatNode<'a> {
    value: &'a Value,
    pointer: String,
    end: usize,
    /// `(member name or None, position among the parent's children, child)`.
    children: Vec<(Option<&'a str>, usize, usize)>,
}

impl<'a> Flat<'a> {
    fn of(doc: &'a Value) -> Flat<'a> {
        fn walk<'a>(v: &'a Value, pointer: String, out: &mut Vec<FlatNode<'a>>) -> usize {
            let me = out.len();
            out.push(FlatNode {
                value: v,
                pointer: pointer.clone(),
                end: 0,
                children: Vec::new(),
            });
            let kids: Vec<(Option<&'a str>, String, &'a Value)> = match v {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, c)| (Some(k.as_str()), k.replace('~', "~0").replace('/', "~1"), c))
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (None, i.to_string(), c))
                    .collect(),
                _ => Vec::new(),
            };
            for (pos, (name, token, child)) in kids.into_iter().enumerate() {
                let at = walk(child, format!("{pointer}/{token}"), out);
                out[me].children.push((name, pos, at));
            }
            out[me].end = out.len();
            me
        }
        let mut nodes = Vec::new();
        walk(doc, String::new(), &mut nodes);
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (std::ptr::from_ref(n.value), i))
            .collect();
        Flat { nodes, index }
    }
}

/// A path segment, generated, rendered as text and evaluated by the naive
/// reference below.
#[derive(Clone, Debug)]
enum Sel {
    Name(String),
    /// `(negative, digits)`: the index as written.
    Index(bool, String),
    Wild,
}

#[derive(Clone, Debug)]
struct Seg {
    descendant: bool,
    sel: Sel,
}

fn dotted(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn quote(rng: &mut Rng, name: &str) -> String {
    let q = if rng.below(2) == 0 { '\'' } else { '"' };
    let mut s = format!("[{q}");
    for c in name.chars() {
        if c == q || c == '\\' || ((c == '\'' || c == '"') && rng.below(2) == 0) {
            s.push('\\');
        }
        s.push(c);
    }
    s.push(q);
    s.push(']');
    s
}

fn render(rng: &mut Rng, segs: &[Seg]) -> String {
    let mut s = String::from("$");
    for seg in segs {
        if seg.descendant {
            s.push_str("..");
        }
        let bracket = rng.below(2) == 0;
        match &seg.sel {
            Sel::Name(n) if dotted(n) && !bracket => {
                if !seg.descendant {
                    s.push('.');
                }
                s.push_str(n);
            }
            Sel::Name(n) => s.push_str(&quote(rng, n)),
            Sel::Index(neg, digits) => {
                s.push('[');
                if *neg {
                    s.push('-');
                }
                s.push_str(digits);
                s.push(']');
            }
            Sel::Wild if bracket => s.push_str("[*]"),
            Sel::Wild => s.push_str(if seg.descendant { "*" } else { ".*" }),
        }
    }
    s
}

/// The nodes a path selects, the naive way: each segment applied to every
/// node of the set (and, for `..`, to every node below), the result
/// deduplicated and sorted in document order.
fn reference(flat: &Flat<'_>, segs: &[Seg]) -> Vec<usize> {
    let mut set = vec![0];
    for seg in segs {
        let mut next = BTreeSet::new();
        for &n in &set {
            let starts = if seg.descendant {
                n..flat.nodes[n].end
            } else {
                n..n + 1
            };
            for s in starts {
                let node = &flat.nodes[s];
                let len = node.children.len();
                for &(name, pos, child) in &node.children {
                    let hit = match (&seg.sel, name) {
                        (Sel::Wild, _) => true,
                        (Sel::Name(want), Some(got)) => want == got,
                        (Sel::Index(neg, digits), None) => {
                            let n: u128 = digits.parse().unwrap();
                            if *neg {
                                usize::try_from(n).is_ok_and(|n| n <= len && pos == len - n)
                            } else {
                                n == pos as u128
                            }
                        }
                        _ => false,
                    };
                    if hit {
                        next.insert(child);
                    }
                }
            }
        }
        set = next.into_iter().collect();
    }
    set
}

const PATH_NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "a-b_1",
    "0",
    "é",
    "ǅ",
    "٣",
    "a b",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "",
    "~",
    "/",
    "~1",
    "a.b",
    "[*]",
    "☕",
    "\u{10348}",
    "e\u{301}",
    "\u{202e}x",
    "\u{0}",
    "zz",
];

fn random_doc(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth == 0 || rng.below(3) == 0;
    if leaf {
        return match rng.below(6) {
            0 => Value::Null,
            1 => json!(true),
            2 => json!(rng.below(100)),
            3 => json!("ann@example.com"),
            4 => json!(""),
            _ => json!("x"),
        };
    }
    if rng.below(2) == 0 {
        Value::Array(
            (0..rng.below(5))
                .map(|_| random_doc(rng, depth - 1))
                .collect(),
        )
    } else {
        let mut m = Map::new();
        for _ in 0..rng.below(5) {
            let k = rng.pick(&PATH_NAMES[..PATH_NAMES.len() - 1]);
            m.insert(k.to_string(), random_doc(rng, depth - 1));
        }
        Value::Object(m)
    }
}

fn random_segs(rng: &mut Rng, max: usize) -> Vec<Seg> {
    (0..rng.below(max + 1))
        .map(|_| Seg {
            descendant: rng.below(3) == 0,
            sel: match rng.below(4) {
                0 => Sel::Wild,
                1 => {
                    let neg = rng.below(3) == 0;
                    let digits = match rng.below(8) {
                        0 => "18446744073709551615".to_string(),
                        1 => format!("00{}", 1 + rng.below(3)),
                        _ => (rng.below(5) + usize::from(neg)).to_string(),
                    };
                    Sel::Index(neg, digits)
                }
                _ => Sel::Name(rng.pick(PATH_NAMES).to_string()),
            },
        })
        .collect()
}

/// Whether the error is one of the parser's: it names the path (quoted) and
/// what is accepted, except the length error, which does not repeat the text.
fn check_path_error(text: &str, e: &str) {
    assert!(e.starts_with("json path "), "{text:?}: {e}");
    if text.len() > MAX_PATH_LEN {
        assert!(e.contains("over the limit of 512 bytes"), "{e}");
        assert!(e.len() < 200, "{e}");
    } else {
        assert!(e.contains(&format!("{text:?}")), "{text:?}: {e}");
        assert!(e.contains("use $.name, $['name']"), "{text:?}: {e}");
    }
}

/// What the fuzz target asserts of `parse`, `select` and `pointers`, plus
/// document order: the selected nodes are distinct, in document order, and
/// each pointer leads back to its node.
fn check_path(text: &str, docs: &[Value]) -> Option<JsonPath> {
    let path = match JsonPath::parse(text) {
        Ok(p) => p,
        Err(e) => {
            check_path_error(text, &e);
            assert_eq!(text.parse::<JsonPath>(), Err(e));
            return None;
        }
    };
    assert!(
        text.len() <= MAX_PATH_LEN && text.starts_with('$'),
        "{text:?}"
    );
    assert_eq!(path.as_str(), text);
    assert_eq!(path.to_string(), text);
    assert_eq!(text.parse::<JsonPath>().as_ref(), Ok(&path));
    for doc in docs {
        let flat = Flat::of(doc);
        let selected = path.select(doc);
        let pointers = path.pointers(doc);
        assert_eq!(selected.len(), pointers.len(), "{text}");
        let mut last = None;
        for (node, ptr) in selected.iter().zip(&pointers) {
            let at = flat.index[&std::ptr::from_ref(*node)];
            assert!(
                last.is_none_or(|l| l < at),
                "{text}: {ptr} out of order in {doc}"
            );
            last = Some(at);
            assert_eq!(&flat.nodes[at].pointer, ptr, "{text}");
            let back = doc.pointer(ptr);
            assert!(
                back.is_some_and(|b| std::ptr::eq(b, *node)),
                "{text}: {ptr} leads elsewhere"
            );
        }
    }
    Some(path)
}

/// Checks the path against the reference; returns how many of the
/// documents it selects something in.
fn check_against_reference(text: &str, segs: &[Seg], docs: &[Value]) -> usize {
    let path = check_path(text, docs);
    if text.len() > MAX_PATH_LEN {
        assert!(path.is_none());
        return 0;
    }
    if segs.len() > MAX_SEGMENTS {
        let e = JsonPath::parse(text).unwrap_err();
        assert!(e.contains("more than 32 segments"), "{text:?}: {e}");
        return 0;
    }
    let path = path.unwrap_or_else(|| panic!("{text:?} from {segs:?} does not parse"));
    let mut hits = 0;
    for doc in docs {
        let flat = Flat::of(doc);
        let want: Vec<&str> = reference(&flat, segs)
            .into_iter()
            .map(|i| flat.nodes[i].pointer.as_str())
            .collect();
        assert_eq!(path.pointers(doc), want, "{text} on {doc}");
        hits += usize::from(!want.is_empty());
    }
    hits
}

/// A document of `depth` nested `{"a": …, "x": [1, [2]]}`.
fn nested(depth: usize) -> Value {
    let mut d = json!("leaf");
    for _ in 0..depth {
        d = json!({"a": d, "x": [1, [2]]});
    }
    d
}

#[test]
fn json_paths_agree_with_a_naive_evaluator() {
    let mut rng = Rng(0x5eed_0a7b);
    let fixed = vec![
        json!(null),
        json!([]),
        json!({"a": [{"b": 1}, {"a": {"b": [2, 3]}}], "é": {"": [null]}, "~/": {"~1": 4}}),
        nested(6),
    ];
    let mut docs: Vec<Value> = (0..8).map(|_| random_doc(&mut rng, 5)).collect();
    docs.extend(fixed);
    let mut hits = 0;
    for _ in 0..6_000 {
        if rng.below(50) == 0 {
            let i = rng.below(docs.len());
            docs[i] = random_doc(&mut rng, 5);
        }
        let segs = random_segs(&mut rng, 6);
        let text = render(&mut rng, &segs);
        let from = rng.below(docs.len() - 2);
        hits += check_against_reference(&text, &segs, &docs[from..from + 3]);
    }
    // Not only empty selections (3,308 with this seed).
    assert!(hits > 2_000, "{hits}");
    // The segment limit, with every kind of segment.
    for n in [
        MAX_SEGMENTS - 1,
        MAX_SEGMENTS,
        MAX_SEGMENTS + 1,
        3 * MAX_SEGMENTS,
    ] {
        for _ in 0..20 {
            let segs: Vec<Seg> = (0..n)
                .map(|_| {
                    random_segs(&mut rng, 1).pop().unwrap_or(Seg {
                        descendant: true,
                        sel: Sel::Wild,
                    })
                })
                .collect();
            let text = render(&mut rng, &segs);
            check_against_reference(&text, &segs, &docs[..3]);
        }
    }
}

/// Pieces for bracket soup: the syntax, quotes and escapes, slices, filters
/// and unions, whitespace and unicode (combining marks, an RTL override,
/// NUL, a BOM, a no-break space), and invalid UTF-8.
const PATH_ALPHABET: &[&[u8]] = &[
    b"$",
    b".",
    b"..",
    b"[",
    b"]",
    b"'",
    b"\"",
    b"\\",
    b"*",
    b"-",
    b"0",
    b"9",
    b"a",
    b"_",
    b"?",
    b":",
    b",",
    b"@",
    b"(",
    b" ",
    b"\t",
    b"\0",
    b"['a']",
    b"[*]",
    b"..a",
    b"[-1]",
    b"[0]",
    b".*",
    "é".as_bytes(),
    "☕".as_bytes(),
    "\u{10348}".as_bytes(),
    "\u{301}".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{a0}".as_bytes(),
    "٣".as_bytes(),
    b"\xff",
    b"\xc3",
];

#[test]
fn json_paths_survive_bracket_soup_and_mutations() {
    let mut rng = Rng(0x0bad_5eed);
    let docs: Vec<Value> = (0..6).map(|_| random_doc(&mut rng, 4)).collect();
    let valid: Vec<String> = (0..64)
        .map(|_| {
            let segs = random_segs(&mut rng, 5);
            render(&mut rng, &segs)
        })
        .collect();
    for i in 0..20_000 {
        let mut input = match i % 3 {
            0 => random(&mut rng, 24, PATH_ALPHABET),
            1 => {
                let seed = valid[rng.below(valid.len())].as_bytes();
                mutate(&mut rng, seed, PATH_ALPHABET)
            }
            _ => random(&mut rng, 16, PATH_ALPHABET),
        };
        if i % 3 == 2 {
            input.insert(0, b'$');
        }
        // Like the target: text that is not UTF-8 never reaches the parser.
        let Ok(text) = std::str::from_utf8(&input) else {
            continue;
        };
        let from = rng.below(docs.len() - 1);
        check_path(text, &docs[from..from + 2]);
    }
}

#[test]
fn json_paths_keep_their_limits() {
    let docs = [nested(100), json!({"a": "x"}), json!([[[]]])];
    let over = |text: &str| {
        assert!(text.len() > MAX_PATH_LEN);
        let e = JsonPath::parse(text).unwrap_err();
        check_path_error(text, &e);
    };
    // Over MAX_PATH_LEN: refused on the length alone, however it would parse.
    over(&format!("${}", ".a".repeat(MAX_PATH_LEN / 2)));
    over(&format!("$['{}']", "x".repeat(MAX_PATH_LEN - 4)));
    over(&format!("$['{}']", "é".repeat(MAX_PATH_LEN / 2)));
    over(&"[".repeat(1 << 20));
    over(&format!("${}", "..".repeat(1 << 16)));
    over(&format!("$.{}", "☕".repeat(200)));
    // The longest path accepted, with names of one to four bytes a character.
    for c in ["x", "é", "☕", "\u{10348}"] {
        let n = (MAX_PATH_LEN - 5) / c.len();
        let mut text = format!("$['{}", c.repeat(n));
        text.push_str(&"x".repeat(MAX_PATH_LEN - 2 - text.len()));
        text.push_str("']");
        assert_eq!(text.len(), MAX_PATH_LEN);
        assert!(check_path(&text, &docs).is_some(), "{text}");
        text.insert(3, 'x');
        over(&text);
    }

    // Deep `..` chains: up to MAX_SEGMENTS, each `..` segment linear in the
    // document (a 100-deep document: without deduplication this would not
    // finish).
    let chains = [
        ("..a", Sel::Name("a".into())),
        ("..['a']", Sel::Name("a".into())),
        ("..x", Sel::Name("x".into())),
        ("..*", Sel::Wild),
        ("..[*]", Sel::Wild),
        ("..[0]", Sel::Index(false, "0".into())),
        ("..[-1]", Sel::Index(true, "1".into())),
    ];
    for (seg, sel) in chains {
        let ok = format!("${}", seg.repeat(MAX_SEGMENTS));
        let path = check_path(&ok, &docs).unwrap_or_else(|| panic!("{ok}"));
        let got = path.select(&docs[0]).len();
        match seg {
            "..a" | "..['a']" => assert_eq!(got, 100 - (MAX_SEGMENTS - 1), "{ok}"),
            "..*" | "..[*]" => assert!(got > 0, "{ok}"),
            _ => {}
        }
        let segs = vec![
            Seg {
                descendant: true,
                sel,
            };
            MAX_SEGMENTS
        ];
        check_against_reference(&ok, &segs, &[nested(40), json!([[[[[[1]]]]], {"a": [[]]}])]);
        let e = JsonPath::parse(&format!("${}", seg.repeat(MAX_SEGMENTS + 1))).unwrap_err();
        assert!(e.contains("more than 32 segments"), "{e}");
    }
    let e = JsonPath::parse(&format!("${}", ".".repeat(200))).unwrap_err();
    assert!(e.contains("'..' must be followed"), "{e}");

    // Bracket soup at the edges.
    let cases: &[(&str, &str)] = &[
        ("$[", "unclosed '['"),
        ("$[[", "quoted name"),
        ("$]", "unexpected ']'"),
        ("$[]]", "empty brackets"),
        ("$['a']]", "unexpected ']'"),
        ("$[*", "unclosed '['"),
        ("$[**]", "expected ']'"),
        ("$['", "unclosed quote"),
        ("$['\\", "unclosed quote"),
        ("$['\\']", "unclosed quote"),
        ("$[\"a']", "unclosed quote"),
        ("$['a\\é']", "unknown escape"),
        ("$[0][", "unclosed '['"),
        ("$[-", "'-' must be followed by digits"),
        ("$[--1]", "'-' must be followed by digits"),
        ("$[1-]", "expected ']'"),
        ("$[18446744073709551616]", "index too large"),
        ("$[-18446744073709551616]", "index too large"),
        ("$[0x1]", "expected ']'"),
        ("$[1e3]", "expected ']'"),
        ("$[?@]", "filters"),
        ("$[:]", "slices"),
        ("$[0:]", "slices"),
        ("$[*,*]", "unions"),
        ("$['a'\t]", "whitespace"),
        ("$..", "'..' must be followed"),
        ("$..]", "'..' must be followed"),
        ("$.☕", "needs brackets"),
        ("$..☕", "needs brackets"),
        ("$.a\u{301}", r"unexpected '\u{301}'"),
        ("$.\u{a0}", "whitespace"),
        ("$\u{feff}", r"unexpected '\u{feff}'"),
        ("$.\u{202e}", "needs brackets"),
        ("$.\0", "needs brackets"),
    ];
    for (text, want) in cases {
        let e = JsonPath::parse(text).unwrap_err();
        check_path_error(text, &e);
        assert!(e.contains(want), "{text:?}: {e}");
    }
    // Odd but valid: escapes, unicode, leading zeros, the largest index.
    let doc = json!({"é": {"ǅ٣": [1, 2]}, "\u{0}": 1, "'\"\\": 2, "a\u{301}": 3});
    let cases: &[(&str, &[&str])] = &[
        ("$.é.ǅ٣[0001]", &["/é/ǅ٣/1"]),
        ("$..ǅ٣[-2]", &["/é/ǅ٣/0"]),
        ("$['\u{0}']", &["/\u{0}"]),
        ("$['\\'\"\\\\']", &["/'\"\\"]),
        ("$[\"'\\\"\\\\\"]", &["/'\"\\"]),
        ("$['a\u{301}']", &["/a\u{301}"]),
        ("$..[18446744073709551615]", &[]),
        ("$..[-18446744073709551615]", &[]),
    ];
    for (text, want) in cases {
        let path = check_path(text, std::slice::from_ref(&doc)).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(path.pointers(&doc), *want, "{text}");
    }
}
