//! Content detectors: PII and secrets in text values.
//!
//! One pass over the bytes stops only at trigger bytes (digits, `@`, `A`,
//! `J`, `-`, each only when a kind that needs it is enabled); everything else
//! is skipped by a table lookup. At a trigger the specific detector parses
//! the candidate by hand and validates it (Luhn, ISO 13616 mod-97, SSN
//! ranges, ...). Each candidate costs work bounded by its own length and the
//! pass resumes after it, so a scan is linear in the length of the text and
//! allocates nothing unless something is found.
//!
//! Every finding starts at an ASCII byte or the first byte of a character
//! and ends after an ASCII byte (or at the end of the text), so its range
//! always falls on `char` boundaries.

use std::fmt;

use gatehouse_core::policy::spec::DetectorKind;

/// Values longer than this are still scanned in full: there is no
/// truncation and no window that could cut a finding in two (fail closed).
/// The pass stays linear whatever the length: every byte is looked at a
/// bounded number of times (the scan resumes after each candidate; an email
/// looks back at most to the previous `@`; a PEM block without its `END`
/// line runs to the end of the text and ends the scan). Callers may use
/// this bound to account for the cost of big values.
pub const MAX_SCAN: usize = 1 << 20;

/// One finding: the byte range in the scanned text and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: DetectorKind,
    pub start: usize,
    pub end: usize,
}

/// A compiled set of detectors (built once per policy, shared across
/// threads).
pub struct Detectors {
    /// Bit `bit(k)` set: kind `k` is enabled.
    enabled: u8,
    /// Byte -> trigger class (`T_*`); 0: not a trigger.
    trigger: [u8; 256],
}

impl fmt::Debug for Detectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detectors")
            .field(
                "kinds",
                &DetectorKind::ALL
                    .iter()
                    .filter(|k| self.has(**k))
                    .map(|k| k.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

const T_DIGIT: u8 = 1;
const T_AT: u8 = 2;
/// `A`: AKIA / ASIA / ABIA / ACCA.
const T_A: u8 = 3;
/// `J` of `eyJ`.
const T_J: u8 = 4;
/// `-` of `-----BEGIN`.
const T_DASH: u8 = 5;

fn bit(kind: DetectorKind) -> u8 {
    1 << match kind {
        DetectorKind::Email => 0,
        DetectorKind::CreditCard => 1,
        DetectorKind::Iban => 2,
        DetectorKind::UsSsn => 3,
        DetectorKind::Phone => 4,
        DetectorKind::AwsAccessKey => 5,
        DetectorKind::PrivateKey => 6,
        DetectorKind::Jwt => 7,
    }
}

/// The kinds found in clusters of digits (IBAN has its own trigger).
const CLUSTER_KINDS: u8 = 0b0001_1010;

impl Detectors {
    /// Compile detectors for these kinds (duplicates ignored). Never fails.
    pub fn new(kinds: &[DetectorKind]) -> Detectors {
        let enabled = kinds.iter().fold(0u8, |m, k| m | bit(*k));
        let mut trigger = [0u8; 256];
        let on = |k: DetectorKind| enabled & bit(k) != 0;
        if enabled & (CLUSTER_KINDS | bit(DetectorKind::Iban)) != 0 {
            for d in b'0'..=b'9' {
                trigger[usize::from(d)] = T_DIGIT;
            }
        }
        if on(DetectorKind::Email) {
            trigger[usize::from(b'@')] = T_AT;
        }
        if on(DetectorKind::AwsAccessKey) {
            trigger[usize::from(b'A')] = T_A;
        }
        if on(DetectorKind::Jwt) {
            trigger[usize::from(b'J')] = T_J;
        }
        if on(DetectorKind::PrivateKey) {
            trigger[usize::from(b'-')] = T_DASH;
        }
        Detectors { enabled, trigger }
    }

    fn has(&self, kind: DetectorKind) -> bool {
        self.enabled & bit(kind) != 0
    }

    /// All validated findings in `text`, sorted by start, non-overlapping
    /// (on overlap the longer one is kept; on equal length the earlier).
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(k) = b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&c| self.trigger[usize::from(c)] != 0))
        {
            i += k;
            let next = match self.trigger[usize::from(b[i])] {
                T_DIGIT => self.digits(b, i, &mut out),
                T_AT => push(&mut out, DetectorKind::Email, email_at(b, i)),
                T_A => push(&mut out, DetectorKind::AwsAccessKey, aws_at(b, i)),
                T_J => push(&mut out, DetectorKind::Jwt, jwt_at(b, i)),
                _ => push(&mut out, DetectorKind::PrivateKey, private_key_at(text, i)),
            };
            i = next.max(i + 1);
        }
        resolve(&mut out);
        out
    }

    /// `text` with every finding replaced by `[REDACTED:<kind name>]`;
    /// `None` when nothing was found.
    pub fn redact(&self, text: &str) -> Option<String> {
        let found = self.scan(text);
        if found.is_empty() {
            return None;
        }
        let mut s = String::with_capacity(text.len() + 16 * found.len());
        let mut last = 0;
        for f in &found {
            push_slice(&mut s, text, last, f.start);
            s.push_str("[REDACTED:");
            s.push_str(f.kind.name());
            s.push(']');
            last = f.end;
        }
        push_slice(&mut s, text, last, text.len());
        Some(s)
    }

    /// At the first digit of a run: an IBAN (when two letters precede), else
    /// the cluster of digit groups starting here. Returns where to resume.
    fn digits(&self, b: &[u8], p: usize, out: &mut Vec<Finding>) -> usize {
        if self.has(DetectorKind::Iban)
            && p >= 2
            && b[p - 1].is_ascii_alphabetic()
            && b[p - 2].is_ascii_alphabetic()
            && let Some(end) = iban_at(b, p)
        {
            out.push(Finding {
                kind: DetectorKind::Iban,
                start: p - 2,
                end,
            });
            return end;
        }
        if self.enabled & CLUSTER_KINDS == 0 {
            return skip_digits(b, p);
        }
        self.cluster(b, p, out)
    }

    /// Reads the cluster of digit groups joined by single separators that
    /// starts at `p` and evaluates every group as a possible start of a
    /// card, SSN or phone number. Groups go through a fixed buffer (no
    /// allocation); a cluster longer than the buffer is evaluated chunk by
    /// chunk, keeping enough groups for the longest pattern.
    fn cluster(&self, b: &[u8], p: usize, out: &mut Vec<Finding>) -> usize {
        let ctx = Context::at(b, p);
        let mut g = [Group::default(); CAP];
        let mut len = 0;
        let mut from = 0;
        let mut total = 0;
        let mut chunked = false;
        let mut before = Gap::None;
        let mut pos = p;
        loop {
            let start = pos;
            pos = skip_digits(b, pos);
            let (after, next) = gap_at(b, pos);
            g[len] = Group {
                start,
                end: pos,
                before,
                after,
            };
            len += 1;
            total += pos - start;
            if after == Gap::None {
                break;
            }
            before = after;
            pos = next;
            if len == CAP {
                self.evaluate(b, &g, from, EVAL_TO, &ctx, out);
                g.copy_within(EVAL_TO - 1.., 0);
                len = CAP - EVAL_TO + 1;
                from = 1;
                chunked = true;
            }
        }
        // The shortest pattern has 9 digits (an SSN), or 8 after a '+'.
        if chunked || total >= 9 || (ctx.plus && total >= 8) {
            let ctx = Context {
                right_attached: right_attached(b, pos),
                ..ctx
            };
            self.evaluate(b, &g[..len], from, len, &ctx, out);
        }
        pos
    }

    /// Tries every pattern at every group `a` in `from..to`; patterns may
    /// look at the groups after `to` in `g` (and one before `from`).
    fn evaluate(
        &self,
        b: &[u8],
        g: &[Group],
        from: usize,
        to: usize,
        ctx: &Context,
        out: &mut Vec<Finding>,
    ) {
        let clusters = Cluster { b, g, ctx };
        if from == 0
            && ctx.plus
            && self.has(DetectorKind::Phone)
            && let Some(end) = clusters.e164()
        {
            out.push(Finding {
                kind: DetectorKind::Phone,
                start: g[0].start - 1,
                end,
            });
        }
        for a in from..to.min(g.len()) {
            if self.has(DetectorKind::CreditCard)
                && let Some(j) = clusters.card(a)
            {
                out.push(Finding {
                    kind: DetectorKind::CreditCard,
                    start: g[a].start,
                    end: g[j].end,
                });
            }
            if self.has(DetectorKind::UsSsn) && clusters.ssn(a) {
                out.push(Finding {
                    kind: DetectorKind::UsSsn,
                    start: g[a].start,
                    end: g[a + 2].end,
                });
            }
            if self.has(DetectorKind::Phone)
                && let Some(start) = clusters.nanp(a)
            {
                out.push(Finding {
                    kind: DetectorKind::Phone,
                    start,
                    end: g[a + 2].end,
                });
            }
        }
    }
}

/// Pushes a finding `start..end` of `kind` if any; returns where to resume.
fn push(out: &mut Vec<Finding>, kind: DetectorKind, found: Option<(usize, usize)>) -> usize {
    match found {
        Some((start, end)) => {
            out.push(Finding { kind, start, end });
            end
        }
        None => 0,
    }
}

fn push_slice(s: &mut String, text: &str, from: usize, to: usize) {
    match text.get(from..to) {
        Some(part) => s.push_str(part),
        // Unreachable (findings lie on char boundaries); never panic.
        None => s.push_str(&String::from_utf8_lossy(
            text.as_bytes().get(from..to).unwrap_or_default(),
        )),
    }
}

fn kind_order(kind: DetectorKind) -> u8 {
    bit(kind).trailing_zeros() as u8
}

/// Sorts by start and drops overlaps, keeping the longer finding (the
/// earlier on equal length), in place.
fn resolve(out: &mut Vec<Finding>) {
    if out.len() < 2 {
        return;
    }
    out.sort_unstable_by(|x, y| {
        x.start
            .cmp(&y.start)
            .then(y.end.cmp(&x.end))
            .then(kind_order(x.kind).cmp(&kind_order(y.kind)))
    });
    let mut w = 0;
    for r in 0..out.len() {
        let f = out[r].clone();
        if w > 0 && f.start < out[w - 1].end {
            // `f` starts at or after the kept one, so it cannot overlap the
            // one before that.
            if f.end - f.start > out[w - 1].end - out[w - 1].start {
                out[w - 1] = f;
            }
        } else {
            out[w] = f;
            w += 1;
        }
    }
    out.truncate(w);
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while is_digit_at(b, i) {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------
// Digit clusters: cards, SSNs, phone numbers.

/// Group buffer size; evaluation of a full buffer covers starts
/// `0..EVAL_TO`, which leaves at least 15 groups (the longest pattern, an
/// E.164 number of 15 one-digit groups) of look-ahead.
const CAP: usize = 40;
const EVAL_TO: usize = 24;

/// What joins a digit group to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Gap {
    /// Start or end of the cluster.
    #[default]
    None,
    Space,
    Hyphen,
    Dot,
    /// `(` or ` (`.
    Open,
    /// `)`, `) ` or `)-`.
    Close,
}

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    before: Gap,
    after: Gap,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The gap at `pos` (just after a digit group) and where the next group
/// starts; `Gap::None` when the cluster ends.
fn gap_at(b: &[u8], pos: usize) -> (Gap, usize) {
    let d = |k: usize| is_digit_at(b, k);
    match b.get(pos) {
        Some(b' ') if d(pos + 1) => (Gap::Space, pos + 1),
        Some(b' ') if b.get(pos + 1) == Some(&b'(') && d(pos + 2) => (Gap::Open, pos + 2),
        Some(b'-') if d(pos + 1) => (Gap::Hyphen, pos + 1),
        Some(b'.') if d(pos + 1) => (Gap::Dot, pos + 1),
        Some(b'(') if d(pos + 1) => (Gap::Open, pos + 1),
        Some(b')') if d(pos + 1) => (Gap::Close, pos + 1),
        Some(b')') if matches!(b.get(pos + 1), Some(b' ' | b'-')) && d(pos + 2) => {
            (Gap::Close, pos + 2)
        }
        _ => (Gap::None, pos),
    }
}

/// What surrounds a cluster.
#[derive(Debug, Clone, Copy)]
struct Context {
    /// The first group is glued to a word (`x12`, `v1.2`, `ID-12`, `12:30`).
    left_attached: bool,
    /// The last group is glued to a word.
    right_attached: bool,
    /// `+` just before the first group (not after a word or `)`).
    plus: bool,
    /// `(` just before the first group (not after a word).
    open_paren: bool,
}

impl Context {
    fn at(b: &[u8], p: usize) -> Context {
        let prev = p.checked_sub(1).and_then(|i| b.get(i)).copied();
        let prev2 = p.checked_sub(2).and_then(|i| b.get(i)).copied();
        let word2 = prev2.is_some_and(is_word);
        let left_attached = match prev {
            Some(c) if is_word(c) => true,
            Some(b'.' | b'-') => word2,
            Some(b':' | b'/') => prev2.is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        };
        Context {
            left_attached,
            right_attached: false,
            plus: prev == Some(b'+') && !word2 && prev2 != Some(b')'),
            open_paren: prev == Some(b'(') && !word2,
        }
    }
}

/// Whether the byte(s) at `e`, just after a cluster, glue it to a word.
fn right_attached(b: &[u8], e: usize) -> bool {
    let next2 = b.get(e + 1).copied();
    match b.get(e) {
        Some(&c) if is_word(c) => true,
        Some(b'.' | b'-') => next2.is_some_and(is_word),
        Some(b':' | b'/') => next2.is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

struct Cluster<'a> {
    b: &'a [u8],
    g: &'a [Group],
    ctx: &'a Context,
}

impl Cluster<'_> {
    /// Group `a` does not continue something on its left.
    fn left_ok(&self, a: usize) -> bool {
        match self.g[a].before {
            Gap::None => !self.ctx.left_attached,
            Gap::Space => true,
            _ => false,
        }
    }

    /// Group `j` is not continued by something on its right.
    fn right_ok(&self, j: usize) -> bool {
        match self.g[j].after {
            Gap::None => !self.ctx.right_attached,
            Gap::Space => true,
            _ => false,
        }
    }

    fn first_digit(&self, a: usize) -> u8 {
        self.b[self.g[a].start]
    }

    fn digits(&self, a: usize, j: usize) -> impl DoubleEndedIterator<Item = u8> + '_ {
        self.g[a..=j]
            .iter()
            .flat_map(|g| self.b[g.start..g.end].iter().map(|c| c - b'0'))
    }

    /// A payment card starting at group `a`: the index of its last group
    /// (the longest valid one). Either one run of 13-19 digits, or groups
    /// joined by one kind of separator (space or hyphen) shaped 4-4-...-n
    /// (n = 1..4) or 4-6-5 / 4-6-4 (Amex, Diners), 13-19 digits in all.
    /// The first digit must be 2-6 (the major industry identifiers of
    /// payment cards: no epoch timestamps), not all digits equal, Luhn.
    fn card(&self, a: usize) -> Option<usize> {
        let g = self.g;
        if !self.left_ok(a) || !(b'2'..=b'6').contains(&self.first_digit(a)) {
            return None;
        }
        let sep = g[a].after;
        let mut best = None;
        let mut total = 0;
        let mut lens = [0usize; 5];
        for j in a..g.len().min(a + 5) {
            let k = j - a;
            lens[k] = g[j].len();
            total += lens[k];
            if total > 19 {
                break;
            }
            if k > 0 && g[j - 1].after != sep {
                break;
            }
            let shape = match k {
                0 => total >= 13,
                _ => {
                    let all4 = lens[..k].iter().all(|&l| l == 4);
                    (all4 && (1..=4).contains(&lens[k]))
                        || (k == 2 && lens[0] == 4 && lens[1] == 6 && (4..=5).contains(&lens[2]))
                }
            };
            if shape
                && total >= 13
                && (k == 0 || matches!(sep, Gap::Space | Gap::Hyphen))
                && self.right_ok(j)
                && luhn(self.digits(a, j))
                && !all_same(self.digits(a, j))
            {
                best = Some(j);
            }
            if k == 0 && lens[0] != 4 {
                break;
            }
            if k >= 2 && !lens[..k].iter().all(|&l| l == 4) {
                break;
            }
        }
        best
    }

    /// AAA-GG-SSSS (hyphens or spaces, the same twice) at group `a`; area
    /// not 000, 666 or 900-999, group not 00, serial not 0000.
    fn ssn(&self, a: usize) -> bool {
        let g = self.g;
        if a + 2 >= g.len()
            || g[a].len() != 3
            || g[a + 1].len() != 2
            || g[a + 2].len() != 4
            || g[a].after != g[a + 1].after
            || !matches!(g[a].after, Gap::Hyphen | Gap::Space)
            || !self.left_ok(a)
            || !self.right_ok(a + 2)
        {
            return false;
        }
        let num = |grp: &Group| {
            self.b[grp.start..grp.end]
                .iter()
                .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
        };
        let (area, group, serial) = (num(&g[a]), num(&g[a + 1]), num(&g[a + 2]));
        area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
    }

    /// A North-American number whose area code is group `a`: (555) 123-4567,
    /// 555-123-4567, 555.123.4567, 555 123 4567, 555 123-4567, optionally
    /// after a country code `1` (1-800-555-1234). Returns its start.
    fn nanp(&self, a: usize) -> Option<usize> {
        let g = self.g;
        if a + 2 >= g.len() || g[a].len() != 3 || g[a + 1].len() != 3 || g[a + 2].len() != 4 {
            return None;
        }
        let (gap1, gap2) = (g[a].after, g[a + 1].after);
        let paren = gap1 == Gap::Close
            && (g[a].before == Gap::Open || (g[a].before == Gap::None && self.ctx.open_paren));
        let plain = matches!(gap1, Gap::Hyphen | Gap::Dot | Gap::Space)
            && (gap1 == gap2 || (gap1 == Gap::Space && gap2 == Gap::Hyphen));
        if !(paren && matches!(gap2, Gap::Hyphen | Gap::Dot | Gap::Space) || plain)
            || !self.right_ok(a + 2)
        {
            return None;
        }
        let lead1 = a >= 1
            && g[a - 1].len() == 1
            && self.first_digit(a - 1) == b'1'
            && matches!(g[a].before, Gap::Space | Gap::Hyphen | Gap::Dot | Gap::Open)
            && self.left_ok(a - 1);
        if lead1 {
            Some(g[a - 1].start)
        } else if paren {
            // `(` belongs to the number; ` (` after other digits is fine.
            Some(g[a].start - 1)
        } else if self.left_ok(a) {
            Some(g[a].start)
        } else {
            None
        }
    }

    /// E.164: `+` then 8-15 digits in groups joined by any separator; the
    /// longest such prefix of the cluster. Returns its end.
    fn e164(&self) -> Option<usize> {
        let g = self.g;
        let mut total = 0;
        let mut best = None;
        for grp in g {
            total += grp.len();
            if total > 15 {
                break;
            }
            if total >= 8 && (grp.after != Gap::None || !self.ctx.right_attached) {
                best = Some(grp.end);
            }
        }
        best
    }
}

fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn all_same(mut digits: impl Iterator<Item = u8>) -> bool {
    match digits.next() {
        Some(first) => digits.all(|d| d == first),
        None => true,
    }
}

// ---------------------------------------------------------------------------
// IBAN.

/// The IBAN format of a country in the SWIFT IBAN registry: total length,
/// and whether its BBAN is all digits. `None`: not a registry country.
fn iban_country(cc: [u8; 2]) -> Option<(usize, bool)> {
    // All-digit BBANs (AT 16n, BE 12n, DE 18n, ...): hexadecimal ids that
    // happen to start with such a country code (`be12...`) cannot match.
    let numeric = matches!(
        &cc,
        b"AE"
            | b"AT"
            | b"BA"
            | b"BE"
            | b"CZ"
            | b"DE"
            | b"DK"
            | b"EE"
            | b"EG"
            | b"ES"
            | b"FI"
            | b"FO"
            | b"GL"
            | b"HR"
            | b"HU"
            | b"IL"
            | b"IS"
            | b"LT"
            | b"LY"
            | b"ME"
            | b"NO"
            | b"PL"
            | b"PT"
            | b"RS"
            | b"SD"
            | b"SE"
            | b"SI"
            | b"SK"
            | b"TL"
            | b"TN"
            | b"VA"
            | b"XK"
    );
    let len = match &cc {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FK" | b"FO" | b"GL" | b"NL" | b"SD" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"MN" | b"XK" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"OM" | b"SO" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"LY" | b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"BI" | b"DJ" | b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HN" | b"HU" | b"LB" | b"NI" | b"PL"
        | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    };
    Some((len, numeric))
}

/// Value of an alphanumeric for mod-97: digits 0-9, letters 10-35.
fn iban_value(c: u8) -> u32 {
    if c.is_ascii_digit() {
        u32::from(c - b'0')
    } else {
        u32::from(c.to_ascii_uppercase() - b'A') + 10
    }
}

fn mod97_push(r: u32, c: u8) -> u32 {
    let v = iban_value(c);
    if v < 10 {
        (r * 10 + v) % 97
    } else {
        (r * 100 + v) % 97
    }
}

/// An IBAN whose check digits start at `p` (two letters before it): the
/// end of the longest valid one. Either contiguous, or in blocks of four
/// separated by single spaces (the last block 1-4 characters). Valid: ISO
/// 13616 mod-97 == 1 and, for a registry country, its length (and all-digit
/// BBAN where the registry says so), in any case; for another country, any
/// length 15-34, upper case only (lower-case hexadecimal ids would
/// otherwise match one time in 97).
fn iban_at(b: &[u8], p: usize) -> Option<usize> {
    if (p >= 3 && is_word(b[p - 3])) || !is_digit_at(b, p + 1) {
        return None;
    }
    let cc = [b[p - 2].to_ascii_uppercase(), b[p - 1].to_ascii_uppercase()];
    let country = iban_country(cc);
    let upper = |c: &u8| !c.is_ascii_lowercase();
    if country.is_none() && !b[p - 2..p].iter().all(upper) {
        return None;
    }
    // The rearranged number is BBAN + country + check digits.
    let tail = [cc[0], cc[1], b[p], b[p + 1]];
    let valid = |r: u32, n: usize, bban: &Bban| {
        (11..=30).contains(&n)
            && match country {
                Some((len, numeric)) => len == n + 4 && !(numeric && bban.letters),
                None => !bban.lower,
            }
            && tail.iter().fold(r, |r, &c| mod97_push(r, c)) == 1
    };
    let alnum = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let mut q = p + 2;
    let mut bban = Bban::default();
    if b.get(q) == Some(&b' ') {
        let mut best = None;
        while b.get(q) == Some(&b' ') && alnum(q + 1) {
            let s = q + 1;
            let mut e = s;
            while e < s + 4 && alnum(e) {
                e += 1;
            }
            if alnum(e) || b.get(e) == Some(&b'_') {
                break; // A longer word: not a block.
            }
            if !b[s..e].iter().all(|&c| bban.push(c)) {
                break;
            }
            if valid(bban.r, bban.n, &bban) {
                best = Some(e);
            }
            if e - s < 4 {
                break;
            }
            q = e;
        }
        best
    } else {
        while alnum(q) {
            if !bban.push(b[q]) {
                return None;
            }
            q += 1;
        }
        (b.get(q) != Some(&b'_') && valid(bban.r, bban.n, &bban)).then_some(q)
    }
}

/// The BBAN read so far.
#[derive(Debug, Default)]
struct Bban {
    /// Its value mod 97.
    r: u32,
    /// Its length.
    n: usize,
    letters: bool,
    lower: bool,
}

impl Bban {
    /// Appends `c`; false when the BBAN grows too long (over 30).
    fn push(&mut self, c: u8) -> bool {
        self.n += 1;
        self.r = mod97_push(self.r, c);
        self.letters |= c.is_ascii_alphabetic();
        self.lower |= c.is_ascii_lowercase();
        self.n <= 30
    }
}

// ---------------------------------------------------------------------------
// Email, AWS access key, JWT, private key.

/// Local-part bytes; non-ASCII (UTF-8) ones too, so an internationalised
/// address is not cut in two.
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-') || c >= 0x80
}

/// Top-level "domains" that are file extensions (`icon@2x.png`).
const NOT_TLDS: [&[u8]; 12] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"css", b"js", b"json",
    b"html",
];

/// `local@domain.tld` around the `@` at `at`: local part
/// `[A-Za-z0-9._%+-]+` (leading dots dropped), at least two domain labels
/// `[A-Za-z0-9-]+` (not starting or ending with `-`), the last one all
/// ASCII letters (2-63). Non-ASCII characters count as letters except in
/// the top-level label. The domain ends after its last valid top-level
/// label.
fn email_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && is_local(b[s - 1]) {
        s -= 1;
    }
    while s < at && b[s] == b'.' {
        s += 1;
    }
    if s == at {
        return None;
    }
    let mut p = at + 1;
    let mut labels = 0;
    let mut end = None;
    loop {
        let ls = p;
        let mut alpha = true;
        while let Some(&c) = b.get(p) {
            if c.is_ascii_alphabetic() {
            } else if c.is_ascii_digit() || c == b'-' || c >= 0x80 {
                alpha = false;
            } else {
                break;
            }
            p += 1;
        }
        if p == ls || b[ls] == b'-' || b[p - 1] == b'-' || p - ls > 63 {
            break;
        }
        labels += 1;
        if labels >= 2 && alpha && p - ls >= 2 {
            let tld = &b[ls..p];
            if !NOT_TLDS.iter().any(|x| x.eq_ignore_ascii_case(tld)) {
                end = Some(p);
            }
        }
        if b.get(p) == Some(&b'.') {
            p += 1;
        } else {
            break;
        }
    }
    end.map(|e| (s, e))
}

/// `(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}` between word boundaries, at `s`.
fn aws_at(b: &[u8], s: usize) -> Option<(usize, usize)> {
    let key = b.get(s..s + 20)?;
    if !matches!(&key[..4], b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA")
        || !key[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        || (s > 0 && is_word(b[s - 1]))
        || b.get(s + 20).is_some_and(|&c| is_word(c))
    {
        return None;
    }
    Some((s, s + 20))
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn b64url_run(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_b64url(c)) {
        i += 1;
    }
    i
}

/// A JWT whose `eyJ` ends at `j` (the `J`): header and payload of at least
/// 10 base64url characters, a signature of any length (an unsecured JWT has
/// none), and up to two more segments (JWE has five).
fn jwt_at(b: &[u8], j: usize) -> Option<(usize, usize)> {
    let s = j.checked_sub(2)?;
    if &b[s..j] != b"ey" || (s > 0 && is_b64url(b[s - 1])) {
        return None;
    }
    let e1 = b64url_run(b, s);
    if e1 - s < 10 || b.get(e1) != Some(&b'.') {
        return None;
    }
    let e2 = b64url_run(b, e1 + 1);
    if e2 - (e1 + 1) < 10 || b.get(e2) != Some(&b'.') {
        return None;
    }
    let mut end = b64url_run(b, e2 + 1);
    for _ in 0..2 {
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(|&c| is_b64url(c)) {
            end = b64url_run(b, end + 1);
        } else {
            break;
        }
    }
    Some((s, end))
}

/// `-----BEGIN <label>-----` where the label contains `PRIVATE KEY`, through
/// the matching `-----END <label>-----`, or to the end of the text when
/// there is none (fail closed).
fn private_key_at(text: &str, s: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if !b.get(s..)?.starts_with(b"-----BEGIN ") {
        return None;
    }
    let ls = s + 11;
    let mut le = ls;
    while le < ls + 100
        && b.get(le)
            .is_some_and(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ')
    {
        le += 1;
    }
    let label = text.get(ls..le)?.trim_end();
    if !label.contains("PRIVATE KEY") {
        return None;
    }
    let mut from = le;
    while let Some(k) = text.get(from..).and_then(|t| t.find("-----END ")) {
        let at = from + k + 9;
        if b[at..].starts_with(label.as_bytes()) {
            let mut end = at + label.len();
            while end < at + label.len() + 5 && b.get(end) == Some(&b'-') {
                end += 1;
            }
            return Some((s, end));
        }
        from = at;
    }
    Some((s, b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DetectorKind::*;

    fn all() -> Detectors {
        Detectors::new(&DetectorKind::ALL)
    }

    /// The (kind, matched text) pairs found in `text`.
    fn found(text: &str) -> Vec<(DetectorKind, &str)> {
        all()
            .scan(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    fn assert_finds(kind: DetectorKind, text: &str, want: &str) {
        assert_eq!(found(text), vec![(kind, want)], "in {text:?}");
    }

    fn assert_clean(text: &str) {
        assert_eq!(found(text), vec![], "in {text:?}");
        assert_eq!(all().redact(text), None);
    }

    #[test]
    fn detectors_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Detectors>();
    }

    #[test]
    fn email() {
        for (text, want) in [
            ("mail john.doe@example.com now", "john.doe@example.com"),
            (
                "<Jane.O-Neil+tag@Mail.Example.co.uk>",
                "Jane.O-Neil+tag@Mail.Example.co.uk",
            ),
            (
                "to: a_b%c@sub-domain.example.org.",
                "a_b%c@sub-domain.example.org",
            ),
            ("\"email\":\"x1@y2.io\"", "x1@y2.io"),
            ("..dots@example.com", "dots@example.com"),
            ("git@github.com:org/repo.git", "git@github.com"),
        ] {
            assert_finds(Email, text, want);
        }
        for text in [
            "@handle",
            "user@localhost",
            "icon@2x.png",
            "lodash@4.17.21",
            "a@b.c",
            "a@-b.com",
            "x@y.com1",
            "@ @@ a@ @b",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn credit_card() {
        for (text, want) in [
            ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
            ("4111-1111-1111-1111", "4111-1111-1111-1111"),
            ("pan=4111111111111111&x=1", "4111111111111111"),
            ("amex 3782 822463 10005.", "3782 822463 10005"),
            ("mc 5555555555554444", "5555555555554444"),
            ("42,4111111111111111,2024", "4111111111111111"),
            ("paid 4111 1111 1111 1111 15 times", "4111 1111 1111 1111"),
            ("order 12 4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("visa13 4222222222222", "4222222222222"),
            ("discover 6011 1111 1111 1117", "6011 1111 1111 1117"),
        ] {
            assert_finds(CreditCard, text, want);
        }
        for text in [
            "4111 1111 1111 1112",
            "4111111111111112",
            // Passes Luhn, all digits equal.
            "6666666666666",
            // Epoch milliseconds / nanoseconds (first digit 1).
            "ts=1705312331123 1705312331123456789",
            // A float's decimals.
            "0.4111111111111111",
            "ORD-4111-1111-1111-1111",
            "x4111111111111111",
            "4111 1111-1111 1111",
            "41111111111111111111",
            "4111 1111 1111",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn iban() {
        for (text, want) in [
            ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
            ("iban DE89370400440532013000.", "DE89370400440532013000"),
            (
                "IBAN: DE89 3704 0044 0532 0130 00, ok",
                "DE89 3704 0044 0532 0130 00",
            ),
            ("gb82west12345698765432", "gb82west12345698765432"),
            ("BE68 5390 0754 7034 Bank", "BE68 5390 0754 7034"),
            ("NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00"),
            (
                "FR14 2004 1010 0505 0001 3M02 606",
                "FR14 2004 1010 0505 0001 3M02 606",
            ),
            ("NO9386011117947", "NO9386011117947"),
            // Not in the registry: any length, upper case.
            ("XY93 1234 5678 9012 3", "XY93 1234 5678 9012 3"),
        ] {
            assert_finds(Iban, text, want);
        }
        for text in [
            "GB83 WEST 1234 5698 7654 32",
            "DE89370400440532013001",
            "DE88370400440532013000",
            // Right checksum, wrong length for DE.
            "DE8937040044053201300",
            "XDE89370400440532013000",
            "ab12cdef34567890abcdef12",
            // Hexadecimal ids (W3C trace context) that pass mod-97.
            "trace=00-aa07be8061b20191-01",
            "00-af074da0a8a47594f3ac4e229481f986-f75492430371be3d-01",
            // Right checksum, but a BE BBAN is all digits.
            "BE3453900754703A",
            // Not in the registry: upper case only.
            "xy93 1234 5678 9012 3",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn us_ssn() {
        for (text, want) in [
            ("ssn 123-45-6789", "123-45-6789"),
            ("SSN: 123 45 6789.", "123 45 6789"),
            ("{\"ssn\":\"078-05-1120\"}", "078-05-1120"),
            ("ssn:899-99-9999", "899-99-9999"),
        ] {
            assert_finds(UsSsn, text, want);
        }
        for text in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
            "123456789",
            "ABC-123-45-6789",
            "123-45-6789-01",
            "2024-01-15",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn phone() {
        for (text, want) in [
            ("call +1 415 555 2671 now", "+1 415 555 2671"),
            ("tel:+14155552671", "+14155552671"),
            ("+44 20 7946 0958", "+44 20 7946 0958"),
            ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
            ("(555) 123-4567", "(555) 123-4567"),
            ("call (555)123-4567.", "(555)123-4567"),
            ("555-123-4567", "555-123-4567"),
            ("555.123.4567", "555.123.4567"),
            ("555 123-4567", "555 123-4567"),
            ("phone: 1-800-555-1234", "1-800-555-1234"),
            ("1 (800) 555-1234", "1 (800) 555-1234"),
        ] {
            assert_finds(Phone, text, want);
        }
        for text in [
            "2024-01-15",
            "2024-01-15T10:32:11.123Z",
            "2024-01-15 10:32:11",
            "+1234567",
            "555-1234",
            "ip 10.0.3.17 port 5432",
            "1+12345678=12345679",
            "x+12345678",
            "555-123-45678",
            "1555-123-4567",
            "v555.123.4567",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn aws_access_key() {
        for (text, want) in [
            ("key=AKIAIOSFODNN7EXAMPLE;", "AKIAIOSFODNN7EXAMPLE"),
            ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
            ("\"ABIA0123456789ABCDEF\"", "ABIA0123456789ABCDEF"),
            ("ACCAZZZZZZZZZZZZZZZZ", "ACCAZZZZZZZZZZZZZZZZ"),
        ] {
            assert_finds(AwsAccessKey, text, want);
        }
        for text in [
            "XAKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "AKIAiosfodnn7EXAMPLE",
            "AKIA",
            "AWS ACCESS",
        ] {
            assert_clean(text);
        }
    }

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----";

    #[test]
    fn private_key() {
        let text = format!("key: {PEM}\nnext line");
        assert_finds(PrivateKey, &text, PEM);
        let json =
            "{\"k\":\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----\\n\"}";
        assert_finds(
            PrivateKey,
            json,
            "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----",
        );
        // No END line: to the end of the text.
        let cut = "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA 4111";
        assert_finds(PrivateKey, cut, &cut[2..]);
        // An END for another label does not close it.
        let other = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\nrest";
        assert_finds(PrivateKey, other, other);
        for text in [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "----- BEGIN RSA PRIVATE KEY",
            "-----BEGIN",
            "-- a --- b -----",
        ] {
            assert_clean(text);
        }
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn jwt() {
        assert_finds(Jwt, &format!("Authorization: Bearer {JWT}\r\n"), JWT);
        let unsecured = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.";
        assert_finds(Jwt, &format!("t={unsecured} x"), unsecured);
        for text in [
            "eyJhbGciOi.short.x",
            "eyJ",
            "eyJhbGciOiJIUzI1NiJ9",
            &format!("abc{JWT}"),
            "eyJhbGciOiJIUzI1NiJ9 .eyJzdWIiOiIxMjMifQ.sig",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn ordinary_text_is_clean() {
        for text in [
            "",
            "The quick brown fox jumps over the lazy dog.",
            "2024-01-15T10:32:11.123456Z INFO [worker-3] GET /api/v1/orders/84213 200 12ms",
            "request_id=550e8400-e29b-41d4-a716-446655440000 trace=4bf92f3577b34da6a3ce929d0e0e4736",
            "order ORD-2024-000123456 shipped; invoice INV-99812734",
            "version 1.2.3, v10.22.1-beta.4, rustc 1.95.0 (59807616e 2026-04-14)",
            "total 1234567 bytes, 98765432 rows, 3.14159265358979 pi, -42, 1e10",
            "1,234,567,890.00 EUR",
            "10.0.0.1:5432 192.168.100.200 ::1 fe80::1ff:fe23:4567:890a",
            "221B Baker Street, London NW1 6XE; 1600 Amphitheatre Pkwy, Mountain View, CA 94043",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "ABCDEFGHIJ AKIA A-A J-J --- -----BEGIN CERTIFICATE-----",
            "dates 01/15/2024 15.01.2024 2024/01/15 20240115 12:30:45",
        ] {
            assert_clean(text);
        }
    }

    #[test]
    fn only_enabled_kinds_and_duplicates() {
        let text = "john@example.com 4111 1111 1111 1111 123-45-6789";
        let d = Detectors::new(&[UsSsn, UsSsn, Email]);
        let kinds: Vec<_> = d.scan(text).into_iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![Email, UsSsn]);
        assert!(Detectors::new(&[]).scan(text).is_empty());
        assert_eq!(Detectors::new(&[]).redact(text), None);
        assert_eq!(
            format!("{d:?}"),
            "Detectors { kinds: [\"email\", \"us_ssn\"] }"
        );
    }

    #[test]
    fn redact() {
        let d = all();
        assert_eq!(
            d.redact("name=Ann email=ann@example.com card=4111 1111 1111 1111 ssn 123-45-6789")
                .as_deref(),
            Some(
                "name=Ann email=[REDACTED:email] card=[REDACTED:credit_card] ssn [REDACTED:us_ssn]"
            )
        );
        assert_eq!(
            d.redact(&format!("{JWT} AKIAIOSFODNN7EXAMPLE")).as_deref(),
            Some("[REDACTED:jwt] [REDACTED:aws_access_key]")
        );
        assert_eq!(
            d.redact("+44 20 7946 0958/DE89370400440532013000")
                .as_deref(),
            Some("[REDACTED:phone]/[REDACTED:iban]")
        );
        assert_eq!(
            d.redact(&format!("a {PEM} b")).as_deref(),
            Some("a [REDACTED:private_key] b")
        );
        assert_eq!(d.redact("nothing to see here, 2024-01-15"), None);
    }

    #[test]
    fn overlaps_keep_the_longer() {
        // A card number as the local part of an address: one email.
        assert_finds(
            Email,
            "4111111111111111@example.com",
            "4111111111111111@example.com",
        );
        // A phone number that is also digits of a longer E.164 number.
        assert_finds(Phone, "+1 555-123-4567", "+1 555-123-4567");
        let d = all();
        let text = "a@b.co 555-123-4567 123-45-6789 4111111111111111 x@y.org";
        let f = d.scan(text);
        assert_eq!(f.len(), 5);
        assert!(f.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn utf8_around_findings() {
        let text = "Zürich – café ☕ 4111 1111 1111 1111 日本語 jöhn@example.com ok@exämple.com \
                    🎉+44 20 7946 0958🎉 GB82 WEST 1234 5698 7654 32€ ñ123-45-6789ñ";
        let f = all().scan(text);
        for x in &f {
            assert!(text.is_char_boundary(x.start) && text.is_char_boundary(x.end));
        }
        let got: Vec<_> = f.iter().map(|x| (x.kind, &text[x.start..x.end])).collect();
        assert_eq!(
            got,
            vec![
                (CreditCard, "4111 1111 1111 1111"),
                (Email, "jöhn@example.com"),
                (Email, "ok@exämple.com"),
                (Phone, "+44 20 7946 0958"),
                (Iban, "GB82 WEST 1234 5698 7654 32"),
                (UsSsn, "123-45-6789"),
            ]
        );
        let r = all().redact(text).unwrap();
        assert!(r.contains("☕ [REDACTED:credit_card] 日本語"));
        assert!(r.contains("🎉[REDACTED:phone]🎉"));
    }

    /// Mixed filler with digits, dashes, `@`, `A` and `J` but no PII.
    fn filler(len: usize) -> String {
        let line = "2024-01-15T10:32:11Z INFO GET /v1/items/42?page=3 200 12ms Ann J. \
                    Doe @home -- AWS region us-east-1, eyJ; Über 1.2.3 (555) 12\n";
        let mut s = String::with_capacity(len + line.len());
        while s.len() < len {
            s.push_str(line);
        }
        s
    }

    #[test]
    fn five_megabytes() {
        let mut text = filler(5 << 20);
        assert!(found(&text).is_empty());
        // Findings at the start, across each MAX_SCAN boundary and at the end.
        let mut want = vec![];
        text.insert_str(0, "4111111111111111 ");
        want.push(0);
        for k in 1..5 {
            let at = k * MAX_SCAN - 8;
            let at = (at..).find(|&i| text.is_char_boundary(i)).unwrap();
            text.insert_str(at, " jane.roe@example.com ");
            want.push(at + 1);
        }
        text.push_str(" 123-45-6789");
        want.push(text.len() - 11);
        let f = all().scan(&text);
        assert_eq!(f.iter().map(|x| x.start).collect::<Vec<_>>(), want);
        assert_eq!(f.last().unwrap().end, text.len());
    }

    #[test]
    fn adversarial_inputs_are_linear() {
        let n = 2 << 20;
        let d = all();
        let inputs = [
            "@".repeat(n),
            "a@".repeat(n / 2),
            "a.".repeat(n / 2) + "@",
            "-----BEGIN RSA PRIVATE KEY-----\n".repeat(n / 32),
            "-----BEGIN RSA PRIVATE KEY----- -----END EC PRIVATE KEY-----".repeat(n / 60),
            "-".repeat(n),
            "1 ".repeat(n / 2),
            "1-".repeat(n / 2),
            "4".repeat(n),
            "+1 ".repeat(n / 3),
            "(1) ".repeat(n / 4),
            "eyJ".repeat(n / 3),
            ".eyJaaaaaaaaaa".repeat(n / 14),
            "AKIA".repeat(n / 4),
            "DE89 ".repeat(n / 5),
            "ab12".repeat(n / 4),
        ];
        for text in &inputs {
            let t = std::time::Instant::now();
            let f = d.scan(text);
            assert!(f.windows(2).all(|w| w[0].end <= w[1].start));
            assert!(
                t.elapsed() < std::time::Duration::from_secs(20),
                "{:?}: {:?}",
                &text[..20],
                t.elapsed()
            );
        }
        // A BEGIN without END: one finding to the end.
        let f = d.scan(&inputs[3]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (0, inputs[3].len()));
    }

    #[test]
    fn long_clusters_are_evaluated_in_chunks() {
        // More groups than the buffer holds, with a card and an SSN deep
        // inside a space-joined run of numbers.
        let mut text = "1 ".repeat(100);
        text.push_str("4111 1111 1111 1111 ");
        text.push_str(&"22 ".repeat(37));
        text.push_str("123 45 6789 ");
        text.push_str(&"7 ".repeat(50));
        let got: Vec<_> = found(&text)
            .into_iter()
            .map(|(k, s)| (k, s.to_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                (CreditCard, "4111 1111 1111 1111".to_owned()),
                (UsSsn, "123 45 6789".to_owned())
            ]
        );
    }
}
