//! The JSON wire layer shared by `config.json`, `linux.resources`,
//! `linux.seccomp` and the state file: bounded containers, the path of a
//! property for error messages, and unescaping with a byte limit and a NUL check.
//!
//! Wire structs (serde-json-core) borrow their strings, still escaped, from the
//! input, and every array or object has a fixed capacity, a `MAX_*` constant of
//! the module that owns the struct. More entries than that are counted instead
//! of failing the parse (serde-json-core would drop the message), so the
//! conversion into validated types can name the property and its capacity.
//!
//! The helpers fail with a [`WireError`], which `spec`, `cgroup` and `seccomp`
//! each carry in a variant of their own error enum.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json_core::str::{EscapedStr, EscapedStringFragment};

/// Most parts a [`Field`] has: `linux.seccomp.syscalls[2]`, `args[0]`, `op`.
pub const MAX_FIELD_DEPTH: usize = 3;

/// What [`WireError::Invalid`] says of a string with a malformed escape sequence.
pub const INVALID_ESCAPE: &str = "has an invalid escape sequence";
/// What [`WireError::Invalid`] says of a string that contains NUL where none may be.
pub const HAS_NUL: &str = "contains a NUL byte";

/// A property of a JSON document, such as `mounts[2].options` or
/// `linux.seccomp.syscalls[2].args[0].op`, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Each part a name and, if the part is an array, an index into it; the
    /// first is a dotted path from the document's root. Indices are below the
    /// capacity of their array, so `u32` holds them (and keeps the errors small).
    parts: [Option<(&'static str, Option<u32>)>; MAX_FIELD_DEPTH],
}

/// Why a wire value was refused. The field is the property to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// An array or object has more entries than its capacity.
    TooMany {
        /// The array or object.
        field: Field,
        /// Its capacity.
        max: usize,
    },
    /// A string is longer than its capacity.
    TooLong {
        /// The string.
        field: Field,
        /// Its capacity in bytes.
        max: usize,
    },
    /// A string is malformed.
    Invalid {
        /// The string.
        field: Field,
        /// [`INVALID_ESCAPE`] or [`HAS_NUL`].
        reason: &'static str,
    },
}

impl Field {
    /// The property at the dotted path `name`, such as `process.args`.
    pub const fn new(name: &'static str) -> Self {
        let mut parts = [None; MAX_FIELD_DEPTH];
        parts[0] = Some((name, None));
        Self { parts }
    }

    /// Entry `index` of this array.
    pub const fn at(self, index: usize) -> Self {
        let mut parts = self.parts;
        let last = self.depth() - 1;
        if let Some((name, _)) = parts[last] {
            parts[last] = Some((name, Some(index as u32)));
        }
        Self { parts }
    }

    /// The member `name` of this object.
    ///
    /// Panics if the path would be deeper than [`MAX_FIELD_DEPTH`]: paths are
    /// written in the code, never read from the input.
    pub const fn member(self, name: &'static str) -> Self {
        let mut parts = self.parts;
        parts[self.depth()] = Some((name, None));
        Self { parts }
    }

    /// The same property named from `parent`, an object on its dotted path:
    /// `process.user.uid` relative to `process` is `user.uid`. A path that
    /// does not start with `parent.` is left as it is.
    pub fn relative_to(self, parent: &str) -> Self {
        let mut parts = self.parts;
        if let Some((name, index)) = parts[0] {
            let relative = name
                .strip_prefix(parent)
                .and_then(|rest| rest.strip_prefix('.'))
                .filter(|rest| !rest.is_empty());
            if let Some(relative) = relative {
                parts[0] = Some((relative, index));
            }
        }
        Self { parts }
    }

    /// How many parts the path has, at least one.
    const fn depth(&self) -> usize {
        let mut depth = 1;
        while depth < MAX_FIELD_DEPTH && self.parts[depth].is_some() {
            depth += 1;
        }
        depth
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, index)) in self.parts.iter().flatten().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(name)?;
            if let Some(index) = index {
                write!(f, "[{index}]")?;
            }
        }
        Ok(())
    }
}

impl WireError {
    /// The error with its field named relative to `parent` ([`Field::relative_to`]).
    pub fn relative_to(self, parent: &str) -> Self {
        match self {
            Self::TooMany { field, max } => Self::TooMany {
                field: field.relative_to(parent),
                max,
            },
            Self::TooLong { field, max } => Self::TooLong {
                field: field.relative_to(parent),
                max,
            },
            Self::Invalid { field, reason } => Self::Invalid {
                field: field.relative_to(parent),
                reason,
            },
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany { field, max } => write!(f, "{field} has more than {max} entries"),
            Self::TooLong { field, max } => write!(f, "{field} is longer than {max} bytes"),
            Self::Invalid { field, reason } => write!(f, "{field} {reason}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A JSON array of at most `N` entries, kept inline.
pub(crate) struct Capped<T, const N: usize> {
    items: heapless::Vec<T, N>,
    overflow: bool,
}

/// Like [`Capped`], with the entries on the heap: for arrays whose entries are
/// large (`mounts`: 64 of about 600 bytes; `linux.seccomp.syscalls`: 64 of
/// about 1.4 KiB), which inline would be copied through every frame of the
/// deserializer and, in a debug build, overflow a test thread's 2 MiB stack.
/// Every array of `config.json` is one: with inline arrays its wire struct
/// was 28,728 bytes, moved through each level of the parse, and parsing
/// husk spec's default config took 1.76 M instructions (callgrind) of the
/// 2.31 M `husk run` spends in user space before it forks; as heap arrays
/// the struct is 3,592 bytes and the parse 1.23 M.
pub(crate) struct HeapCapped<T, const N: usize> {
    items: Vec<T>,
    overflow: bool,
}

/// A JSON object of strings with at most `N` members, counted like [`Capped`].
/// Keys are borrowed as `&str` and wrapped: serde-json-core 0.6 cannot
/// deserialize an `EscapedStr` key, but without an unescape buffer it hands out
/// the key's text still escaped.
pub(crate) struct CappedMap<'a, const N: usize> {
    entries: heapless::Vec<(EscapedStr<'a>, EscapedStr<'a>), N>,
    overflow: bool,
}

impl<T, const N: usize> Capped<T, N> {
    /// The entries, or [`WireError::TooMany`] naming `field`.
    pub(crate) fn into_items(self, field: Field) -> Result<heapless::Vec<T, N>, WireError> {
        too_many(field, N, self.overflow)?;
        Ok(self.items)
    }
}

impl<T, const N: usize> HeapCapped<T, N> {
    /// The entries, or [`WireError::TooMany`] naming `field`.
    pub(crate) fn into_items(self, field: Field) -> Result<Vec<T>, WireError> {
        too_many(field, N, self.overflow)?;
        Ok(self.items)
    }
}

impl<'a, const N: usize> CappedMap<'a, N> {
    /// The members in order, or [`WireError::TooMany`] naming `field`.
    pub(crate) fn into_entries(
        self,
        field: Field,
    ) -> Result<heapless::Vec<(EscapedStr<'a>, EscapedStr<'a>), N>, WireError> {
        too_many(field, N, self.overflow)?;
        Ok(self.entries)
    }
}

fn too_many(field: Field, max: usize, overflow: bool) -> Result<(), WireError> {
    if overflow {
        return Err(WireError::TooMany { field, max });
    }
    Ok(())
}

/// An absent array is an empty one.
impl<T, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Self {
            items: heapless::Vec::new(),
            overflow: false,
        }
    }
}

/// An absent array is an empty one.
impl<T, const N: usize> Default for HeapCapped<T, N> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            overflow: false,
        }
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut items = heapless::Vec::new();
        let overflow = deserialize_seq(deserializer, |item| items.push(item).is_ok())?;
        Ok(Self { items, overflow })
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for HeapCapped<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut items = Vec::new();
        let overflow = deserialize_seq(deserializer, |item| {
            let room = items.len() < N;
            if room {
                items.push(item);
            }
            room
        })?;
        Ok(Self { items, overflow })
    }
}

/// Parses a JSON array, handing each entry to `keep`, which says whether it
/// had room for it; true if any entry found none.
fn deserialize_seq<'de, D, T, F>(deserializer: D, keep: F) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    F: FnMut(T) -> bool,
{
    struct SeqVisitor<T, F>(F, PhantomData<T>);

    impl<'de, T: Deserialize<'de>, F: FnMut(T) -> bool> Visitor<'de> for SeqVisitor<T, F> {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
            let mut overflow = false;
            while let Some(item) = seq.next_element()? {
                overflow |= !(self.0)(item);
            }
            Ok(overflow)
        }
    }

    deserializer.deserialize_seq(SeqVisitor(keep, PhantomData))
}

impl<'de: 'a, 'a, const N: usize> Deserialize<'de> for CappedMap<'a, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key<'a>(EscapedStr<'a>);

        impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct KeyVisitor;

                impl<'de> Visitor<'de> for KeyVisitor {
                    type Value = &'de str;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string borrowed from the input")
                    }

                    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<&'de str, E> {
                        Ok(key)
                    }
                }

                deserializer
                    .deserialize_str(KeyVisitor)
                    .map(|key| Key(EscapedStr(key)))
            }
        }

        struct MapVisitor<'a, const N: usize>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a, const N: usize> Visitor<'de> for MapVisitor<'a, N> {
            type Value = CappedMap<'a, N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut capped = CappedMap {
                    entries: heapless::Vec::new(),
                    overflow: false,
                };
                while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
                    let value: EscapedStr<'a> = map.next_value()?;
                    capped.overflow |= capped.entries.push((key, value)).is_err();
                }
                Ok(capped)
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Decodes a JSON string of at most `max` bytes that must not contain NUL:
/// one that becomes a path, an argument, or a value written to a file.
pub(crate) fn unescape(
    field: Field,
    escaped: EscapedStr<'_>,
    max: usize,
) -> Result<String, WireError> {
    let text = unescape_with_nul(field, escaped, max)?;
    if text.contains('\0') {
        return Err(WireError::Invalid {
            field,
            reason: HAS_NUL,
        });
    }
    Ok(text)
}

/// Decodes a JSON string of at most `max` bytes, NUL and all: for a name that
/// is only compared with known names, or text husk wrote itself.
pub(crate) fn unescape_with_nul(
    field: Field,
    escaped: EscapedStr<'_>,
    max: usize,
) -> Result<String, WireError> {
    let mut text = String::with_capacity(escaped.0.len().min(max));
    for fragment in escaped.fragments() {
        let fragment = fragment.map_err(|_| WireError::Invalid {
            field,
            reason: INVALID_ESCAPE,
        })?;
        match fragment {
            EscapedStringFragment::NotEscaped(s) => text.push_str(s),
            EscapedStringFragment::Escaped(c) => text.push(c),
        }
        if text.len() > max {
            return Err(WireError::TooLong { field, max });
        }
    }
    Ok(text)
}

/// Deepest nesting [`duplicate_key`] follows; a deeper document is not searched.
pub const MAX_SCAN_DEPTH: usize = 32;

/// A key that a JSON object has twice: serde-json-core refuses such a
/// document with its generic "does not match" error, so the parse error path
/// looks for one to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The object, as a property path (`linux.namespaces[1]`), empty for the
    /// document itself.
    pub object: String,
    /// The key, as written (still escaped).
    pub key: String,
}

/// The first key repeated within one object of the JSON text `json`, if any.
/// Only for error messages: it assumes nothing of the text, stops at anything
/// it does not understand, and compares keys as written.
pub fn duplicate_key(json: &[u8]) -> Option<DuplicateKey> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut at = 0;
    while at < json.len() {
        match json[at] {
            b'{' | b'[' if stack.len() >= MAX_SCAN_DEPTH => return None,
            b'{' => stack.push(Frame::Object {
                keys: Vec::new(),
                key_next: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key_next, .. }) => *key_next = true,
                Some(Frame::Array { index }) => *index += 1,
                None => return None,
            },
            b'"' => {
                let start = at + 1;
                let mut end = start;
                while end < json.len() && json[end] != b'"' {
                    end += if json[end] == b'\\' { 2 } else { 1 };
                }
                if end >= json.len() {
                    // An unterminated string: not JSON, nothing to name.
                    return None;
                }
                let text = &json[start..end];
                if let Some(Frame::Object { keys, key_next }) = stack.last_mut() {
                    if *key_next {
                        if keys.contains(&text) {
                            return Some(DuplicateKey {
                                object: scan_path(&stack),
                                key: String::from_utf8_lossy(text).into_owned(),
                            });
                        }
                        keys.push(text);
                        *key_next = false;
                    }
                }
                at = end;
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// An object or array [`duplicate_key`] is inside of.
enum Frame<'a> {
    Object { keys: Vec<&'a [u8]>, key_next: bool },
    Array { index: usize },
}

/// The property path of the innermost frame of `stack`: each enclosing
/// object's last key and each enclosing array's index.
fn scan_path(stack: &[Frame<'_>]) -> String {
    let mut path = String::new();
    for (depth, frame) in stack.iter().enumerate() {
        let innermost = depth + 1 == stack.len();
        match frame {
            Frame::Object { keys, .. } if !innermost => {
                if let Some(key) = keys.last() {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&String::from_utf8_lossy(key));
                }
            }
            Frame::Array { index } if depth > 0 => path.push_str(&format!("[{index}]")),
            _ => {}
        }
    }
    path
}

impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            write!(f, "the key {:?} appears twice", self.key)
        } else {
            write!(f, "{} has the key {:?} twice", self.object, self.key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_with_their_object() {
        let find = |json: &str| duplicate_key(json.as_bytes()).map(|d| d.to_string());
        assert_eq!(
            find(r#"{"a": 1, "b": {"c": 2}, "a": 3}"#).as_deref(),
            Some(r#"the key "a" appears twice"#)
        );
        let json =
            r#"{"linux": {"namespaces": [{"type": "pid"}, {"type": "uts", "type": "ipc"}]}}"#;
        assert_eq!(
            find(json).as_deref(),
            Some(r#"linux.namespaces[1] has the key "type" twice"#)
        );
        // Values, escaped quotes and keys of sibling objects are not keys twice.
        let json = r#"{"a": "a", "b": "x\"a\"", "c": [{"a": 1}, {"a": 2}], "d": {"a": {"a": 1}}}"#;
        assert_eq!(find(json), None);
        assert_eq!(
            find(r#"{"a": [1, 2, {"x": 1, "x": 2}]}"#).as_deref(),
            Some(r#"a[2] has the key "x" twice"#)
        );
        // Broken or too deep text is not searched.
        assert_eq!(find(r#"{"a": "#), None);
        // Found by fuzzing: an unterminated string is not a second key "".
        assert_eq!(find("{\"\": 1, \""), None);
        assert_eq!(find(&"[".repeat(MAX_SCAN_DEPTH + 1)), None);
    }

    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        list: Option<Capped<EscapedStr<'a>, 2>>,
        #[serde(borrow)]
        heap: Option<HeapCapped<EscapedStr<'a>, 2>>,
        #[serde(borrow)]
        map: Option<CappedMap<'a, 1>>,
    }

    fn doc(json: &str) -> Doc<'_> {
        serde_json_core::from_str::<Doc<'_>>(json).unwrap().0
    }

    const LIST: Field = Field::new("a.list");

    #[test]
    fn field_paths() {
        assert_eq!(LIST.to_string(), "a.list");
        assert_eq!(LIST.at(2).to_string(), "a.list[2]");
        assert_eq!(LIST.member("b").to_string(), "a.list.b");
        assert_eq!(
            LIST.at(2).member("b").at(0).member("c").to_string(),
            "a.list[2].b[0].c"
        );
        assert_eq!(
            LIST.at(2).member("b").relative_to("a").to_string(),
            "list[2].b"
        );
        assert_eq!(LIST.relative_to("a.list").to_string(), "a.list");
        assert_eq!(LIST.relative_to("a.l").to_string(), "a.list");
        assert_eq!(LIST.relative_to("b").to_string(), "a.list");
    }

    #[test]
    fn arrays_keep_their_capacity_and_count_the_rest() {
        let d = doc(r#"{"list": ["x", "y"], "heap": ["x", "y"]}"#);
        assert_eq!(d.list.unwrap().into_items(LIST).unwrap().len(), 2);
        assert_eq!(d.heap.unwrap().into_items(LIST).unwrap().len(), 2);
        let d = doc(r#"{"list": ["x", "y", "z"], "heap": ["x", "y", "z"]}"#);
        let too_many = Err(WireError::TooMany {
            field: LIST,
            max: 2,
        });
        let list = d.list.unwrap();
        assert_eq!(list.into_items(LIST).map(|_| ()), too_many);
        assert_eq!(d.heap.unwrap().into_items(LIST).map(|_| ()), too_many);
        let absent = doc("{}").list.unwrap_or_default();
        assert!(absent.into_items(LIST).unwrap().is_empty());
    }

    #[test]
    fn maps_keep_keys_escaped() {
        let entries = doc(r#"{"map": {"k\"ey": "v"}}"#)
            .map
            .unwrap()
            .into_entries(LIST)
            .unwrap();
        let (key, value) = &entries[0];
        assert_eq!((key.0, value.0), (r#"k\"ey"#, "v"));
        let map = doc(r#"{"map": {"a": "1", "b": "2"}}"#).map.unwrap();
        assert_eq!(
            map.into_entries(LIST).map(|_| ()),
            Err(WireError::TooMany {
                field: LIST,
                max: 1
            })
        );
    }

    #[test]
    fn unescape_limits_and_nul() {
        let s = |text| EscapedStr(text);
        assert_eq!(unescape(LIST, s(r#"a\"\u00e9"#), 4).unwrap(), "a\"é");
        assert_eq!(
            unescape(LIST, s(r#"a\"\u00e9"#), 3),
            Err(WireError::TooLong {
                field: LIST,
                max: 3
            })
        );
        assert_eq!(
            unescape(LIST, s(r#"\q"#), 8),
            Err(WireError::Invalid {
                field: LIST,
                reason: INVALID_ESCAPE
            })
        );
        assert_eq!(
            unescape(LIST, s(r#"a\u0000"#), 8),
            Err(WireError::Invalid {
                field: LIST,
                reason: HAS_NUL
            })
        );
        assert_eq!(unescape_with_nul(LIST, s(r#"a\u0000"#), 8).unwrap(), "a\0");
    }
}
