//! `Detectors::scan` and `redact`: the content detectors that mask result
//! values (text of any shape and length).
//!
//! The first byte picks the enabled kinds (bit i: `DetectorKind::ALL[i]`;
//! 0: all of them); the rest, if UTF-8, is the text. Findings must lie on
//! char boundaries, be sorted and disjoint, be of an enabled kind, and
//! re-validate independently of the detectors' own code; `redact` must
//! agree with `scan`.
#![no_main]
use gatehouse_core::policy::spec::DetectorKind;
use gatehouse_policy::detect::{Detectors, Finding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mask, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mask = if mask == 0 { 0xff } else { mask };
    let kinds: Vec<DetectorKind> = DetectorKind::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, k)| *k)
        .collect();
    let d = Detectors::new(&kinds);
    let found = d.scan(text);

    let mut last_end = 0;
    for f in &found {
        assert!(f.start < f.end && f.end <= text.len(), "{f:?}");
        assert!(f.start >= last_end, "overlap or unsorted: {found:?}");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!(kinds.contains(&f.kind), "{f:?} not enabled");
        check(text, f);
        last_end = f.end;
    }

    match d.redact(text) {
        None => assert!(found.is_empty()),
        Some(r) => {
            let mut want = String::new();
            let mut at = 0;
            for f in &found {
                want.push_str(&text[at..f.start]);
                want.push_str(&format!("[REDACTED:{}]", f.kind.name()));
                at = f.end;
            }
            want.push_str(&text[at..]);
            assert_eq!(r, want);
        }
    }
});

/// Re-validates a finding from its text alone.
fn check(text: &str, f: &Finding) {
    let s = &text[f.start..f.end];
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    match f.kind {
        DetectorKind::Email => {
            assert_eq!(s.matches('@').count(), 1, "{s:?}");
            let (local, domain) = s.split_once('@').unwrap_or_default();
            assert!(!local.is_empty() && domain.contains('.'), "{s:?}");
            let tld = domain.rsplit('.').next().unwrap_or_default();
            assert!(
                tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()),
                "{s:?}"
            );
        }
        DetectorKind::CreditCard => {
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_digit() || c == b' ' || c == b'-'),
                "{s:?}"
            );
            assert!((13..=19).contains(&digits.len()), "{s:?}");
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    if i % 2 == 1 {
                        (d * 2) / 10 + (d * 2) % 10
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "Luhn {s:?}");
            assert!(digits.iter().any(|&d| d != digits[0]), "{s:?}");
        }
        DetectorKind::Iban => {
            let alnum: Vec<u8> = s.bytes().filter(|c| *c != b' ').collect();
            assert!((15..=34).contains(&alnum.len()), "{s:?}");
            assert!(alnum.iter().all(u8::is_ascii_alphanumeric), "{s:?}");
            assert!(alnum[..2].iter().all(u8::is_ascii_alphabetic), "{s:?}");
            let mut r = 0u32;
            for c in alnum[4..].iter().chain(&alnum[..4]) {
                let v = u32::from(c.to_ascii_uppercase());
                r = if c.is_ascii_digit() {
                    (r * 10 + v - u32::from(b'0')) % 97
                } else {
                    (r * 100 + v - u32::from(b'A') + 10) % 97
                };
            }
            assert_eq!(r, 1, "mod-97 {s:?}");
        }
        DetectorKind::UsSsn => {
            assert_eq!(s.len(), 11, "{s:?}");
            assert_eq!(digits.len(), 9, "{s:?}");
            let area = digits[0] * 100 + digits[1] * 10 + digits[2];
            assert!(area != 0 && area != 666 && area < 900, "{s:?}");
        }
        DetectorKind::Phone => {
            if s.starts_with('+') {
                assert!((8..=15).contains(&digits.len()), "{s:?}");
            } else {
                assert!((10..=11).contains(&digits.len()), "{s:?}");
            }
        }
        DetectorKind::AwsAccessKey => {
            assert_eq!(s.len(), 20, "{s:?}");
            assert!(
                ["AKIA", "ASIA", "ABIA", "ACCA"]
                    .iter()
                    .any(|p| s.starts_with(p))
            );
        }
        DetectorKind::Jwt => {
            assert!(s.starts_with("eyJ") && s.matches('.').count() >= 2, "{s:?}");
        }
        DetectorKind::PrivateKey => {
            assert!(
                s.starts_with("-----BEGIN ") && s.contains("PRIVATE KEY"),
                "{s:?}"
            );
        }
    }
}
