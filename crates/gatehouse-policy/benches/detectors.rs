//! Throughput of the content detectors, all eight kinds, one thread.
//!
//! Builds a deterministic ~64 MiB corpus of database-like text values
//! (prose, log lines, JSON documents, postal addresses) with PII sprinkled
//! at about one item per 2 KB, then times `Detectors::scan` over every
//! value, and once more over the whole corpus as a single value.
//!
//! `cargo bench -p gatehouse-policy --bench detectors`

use std::hint::black_box;
use std::time::{Duration, Instant};

use gatehouse_core::policy::spec::DetectorKind;
use gatehouse_policy::detect::Detectors;

const TARGET: usize = 64 << 20;
/// One PII item per this many bytes, on average.
const PII_EVERY: usize = 2048;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "be",
    "are",
    "or",
    "an",
    "it",
    "not",
    "which",
    "have",
    "has",
    "had",
    "were",
    "their",
    "they",
    "been",
    "more",
    "one",
    "customer",
    "order",
    "delivery",
    "account",
    "payment",
    "invoice",
    "support",
    "request",
    "shipment",
    "warehouse",
    "product",
    "quality",
    "service",
    "team",
    "meeting",
    "report",
    "quarter",
    "revenue",
    "growth",
    "system",
    "update",
    "release",
    "feature",
    "issue",
    "ticket",
    "database",
    "server",
    "network",
    "latency",
    "after",
    "before",
    "during",
    "because",
    "however",
    "therefore",
    "please",
    "thanks",
    "regards",
    "received",
    "shipped",
    "returned",
    "refunded",
    "approved",
    "rejected",
    "pending",
    "scheduled",
    "available",
    "unfortunately",
    "additional",
    "information",
    "attached",
    "following",
    "previous",
    "next",
    "week",
    "month",
    "year",
    "today",
    "tomorrow",
    "yesterday",
    "morning",
    "afternoon",
    "evening",
    "London",
    "Paris",
    "Berlin",
    "Chicago",
    "Toronto",
    "Sydney",
    "Mumbai",
    "Tokyo",
    "Amsterdam",
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Eve",
    "Mallory",
    "Peggy",
    "Trent",
    "Victor",
    "Walter",
    "café",
    "naïve",
    "résumé",
    "Zürich",
    "Ångström",
    "façade",
];

const FIRST: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
];
const LAST: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.co.uk",
    "gmail.com",
    "outlook.com",
    "company.io",
];
const STREETS: &[&str] = &[
    "Maple Avenue",
    "Oak Street",
    "Main Street",
    "Elm Road",
    "Sunset Boulevard",
    "Baker Street",
    "Rue de Rivoli",
    "Hauptstraße",
];
const CITIES: &[&str] = &[
    "Springfield, IL 62704",
    "Austin, TX 78701",
    "Portland, OR 97205",
    "London NW1 6XE",
    "75001 Paris",
    "10115 Berlin",
    "Toronto, ON M5V 2T6",
];

fn sentence(r: &mut Rng, s: &mut String) {
    let n = 6 + r.below(14);
    for i in 0..n {
        let w = r.pick(WORDS);
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push(' ');
            match r.below(40) {
                0 => s.push_str(&r.below(2030).to_string()),
                1 => s.push_str(&format!(
                    "${},{:03}.{:02}",
                    r.below(99),
                    r.below(1000),
                    r.below(100)
                )),
                2 => s.push_str(&format!("{} minutes", r.below(90))),
                3 => s.push_str(&format!("#{}", 10_000 + r.below(90_000))),
                _ => s.push_str(w),
            }
        }
        if i + 1 < n && r.below(12) == 0 {
            s.push(',');
        }
    }
    s.push_str(r.pick(&[". ", ". ", ". ", "! ", "? "]));
}

fn uuid(r: &mut Rng) -> String {
    let h = b"0123456789abcdef";
    format!(
        "{}-{}-4{}-a{}-{}",
        r.chars(h, 8),
        r.chars(h, 4),
        r.chars(h, 3),
        r.chars(h, 3),
        r.chars(h, 12)
    )
}

fn timestamp(r: &mut Rng) -> String {
    format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000)
    )
}

fn log_line(r: &mut Rng, s: &mut String) {
    let ts = timestamp(r);
    let level = r.pick(&["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"]);
    let method = r.pick(&["GET", "GET", "POST", "PUT", "DELETE"]);
    let path = r.pick(&[
        "/api/v1/orders",
        "/api/v1/users",
        "/healthz",
        "/api/v2/items",
        "/login",
    ]);
    let id = uuid(r);
    s.push_str(&format!(
        "{ts} {level} [http-worker-{}] {method} {path}/{}?page={} {} {}ms ip=10.{}.{}.{} port={} request_id={id} trace=00-{}-{}-01 ua=\"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/{}.0\"\n",
        r.below(16),
        r.below(1_000_000),
        r.below(20),
        r.pick(&["200", "200", "200", "201", "204", "304", "404", "500"]),
        r.below(2500),
        r.below(256),
        r.below(256),
        r.below(256),
        1024 + r.below(60000),
        r.chars(b"0123456789abcdef", 32),
        r.chars(b"0123456789abcdef", 16),
        100 + r.below(30),
    ));
}

fn json_doc(r: &mut Rng, s: &mut String) {
    let mut desc = String::new();
    sentence(r, &mut desc);
    s.push_str(&format!(
        "{{\"id\":{},\"sku\":\"SKU-{}-{}\",\"uuid\":\"{}\",\"name\":\"{} {}\",\"price\":{}.{:02},\"qty\":{},\"rating\":{}.{},\"created_at\":\"{}\",\"version\":\"{}.{}.{}\",\"tags\":[\"{}\",\"{}\"],\"description\":\"{}\",\"geo\":{{\"lat\":{}.{},\"lon\":-{}.{}}}}}\n",
        r.below(10_000_000),
        1000 + r.below(9000),
        r.pick(&["S", "M", "L", "XL"]),
        uuid(r),
        r.pick(WORDS),
        r.pick(WORDS),
        r.below(2000),
        r.below(100),
        r.below(20),
        r.below(5),
        r.below(10),
        timestamp(r),
        r.below(5),
        r.below(30),
        r.below(100),
        r.pick(WORDS),
        r.pick(WORDS),
        desc.trim_end(),
        r.below(90),
        r.digits(6),
        r.below(180),
        r.digits(6),
    ));
}

fn address(r: &mut Rng, s: &mut String) {
    s.push_str(&format!(
        "{} {}, Apt {}{}, {}\n",
        1 + r.below(9999),
        r.pick(STREETS),
        1 + r.below(30),
        r.pick(&["A", "B", "C", ""]),
        r.pick(CITIES)
    ));
}

// --- PII generators (valid checksums) -------------------------------------

fn luhn_complete(r: &mut Rng, prefix: &str, len: usize) -> String {
    let mut d: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
    while d.len() < len - 1 {
        d.push(r.below(10) as u32);
    }
    // Check digit: doubling starts at the digit left of it.
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 0 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    d.push((10 - sum % 10) % 10);
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

fn card(r: &mut Rng) -> String {
    let (prefix, len) = *[("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)]
        .get(r.below(5))
        .unwrap_or(&("4", 16));
    let n = luhn_complete(r, prefix, len);
    match (r.below(3), len) {
        (0, _) => n,
        (_, 15) => format!("{} {} {}", &n[..4], &n[4..10], &n[10..]),
        (k, _) => {
            let sep = if k == 1 { " " } else { "-" };
            format!(
                "{}{sep}{}{sep}{}{sep}{}",
                &n[..4],
                &n[4..8],
                &n[8..12],
                &n[12..]
            )
        }
    }
}

fn iban(r: &mut Rng) -> String {
    let bban = r.digits(18);
    let rearranged = format!("{bban}131400"); // + "DE" (13 14) + "00"
    let rem = rearranged
        .bytes()
        .fold(0u32, |m, b| (m * 10 + u32::from(b - b'0')) % 97);
    let ib = format!("DE{:02}{bban}", 98 - rem);
    if r.below(2) == 0 {
        ib
    } else {
        ib.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn pii(r: &mut Rng) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    match r.below(100) {
        0..=24 => format!("{}.{}@{}", r.pick(FIRST), r.pick(LAST), r.pick(DOMAINS)),
        25..=39 => card(r),
        40..=49 => iban(r),
        50..=59 => format!(
            "{:03}-{:02}-{:04}",
            1 + r.below(665),
            1 + r.below(99),
            1 + r.below(9999)
        ),
        60..=79 => {
            let (a, b, c) = (200 + r.below(800), 200 + r.below(800), r.below(10000));
            match r.below(4) {
                0 => format!("({a}) {b}-{c:04}"),
                1 => format!("{a}-{b}-{c:04}"),
                2 => format!("+1 {a} {b} {c:04}"),
                _ => format!("+44 20 {:04} {c:04}", r.below(10000)),
            }
        }
        80..=86 => format!("AKIA{}", r.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        87..=98 => {
            let n = 60 + r.below(200);
            format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                r.chars(B64, n),
                r.chars(B64, 43)
            )
        }
        _ => {
            let mut k = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
            for _ in 0..25 {
                k.push_str(&r.chars(&B64[..62], 64));
                k.push('\n');
            }
            k.push_str("-----END RSA PRIVATE KEY-----");
            k
        }
    }
}

/// Database-like values: short cells (addresses, names), documents (JSON,
/// comments) and log blobs.
fn corpus() -> (Vec<String>, usize) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut values = Vec::new();
    let mut total = 0;
    let mut inserted = 0;
    let mut until_pii = r.below(2 * PII_EVERY);
    while total < TARGET {
        let size = match r.below(10) {
            0..=3 => 40 + r.below(200),
            4..=7 => 300 + r.below(3000),
            _ => 4000 + r.below(12000),
        };
        let mut s = String::with_capacity(size + 512);
        while s.len() < size {
            let before = s.len();
            match r.below(10) {
                0..=3 => sentence(&mut r, &mut s),
                4..=6 => log_line(&mut r, &mut s),
                7..=8 => json_doc(&mut r, &mut s),
                _ => address(&mut r, &mut s),
            }
            let grown = s.len() - before;
            if grown >= until_pii {
                s.push_str(" contact: ");
                s.push_str(&pii(&mut r));
                s.push_str(" \n");
                inserted += 1;
                until_pii = r.below(2 * PII_EVERY);
            } else {
                until_pii -= grown;
            }
        }
        total += s.len();
        values.push(s);
    }
    (values, inserted)
}

fn main() {
    let (values, inserted) = corpus();
    let bytes: usize = values.iter().map(String::len).sum();
    let d = Detectors::new(&DetectorKind::ALL);
    let mib = bytes as f64 / f64::from(1 << 20);

    let per_value = || {
        let mut k = 0;
        for v in &values {
            k += black_box(d.scan(black_box(v))).len();
        }
        k
    };
    let (t, findings) = best_of(3, per_value);
    println!(
        "detectors: {mib:.1} MiB in {:.3} s = {:.0} MB/s per core (findings: {findings})",
        t.as_secs_f64(),
        bytes as f64 / 1e6 / t.as_secs_f64()
    );
    println!(
        "  ({} values, {inserted} PII items inserted, best of 3 runs)",
        values.len()
    );

    let whole = values.concat();
    drop(values);
    let (t, findings) = best_of(3, || black_box(d.scan(black_box(&whole))).len());
    println!(
        "detectors (one {mib:.0} MiB value): {mib:.1} MiB in {:.3} s = {:.0} MB/s per core (findings: {findings})",
        t.as_secs_f64(),
        bytes as f64 / 1e6 / t.as_secs_f64()
    );
}

fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (best, out)
}
