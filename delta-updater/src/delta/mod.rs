//! Deltas between layers, applied by the device in bounded memory.
//!
//! A delta blob is one zstd frame (window at most 2^[`WINDOW_LOG`] bytes)
//! holding a list of operations that write the new layer front to back:
//!
//! ```text
//! magic "HUSKDLT1", new_size: u64
//! 0x01 COPY    old_offset: u64, len: u64                 bytes of the old layer
//! 0x02 LITERAL len: u64, then len bytes                  bytes of the new layer
//! 0x03 BSDIFF  old_offset: u64, old_len: u64, new_len: u64, patch_len: u64, then
//!              patch_len bytes of a bsdiff patch (the `bsdiff` crate's format)
//!              against old[old_offset .. old_offset + old_len]
//! 0x04 ZREF    ranges: u64, ranges x (old_offset: u64, len: u64), history: u64,
//!              new_len: u64, frame_len: u64, then frame_len bytes of one zstd
//!              frame of new_len bytes compressed with a prefix: those old
//!              ranges one after the other, then the last `history` bytes of
//!              the new layer written so far (zstd's "patch from", on pieces
//!              of the old layer)
//! 0x05 GZIP    old_offset: u64, old_len: u64, old_raw_len: u64, level: u64,
//!              raw_len: u64, new_len: u64, patch_len: u64, then patch_len bytes
//!              of a bsdiff patch from the old_raw_len bytes that inflate
//!              from old[old_offset .. old_offset + old_len] (one raw deflate
//!              stream, exactly) into raw_len bytes, which GNU gzip's deflate
//!              at `level` turns into the new_len bytes written; both raw
//!              lengths at most [`MAX_INFLATED`]
//! 0x06 PATCH   new_len: u64, frame_len: u64, then frame_len bytes of one
//!              zstd frame of new_len bytes compressed with a prefix of the
//!              whole old layer followed by all of the new layer written so
//!              far (zstd's "patch from", its window as large as both)
//! 0x00 END     and then nothing
//! ```
//!
//! (integers little-endian). Every algorithm writes this format: a whole-layer
//! bsdiff is one `BSDIFF` op over the whole old layer; a per-file delta
//! (`tar-files`) writes each member's data as a `COPY` of an identical old
//! member, a `BSDIFF` against the old member of the same path, or a
//! literal, and the bytes between members (headers, padding, entries
//! without data) as a `COPY` where the old layer has the same bytes between
//! the same two paths, else a `BSDIFF` against those old bytes or a literal
//! (adjacent copies merge, so an unchanged run of members is one `COPY`).
//! A changed gzip member (`.gz` files: Debian's changelogs and manual pages,
//! compressed by `gzip -9n`) is diffed uncompressed: its header and trailer
//! are literals and its deflate stream a `GZIP` op, when [`deflate`] (GNU
//! gzip's deflate, in Rust) gives back its exact bytes; a byte delta of two
//! compressed files finds almost nothing in common. `zstd-ref` copies the
//! long unchanged stretches of the same walk, takes gzip members the same
//! way, and cuts the rest into segments of at most [`MAX_SEGMENT`] bytes,
//! each a zstd frame whose prefix is made of the pieces of the old layer its
//! content comes from, at most [`MAX_REF`] bytes. `zstd-patch` is the
//! same walk's gzip members as `GZIP` ops and everything between them as
//! `PATCH` frames, whose matches reach the whole old layer and everything
//! written before: [`zframe`] decodes them with only the last bytes of
//! output in memory, reading older ones back from the old layer and the
//! output file. So the applier is one small loop.
//!
//! [`apply`] reads the old layer by positioned reads and writes the new one
//! front to back through a sha256 into a temporary file beside the target:
//! memory is ruzstd's buffer for the zstd window (twice the window) plus
//! two [`CHUNK`]s whatever the layer size, and for `ZREF` its prefix (held
//! twice while ruzstd copies it, then once) and the segment's decoder; the
//! segment's frame is decoded as it is read from the delta
//! ([`Algorithm::memory`]). The format allows prefixes of [`MAX_REF`] +
//! [`MAX_HISTORY`] bytes; `make` writes at most 1.75 MiB of them
//! (`make::REF_LEN`), so the deltas it makes apply in less than declared.
//!
//! The device decodes with ruzstd (pure Rust, which husk links for image
//! layers anyway); the operator's side compresses with the C zstd (`make`).
//! A frame whose header asks for a window over 2^[`WINDOW_LOG`] is refused
//! before any decoding ([`DeltaError::Window`]). The frames' checksums are
//! not checked: the delta's sha256 is, before, and the result's, after. The result is renamed into place only if its size and
//! digest are the target's; on any error the temporary file is removed.

pub mod deflate;
#[cfg(feature = "publish")]
pub mod make;
#[cfg(test)]
mod test_rng;
pub mod zframe;

use core::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ruzstd::decoding::{BlockDecodingStrategy, Dictionary, FrameDecoder, StreamingDecoder};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The first bytes of a delta's decoded stream.
pub const MAGIC: &[u8; 8] = b"HUSKDLT1";
/// Largest zstd window a delta (and a compressed layer) may need: 2 MiB.
/// ruzstd's ring buffer for it is 4 MiB (a power of two above window and
/// block), which keeps applying any delta under 8 MiB.
pub const WINDOW_LOG: u32 = 21;
/// Bytes read or written at once while applying.
pub const CHUNK: usize = 64 * 1024;
/// What ruzstd's decoder holds besides its window buffer (literals, block
/// and sequence buffers, entropy tables), rounded up; measured with
/// `husk-apply --rss`.
pub const ZSTD_DECODER_OVERHEAD: u64 = 256 * 1024;
/// Largest zstd block, which ruzstd decodes whole before it can drain.
const ZSTD_BLOCK: u64 = 128 * 1024;
/// The buffer ruzstd holds for a frame of window 2^`log`: the window and
/// one block, in a ring buffer whose size is a power of two, so twice the
/// window (4 MiB more than the C decoder took for [`WINDOW_LOG`]).
pub const fn zstd_window_buffer(log: u32) -> u64 {
    (1u64 << log).saturating_add(ZSTD_BLOCK).next_power_of_two()
}
/// Heap memory applying a `bsdiff` or `tar-files` delta needs.
pub const APPLY_MEMORY: u64 =
    zstd_window_buffer(WINDOW_LOG) + ZSTD_DECODER_OVERHEAD + 2 * CHUNK as u64;
/// Most bytes of the old layer a `ZREF` segment is compressed against.
pub const MAX_REF: usize = 2048 << 10;
/// Most bytes of the new layer written just before a `ZREF` segment that
/// its prefix ends with (they are read back from the output).
pub const MAX_HISTORY: usize = 512 << 10;
/// Most old ranges those bytes come from.
pub const MAX_REF_RANGES: usize = 256;
/// Largest output of one `ZREF` segment.
pub const MAX_SEGMENT: usize = 512 << 10;
/// Largest zstd frame of one `ZREF` segment (zstd's bound for [`MAX_SEGMENT`], rounded up).
pub const MAX_FRAME: usize = MAX_SEGMENT + (MAX_SEGMENT >> 7) + 4096;
/// zstd window of the outer frame of a `zstd-ref` delta, whose content is
/// mostly already-compressed frames: 128 KiB.
pub const ZREF_OUTER_WINDOW_LOG: u32 = 17;
/// What decoding one `ZREF` frame holds besides the prefix: ruzstd keeps a
/// window's worth of output until the frame ends, and a segment of at most
/// [`MAX_SEGMENT`] is drained then, so its ring buffer is written at most
/// [`MAX_SEGMENT`] and a block deep (it grows by doubling; pages never
/// written are never resident), and its scratch. A frame that decodes to
/// more than its op says is refused when drained, at most a window and a
/// block in (4 MiB of ring buffer, as for the outer frame of `bsdiff`).
pub const ZREF_FRAME_DECODER: u64 =
    (MAX_SEGMENT as u64 + ZSTD_BLOCK).next_power_of_two() + ZSTD_DECODER_OVERHEAD;

/// Largest gzip member content (inflated, old or new) a `GZIP` op holds.
pub const MAX_INFLATED: usize = 512 << 10;
/// What a `GZIP` op holds: both contents, the inflater (its 32 KiB window
/// and tables) and the deflater.
pub const GZIP_OP_MEMORY: u64 = 2 * MAX_INFLATED as u64 + 64 * 1024 + deflate::DEFLATE_MEMORY;

/// The id the prefix of a `ZREF` frame is given as a dictionary of the
/// decoder (its frames name none: any id does).
const PREFIX_ID: u32 = 1;

const OP_END: u8 = 0;
const OP_COPY: u8 = 1;
const OP_LITERAL: u8 = 2;
const OP_BSDIFF: u8 = 3;
const OP_ZREF: u8 = 4;
const OP_GZIP: u8 = 5;
const OP_PATCH: u8 = 6;

/// How a delta was computed. Both write the same format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// One bsdiff of the whole old layer.
    Bsdiff,
    /// Per member of the new tar: same as an old member, bsdiff against one, or literal.
    TarFiles,
    /// Large identical members copied, the rest zstd-compressed in segments
    /// against windows of the old layer.
    ZstdRef,
    /// Gzip members diffed uncompressed, the rest zstd-compressed against
    /// the whole old layer and all the new layer before it.
    ZstdPatch,
}

impl Algorithm {
    /// Every algorithm, in the order `make::best` tries them.
    pub const ALL: [Self; 4] = [Self::TarFiles, Self::Bsdiff, Self::ZstdPatch, Self::ZstdRef];

    /// The name in release metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bsdiff => "bsdiff",
            Self::TarFiles => "tar-files",
            Self::ZstdRef => "zstd-ref",
            Self::ZstdPatch => "zstd-patch",
        }
    }

    /// Heap memory applying a delta of this kind needs at most, recorded
    /// in the release metadata.
    pub fn memory(self) -> u64 {
        match self {
            Self::Bsdiff => APPLY_MEMORY,
            Self::TarFiles => APPLY_MEMORY + GZIP_OP_MEMORY,
            Self::ZstdRef => {
                zstd_window_buffer(ZREF_OUTER_WINDOW_LOG)
                    + ZSTD_DECODER_OVERHEAD
                    + 2 * CHUNK as u64
                    // The prefix, and ruzstd's copy of it (the frame is
                    // streamed from the delta, its output drained in CHUNKs),
                    // or a GZIP op's buffers: one op at a time.
                    + (2 * (MAX_REF + MAX_HISTORY) as u64 + ZREF_FRAME_DECODER)
                        .max(GZIP_OP_MEMORY)
            }
            Self::ZstdPatch => {
                zstd_window_buffer(ZREF_OUTER_WINDOW_LOG)
                    + ZSTD_DECODER_OVERHEAD
                    + 2 * CHUNK as u64
                    + zframe::MEMORY.max(GZIP_OP_MEMORY)
            }
        }
    }

    /// The algorithm named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "bsdiff" => Some(Self::Bsdiff),
            "tar-files" => Some(Self::TarFiles),
            "zstd-ref" => Some(Self::ZstdRef),
            "zstd-patch" => Some(Self::ZstdPatch),
            _ => None,
        }
    }
}

/// The layer a delta must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The sha256 of the new layer (its diff_id).
    pub diff_id: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Why a delta was not applied. No output file is left behind.
#[derive(Debug)]
pub enum DeltaError {
    /// Reading the old layer failed.
    ReadOld(PathBuf, io::Error),
    /// Reading or decompressing the delta failed (a truncated or corrupted blob).
    ReadDelta(io::Error),
    /// The delta's content is malformed.
    Malformed(&'static str),
    /// A zstd frame of the delta needs a larger window than a device gives.
    Window {
        /// The bytes its header asks for.
        found: u64,
        /// The most allowed (2^[`WINDOW_LOG`]).
        max: u64,
    },
    /// An operation reads outside the old layer.
    OutsideOld {
        /// Offset of the first byte past the old layer it reads.
        end: u64,
        /// The old layer's size.
        old_size: u64,
    },
    /// The delta writes more or fewer bytes than the target's size.
    Size {
        /// The target size.
        expected: u64,
        /// What the delta says or wrote.
        found: u64,
    },
    /// The result is not the target layer.
    Digest {
        /// The target's diff_id.
        expected: Digest,
        /// The result's digest.
        found: Digest,
    },
    /// Writing the new layer failed.
    Write(PathBuf, io::Error),
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadOld(path, e) => write!(f, "delta: reading old layer {}: {e}", path.display()),
            Self::ReadDelta(e) => write!(f, "delta: reading delta: {e}"),
            Self::Malformed(what) => write!(f, "delta: malformed: {what}"),
            Self::Window { found, max } => write!(
                f,
                "delta: a zstd frame needs a {found}-byte window, more than {max}"
            ),
            Self::OutsideOld { end, old_size } => write!(
                f,
                "delta: reads old layer up to byte {end}, past its size {old_size}"
            ),
            Self::Size { expected, found } => {
                write!(
                    f,
                    "delta: produces {found} bytes, the target has {expected}"
                )
            }
            Self::Digest { expected, found } => {
                write!(f, "delta: result is {found}, not the target {expected}")
            }
            Self::Write(path, e) => write!(f, "delta: writing {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for DeltaError {}

/// Applies the zstd-compressed `delta` to the layer at `old`, writing the
/// `target` layer to `out` only if it is exactly that layer.
pub fn apply(old: &Path, delta: impl Read, target: Target, out: &Path) -> Result<(), DeltaError> {
    let old_file = File::open(old).map_err(|e| DeltaError::ReadOld(old.to_owned(), e))?;
    let old_size = old_file
        .metadata()
        .map_err(|e| DeltaError::ReadOld(old.to_owned(), e))?
        .len();
    let decoder = frame(delta, WINDOW_LOG)?;
    let mut output = Output::create(out, target)?;
    let mut ops = Ops {
        delta: decoder,
        old: OldLayer {
            file: old_file,
            path: old,
            size: old_size,
        },
        buf: vec![0; CHUNK],
        old_buf: vec![0; CHUNK],
    };
    ops.run(&mut output)?;
    // One frame and nothing after it: the C decoder went on to a next
    // frame, ruzstd's stops at the end of the first.
    let rest = ops.delta.get_mut().read(&mut [0u8; 1]);
    if rest.map_err(DeltaError::ReadDelta)? != 0 {
        return Err(DeltaError::Malformed("bytes after the zstd frame"));
    }
    output.commit()
}

/// Decompresses a full layer blob (one zstd frame, as `make::compress`
/// writes it, its window at most 2^[`WINDOW_LOG`]), writing the `target`
/// layer to `out` only if it is exactly that layer: the device's side of a
/// layer that came whole.
pub fn decompress(blob: impl Read, target: Target, out: &Path) -> Result<(), DeltaError> {
    let mut decoder = frame(blob, WINDOW_LOG)?;
    let mut output = Output::create(out, target)?;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = decoder.read(&mut buf).map_err(DeltaError::ReadDelta)?;
        if n == 0 {
            break;
        }
        output.room(n as u64)?;
        output.write(&buf[..n])?;
    }
    let rest = decoder.get_mut().read(&mut [0u8; 1]);
    if rest.map_err(DeltaError::ReadDelta)? != 0 {
        return Err(DeltaError::Malformed("bytes after the zstd frame"));
    }
    output.commit()
}

/// The delta's zstd frame, decoded as it is read, once its header says it
/// needs a window of at most 2^`window_log` bytes.
fn frame<R: Read>(
    mut delta: R,
    window_log: u32,
) -> Result<StreamingDecoder<io::Chain<io::Cursor<FrameHeader>, R>, FrameDecoder>, DeltaError> {
    let header = FrameHeader::read(&mut delta, window_log)?;
    StreamingDecoder::new(io::Cursor::new(header).chain(delta))
        .map_err(|e| DeltaError::ReadDelta(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// The first bytes of a zstd frame, up to and including what says how
/// large a window its decoder needs (RFC 8878, 3.1.1.1). Read before the
/// decoder is made: ruzstd allocates the window a frame asks for (up to
/// 100 MiB), and has no smaller cap to set.
struct FrameHeader {
    bytes: [u8; 18],
    len: usize,
}

impl AsRef<[u8]> for FrameHeader {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl FrameHeader {
    /// Largest window any frame of a delta may need: [`WINDOW_LOG`].
    fn read(r: &mut impl Read, window_log: u32) -> Result<Self, DeltaError> {
        let mut h = Self {
            bytes: [0; 18],
            len: 6,
        };
        r.read_exact(&mut h.bytes[..5])
            .map_err(DeltaError::ReadDelta)?;
        if h.bytes[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(DeltaError::ReadDelta(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a zstd frame",
            )));
        }
        let descriptor = h.bytes[4];
        let single_segment = descriptor & 0x20 != 0;
        let dictionary_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let content_size = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        h.len = 5 + usize::from(!single_segment) + dictionary_id + content_size;
        r.read_exact(&mut h.bytes[5..h.len])
            .map_err(DeltaError::ReadDelta)?;
        let window = if single_segment {
            // The window is the content size.
            let mut size = [0u8; 8];
            size[..content_size].copy_from_slice(&h.bytes[h.len - content_size..h.len]);
            u64::from_le_bytes(size) + if content_size == 2 { 256 } else { 0 }
        } else {
            let exponent = u32::from(h.bytes[5] >> 3);
            let base = 1u64 << (10 + exponent);
            base + base / 8 * u64::from(h.bytes[5] & 7)
        };
        if window > 1 << window_log {
            return Err(DeltaError::Window {
                found: window,
                max: 1 << window_log,
            });
        }
        Ok(h)
    }
}

struct OldLayer<'a> {
    file: File,
    path: &'a Path,
    size: u64,
}

impl OldLayer<'_> {
    fn check(&self, offset: u64, len: u64) -> Result<(), DeltaError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            end => Err(DeltaError::OutsideOld {
                end: end.unwrap_or(u64::MAX),
                old_size: self.size,
            }),
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.check(offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| DeltaError::ReadOld(self.path.to_owned(), e))
    }
}

struct Ops<'a, R> {
    delta: R,
    old: OldLayer<'a>,
    buf: Vec<u8>,
    old_buf: Vec<u8>,
}

impl<R: Read> Ops<'_, R> {
    fn run(&mut self, out: &mut Output) -> Result<(), DeltaError> {
        let mut magic = [0u8; 8];
        self.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(DeltaError::Malformed("not a husk delta (bad magic)"));
        }
        let new_size = self.u64()?;
        if new_size != out.target.size {
            return Err(DeltaError::Size {
                expected: out.target.size,
                found: new_size,
            });
        }
        loop {
            let mut op = [0u8; 1];
            self.read_exact(&mut op)?;
            match op[0] {
                OP_END => break,
                OP_COPY => {
                    let (offset, len) = (self.u64()?, self.u64()?);
                    out.room(len)?;
                    self.copy_old(offset, len, out)?;
                }
                OP_LITERAL => {
                    let len = self.u64()?;
                    out.room(len)?;
                    self.literal(len, out)?;
                }
                OP_BSDIFF => {
                    let offset = self.u64()?;
                    let old_len = self.u64()?;
                    let new_len = self.u64()?;
                    let patch_len = self.u64()?;
                    self.old.check(offset, old_len)?;
                    out.room(new_len)?;
                    let patch = Patch {
                        base: offset,
                        old_len,
                        new_len,
                        patch_len,
                    };
                    let bufs = (&mut self.buf[..], &mut self.old_buf[..]);
                    bspatch(&mut self.delta, &self.old, patch, bufs, &mut |b| {
                        out.write(b)
                    })?;
                }
                OP_ZREF => self.zref(out)?,
                OP_GZIP => self.gzip(out)?,
                OP_PATCH => {
                    let (new_len, frame_len) = (self.u64()?, self.u64()?);
                    out.room(new_len)?;
                    let prefix_len = self.old.size + out.written;
                    let mut history = PatchHistory {
                        old: &self.old,
                        out,
                    };
                    let mut frame = (&mut self.delta).take(frame_len);
                    zframe::decode(&mut frame, prefix_len, new_len, &mut history)?;
                }
                _ => return Err(DeltaError::Malformed("unknown operation")),
            }
        }
        if self
            .delta
            .read(&mut [0u8; 1])
            .map_err(DeltaError::ReadDelta)?
            != 0
        {
            return Err(DeltaError::Malformed("bytes after the end"));
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.delta.read_exact(buf).map_err(DeltaError::ReadDelta)
    }

    fn u64(&mut self) -> Result<u64, DeltaError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn copy_old(&mut self, offset: u64, len: u64, out: &mut Output) -> Result<(), DeltaError> {
        self.old.check(offset, len)?;
        let mut done = 0;
        while done < len {
            let n = chunk(len - done);
            self.old.read(offset + done, &mut self.buf[..n])?;
            out.write(&self.buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    fn literal(&mut self, len: u64, out: &mut Output) -> Result<(), DeltaError> {
        let mut done = 0;
        while done < len {
            let n = chunk(len - done);
            let (buf, delta) = (&mut self.buf[..n], &mut self.delta);
            delta.read_exact(buf).map_err(DeltaError::ReadDelta)?;
            out.write(buf)?;
            done += n as u64;
        }
        Ok(())
    }

    /// A gzip member's deflate stream: the old one inflated, patched, and
    /// deflated again.
    fn gzip(&mut self, out: &mut Output) -> Result<(), DeltaError> {
        let limits = DeltaError::Malformed("gzip op beyond its limits");
        let (offset, old_len, old_raw_len) = (self.u64()?, self.u64()?, self.u64()?);
        let (level, raw_len, new_len, patch_len) =
            (self.u64()?, self.u64()?, self.u64()?, self.u64()?);
        if old_raw_len > MAX_INFLATED as u64 || raw_len > MAX_INFLATED as u64 {
            return Err(limits);
        }
        let level = u32::try_from(level)
            .ok()
            .filter(|l| (1..=9).contains(l))
            .ok_or(DeltaError::Malformed("gzip op with a level outside 1..9"))?;
        self.old.check(offset, old_len)?;
        out.room(new_len)?;
        let old_raw = inflate(
            &self.old,
            offset,
            old_len,
            old_raw_len as usize,
            &mut self.buf,
        )?;
        if old_raw.len() as u64 != old_raw_len {
            return Err(DeltaError::Malformed(
                "gzip op's old data does not inflate to its length",
            ));
        }
        let mut raw = Vec::with_capacity(raw_len as usize);
        let patch = Patch {
            base: 0,
            old_len: old_raw_len,
            new_len: raw_len,
            patch_len,
        };
        let bufs = (&mut self.buf[..], &mut self.old_buf[..]);
        bspatch(&mut self.delta, &old_raw[..], patch, bufs, &mut |b| {
            raw.extend_from_slice(b);
            Ok(())
        })?;
        drop(old_raw);
        let mut sink = Deflated {
            out,
            left: new_len,
            error: None,
        };
        let result = deflate::deflate(&raw, level, &mut sink);
        if let Some(e) = sink.error {
            return Err(e);
        }
        result.map_err(|_| DeltaError::Malformed("gzip op does not deflate"))?;
        if sink.left != 0 {
            return Err(DeltaError::Malformed("gzip op deflates to another length"));
        }
        Ok(())
    }
}

/// Where a bsdiff patch reads the bytes it adds to.
trait OldBytes {
    /// Fills `buf` from `offset`, or fails naming what lies outside.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError>;
}

impl OldBytes for OldLayer<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.read(offset, buf)
    }
}

impl OldBytes for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        let end = offset.saturating_add(buf.len() as u64);
        let bytes = self
            .get(offset as usize..end as usize)
            .ok_or(DeltaError::OutsideOld {
                end,
                old_size: self.len() as u64,
            })?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A bsdiff op's lengths: its old bytes start at `base`.
#[derive(Clone, Copy)]
struct Patch {
    base: u64,
    old_len: u64,
    new_len: u64,
    patch_len: u64,
}

/// bspatch, streaming: the patch is a list of (mix_len, copy_len, seek)
/// controls, each followed by mix_len bytes added to the old bytes at the
/// old position and copy_len bytes taken as they are. The output goes to
/// `sink` a chunk at a time, through `bufs` (two buffers of the same size).
fn bspatch(
    delta: &mut impl Read,
    old: &(impl OldBytes + ?Sized),
    p: Patch,
    bufs: (&mut [u8], &mut [u8]),
    sink: &mut dyn FnMut(&[u8]) -> Result<(), DeltaError>,
) -> Result<(), DeltaError> {
    let (buf, old_buf) = bufs;
    let size = buf.len() as u64;
    let step = |left: u64| left.min(size) as usize;
    let mut patch_left = p.patch_len;
    let mut new_left = p.new_len;
    let mut old_pos: u64 = 0;
    while patch_left > 0 {
        let mut control = [0u8; 24];
        if patch_left < 24 {
            return Err(DeltaError::Malformed("bsdiff control cut short"));
        }
        delta
            .read_exact(&mut control)
            .map_err(DeltaError::ReadDelta)?;
        patch_left -= 24;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&control[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let (mix_len, copy_len, seek) = (word(0), word(1), word(2));
        let data_len = mix_len
            .checked_add(copy_len)
            .filter(|&n| n <= patch_left && n <= new_left)
            .ok_or(DeltaError::Malformed(
                "bsdiff control longer than the patch or the output",
            ))?;
        if old_pos
            .checked_add(mix_len)
            .is_none_or(|end| end > p.old_len)
        {
            return Err(DeltaError::OutsideOld {
                end: p.base.saturating_add(old_pos).saturating_add(mix_len),
                old_size: p.base.saturating_add(p.old_len),
            });
        }
        let mut done = 0;
        while done < mix_len {
            let n = step(mix_len - done);
            delta
                .read_exact(&mut buf[..n])
                .map_err(DeltaError::ReadDelta)?;
            old.read_at(p.base + old_pos + done, &mut old_buf[..n])?;
            for (b, o) in buf[..n].iter_mut().zip(&old_buf[..n]) {
                *b = b.wrapping_add(*o);
            }
            sink(&buf[..n])?;
            done += n as u64;
        }
        let mut done = 0;
        while done < copy_len {
            let n = step(copy_len - done);
            delta
                .read_exact(&mut buf[..n])
                .map_err(DeltaError::ReadDelta)?;
            sink(&buf[..n])?;
            done += n as u64;
        }
        patch_left -= data_len;
        new_left -= data_len;
        // The seek is sign and magnitude, as bsdiff writes it.
        let magnitude = seek & !(1 << 63);
        let after_mix = old_pos + mix_len;
        old_pos = if seek >> 63 == 0 {
            after_mix.checked_add(magnitude)
        } else {
            after_mix.checked_sub(magnitude)
        }
        .ok_or(DeltaError::Malformed("bsdiff seeks outside the old data"))?;
    }
    if new_left != 0 {
        return Err(DeltaError::Malformed("bsdiff patch ends before its output"));
    }
    Ok(())
}

/// Inflates the raw deflate stream `old[offset .. offset + len]`, which must
/// be exactly one stream and inflate to at most `max` bytes, read through
/// `buf`.
fn inflate(
    old: &(impl OldBytes + ?Sized),
    offset: u64,
    len: u64,
    max: usize,
    buf: &mut [u8],
) -> Result<Vec<u8>, DeltaError> {
    use miniz_oxide::inflate::stream::{inflate, InflateState};
    use miniz_oxide::{DataFormat, MZFlush, MZStatus};
    let bad = DeltaError::Malformed("gzip op's old data does not inflate to its length");
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    // One byte more than the most, to see a stream that goes on.
    let mut raw = vec![0u8; max + 1];
    let (mut read, mut written) = (0u64, 0usize);
    let (mut have, mut used) = (0usize, 0usize);
    loop {
        if used == have && read < len {
            have = (len - read).min(buf.len() as u64) as usize;
            old.read_at(offset + read, &mut buf[..have])?;
            read += have as u64;
            used = 0;
        }
        let flush = if read == len {
            MZFlush::Finish
        } else {
            MZFlush::None
        };
        let r = inflate(&mut state, &buf[used..have], &mut raw[written..], flush);
        used += r.bytes_consumed;
        written += r.bytes_written;
        match r.status {
            Ok(MZStatus::StreamEnd) => break,
            Ok(_) if written <= max && (r.bytes_consumed > 0 || r.bytes_written > 0) => {}
            _ => return Err(bad),
        }
    }
    if written > max || used != have || read != len {
        return Err(bad);
    }
    raw.truncate(written);
    Ok(raw)
}

/// The output as the deflater's `io::Write`: refuses more than `left`
/// bytes, and keeps the output's own error.
struct Deflated<'a> {
    out: &'a mut Output,
    left: u64,
    error: Option<DeltaError>,
}

impl Write for Deflated<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        let result = if len > self.left {
            Err(DeltaError::Malformed("gzip op deflates to another length"))
        } else {
            self.out.write(buf)
        };
        match result {
            Ok(()) => {
                self.left -= len;
                Ok(buf.len())
            }
            Err(e) => {
                self.error = Some(e);
                Err(io::ErrorKind::Other.into())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Read> Ops<'_, R> {
    /// One zstd frame decoded against a prefix of pieces of the old layer
    /// and the last bytes written, streamed from the delta to the output.
    fn zref(&mut self, out: &mut Output) -> Result<(), DeltaError> {
        let limits = DeltaError::Malformed("zstd-ref segment beyond its limits");
        let ranges = self.u64()?;
        if ranges > MAX_REF_RANGES as u64 {
            return Err(limits);
        }
        // The ranges first (4 KiB at most), so the prefix is allocated once
        // at its exact size.
        let mut pieces = [(0u64, 0u64); MAX_REF_RANGES];
        let mut ref_len: u64 = 0;
        for piece in pieces.iter_mut().take(ranges as usize) {
            let (offset, len) = (self.u64()?, self.u64()?);
            ref_len = ref_len.saturating_add(len);
            if ref_len > MAX_REF as u64 {
                return Err(limits);
            }
            self.old.check(offset, len)?;
            *piece = (offset, len);
        }
        let history = self.u64()?;
        let (new_len, frame_len) = (self.u64()?, self.u64()?);
        if history > MAX_HISTORY as u64
            || history > out.written
            || new_len > MAX_SEGMENT as u64
            || frame_len > MAX_FRAME as u64
        {
            return Err(limits);
        }
        out.room(new_len)?;
        // The old ranges one after the other, then the last `history` bytes
        // of the new layer.
        let mut prefix = vec![0u8; (ref_len + history) as usize];
        let mut at = 0;
        for &(offset, len) in &pieces[..ranges as usize] {
            self.old.read(offset, &mut prefix[at..at + len as usize])?;
            at += len as usize;
        }
        out.read_back(&mut prefix[at..])?;
        let bad = || DeltaError::Malformed("zstd-ref frame does not decode");
        let mut frame = (&mut self.delta).take(frame_len);
        let header = match FrameHeader::read(&mut frame, WINDOW_LOG) {
            Err(DeltaError::ReadDelta(_)) => return Err(bad()),
            header => header?,
        };
        let mut source = io::Cursor::new(header).chain(frame);
        // The prefix is a raw-content dictionary to ruzstd (repeat offsets
        // 1, 4, 8 and no entropy tables), which is what zstd's ref_prefix
        // is to the C decoder. ruzstd copies a dictionary into its decoder
        // (`force_dict`), so the prefix is held twice only for that copy:
        // the decoder's own dictionary is then replaced by an empty one.
        let mut decoder = FrameDecoder::new();
        let dictionary = |content| Dictionary {
            id: PREFIX_ID,
            fse: Default::default(),
            huf: Default::default(),
            dict_content: content,
            offset_hist: [1, 4, 8],
        };
        decoder
            .add_dict(dictionary(prefix))
            .and_then(|()| decoder.reset(&mut source))
            .and_then(|()| decoder.force_dict(PREFIX_ID))
            .and_then(|()| decoder.add_dict(dictionary(Vec::new())))
            .map_err(|_| bad())?;
        // Block by block, drained to the output through the chunk buffer:
        // ruzstd keeps a window's worth of output (2 MiB) until the frame
        // ends, so a segment (at most MAX_SEGMENT) is drained at its end.
        let mut len: u64 = 0;
        loop {
            let finished = decoder
                .decode_blocks(&mut source, BlockDecodingStrategy::UptoBlocks(1))
                .map_err(|_| bad())?;
            loop {
                let n = decoder.read(&mut self.buf).map_err(|_| bad())?;
                if n == 0 {
                    break;
                }
                len += n as u64;
                if len > new_len {
                    return Err(DeltaError::Malformed(
                        "zstd-ref frame decodes to another length",
                    ));
                }
                out.write(&self.buf[..n])?;
            }
            if finished {
                break;
            }
        }
        // The frame is exactly the op's bytes.
        if source.get_ref().1.limit() != 0 {
            return Err(bad());
        }
        if len != new_len {
            return Err(DeltaError::Malformed(
                "zstd-ref frame decodes to another length",
            ));
        }
        Ok(())
    }
}

/// What a `PATCH` frame's matches read: the old layer, then the new layer
/// written so far.
struct PatchHistory<'a, 'b> {
    old: &'a OldLayer<'b>,
    out: &'a mut Output,
}

impl zframe::History for PatchHistory<'_, '_> {
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        // A read may span the old layer's end (the prefix goes on into the
        // output written before this op).
        let in_old = self.old.size.saturating_sub(pos).min(buf.len() as u64) as usize;
        let (old, written) = buf.split_at_mut(in_old);
        if !old.is_empty() {
            self.old.read(pos, old)?;
        }
        if !written.is_empty() {
            self.out
                .read_at(pos + in_old as u64 - self.old.size, written)?;
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), DeltaError> {
        self.out.write(data)
    }
}

fn chunk(left: u64) -> usize {
    left.min(CHUNK as u64) as usize
}

/// The new layer being written: a temporary file beside `out` and the
/// running sha256; removed on drop unless committed.
struct Output {
    file: Option<File>,
    temp: PathBuf,
    out: PathBuf,
    target: Target,
    written: u64,
    hasher: Sha256,
}

impl Output {
    fn create(out: &Path, target: Target) -> Result<Self, DeltaError> {
        let name = out
            .file_name()
            .ok_or_else(|| DeltaError::Write(out.to_owned(), io::ErrorKind::InvalidInput.into()))?
            .to_string_lossy();
        let temp = out.with_file_name(format!(".{name}.partial"));
        // Readable too: zstd-ref and zstd-patch read back bytes written.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| DeltaError::Write(temp.clone(), e))?;
        Ok(Self {
            file: Some(file),
            temp,
            out: out.to_owned(),
            target,
            written: 0,
            hasher: Sha256::new(),
        })
    }

    /// Fills `buf` with the last `buf.len()` bytes written.
    fn read_back(&self, buf: &mut [u8]) -> Result<(), DeltaError> {
        let file = self.file.as_ref().expect("open until commit");
        file.read_exact_at(buf, self.written - buf.len() as u64)
            .map_err(|e| DeltaError::Write(self.temp.clone(), e))
    }

    /// Fills `buf` with the bytes written from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        if offset + buf.len() as u64 > self.written {
            return Err(DeltaError::Malformed("reads output not written yet"));
        }
        let file = self.file.as_ref().expect("open until commit");
        file.read_exact_at(buf, offset)
            .map_err(|e| DeltaError::Write(self.temp.clone(), e))
    }

    /// Refuses before writing anything that would exceed the target size.
    fn room(&self, len: u64) -> Result<(), DeltaError> {
        match self.written.checked_add(len) {
            Some(n) if n <= self.target.size => Ok(()),
            n => Err(DeltaError::Size {
                expected: self.target.size,
                found: n.unwrap_or(u64::MAX),
            }),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), DeltaError> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        let file = self.file.as_mut().expect("open until commit");
        file.write_all(data)
            .map_err(|e| DeltaError::Write(self.temp.clone(), e))
    }

    fn commit(mut self) -> Result<(), DeltaError> {
        if self.written != self.target.size {
            return Err(DeltaError::Size {
                expected: self.target.size,
                found: self.written,
            });
        }
        let found = Digest::from_bytes(self.hasher.clone().finalize().into());
        if found != self.target.diff_id {
            return Err(DeltaError::Digest {
                expected: self.target.diff_id,
                found,
            });
        }
        let file = self.file.take().expect("open until commit");
        file.sync_all()
            .map_err(|e| DeltaError::Write(self.temp.clone(), e))?;
        drop(file);
        fs::rename(&self.temp, &self.out).map_err(|e| DeltaError::Write(self.out.clone(), e))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(all(test, feature = "publish"))]
mod tests {
    use super::make::{self, compress};
    use super::test_rng::Rng;
    use super::*;

    /// Text-like bytes, which compress and diff like real files do.
    fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = ["fn ", "let ", "self", "();\n", "mut ", "x", "0", " "];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            out.extend_from_slice(WORDS[rng.below(8)].as_bytes());
        }
        out.truncate(len);
        out
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("husk-delta-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    enum Member<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    fn tar(members: &[Member<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for m in members {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            match m {
                Member::File(path, data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                Member::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
                Member::Symlink(path, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn target(new: &[u8]) -> Target {
        Target {
            diff_id: Digest::of(new),
            size: new.len() as u64,
        }
    }

    /// Applies `delta` to `old` in `dir`; the result's bytes, or the error.
    fn run(dir: &Dir, old: &[u8], delta: &[u8], target: Target) -> Result<Vec<u8>, DeltaError> {
        let old_path = dir.0.join("old.tar");
        let out = dir.0.join("new.tar");
        fs::write(&old_path, old).unwrap();
        let _ = fs::remove_file(&out);
        let result = apply(&old_path, delta, target, &out).map(|()| fs::read(&out).unwrap());
        if result.is_err() {
            assert_eq!(dir.entries(), ["old.tar"], "an output was left behind");
        }
        result
    }

    /// An old tree and a new version of it: files unchanged, edited, grown,
    /// removed, added, renamed, a long name, a directory and a symlink.
    fn structured_pair(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| {
                let len = rng.below(20_000) + 1;
                let data = if i % 3 == 0 {
                    rng.bytes(len)
                } else {
                    text(rng, len)
                };
                (format!("usr/lib/app/file{i:02}"), data)
            })
            .collect();
        let long = format!("usr/share/{}/deep", "long-directory-name".repeat(8));
        let mut old_members = vec![
            Member::Dir("usr/"),
            Member::Symlink("usr/bin/app", "../lib/app/file00"),
        ];
        for (path, data) in &files {
            old_members.push(Member::File(path, data));
        }
        let long_old = text(rng, 5000);
        old_members.push(Member::File(&long, &long_old));
        let old = tar(&old_members);

        let mut edited: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, (path, data)) in files.iter().enumerate() {
            let mut data = data.clone();
            match i % 5 {
                0 => continue, // removed
                1 => {
                    // a few bytes changed in place
                    for _ in 0..5 {
                        let at = rng.below(data.len());
                        data[at] = data[at].wrapping_add(1);
                    }
                }
                2 => {
                    // bytes inserted in the middle
                    let at = data.len() / 2;
                    let insert = text(rng, 300);
                    data.splice(at..at, insert);
                }
                3 => {
                    // renamed, content unchanged
                    edited.push((format!("{path}.renamed"), data));
                    continue;
                }
                _ => {}
            }
            edited.push((path.clone(), data));
        }
        edited.push(("usr/lib/app/added".into(), rng.bytes(7000)));
        let mut long_new = long_old.clone();
        long_new.extend_from_slice(b"appended");
        let mut new_members = vec![
            Member::Dir("usr/"),
            Member::Symlink("usr/bin/app", "../lib/app/file01"),
        ];
        for (path, data) in &edited {
            new_members.push(Member::File(path, data));
        }
        new_members.push(Member::File(&long, &long_new));
        (old, tar(&new_members))
    }

    #[test]
    fn structured_tar_pairs_round_trip_bit_for_bit_with_every_algorithm() {
        let dir = Dir::new("structured");
        for seed in 1..4 {
            let mut rng = Rng(seed);
            let (old, new) = structured_pair(&mut rng);
            let files = make::tar_files(&old, &new)
                .unwrap()
                .expect("a tar-files delta");
            let whole = make::whole_layer(&old, &new)
                .unwrap()
                .expect("a bsdiff delta");
            let zref = make::zstd_ref(&old, &new).unwrap();
            let patch = make::zstd_patch(&old, &new).unwrap().expect("small layers");
            for delta in [&files, &whole, &zref, &patch] {
                assert_eq!(run(&dir, &old, delta, target(&new)).unwrap(), new);
            }
            let full = compress(&new).unwrap().len() as u64;
            assert!(
                (files.len() as u64) * 4 < full,
                "tar-files {} vs full {full}",
                files.len()
            );
            let all = &Algorithm::ALL;
            let (_, best) = make::best(&old, &new, full, all)
                .unwrap()
                .expect("a delta pays");
            // Only the algorithms asked for.
            let (algorithm, _) = make::best(&old, &new, full, &[Algorithm::Bsdiff])
                .unwrap()
                .unwrap();
            assert_eq!(algorithm, Algorithm::Bsdiff);
            let smallest = [&files, &whole, &zref, &patch].map(Vec::len);
            assert_eq!(best.len(), smallest.into_iter().min().unwrap());
        }
    }

    /// Unchanged members and the headers between them are copied from the
    /// old layer as long ranges, not sent: a layer where one file of 100
    /// changed costs that file, not 100 headers.
    #[test]
    fn unchanged_members_and_their_headers_are_copies() {
        let dir = Dir::new("copies");
        let mut rng = Rng(7);
        let names: Vec<String> = (0..100).map(|i| format!("usr/lib/f{i:02}")).collect();
        let datas: Vec<Vec<u8>> = (0..100).map(|_| rng.bytes(2000)).collect();
        let old = tar(&names
            .iter()
            .zip(&datas)
            .map(|(n, d)| Member::File(n, d))
            .collect::<Vec<_>>());
        let mut changed = datas.clone();
        changed[50][100..110].copy_from_slice(b"0123456789");
        let new = tar(&names
            .iter()
            .zip(&changed)
            .map(|(n, d)| Member::File(n, d))
            .collect::<Vec<_>>());
        let files = make::tar_files(&old, &new).unwrap().unwrap();
        assert_eq!(run(&dir, &old, &files, target(&new)).unwrap(), new);
        // Decoded: the magic and size, a copy, the one member's bsdiff (its
        // 2,000 bytes of mostly zero differences), a copy, the end; the 100
        // headers as literals would be 51,200 bytes more.
        let raw = zstd::bulk::decompress(&files, 1 << 20).unwrap();
        assert!(raw.len() < 4000, "{} bytes decoded", raw.len());
    }

    /// A gzip member as `gzip -<level> -n` writes it: this header, GNU
    /// gzip's deflate stream, the crc32 and the length.
    fn gzip_member(data: &[u8], level: u32) -> Vec<u8> {
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3];
        deflate::deflate(data, level, &mut out).unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// The operations of a compressed delta, in order.
    fn op_codes(delta: &[u8]) -> Vec<u8> {
        let raw = zstd::bulk::decompress(delta, 64 << 20).unwrap();
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap()) as usize;
        let mut at = 16;
        let mut codes = Vec::new();
        loop {
            let code = raw[at];
            codes.push(code);
            at += 1;
            at += match code {
                OP_END => return codes,
                OP_COPY => 16,
                OP_LITERAL => 8 + word(at),
                OP_BSDIFF => 32 + word(at + 24),
                OP_ZREF => {
                    let ranges = word(at);
                    let rest = at + 8 + 16 * ranges;
                    8 + 16 * ranges + 24 + word(rest + 16)
                }
                OP_GZIP => 56 + word(at + 48),
                OP_PATCH => 16 + word(at + 8),
                _ => panic!("unknown operation {code}"),
            };
        }
    }

    /// A changelog: a new release adds entries at its top.
    fn changelog(rng: &mut Rng, entries: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in (0..entries).rev() {
            out.extend_from_slice(format!("pkg (1.{i}) stable; urgency=medium\n\n").as_bytes());
            out.extend_from_slice(&text(rng, 600));
            out.extend_from_slice(b"\n\n -- Maintainer <m@example.org>\n\n");
        }
        out
    }

    /// A changed .gz file costs its change, not its size: its content is
    /// diffed uncompressed and deflated again on the device, bit for bit,
    /// by every algorithm that walks the tar.
    #[test]
    fn a_changed_gzip_member_is_diffed_uncompressed() {
        let dir = Dir::new("gzip");
        let mut rng = Rng(3);
        let old_log = changelog(&mut Rng(5), 200);
        let mut new_log = changelog(&mut Rng(6), 3);
        new_log.extend_from_slice(&old_log);
        let other = text(&mut rng, 30_000);
        for level in [9, 6, 1] {
            let (old_gz, new_gz) = (gzip_member(&old_log, level), gzip_member(&new_log, level));
            let old = tar(&[
                Member::File("usr/share/doc/pkg/changelog.gz", &old_gz),
                Member::File("usr/share/doc/pkg/other", &other),
            ]);
            let new = tar(&[
                Member::File("usr/share/doc/pkg/changelog.gz", &new_gz),
                Member::File("usr/share/doc/pkg/other", &other),
            ]);
            let files = make::tar_files(&old, &new).unwrap().unwrap();
            let zref = make::zstd_ref(&old, &new).unwrap();
            let patch = make::zstd_patch(&old, &new).unwrap().unwrap();
            for delta in [&files, &zref, &patch] {
                assert!(op_codes(delta).contains(&OP_GZIP), "level {level}");
                assert_eq!(run(&dir, &old, delta, target(&new)).unwrap(), new);
            }
            // Three new entries are some 2 KB of text; the new member is
            // far larger compressed, and a byte delta of it about as large.
            let whole = make::whole_layer(&old, &new).unwrap().unwrap();
            let all = [
                ("tar-files", &files),
                ("zstd-ref", &zref),
                ("zstd-patch", &patch),
            ];
            for (name, delta) in all {
                assert!(
                    delta.len() < 2500 && delta.len() * 4 < whole.len(),
                    "level {level}: {name} {} bytes, whole-layer bsdiff {}, member {}",
                    delta.len(),
                    whole.len(),
                    new_gz.len()
                );
            }
        }
    }

    /// A .gz file made by another deflater is not one GNU gzip's deflate
    /// gives back: it travels as bytes, and still round-trips.
    #[test]
    fn a_gzip_member_from_another_compressor_is_diffed_as_bytes() {
        use std::io::Write as _;
        let dir = Dir::new("gzip-other");
        let old_log = changelog(&mut Rng(5), 100);
        let mut new_log = changelog(&mut Rng(6), 2);
        new_log.extend_from_slice(&old_log);
        let other = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        let (old_gz, new_gz) = (other(&old_log), other(&new_log));
        let mut again = Vec::new();
        let stream = make::deflate_stream_of(&new_gz).unwrap();
        deflate::deflate(&new_log, 9, &mut again).unwrap();
        assert_ne!(again, stream, "the other compressor wrote GNU gzip's bytes");
        let old = tar(&[Member::File("a.gz", &old_gz)]);
        let new = tar(&[Member::File("a.gz", &new_gz)]);
        let files = make::tar_files(&old, &new).unwrap().unwrap();
        let zref = make::zstd_ref(&old, &new).unwrap();
        let patch = make::zstd_patch(&old, &new).unwrap().unwrap();
        for delta in [&files, &zref, &patch] {
            assert!(!op_codes(delta).contains(&OP_GZIP));
            assert_eq!(run(&dir, &old, delta, target(&new)).unwrap(), new);
        }
    }

    /// A `tar-files` delta asks for a 1 MiB window at most, whatever it
    /// holds (here 3 MiB of new data), so that a GZIP op's buffers fit
    /// beside ruzstd's.
    #[test]
    fn a_tar_files_delta_needs_at_most_a_1_mib_window() {
        let mut rng = Rng(9);
        let old_data = rng.bytes(1000);
        let new_data = rng.bytes(3 << 20);
        let old = tar(&[Member::File("a", &old_data)]);
        let new = tar(&[Member::File("a", &new_data)]);
        let files = make::tar_files(&old, &new).unwrap().unwrap();
        assert!(FrameHeader::read(&mut &files[..], make::TAR_FILES_WINDOW_LOG).is_ok());
        let whole = make::whole_layer(&old, &new).unwrap().unwrap();
        assert!(FrameHeader::read(&mut &whole[..], make::TAR_FILES_WINDOW_LOG).is_err());
    }

    #[test]
    fn random_pairs_round_trip_bit_for_bit() {
        let dir = Dir::new("random");
        let mut rng = Rng(42);
        for _ in 0..8 {
            let old_len = rng.below(100_000);
            let old = rng.bytes(old_len);
            // The new one: pieces of the old one and fresh bytes.
            let mut new = Vec::new();
            for _ in 0..rng.below(10) {
                if rng.below(2) == 0 && !old.is_empty() {
                    let start = rng.below(old.len());
                    let end = (start + rng.below(20_000)).min(old.len());
                    new.extend_from_slice(&old[start..end]);
                } else {
                    let len = rng.below(5000);
                    new.extend(rng.bytes(len));
                }
            }
            let whole = make::whole_layer(&old, &new).unwrap().unwrap();
            assert_eq!(run(&dir, &old, &whole, target(&new)).unwrap(), new);
            let zref = make::zstd_ref(&old, &new).unwrap();
            assert_eq!(run(&dir, &old, &zref, target(&new)).unwrap(), new);
            let patch = make::zstd_patch(&old, &new).unwrap().unwrap();
            assert_eq!(run(&dir, &old, &patch, target(&new)).unwrap(), new);
            // Not tars: no per-file delta, and no error.
            assert_eq!(make::tar_files(&old, &new).unwrap(), None);
        }
        // Random tars: unrelated trees still round-trip.
        for _ in 0..4 {
            let names: Vec<String> = (0..10).map(|i| format!("f{}", i + rng.below(5))).collect();
            let datas: Vec<Vec<u8>> = (0..20)
                .map(|_| {
                    let len = rng.below(3000);
                    rng.bytes(len)
                })
                .collect();
            let old = tar(&names
                .iter()
                .zip(&datas[..10])
                .map(|(n, d)| Member::File(n, d))
                .collect::<Vec<_>>());
            let new = tar(&names
                .iter()
                .rev()
                .zip(&datas[5..15])
                .map(|(n, d)| Member::File(n, d))
                .collect::<Vec<_>>());
            let files = make::tar_files(&old, &new).unwrap().unwrap();
            assert_eq!(run(&dir, &old, &files, target(&new)).unwrap(), new);
        }
    }

    /// A `PATCH` frame reaches the whole old layer and everything written
    /// before it, a `GZIP` op's output too, from far beyond the decoder's
    /// tail in memory.
    #[test]
    fn zstd_patch_frames_reach_the_old_layer_and_all_the_output_before_them() {
        let dir = Dir::new("patch");
        let mut rng = Rng(12);
        let log = changelog(&mut Rng(13), 300);
        let mut new_log = changelog(&mut Rng(14), 2);
        new_log.extend_from_slice(&log);
        let (old_gz, new_gz) = (gzip_member(&log, 9), gzip_member(&new_log, 9));
        let far = rng.bytes(3 * zframe::TAIL);
        let fresh = rng.bytes(2 * zframe::TAIL);
        let old = tar(&[
            Member::File("far", &far),
            Member::File("changelog.gz", &old_gz),
        ]);
        // `fresh` again after the gzip member: only the output has it.
        let again = [&far[..1000], &fresh, &far[5000..]].concat();
        let new = tar(&[
            Member::File("fresh", &fresh),
            Member::File("changelog.gz", &new_gz),
            Member::File("again", &again),
        ]);
        let patch = make::zstd_patch(&old, &new).unwrap().unwrap();
        let codes = op_codes(&patch);
        assert_eq!(
            codes.iter().filter(|&&c| c == OP_PATCH).count(),
            2,
            "{codes:?}"
        );
        assert!(codes.contains(&OP_GZIP));
        assert_eq!(run(&dir, &old, &patch, target(&new)).unwrap(), new);
        // The fresh bytes are sent once.
        assert!(patch.len() < fresh.len() + 20_000, "{} bytes", patch.len());
    }

    #[test]
    fn zstd_ref_round_trips_across_segments_with_history_and_copies() {
        let dir = Dir::new("segments");
        let mut rng = Rng(11);
        // Larger than a segment: several frames, each with the bytes before it.
        let big: Vec<u8> = text(&mut rng, 3 * MAX_SEGMENT);
        let same = rng.bytes(200_000); // an identical member large enough to copy
        let mut edited = big.clone();
        for _ in 0..50 {
            let at = rng.below(edited.len());
            let insert = text(&mut rng, 40);
            edited.splice(at..at, insert);
        }
        let old = tar(&[Member::File("big", &big), Member::File("same", &same)]);
        let new = tar(&[Member::File("same2", &same), Member::File("big", &edited)]);
        let zref = make::zstd_ref(&old, &new).unwrap();
        assert_eq!(run(&dir, &old, &zref, target(&new)).unwrap(), new);
        assert!(zref.len() < 20_000, "{} bytes", zref.len());
        // History cannot reach before the start of the output.
        let old = b"0123456789".to_vec();
        let frame = zstd::bulk::compress(b"abc", 3).unwrap();
        let words = [0, 1, 3, frame.len() as u64];
        let delta = raw(3, &[&op(OP_ZREF, &words, &frame), &[OP_END]]);
        let e = run(&dir, &old, &delta, target(b"abc"))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "delta: malformed: zstd-ref segment beyond its limits"
        );
    }

    #[test]
    fn zstd_ref_segments_at_the_formats_limits_still_apply() {
        // `make` now writes prefixes of at most REF_LEN + HISTORY_LEN and
        // segments of SEGMENT_LEN; deltas published before (MAX_REF +
        // MAX_HISTORY, MAX_SEGMENT) must still apply.
        const { assert!(make::REF_LEN < MAX_REF && make::SEGMENT_LEN < MAX_SEGMENT) };
        let dir = Dir::new("limits");
        let mut rng = Rng(17);
        let old = text(&mut rng, MAX_REF + 4096);
        let mut new = text(&mut rng, MAX_HISTORY);
        // From the middle of the prefix: zstd matches only within its window.
        let mut segment = old[4096 + MAX_REF - MAX_SEGMENT..4096 + MAX_REF].to_vec();
        segment[1000..1010].copy_from_slice(b"0123456789");
        new.extend_from_slice(&segment);
        let prefix = [&old[4096..], &new[..MAX_HISTORY]].concat();
        assert_eq!(prefix.len(), MAX_REF + MAX_HISTORY);
        let mut cctx = zstd::zstd_safe::CCtx::create();
        cctx.set_parameter(zstd::zstd_safe::CParameter::WindowLog(WINDOW_LOG))
            .unwrap();
        cctx.ref_prefix(&prefix[..]).unwrap();
        let mut frame = Vec::with_capacity(MAX_FRAME);
        cctx.compress2(&mut frame, &segment).unwrap();
        let mut words = vec![1, 4096, MAX_REF as u64, MAX_HISTORY as u64];
        words.extend([MAX_SEGMENT as u64, frame.len() as u64]);
        let delta = raw(
            new.len() as u64,
            &[
                &op(OP_LITERAL, &[MAX_HISTORY as u64], &new[..MAX_HISTORY]),
                &op(OP_ZREF, &words, &frame),
                &[OP_END],
            ],
        );
        // The segment is found in the prefix.
        assert!(frame.len() < 4_000, "{} bytes", frame.len());
        assert_eq!(run(&dir, &old, &delta, target(&new)).unwrap(), new);
    }

    #[test]
    fn a_corrupted_or_truncated_delta_fails_and_leaves_no_output() {
        let dir = Dir::new("corrupt");
        let (old, new) = structured_pair(&mut Rng(7));
        let delta = make::tar_files(&old, &new).unwrap().unwrap();
        for cut in [0, 1, 10, delta.len() / 2, delta.len() - 1] {
            let e = run(&dir, &old, &delta[..cut], target(&new))
                .map(|_| ())
                .unwrap_err();
            assert!(matches!(e, DeltaError::ReadDelta(_)), "cut at {cut}: {e}");
        }
        for at in [20, delta.len() / 3, delta.len() / 2, delta.len() - 5] {
            let mut bad = delta.clone();
            bad[at] ^= 0x40;
            assert!(run(&dir, &old, &bad, target(&new)).is_err(), "flip at {at}");
        }
        // The right delta against another old layer: the digest says no.
        // (One byte in every block: some of them are in members the delta copies.)
        let mut other_old = old.clone();
        for at in (300..other_old.len()).step_by(512) {
            other_old[at] ^= 1;
        }
        let e = run(&dir, &other_old, &delta, target(&new))
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, DeltaError::Digest { .. }), "{e}");
        assert!(e.to_string().starts_with("delta: result is sha256:"), "{e}");
    }

    fn raw(new_size: u64, ops: &[&[u8]]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&new_size.to_le_bytes());
        for op in ops {
            out.extend_from_slice(op);
        }
        compress(&out).unwrap()
    }

    fn op(code: u8, words: &[u64], data: &[u8]) -> Vec<u8> {
        let mut out = vec![code];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn hostile_operations_are_refused_before_they_write() {
        let dir = Dir::new("hostile");
        let old = b"0123456789".to_vec();
        let new = b"abc".to_vec();
        let t = target(&new);
        let end = [OP_END];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                raw(3, &[&op(OP_COPY, &[8, 3], b""), &end]),
                "delta: reads old layer up to byte 11, past its size 10",
            ),
            (
                raw(3, &[&op(OP_COPY, &[u64::MAX, 2], b""), &end]),
                "delta: reads old layer up to byte 18446744073709551615, past its size 10",
            ),
            (
                raw(3, &[&op(OP_LITERAL, &[4], b"abcd"), &end]),
                "delta: produces 4 bytes, the target has 3",
            ),
            (raw(4, &[&end]), "delta: produces 4 bytes, the target has 3"),
            (
                raw(3, &[&op(OP_LITERAL, &[2], b"ab"), &end]),
                "delta: produces 2 bytes, the target has 3",
            ),
            (
                raw(3, &[&op(OP_LITERAL, &[3], b"abd"), &end]),
                "delta: result is",
            ),
            (
                raw(3, &[&op(9, &[], b""), &end]),
                "delta: malformed: unknown operation",
            ),
            (
                raw(3, &[&op(OP_LITERAL, &[3], b"abc"), &end, b"x"]),
                "delta: malformed: bytes after the end",
            ),
            (
                compress(b"HUSKDLT2\x03\0\0\0\0\0\0\0\0").unwrap(),
                "delta: malformed: not a husk delta (bad magic)",
            ),
            // bsdiff: a control past the patch, a mix past the old range, a seek before it.
            (
                raw(
                    3,
                    &[
                        &op(
                            OP_BSDIFF,
                            &[0, 10, 3, 24],
                            &[&3u64.to_le_bytes()[..], &[0; 16]].concat(),
                        ),
                        &end,
                    ],
                ),
                "delta: malformed: bsdiff control longer than the patch or the output",
            ),
            (
                raw(
                    3,
                    &[
                        &op(
                            OP_BSDIFF,
                            &[8, 2, 3, 27],
                            &[&3u64.to_le_bytes()[..], &[0; 16], &[0; 3]].concat(),
                        ),
                        &end,
                    ],
                ),
                "delta: reads old layer up to byte 11, past its size 10",
            ),
            (
                raw(
                    3,
                    &[
                        &op(
                            OP_BSDIFF,
                            &[0, 10, 3, 51],
                            &[
                                &1u64.to_le_bytes()[..],
                                &[0; 8],
                                &(5u64 | 1 << 63).to_le_bytes(),
                                &[0],
                                &[0; 24],
                            ]
                            .concat(),
                        ),
                        &end,
                    ],
                ),
                "delta: malformed: bsdiff seeks outside the old data",
            ),
            (
                raw(3, &[&op(OP_BSDIFF, &[0, 10, 3, 0], b""), &end]),
                "delta: malformed: bsdiff patch ends before its output",
            ),
        ];
        for (delta, message) in cases {
            let e = run(&dir, &old, &delta, t).map(|_| ()).unwrap_err();
            assert!(e.to_string().starts_with(message), "{e} / {message}");
        }
        // zstd-ref: a segment beyond the limits, a frame that is not zstd,
        // a frame of more bytes than the op says.
        let frame = zstd::bulk::compress(b"abcd", 3).unwrap();
        let zref = |old_len: u64, new_len: u64, frame: &[u8]| {
            let words = [1, 0, old_len, 0, new_len, frame.len() as u64];
            raw(3, &[&op(OP_ZREF, &words, frame), &end])
        };
        let mut zcases: Vec<(Vec<u8>, &str)> = vec![
            (
                zref(MAX_REF as u64 + 1, 3, &frame),
                "delta: malformed: zstd-ref segment beyond its limits",
            ),
            (
                zref(10, 3, b"not a zstd frame"),
                "delta: malformed: zstd-ref frame does not decode",
            ),
            (
                zref(10, 3, &frame),
                "delta: malformed: zstd-ref frame decodes to another length",
            ),
            (
                zref(11, 3, &frame),
                "delta: reads old layer up to byte 11, past its size 10",
            ),
        ];
        let mut many = vec![MAX_REF_RANGES as u64 + 1];
        many.extend([0, 1].repeat(MAX_REF_RANGES + 1));
        many.extend([0, 3, frame.len() as u64]);
        zcases.push((
            raw(3, &[&op(OP_ZREF, &many, &frame), &end]),
            "delta: malformed: zstd-ref segment beyond its limits",
        ));
        for (delta, message) in zcases {
            let e = run(&dir, &old, &delta, t).map(|_| ()).unwrap_err();
            assert!(e.to_string().starts_with(message), "{e} / {message}");
        }
        // A frame of more bytes than the op says (here more than
        // MAX_SEGMENT) is refused before its excess is written.
        let big = vec![7u8; 2 * MAX_SEGMENT];
        let big_frame = zstd::bulk::compress(&big, 3).unwrap();
        let e = run(&dir, &old, &zref(0, 3, &big_frame), t)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "delta: malformed: zstd-ref frame decodes to another length"
        );
        // A frame cut short inside its op, and one shorter than its op says.
        let e = run(&dir, &old, &zref(10, 3, &frame[..frame.len() - 2]), t).unwrap_err();
        assert!(e.to_string().starts_with("delta: "), "{e}");
        let words = [1, 0, 10, 0, 3, frame.len() as u64 + 1];
        let longer = raw(
            3,
            &[&op(OP_ZREF, &words, &[&frame[..], b"x"].concat()), &end],
        );
        let e = run(&dir, &old, &longer, t).unwrap_err();
        assert!(
            e.to_string().starts_with("delta: malformed: zstd-ref"),
            "{e}"
        );
        // And hand-made valid ones, to show the cases above fail for their reason.
        let prefixed = {
            let mut cctx = zstd::zstd_safe::CCtx::create();
            cctx.ref_prefix(&old[..]).unwrap();
            let mut frame = Vec::with_capacity(64);
            cctx.compress2(&mut frame, b"abc").unwrap();
            frame
        };
        assert_eq!(run(&dir, &old, &zref(10, 3, &prefixed), t).unwrap(), new);
        let ok = raw(
            3,
            &[
                &op(OP_COPY, &[0, 0], b""),
                &op(OP_LITERAL, &[3], b"abc"),
                &end,
            ],
        );
        assert_eq!(run(&dir, &old, &ok, t).unwrap(), new);
    }

    #[test]
    fn hostile_patch_ops_are_refused_and_valid_ones_see_old_and_output() {
        let dir = Dir::new("hostile-patch");
        let old = b"0123456789".repeat(20);
        let frame = |prefix: &[u8], data: &[u8]| make::patch_frame(prefix, data).unwrap();
        let patch =
            |new_len: u64, frame: &[u8]| op(OP_PATCH, &[new_len, frame.len() as u64], frame);
        let end = [OP_END];
        // A frame after a literal: its prefix is the old layer and "xyz".
        let data = b"4567890123456789xyz4567890123456789xyz".to_vec();
        let prefixed = frame(&[&old[..], b"xyz"].concat(), &data);
        let new = [&b"xyz"[..], &data].concat();
        let t = target(&new);
        let lit = op(OP_LITERAL, &[3], b"xyz");
        let ok = raw(
            new.len() as u64,
            &[&lit, &patch(data.len() as u64, &prefixed), &end],
        );
        assert_eq!(run(&dir, &old, &ok, t).unwrap(), new);
        // The same frame without the literal before it misses its prefix.
        let n = data.len() as u64;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                raw(new.len() as u64, &[&lit, &patch(n + 1, &prefixed), &end]),
                "delta: produces",
            ),
            (
                raw(new.len() as u64, &[&lit, &patch(n - 1, &prefixed), &end]),
                "delta: malformed: zstd frame's content size is not the op's",
            ),
            (
                raw(
                    new.len() as u64,
                    &[
                        &lit,
                        &op(
                            OP_PATCH,
                            &[n, prefixed.len() as u64 + 1],
                            &[&prefixed[..], b"x"].concat(),
                        ),
                        &end,
                    ],
                ),
                "delta: malformed: bytes after the zstd frame",
            ),
            (
                raw(
                    new.len() as u64,
                    &[
                        &lit,
                        &op(OP_PATCH, &[n, prefixed.len() as u64 + 9], &prefixed),
                    ],
                ),
                "delta: ",
            ),
            (
                raw(
                    new.len() as u64,
                    &[
                        &lit,
                        &op(
                            OP_PATCH,
                            &[n, prefixed.len() as u64 - 1],
                            &prefixed[..prefixed.len() - 1],
                        ),
                        &end,
                    ],
                ),
                "delta: malformed: zstd",
            ),
        ];
        for (delta, message) in cases {
            let e = run(&dir, &old, &delta, t).map(|_| ()).unwrap_err();
            assert!(e.to_string().starts_with(message), "{e} / {message}");
        }
        // A frame made against a longer old layer reaches before this one.
        let long_old = Rng(15).bytes(100_000);
        let far = frame(&long_old, &long_old[..50_000]);
        assert!(far.len() < 1000, "{} bytes: no match", far.len());
        let delta = raw(50_000, &[&patch(50_000, &far), &end]);
        let short = &long_old[50_000..];
        let t = target(&long_old[..50_000]);
        let e = run(&dir, short, &delta, t).map(|_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "delta: malformed: zstd match before the start of the prefix"
        );
        assert_eq!(run(&dir, &long_old, &delta, t).unwrap(), long_old[..50_000]);
    }

    #[test]
    fn hostile_gzip_ops_are_refused_before_they_write_past_their_length() {
        let dir = Dir::new("hostile-gzip");
        let content = b"hello hello hello hello".to_vec();
        let mut old = Vec::new();
        deflate::deflate(&content, 9, &mut old).unwrap();
        let mut new = Vec::new();
        deflate::deflate(b"hello world", 9, &mut new).unwrap();
        let t = target(&new);
        let mut patch = Vec::new();
        bsdiff::diff(&content, b"hello world", &mut patch).unwrap();
        let (old_len, new_len) = (old.len() as u64, new.len() as u64);
        // offset, old_len, old_raw_len, level, raw_len, new_len
        let gzip = |words: [u64; 6], patch: &[u8]| {
            let words = [&words[..], &[patch.len() as u64]].concat();
            raw(new_len, &[&op(OP_GZIP, &words, patch), &[OP_END]])
        };
        let max = MAX_INFLATED as u64;
        let cases: Vec<([u64; 6], &[u8], &str)> = vec![
            (
                [0, old_len, 23, 0, 11, new_len],
                &patch,
                "delta: malformed: gzip op with a level outside 1..9",
            ),
            (
                [0, old_len, 23, 10, 11, new_len],
                &patch,
                "delta: malformed: gzip op with a level outside 1..9",
            ),
            (
                [0, old_len, max + 1, 9, 11, new_len],
                &patch,
                "delta: malformed: gzip op beyond its limits",
            ),
            (
                [0, old_len, 23, 9, max + 1, new_len],
                &patch,
                "delta: malformed: gzip op beyond its limits",
            ),
            (
                [0, old_len + 1, 23, 9, 11, new_len],
                &patch,
                "delta: reads old layer up to byte",
            ),
            (
                [0, old_len, 22, 9, 11, new_len],
                &patch,
                "delta: malformed: gzip op's old data does not inflate",
            ),
            (
                [0, old_len, 24, 9, 11, new_len],
                &patch,
                "delta: malformed: gzip op's old data does not inflate",
            ),
            (
                [0, old_len - 1, 23, 9, 11, new_len],
                &patch,
                "delta: malformed: gzip op's old data does not inflate",
            ),
            (
                [1, old_len - 1, 23, 9, 11, new_len],
                &patch,
                "delta: malformed: gzip op's old data does not inflate",
            ),
            (
                [0, old_len, 23, 9, 11, new_len - 1],
                &patch,
                "delta: malformed: gzip op deflates to another length",
            ),
            (
                [0, old_len, 23, 9, 11, new_len + 1],
                &patch,
                "delta: produces",
            ),
            (
                [0, old_len, 23, 9, 12, new_len],
                &patch,
                "delta: malformed: bsdiff patch ends before its output",
            ),
            (
                [0, old_len, 23, 9, 11, new_len],
                &patch[..patch.len() - 1],
                "delta: ",
            ),
        ];
        for (words, patch, message) in cases {
            let e = run(&dir, &old, &gzip(words, patch), t)
                .map(|_| ())
                .unwrap_err();
            assert!(
                e.to_string().starts_with(message),
                "{words:?}: {e} / {message}"
            );
        }
        // The valid op, to show the cases above fail for their reason.
        let ok = gzip([0, old_len, 23, 9, 11, new_len], &patch);
        assert_eq!(run(&dir, &old, &ok, t).unwrap(), new);
    }

    /// `data` in one zstd frame whose header asks for a 2^`window_log` window.
    fn compress_with_window(data: &[u8], window_log: u32) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(window_log).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_frame_asking_for_a_larger_window_is_refused_before_decoding() {
        let dir = Dir::new("window");
        let old = b"0123456789".to_vec();
        let new = b"abc".to_vec();
        let mut stream = MAGIC.to_vec();
        stream.extend_from_slice(&3u64.to_le_bytes());
        stream.extend_from_slice(&op(OP_LITERAL, &[3], b"abc"));
        stream.push(OP_END);
        // The largest window allowed decodes; one step more is refused.
        let fits = compress_with_window(&stream, WINDOW_LOG);
        assert_eq!(run(&dir, &old, &fits, target(&new)).unwrap(), new);
        let wide = compress_with_window(&stream, WINDOW_LOG + 1);
        let e = run(&dir, &old, &wide, target(&new)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "delta: a zstd frame needs a 4194304-byte window, more than 2097152"
        );
        // A header alone (window descriptor 2^31 bytes): refused as it is read.
        let huge = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3];
        let e = run(&dir, &old, &huge, target(&new)).unwrap_err();
        assert!(
            matches!(e, DeltaError::Window { found, .. } if found == 1 << 31),
            "{e}"
        );
        // A single-segment frame's window is its content size (4 bytes here).
        let single = [
            &[0x28, 0xb5, 0x2f, 0xfd, 0xa0][..],
            &(5u32 << 20).to_le_bytes(),
        ]
        .concat();
        let e = run(&dir, &old, &single, target(&new)).unwrap_err();
        assert!(
            matches!(e, DeltaError::Window { found, .. } if found == 5 << 20),
            "{e}"
        );
        // The same for a `ZREF` segment's frame.
        let frame = compress_with_window(b"abc", WINDOW_LOG + 1);
        let words = [1, 0, 10, 0, 3, frame.len() as u64];
        let delta = raw(3, &[&op(OP_ZREF, &words, &frame), &[OP_END]]);
        let e = run(&dir, &old, &delta, target(&new)).unwrap_err();
        assert!(matches!(e, DeltaError::Window { .. }), "{e}");
    }

    #[test]
    fn bytes_after_the_frame_are_refused() {
        let dir = Dir::new("trailing");
        let old = b"0123456789".to_vec();
        let new = b"abc".to_vec();
        let delta = raw(3, &[&op(OP_LITERAL, &[3], b"abc"), &[OP_END]]);
        assert_eq!(run(&dir, &old, &delta, target(&new)).unwrap(), new);
        // A second frame, or garbage, after the delta's one frame.
        for tail in [compress(b"more").unwrap(), b"x".to_vec()] {
            let e = run(&dir, &old, &[&delta[..], &tail].concat(), target(&new)).unwrap_err();
            assert_eq!(
                e.to_string(),
                "delta: malformed: bytes after the zstd frame"
            );
        }
        // Inside a `ZREF` op: the segment's frame is exactly one frame.
        let frame = [zstd::bulk::compress(b"abc", 3).unwrap(), b"x".to_vec()].concat();
        let words = [0, 0, 3, frame.len() as u64];
        let delta = raw(3, &[&op(OP_ZREF, &words, &frame), &[OP_END]]);
        let e = run(&dir, &old, &delta, target(&new)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "delta: malformed: zstd-ref frame does not decode"
        );
    }

    #[test]
    fn the_margin_keeps_no_delta_for_unrelated_layers() {
        let mut rng = Rng(9);
        let old = tar(&[Member::File("a", &rng.bytes(20_000))]);
        let new = tar(&[Member::File("a", &rng.bytes(20_000))]);
        let full = compress(&new).unwrap().len() as u64;
        assert_eq!(make::best(&old, &new, full, &Algorithm::ALL).unwrap(), None);
    }
}
