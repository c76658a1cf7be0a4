//! The wire layer of `linux.seccomp`: bounded structs that mirror the JSON.
//!
//! Strings are borrowed, still escaped, from the input, and every array has a
//! `MAX_*` capacity ([`crate::wire`]), as in [`crate::spec`]. Two differences,
//! both for size (Docker's profile has some 370 names in one rule, and every
//! rule has room for [`MAX_NAMES_PER_RULE`]):
//! - the entries of `syscalls[].names` are looked up in the system call tables
//!   while they are parsed, so a rule holds 2 bytes per name instead of a
//!   16-byte string: about 1.4 KiB a rule;
//! - `syscalls` itself is bounded but on the heap ([`HeapCapped`]): 64 rules
//!   inline would be 90 KiB, copied through each frame of the deserializer in
//!   a debug build, which overflowed a test thread's 2 MiB stack.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json_core::str::{EscapedStr, EscapedStringFragment};

use super::syscalls::Syscall;
use super::{
    MAX_ARCHITECTURES, MAX_ARGS_PER_RULE, MAX_FLAGS, MAX_NAMES_PER_RULE, MAX_SYSCALL_NAME,
    MAX_SYSCALL_RULES,
};
use crate::wire::HeapCapped;

/// The `linux.seccomp` object of `config.json` as the JSON has it; turned into a
/// [`Profile`](super::Profile) with `Profile::try_from`. It can be a member of
/// another wire struct (`#[serde(borrow)] seccomp: Option<WireSeccomp<'a>>`).
/// Unknown properties are ignored, as the runtime spec requires.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSeccomp<'a> {
    #[serde(borrow)]
    pub(super) default_action: Option<EscapedStr<'a>>,
    pub(super) default_errno_ret: Option<u32>,
    #[serde(borrow)]
    pub(super) architectures: Option<HeapCapped<EscapedStr<'a>, MAX_ARCHITECTURES>>,
    #[serde(borrow)]
    pub(super) flags: Option<HeapCapped<EscapedStr<'a>, MAX_FLAGS>>,
    pub(super) listener_path: Option<IgnoredAny>,
    pub(super) listener_metadata: Option<IgnoredAny>,
    #[serde(borrow)]
    pub(super) syscalls: Option<HeapCapped<WireSyscall<'a>, MAX_SYSCALL_RULES>>,
}

/// One entry of `syscalls`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireSyscall<'a> {
    #[serde(borrow)]
    pub(super) names: Option<WireNames<'a>>,
    #[serde(borrow)]
    pub(super) action: Option<EscapedStr<'a>>,
    pub(super) errno_ret: Option<u32>,
    #[serde(borrow)]
    pub(super) args: Option<HeapCapped<WireArg<'a>, MAX_ARGS_PER_RULE>>,
}

/// One entry of `syscalls[].args`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireArg<'a> {
    pub(super) index: Option<u32>,
    pub(super) value: Option<u64>,
    pub(super) value_two: Option<u64>,
    #[serde(borrow)]
    pub(super) op: Option<EscapedStr<'a>>,
}

/// `syscalls[].names`, each name looked up as it is parsed.
pub(super) struct WireNames<'a> {
    /// The names found in the tables, in order, at most [`MAX_NAMES_PER_RULE`].
    pub(super) syscalls: heapless::Vec<Syscall, MAX_NAMES_PER_RULE>,
    /// How many names the array has, found or not.
    pub(super) len: usize,
    /// The first name not in the tables, and its position.
    pub(super) unknown: Option<(usize, EscapedStr<'a>)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireNames<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamesVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for NamesVisitor<'a> {
            type Value = WireNames<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of system call names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = WireNames {
                    syscalls: heapless::Vec::new(),
                    len: 0,
                    unknown: None,
                };
                while let Some(name) = seq.next_element::<EscapedStr<'de>>()? {
                    match lookup(name) {
                        Some(syscall) => {
                            // A full vector is reported through `len`.
                            let _ = names.syscalls.push(syscall);
                        }
                        None => {
                            names.unknown.get_or_insert((names.len, name));
                        }
                    }
                    names.len += 1;
                }
                Ok(names)
            }
        }

        deserializer.deserialize_seq(NamesVisitor(PhantomData))
    }
}

/// The system call an escaped JSON string names, if any.
fn lookup(escaped: EscapedStr<'_>) -> Option<Syscall> {
    let mut name = heapless::String::<MAX_SYSCALL_NAME>::new();
    for fragment in escaped.fragments() {
        match fragment.ok()? {
            EscapedStringFragment::NotEscaped(s) => name.push_str(s).ok()?,
            EscapedStringFragment::Escaped(c) => name.push(c).ok()?,
        }
    }
    Syscall::lookup(&name)
}
