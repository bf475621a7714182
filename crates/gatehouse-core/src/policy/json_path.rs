//! A JSONPath subset for masks and rules: `$`, `.name`, `['name']`, `[N]`, `[*]`, `.*` and `..name`.
//!
//! Syntax (the path starts with `$`; whitespace only inside quoted names):
//!
//! - `$`: the root;
//! - `.name`: a member (names of letters, digits, `_` and `-`; others need
//!   brackets); `['name']` or `["name"]`: a member with any name (`\'`, `\"`
//!   and `\\` escape a quote and a backslash);
//! - `[N]`: an array element, `[-N]` counted from the end (`[-1]`: the last);
//! - `[*]` and `.*`: every element of an array, every member value of an
//!   object;
//! - `..` followed by any of `name`, `['name']`, `[N]`, `*` or `[*]`: that
//!   selector applied to the current node and to every node below it, at any
//!   depth (through arrays as through objects).
//!
//! Filters, slices and unions are refused with an error that says so.
//!
//! Evaluation keeps a set of nodes, deduplicated and in document order after
//! every segment; a `..` segment starts only from the nodes that no other
//! node of the set contains, so every `..` segment visits each node of the
//! document at most once and `$..a..b..c` stays linear in the document. The
//! walk uses an explicit stack, not recursion on the document.

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use serde_json::Value;

/// The longest path text accepted, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// The most segments (after `$`) a path may have.
pub const MAX_SEGMENTS: usize = 32;

const HINT: &str = "use $.name, $['name'], $[0], $[*], $.* or $..name";

/// A parsed path; compares equal when the text is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    /// `..`: the selector applies to the node and all its descendants.
    descendant: bool,
    selector: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Index(Index),
    Wildcard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    FromStart(usize),
    /// `FromEnd(1)` is the last element; never 0.
    FromEnd(usize),
}

impl Index {
    fn resolve(self, len: usize) -> Option<usize> {
        match self {
            Index::FromStart(i) => (i < len).then_some(i),
            Index::FromEnd(n) => len.checked_sub(n),
        }
    }
}

impl JsonPath {
    /// Parses a path; the error says what is wrong, where, and what is
    /// accepted.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        if text.len() > MAX_PATH_LEN {
            return Err(format!(
                "json path is not valid: it is {} bytes long, over the limit of {MAX_PATH_LEN} bytes",
                text.len()
            ));
        }
        let segments = Parser { text, pos: 0 }.path()?;
        Ok(JsonPath {
            segments,
            text: text.to_owned(),
        })
    }

    /// The text the path was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every node the path selects (document order; a node selected twice
    /// appears once).
    pub fn select<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        self.eval(doc).into_iter().map(|l| l.value).collect()
    }

    /// The JSON Pointers (RFC 6901, e.g. `/customers/0/email`; `~` is
    /// written `~0` and `/` is written `~1`) of the selected nodes, in the
    /// order of [`JsonPath::select`]. The root is the empty pointer.
    pub fn pointers(&self, doc: &Value) -> Vec<String> {
        self.eval(doc).iter().map(|l| pointer(l)).collect()
    }

    fn eval<'a>(&self, doc: &'a Value) -> Vec<Rc<Loc<'a>>> {
        let mut set = vec![Rc::new(Loc {
            parent: None,
            step: Step::Root,
            value: doc,
            depth: 0,
        })];
        for seg in &self.segments {
            if set.is_empty() {
                break;
            }
            let mut next = Vec::new();
            if seg.descendant {
                // `set` is in document order, so the nodes inside a node
                // follow it directly: skip them, its walk covers them.
                let mut last: Option<&Rc<Loc<'a>>> = None;
                for node in &set {
                    if last.is_some_and(|r| contains(r, node)) {
                        continue;
                    }
                    descend(node, &seg.selector, &mut next);
                    last = Some(node);
                }
            } else {
                for node in &set {
                    children_matching(node, &seg.selector, &mut next);
                }
            }
            next.sort_by(|a, b| doc_order(a, b));
            next.dedup_by(|a, b| std::ptr::eq(a.value, b.value));
            set = next;
        }
        set
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for JsonPath {
    type Err = String;
    fn from_str(s: &str) -> Result<JsonPath, String> {
        JsonPath::parse(s)
    }
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, at: usize, why: &str) -> Result<T, String> {
        Err(format!(
            "json path {:?} is not valid: {why} at byte {at}; {HINT}",
            self.text
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn char_at(&self, at: usize) -> char {
        self.text
            .get(at..)
            .and_then(|s| s.chars().next())
            .unwrap_or(' ')
    }

    fn path(&mut self) -> Result<Vec<Segment>, String> {
        if self.peek() != Some(b'$') {
            return self.fail(0, "a path must start with '$'");
        }
        self.pos = 1;
        let mut segments = Vec::new();
        while let Some(c) = self.peek() {
            let start = self.pos;
            let seg = match c {
                b'.' if self.text.as_bytes().get(start + 1) == Some(&b'.') => {
                    self.pos += 2;
                    let selector = match self.peek() {
                        Some(b'[') => self.bracket()?,
                        Some(b'*') => {
                            self.pos += 1;
                            Selector::Wildcard
                        }
                        None => {
                            return self.fail(start, "'..' must be followed by a name, * or [...]");
                        }
                        Some(_) => self.name("'..' must be followed by a name, * or [...]")?,
                    };
                    Segment {
                        descendant: true,
                        selector,
                    }
                }
                b'.' => {
                    self.pos += 1;
                    let selector = match self.peek() {
                        Some(b'*') => {
                            self.pos += 1;
                            Selector::Wildcard
                        }
                        Some(b'[') => {
                            return self.fail(
                                start,
                                "'.[' is not valid: write the brackets without the dot, as in $.a['b']",
                            );
                        }
                        None => return self.fail(start, "'.' must be followed by a name or *"),
                        Some(_) => self.name("'.' must be followed by a name or *")?,
                    };
                    Segment {
                        descendant: false,
                        selector,
                    }
                }
                b'[' => Segment {
                    descendant: false,
                    selector: self.bracket()?,
                },
                c if c.is_ascii_whitespace() => {
                    return self.fail(start, "whitespace is not allowed outside quoted names");
                }
                _ => {
                    let why = format!(
                        "unexpected {:?}: a segment starts with '.', '..' or '['",
                        self.char_at(start)
                    );
                    return self.fail(start, &why);
                }
            };
            segments.push(seg);
            if segments.len() > MAX_SEGMENTS {
                let why = format!("more than {MAX_SEGMENTS} segments");
                return self.fail(start, &why);
            }
        }
        Ok(segments)
    }

    /// A dotted name (letters, digits, `_`, `-`) at `pos`.
    fn name(&mut self, empty: &str) -> Result<Selector, String> {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        let len: usize = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .map(char::len_utf8)
            .sum();
        if len == 0 {
            let c = self.char_at(self.pos);
            let why = if c.is_whitespace() {
                "whitespace is not allowed outside quoted names".to_owned()
            } else {
                format!("{empty}; a name with {c:?} in it needs brackets: ['...']")
            };
            return self.fail(self.pos, &why);
        }
        let name = rest.get(..len).unwrap_or_default().to_owned();
        self.pos += len;
        Ok(Selector::Name(name))
    }

    /// `[...]` at `pos`.
    fn bracket(&mut self) -> Result<Selector, String> {
        let open = self.pos;
        self.pos += 1;
        let selector = match self.peek() {
            None => return self.fail(open, "unclosed '['"),
            Some(b'*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some(q @ (b'\'' | b'"')) => Selector::Name(self.quoted(q)?),
            Some(b'-' | b'0'..=b'9') => Selector::Index(self.index()?),
            Some(b'?') => return self.fail(self.pos, "filters ([?...]) are not supported"),
            Some(b':') => return self.fail(self.pos, "slices ([start:end]) are not supported"),
            Some(b']') => return self.fail(open, "empty brackets"),
            Some(c) if c.is_ascii_whitespace() => {
                return self.fail(self.pos, "whitespace is not allowed outside quoted names");
            }
            Some(_) => {
                return self.fail(
                    self.pos,
                    "brackets hold a quoted name (['name']), an index or *",
                );
            }
        };
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(selector)
            }
            None => self.fail(open, "unclosed '['"),
            Some(b',') => self.fail(self.pos, "unions ([a,b]) are not supported"),
            Some(b':') => self.fail(self.pos, "slices ([start:end]) are not supported"),
            Some(c) if c.is_ascii_whitespace() => {
                self.fail(self.pos, "whitespace is not allowed outside quoted names")
            }
            Some(_) => {
                let why = format!("expected ']', found {:?}", self.char_at(self.pos));
                self.fail(self.pos, &why)
            }
        }
    }

    /// A quoted name at `pos` (on the quote `q`).
    fn quoted(&mut self, q: u8) -> Result<String, String> {
        let quote_at = self.pos;
        let rest = self.text.get(quote_at + 1..).unwrap_or_default();
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '"' | '\\'))) => name.push(e),
                    Some((_, e)) => {
                        let why =
                            format!("unknown escape '\\{e}' (only \\', \\\" and \\\\ are escapes)");
                        return self.fail(quote_at + 1 + i, &why);
                    }
                    None => break,
                },
                c if c == char::from(q) => {
                    self.pos = quote_at + 1 + i + 1;
                    return Ok(name);
                }
                c => name.push(c),
            }
        }
        self.fail(quote_at, "unclosed quote")
    }

    /// `N` or `-N` at `pos`.
    fn index(&mut self) -> Result<Index, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let mut n: usize = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
            {
                Some(n) => n,
                None => return self.fail(start, "index too large"),
            };
            self.pos += 1;
        }
        if self.pos == digits_at {
            return self.fail(start, "'-' must be followed by digits");
        }
        if !negative {
            return Ok(Index::FromStart(n));
        }
        if n == 0 {
            return self.fail(start, "[-0] is not an index ([-1] is the last element)");
        }
        Ok(Index::FromEnd(n))
    }
}

/// One step from a node to a child.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Root,
    /// The `pos`-th member (in the object's iteration order) named `key`.
    Member {
        pos: usize,
        key: &'a str,
    },
    Element(usize),
}

impl Step<'_> {
    fn pos(self) -> usize {
        match self {
            Step::Root => 0,
            Step::Member { pos, .. } => pos,
            Step::Element(i) => i,
        }
    }
}

/// A selected node and how it was reached (shared with other nodes reached
/// through the same parent).
#[derive(Debug)]
struct Loc<'a> {
    parent: Option<Rc<Loc<'a>>>,
    step: Step<'a>,
    value: &'a Value,
    depth: usize,
}

impl<'a> Loc<'a> {
    fn child(parent: &Rc<Loc<'a>>, step: Step<'a>, value: &'a Value) -> Rc<Loc<'a>> {
        Rc::new(Loc {
            parent: Some(Rc::clone(parent)),
            step,
            value,
            depth: parent.depth + 1,
        })
    }
}

/// The children of a node with their steps, in document order.
enum Children<'a> {
    Object(std::iter::Enumerate<serde_json::map::Iter<'a>>),
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    Leaf,
}

impl<'a> Children<'a> {
    fn of(v: &'a Value) -> Children<'a> {
        match v {
            Value::Object(m) => Children::Object(m.iter().enumerate()),
            Value::Array(a) => Children::Array(a.iter().enumerate()),
            _ => Children::Leaf,
        }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = (Step<'a>, &'a Value);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Children::Object(it) => it
                .next()
                .map(|(pos, (k, v))| (Step::Member { pos, key: k }, v)),
            Children::Array(it) => it.next().map(|(i, v)| (Step::Element(i), v)),
            Children::Leaf => None,
        }
    }
}

fn has_children(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

impl Selector {
    /// Whether the child reached by `step` from `parent` is selected.
    fn matches(&self, step: Step<'_>, parent: &Value) -> bool {
        match (self, step, parent) {
            (Selector::Wildcard, _, _) => true,
            (Selector::Name(n), Step::Member { key, .. }, _) => key == n,
            (Selector::Index(ix), Step::Element(i), Value::Array(a)) => {
                ix.resolve(a.len()) == Some(i)
            }
            _ => false,
        }
    }
}

/// The children of `node` that `sel` selects, in document order.
fn children_matching<'a>(node: &Rc<Loc<'a>>, sel: &Selector, out: &mut Vec<Rc<Loc<'a>>>) {
    match (sel, node.value) {
        (Selector::Name(n), Value::Object(m)) => {
            if !m.contains_key(n) {
                return;
            }
            if let Some((pos, (key, v))) = m.iter().enumerate().find(|(_, (k, _))| *k == n) {
                out.push(Loc::child(node, Step::Member { pos, key }, v));
            }
        }
        (Selector::Index(ix), Value::Array(a)) => {
            if let Some(i) = ix.resolve(a.len())
                && let Some(v) = a.get(i)
            {
                out.push(Loc::child(node, Step::Element(i), v));
            }
        }
        (Selector::Wildcard, v) => {
            out.extend(Children::of(v).map(|(step, c)| Loc::child(node, step, c)));
        }
        _ => {}
    }
}

/// The children selected by `sel` of `root` and of every node below it, in
/// document order (pre-order), with an explicit stack.
fn descend<'a>(root: &Rc<Loc<'a>>, sel: &Selector, out: &mut Vec<Rc<Loc<'a>>>) {
    let mut stack = vec![(Rc::clone(root), Children::of(root.value))];
    while let Some((parent, kids)) = stack.last_mut() {
        let Some((step, child)) = kids.next() else {
            stack.pop();
            continue;
        };
        let hit = sel.matches(step, parent.value);
        let container = has_children(child);
        if !hit && !container {
            continue;
        }
        let loc = Loc::child(parent, step, child);
        if hit {
            out.push(Rc::clone(&loc));
        }
        if container {
            stack.push((loc, Children::of(child)));
        }
    }
}

/// Whether `inner` is strictly below `outer`.
fn contains(outer: &Loc<'_>, inner: &Loc<'_>) -> bool {
    if inner.depth <= outer.depth {
        return false;
    }
    let mut n = inner;
    while n.depth > outer.depth {
        match n.parent.as_deref() {
            Some(p) => n = p,
            None => return false,
        }
    }
    std::ptr::eq(n.value, outer.value)
}

/// Document order: an ancestor before its descendants, siblings by position.
fn doc_order(a: &Loc<'_>, b: &Loc<'_>) -> Ordering {
    let tie = a.depth.cmp(&b.depth);
    let (mut a, mut b) = (a, b);
    while a.depth > b.depth {
        match a.parent.as_deref() {
            Some(p) => a = p,
            None => break,
        }
    }
    while b.depth > a.depth {
        match b.parent.as_deref() {
            Some(p) => b = p,
            None => break,
        }
    }
    // Up from the same depth to the common ancestor; the steps just below
    // it decide.
    let mut ord = Ordering::Equal;
    while !std::ptr::eq(a.value, b.value) {
        let o = a.step.pos().cmp(&b.step.pos());
        if o != Ordering::Equal {
            ord = o;
        }
        match (a.parent.as_deref(), b.parent.as_deref()) {
            (Some(x), Some(y)) => (a, b) = (x, y),
            _ => break,
        }
    }
    ord.then(tie)
}

fn pointer(loc: &Loc<'_>) -> String {
    let mut steps = Vec::with_capacity(loc.depth);
    let mut cur = Some(loc);
    while let Some(l) = cur {
        steps.push(l.step);
        cur = l.parent.as_deref();
    }
    let mut s = String::new();
    for step in steps.iter().rev() {
        match step {
            Step::Root => {}
            Step::Member { key, .. } => {
                s.push('/');
                for c in key.chars() {
                    match c {
                        '~' => s.push_str("~0"),
                        '/' => s.push_str("~1"),
                        c => s.push(c),
                    }
                }
            }
            Step::Element(i) => {
                s.push('/');
                s.push_str(&i.to_string());
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> JsonPath {
        match JsonPath::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> String {
        match JsonPath::parse(text) {
            Ok(p) => panic!("{text:?} parsed: {p:?}"),
            Err(e) => e,
        }
    }

    fn ptrs(path: &str, doc: &Value) -> Vec<String> {
        p(path).pointers(doc)
    }

    fn doc() -> Value {
        // Members in alphabetical order: the same document order whether
        // serde_json keeps insertion order or sorts.
        json!({
            "count": 2,
            "customers": [
                {"card_number": "4111", "email": "ann@example.com", "name": "Ann"},
                {"email": "bob@example.com", "name": "Bob", "tags": ["x", "y", "z"]}
            ],
            "owner": {"email": "own@example.com", "team": [{"email": "t@example.com"}]}
        })
    }

    #[test]
    fn root_and_members() {
        let d = doc();
        assert_eq!(p("$").select(&d), vec![&d]);
        assert_eq!(ptrs("$", &d), vec![""]);
        assert_eq!(p("$.count").select(&d), vec![&json!(2)]);
        assert_eq!(ptrs("$.owner.email", &d), vec!["/owner/email"]);
        assert_eq!(ptrs("$['owner'][\"email\"]", &d), vec!["/owner/email"]);
        assert!(p("$.missing").select(&d).is_empty());
        assert!(p("$.count.x").select(&d).is_empty(), "member of a number");
        assert!(
            p("$.customers.name").select(&d).is_empty(),
            "member of an array"
        );
        let odd = json!({"a-b_1": 1, "é": 2, "0": 3});
        assert_eq!(p("$.a-b_1").select(&odd), vec![&json!(1)]);
        assert_eq!(p("$.é").select(&odd), vec![&json!(2)]);
        assert_eq!(
            p("$.0").select(&odd),
            vec![&json!(3)],
            "a name, not an index"
        );
    }

    #[test]
    fn quoted_names_and_escapes() {
        let d = json!({"a b": 1, "it's": 2, "say \"hi\"": 3, "back\\slash": 4, "": 5, "a.b": 6});
        assert_eq!(p("$['a b']").select(&d), vec![&json!(1)]);
        assert_eq!(p(r"$['it\'s']").select(&d), vec![&json!(2)]);
        assert_eq!(p(r#"$["it's"]"#).select(&d), vec![&json!(2)]);
        assert_eq!(p(r#"$["say \"hi\""]"#).select(&d), vec![&json!(3)]);
        assert_eq!(p(r#"$['say "hi"']"#).select(&d), vec![&json!(3)]);
        assert_eq!(p(r"$['back\\slash']").select(&d), vec![&json!(4)]);
        assert_eq!(p("$['']").select(&d), vec![&json!(5)]);
        assert_eq!(p("$['a.b']").select(&d), vec![&json!(6)]);
        assert!(p("$.a.b").select(&d).is_empty());
    }

    #[test]
    fn indexes() {
        let d = doc();
        assert_eq!(ptrs("$.customers[0].name", &d), vec!["/customers/0/name"]);
        assert_eq!(
            ptrs("$.customers[1].tags[2]", &d),
            vec!["/customers/1/tags/2"]
        );
        assert_eq!(
            ptrs("$.customers[1].tags[-1]", &d),
            vec!["/customers/1/tags/2"]
        );
        assert_eq!(
            ptrs("$.customers[1].tags[-3]", &d),
            vec!["/customers/1/tags/0"]
        );
        assert!(ptrs("$.customers[1].tags[-4]", &d).is_empty());
        assert!(ptrs("$.customers[1].tags[3]", &d).is_empty());
        assert!(ptrs("$.owner[0]", &d).is_empty(), "index of an object");
        assert!(ptrs("$[-1]", &json!([])).is_empty());
        assert_eq!(ptrs("$[-1]", &json!([7])), vec!["/0"]);
        assert_eq!(
            ptrs("$[18446744073709551615]", &json!([1])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn wildcards() {
        let d = doc();
        assert_eq!(
            ptrs("$.customers[*].email", &d),
            vec!["/customers/0/email", "/customers/1/email"]
        );
        assert_eq!(
            ptrs("$.customers.*.name", &d),
            vec!["/customers/0/name", "/customers/1/name"]
        );
        assert_eq!(p("$.owner.*").select(&d).len(), 2);
        assert_eq!(p("$.owner[*]").select(&d).len(), 2);
        assert!(p("$.count.*").select(&d).is_empty());
        assert!(p("$.*.*.*.*.*.*").select(&d).is_empty());
    }

    #[test]
    fn descent_through_arrays_and_objects() {
        let d = doc();
        assert_eq!(
            ptrs("$..email", &d),
            vec![
                "/customers/0/email",
                "/customers/1/email",
                "/owner/email",
                "/owner/team/0/email"
            ]
        );
        assert_eq!(ptrs("$..['email']", &d), ptrs("$..email", &d));
        assert_eq!(
            ptrs("$.owner..email", &d),
            vec!["/owner/email", "/owner/team/0/email"]
        );
        assert_eq!(
            ptrs("$..[0]", &d),
            vec!["/customers/0", "/customers/1/tags/0", "/owner/team/0"]
        );
        assert_eq!(ptrs("$..tags[-1]", &d), vec!["/customers/1/tags/2"]);
        assert_eq!(ptrs("$..[-1]", &json!([[1, 2], 3])), vec!["/0/1", "/1"]);
        // Every descendant, each once, in document order.
        let all = ptrs("$..*", &d);
        assert_eq!(all, ptrs("$..[*]", &d));
        assert_eq!(all.len(), 18);
        assert_eq!(all[0], "/count");
        assert_eq!(all[1], "/customers");
        assert_eq!(all[2], "/customers/0");
        assert_eq!(all[3], "/customers/0/card_number");
        // A name at the root's own level counts too.
        assert_eq!(ptrs("$..count", &d), vec!["/count"]);
        assert!(ptrs("$..x", &json!(3)).is_empty());
    }

    #[test]
    fn selected_once_in_document_order() {
        let d = json!({"a": {"a": {"b": 1, "a": {"b": 2}}}, "b": 0});
        assert_eq!(ptrs("$..a..b", &d), vec!["/a/a/a/b", "/a/a/b"]);
        assert_eq!(ptrs("$..a.b", &d), vec!["/a/a/a/b", "/a/a/b"]);
        // Every node two or more levels down, each once.
        assert_eq!(
            ptrs("$..*..*", &d),
            vec!["/a/a", "/a/a/a", "/a/a/a/b", "/a/a/b"]
        );
        // Children of nested selected nodes come out in document order.
        let n = json!([[[1], 2], 3]);
        assert_eq!(ptrs("$..*[0]", &n), vec!["/0/0", "/0/0/0"]);
        assert_eq!(ptrs("$..*.*", &n), vec!["/0/0", "/0/0/0", "/0/1"]);
        assert_eq!(
            ptrs("$..[*]", &n),
            vec!["/0", "/0/0", "/0/0/0", "/0/1", "/1"]
        );
    }

    #[test]
    fn repeated_descent_stays_linear() {
        // 100 nested `a`s: without deduplication `$..a..a..a…` would select
        // every `a` once per way of choosing the earlier ones.
        let mut d = json!(1);
        for _ in 0..100 {
            d = json!({"a": d, "x": [1, 2, 3]});
        }
        let path = format!("${}", "..a".repeat(MAX_SEGMENTS));
        let got = p(&path).select(&d);
        assert_eq!(got.len(), 100 - (MAX_SEGMENTS - 1));
        // A wide document.
        let wide = Value::Array((0..20_000).map(|i| json!({"a": {"b": {"c": i}}})).collect());
        assert_eq!(p("$..a..b..c").select(&wide).len(), 20_000);
        assert_eq!(p("$..*..*..*..*").select(&wide).len(), 20_000);
    }

    #[test]
    fn pointer_escaping() {
        let d = json!({"a/b": {"m~n": {"~1": 1}}, "": {"": 2}});
        assert_eq!(ptrs("$['a/b']['m~n']['~1']", &d), vec!["/a~1b/m~0n/~01"]);
        assert_eq!(ptrs("$['']['']", &d), vec!["//"]);
        for ptr in ptrs("$..*", &d) {
            assert!(d.pointer(&ptr).is_some(), "{ptr}");
        }
        assert_eq!(d.pointer("/a~1b/m~0n/~01"), Some(&json!(1)));
    }

    #[test]
    fn display_and_from_str() {
        let text = "$..customers[-1]['e-mail'].*";
        let path: JsonPath = text.parse().unwrap_or_else(|e: String| panic!("{e}"));
        assert_eq!(path.as_str(), text);
        assert_eq!(path.to_string(), text);
        assert_eq!(path, p(text));
        assert_ne!(path, p("$..customers[-1]"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("$.a["),
            "json path \"$.a[\" is not valid: unclosed '[' at byte 3; use $.name, $['name'], $[0], $[*], $.* or $..name"
        );
        let cases: &[(&str, &str)] = &[
            ("", "must start with '$' at byte 0"),
            ("a.b", "must start with '$' at byte 0"),
            ("$a", "unexpected 'a'"),
            ("$.", "'.' must be followed by a name or *"),
            ("$..", "'..' must be followed"),
            ("$...a", "'..' must be followed"),
            ("$.a b", "whitespace is not allowed"),
            (" $.a", "must start with '$'"),
            ("$[ 0]", "whitespace is not allowed"),
            ("$[0 ]", "whitespace is not allowed"),
            ("$. a", "whitespace is not allowed"),
            ("$.a[0", "unclosed '[' at byte 3"),
            ("$['a", "unclosed quote at byte 2"),
            ("$['a']x", "unexpected 'x'"),
            ("$['a'", "unclosed '['"),
            (r"$['a\n']", "unknown escape '\\n'"),
            ("$[?(@.a)]", "filters ([?...]) are not supported"),
            ("$[1:3]", "slices ([start:end]) are not supported"),
            ("$[:3]", "slices ([start:end]) are not supported"),
            ("$['a','b']", "unions ([a,b]) are not supported"),
            ("$[0,1]", "unions ([a,b]) are not supported"),
            ("$[]", "empty brackets"),
            ("$[a]", "quoted name"),
            ("$[-]", "'-' must be followed by digits"),
            ("$[-0]", "[-0] is not an index"),
            ("$[99999999999999999999999]", "index too large"),
            ("$.[0]", "'.[' is not valid"),
            ("$.a.b$", "unexpected '$'"),
            ("$.a@b", "unexpected '@'"),
            ("$.@", "needs brackets"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(HINT), "{text:?}: {e}");
        }
    }

    #[test]
    fn limits() {
        let ok = format!("${}", ".a".repeat(MAX_SEGMENTS));
        assert!(JsonPath::parse(&ok).is_ok());
        let e = err(&format!("${}", ".a".repeat(MAX_SEGMENTS + 1)));
        assert!(e.contains("more than 32 segments"), "{e}");
        let long = format!("$['{}']", "x".repeat(MAX_PATH_LEN));
        let e = err(&long);
        assert!(e.contains("over the limit of 512 bytes"), "{e}");
        let fits = format!("$['{}']", "x".repeat(MAX_PATH_LEN - 5));
        assert_eq!(fits.len(), MAX_PATH_LEN);
        assert!(JsonPath::parse(&fits).is_ok());
    }
}
