//! A zstd frame decoder (RFC 8878) whose window is on disk: the decoder of
//! the `PATCH` op, whose frame was compressed against the whole old layer
//! as a prefix (`zstd --patch-from`), so its matches reach anywhere in the
//! old layer and in the new layer written so far.
//!
//! ruzstd, like the C decoder, holds the window in memory: for a prefix of
//! the whole old layer that is the old layer's size plus the new one's.
//! This decoder keeps only the last [`TAIL`] to 2 x [`TAIL`] bytes of
//! output in memory and reads a match that reaches further back from the
//! [`History`]: the old layer or the output file, by positioned reads. Its
//! memory is that tail, one compressed block, one block of literals and the
//! entropy tables ([`MEMORY`]), whatever the window the frame's header names.
//!
//! Everything the format allows is decoded: raw, RLE and compressed blocks;
//! raw, RLE, Huffman (one or four streams, its weights direct or
//! FSE-compressed) and treeless literals; predefined, RLE, FSE and repeated
//! sequence tables; repeat offsets. Not accepted: dictionaries named by id
//! (a prefix needs none), skippable frames, and more than one frame. A
//! frame's content checksum is skipped: the delta's sha256 is checked
//! before, and the result's after. Every length, offset and table is
//! checked before it is used: a corrupted frame is an error
//! ([`DeltaError::Malformed`]), never a panic or a read outside the prefix
//! and the output.

use std::io::Read;

use super::DeltaError;

/// Output kept in memory for near matches, at least (at most twice this).
pub const TAIL: usize = 256 << 10;
/// Largest block, compressed or decoded (zstd's `Block_Maximum_Size`).
const BLOCK: usize = 128 << 10;
/// Bytes read from the history at once.
const READ: usize = 64 << 10;
/// Heap memory of a decoder: its tail (and a block's worth appended before
/// it is trimmed), a compressed block, its literals, the read buffer and
/// the entropy tables, rounded up.
pub const MEMORY: u64 = (2 * TAIL + 3 * BLOCK + READ + 32 * 1024) as u64;

const MAGIC: u32 = 0xFD2F_B528;
const MAX_HUFFMAN_LOG: u32 = 11;
const LL_MAX_LOG: u32 = 9;
const ML_MAX_LOG: u32 = 9;
const OF_MAX_LOG: u32 = 8;
const LL_MAX_SYMBOL: usize = 35;
const ML_MAX_SYMBOL: usize = 52;
const OF_MAX_SYMBOL: usize = 31;

const LL_DEFAULT: [i16; 36] = [
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
    -1, -1, -1, -1,
];
const ML_DEFAULT: [i16; 53] = [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
const OF_DEFAULT: [i16; 29] = [
    1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];

/// Baseline and extra bits of literal length codes 16 to 35 (0 to 15 are
/// their own value).
const LL_CODES: [(u32, u32); 20] = [
    (16, 1),
    (18, 1),
    (20, 1),
    (22, 1),
    (24, 2),
    (28, 2),
    (32, 3),
    (40, 3),
    (48, 4),
    (64, 6),
    (128, 7),
    (256, 8),
    (512, 9),
    (1024, 10),
    (2048, 11),
    (4096, 12),
    (8192, 13),
    (16384, 14),
    (32768, 15),
    (65536, 16),
];
/// Baseline and extra bits of match length codes 32 to 52 (0 to 31 are
/// their value plus 3).
const ML_CODES: [(u32, u32); 21] = [
    (35, 1),
    (37, 1),
    (39, 1),
    (41, 1),
    (43, 2),
    (47, 2),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 5),
    (131, 7),
    (259, 8),
    (515, 9),
    (1027, 10),
    (2051, 11),
    (4099, 12),
    (8195, 13),
    (16387, 14),
    (32771, 15),
    (65539, 16),
];

/// What the frame's matches read and its output goes to. Positions count
/// from the start of the prefix: the prefix is `0..prefix_len`, the frame's
/// output follows it.
pub trait History {
    /// Fills `buf` from `pos`. Only bytes already passed to [`History::write`]
    /// past the prefix are asked for, and a read never spans the prefix's end.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), DeltaError>;
    /// Appends decoded bytes to the output.
    fn write(&mut self, data: &[u8]) -> Result<(), DeltaError>;
}

/// A prefix and an output in memory: the publisher's check of its frames.
#[cfg(any(test, feature = "publish"))]
pub struct InMemory<'a> {
    pub prefix: &'a [u8],
    pub out: &'a mut Vec<u8>,
}

#[cfg(any(test, feature = "publish"))]
impl History for InMemory<'_> {
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        let (pos, end) = (pos as usize, pos as usize + buf.len());
        let p = self.prefix.len();
        let from = if end <= p {
            self.prefix.get(pos..end)
        } else {
            self.out
                .get(pos.wrapping_sub(p)..end - p)
                .filter(|_| pos >= p)
        };
        buf.copy_from_slice(from.ok_or(bad("zstd frame reads outside its history"))?);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), DeltaError> {
        self.out.extend_from_slice(data);
        Ok(())
    }
}

fn bad(what: &'static str) -> DeltaError {
    DeltaError::Malformed(what)
}

/// Decodes the one zstd frame that `frame` holds, exactly (no byte after
/// it), into exactly `new_len` bytes, its matches reaching back into
/// `prefix_len` bytes of prefix before its output.
pub fn decode(
    frame: &mut impl Read,
    prefix_len: u64,
    new_len: u64,
    history: &mut impl History,
) -> Result<(), DeltaError> {
    let mut d = Decoder {
        block: Vec::with_capacity(BLOCK),
        literals: Vec::with_capacity(BLOCK),
        read: vec![0; READ],
        huffman: None,
        ll: None,
        of: None,
        ml: None,
        reps: [1, 4, 8],
        tail: Vec::with_capacity(2 * TAIL + BLOCK),
        tail_start: prefix_len,
        flushed: prefix_len,
        end: prefix_len
            .checked_add(new_len)
            .ok_or(bad("zstd frame too long"))?,
        prefix: prefix_len,
    };
    d.frame(frame, history)?;
    d.flush(history)?;
    if d.out() != d.end {
        return Err(bad("zstd frame decodes to another length"));
    }
    if frame.read(&mut [0u8; 1]).map_err(DeltaError::ReadDelta)? != 0 {
        return Err(bad("bytes after the zstd frame"));
    }
    Ok(())
}

struct Decoder {
    block: Vec<u8>,
    literals: Vec<u8>,
    read: Vec<u8>,
    huffman: Option<Huffman>,
    ll: Option<Fse>,
    of: Option<Fse>,
    ml: Option<Fse>,
    reps: [u64; 3],
    /// The last bytes of output, from position `tail_start`.
    tail: Vec<u8>,
    tail_start: u64,
    /// Output before this position has been written to the history.
    flushed: u64,
    /// Where the output must end.
    end: u64,
    /// The prefix's length: where the output starts.
    prefix: u64,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), DeltaError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad("zstd frame truncated"),
        _ => DeltaError::ReadDelta(e),
    })
}

impl Decoder {
    fn out(&self) -> u64 {
        self.tail_start + self.tail.len() as u64
    }

    fn frame(&mut self, r: &mut impl Read, history: &mut impl History) -> Result<(), DeltaError> {
        let mut head = [0u8; 5];
        read_exact(r, &mut head)?;
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != MAGIC {
            return Err(bad("not a zstd frame"));
        }
        let descriptor = head[4];
        let fcs_flag = descriptor >> 6;
        let single_segment = descriptor & 0x20 != 0;
        let checksum = descriptor & 0x04 != 0;
        if descriptor & 0x08 != 0 {
            return Err(bad("zstd frame header's reserved bit set"));
        }
        if descriptor & 0x03 != 0 {
            return Err(bad("zstd frame names a dictionary"));
        }
        let fcs_len = match (fcs_flag, single_segment) {
            (0, false) => 0,
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let mut rest = [0u8; 9];
        let rest = &mut rest[..usize::from(!single_segment) + fcs_len];
        read_exact(r, rest)?;
        let fcs = &rest[usize::from(!single_segment)..];
        if !fcs.is_empty() {
            let mut le = [0u8; 8];
            le[..fcs.len()].copy_from_slice(fcs);
            let size = u64::from_le_bytes(le) + if fcs.len() == 2 { 256 } else { 0 };
            if size != self.end - self.prefix {
                return Err(bad("zstd frame's content size is not the op's"));
            }
        }
        loop {
            let mut header = [0u8; 3];
            read_exact(r, &mut header)?;
            let header = u32::from_le_bytes([header[0], header[1], header[2], 0]);
            let last = header & 1 != 0;
            let size = (header >> 3) as usize;
            if size > BLOCK {
                return Err(bad("zstd block larger than 128 KiB"));
            }
            let kind = (header >> 1) & 3;
            match kind {
                0 | 2 => {
                    self.block.resize(size, 0);
                    read_exact(r, &mut self.block)?;
                }
                1 => {
                    let mut byte = [0u8; 1];
                    read_exact(r, &mut byte)?;
                    self.block.clear();
                    self.block.resize(size, byte[0]);
                }
                _ => return Err(bad("zstd block of the reserved type")),
            }
            // Raw and RLE blocks are their output; the buffer is lent out
            // while the block is decoded.
            let block = std::mem::take(&mut self.block);
            let decoded = if kind == 2 {
                self.compressed(&block, history)
            } else {
                self.push(&block, history)
            };
            self.block = block;
            decoded?;
            if last {
                break;
            }
        }
        if checksum {
            read_exact(r, &mut [0u8; 4])?;
        }
        Ok(())
    }

    /// Appends output, writing out all but the last [`TAIL`] bytes when the
    /// tail reaches twice that.
    fn push(&mut self, data: &[u8], history: &mut impl History) -> Result<(), DeltaError> {
        if self.out() + data.len() as u64 > self.end {
            return Err(bad("zstd frame decodes to more than its length"));
        }
        self.tail.extend_from_slice(data);
        self.trim(history)
    }

    fn trim(&mut self, history: &mut impl History) -> Result<(), DeltaError> {
        if self.tail.len() >= 2 * TAIL {
            self.flush(history)?;
            let drop = self.tail.len() - TAIL;
            self.tail.drain(..drop);
            self.tail_start += drop as u64;
        }
        Ok(())
    }

    fn flush(&mut self, history: &mut impl History) -> Result<(), DeltaError> {
        let from = (self.flushed - self.tail_start) as usize;
        history.write(&self.tail[from..])?;
        self.flushed = self.out();
        Ok(())
    }

    /// Appends `len` bytes from `offset` bytes back.
    fn copy_match(
        &mut self,
        offset: u64,
        len: u64,
        history: &mut impl History,
    ) -> Result<(), DeltaError> {
        if offset == 0 || offset > self.out() {
            return Err(bad("zstd match before the start of the prefix"));
        }
        if self.out() + len > self.end {
            return Err(bad("zstd frame decodes to more than its length"));
        }
        let mut left = len;
        while left > 0 {
            let src = self.out() - offset;
            // Pieces of at most `offset` bytes never overlap what they append.
            let n = left.min(offset).min(READ as u64);
            let n = if src >= self.tail_start {
                let at = (src - self.tail_start) as usize;
                self.tail.extend_from_within(at..at + n as usize);
                n
            } else {
                // Up to the tail, and not across the prefix's end.
                let mut n = n.min(self.tail_start - src);
                if src < self.prefix {
                    n = n.min(self.prefix - src);
                }
                let buf = &mut self.read[..n as usize];
                history.read_at(src, buf)?;
                self.tail.extend_from_slice(buf);
                n
            };
            left -= n;
            self.trim(history)?;
        }
        Ok(())
    }
}

impl Decoder {
    /// A compressed block: its literals section, then its sequences.
    fn compressed(&mut self, block: &[u8], history: &mut impl History) -> Result<(), DeltaError> {
        let used = self.literals_section(block)?;
        let block = &block[used..];
        let (count, used) = match *block {
            [] => return Err(bad("zstd block without a sequences section")),
            [0, ..] => (0, 1),
            [b, ..] if b < 128 => (usize::from(b), 1),
            [b, c, ..] if b < 255 => ((usize::from(b - 128) << 8) + usize::from(c), 2),
            [255, c, e, ..] => (usize::from(c) + (usize::from(e) << 8) + 0x7F00, 3),
            _ => return Err(bad("zstd sequences header truncated")),
        };
        let block = &block[used..];
        if count == 0 {
            if !block.is_empty() {
                return Err(bad("zstd bytes after a block's sequences"));
            }
            let literals = std::mem::take(&mut self.literals);
            let pushed = self.push(&literals, history);
            self.literals = literals;
            return pushed;
        }
        let (&modes, mut block) = block
            .split_first()
            .ok_or(bad("zstd sequences header truncated"))?;
        if modes & 3 != 0 {
            return Err(bad("zstd sequences header's reserved bits set"));
        }
        let tables = [
            (modes >> 6, Kind::Ll),
            (modes >> 4 & 3, Kind::Of),
            (modes >> 2 & 3, Kind::Ml),
        ];
        for (mode, kind) in tables {
            let (max_symbol, max_log, default, default_log) = match kind {
                Kind::Ll => (LL_MAX_SYMBOL, LL_MAX_LOG, &LL_DEFAULT[..], 6),
                Kind::Of => (OF_MAX_SYMBOL, OF_MAX_LOG, &OF_DEFAULT[..], 5),
                Kind::Ml => (ML_MAX_SYMBOL, ML_MAX_LOG, &ML_DEFAULT[..], 6),
            };
            let table = match mode {
                0 => Some(Fse::build(default, default_log)?),
                1 => {
                    let (&symbol, rest) = block
                        .split_first()
                        .ok_or(bad("zstd sequences header truncated"))?;
                    block = rest;
                    if usize::from(symbol) > max_symbol {
                        return Err(bad("zstd RLE sequence symbol out of range"));
                    }
                    Some(Fse::rle(symbol))
                }
                2 => {
                    let (table, used) = Fse::read(block, max_symbol, max_log)?;
                    block = &block[used..];
                    Some(table)
                }
                _ => None,
            };
            let slot = match kind {
                Kind::Ll => &mut self.ll,
                Kind::Of => &mut self.of,
                Kind::Ml => &mut self.ml,
            };
            if let Some(table) = table {
                *slot = Some(table);
            } else if slot.is_none() {
                return Err(bad("zstd repeated sequence table before any"));
            }
        }
        self.sequences(block, count, history)
    }

    /// The literals section at the start of `block`: decoded into
    /// `self.literals`, returning its length in the block.
    fn literals_section(&mut self, block: &[u8]) -> Result<usize, DeltaError> {
        let truncated = || bad("zstd literals section truncated");
        let b0 = *block.first().ok_or_else(truncated)?;
        let kind = b0 & 3;
        let format = (b0 >> 2) & 3;
        let byte = |i: usize| block.get(i).copied().map(usize::from).ok_or_else(truncated);
        self.literals.clear();
        if kind < 2 {
            let (size, header) = match format {
                0 | 2 => (usize::from(b0 >> 3), 1),
                1 => (usize::from(b0 >> 4) + (byte(1)? << 4), 2),
                _ => (usize::from(b0 >> 4) + (byte(1)? << 4) + (byte(2)? << 12), 3),
            };
            if size > BLOCK {
                return Err(bad("zstd literals larger than a block"));
            }
            if kind == 0 {
                let raw = block.get(header..header + size).ok_or_else(truncated)?;
                self.literals.extend_from_slice(raw);
                return Ok(header + size);
            }
            let value = *block.get(header).ok_or_else(truncated)?;
            self.literals.resize(size, value);
            return Ok(header + 1);
        }
        let (header, bits) = match format {
            0 | 1 => (3, 10),
            2 => (4, 14),
            _ => (5, 18),
        };
        let mut h: u64 = 0;
        for i in 0..header {
            h |= (byte(i)? as u64) << (8 * i);
        }
        let mask = (1u64 << bits) - 1;
        let size = ((h >> 4) & mask) as usize;
        let compressed = ((h >> (4 + bits)) & mask) as usize;
        if size > BLOCK {
            return Err(bad("zstd literals larger than a block"));
        }
        let mut data = block
            .get(header..header + compressed)
            .ok_or_else(truncated)?;
        if kind == 2 {
            let (table, used) = Huffman::read(data)?;
            self.huffman = Some(table);
            data = &data[used..];
        }
        let table = self
            .huffman
            .as_ref()
            .ok_or(bad("zstd treeless literals before any Huffman table"))?;
        if format == 0 {
            table.decode(data, size, &mut self.literals)?;
        } else {
            let jump = data.get(..6).ok_or_else(truncated)?;
            let sizes = [
                usize::from(u16::from_le_bytes([jump[0], jump[1]])),
                usize::from(u16::from_le_bytes([jump[2], jump[3]])),
                usize::from(u16::from_le_bytes([jump[4], jump[5]])),
            ];
            let mut streams = &data[6..];
            let each = size.div_ceil(4);
            if 3 * each > size {
                return Err(bad("zstd literals too few for four streams"));
            }
            for stream_size in sizes {
                let stream = streams.get(..stream_size).ok_or_else(truncated)?;
                table.decode(stream, each, &mut self.literals)?;
                streams = &streams[stream_size..];
            }
            table.decode(streams, size - 3 * each, &mut self.literals)?;
        }
        Ok(header + compressed)
    }

    /// Decodes and executes `count` sequences from the bitstream `data`.
    fn sequences(
        &mut self,
        data: &[u8],
        count: usize,
        history: &mut impl History,
    ) -> Result<(), DeltaError> {
        let literals = std::mem::take(&mut self.literals);
        let result = self.run_sequences(data, count, &literals, history);
        self.literals = literals;
        result
    }

    fn run_sequences(
        &mut self,
        data: &[u8],
        count: usize,
        literals: &[u8],
        history: &mut impl History,
    ) -> Result<(), DeltaError> {
        let (Some(ll), Some(of), Some(ml)) = (&self.ll, &self.of, &self.ml) else {
            return Err(bad("zstd sequences without their tables"));
        };
        // The tables are small (at most 512 entries); cloning the three
        // lets the loop borrow them beside the output.
        let (ll, of, ml) = (ll.clone(), of.clone(), ml.clone());
        let mut bits = Backward::new(data)?;
        let mut ll_state = bits.read(ll.log) as usize;
        let mut of_state = bits.read(of.log) as usize;
        let mut ml_state = bits.read(ml.log) as usize;
        let block_start = self.out();
        let mut lit = 0usize;
        for i in 0..count {
            let of_code = u32::from(of.table[of_state].symbol);
            let ml_code = usize::from(ml.table[ml_state].symbol);
            let ll_code = usize::from(ll.table[ll_state].symbol);
            if of_code > 31 {
                return Err(bad("zstd offset code out of range"));
            }
            let offset_value = (1u64 << of_code) + bits.read(of_code);
            let (base, extra) = match ml_code {
                0..=31 => (ml_code as u32 + 3, 0),
                c => ML_CODES[c - 32],
            };
            let match_len = u64::from(base) + bits.read(extra);
            let (base, extra) = match ll_code {
                0..=15 => (ll_code as u32, 0),
                c => LL_CODES[c - 16],
            };
            let lit_len = (u64::from(base) + bits.read(extra)) as usize;
            let offset = if offset_value > 3 {
                let offset = offset_value - 3;
                self.reps = [offset, self.reps[0], self.reps[1]];
                offset
            } else {
                let index = offset_value as usize - 1 + usize::from(lit_len == 0);
                let offset = match index {
                    0 => self.reps[0],
                    1 => self.reps[1],
                    2 => self.reps[2],
                    _ => self.reps[0].wrapping_sub(1),
                };
                match index {
                    0 => {}
                    1 => self.reps = [offset, self.reps[0], self.reps[2]],
                    _ => self.reps = [offset, self.reps[0], self.reps[1]],
                }
                offset
            };
            if i + 1 < count {
                ll_state = ll.table[ll_state].next(&mut bits);
                ml_state = ml.table[ml_state].next(&mut bits);
                of_state = of.table[of_state].next(&mut bits);
            }
            let run = literals
                .get(lit..lit + lit_len)
                .ok_or(bad("zstd sequence takes more literals than the block has"))?;
            self.push(run, history)?;
            lit += lit_len;
            self.copy_match(offset, match_len, history)?;
            if self.out() - block_start > BLOCK as u64 {
                return Err(bad("zstd block decodes to more than 128 KiB"));
            }
        }
        if !bits.finished() {
            return Err(bad("zstd sequence bitstream not consumed exactly"));
        }
        self.push(&literals[lit..], history)?;
        if self.out() - block_start > BLOCK as u64 {
            return Err(bad("zstd block decodes to more than 128 KiB"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Ll,
    Of,
    Ml,
}

/// Loads up to 8 bytes from `at` as a little-endian number (zeros past the end).
fn load(data: &[u8], at: usize) -> u64 {
    if let Some(b) = data.get(at..at + 8) {
        return u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    let mut b = [0u8; 8];
    let rest = data.get(at..).unwrap_or(&[]);
    b[..rest.len()].copy_from_slice(rest);
    u64::from_le_bytes(b)
}

fn mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// A bitstream read backwards from its end (Huffman and FSE streams): the
/// last byte's highest set bit marks where it starts. Reading past its start
/// gives zeros and leaves it overflowed.
struct Backward<'a> {
    data: &'a [u8],
    /// Bits not read yet; negative once overflowed.
    left: i64,
}

impl<'a> Backward<'a> {
    fn new(data: &'a [u8]) -> Result<Self, DeltaError> {
        match data.last() {
            Some(&last) if last != 0 => Ok(Self {
                data,
                left: data.len() as i64 * 8 - 1 - i64::from(last.leading_zeros()),
            }),
            _ => Err(bad("zstd bitstream without its end mark")),
        }
    }

    /// The next `n` bits (at most 56), not consumed.
    fn peek(&self, n: u32) -> u64 {
        let lo = self.left - i64::from(n);
        if lo >= 0 {
            (load(self.data, (lo / 8) as usize) >> (lo % 8)) & mask(n)
        } else if self.left > 0 {
            // Bits 0..left of the stream, above the missing ones (zeros).
            (load(self.data, 0) & mask(self.left as u32)) << -lo
        } else {
            0
        }
    }

    fn consume(&mut self, n: u32) {
        self.left -= i64::from(n);
    }

    fn read(&mut self, n: u32) -> u64 {
        let v = self.peek(n);
        self.consume(n);
        v
    }

    fn overflowed(&self) -> bool {
        self.left < 0
    }

    fn finished(&self) -> bool {
        self.left == 0
    }
}

/// A bitstream read forwards, from bit 0 of its first byte (FSE table
/// descriptions).
struct Forward<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Forward<'_> {
    fn peek(&self, n: u32) -> u64 {
        (load(self.data, self.pos / 8) >> (self.pos % 8)) & mask(n)
    }
}

#[derive(Clone, Copy, Default)]
struct FseEntry {
    symbol: u8,
    bits: u8,
    base: u16,
}

impl FseEntry {
    fn next(&self, bits: &mut Backward<'_>) -> usize {
        usize::from(self.base) + bits.read(u32::from(self.bits)) as usize
    }
}

/// An FSE decoding table.
#[derive(Clone)]
struct Fse {
    log: u32,
    table: Vec<FseEntry>,
}

impl Fse {
    fn rle(symbol: u8) -> Self {
        Self {
            log: 0,
            table: vec![FseEntry {
                symbol,
                bits: 0,
                base: 0,
            }],
        }
    }

    /// Reads a table description (normalized counts) from the start of
    /// `data`, returning the table and the bytes it took.
    fn read(data: &[u8], max_symbol: usize, max_log: u32) -> Result<(Self, usize), DeltaError> {
        let mut bits = Forward { data, pos: 0 };
        let log = bits.peek(4) as u32 + 5;
        bits.pos += 4;
        if log > max_log {
            return Err(bad("zstd FSE table accuracy too high"));
        }
        let mut counts = [0i16; 256];
        let mut remaining: i32 = (1 << log) + 1;
        let mut threshold: i32 = 1 << log;
        let mut width = log + 1;
        let mut symbol = 0usize;
        while remaining > 1 {
            if symbol > max_symbol {
                return Err(bad("zstd FSE table has too many symbols"));
            }
            let max = 2 * threshold - 1 - remaining;
            let low = bits.peek(width - 1) as i32;
            let value = if low < max {
                bits.pos += (width - 1) as usize;
                low
            } else {
                let v = bits.peek(width) as i32;
                bits.pos += width as usize;
                if v >= threshold {
                    v - max
                } else {
                    v
                }
            };
            let count = value - 1;
            remaining -= count.abs();
            counts[symbol] = count as i16;
            symbol += 1;
            if count == 0 {
                // Zero counts repeat: 2-bit flags, 3 meaning "and more".
                loop {
                    let repeat = bits.peek(2) as usize;
                    bits.pos += 2;
                    symbol += repeat;
                    if repeat != 3 {
                        break;
                    }
                }
                if symbol > max_symbol + 1 {
                    return Err(bad("zstd FSE table has too many symbols"));
                }
            }
            if bits.pos > data.len() * 8 {
                return Err(bad("zstd FSE table description truncated"));
            }
            while remaining < threshold && threshold > 1 {
                width -= 1;
                threshold >>= 1;
            }
        }
        if remaining != 1 {
            return Err(bad("zstd FSE table's counts do not add up"));
        }
        // Bytes read, counting a partly read one (within `data`: checked
        // after every count).
        let used = bits.pos.div_ceil(8);
        Ok((Self::build(&counts[..symbol], log)?, used))
    }

    /// The decoding table of normalized `counts` (-1: "less than one").
    fn build(counts: &[i16], log: u32) -> Result<Self, DeltaError> {
        let size = 1usize << log;
        let mut table = vec![FseEntry::default(); size];
        let mut next = [0u32; 256];
        let mut high = size - 1;
        for (s, &c) in counts.iter().enumerate() {
            if c == -1 {
                table[high].symbol = s as u8;
                high = high.wrapping_sub(1);
                next[s] = 1;
            } else {
                next[s] = c.max(0) as u32;
            }
        }
        let step = (size >> 1) + (size >> 3) + 3;
        let mut pos = 0usize;
        for (s, &c) in counts.iter().enumerate() {
            for _ in 0..c.max(0) {
                table[pos].symbol = s as u8;
                loop {
                    pos = (pos + step) & (size - 1);
                    if pos <= high {
                        break;
                    }
                }
            }
        }
        if pos != 0 {
            return Err(bad("zstd FSE table's counts do not fill it"));
        }
        for entry in &mut table {
            let state = next[usize::from(entry.symbol)];
            next[usize::from(entry.symbol)] += 1;
            if state == 0 {
                return Err(bad("zstd FSE table's counts do not fill it"));
            }
            let bits = log - (31 - state.leading_zeros());
            entry.bits = bits as u8;
            entry.base = ((state << bits) - size as u32) as u16;
        }
        Ok(Self { log, table })
    }
}

/// A Huffman decoding table of literals: symbol and code length by the next
/// `log` bits.
struct Huffman {
    log: u32,
    table: Vec<(u8, u8)>,
}

impl Huffman {
    /// Reads a Huffman tree description from the start of `data`, returning
    /// the table and the bytes it took.
    fn read(data: &[u8]) -> Result<(Self, usize), DeltaError> {
        let truncated = || bad("zstd Huffman tree description truncated");
        let header = usize::from(*data.first().ok_or_else(truncated)?);
        let mut weights = [0u8; 256];
        let (count, used) = if header >= 128 {
            let count = header - 127;
            let bytes = data.get(1..1 + count.div_ceil(2)).ok_or_else(truncated)?;
            for (i, w) in weights.iter_mut().take(count).enumerate() {
                let b = bytes[i / 2];
                *w = if i % 2 == 0 { b >> 4 } else { b & 15 };
            }
            (count, 1 + count.div_ceil(2))
        } else {
            let data = data.get(1..1 + header).ok_or_else(truncated)?;
            let (fse, used) = Fse::read(data, MAX_HUFFMAN_LOG as usize + 1, 6)?;
            let mut bits = Backward::new(&data[used..])?;
            let mut states = [bits.read(fse.log) as usize, bits.read(fse.log) as usize];
            let mut count = 0;
            // Two interleaved states until the stream overflows; the other
            // state then gives the last weight.
            'decode: loop {
                for s in 0..2 {
                    if count >= 255 {
                        return Err(bad("zstd Huffman tree has too many weights"));
                    }
                    let entry = fse.table[states[s]];
                    weights[count] = entry.symbol;
                    count += 1;
                    states[s] = entry.next(&mut bits);
                    if bits.overflowed() {
                        if count >= 255 {
                            return Err(bad("zstd Huffman tree has too many weights"));
                        }
                        weights[count] = fse.table[states[1 - s]].symbol;
                        count += 1;
                        break 'decode;
                    }
                }
            }
            (count, 1 + header)
        };
        let mut total: u32 = 0;
        for &w in &weights[..count] {
            if u32::from(w) > MAX_HUFFMAN_LOG {
                return Err(bad("zstd Huffman weight too large"));
            }
            if w > 0 {
                total += 1 << (w - 1);
            }
        }
        if total == 0 {
            return Err(bad("zstd Huffman tree without weights"));
        }
        let log = 32 - total.leading_zeros();
        if log > MAX_HUFFMAN_LOG {
            return Err(bad("zstd Huffman codes too long"));
        }
        let rest = (1u32 << log) - total;
        if !rest.is_power_of_two() {
            return Err(bad("zstd Huffman weights do not add up"));
        }
        weights[count] = (rest.trailing_zeros() + 1) as u8;
        let symbols = count + 1;
        // Lowest weights (longest codes) first, each symbol in order.
        let mut start = [0usize; 13];
        let mut next = 0;
        for (w, start) in start.iter_mut().enumerate().take(log as usize + 1).skip(1) {
            *start = next;
            let n = weights[..symbols]
                .iter()
                .filter(|&&x| usize::from(x) == w)
                .count();
            next += n << (w - 1);
        }
        let mut table = vec![(0u8, 0u8); 1 << log];
        for (s, &w) in weights[..symbols].iter().enumerate() {
            if w == 0 {
                continue;
            }
            let w = usize::from(w);
            let len = 1 << (w - 1);
            let bits = (log as usize + 1 - w) as u8;
            table[start[w]..start[w] + len].fill((s as u8, bits));
            start[w] += len;
        }
        Ok((Self { log, table }, used))
    }

    /// Decodes `n` literals from the stream `data` (which they must use
    /// exactly), appending them to `out`.
    fn decode(&self, data: &[u8], n: usize, out: &mut Vec<u8>) -> Result<(), DeltaError> {
        let mut bits = Backward::new(data)?;
        for _ in 0..n {
            let (symbol, len) = self.table[bits.peek(self.log) as usize];
            bits.consume(u32::from(len));
            out.push(symbol);
        }
        if !bits.finished() {
            return Err(bad("zstd Huffman stream not consumed exactly"));
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "publish"))]
mod tests {
    use super::*;
    use crate::delta::test_rng::Rng;
    use zstd::zstd_safe::{CCtx, CParameter};

    fn compress(prefix: &[u8], data: &[u8], params: &[CParameter]) -> Vec<u8> {
        let mut cctx = CCtx::create();
        for &p in params {
            cctx.set_parameter(p).unwrap();
        }
        if !prefix.is_empty() {
            cctx.ref_prefix(prefix).unwrap();
        }
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()) + 64);
        cctx.compress2(&mut frame, data).unwrap();
        frame
    }

    fn decode_all(prefix: &[u8], frame: &[u8], new_len: u64) -> Result<Vec<u8>, DeltaError> {
        let mut out = Vec::new();
        let mut memory = InMemory {
            prefix,
            out: &mut out,
        };
        decode(&mut &frame[..], prefix.len() as u64, new_len, &mut memory)?;
        Ok(out)
    }

    fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "fn ", "let ", "self", "();\n", "mut ", "x", "0", " ", "pub ", "{\n", "}\n", "impl ",
        ];
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            match rng.below(50) {
                0 => out.push(rng.below(256) as u8),
                _ => out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    /// `old` with some of its bytes changed, some cut and some inserted.
    fn edit(rng: &mut Rng, old: &[u8], edits: usize) -> Vec<u8> {
        let mut new = old.to_vec();
        for _ in 0..edits {
            let at = rng.below(new.len() + 1);
            match rng.below(3) {
                0 => {
                    let end = (at + rng.below(64)).min(new.len());
                    new.drain(at..end);
                }
                1 => {
                    let len = rng.below(200);
                    let insert = text(rng, len);
                    new.splice(at..at, insert);
                }
                _ => {
                    if at < new.len() {
                        new[at] ^= 1 + rng.below(255) as u8;
                    }
                }
            }
        }
        new
    }

    fn round_trip(prefix: &[u8], data: &[u8], params: &[CParameter]) {
        let frame = compress(prefix, data, params);
        let out = decode_all(prefix, &frame, data.len() as u64)
            .unwrap_or_else(|e| panic!("{params:?}, {} bytes: {e}", data.len()));
        assert!(out == data, "{params:?}: {} bytes decode wrong", data.len());
    }

    #[test]
    fn frames_of_every_level_decode_as_the_c_decoder_does() {
        let mut rng = Rng(0x5eed_0001);
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![7],
            vec![0; 300_000],
            (0..200_000).map(|_| rng.below(256) as u8).collect(),
            (0..100_000).map(|_| rng.below(4) as u8 + b'a').collect(),
            text(&mut rng, 1000),
            text(&mut rng, 700_000),
        ];
        for data in &inputs {
            for level in [-5, 1, 3, 6, 12, 16, 19, 22] {
                round_trip(&[], data, &[CParameter::CompressionLevel(level)]);
            }
        }
    }

    #[test]
    fn rle_literals_direct_huffman_weights_and_repeated_tables_decode() {
        let mut rng = Rng(0x5eed_0007);
        // Nibbles: few symbols, so the Huffman weights are written directly,
        // and the same distribution in every block, so tables repeat.
        let nibbles: Vec<u8> = (0..600_000).map(|_| rng.below(16) as u8).collect();
        // Pieces of random bytes each followed by one 'Q': every literal after
        // the first block is a 'Q', an RLE literals section.
        let random = rng.bytes(200_000);
        let mut pieces = random.clone();
        while pieces.len() < 700_000 {
            let at = rng.below(random.len() - 600);
            pieces.extend_from_slice(&random[at..at + 50 + rng.below(500)]);
            pieces.push(b'Q');
        }
        for data in [&nibbles, &pieces] {
            for level in [1, 5, 9, 15, 19] {
                round_trip(&[], data, &[CParameter::CompressionLevel(level)]);
            }
        }
    }

    #[test]
    fn matches_reach_across_the_whole_prefix_and_output_beyond_the_tail() {
        let mut rng = Rng(0x5eed_0002);
        // Random bytes match only where they repeat: at 1.5 MiB back in the
        // output, and anywhere in the 3 MiB prefix.
        let random: Vec<u8> = (0..(1536 << 10)).map(|_| rng.below(256) as u8).collect();
        let mut data = random.clone();
        data.extend_from_slice(&random);
        let prefix: Vec<u8> = (0..(3 << 20)).map(|_| rng.below(256) as u8).collect();
        data.extend_from_slice(&prefix[100..(1 << 20)]);
        data.extend_from_slice(&prefix[(2 << 20)..]);
        for level in [3, 19] {
            let params = [
                CParameter::CompressionLevel(level),
                CParameter::WindowLog(24),
                CParameter::EnableLongDistanceMatching(true),
            ];
            let frame = compress(&prefix, &data, &params);
            // Nearly all of it is matches, or it would not compress.
            assert!(frame.len() < random.len() + 100_000, "{}", frame.len());
            let out = decode_all(&prefix, &frame, data.len() as u64).unwrap();
            assert!(out == data);
        }
    }

    #[test]
    fn patch_from_frames_of_edited_text_decode_at_every_level() {
        let mut rng = Rng(0x5eed_0003);
        for (len, edits) in [(10_000, 5), (400_000, 100), (2_000_000, 400)] {
            let old = text(&mut rng, len);
            let new = edit(&mut rng, &old, edits);
            for level in [1, 3, 9, 19, 22] {
                round_trip(
                    &old,
                    &new,
                    &[
                        CParameter::CompressionLevel(level),
                        CParameter::WindowLog(23),
                        CParameter::EnableLongDistanceMatching(level > 9),
                    ],
                );
            }
        }
    }

    #[test]
    fn a_frame_with_a_checksum_or_single_segment_header_decodes() {
        let mut rng = Rng(0x5eed_0004);
        let data = text(&mut rng, 50_000);
        for params in [
            [
                CParameter::ChecksumFlag(true),
                CParameter::ContentSizeFlag(true),
            ],
            [
                CParameter::ChecksumFlag(false),
                CParameter::ContentSizeFlag(false),
            ],
        ] {
            round_trip(&[], &data, &params);
        }
    }

    #[test]
    fn truncated_frames_and_wrong_lengths_are_refused() {
        let mut rng = Rng(0x5eed_0005);
        let old = text(&mut rng, 100_000);
        let new = edit(&mut rng, &old, 50);
        let frame = compress(&old, &new, &[CParameter::CompressionLevel(19)]);
        for cut in 0..frame.len() {
            assert!(
                decode_all(&old, &frame[..cut], new.len() as u64).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(decode_all(&old, &longer, new.len() as u64).is_err());
        for len in [0, new.len() as u64 - 1, new.len() as u64 + 1] {
            assert!(decode_all(&old, &frame, len).is_err(), "{len}");
        }
        // The frame reaches into the prefix: without it, it cannot decode.
        assert!(decode_all(&[], &frame, new.len() as u64).is_err());
    }

    #[test]
    fn corrupted_frames_fail_or_decode_to_something_never_panic() {
        let mut rng = Rng(0x5eed_0006);
        let old = text(&mut rng, 60_000);
        let new = edit(&mut rng, &old, 40);
        let mut frames = vec![
            compress(&old, &new, &[CParameter::CompressionLevel(19)]),
            compress(&old, &new, &[CParameter::CompressionLevel(1)]),
            compress(&[], &new, &[CParameter::CompressionLevel(3)]),
        ];
        frames.push(compress(
            &[],
            &text(&mut rng, 3000),
            &[CParameter::CompressionLevel(19)],
        ));
        let mut refused = 0;
        let mut tried = 0;
        for frame in &frames {
            for _ in 0..3000 {
                let mut bad = frame.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(bad.len());
                    bad[at] ^= 1 << rng.below(8);
                }
                tried += 1;
                if decode_all(&old, &bad, new.len() as u64).is_err() {
                    refused += 1;
                }
            }
        }
        // Most damage is caught by the format itself (the rest by the
        // layer's sha256).
        assert!(refused * 2 > tried, "{refused} of {tried} refused");
    }
}
