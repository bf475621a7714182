//! PostgreSQL's text form of values that came in binary format, for the
//! recording: a client that asks for binary results (asyncpg,
//! tokio-postgres, JDBC for some types) should not leave hex in the
//! recording where a text client would have left `42` or `alice`.
//!
//! Only types whose binary layout is fixed are rendered, the way the
//! server's output functions render them with default settings
//! (`extra_float_digits` 1) but for three the caller passes on
//! ([`Rendering::set_parameter`]): dates and timestamps are written in
//! the session's `DateStyle`, intervals in its `IntervalStyle`, and
//! `timestamptz` in its `TimeZone` when that is found in the system's time
//! zone database (the one PostgreSQL reads on Debian) or is a POSIX rule
//! or offset, else in UTC (`+00`).
//! One-dimensional and multi-dimensional arrays of these types are
//! rendered as `array_out` writes them. Types created in the database
//! (enums, composite types, domains, arrays of these, extension types sent
//! as text such as `citext`, and `hstore`) are rendered when the caller knows them
//! from the upstream's catalog ([`UserTypes`]). Anything else, and any
//! value whose bytes do not fit its type, is left to the caller (kept as
//! hex). The text written is at most [`MAX_TEXT_BASE`] bytes plus eight
//! times the value's own length (a `bit` string writes a character per
//! bit).

use std::collections::HashMap;
use std::fmt::Write as _;

/// What the upstream's catalog says of a type created in the database, as
/// much as rendering its binary values needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    /// Sent as its text: an enum's label, or an extension type whose send
    /// function is text's (`citext`).
    Text,
    /// A row type (a table's, or `CREATE TYPE … AS (…)`): sent as a record.
    Composite,
    /// An array of the given element type.
    Array(u32),
    /// The `hstore` extension's key/value type.
    Hstore,
    /// A domain over the given type, sent as that type.
    Domain(u32),
    /// Anything else (left as hex).
    Opaque,
}

/// Types created in the database, by OID (see [`needs_catalog`]).
pub type UserTypes = HashMap<u32, UserType>;

/// What rendering depends on beyond a value's type: the types created in
/// the database that are known, and the session's `TimeZone`, `DateStyle`
/// and `IntervalStyle`.
#[derive(Debug, Default, Clone)]
pub struct Rendering {
    pub types: UserTypes,
    /// `None`: UTC.
    zone: Option<jiff::tz::TimeZone>,
    /// What the SQL, German and Postgres styles write after a
    /// `timestamptz` instead of the zone's abbreviation: `UTC` or `GMT`
    /// when `zone` is `None`, nothing for a bare offset (as PostgreSQL).
    zone_label: Option<&'static str>,
    date_style: DateStyle,
    /// The day before the month (`DMY`), in the SQL and Postgres styles.
    day_first: bool,
    interval_style: IntervalStyle,
}

/// How the session writes intervals (`IntervalStyle`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum IntervalStyle {
    /// `1 year 2 mons -3 days +04:05:06.5`
    #[default]
    Postgres,
    /// `@ 1 year 2 mons 3 days 4 hours 5 mins 6.5 secs ago`
    PostgresVerbose,
    /// `+1-2 -3 +4:05:06.5`, `1-2`, `3 4:05:06.5`
    SqlStandard,
    /// `P1Y2M-3DT4H5M6.5S`
    Iso8601,
}

/// How the session writes dates and times (`DateStyle`'s first part).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum DateStyle {
    #[default]
    Iso,
    Sql,
    German,
    Postgres,
}

impl Rendering {
    /// Takes a setting the server reports (`ParameterStatus`, or the
    /// upstream's at start-up) that the text of values depends on:
    /// `TimeZone`, `DateStyle` and `IntervalStyle`; others are ignored.
    pub fn set_parameter(&mut self, name: &str, value: &str) {
        match name {
            "TimeZone" => self.set_time_zone(value),
            "DateStyle" => self.set_date_style(value),
            "IntervalStyle" => {
                self.interval_style = match value {
                    "postgres_verbose" => IntervalStyle::PostgresVerbose,
                    "sql_standard" => IntervalStyle::SqlStandard,
                    "iso_8601" => IntervalStyle::Iso8601,
                    _ => IntervalStyle::Postgres,
                }
            }
            _ => {}
        }
    }

    /// Takes `DateStyle` as the server reports it: `ISO, MDY`,
    /// `SQL, DMY`, `Postgres, MDY`, `German, DMY`.
    fn set_date_style(&mut self, value: &str) {
        let mut parts = value.split(',').map(str::trim);
        self.date_style = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            Some("sql") => DateStyle::Sql,
            Some("german") => DateStyle::German,
            Some("postgres") => DateStyle::Postgres,
            _ => DateStyle::Iso,
        };
        self.day_first = parts.next().is_some_and(|o| o.eq_ignore_ascii_case("DMY"));
    }

    /// Takes the session's `TimeZone` setting as the server reports it
    /// (`ParameterStatus`): an IANA name from the system's time zone
    /// database, a POSIX rule (`<+03>-03`, `EST5EDT`) or a bare POSIX
    /// offset (`-03:30`). One that cannot be resolved leaves `timestamptz`
    /// in UTC, with its `+00`, so the instant is still the right one.
    fn set_time_zone(&mut self, name: &str) {
        (self.zone, self.zone_label) = match name {
            "GMT" | "Etc/GMT" => (None, Some("GMT")),
            "UTC" | "Etc/UTC" | "Etc/Universal" => (None, Some("UTC")),
            _ => match jiff::tz::TimeZone::get(name).or_else(|_| jiff::tz::TimeZone::posix(name)) {
                Ok(zone) => (Some(zone), None),
                Err(_) => match posix_offset(name) {
                    Some(zone) => (Some(zone), Some("")),
                    None => (None, Some("UTC")),
                },
            },
        };
    }

    /// The offset east of UTC, in seconds, at `us` microseconds after
    /// 2000-01-01 00:00 UTC (0 in UTC), and the zone's abbreviation then,
    /// written into `label` (what the non-ISO styles write after the
    /// time). `None` outside the years -9999 to 9999 in a zone other than
    /// UTC, where jiff has no answer.
    fn zone_at(&self, us: i64, label: &mut String) -> Option<i32> {
        const UNIX_TO_2000_US: i64 = 946_684_800_000_000;
        label.clear();
        let at = us
            .checked_add(UNIX_TO_2000_US)
            .and_then(|u| jiff::Timestamp::from_microsecond(u).ok());
        match (&self.zone, at) {
            (Some(zone), Some(t)) if self.date_style == DateStyle::Iso => {
                Some(zone.to_offset(t).seconds())
            }
            (Some(zone), Some(t)) => {
                let info = zone.to_offset_info(t);
                label.push_str(self.zone_label.unwrap_or(info.abbreviation()));
                Some(info.offset().seconds())
            }
            (Some(_), None) => None,
            (None, _) => {
                label.push_str(self.zone_label.unwrap_or("UTC"));
                Some(0)
            }
        }
    }
}

/// A POSIX offset without a zone name, as PostgreSQL keeps one it was set
/// to (`-03:30`, `3:30`, `+05:30:00`): hours, then minutes and seconds,
/// west of Greenwich unless the sign is `-`.
fn posix_offset(name: &str) -> Option<jiff::tz::TimeZone> {
    let (west, rest) = match name.as_bytes().first()? {
        b'-' => (false, &name[1..]),
        b'+' => (true, &name[1..]),
        _ => (true, name),
    };
    let mut seconds = 0i32;
    let mut parts = 0u32;
    for part in rest.split(':') {
        let n: i32 = match part.len() {
            1 | 2 if part.bytes().all(|b| b.is_ascii_digit()) => part.parse().ok()?,
            _ => return None,
        };
        if parts == 3 || (parts > 0 && n > 59) {
            return None;
        }
        seconds = seconds * 60 + n;
        parts += 1;
    }
    seconds *= 60i32.pow(3 - parts);
    let east = if west { -seconds } else { seconds };
    jiff::tz::Offset::from_seconds(east)
        .ok()
        .map(jiff::tz::TimeZone::fixed)
}

/// Whether values of `type_oid` can only be rendered with what the
/// catalog says of it: types created after `initdb` (enums, composites,
/// domains, extensions' types) have OIDs from 16384 (`FirstNormalObjectId`)
/// on; built-in ones are rendered or not by their OID alone.
pub fn needs_catalog(type_oid: u32) -> bool {
    type_oid >= 16384
}

/// Nesting through domains and arrays is followed this deep, at most.
const MAX_DEPTH: u8 = 8;

/// Where a value is rendered: with which types known, how deep, and
/// whether inside a record (where a record is not rendered, which bounds
/// the nesting).
#[derive(Clone, Copy)]
struct Within<'a> {
    with: &'a Rendering,
    depth: u8,
    in_record: bool,
}

impl Within<'_> {
    /// One level deeper; `None` past [`MAX_DEPTH`].
    fn deeper(self) -> Option<Self> {
        (self.depth < MAX_DEPTH).then_some(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

/// Whether a value of type `type_oid` in binary is its text (UTF-8), as
/// for `text`, `varchar`, `char(n)`, `name`, `json`, `xml` and `unknown`:
/// then its first bytes are its text's beginning.
pub fn binary_is_text(type_oid: u32) -> bool {
    matches!(
        type_oid,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON | oid::XML | oid::UNKNOWN
    )
}

/// Type OIDs (from `pg_type`) this module renders.
mod oid {
    pub const BOOL: u32 = 16;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const BYTEA: u32 = 17;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const INET: u32 = 869;
    pub const CIDR: u32 = 650;
    pub const MACADDR: u32 = 829;
    pub const MACADDR8: u32 = 774;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const POINT: u32 = 600;
    pub const LSEG: u32 = 601;
    pub const PATH: u32 = 602;
    pub const BOX: u32 = 603;
    pub const POLYGON: u32 = 604;
    pub const LINE: u32 = 628;
    pub const CIRCLE: u32 = 718;

    pub const RECORD: u32 = 2249;
    pub const RECORD_ARRAY: u32 = 2287;

    /// The built-in multirange types, with their range type.
    pub const MULTIRANGES: &[(u32, u32)] = &[
        (4451, 3904),
        (4536, 3926),
        (4532, 3906),
        (4533, 3908),
        (4534, 3910),
        (4535, 3912),
    ];

    /// The built-in range types, with their element type.
    pub const RANGES: &[(u32, u32)] = &[
        (3904, INT4),
        (3926, INT8),
        (3906, NUMERIC),
        (3908, TIMESTAMP),
        (3910, TIMESTAMPTZ),
        (3912, DATE),
    ];

    /// The built-in array types of the types above, with their element type.
    pub const ARRAYS: &[(u32, u32)] = &[
        (1000, BOOL),
        (1001, BYTEA),
        (1002, CHAR),
        (1003, NAME),
        (1005, INT2),
        (1007, INT4),
        (1009, TEXT),
        (1014, BPCHAR),
        (1015, VARCHAR),
        (1016, INT8),
        (1021, FLOAT4),
        (1022, FLOAT8),
        (1028, OID),
        (199, JSON),
        (143, XML),
        (3807, JSONB),
        (1115, TIMESTAMP),
        (1182, DATE),
        (1183, TIME),
        (1185, TIMESTAMPTZ),
        (1187, INTERVAL),
        (1270, TIMETZ),
        (1231, NUMERIC),
        (2951, UUID),
        (1041, INET),
        (651, CIDR),
        (1040, MACADDR),
        (775, MACADDR8),
        (1561, BIT),
        (1563, VARBIT),
        (1017, POINT),
        (1018, LSEG),
        (1019, PATH),
        (1027, POLYGON),
        (629, LINE),
        (719, CIRCLE),
        (3905, 3904),
        (3927, 3926),
        (3907, 3906),
        (3909, 3908),
        (3911, 3910),
        (3913, 3912),
        (6150, 4451),
        (6157, 4536),
        (6151, 4532),
        (6152, 4533),
        (6153, 4534),
        (6155, 4535),
        (RECORD_ARRAY, RECORD),
    ];
}

/// The fixed part of the bound on the text written for one value (a
/// `numeric` of a few bytes can write about 2,000 digits).
pub const MAX_TEXT_BASE: usize = 2048;

/// Appends the text form of `v`, a binary value of type `type_oid`, to
/// `out`, as the session described by `with` would see it. `None` (and
/// `out` as it was) when the type is not one rendered here or the bytes do
/// not fit it.
pub fn render(type_oid: u32, v: &[u8], with: &Rendering, out: &mut String) -> Option<()> {
    let start = out.len();
    let within = Within {
        with,
        depth: 0,
        in_record: false,
    };
    let done = render_into(type_oid, v, out, within)
        .filter(|()| out.len() - start <= MAX_TEXT_BASE + 8 * v.len());
    if done.is_none() {
        out.truncate(start);
    }
    done
}

fn render_into(type_oid: u32, v: &[u8], out: &mut String, within: Within<'_>) -> Option<()> {
    match type_oid {
        oid::BOOL => match v {
            [0] => out.push('f'),
            [1] => out.push('t'),
            _ => return None,
        },
        oid::INT2 => push_int(out, i16::from_be_bytes(v.try_into().ok()?)),
        oid::INT4 => push_int(out, i32::from_be_bytes(v.try_into().ok()?)),
        oid::INT8 => push_int(out, i64::from_be_bytes(v.try_into().ok()?)),
        oid::OID => push_int(out, u32::from_be_bytes(v.try_into().ok()?)),
        t if binary_is_text(t) => out.push_str(std::str::from_utf8(v).ok()?),
        // `"char"`: one byte; the zero byte reads as the empty string (a
        // byte over 0x7f, which the server writes as an octal escape, is
        // left as hex).
        oid::CHAR => match v {
            [] | [0] => {}
            [b] if b.is_ascii() => out.push(char::from(*b)),
            _ => return None,
        },
        oid::JSONB => match v.split_first() {
            // Version 1 is the only one: the JSON text follows.
            Some((1, text)) => out.push_str(std::str::from_utf8(text).ok()?),
            _ => return None,
        },
        oid::FLOAT4 => float(out, f64::from(f32::from_be_bytes(v.try_into().ok()?)), true),
        oid::FLOAT8 => float(out, f64::from_be_bytes(v.try_into().ok()?), false),
        oid::UUID => {
            let b: [u8; 16] = v.try_into().ok()?;
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{byte:02x}");
            }
        }
        oid::NUMERIC => numeric(out, v)?,
        oid::DATE => {
            let days = i32::from_be_bytes(v.try_into().ok()?);
            match days {
                i32::MAX => out.push_str("infinity"),
                i32::MIN => out.push_str("-infinity"),
                d => date_time(out, within.with, i64::from(d), None, None)?,
            }
        }
        oid::TIME => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            if !(0..=86_400_000_000).contains(&us) {
                return None;
            }
            time_of_day(out, us.unsigned_abs());
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            match us {
                i64::MAX => out.push_str("infinity"),
                i64::MIN => out.push_str("-infinity"),
                us => {
                    // timestamptz: the local time and its zone.
                    let mut label = String::new();
                    let east = if type_oid == oid::TIMESTAMPTZ {
                        within.with.zone_at(us, &mut label)?
                    } else {
                        0
                    };
                    let local = us.checked_add(i64::from(east) * 1_000_000)?;
                    date_time(
                        out,
                        within.with,
                        local.div_euclid(86_400_000_000),
                        Some(local.rem_euclid(86_400_000_000).unsigned_abs()),
                        (type_oid == oid::TIMESTAMPTZ).then_some((east, label.as_str())),
                    )?;
                }
            }
        }
        oid::BYTEA => {
            out.push_str("\\x");
            for b in v {
                let _ = write!(out, "{b:02x}");
            }
        }
        oid::INTERVAL => interval(out, v, within.with.interval_style)?,
        oid::TIMETZ => {
            let (time, zone) = v.split_at_checked(8)?;
            let us = i64::from_be_bytes(time.try_into().ok()?);
            let west = i32::from_be_bytes(zone.try_into().ok()?);
            // The server keeps offsets within ±15:59:59.
            if !(0..=86_400_000_000).contains(&us) || west.unsigned_abs() >= 16 * 3600 {
                return None;
            }
            time_of_day(out, us.unsigned_abs());
            zone_offset(out, west);
        }
        oid::INET | oid::CIDR => inet(out, v, type_oid == oid::CIDR)?,
        oid::POINT | oid::LSEG | oid::PATH | oid::BOX | oid::POLYGON | oid::LINE | oid::CIRCLE => {
            geometry(out, type_oid, v)?;
        }
        oid::MACADDR | oid::MACADDR8 => {
            if v.len() != if type_oid == oid::MACADDR { 6 } else { 8 } {
                return None;
            }
            for (i, b) in v.iter().enumerate() {
                if i > 0 {
                    out.push(':');
                }
                let _ = write!(out, "{b:02x}");
            }
        }
        oid::BIT | oid::VARBIT => {
            let (len, bits) = v.split_at_checked(4)?;
            let len = usize::try_from(i32::from_be_bytes(len.try_into().ok()?)).ok()?;
            if bits.len() != len.div_ceil(8) {
                return None;
            }
            for i in 0..len {
                out.push(if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                    '1'
                } else {
                    '0'
                });
            }
        }
        t => {
            if let Some(&(_, element)) = oid::ARRAYS.iter().find(|(a, _)| *a == t) {
                array(out, v, element, within)?;
            } else if let Some(&(_, element)) = oid::RANGES.iter().find(|(r, _)| *r == t) {
                range(out, v, element, within)?;
            } else if let Some(&(_, range)) = oid::MULTIRANGES.iter().find(|(m, _)| *m == t) {
                multirange(out, v, range, within)?;
            } else if t == oid::RECORD {
                record(out, v, within)?;
            } else {
                user_type(out, t, v, within)?;
            }
        }
    }
    Some(())
}

/// A value of a type created in the database, as the catalog describes it.
fn user_type(out: &mut String, t: u32, v: &[u8], within: Within<'_>) -> Option<()> {
    if !needs_catalog(t) {
        return None;
    }
    match within.with.types.get(&t)? {
        UserType::Text => out.push_str(std::str::from_utf8(v).ok()?),
        UserType::Composite => record(out, v, within)?,
        UserType::Array(element) => array(out, v, *element, within.deeper()?)?,
        UserType::Domain(base) => render_into(*base, v, out, within.deeper()?)?,
        UserType::Hstore => hstore(out, v)?,
        UserType::Opaque => return None,
    }
    Some(())
}

/// An `hstore` in binary: a count, then each pair as the key's length and
/// bytes and the value's (-1 for NULL). Written as `hstore_out` writes it:
/// `"a"=>"1", "b"=>NULL`, keys and values in double quotes with `"` and
/// `\` escaped by a backslash, in the order sent (the stored order).
fn hstore(out: &mut String, v: &[u8]) -> Option<()> {
    let count = usize::try_from(be_i32(v, 0)?).ok()?;
    let mut rest = &v[4..];
    // Each pair takes at least its two lengths.
    if count > rest.len() / 8 {
        return None;
    }
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        for part in 0..2 {
            let len = be_i32(rest, 0)?;
            rest = &rest[4..];
            if len == -1 && part == 1 {
                out.push_str("NULL");
                continue;
            }
            let len = usize::try_from(len).ok()?;
            let text = std::str::from_utf8(rest.get(..len)?).ok()?;
            rest = &rest[len..];
            push_quoted(out, text, true, false);
            if part == 0 {
                out.push_str("=>");
            }
        }
    }
    rest.is_empty().then_some(())
}

/// A 32-bit big-endian signed integer at `at`.
fn be_i32(v: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

/// An array in binary: dimensions, a has-nulls flag, the element type,
/// each dimension's length and lower bound, then each element as a length
/// (-1 for NULL) and its bytes. Written as `array_out` writes it:
/// `{1,2,NULL}`, `{{1,2},{3,4}}`, bounds other than 1 as `[0:1]={a,b}`,
/// elements quoted where they would not read back otherwise.
fn array(out: &mut String, v: &[u8], element: u32, within: Within<'_>) -> Option<()> {
    let ndim = usize::try_from(be_i32(v, 0)?).ok()?;
    let flags = be_i32(v, 4)?;
    // The element type must be the array's own (checked, not trusted).
    if u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) != element || !matches!(flags, 0 | 1) {
        return None;
    }
    if ndim == 0 {
        out.push_str("{}");
        return (v.len() == 12).then_some(());
    }
    // PostgreSQL's own limit on dimensions.
    if ndim > 6 {
        return None;
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut bounds = false;
    for d in 0..ndim {
        let len = usize::try_from(be_i32(v, 12 + 8 * d)?)
            .ok()
            .filter(|&n| n > 0)?;
        let lower = be_i32(v, 16 + 8 * d)?;
        bounds |= lower != 1;
        dims.push((len, lower));
    }
    // Each element takes at least its 4-byte length: the count is bounded
    // by the value's size before anything is written.
    let mut at = 12 + 8 * ndim;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &(len, _)| n.checked_mul(len))?;
    if count > (v.len() - at) / 4 {
        return None;
    }
    if bounds {
        for &(len, lower) in &dims {
            let upper = i64::from(lower) + i64::try_from(len).ok()? - 1;
            let _ = write!(out, "[{lower}:{upper}]");
        }
        out.push('=');
    }
    // The bound `render` holds every value to, checked after each element
    // here so that an array of values that each write much text (numerics
    // of 2,000 digits) stops early.
    let limit = out.len() + MAX_TEXT_BASE + 8 * v.len();
    let mut text = String::new();
    // Position in each dimension, innermost last.
    let mut index = vec![0usize; ndim];
    for _ in 0..ndim {
        out.push('{');
    }
    for n in 0..count {
        if n > 0 {
            // Close the dimensions that just ended and open them again.
            let mut closed = 0;
            for d in (0..ndim).rev() {
                index[d] += 1;
                if index[d] < dims[d].0 {
                    break;
                }
                index[d] = 0;
                closed += 1;
            }
            for _ in 0..closed {
                out.push('}');
            }
            out.push(',');
            for _ in 0..closed {
                out.push('{');
            }
        }
        let len = be_i32(v, at)?;
        at += 4;
        if len < 0 {
            if len != -1 {
                return None;
            }
            out.push_str("NULL");
            continue;
        }
        let bytes = v.get(at..at + usize::try_from(len).ok()?)?;
        at += bytes.len();
        text.clear();
        render_into(element, bytes, &mut text, within)?;
        array_element(out, &text);
        if out.len() > limit {
            return None;
        }
    }
    for _ in 0..ndim {
        out.push('}');
    }
    (at == v.len()).then_some(())
}

/// One array element's text, in double quotes (with `"` and `\` escaped
/// by a backslash) when it is empty, reads as NULL, or holds a delimiter, a
/// brace, a quote, a backslash or white space.
fn array_element(out: &mut String, text: &str) {
    let quote = text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text
            .bytes()
            .any(|b| matches!(b, b'{' | b'}' | b',' | b'"' | b'\\') || is_space(b));
    push_quoted(out, text, quote, false);
}

/// White space as C's `isspace` sees it, which the server's quoting uses.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `text`, in double quotes when `quote`, each `"` and `\` in it escaped:
/// doubled when `doubled` (range bounds), else after a backslash (array
/// elements).
fn push_quoted(out: &mut String, text: &str, quote: bool, doubled: bool) {
    if !quote {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push(if doubled { c } else { '\\' });
        }
        out.push(c);
    }
    out.push('"');
}

/// A range in binary: a flags byte, then the lower and upper bounds that
/// are present, each as a length and the element's bytes. Written as
/// `range_out` writes it: `empty`, or `[1,10)`, `(,5]`, with a bound in
/// double quotes (`"` and `\\` doubled) when it is empty or holds a quote, a
/// backslash, a bracket, a parenthesis, a comma or white space.
fn range(out: &mut String, v: &[u8], element: u32, within: Within<'_>) -> Option<()> {
    const EMPTY: u8 = 0x01;
    const LOWER_INCLUSIVE: u8 = 0x02;
    const UPPER_INCLUSIVE: u8 = 0x04;
    const LOWER_INFINITE: u8 = 0x08;
    const UPPER_INFINITE: u8 = 0x10;
    let (&flags, mut rest) = v.split_first()?;
    if flags & !(EMPTY | LOWER_INCLUSIVE | UPPER_INCLUSIVE | LOWER_INFINITE | UPPER_INFINITE) != 0 {
        return None;
    }
    if flags & EMPTY != 0 {
        out.push_str("empty");
        return rest.is_empty().then_some(());
    }
    out.push(if flags & LOWER_INCLUSIVE != 0 {
        '['
    } else {
        '('
    });
    let mut text = String::new();
    for (infinite, last) in [
        (flags & LOWER_INFINITE != 0, false),
        (flags & UPPER_INFINITE != 0, true),
    ] {
        if !infinite {
            let len = usize::try_from(be_i32(rest, 0)?).ok()?;
            let bytes = rest.get(4..4 + len)?;
            rest = &rest[4 + len..];
            text.clear();
            render_into(element, bytes, &mut text, within)?;
            let quote = text.is_empty()
                || text.bytes().any(|b| {
                    matches!(b, b'"' | b'\\' | b'(' | b')' | b'[' | b']' | b',') || is_space(b)
                });
            push_quoted(out, &text, quote, true);
        }
        if !last {
            out.push(',');
        }
    }
    out.push(if flags & UPPER_INCLUSIVE != 0 {
        ']'
    } else {
        ')'
    });
    rest.is_empty().then_some(())
}

/// A multirange in binary: a count, then each range as a length and the
/// range's bytes. Written as `multirange_out` writes it: `{}`, or
/// `{[1,3),[5,7)}`, each range as [`range`] writes it.
fn multirange(out: &mut String, v: &[u8], range_type: u32, within: Within<'_>) -> Option<()> {
    let count = usize::try_from(be_i32(v, 0)?).ok()?;
    let mut rest = &v[4..];
    // Each range takes at least its length and a flags byte.
    if count > rest.len() / 5 {
        return None;
    }
    out.push('{');
    for i in 0..count {
        let len = usize::try_from(be_i32(rest, 0)?).ok()?;
        let bytes = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        if i > 0 {
            out.push(',');
        }
        render_into(range_type, bytes, out, within)?;
    }
    out.push('}');
    rest.is_empty().then_some(())
}

/// An anonymous record in binary: a field count, then each field as its
/// type's OID, a length (-1 for NULL) and its bytes. Written as
/// `record_out` writes it: `(1,abc,)` with NULL as nothing, and a field in
/// double quotes (`"` and `\` doubled) when it is empty or holds a quote, a
/// backslash, a parenthesis, a comma or white space. A named composite
/// type is sent the same way. A field that is itself a record (or an
/// array of records, or a composite) is not rendered, which bounds the
/// nesting.
fn record(out: &mut String, v: &[u8], within: Within<'_>) -> Option<()> {
    if within.in_record {
        return None;
    }
    let within = Within {
        in_record: true,
        ..within
    };
    let count = usize::try_from(be_i32(v, 0)?).ok()?;
    let mut rest = &v[4..];
    // Each field takes at least its type and length.
    if count > rest.len() / 8 {
        return None;
    }
    out.push('(');
    let mut text = String::new();
    for i in 0..count {
        let field_type = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let len = be_i32(rest, 4)?;
        rest = &rest[8..];
        if i > 0 {
            out.push(',');
        }
        if len == -1 {
            continue;
        }
        let len = usize::try_from(len).ok()?;
        let bytes = rest.get(..len)?;
        rest = &rest[len..];
        text.clear();
        render_into(field_type, bytes, &mut text, within)?;
        let quote = text.is_empty()
            || text
                .bytes()
                .any(|b| matches!(b, b'"' | b'\\' | b'(' | b')' | b',') || is_space(b));
        push_quoted(out, &text, quote, true);
    }
    out.push(')');
    rest.is_empty().then_some(())
}

/// The geometric types in binary: float8 coordinates (`path` with a
/// closed flag and a point count, `polygon` with a point count). Written
/// as the server writes them, each number as `float8` is written.
fn geometry(out: &mut String, type_oid: u32, v: &[u8]) -> Option<()> {
    // The float8 at byte `at`.
    let f = |at: usize| -> Option<f64> {
        Some(f64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?))
    };
    let num = |out: &mut String, x: f64| float(out, x, false);
    // `(x,y)` of the point at byte `at`.
    let point_at = |out: &mut String, at: usize| -> Option<()> {
        out.push('(');
        num(out, f(at)?);
        out.push(',');
        num(out, f(at + 8)?);
        out.push(')');
        Some(())
    };
    match type_oid {
        oid::POINT if v.len() == 16 => point_at(out, 0)?,
        oid::LSEG if v.len() == 32 => {
            out.push('[');
            point_at(out, 0)?;
            out.push(',');
            point_at(out, 16)?;
            out.push(']');
        }
        oid::BOX if v.len() == 32 => {
            point_at(out, 0)?;
            out.push(',');
            point_at(out, 16)?;
        }
        oid::LINE if v.len() == 24 => {
            out.push('{');
            for i in 0..3 {
                if i > 0 {
                    out.push(',');
                }
                num(out, f(8 * i)?);
            }
            out.push('}');
        }
        oid::CIRCLE if v.len() == 24 => {
            out.push('<');
            point_at(out, 0)?;
            out.push(',');
            num(out, f(16)?);
            out.push('>');
        }
        oid::PATH | oid::POLYGON => {
            // A path starts with its closed flag; a polygon is always closed.
            let (closed, base) = if type_oid == oid::PATH {
                (*v.first()? != 0, 1)
            } else {
                (true, 0)
            };
            let n = usize::try_from(be_i32(v, base)?).ok()?;
            if n == 0 || Some(v.len()) != 16usize.checked_mul(n).map(|b| b + base + 4) {
                return None;
            }
            out.push(if closed { '(' } else { '[' });
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                point_at(out, base + 4 + 16 * i)?;
            }
            out.push(if closed { ')' } else { ']' });
        }
        _ => return None,
    }
    Some(())
}

/// `interval` in binary: microseconds, days, months. Written in the
/// session's `IntervalStyle` (`postgres` by default: `1 year 2 mons -3 days
/// +04:05:06.5`, `00:00:00` when zero).
fn interval(out: &mut String, v: &[u8], style: IntervalStyle) -> Option<()> {
    if v.len() != 16 {
        return None;
    }
    let time = i64::from_be_bytes(v[..8].try_into().ok()?);
    let days = be_i32(v, 8)?;
    let months = be_i32(v, 12)?;
    // PostgreSQL 17's infinite intervals.
    if months == i32::MAX && days == i32::MAX && time == i64::MAX {
        out.push_str("infinity");
        return Some(());
    }
    if months == i32::MIN && days == i32::MIN && time == i64::MIN {
        out.push_str("-infinity");
        return Some(());
    }
    match style {
        IntervalStyle::Postgres => interval_postgres(out, months, days, time),
        IntervalStyle::PostgresVerbose => interval_verbose(out, months, days, time),
        IntervalStyle::SqlStandard => interval_sql(out, months, days, time),
        IntervalStyle::Iso8601 => interval_iso(out, months, days, time),
    }
    Some(())
}

/// An interval's fields as PostgreSQL splits it for output: years,
/// months, days, hours, minutes, seconds and microseconds, each with the
/// sign of the part it comes from (months, days or time).
fn interval_fields(months: i32, days: i32, time: i64) -> [i64; 7] {
    let hours = time / 3_600_000_000;
    let minutes = time / 60_000_000 % 60;
    let seconds = time / 1_000_000 % 60;
    [
        i64::from(months / 12),
        i64::from(months % 12),
        i64::from(days),
        hours,
        minutes,
        seconds,
        time % 1_000_000,
    ]
}

/// Whole seconds and a fraction without trailing zeros, unsigned; two
/// digits at least when `pad`.
fn interval_seconds(out: &mut String, seconds: i64, micros: i64, pad: bool) {
    if pad {
        let _ = write!(out, "{:02}", seconds.unsigned_abs());
    } else {
        let _ = write!(out, "{}", seconds.unsigned_abs());
    }
    fraction(out, micros.unsigned_abs());
}

/// `IntervalStyle` postgres (the default): `1 year 2 mons -3 days +04:05:06.5`.
fn interval_postgres(out: &mut String, months: i32, days: i32, time: i64) {
    let start = out.len();
    // Each field after the first shows `+` when the one before it was
    // negative and it is not.
    let mut before_negative = false;
    for (value, unit) in [
        (i64::from(months / 12), "year"),
        (i64::from(months % 12), "mon"),
        (i64::from(days), "day"),
    ] {
        if value == 0 {
            continue;
        }
        if out.len() > start {
            out.push(' ');
        }
        if before_negative && value > 0 {
            out.push('+');
        }
        let _ = write!(out, "{value} {unit}{}", if value == 1 { "" } else { "s" });
        before_negative = value < 0;
    }
    let written = out.len() > start;
    if !written || time != 0 {
        if written {
            out.push(' ');
        }
        if time < 0 {
            out.push('-');
        } else if before_negative {
            out.push('+');
        }
        // Hours run past 24 in an interval.
        time_of_day(out, time.unsigned_abs());
    }
}

/// `IntervalStyle` postgres_verbose: `@ 1 year 2 mons -3 days 4 hours 5
/// mins 6.5 secs`, and `ago` (with the signs turned) when the first field
/// is negative.
fn interval_verbose(out: &mut String, months: i32, days: i32, time: i64) {
    let [years, months, days, hours, minutes, seconds, micros] =
        interval_fields(months, days, time);
    out.push('@');
    let (mut zero, mut before) = (true, false);
    for (value, unit) in [
        (years, "year"),
        (months, "mon"),
        (days, "day"),
        (hours, "hour"),
        (minutes, "min"),
    ] {
        if value == 0 {
            continue;
        }
        let shown = if zero {
            before = value < 0;
            value.abs()
        } else if before {
            -value
        } else {
            value
        };
        let _ = write!(out, " {shown} {unit}{}", if shown == 1 { "" } else { "s" });
        zero = false;
    }
    if seconds != 0 || micros != 0 {
        out.push(' ');
        if seconds < 0 || (seconds == 0 && micros < 0) {
            if zero {
                before = true;
            } else if !before {
                out.push('-');
            }
        } else if before {
            out.push('-');
        }
        interval_seconds(out, seconds, micros, false);
        let plural = seconds.abs() != 1 || micros != 0;
        out.push_str(if plural { " secs" } else { " sec" });
        zero = false;
    }
    if zero {
        out.push_str(" 0");
    }
    if before {
        out.push_str(" ago");
    }
}

/// `IntervalStyle` sql_standard: `1-2` (years and months), `3 4:05:06.5`
/// (days and time), `-1-2` with one sign for the whole, and `+1-2 -3
/// +4:05:06.5` with a sign on each part when the fields mix signs or
/// years and months come with days or time.
fn interval_sql(out: &mut String, months: i32, days: i32, time: i64) {
    let mut f = interval_fields(months, days, time);
    let negative = f.iter().any(|&v| v < 0);
    let positive = f.iter().any(|&v| v > 0);
    let year_month = f[0] != 0 || f[1] != 0;
    let day_time = f[2..].iter().any(|&v| v != 0);
    let standard = !((negative && positive) || (year_month && day_time));
    if negative && standard {
        out.push('-');
        for v in &mut f {
            *v = -*v;
        }
    }
    let [years, months, days, hours, minutes, seconds, micros] = f;
    if !negative && !positive {
        out.push('0');
    } else if !standard {
        let sign = |neg: bool| if neg { '-' } else { '+' };
        let _ = write!(
            out,
            "{}{}-{} {}{} {}{}:{:02}:",
            sign(years < 0 || months < 0),
            years.unsigned_abs(),
            months.unsigned_abs(),
            sign(days < 0),
            days.unsigned_abs(),
            sign(hours < 0 || minutes < 0 || seconds < 0 || micros < 0),
            hours.unsigned_abs(),
            minutes.unsigned_abs()
        );
        interval_seconds(out, seconds, micros, true);
    } else if year_month {
        let _ = write!(out, "{years}-{months}");
    } else {
        if days != 0 {
            let _ = write!(out, "{days} ");
        }
        let _ = write!(out, "{hours}:{:02}:", minutes.unsigned_abs());
        interval_seconds(out, seconds, micros, true);
    }
}

/// `IntervalStyle` iso_8601: `P1Y2M-3DT4H5M6.5S`, `PT0S` for zero.
fn interval_iso(out: &mut String, months: i32, days: i32, time: i64) {
    let [years, months, days, hours, minutes, seconds, micros] =
        interval_fields(months, days, time);
    if [years, months, days, hours, minutes, seconds, micros] == [0; 7] {
        out.push_str("PT0S");
        return;
    }
    out.push('P');
    let part = |out: &mut String, value: i64, unit: char| {
        if value != 0 {
            let _ = write!(out, "{value}{unit}");
        }
    };
    part(out, years, 'Y');
    part(out, months, 'M');
    part(out, days, 'D');
    if hours != 0 || minutes != 0 || seconds != 0 || micros != 0 {
        out.push('T');
    }
    part(out, hours, 'H');
    part(out, minutes, 'M');
    if seconds != 0 || micros != 0 {
        if seconds < 0 || micros < 0 {
            out.push('-');
        }
        interval_seconds(out, seconds, micros, false);
        out.push('S');
    }
}

/// `.ffffff` without trailing zeros, nothing for zero.
fn fraction(out: &mut String, micros: u64) {
    if micros != 0 {
        let f = format!("{micros:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// A zone offset given in seconds west of UTC, as `+HH`, `-HH:MM` or
/// `+HH:MM:SS`.
fn zone_offset(out: &mut String, west: i32) {
    let a = west.unsigned_abs();
    let (minutes, seconds) = (a / 60 % 60, a % 60);
    out.push(if west <= 0 { '+' } else { '-' });
    let _ = write!(out, "{:02}", a / 3600);
    if seconds != 0 {
        let _ = write!(out, ":{minutes:02}:{seconds:02}");
    } else if minutes != 0 {
        let _ = write!(out, ":{minutes:02}");
    }
}

/// `inet` and `cidr` in binary: family (2 IPv4, 3 IPv6), netmask bits,
/// whether it is a `cidr`, address length, address. Written as the server
/// writes them: IPv6 with its longest run of two or more zero groups as
/// `::` and the last 32 bits dotted when the address embeds IPv4; the
/// netmask shown unless it covers the whole address (always for `cidr`).
fn inet(out: &mut String, v: &[u8], cidr: bool) -> Option<()> {
    let [family, bits, _, len, addr @ ..] = v else {
        return None;
    };
    let full: u8 = match (family, len) {
        (2, 4) => 32,
        (3, 16) => 128,
        _ => return None,
    };
    if *bits > full || addr.len() != usize::from(*len) {
        return None;
    }
    if full == 32 {
        let _ = write!(out, "{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]);
    } else {
        let words: Vec<u16> = addr
            .chunks(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect();
        // The first longest run of zero groups, if two or more long.
        let (mut best, mut run) = ((0usize, 0usize), None::<usize>);
        for (i, &w) in words.iter().enumerate() {
            if w == 0 {
                let s = *run.get_or_insert(i);
                if i + 1 - s > best.1 {
                    best = (s, i + 1 - s);
                }
            } else {
                run = None;
            }
        }
        let zeros = (best.1 >= 2).then_some(best);
        let mut i = 0;
        while i < 8 {
            if let Some((s, n)) = zeros
                && i == s
            {
                out.push(':');
                i += n;
                if i == 8 {
                    out.push(':');
                }
                continue;
            }
            if i != 0 {
                out.push(':');
            }
            let embeds_v4 = i == 6
                && zeros.is_some_and(|(s, n)| s == 0 && (n == 6 || (n == 5 && words[5] == 0xffff)));
            if embeds_v4 {
                let _ = write!(out, "{}.{}.{}.{}", addr[12], addr[13], addr[14], addr[15]);
                break;
            }
            let _ = write!(out, "{:x}", words[i]);
            i += 1;
        }
    }
    if cidr || *bits != full {
        let _ = write!(out, "/{bits}");
    }
    Some(())
}

fn push_int(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// As `float8out`/`float4out` with `extra_float_digits` 1 (the default
/// since PostgreSQL 12): the shortest digits that read back exactly, fixed
/// point for decimal exponents from -4 up to 14 (5 for `real`), otherwise
/// `d.ddde+XX`.
fn float(out: &mut String, v: f64, single: bool) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Ryū does.
    let sci = if single {
        #[allow(clippy::cast_possible_truncation)] // the value came from an f32
        let f = v as f32;
        format!("{f:e}")
    } else {
        format!("{v:e}")
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    let fixed_below = if single { 6 } else { 15 };
    if (-4..fixed_below).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// `numeric` in binary: digit count, weight (of the first digit, in base
/// 10000), sign, display scale, then the base-10000 digits.
fn numeric(out: &mut String, v: &[u8]) -> Option<()> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            v.get(2 * i..2 * i + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(word(0)?);
    #[allow(clippy::cast_possible_wrap)] // the weight is a signed 16-bit field
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    // PostgreSQL displays at most 1000 digits after the point; values with
    // over 1000 digits before it are left to the caller (kept as hex).
    if v.len() != 8 + 2 * ndigits || dscale > 1000 || weight > 250 {
        return None;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => {
            out.push_str("NaN");
            return Some(());
        }
        0xD000 => {
            out.push_str("Infinity");
            return Some(());
        }
        0xF000 => {
            out.push_str("-Infinity");
            return Some(());
        }
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    if digits.iter().any(|&d| d > 9999) {
        return None;
    }
    // Digit `i` (base 10000) stands for 10000^(weight - i).
    let digit = |pos: i32| -> u16 {
        usize::try_from(weight - pos)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{}", digit(weight));
        for pos in (0..weight).rev() {
            let _ = write!(out, "{:04}", digit(pos));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut pos = -1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(pos));
            pos -= 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Some(())
}

/// A day counted from 2000-01-01 and, for a timestamp, the time of day in
/// microseconds and, for a `timestamptz`, its offset east of UTC in
/// seconds and its zone's abbreviation, as the session's `DateStyle`
/// writes them: ISO `2024-02-29 13:14:15.5+01`, SQL `02/29/2024
/// 13:14:15.5 CET` (or day first), German `29.02.2024 13:14:15.5 CET`,
/// Postgres `Thu Feb 29 13:14:15.5 2024 CET` (or `Thu 29 Feb …`; a date
/// alone `02-29-2024`). Years before 1 are written as PostgreSQL writes
/// them, counted back from 1 BC with ` BC` at the end (`0044-03-15 BC`).
fn date_time(
    out: &mut String,
    with: &Rendering,
    days_since_2000: i64,
    time: Option<u64>,
    zone: Option<(i32, &str)>,
) -> Option<()> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = gatehouse_core::duration::civil_date(days_since_2000 + 10_957);
    // Year 0 is 1 BC.
    let bc = year <= 0;
    let year = if bc { 1 - year } else { year };
    let (first, second) = if with.day_first {
        (day, month)
    } else {
        (month, day)
    };
    match (with.date_style, time) {
        (DateStyle::Iso, _) => {
            let _ = write!(out, "{year:04}-{month:02}-{day:02}");
        }
        (DateStyle::Sql, _) => {
            let _ = write!(out, "{first:02}/{second:02}/{year:04}");
        }
        (DateStyle::German, _) => {
            let _ = write!(out, "{day:02}.{month:02}.{year:04}");
        }
        (DateStyle::Postgres, None) => {
            let _ = write!(out, "{first:02}-{second:02}-{year:04}");
        }
        (DateStyle::Postgres, Some(us)) => {
            // 2000-01-01 was a Saturday.
            let weekday = DAYS[usize::try_from((days_since_2000 + 6).rem_euclid(7)).ok()?];
            let name = MONTHS[usize::try_from(month - 1).ok()?];
            if with.day_first {
                let _ = write!(out, "{weekday} {day:02} {name} ");
            } else {
                let _ = write!(out, "{weekday} {name} {day:02} ");
            }
            time_of_day(out, us);
            let _ = write!(out, " {year:04}");
        }
    }
    if let Some(us) = time.filter(|_| with.date_style != DateStyle::Postgres) {
        out.push(' ');
        time_of_day(out, us);
    }
    if let Some((east, label)) = zone {
        if with.date_style == DateStyle::Iso {
            zone_offset(out, -east);
        } else {
            out.push(' ');
            out.push_str(label);
        }
    }
    if bc {
        out.push_str(" BC");
    }
    Some(())
}

/// `HH:MM:SS` of `us` microseconds and, when there are any, the fraction
/// of a second without trailing zeros (hours are not wrapped at 24).
fn time_of_day(out: &mut String, us: u64) {
    let secs = us / 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    fraction(out, us % 1_000_000);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(type_oid: u32, v: &[u8]) -> Option<String> {
        text_with(&UserTypes::new(), type_oid, v)
    }

    fn text_with(types: &UserTypes, type_oid: u32, v: &[u8]) -> Option<String> {
        let with = Rendering {
            types: types.clone(),
            ..Rendering::default()
        };
        text_in(&with, type_oid, v)
    }

    fn text_in(with: &Rendering, type_oid: u32, v: &[u8]) -> Option<String> {
        let mut s = String::from("kept");
        let r = render(type_oid, v, with, &mut s).map(|()| s[4..].to_string());
        if r.is_none() {
            assert_eq!(s, "kept", "nothing is left behind on failure");
        }
        r
    }

    #[test]
    fn fixed_width_types() {
        assert_eq!(text(oid::BOOL, &[1]).as_deref(), Some("t"));
        assert_eq!(text(oid::BOOL, &[0]).as_deref(), Some("f"));
        assert_eq!(text(oid::BOOL, &[2]), None);
        assert_eq!(
            text(oid::INT2, &(-7i16).to_be_bytes()).as_deref(),
            Some("-7")
        );
        assert_eq!(text(oid::INT4, &7i32.to_be_bytes()).as_deref(), Some("7"));
        assert_eq!(
            text(oid::INT8, &i64::MIN.to_be_bytes()).as_deref(),
            Some("-9223372036854775808")
        );
        assert_eq!(
            text(oid::OID, &u32::MAX.to_be_bytes()).as_deref(),
            Some("4294967295")
        );
        assert_eq!(text(oid::INT4, &[0, 0, 7]), None, "wrong length");
        assert_eq!(
            text(
                oid::UUID,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            )
            .as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
    }

    #[test]
    fn text_types() {
        assert_eq!(text(oid::TEXT, "ünï".as_bytes()).as_deref(), Some("ünï"));
        assert_eq!(text(oid::VARCHAR, &[0xff]), None, "not UTF-8");
        assert_eq!(text(oid::CHAR, b"c").as_deref(), Some("c"));
        assert_eq!(text(oid::CHAR, &[0]).as_deref(), Some(""));
        assert_eq!(text(oid::CHAR, &[0x81]), None);
        assert_eq!(
            text(oid::JSONB, b"\x01{\"a\": 1}").as_deref(),
            Some("{\"a\": 1}")
        );
        assert_eq!(text(oid::JSONB, b"\x02{}"), None, "unknown jsonb version");
        assert_eq!(text(oid::BYTEA, b"\x01\xab").as_deref(), Some("\\x01ab"));
        assert_eq!(text(9999, b"x"), None, "unknown types stay hex");
    }

    #[test]
    fn floats_as_the_server_writes_them() {
        let f8 = |v: f64| text(oid::FLOAT8, &v.to_be_bytes()).unwrap();
        let f4 = |v: f32| text(oid::FLOAT4, &v.to_be_bytes()).unwrap();
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(100.0), "100");
        assert_eq!(f8(0.1), "0.1");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(1e14), "100000000000000");
        assert_eq!(f8(1e15), "1e+15");
        assert_eq!(f8(-1.25e300), "-1.25e+300");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f8(-0.0), "-0");
        assert_eq!(f4(0.1), "0.1");
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(1234567.0), "1.234567e+06");
    }

    fn numeric_bytes(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight.cast_unsigned(), sign, dscale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        let n = |w: i16, s: u16, d: u16, digits: &[u16]| {
            text(
                oid::NUMERIC,
                &numeric_bytes(digits.len() as u16, w, s, d, digits),
            )
        };
        // 12.340 → digits [12, 3400], weight 0, scale 3
        assert_eq!(n(0, 0, 3, &[12, 3400]).as_deref(), Some("12.340"));
        // -123456789 → [1, 2345, 6789], weight 2
        assert_eq!(
            n(2, 0x4000, 0, &[1, 2345, 6789]).as_deref(),
            Some("-123456789")
        );
        // 0.00012 → [1, 2000], weight -1, scale 5
        assert_eq!(n(-1, 0, 5, &[1, 2000]).as_deref(), Some("0.00012"));
        // 10000 → [1], weight 1 (trailing zero digits are not sent)
        assert_eq!(n(1, 0, 0, &[1]).as_deref(), Some("10000"));
        assert_eq!(n(0, 0, 2, &[]).as_deref(), Some("0.00"));
        assert_eq!(n(0, 0xC000, 0, &[]).as_deref(), Some("NaN"));
        assert_eq!(n(0, 0, 0, &[10000]), None, "digit out of range");
        assert_eq!(text(oid::NUMERIC, &[0, 1, 0, 0]), None, "truncated");
    }

    #[test]
    fn dates_and_times() {
        let d = |days: i32| text(oid::DATE, &days.to_be_bytes());
        assert_eq!(d(0).as_deref(), Some("2000-01-01"));
        assert_eq!(d(-1).as_deref(), Some("1999-12-31"));
        assert_eq!(d(59).as_deref(), Some("2000-02-29"));
        assert_eq!(d(9_132).as_deref(), Some("2025-01-01"));
        assert_eq!(d(i32::MAX).as_deref(), Some("infinity"));
        // Before year 1 and after 9999, as the server wrote them.
        assert_eq!(d(-800_000).as_deref(), Some("0192-09-04 BC"));
        assert_eq!(d(-746_117).as_deref(), Some("0044-03-15 BC"));
        assert_eq!(d(-2_451_179).as_deref(), Some("4713-11-24 BC"));
        assert_eq!(d(2_145_031_948).as_deref(), Some("5874897-12-31"));
        let ts = |us: i64, tz: bool| {
            text(
                if tz { oid::TIMESTAMPTZ } else { oid::TIMESTAMP },
                &us.to_be_bytes(),
            )
        };
        assert_eq!(
            ts(-63_113_904_000_000_000, false).as_deref(),
            Some("0001-01-01 00:00:00 BC")
        );
        assert_eq!(
            ts(9_223_371_331_199_999_999, false).as_deref(),
            Some("294276-12-31 23:59:59.999999")
        );
        assert_eq!(
            ts(326_470_262_400_000_000, true).as_deref(),
            Some("12345-06-07 00:00:00+00"),
            "after 9999 in UTC"
        );
        let mut paris = Rendering::default();
        paris.set_parameter("TimeZone", "Europe/Paris");
        assert_eq!(
            text_in(
                &paris,
                oid::TIMESTAMPTZ,
                &326_470_262_400_000_000i64.to_be_bytes()
            ),
            None,
            "after 9999 in a zone jiff cannot follow there: hex"
        );
        assert_eq!(ts(0, false).as_deref(), Some("2000-01-01 00:00:00"));
        assert_eq!(ts(-1, false).as_deref(), Some("1999-12-31 23:59:59.999999"));
        assert_eq!(
            ts(86_400_000_000 + 3_723_500_000, true).as_deref(),
            Some("2000-01-02 01:02:03.5+00")
        );
        assert_eq!(
            text(oid::TIME, &45_296_000_001i64.to_be_bytes()).as_deref(),
            Some("12:34:56.000001")
        );
    }

    fn array_bytes(element: u32, dims: &[(i32, i32)], items: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&i32::try_from(dims.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&i32::from(items.iter().any(Option::is_none)).to_be_bytes());
        v.extend_from_slice(&element.to_be_bytes());
        for (len, lower) in dims {
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&lower.to_be_bytes());
        }
        for item in items {
            match item {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&i32::try_from(b.len()).unwrap().to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v
    }

    #[test]
    fn arrays_as_array_out_writes_them() {
        let one = 1i32.to_be_bytes();
        let two = 2i32.to_be_bytes();
        let ints = |dims: &[(i32, i32)], items: &[Option<&[u8]>]| {
            text(1007, &array_bytes(oid::INT4, dims, items))
        };
        assert_eq!(ints(&[], &[]).as_deref(), Some("{}"));
        assert_eq!(
            ints(&[(3, 1)], &[Some(&one), None, Some(&two)]).as_deref(),
            Some("{1,NULL,2}")
        );
        assert_eq!(
            ints(
                &[(2, 1), (2, 1)],
                &[Some(&one), Some(&two), Some(&two), Some(&one)]
            )
            .as_deref(),
            Some("{{1,2},{2,1}}")
        );
        assert_eq!(
            ints(&[(2, 0)], &[Some(&one), Some(&two)]).as_deref(),
            Some("[0:1]={1,2}")
        );
        assert_eq!(
            ints(&[(3, 1)], &[Some(&one), Some(&two)]),
            None,
            "too few elements"
        );
        assert_eq!(
            ints(&[(1_000_000, 1)], &[Some(&one)]),
            None,
            "a count the bytes cannot hold is refused before anything is written"
        );
        assert_eq!(ints(&[(0, 1)], &[]), None);
        // 20 numerics of 1,000 digits each, from 240 bytes: over the bound.
        let big = numeric_bytes(0, 249, 0, 0, &[]);
        let items: Vec<Option<&[u8]>> = (0..20).map(|_| Some(&big[..])).collect();
        assert_eq!(
            text(1231, &array_bytes(oid::NUMERIC, &[(20, 1)], &items)),
            None
        );
        assert_eq!(
            text(1231, &array_bytes(oid::NUMERIC, &[(1, 1)], &items[..1])).map(|t| t.len()),
            Some(999),
            "one is within it"
        );
        assert_eq!(
            text(1009, &array_bytes(oid::INT4, &[(1, 1)], &[Some(&one)])),
            None,
            "an element type other than the array's"
        );
        let texts = |items: &[&str]| {
            let items: Vec<Option<&[u8]>> = items.iter().map(|s| Some(s.as_bytes())).collect();
            text(
                1009,
                &array_bytes(
                    oid::TEXT,
                    &[(i32::try_from(items.len()).unwrap(), 1)],
                    &items,
                ),
            )
        };
        assert_eq!(
            texts(&["a", "", "null", "b c", "x\"y", "p\\q", "{"]).as_deref(),
            Some(r#"{a,"","null","b c","x\"y","p\\q","{"}"#)
        );
        assert_eq!(
            text(1001, &array_bytes(oid::BYTEA, &[(1, 1)], &[Some(&[1, 2])])).as_deref(),
            Some(r#"{"\\x0102"}"#)
        );
    }

    #[test]
    fn intervals_in_the_postgres_style() {
        let iv = |us: i64, days: i32, months: i32| {
            let mut v = us.to_be_bytes().to_vec();
            v.extend_from_slice(&days.to_be_bytes());
            v.extend_from_slice(&months.to_be_bytes());
            text(oid::INTERVAL, &v).unwrap()
        };
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(iv(14_706_500_000, 3, 14), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(iv(7_200_000_000, -1, 0), "-1 days +02:00:00");
        assert_eq!(iv(-1_000_000, 0, 0), "-00:00:01");
        assert_eq!(iv(0, 1, -13), "-1 years -1 mons +1 day");
        assert_eq!(iv(360_000_000_000, 0, 1), "1 mon 100:00:00");
    }

    #[test]
    fn addresses_and_bits() {
        let net = |family: u8, bits: u8, addr: &[u8], cidr: bool| {
            let mut v = vec![
                family,
                bits,
                u8::from(cidr),
                u8::try_from(addr.len()).unwrap(),
            ];
            v.extend_from_slice(addr);
            text(if cidr { oid::CIDR } else { oid::INET }, &v)
        };
        assert_eq!(
            net(2, 32, &[10, 0, 0, 1], false).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            net(2, 24, &[10, 0, 0, 1], false).as_deref(),
            Some("10.0.0.1/24")
        );
        assert_eq!(
            net(2, 32, &[10, 0, 0, 1], true).as_deref(),
            Some("10.0.0.1/32")
        );
        let v6 = |words: [u16; 8], bits: u8| {
            let addr: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            net(3, bits, &addr, false).unwrap()
        };
        assert_eq!(v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "::1");
        assert_eq!(v6([0; 8], 128), "::");
        assert_eq!(
            v6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], 64),
            "2001:db8::1:0:0:1/64"
        );
        assert_eq!(v6([1, 0, 0, 0, 0, 0, 0, 0], 128), "1::");
        assert_eq!(v6([1, 0, 2, 3, 4, 5, 6, 7], 128), "1:0:2:3:4:5:6:7");
        assert_eq!(
            v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304], 128),
            "::ffff:1.2.3.4"
        );
        assert_eq!(v6([0, 0, 0, 0, 0, 0, 0x0102, 0x0304], 128), "::1.2.3.4");
        assert_eq!(net(2, 33, &[10, 0, 0, 1], false), None);
        assert_eq!(net(3, 128, &[0; 4], false), None);
        assert_eq!(
            text(oid::MACADDR, &[8, 0, 0x2b, 1, 2, 3]).as_deref(),
            Some("08:00:2b:01:02:03")
        );
        let bits = |len: i32, b: &[u8]| {
            let mut v = len.to_be_bytes().to_vec();
            v.extend_from_slice(b);
            text(oid::VARBIT, &v)
        };
        assert_eq!(bits(5, &[0b1011_0000]).as_deref(), Some("10110"));
        assert_eq!(bits(0, &[]).as_deref(), Some(""));
        assert_eq!(bits(9, &[0xff]), None);
        let timetz = |us: i64, west: i32| {
            let mut v = us.to_be_bytes().to_vec();
            v.extend_from_slice(&west.to_be_bytes());
            text(oid::TIMETZ, &v)
        };
        assert_eq!(
            timetz(43_200_000_000, -7200).as_deref(),
            Some("12:00:00+02")
        );
        assert_eq!(timetz(0, 19_800).as_deref(), Some("00:00:00-05:30"));
        assert_eq!(timetz(0, 0).as_deref(), Some("00:00:00+00"));
    }

    #[test]
    fn multiranges_and_records() {
        let sized = |v: &[u8]| {
            let mut b = i32::try_from(v.len()).unwrap().to_be_bytes().to_vec();
            b.extend_from_slice(v);
            b
        };
        let int4range = |lo: i32, hi: i32| {
            let mut v = vec![0x02];
            v.extend_from_slice(&sized(&lo.to_be_bytes()));
            v.extend_from_slice(&sized(&hi.to_be_bytes()));
            v
        };
        let multirange = |ranges: &[Vec<u8>]| {
            let mut v = i32::try_from(ranges.len()).unwrap().to_be_bytes().to_vec();
            for r in ranges {
                v.extend_from_slice(&sized(r));
            }
            v
        };
        let two = multirange(&[int4range(1, 3), int4range(5, 7)]);
        assert_eq!(text(4451, &two).as_deref(), Some("{[1,3),[5,7)}"));
        assert_eq!(text(4451, &multirange(&[])).as_deref(), Some("{}"));
        assert_eq!(text(4451, &two[..two.len() - 1]), None, "a short range");
        let mut extra = two.clone();
        extra.push(0);
        assert_eq!(text(4451, &extra), None, "bytes after the last range");
        let mut many = i32::MAX.to_be_bytes().to_vec();
        many.extend_from_slice(&sized(&int4range(1, 3)));
        assert_eq!(text(4451, &many), None, "more ranges counted than sent");
        // An int8 multirange's ranges are read as int8 ranges.
        assert_eq!(text(4536, &two), None);

        let field = |type_oid: u32, v: Option<&[u8]>| {
            let mut b = type_oid.to_be_bytes().to_vec();
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => b.extend_from_slice(&sized(v)),
            }
            b
        };
        let record = |fields: &[Vec<u8>]| {
            let mut v = i32::try_from(fields.len()).unwrap().to_be_bytes().to_vec();
            for f in fields {
                v.extend_from_slice(f);
            }
            v
        };
        let row = record(&[
            field(oid::INT4, Some(&7i32.to_be_bytes())),
            field(oid::TEXT, Some(b"a b")),
            field(oid::TEXT, None),
            field(oid::TEXT, Some(b"")),
            field(oid::TEXT, Some(b"x\"y\\z")),
            field(3904, Some(&int4range(1, 5))),
        ]);
        assert_eq!(
            text(oid::RECORD, &row).as_deref(),
            Some(r#"(7,"a b",,"","x""y\\z","[1,5)")"#)
        );
        assert_eq!(text(oid::RECORD, &record(&[])).as_deref(), Some("()"));
        assert_eq!(
            text(
                oid::RECORD,
                &record(&[field(oid::RECORD, Some(&record(&[])))])
            ),
            None,
            "a record in a record is not rendered"
        );
        assert_eq!(
            text(oid::RECORD, &record(&[field(oid::RECORD_ARRAY, Some(b""))])),
            None,
            "nor an array of records"
        );
        assert_eq!(
            text(oid::RECORD, &record(&[field(790, Some(&[0; 8]))])),
            None,
            "nor a field of a type not rendered here (money)"
        );
        assert_eq!(text(oid::RECORD, &row[..row.len() - 1]), None);
        let mut counted = row.clone();
        counted[..4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(text(oid::RECORD, &counted), None);
    }

    #[test]
    fn types_created_in_the_database_as_the_catalog_describes_them() {
        const MOOD: u32 = 16_400;
        const MOODS: u32 = 16_401;
        const PAIR: u32 = 16_402;
        const POSITIVE: u32 = 16_403;
        const CITEXT: u32 = 16_404;
        const PAIRS: u32 = 16_405;
        const OPAQUE: u32 = 16_406;
        const HSTORE: u32 = 16_409;
        const LOOP: u32 = 16_407;
        const ARRAY_LOOP: u32 = 16_408;
        let types = UserTypes::from([
            (MOOD, UserType::Text),
            (MOODS, UserType::Array(MOOD)),
            (PAIR, UserType::Composite),
            (POSITIVE, UserType::Domain(oid::INT4)),
            (CITEXT, UserType::Text),
            (PAIRS, UserType::Array(PAIR)),
            (OPAQUE, UserType::Opaque),
            (HSTORE, UserType::Hstore),
            (LOOP, UserType::Domain(LOOP)),
            (ARRAY_LOOP, UserType::Array(ARRAY_LOOP)),
        ]);
        assert_eq!(text_with(&types, MOOD, b"happy").as_deref(), Some("happy"));
        assert_eq!(text(MOOD, b"happy"), None, "not without the catalog");
        assert_eq!(text_with(&types, MOOD, &[0xff]), None, "not UTF-8");
        assert_eq!(text_with(&types, CITEXT, b"Ab C").as_deref(), Some("Ab C"));
        let moods = array_bytes(MOOD, &[(3, 1)], &[Some(b"sad"), None, Some(b"so so")]);
        assert_eq!(
            text_with(&types, MOODS, &moods).as_deref(),
            Some(r#"{sad,NULL,"so so"}"#)
        );
        assert_eq!(
            text_with(
                &types,
                MOODS,
                &array_bytes(oid::TEXT, &[(1, 1)], &[Some(b"x")])
            ),
            None,
            "the array's element type is checked"
        );
        let field = |type_oid: u32, v: &[u8]| {
            let mut b = type_oid.to_be_bytes().to_vec();
            b.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
            b.extend_from_slice(v);
            b
        };
        let mut pair = 2i32.to_be_bytes().to_vec();
        pair.extend(field(MOOD, b"ok"));
        pair.extend(field(oid::INT4, &5i32.to_be_bytes()));
        assert_eq!(text_with(&types, PAIR, &pair).as_deref(), Some("(ok,5)"));
        let pairs = array_bytes(PAIR, &[(1, 1)], &[Some(&pair)]);
        assert_eq!(
            text_with(&types, PAIRS, &pairs).as_deref(),
            Some(r#"{"(ok,5)"}"#)
        );
        let mut nested = 1i32.to_be_bytes().to_vec();
        nested.extend(field(PAIR, &pair));
        assert_eq!(
            text_with(&types, PAIR, &nested),
            None,
            "a composite in a composite is not rendered"
        );
        let mut in_array = 1i32.to_be_bytes().to_vec();
        in_array.extend(field(PAIRS, &pairs));
        assert_eq!(
            text_with(&types, PAIR, &in_array),
            None,
            "nor an array of composites in one"
        );
        assert_eq!(
            text_with(&types, POSITIVE, &7i32.to_be_bytes()).as_deref(),
            Some("7")
        );
        assert_eq!(text_with(&types, OPAQUE, &[0; 4]), None);
        let pair = |k: &[u8], v: Option<&[u8]>| {
            let mut b = i32::try_from(k.len()).unwrap().to_be_bytes().to_vec();
            b.extend_from_slice(k);
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
            b
        };
        let mut h = 3i32.to_be_bytes().to_vec();
        h.extend(pair(b"a", Some(b"1")));
        h.extend(pair(b"b", None));
        h.extend(pair(b"q\"\\", Some(b"x y")));
        assert_eq!(
            text_with(&types, HSTORE, &h).as_deref(),
            Some(r#""a"=>"1", "b"=>NULL, "q\"\\"=>"x y""#)
        );
        assert_eq!(
            text_with(&types, HSTORE, &0i32.to_be_bytes()).as_deref(),
            Some("")
        );
        assert_eq!(text_with(&types, HSTORE, &h[..h.len() - 1]), None, "short");
        let mut null_key = 1i32.to_be_bytes().to_vec();
        null_key.extend((-1i32).to_be_bytes());
        null_key.extend((-1i32).to_be_bytes());
        assert_eq!(text_with(&types, HSTORE, &null_key), None, "a NULL key");
        let mut counted = h.clone();
        counted[..4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(text_with(&types, HSTORE, &counted), None);
        assert_eq!(
            text_with(&types, LOOP, b"x"),
            None,
            "a domain over itself ends"
        );
        let mut looped = array_bytes(ARRAY_LOOP, &[(1, 1)], &[Some(&[])]);
        for _ in 0..12 {
            looped = array_bytes(ARRAY_LOOP, &[(1, 1)], &[Some(&looped)]);
        }
        assert_eq!(
            text_with(&types, ARRAY_LOOP, &looped),
            None,
            "an array of itself ends"
        );
        assert_eq!(
            text_with(&UserTypes::from([(790, UserType::Text)]), 790, b"12345678"),
            None,
            "a built-in type (money) is never taken from the map"
        );
    }

    #[test]
    fn timestamptz_in_the_session_time_zone() {
        // Microseconds since 2000-01-01 00:00 UTC.
        let at = |us: i64| us.to_be_bytes();
        // 2024-02-29 12:14:15.5 UTC, and 1900-01-01 00:00 UTC.
        let leap = 762_524_055_500_000i64;
        let old = -3_155_673_600_000_000i64;
        let mut with = Rendering::default();
        let tz = |with: &Rendering, us: i64| text_in(with, oid::TIMESTAMPTZ, &at(us));
        assert_eq!(tz(&with, leap).as_deref(), Some("2024-02-29 12:14:15.5+00"));
        for (zone, expected) in [
            ("Europe/Paris", "2024-02-29 13:14:15.5+01"),
            ("Asia/Kolkata", "2024-02-29 17:44:15.5+05:30"),
            ("America/St_Johns", "2024-02-29 08:44:15.5-03:30"),
            ("<+03>-03", "2024-02-29 15:14:15.5+03"),
            ("<-05>+05", "2024-02-29 07:14:15.5-05"),
            // As PostgreSQL reports what these were set to (POSIX signs:
            // west of Greenwich is positive).
            ("-03:30", "2024-02-29 15:44:15.5+03:30"),
            ("+03:30", "2024-02-29 08:44:15.5-03:30"),
            ("UTC+3", "2024-02-29 09:14:15.5-03"),
            ("GMT-2", "2024-02-29 14:14:15.5+02"),
            ("EST5EDT", "2024-02-29 07:14:15.5-05"),
            ("CET-1CEST,M3.5.0,M10.5.0/3", "2024-02-29 13:14:15.5+01"),
            ("Etc/GMT+5", "2024-02-29 07:14:15.5-05"),
            ("US/Eastern", "2024-02-29 07:14:15.5-05"),
            ("3:30", "2024-02-29 08:44:15.5-03:30"),
            ("-15:59", "2024-03-01 04:13:15.5+15:59"),
            ("03:30:00", "2024-02-29 08:44:15.5-03:30"),
            // Not offsets: UTC.
            ("-03:60", "2024-02-29 12:14:15.5+00"),
            ("-003", "2024-02-29 12:14:15.5+00"),
            ("1:2:3:4", "2024-02-29 12:14:15.5+00"),
            ("+", "2024-02-29 12:14:15.5+00"),
            ("", "2024-02-29 12:14:15.5+00"),
            ("Zulu", "2024-02-29 12:14:15.5+00"),
            ("UCT", "2024-02-29 12:14:15.5+00"),
            ("Etc/UTC", "2024-02-29 12:14:15.5+00"),
            // Not a zone anywhere: UTC, with its offset written.
            ("Nowhere/Else", "2024-02-29 12:14:15.5+00"),
        ] {
            with.set_time_zone(zone);
            assert_eq!(tz(&with, leap).as_deref(), Some(expected), "{zone}");
        }
        // Paris's local mean time (+00:09:21) before 1911, written with seconds.
        with.set_time_zone("Europe/Paris");
        assert_eq!(
            tz(&with, old).as_deref(),
            Some("1900-01-01 00:09:21+00:09:21")
        );
        // timestamp (without time zone) is never shifted.
        assert_eq!(
            text_in(&with, oid::TIMESTAMP, &at(leap)).as_deref(),
            Some("2024-02-29 12:14:15.5")
        );
        assert_eq!(tz(&with, i64::MAX).as_deref(), Some("infinity"));
    }

    #[test]
    fn dates_and_times_in_the_session_date_style() {
        let at = |us: i64| us.to_be_bytes();
        // 2024-02-29 12:14:15.5 UTC, 1900-01-01 00:00 UTC, and 2024-02-29.
        let (leap, old) = (762_524_055_500_000i64, -3_155_673_600_000_000i64);
        let day = 8_825i32.to_be_bytes();
        let mut with = Rendering::default();
        let all = |with: &Rendering| {
            [
                text_in(with, oid::TIMESTAMPTZ, &at(leap)),
                text_in(with, oid::TIMESTAMPTZ, &at(old)),
                text_in(with, oid::DATE, &day),
                text_in(with, oid::TIMESTAMP, &at(leap)),
            ]
            .map(Option::unwrap_or_default)
        };
        // As the server wrote them (PostgreSQL 15).
        for (zone, style, expected) in [
            (
                "UTC",
                "SQL, MDY",
                [
                    "02/29/2024 12:14:15.5 UTC",
                    "01/01/1900 00:00:00 UTC",
                    "02/29/2024",
                    "02/29/2024 12:14:15.5",
                ],
            ),
            (
                "GMT",
                "Postgres, DMY",
                [
                    "Thu 29 Feb 12:14:15.5 2024 GMT",
                    "Mon 01 Jan 00:00:00 1900 GMT",
                    "29-02-2024",
                    "Thu 29 Feb 12:14:15.5 2024",
                ],
            ),
            (
                "Europe/Paris",
                "German, DMY",
                [
                    "29.02.2024 13:14:15.5 CET",
                    "01.01.1900 00:09:21 PMT",
                    "29.02.2024",
                    "29.02.2024 12:14:15.5",
                ],
            ),
            (
                "Europe/Paris",
                "Postgres, MDY",
                [
                    "Thu Feb 29 13:14:15.5 2024 CET",
                    "Mon Jan 01 00:09:21 1900 PMT",
                    "02-29-2024",
                    "Thu Feb 29 12:14:15.5 2024",
                ],
            ),
            (
                "<+03>-03",
                "SQL, DMY",
                [
                    "29/02/2024 15:14:15.5 +03",
                    "01/01/1900 03:00:00 +03",
                    "29/02/2024",
                    "29/02/2024 12:14:15.5",
                ],
            ),
            (
                "-03:30",
                "German, DMY",
                [
                    "29.02.2024 15:44:15.5 ",
                    "01.01.1900 03:30:00 ",
                    "29.02.2024",
                    "29.02.2024 12:14:15.5",
                ],
            ),
            (
                "Europe/Paris",
                "ISO, DMY",
                [
                    "2024-02-29 13:14:15.5+01",
                    "1900-01-01 00:09:21+00:09:21",
                    "2024-02-29",
                    "2024-02-29 12:14:15.5",
                ],
            ),
        ] {
            with.set_parameter("TimeZone", zone);
            with.set_parameter("DateStyle", style);
            assert_eq!(all(&with), expected, "{zone}, {style}");
        }
        // Other parameters change nothing.
        with.set_parameter("IntervalStyle", "sql_standard");
        with.set_parameter("timezone", "Asia/Kolkata");
        assert_eq!(all(&with)[0], "2024-02-29 13:14:15.5+01");
    }

    #[test]
    fn intervals_in_the_session_interval_style() {
        // (months, days, microseconds), and each style's text as the
        // server wrote it (PostgreSQL 15, from make_interval).
        let values: [(i32, i32, i64); 15] = [
            (14, -3, 14_706_500_000),
            (0, -1, 7_200_000_000),
            (0, 0, 0),
            (0, 0, -1_250_000),
            (-14, 0, 0),
            (0, 3, 14_706_000_000),
            (0, -3, -14_706_000_000),
            (0, 0, 1_000_000),
            (0, 0, -1_000_000),
            (0, 0, 360_000_000_001),
            (1, 0, -1_000_000),
            (-11, 0, 0),
            (12, 0, -5),
            (0, 0, -3_600_000_000),
            (0, 2, 0),
        ];
        let mut with = Rendering::default();
        for (style, expected) in [
            (
                "postgres",
                "1 year 2 mons -3 days +04:05:06.5|-1 days +02:00:00|00:00:00|-00:00:01.25|-1 years -2 mons|3 days 04:05:06|-3 days -04:05:06|00:00:01|-00:00:01|100:00:00.000001|1 mon -00:00:01|-11 mons|1 year -00:00:00.000005|-01:00:00|2 days",
            ),
            (
                "postgres_verbose",
                "@ 1 year 2 mons -3 days 4 hours 5 mins 6.5 secs|@ 1 day -2 hours ago|@ 0|@ 1.25 secs ago|@ 1 year 2 mons ago|@ 3 days 4 hours 5 mins 6 secs|@ 3 days 4 hours 5 mins 6 secs ago|@ 1 sec|@ 1 sec ago|@ 100 hours 0.000001 secs|@ 1 mon -1 sec|@ 11 mons ago|@ 1 year -0.000005 secs|@ 1 hour ago|@ 2 days",
            ),
            (
                "sql_standard",
                "+1-2 -3 +4:05:06.5|+0-0 -1 +2:00:00|0|-0:00:01.25|-1-2|3 4:05:06|-3 4:05:06|0:00:01|-0:00:01|100:00:00.000001|+0-1 +0 -0:00:01|-0-11|+1-0 +0 -0:00:00.000005|-1:00:00|2 0:00:00",
            ),
            (
                "iso_8601",
                "P1Y2M-3DT4H5M6.5S|P-1DT2H|PT0S|PT-1.25S|P-1Y-2M|P3DT4H5M6S|P-3DT-4H-5M-6S|PT1S|PT-1S|PT100H0.000001S|P1MT-1S|P-11M|P1YT-0.000005S|PT-1H|P2D",
            ),
        ] {
            with.set_parameter("IntervalStyle", style);
            let got: Vec<String> = values
                .iter()
                .map(|&(months, days, us)| {
                    let mut v = us.to_be_bytes().to_vec();
                    v.extend_from_slice(&days.to_be_bytes());
                    v.extend_from_slice(&months.to_be_bytes());
                    text_in(&with, oid::INTERVAL, &v).unwrap_or_default()
                })
                .collect();
            assert_eq!(got.join("|"), expected, "{style}");
        }
    }

    #[test]
    fn ranges_and_geometry() {
        let bound = |v: &[u8]| {
            let mut b = i32::try_from(v.len()).unwrap().to_be_bytes().to_vec();
            b.extend_from_slice(v);
            b
        };
        let int4range = |flags: u8, bounds: &[&[u8]]| {
            let mut v = vec![flags];
            for b in bounds {
                v.extend_from_slice(&bound(b));
            }
            text(3904, &v)
        };
        let (one, ten) = (1i32.to_be_bytes(), 10i32.to_be_bytes());
        assert_eq!(int4range(0x02, &[&one, &ten]).as_deref(), Some("[1,10)"));
        assert_eq!(int4range(0x04 | 0x08, &[&ten]).as_deref(), Some("(,10]"));
        assert_eq!(int4range(0x08 | 0x10, &[]).as_deref(), Some("(,)"));
        assert_eq!(int4range(0x01, &[]).as_deref(), Some("empty"));
        assert_eq!(int4range(0x01, &[&one]), None, "bytes after an empty range");
        assert_eq!(int4range(0x02, &[&one]), None, "a missing upper bound");
        assert_eq!(int4range(0x80, &[]), None, "an unknown flag");
        assert_eq!(int4range(0x02, &[&one, &ten[..3]]), None, "a short bound");
        // Two numerics of 2,000 digits from 31 bytes: over the bound on
        // the text a value writes (one of them alone is within it).
        let big = numeric_bytes(0, 249, 0, 1000, &[]);
        let mut numrange = vec![0x02];
        numrange.extend_from_slice(&bound(&big));
        numrange.extend_from_slice(&bound(&big));
        assert_eq!(text(3906, &numrange), None);
        let mut half = vec![0x02 | 0x10];
        half.extend_from_slice(&bound(&big));
        assert_eq!(text(3906, &half).map(|t| t.len()), Some(2001));
        let f = |xs: &[f64]| xs.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(
            text(oid::POINT, &f(&[1.5, -2.0])).as_deref(),
            Some("(1.5,-2)")
        );
        assert_eq!(text(oid::POINT, &f(&[1.5])), None);
        assert_eq!(
            text(oid::CIRCLE, &f(&[1.0, 2.0, 0.5])).as_deref(),
            Some("<(1,2),0.5>")
        );
        let mut path = vec![0u8];
        path.extend_from_slice(&2i32.to_be_bytes());
        path.extend_from_slice(&f(&[0.0, 0.0, 1.0, 1.0]));
        assert_eq!(text(oid::PATH, &path).as_deref(), Some("[(0,0),(1,1)]"));
        path[4] = 3;
        assert_eq!(
            text(oid::PATH, &path),
            None,
            "more points counted than sent"
        );
        let mut polygon = i32::MAX.to_be_bytes().to_vec();
        polygon.extend_from_slice(&f(&[0.0, 0.0]));
        assert_eq!(text(oid::POLYGON, &polygon), None);
    }
}
