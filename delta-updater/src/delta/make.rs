//! Computing deltas (publishing side, feature `publish`).
//!
//! Memory on the publisher is bounded by diffing pieces no larger than a cap:
//! bsdiff's suffix sort takes about 17 bytes per byte of the old input on a
//! 64-bit host (two `isize` arrays and the input) plus the new input. So
//!
//! - `tar-files` diffs member by member, and a member whose old or new data is
//!   larger than [`MAX_FILE_BSDIFF`] is stored literally: at most about
//!   17 x 16 MiB = 272 MiB for the diff, plus both tars (which are held in memory);
//! - a whole-layer `bsdiff` is tried only when the old layer is at most
//!   [`MAX_WHOLE_BSDIFF`] (about 17 x 32 MiB = 544 MiB).
//!
//! [`best`] keeps the smaller of the two, and only when it is at most
//! [`MARGIN_PERCENT`] % of the full compressed layer.

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;

use super::{Algorithm, MAGIC, OP_BSDIFF, OP_COPY, OP_END, OP_LITERAL, WINDOW_LOG};
use crate::digest::Digest;

/// Largest member (old or new) `tar-files` runs bsdiff on.
pub const MAX_FILE_BSDIFF: usize = 16 << 20;
/// Largest old layer a whole-layer bsdiff is tried on.
pub const MAX_WHOLE_BSDIFF: usize = 32 << 20;
/// A delta is kept only if at most this percentage of the full compressed layer.
pub const MARGIN_PERCENT: u64 = 80;
/// zstd level of published blobs (full layers and deltas).
pub const LEVEL: i32 = 19;
/// Members smaller than this are not worth a bsdiff.
const MIN_FILE_BSDIFF: usize = 128;
/// zstd level of the quick per-member comparison of bsdiff and literal.
const PROBE_LEVEL: i32 = 3;

/// One operation of a delta, before encoding.
/// Literals are ranges of the new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Copy {
        offset: u64,
        len: u64,
    },
    Literal(Range<usize>),
    Bsdiff {
        offset: u64,
        old_len: u64,
        new_len: u64,
        patch: Vec<u8>,
    },
}

/// Compresses `data` as published blobs are: zstd at [`LEVEL`], window at
/// most 2^[`WINDOW_LOG`], so the device's capped decoder takes it.
pub fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    compress_at(data, LEVEL)
}

fn compress_at(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    encoder.window_log(WINDOW_LOG)?;
    encoder.include_checksum(true)?;
    encoder.write_all(data)?;
    encoder.finish()
}

/// A whole-layer bsdiff of `old` into `new`, compressed; `None` if `old`
/// is larger than [`MAX_WHOLE_BSDIFF`].
pub fn whole_layer(old: &[u8], new: &[u8]) -> io::Result<Option<Vec<u8>>> {
    if old.len() > MAX_WHOLE_BSDIFF {
        return Ok(None);
    }
    let mut patch = Vec::new();
    bsdiff::diff(old, new, &mut patch)?;
    let ops = [Op::Bsdiff {
        offset: 0,
        old_len: old.len() as u64,
        new_len: new.len() as u64,
        patch,
    }];
    compress(&encode(new, &ops)).map(Some)
}

/// A per-member delta of tar `old` into tar `new`, compressed; `None` if
/// either does not read as a tar.
pub fn tar_files(old: &[u8], new: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let (Ok(old_members), Ok(new_members)) = (members(old), members(new)) else {
        return Ok(None);
    };
    let mut by_content: HashMap<Digest, (u64, u64)> = HashMap::new();
    let mut by_path: HashMap<&[u8], (u64, u64)> = HashMap::new();
    for m in &old_members {
        let data = &old[m.data as usize..(m.data + m.size) as usize];
        by_content
            .entry(Digest::of(data))
            .or_insert((m.data, m.size));
        by_path.insert(&m.path, (m.data, m.size));
    }
    let mut ops = Vec::new();
    let mut pos = 0usize;
    for m in &new_members {
        let (start, end) = (m.data as usize, (m.data + m.size) as usize);
        ops.push(Op::Literal(pos..start));
        ops.push(member_op(
            old,
            new,
            start..end,
            &by_content,
            by_path.get(&m.path[..]).copied(),
        )?);
        pos = end;
    }
    ops.push(Op::Literal(pos..new.len()));
    let raw = encode(new, &coalesce(ops));
    // The tar reader decides where members are; check the result rebuilds
    // `new` before offering it, so an odd tar costs a delta, never a layer.
    if apply_in_memory(old, &raw).as_deref() != Some(new) {
        return Ok(None);
    }
    compress(&raw).map(Some)
}

/// The smallest delta of `old` into `new` that is at most [`MARGIN_PERCENT`]
/// % of `full_len` (the compressed full layer's size), if any.
pub fn best(old: &[u8], new: &[u8], full_len: u64) -> io::Result<Option<(Algorithm, Vec<u8>)>> {
    let mut candidates = Vec::new();
    if let Some(d) = tar_files(old, new)? {
        candidates.push((Algorithm::TarFiles, d));
    }
    if let Some(d) = whole_layer(old, new)? {
        candidates.push((Algorithm::Bsdiff, d));
    }
    Ok(candidates
        .into_iter()
        .min_by_key(|(_, d)| d.len())
        .filter(|(_, d)| (d.len() as u64) * 100 <= full_len * MARGIN_PERCENT))
}

fn member_op(
    old: &[u8],
    new: &[u8],
    range: Range<usize>,
    by_content: &HashMap<Digest, (u64, u64)>,
    same_path: Option<(u64, u64)>,
) -> io::Result<Op> {
    let data = &new[range.clone()];
    if data.is_empty() {
        return Ok(Op::Literal(range));
    }
    if let Some(&(offset, len)) = by_content.get(&Digest::of(data)) {
        return Ok(Op::Copy { offset, len });
    }
    let Some((offset, old_len)) = same_path else {
        return Ok(Op::Literal(range));
    };
    let old_data = &old[offset as usize..(offset + old_len) as usize];
    if data.len() < MIN_FILE_BSDIFF
        || data.len() > MAX_FILE_BSDIFF
        || old_data.len() > MAX_FILE_BSDIFF
    {
        return Ok(Op::Literal(range));
    }
    let mut patch = Vec::new();
    bsdiff::diff(old_data, data, &mut patch)?;
    // Keep bsdiff only if it compresses smaller than the data itself.
    if compress_at(&patch, PROBE_LEVEL)?.len() >= compress_at(data, PROBE_LEVEL)?.len() {
        return Ok(Op::Literal(range));
    }
    Ok(Op::Bsdiff {
        offset,
        old_len,
        new_len: data.len() as u64,
        patch,
    })
}

/// Merges literals that follow each other in the new tar, drops empty ones.
fn coalesce(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        match (out.last_mut(), op) {
            (_, Op::Literal(range)) if range.is_empty() => {}
            (Some(Op::Literal(prev)), Op::Literal(range)) if prev.end == range.start => {
                prev.end = range.end;
            }
            (_, op) => out.push(op),
        }
    }
    out
}

fn encode(new: &[u8], ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(new.len() as u64).to_le_bytes());
    for op in ops {
        match op {
            Op::Copy { offset, len } => {
                out.push(OP_COPY);
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
            Op::Literal(range) => {
                out.push(OP_LITERAL);
                out.extend_from_slice(&(range.len() as u64).to_le_bytes());
                out.extend_from_slice(&new[range.clone()]);
            }
            Op::Bsdiff {
                offset,
                old_len,
                new_len,
                patch,
            } => {
                out.push(OP_BSDIFF);
                for n in [*offset, *old_len, *new_len, patch.len() as u64] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(patch);
            }
        }
    }
    out.push(OP_END);
    out
}

/// Rebuilds the new layer from an uncompressed op stream, in memory: the
/// publisher's check of its own output.
fn apply_in_memory(old: &[u8], raw: &[u8]) -> Option<Vec<u8>> {
    let mut r = raw.strip_prefix(MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (r.get(..n)?, r.get(n..)?);
        r = tail;
        Some(head)
    };
    let size = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mut out = Vec::with_capacity(size as usize);
    loop {
        let op = take(1)?[0];
        let mut word = || Some(u64::from_le_bytes(take(8)?.try_into().ok()?) as usize);
        match op {
            OP_END => break,
            OP_COPY => {
                let (offset, len) = (word()?, word()?);
                out.extend_from_slice(old.get(offset..offset.checked_add(len)?)?);
            }
            OP_LITERAL => {
                let len = word()?;
                out.extend_from_slice(take(len)?);
            }
            OP_BSDIFF => {
                let (offset, old_len, _new_len, patch_len) = (word()?, word()?, word()?, word()?);
                let base = old.get(offset..offset.checked_add(old_len)?)?;
                let mut patch = take(patch_len)?;
                bsdiff::patch(base, &mut patch, &mut out).ok()?;
            }
            _ => return None,
        }
    }
    Some(out)
}

struct Member {
    path: Vec<u8>,
    /// Offset of its data in the tar.
    data: u64,
    size: u64,
}

/// The members of a tar with data whose bytes lie as they are in the tar
/// (regular files); others (links, directories, sparse files) have no data
/// to diff and travel in the literal stream.
fn members(tar_bytes: &[u8]) -> io::Result<Vec<Member>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let size = entry.size();
        let data = entry.raw_file_position();
        let end = data
            .checked_add(size)
            .filter(|&e| e <= tar_bytes.len() as u64);
        if end.is_none() || out.last().is_some_and(|m: &Member| m.data + m.size > data) {
            return Err(io::ErrorKind::InvalidData.into());
        }
        out.push(Member {
            path: entry.path_bytes().into_owned(),
            data,
            size,
        });
    }
    Ok(out)
}
