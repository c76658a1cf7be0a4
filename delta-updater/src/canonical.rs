//! Canonical JSON: the one byte encoding of signed metadata, so that the bytes
//! a signature covers are unambiguous.
//!
//! The encoding (OLPC-style canonical JSON, as TUF uses, with a stricter
//! string escape rule):
//!
//! - no whitespace outside strings;
//! - object members sorted by the bytes of their encoded keys, strictly
//!   ascending (so no key twice);
//! - integers only: `0` or `-?[1-9][0-9]*`, at most [`MAX_INTEGER_DIGITS`]
//!   digits; no fractions, no exponents;
//! - strings: `"` as `\"`, `\` as `\\`, bytes 0x00 to 0x1f as `\u00xx` (lowercase
//!   hex), every other character as its UTF-8 bytes (no other escape);
//! - `true`, `false`, `null`; nesting at most [`MAX_DEPTH`] deep.
//!
//! The device only checks ([`top_members`]); the publisher writes
//! ([`Value::encode`], feature `publish`).

use core::fmt;

/// Deepest nesting of arrays and objects the checker follows.
pub const MAX_DEPTH: usize = 16;
/// Most members a top-level object may have for [`top_members`].
pub const MAX_TOP_MEMBERS: usize = 16;
/// Most digits of an integer (an `i64` has at most 19).
pub const MAX_INTEGER_DIGITS: usize = 19;

/// Why bytes are not canonical JSON: the offset of the first wrong byte and what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalError {
    /// Offset in bytes from the start of the document.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl fmt::Display for CanonicalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not canonical JSON at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for CanonicalError {}

/// The members of a canonical top-level object: each key (its encoded bytes,
/// without the quotes) and the exact bytes of its value, in order.
pub type Members<'a> = heapless::Vec<(&'a [u8], &'a [u8]), MAX_TOP_MEMBERS>;

/// Checks that all of `doc` is one canonical JSON object and returns its members.
pub fn top_members(doc: &[u8]) -> Result<Members<'_>, CanonicalError> {
    let mut s = Scanner { doc, pos: 0 };
    let mut members = Members::new();
    s.expect(b'{', "expected an object")?;
    if !s.eat(b'}') {
        let mut previous: Option<&[u8]> = None;
        loop {
            let key = s.key(previous)?;
            previous = Some(key);
            let start = s.pos;
            // The top-level object is level 1 of the nesting.
            s.value(2)?;
            members
                .push((key, &doc[start..s.pos]))
                .map_err(|_| s.error("too many members in the top-level object"))?;
            if s.eat(b'}') {
                break;
            }
            s.expect(b',', "expected ',' or '}'")?;
        }
    }
    if s.pos != doc.len() {
        return Err(s.error("bytes after the end of the document"));
    }
    Ok(members)
}

/// The value of the member `key` among `members`.
pub fn member<'a>(members: &Members<'a>, key: &str) -> Option<&'a [u8]> {
    members
        .iter()
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, v)| *v)
}

struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, reason: &'static str) -> CanonicalError {
        CanonicalError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.doc.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), CanonicalError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    /// A member's key and its colon; the key must sort after `previous`.
    fn key(&mut self, previous: Option<&[u8]>) -> Result<&'a [u8], CanonicalError> {
        let at = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        self.string()?;
        let key = &self.doc[at + 1..self.pos - 1];
        if previous.is_some_and(|p| p >= key) {
            return Err(CanonicalError {
                offset: at,
                reason: "keys not in ascending order, or repeated",
            });
        }
        self.expect(b':', "expected ':'")?;
        Ok(key)
    }

    fn value(&mut self, depth: usize) -> Result<(), CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                let mut previous = None;
                loop {
                    previous = Some(self.key(previous)?);
                    self.value(depth + 1)?;
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    self.expect(b',', "expected ',' or '}'")?;
                }
            }
            Some(b'[') => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    if self.eat(b']') {
                        return Ok(());
                    }
                    self.expect(b',', "expected ',' or ']'")?;
                }
            }
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), CanonicalError> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    fn integer(&mut self) -> Result<(), CanonicalError> {
        let negative = self.eat(b'-');
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let digits = &self.doc[start..self.pos];
        match digits {
            [] => return Err(self.error("expected a digit")),
            [b'0'] if negative => return Err(self.error("negative zero")),
            [b'0', _, ..] => {
                return Err(CanonicalError {
                    offset: start,
                    reason: "leading zero",
                })
            }
            _ => {}
        }
        if digits.len() > MAX_INTEGER_DIGITS {
            return Err(self.error("integer too long"));
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(self.error("not an integer"));
        }
        Ok(())
    }

    fn string(&mut self) -> Result<(), CanonicalError> {
        self.pos += 1; // the opening quote
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(0..=0x1f) => return Err(self.error("control character not escaped")),
                Some(b'\\') => {
                    let rest = &self.doc[self.pos + 1..];
                    let len = match rest {
                        [b'"' | b'\\', ..] => 2,
                        [b'u', b'0', b'0', b'0' | b'1', lo, ..]
                            if lo.is_ascii_digit() || (b'a'..=b'f').contains(lo) =>
                        {
                            6
                        }
                        _ => return Err(self.error("escape other than \\\" \\\\ \\u00xx")),
                    };
                    self.pos += len;
                }
                Some(b) if b < 0x80 => self.pos += 1,
                Some(_) => {
                    let len = utf8_len(&self.doc[self.pos..])
                        .ok_or_else(|| self.error("invalid UTF-8"))?;
                    self.pos += len;
                }
            }
        }
    }
}

/// Length of the valid UTF-8 character at the start of `bytes`.
fn utf8_len(bytes: &[u8]) -> Option<usize> {
    let len = match bytes.first()? {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let ch = bytes.get(..len)?;
    core::str::from_utf8(ch).ok().map(|_| len)
}

#[cfg(any(feature = "publish", test))]
pub use writer::Value;

#[cfg(any(feature = "publish", test))]
mod writer {
    /// A JSON value that encodes canonically. Publishing side only.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Value {
        /// `null`
        Null,
        /// `true` or `false`
        Bool(bool),
        /// An integer.
        Int(i64),
        /// A string.
        Str(String),
        /// An array.
        Array(Vec<Value>),
        /// An object; [`Value::encode`] sorts its members.
        Object(Vec<(String, Value)>),
    }

    impl Value {
        /// An object of `members`.
        pub fn object<'k>(members: impl IntoIterator<Item = (&'k str, Value)>) -> Self {
            Self::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        }

        /// A string.
        pub fn str(s: impl Into<String>) -> Self {
            Self::Str(s.into())
        }

        /// An unsigned integer; metadata sizes and versions fit an `i64`.
        pub fn uint(n: u64) -> Self {
            Self::Int(i64::try_from(n).expect("metadata integers fit an i64"))
        }

        /// The canonical encoding.
        ///
        /// Panics if an object has one key twice: objects are built by the
        /// publisher from distinct names or from a parsed JSON object.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.encode_into(&mut out);
            out
        }

        fn encode_into(&self, out: &mut Vec<u8>) {
            match self {
                Self::Null => out.extend_from_slice(b"null"),
                Self::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                Self::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                Self::Str(s) => encode_str(s, out),
                Self::Array(items) => {
                    out.push(b'[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        item.encode_into(out);
                    }
                    out.push(b']');
                }
                Self::Object(members) => {
                    let mut encoded: Vec<(Vec<u8>, &Value)> = members
                        .iter()
                        .map(|(k, v)| {
                            let mut key = Vec::new();
                            encode_str(k, &mut key);
                            (key, v)
                        })
                        .collect();
                    // By the encoded key without its quotes, as the checker compares.
                    encoded.sort_by(|a, b| a.0[1..a.0.len() - 1].cmp(&b.0[1..b.0.len() - 1]));
                    assert!(
                        encoded.windows(2).all(|w| w[0].0 != w[1].0),
                        "object with a repeated key"
                    );
                    out.push(b'{');
                    for (i, (key, value)) in encoded.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(key);
                        out.push(b':');
                        value.encode_into(out);
                    }
                    out.push(b'}');
                }
            }
        }
    }

    fn encode_str(s: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                _ => out.push(b),
            }
        }
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(doc: &str) -> Result<(), CanonicalError> {
        top_members(doc.as_bytes()).map(|_| ())
    }

    #[test]
    fn canonical_documents_pass_and_members_are_exact_slices() {
        let doc = r#"{"a":[1,-2,0,"x\"\\\u001fé"],"b":{"c":true,"d":null},"e":false}"#.as_bytes();
        let members = top_members(doc).unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(member(&members, "b"), Some(&br#"{"c":true,"d":null}"#[..]));
        assert_eq!(member(&members, "z"), None);
        check(r#"{"é":"ü€😀"}"#).unwrap();
        check("{}").unwrap();
    }

    #[test]
    fn every_non_canonical_form_is_refused_with_its_offset() {
        let cases: &[(&str, usize, &str)] = &[
            (r#"{ "a":1}"#, 1, "expected a string key"),
            (r#"{"a": 1}"#, 5, "expected a value"),
            (
                r#"{"b":1,"a":2}"#,
                7,
                "keys not in ascending order, or repeated",
            ),
            (
                r#"{"a":1,"a":2}"#,
                7,
                "keys not in ascending order, or repeated",
            ),
            (r#"{"a":1.5}"#, 6, "not an integer"),
            (r#"{"a":1e3}"#, 6, "not an integer"),
            (r#"{"a":01}"#, 5, "leading zero"),
            (r#"{"a":-0}"#, 7, "negative zero"),
            (r#"{"a":"\/"}"#, 6, "escape other than \\\" \\\\ \\u00xx"),
            (
                r#"{"a":"\u0041"}"#,
                6,
                "escape other than \\\" \\\\ \\u00xx",
            ),
            (
                r#"{"a":"\u001F"}"#,
                6,
                "escape other than \\\" \\\\ \\u00xx",
            ),
            (r#"{"a":"\n"}"#, 6, "escape other than \\\" \\\\ \\u00xx"),
            ("{\"a\":\"\t\"}", 6, "control character not escaped"),
            (r#"{"a":1}x"#, 7, "bytes after the end of the document"),
            (r#"{"a":1}"#.trim_end_matches('}'), 6, "expected ',' or '}'"),
            ("[1]", 0, "expected an object"),
            (r#"{"a":nul}"#, 5, "expected true, false or null"),
            (r#"{"a":12345678901234567890}"#, 25, "integer too long"),
        ];
        for (doc, offset, reason) in cases {
            assert_eq!(
                check(doc),
                Err(CanonicalError {
                    offset: *offset,
                    reason
                }),
                "{doc}"
            );
        }
        assert_eq!(
            top_members(b"{\"a\":\"\xff\"}").unwrap_err().reason,
            "invalid UTF-8"
        );
        assert_eq!(
            top_members(b"{\"a\":\"\xed\xa0\x80\"}").unwrap_err().reason,
            "invalid UTF-8"
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        // The object and MAX_DEPTH - 1 arrays in it.
        let ok = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        check(&ok).unwrap();
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(check(&deep).unwrap_err().reason, "nested too deeply");
    }

    #[test]
    fn too_many_top_level_members_are_refused() {
        let members: Vec<String> = (0..=MAX_TOP_MEMBERS)
            .map(|i| format!("\"k{i:02}\":0"))
            .collect();
        let doc = format!("{{{}}}", members.join(","));
        assert_eq!(
            check(&doc).unwrap_err().reason,
            "too many members in the top-level object"
        );
    }

    #[test]
    fn the_writer_sorts_escapes_and_its_output_passes_the_check() {
        let v = Value::object([
            ("z", Value::Int(-7)),
            ("a\"b", Value::str("tab\there \\ \u{1} é")),
            (
                "m",
                Value::Array(vec![Value::Null, Value::Bool(true), Value::uint(0)]),
            ),
            ("a", Value::object([])),
        ]);
        let bytes = v.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"a":{},"a\"b":"tab\u0009here \\ \u0001 é","m":[null,true,0],"z":-7}"#
        );
        assert_eq!(top_members(&bytes).unwrap().len(), 4);
    }

    #[test]
    #[should_panic(expected = "repeated key")]
    fn the_writer_refuses_a_repeated_key() {
        Value::object([("a", Value::Null), ("a", Value::Null)]).encode();
    }
}
