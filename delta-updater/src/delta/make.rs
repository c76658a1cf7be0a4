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
//!   [`MAX_WHOLE_BSDIFF`] (about 17 x 32 MiB = 544 MiB);
//! - `zstd-ref` holds both layers and an index of the old one (one hash
//!   table entry per 32 bytes, about 0.75 x the old layer), and compresses
//!   one segment of [`SEGMENT_LEN`] at a time against at most 1.75 MiB of
//!   prefix ([`REF_LEN`] + [`HISTORY_LEN`]);
//! - `zstd-patch` compresses at zstd's strongest level against both whole
//!   layers, whose match finder grows with them: it is tried only when old
//!   and new together are at most [`MAX_PATCH_INPUT`], and its frames are
//!   at most [`MAX_PATCH_FRAMES`] (each indexes its whole prefix again).
//!
//! [`best`] keeps the smallest of the four, and only when it is at most
//! [`MARGIN_PERCENT`] % of the full compressed layer.

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::Range;

use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective as EndDirective;
use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

use super::{
    deflate, zframe, Algorithm, Patch, MAGIC, MAX_HISTORY, MAX_INFLATED, MAX_REF, MAX_REF_RANGES,
    MAX_SEGMENT, OP_BSDIFF, OP_COPY, OP_END, OP_GZIP, OP_LITERAL, OP_PATCH, OP_ZREF, WINDOW_LOG,
    ZREF_OUTER_WINDOW_LOG,
};
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
    Zref {
        reference: Vec<Range<usize>>,
        history: u64,
        new_len: u64,
        frame: Vec<u8>,
    },
    Gzip {
        offset: u64,
        old_len: u64,
        old_raw_len: u64,
        level: u32,
        raw_len: u64,
        new_len: u64,
        patch: Vec<u8>,
    },
    Patch {
        new_len: u64,
        frame: Vec<u8>,
    },
}

impl Op {
    /// How many bytes of the new layer it writes.
    fn new_len(&self) -> u64 {
        match self {
            Self::Copy { len, .. } => *len,
            Self::Literal(range) => range.len() as u64,
            Self::Bsdiff { new_len, .. }
            | Self::Zref { new_len, .. }
            | Self::Gzip { new_len, .. }
            | Self::Patch { new_len, .. } => *new_len,
        }
    }
}

/// Compresses `data` as published blobs are: zstd at [`LEVEL`], window at
/// most 2^[`WINDOW_LOG`], so the device's capped decoder takes it.
pub fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    compress_at(data, LEVEL)
}

/// [`compress`] streaming from `data` into `out`: a full layer blob made
/// without holding the layer.
pub fn compress_stream(mut data: impl io::Read, out: impl Write) -> io::Result<()> {
    let mut encoder = zstd::stream::write::Encoder::new(out, LEVEL)?;
    encoder.window_log(WINDOW_LOG)?;
    encoder.include_checksum(true)?;
    io::copy(&mut data, &mut encoder)?;
    encoder.finish()?.flush()
}

fn compress_at(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    compress_window(data, level, WINDOW_LOG)
}

fn compress_window(data: &[u8], level: i32, window_log: u32) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    encoder.window_log(window_log)?;
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
    tar_files_of(old, new, tar_parts(old, new))
}

/// [`tar_files`] from the walk [`tar_parts`] made.
fn tar_files_of(old: &[u8], new: &[u8], parts: Option<Vec<Part>>) -> io::Result<Option<Vec<u8>>> {
    let Some(parts) = parts else {
        return Ok(None);
    };
    let mut ops = Vec::with_capacity(parts.len());
    for part in parts {
        ops.push(match part {
            Part::Copy { offset, len } => Op::Copy { offset, len },
            Part::Changed {
                new: to,
                old: Some(from),
            } => diff_or_literal(old, from, new, to)?,
            Part::Changed { new: to, old: None } => Op::Literal(to),
            Part::Gzip(gzip) => {
                ops.extend(gzip);
                continue;
            }
        });
    }
    let raw = encode(new, &coalesce(ops));
    // The tar reader decides where members are; check the result rebuilds
    // `new` before offering it, so an odd tar costs a delta, never a layer.
    if apply_in_memory(old, &raw).as_deref() != Some(new) {
        return Ok(None);
    }
    compress_window(&raw, LEVEL, TAR_FILES_WINDOW_LOG).map(Some)
}

/// zstd window of a `tar-files` delta: 1 MiB, so that ruzstd's ring buffer
/// is 2 MiB instead of 4, leaving room for a `GZIP` op's buffers (the device
/// takes any window up to [`WINDOW_LOG`]). Its content is bsdiff patches and
/// literals, whose matches are near.
pub const TAR_FILES_WINDOW_LOG: u32 = 20;

/// A stretch of the new tar, as the member-by-member walk sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes the old layer has at `offset`.
    Copy { offset: u64, len: u64 },
    /// Bytes of the new tar, and the old bytes they replace where there are
    /// some: the old data of the same path, or the old bytes between the
    /// same two paths.
    Changed {
        new: Range<usize>,
        old: Option<Range<usize>>,
    },
    /// A changed gzip member of the same path as an old one: its header,
    /// deflate stream and trailer ([`gzip_ops`]).
    Gzip(Vec<Op>),
}

/// The new tar member by member, in order, each stretch a copy of the old
/// tar where it can be: a member's data when the old layer has it (at the
/// same path first, so that unchanged runs are one range), and the bytes
/// between two members (padding, the header, entries without data such as
/// directories and links) when the old layer has exactly them between the
/// same two paths, as unchanged parts of a layer do. `None` if either does
/// not read as a tar.
fn tar_parts(old: &[u8], new: &[u8]) -> Option<Vec<Part>> {
    let (Ok(old_members), Ok(new_members)) = (members(old), members(new)) else {
        return None;
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
    let mut parts = Vec::new();
    let mut pos = 0usize;
    // Where the old layer's member of the previous new member's path ended
    // (0 at the start): the old gap before this member starts there.
    let mut old_pos = Some(0usize);
    for m in &new_members {
        let (start, end) = (m.data as usize, (m.data + m.size) as usize);
        let same_path = by_path.get(&m.path[..]).copied();
        let old_gap = old_pos.zip(same_path).and_then(|(from, (data, _))| {
            let to = data as usize;
            (from <= to).then_some(from..to)
        });
        parts.push(match old_gap {
            Some(gap) if old[gap.clone()] == new[pos..start] => Part::Copy {
                offset: gap.start as u64,
                len: gap.len() as u64,
            },
            // A header whose mtime or size moved.
            gap => Part::Changed {
                new: pos..start,
                old: gap,
            },
        });
        parts.push(member_part(old, new, start..end, &by_content, same_path));
        pos = end;
        old_pos = same_path.map(|(data, size)| (data + size) as usize);
    }
    let tail = old_pos.filter(|&from| old[from..] == new[pos..]);
    parts.push(match tail {
        Some(from) => Part::Copy {
            offset: from as u64,
            len: (old.len() - from) as u64,
        },
        None => Part::Changed {
            new: pos..new.len(),
            old: None,
        },
    });
    Some(parts)
}

/// Each part of a walk with the range of the new layer it writes (none if
/// there was no walk).
fn placed(parts: Option<Vec<Part>>) -> Vec<(Range<usize>, Part)> {
    let mut pos = 0;
    let mut out = Vec::new();
    for part in parts.unwrap_or_default() {
        let len = match &part {
            Part::Copy { len, .. } => *len as usize,
            Part::Changed { new, .. } => new.len(),
            Part::Gzip(ops) => ops.iter().map(Op::new_len).sum::<u64>() as usize,
        };
        out.push((pos..pos + len, part));
        pos += len;
    }
    out
}

/// Stretches of a tar walk at least this large that are copies of the old
/// layer stay copies in `zstd-ref`; shorter ones go into the segments around
/// them, where zstd finds them in the prefix for a few bytes (and a copy
/// between two segments splits one in two).
const MIN_ZREF_COPY: u64 = 4 * 1024;
/// Bytes of a block of the old layer's index, and the stride between blocks.
const BLOCK: usize = 32;
/// The unit of old data a `zstd-ref` reference is made of: REF_LEN / PIECE
/// pieces, at most MAX_REF_RANGES ranges.
const PIECE: usize = 64 * 1024;
/// Bytes of the old layer a `zstd-ref` segment made here is compressed
/// against: 3/4 of what the format allows ([`MAX_REF`]). The device holds
/// the prefix twice while ruzstd copies it, so the prefix is most of its
/// memory. Measured with `bench/run --only deltas` (husk-apply's peak RSS,
/// a glibc host build; delta bytes), reference/history/segment in KiB:
///
/// | | libc crate 0.2.186 → 0.2.191 | tzdata 2025b → 2026b |
/// |---|---|---|
/// | 2048/512/512 (before) | 77,418 B, 8,940 KiB | 103,390 B, 9,152 KiB |
/// | 1536/256/128 (these) | 78,820 B, 6,640 KiB | 103,491 B, 6,924 KiB |
/// | 1024/256/128 | 82,322 B, 5,656 KiB | 103,599 B, 5,912 KiB |
///
/// A prefix longer than zstd's window (2 MiB) less the segment is wasted:
/// its first bytes are out of reach of the segment's matches.
pub const REF_LEN: usize = 1536 << 10;
/// Bytes of the new layer written before a segment that its prefix ends with.
pub const HISTORY_LEN: usize = 256 << 10;
/// Bytes of the new layer in one segment: smaller segments need less
/// reference each (the old pieces they come from are fewer).
pub const SEGMENT_LEN: usize = 128 << 10;
const _: () = assert!(
    REF_LEN / PIECE <= MAX_REF_RANGES
        && REF_LEN <= MAX_REF
        && HISTORY_LEN <= MAX_HISTORY
        && SEGMENT_LEN <= MAX_SEGMENT
);

/// A `zstd-ref` delta of `old` into `new`, compressed: the stretches of the
/// tar walk ([`tar_parts`]) that are copies of the old layer (at least
/// [`MIN_ZREF_COPY`] bytes) copied, the rest in segments of at most
/// [`SEGMENT_LEN`] bytes, each compressed with zstd against the window of at
/// most [`REF_LEN`] bytes of the old layer where most of its blocks are
/// found. A layer that is not a tar is all segments.
///
/// Publisher memory: both layers, plus an index of one entry per 32 bytes
/// of the old layer (about 24 bytes each: 0.75 x the old layer).
pub fn zstd_ref(old: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    zstd_ref_of(old, new, tar_parts(old, new))
}

/// [`zstd_ref`] from the walk [`tar_parts`] made.
fn zstd_ref_of(old: &[u8], new: &[u8], parts: Option<Vec<Part>>) -> io::Result<Vec<u8>> {
    // What is not cut into segments: long copies and gzip members.
    let kept = placed(parts)
        .into_iter()
        .filter_map(|(range, part)| match part {
            Part::Copy { offset, len } if len >= MIN_ZREF_COPY => {
                Some((range, vec![Op::Copy { offset, len }]))
            }
            Part::Gzip(ops) => Some((range, ops)),
            _ => None,
        });
    let index = OldIndex::new(old);
    let mut ops = Vec::new();
    let mut pos = 0;
    for (range, these) in kept {
        segments(old, new, pos..range.start, &index, &mut ops)?;
        ops.extend(these);
        pos = range.end;
    }
    segments(old, new, pos..new.len(), &index, &mut ops)?;
    compress_window(&encode(new, &coalesce(ops)), LEVEL, ZREF_OUTER_WINDOW_LOG)
}

fn segments(
    old: &[u8],
    new: &[u8],
    range: Range<usize>,
    index: &OldIndex,
    ops: &mut Vec<Op>,
) -> io::Result<()> {
    let mut start = range.start;
    while start < range.end {
        let end = (start + SEGMENT_LEN).min(range.end);
        let segment = &new[start..end];
        let ranges = index.reference(segment, old.len());
        let history = start.min(HISTORY_LEN);
        let reference: Vec<u8> = ranges
            .iter()
            .flat_map(|r| &old[r.clone()])
            .chain(&new[start - history..start])
            .copied()
            .collect();
        let mut cctx = CCtx::create();
        for p in [
            CParameter::CompressionLevel(LEVEL),
            CParameter::WindowLog(WINDOW_LOG),
            CParameter::ContentSizeFlag(true),
        ] {
            cctx.set_parameter(p).map_err(zstd_error)?;
        }
        if !reference.is_empty() {
            cctx.ref_prefix(&reference).map_err(zstd_error)?;
        }
        let mut frame = Vec::with_capacity(zstd::compress_bound(segment.len()));
        cctx.compress2(&mut frame, segment).map_err(zstd_error)?;
        ops.push(Op::Zref {
            history: history as u64,
            reference: ranges,
            new_len: segment.len() as u64,
            frame,
        });
        start = end;
    }
    Ok(())
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

const AMBIGUOUS: u32 = u32::MAX;

/// Where blocks of the old layer are: the hash of every 32-byte block at a
/// multiple of 32 bytes.
struct OldIndex(HashMap<u64, u32>);

impl OldIndex {
    fn new(old: &[u8]) -> Self {
        let mut map = HashMap::with_capacity(old.len() / BLOCK);
        for (i, block) in old.chunks_exact(BLOCK).enumerate() {
            // A block found more than once says nothing of where a match is.
            map.entry(Rolling::of(block).0)
                .and_modify(|at| *at = AMBIGUOUS)
                .or_insert(i as u32);
        }
        Self(map)
    }

    /// The pieces of the old layer (at most [`REF_LEN`] bytes in all, in
    /// [`PIECE`]-byte units, in order) holding the most blocks found in
    /// `segment` at any offset; none if no block is found.
    fn reference(&self, segment: &[u8], old_len: usize) -> Vec<Range<usize>> {
        let mut hits: HashMap<usize, usize> = HashMap::new();
        if segment.len() >= BLOCK {
            let mut hash = Rolling::of(&segment[..BLOCK]);
            for i in 0..=segment.len() - BLOCK {
                if i > 0 {
                    hash.roll(segment[i - 1], segment[i + BLOCK - 1]);
                }
                if let Some(&block) = self.0.get(&hash.0).filter(|&&b| b != AMBIGUOUS) {
                    *hits.entry(block as usize * BLOCK / PIECE).or_default() += 1;
                }
            }
        }
        let mut pieces: Vec<(usize, usize)> = hits.into_iter().collect();
        // Most hits first; ties by position, so the output is deterministic.
        pieces.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut chosen: Vec<usize> = pieces
            .into_iter()
            .take(REF_LEN / PIECE)
            .map(|(piece, _)| piece)
            .collect();
        chosen.sort_unstable();
        let mut ranges: Vec<Range<usize>> = Vec::new();
        for piece in chosen {
            let range = piece * PIECE..((piece + 1) * PIECE).min(old_len);
            match ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => ranges.push(range),
            }
        }
        ranges
    }
}

/// A polynomial rolling hash of [`BLOCK`] bytes.
struct Rolling(u64);

const BASE: u64 = 0x100_0000_01b3;
/// BASE^(BLOCK-1): the weight of a block's first byte.
const TOP: u64 = {
    let mut p = 1u64;
    let mut i = 1;
    while i < BLOCK {
        p = p.wrapping_mul(BASE);
        i += 1;
    }
    p
};

impl Rolling {
    fn of(block: &[u8]) -> Self {
        Self(block.iter().fold(0u64, |h, &b| {
            h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1)
        }))
    }

    /// Drops `out` from the front, takes `inn` at the back.
    fn roll(&mut self, out: u8, inn: u8) {
        self.0 = self
            .0
            .wrapping_sub((u64::from(out) + 1).wrapping_mul(TOP))
            .wrapping_mul(BASE)
            .wrapping_add(u64::from(inn) + 1);
    }
}

/// Largest old and new layer together that `zstd-patch` is computed for.
/// zstd's match finder at [`PATCH_LEVEL`] grows with its window (both
/// layers), [`PATCH_CHAIN_LOG`] capping the largest of its tables: a 31 MiB
/// pair of text-like layers took 14 s and 361 MB at peak, the layers
/// included (measured with VmHWM).
pub const MAX_PATCH_INPUT: usize = 64 << 20;
/// Most `PATCH` frames of one `zstd-patch` delta: the gzip members kept as
/// `GZIP` ops between them are the largest ones.
pub const MAX_PATCH_FRAMES: usize = 8;
/// zstd's strongest level (`--ultra -22`).
const PATCH_LEVEL: i32 = 22;
/// Its binary tree of matches: 2^24 entries of 8 bytes, 128 MiB.
const PATCH_CHAIN_LOG: u32 = 24;
/// The largest block of a `PATCH` frame.
const PATCH_BLOCK: u32 = (128 << 10) - 1;

/// A `zstd-patch` delta of `old` into `new`, compressed: the changed gzip
/// members of the tar walk ([`tar_parts`]) as `GZIP` ops, and the rest of
/// the new layer as `PATCH` frames compressed against the old layer and all
/// the new one before them. `None` when both layers together are larger
/// than [`MAX_PATCH_INPUT`].
pub fn zstd_patch(old: &[u8], new: &[u8]) -> io::Result<Option<Vec<u8>>> {
    zstd_patch_of(old, new, tar_parts(old, new))
}

/// [`zstd_patch`] from the walk [`tar_parts`] made.
fn zstd_patch_of(old: &[u8], new: &[u8], parts: Option<Vec<Part>>) -> io::Result<Option<Vec<u8>>> {
    if old.len() + new.len() > MAX_PATCH_INPUT {
        return Ok(None);
    }
    let mut gzip: Vec<(Range<usize>, Vec<Op>)> = placed(parts)
        .into_iter()
        .filter_map(|(range, part)| match part {
            Part::Gzip(ops) => Some((range, ops)),
            _ => None,
        })
        .collect();
    // The largest members, in order, with frames between them.
    gzip.sort_by_key(|(range, _)| std::cmp::Reverse(range.len()));
    gzip.truncate(MAX_PATCH_FRAMES - 1);
    gzip.sort_by_key(|(range, _)| range.start);
    let mut prefix = Vec::with_capacity(old.len() + new.len());
    prefix.extend_from_slice(old);
    let mut ops = Vec::new();
    let mut pos = 0;
    let ends = gzip.into_iter().map(Some).chain([None]);
    for kept in ends {
        let end = kept.as_ref().map_or(new.len(), |(range, _)| range.start);
        if end > pos {
            prefix.extend_from_slice(&new[prefix.len() - old.len()..pos]);
            ops.push(Op::Patch {
                new_len: (end - pos) as u64,
                frame: patch_frame(&prefix, &new[pos..end])?,
            });
        }
        if let Some((range, these)) = kept {
            ops.extend(these);
            pos = range.end;
        }
    }
    let raw = encode(new, &ops);
    if apply_in_memory(old, &raw).as_deref() != Some(new) {
        return Err(io::Error::other(
            "zstd-patch delta does not rebuild the new layer",
        ));
    }
    compress_window(&raw, LEVEL, ZREF_OUTER_WINDOW_LOG).map(Some)
}

/// `data` compressed as one zstd frame against `prefix` ("patch from"),
/// with a window over both.
pub(super) fn patch_frame(prefix: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let span = (prefix.len() + data.len()).max(1 << 10);
    let window_log = span.next_power_of_two().trailing_zeros();
    let mut cctx = CCtx::create();
    for p in [
        CParameter::CompressionLevel(PATCH_LEVEL),
        CParameter::WindowLog(window_log),
        CParameter::ChainLog(PATCH_CHAIN_LOG.min(window_log + 1)),
        CParameter::EnableLongDistanceMatching(true),
        CParameter::ContentSizeFlag(true),
        CParameter::ChecksumFlag(false),
        // Blocks of one byte less than zstd's 128 KiB: zstd 1.5.7 then does
        // not cut them by its pre-splitter, which cost 1.4 % on the libc
        // pair (71,739 bytes against 70,782; 1.5.4 had no pre-splitter) and
        // saved 0.01 % on tzdata.
        CParameter::MaxBlockSize(PATCH_BLOCK),
        // Long-distance matches of 128 bytes or more (64 by default): the
        // rest are the match finder's. libc 70,834 -> 70,762 bytes, tzdata
        // 21,864 -> 21,847, no slower.
        CParameter::LdmMinMatch(128),
    ] {
        cctx.set_parameter(p).map_err(zstd_error)?;
    }
    cctx.set_pledged_src_size(Some(data.len() as u64))
        .map_err(zstd_error)?;
    if !prefix.is_empty() {
        cctx.ref_prefix(prefix).map_err(zstd_error)?;
    }
    // Streamed: zstd 1.5.7 compresses this 1.4 % smaller than in one call
    // (libc pair: 71,727 bytes against 72,725).
    let mut frame = vec![0u8; zstd::compress_bound(data.len()) + 64];
    let mut output = OutBuffer::around(&mut frame[..]);
    let mut input = InBuffer::around(data);
    while input.pos() < data.len() {
        cctx.compress_stream2(&mut output, &mut input, EndDirective::ZSTD_e_continue)
            .map_err(zstd_error)?;
    }
    let mut empty = InBuffer::around(&[][..]);
    while cctx
        .compress_stream2(&mut output, &mut empty, EndDirective::ZSTD_e_end)
        .map_err(zstd_error)?
        != 0
    {}
    let len = output.pos();
    frame.truncate(len);
    Ok(frame)
}

/// The smallest delta of `old` into `new` by one of `algorithms` that is at
/// most [`MARGIN_PERCENT`] % of `full_len` (the compressed full layer's
/// size), if any.
pub fn best(
    old: &[u8],
    new: &[u8],
    full_len: u64,
    algorithms: &[Algorithm],
) -> io::Result<Option<(Algorithm, Vec<u8>)>> {
    let mut candidates = Vec::new();
    // One walk for all: it inflates, deflates and diffs every changed gzip member.
    let walks = [
        Algorithm::TarFiles,
        Algorithm::ZstdPatch,
        Algorithm::ZstdRef,
    ];
    let parts = if walks.iter().any(|a| algorithms.contains(a)) {
        tar_parts(old, new)
    } else {
        None
    };
    for &algorithm in algorithms {
        let delta = match algorithm {
            Algorithm::TarFiles => tar_files_of(old, new, parts.clone())?,
            Algorithm::Bsdiff => whole_layer(old, new)?,
            Algorithm::ZstdPatch => zstd_patch_of(old, new, parts.clone())?,
            Algorithm::ZstdRef => Some(zstd_ref_of(old, new, parts.clone())?),
        };
        if let Some(d) = delta {
            candidates.push((algorithm, d));
        }
    }
    Ok(candidates
        .into_iter()
        .min_by_key(|(_, d)| d.len())
        .filter(|(_, d)| (d.len() as u64) * 100 <= full_len * MARGIN_PERCENT))
}

/// A changed gzip member `new[to]` as ops against the old member `old[from]`:
/// its header and trailer as literals, and its deflate stream as a `GZIP`
/// op, when both members are single gzip members, their contents at most
/// [`MAX_INFLATED`], and the new stream is exactly what GNU gzip's deflate
/// writes at some level (which the header's XFL byte hints: 2 for `-9`, 4
/// for `-1`).
fn gzip_ops(old: &[u8], from: Range<usize>, new: &[u8], to: Range<usize>) -> Option<Vec<Op>> {
    let old_stream = deflate_stream(&old[from.clone()])?;
    let new_stream = deflate_stream(&new[to.clone()])?;
    let (old_at, new_at) = (from.start + old_stream.start, to.start + new_stream.start);
    let old_raw = inflated(&old[old_at..from.start + old_stream.end])?;
    let stream = &new[new_at..to.start + new_stream.end];
    let raw = inflated(stream)?;
    let levels: &[u32] = match new[to.start + 8] {
        2 => &[9],
        4 => &[1],
        _ => &[6, 2, 3, 4, 5, 7, 8],
    };
    let level = levels.iter().copied().find(|&level| {
        let mut again = Vec::with_capacity(stream.len());
        deflate::deflate(&raw, level, &mut again).is_ok() && again == stream
    })?;
    let mut patch = Vec::new();
    bsdiff::diff(&old_raw, &raw, &mut patch).ok()?;
    Some(vec![
        Op::Literal(to.start..new_at),
        Op::Gzip {
            offset: old_at as u64,
            old_len: old_stream.len() as u64,
            old_raw_len: old_raw.len() as u64,
            level,
            raw_len: raw.len() as u64,
            new_len: stream.len() as u64,
            patch,
        },
        Op::Literal(new_at + stream.len()..to.end),
    ])
}

/// The deflate stream of a gzip member (for tests).
#[cfg(test)]
pub(super) fn deflate_stream_of(member: &[u8]) -> Option<&[u8]> {
    deflate_stream(member).map(|r| &member[r])
}

/// Where the deflate stream of a gzip member lies in it: after the header
/// (whose optional fields are skipped), before the 8-byte trailer.
fn deflate_stream(member: &[u8]) -> Option<Range<usize>> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    let header = member.get(..10)?;
    if header[..3] != [0x1f, 0x8b, 8] || header[3] & 0xe0 != 0 {
        return None;
    }
    let flags = header[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = member.get(at..at + 2)?;
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += member.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let end = member.len().checked_sub(8)?;
    (at < end).then_some(at..end)
}

/// The content of a raw deflate stream that is exactly one stream, if it is
/// at most [`MAX_INFLATED`] bytes: inflated by the device's own code.
fn inflated(stream: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; super::CHUNK];
    super::inflate(stream, 0, stream.len() as u64, MAX_INFLATED, &mut buf).ok()
}

fn member_part(
    old: &[u8],
    new: &[u8],
    range: Range<usize>,
    by_content: &HashMap<Digest, (u64, u64)>,
    same_path: Option<(u64, u64)>,
) -> Part {
    let data = &new[range.clone()];
    let old_data = same_path.map(|(offset, len)| offset as usize..(offset + len) as usize);
    // The same path's old data first: unchanged runs of members then copy
    // as one range of the old layer.
    if let Some(from) = old_data.clone().filter(|from| old[from.clone()] == *data) {
        return Part::Copy {
            offset: from.start as u64,
            len: from.len() as u64,
        };
    }
    if let Some(&(offset, len)) = by_content
        .get(&Digest::of(data))
        .filter(|_| !data.is_empty())
    {
        return Part::Copy { offset, len };
    }
    if let Some(ops) = old_data
        .clone()
        .and_then(|from| gzip_ops(old, from, new, range.clone()))
    {
        return Part::Gzip(ops);
    }
    Part::Changed {
        new: range,
        old: old_data,
    }
}

/// A bsdiff of `old[from]` into `new[to]`, or the literal `to` where the
/// patch would not compress smaller than the data (or either is out of
/// bsdiff's size range).
fn diff_or_literal(old: &[u8], from: Range<usize>, new: &[u8], to: Range<usize>) -> io::Result<Op> {
    let (old_data, data) = (&old[from.clone()], &new[to.clone()]);
    if data.len() < MIN_FILE_BSDIFF
        || data.len() > MAX_FILE_BSDIFF
        || old_data.is_empty()
        || old_data.len() > MAX_FILE_BSDIFF
    {
        return Ok(Op::Literal(to));
    }
    let mut patch = Vec::new();
    bsdiff::diff(old_data, data, &mut patch)?;
    // Keep bsdiff only if it compresses smaller than the data itself.
    if compress_at(&patch, PROBE_LEVEL)?.len() >= compress_at(data, PROBE_LEVEL)?.len() {
        return Ok(Op::Literal(to));
    }
    Ok(Op::Bsdiff {
        offset: from.start as u64,
        old_len: from.len() as u64,
        new_len: data.len() as u64,
        patch,
    })
}

/// Merges literals that follow each other in the new tar, and copies of
/// ranges that follow each other in the old one; drops empty ones.
fn coalesce(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        match (out.last_mut(), op) {
            (_, Op::Literal(range)) if range.is_empty() => {}
            (_, Op::Copy { len: 0, .. }) => {}
            (Some(Op::Literal(prev)), Op::Literal(range)) if prev.end == range.start => {
                prev.end = range.end;
            }
            (
                Some(Op::Copy { offset, len }),
                Op::Copy {
                    offset: next,
                    len: more,
                },
            ) if *offset + *len == next => {
                *len += more;
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
            Op::Zref {
                reference,
                history,
                new_len,
                frame,
            } => {
                out.push(OP_ZREF);
                out.extend_from_slice(&(reference.len() as u64).to_le_bytes());
                for r in reference {
                    out.extend_from_slice(&(r.start as u64).to_le_bytes());
                    out.extend_from_slice(&(r.len() as u64).to_le_bytes());
                }
                for n in [*history, *new_len, frame.len() as u64] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(frame);
            }
            Op::Gzip {
                offset,
                old_len,
                old_raw_len,
                level,
                raw_len,
                new_len,
                patch,
            } => {
                out.push(OP_GZIP);
                let level = u64::from(*level);
                for n in [*offset, *old_len, *old_raw_len, level, *raw_len, *new_len] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(&(patch.len() as u64).to_le_bytes());
                out.extend_from_slice(patch);
            }
            Op::Patch { new_len, frame } => {
                out.push(OP_PATCH);
                for n in [*new_len, frame.len() as u64] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(frame);
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
            OP_GZIP => {
                let (offset, old_len, old_raw_len) = (word()?, word()?, word()?);
                let (level, raw_len, _new_len, patch_len) = (word()?, word()?, word()?, word()?);
                let mut buf = vec![0u8; super::CHUNK];
                let (offset, old_len) = (offset as u64, old_len as u64);
                let old_raw = super::inflate(old, offset, old_len, old_raw_len, &mut buf).ok()?;
                let mut old_buf = vec![0u8; super::CHUNK];
                let mut raw = Vec::new();
                let p = Patch {
                    base: 0,
                    old_len: old_raw.len() as u64,
                    new_len: raw_len as u64,
                    patch_len: patch_len as u64,
                };
                let mut patch = take(patch_len)?;
                let bufs = (&mut buf[..], &mut old_buf[..]);
                super::bspatch(&mut patch, &old_raw[..], p, bufs, &mut |b| {
                    raw.extend_from_slice(b);
                    Ok(())
                })
                .ok()?;
                deflate::deflate(&raw, level as u32, &mut out).ok()?;
            }
            OP_PATCH => {
                let (new_len, frame_len) = (word()?, word()?);
                let mut frame = take(frame_len)?;
                // The device's decoder, with old and new layer in memory.
                let prefix = [old, &out[..]].concat();
                let mut written = Vec::with_capacity(new_len);
                let mut history = zframe::InMemory {
                    prefix: &prefix,
                    out: &mut written,
                };
                zframe::decode(
                    &mut frame,
                    prefix.len() as u64,
                    new_len as u64,
                    &mut history,
                )
                .ok()?;
                out.extend_from_slice(&written);
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
