//! gzip streams (RFC 1952): image layers and `/proc/config.gz`.
//!
//! The deflate data is inflated by `miniz_oxide`; the member framing is
//! parsed here: a header (magic, method, flags, and the optional extra
//! field, file name, comment and header CRC), the deflate data, and a
//! trailer whose CRC-32 and size (modulo 2^32) must match what was
//! inflated. Members follow one another (`pigz`, concatenated files) until
//! the input ends. flate2 did the same with a 16 KB table-driven CRC; this
//! one takes a 1 KB table and cost armv7's husk about 20 KB less.
//!
//! The CRC is checked although a layer's diff_id (sha256 of the tar) is
//! checked too: `/proc/config.gz` has no digest, and a corrupt member is
//! better named as such than as a digest mismatch.

use std::io::{self, BufRead, Read};

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// The first two bytes of every member.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The only compression method: deflate.
const METHOD_DEFLATE: u8 = 8;
/// Header flags.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED: u8 = 0xe0;

/// A reader of the decompressed bytes of every member of a gzip stream.
pub struct Decoder<R> {
    inner: R,
    state: Box<InflateState>,
    part: Part,
    crc: u32,
    size: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Before a member's header (the first, or after a trailer).
    Header { first: bool },
    /// In a member's deflate data.
    Data,
    /// Every member read, and the input ended.
    End,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn cut_short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "gzip: stream cut short")
}

impl<R: BufRead> Decoder<R> {
    /// A decoder of the gzip stream `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: InflateState::new_boxed(DataFormat::Raw),
            part: Part::Header { first: true },
            crc: 0,
            size: 0,
        }
    }

    /// Exactly `buf.len()` bytes of framing; the stream ending first is an error.
    fn framing(&mut self, buf: &mut [u8], header_crc: &mut u32) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => cut_short(),
            _ => e,
        })?;
        *header_crc = crc32_update(*header_crc, buf);
        Ok(())
    }

    /// Reads a member's header; false when the input ended before another member.
    fn header(&mut self, first: bool) -> io::Result<bool> {
        if !first && self.inner.fill_buf()?.is_empty() {
            return Ok(false);
        }
        let mut crc = 0;
        let mut fixed = [0u8; 10];
        // The magic first: what follows a member may be short garbage.
        self.framing(&mut fixed[..2], &mut crc)?;
        if fixed[..2] != MAGIC {
            return Err(invalid("gzip: not a gzip member (bad magic)"));
        }
        self.framing(&mut fixed[2..], &mut crc)?;
        if fixed[2] != METHOD_DEFLATE {
            return Err(invalid("gzip: compression method is not deflate"));
        }
        let flags = fixed[3];
        if flags & RESERVED != 0 {
            return Err(invalid("gzip: reserved header flags are set"));
        }
        if flags & FEXTRA != 0 {
            let mut len = [0u8; 2];
            self.framing(&mut len, &mut crc)?;
            let mut left = u16::from_le_bytes(len);
            let mut chunk = [0u8; 64];
            while left > 0 {
                let n = usize::from(left).min(chunk.len());
                self.framing(&mut chunk[..n], &mut crc)?;
                left -= n as u16;
            }
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                // Zero-terminated, of any length: skipped a byte at a time.
                let mut byte = [0xffu8];
                while byte[0] != 0 {
                    self.framing(&mut byte, &mut crc)?;
                }
            }
        }
        if flags & FHCRC != 0 {
            let expected = crc & 0xffff;
            let mut stored = [0u8; 2];
            self.framing(&mut stored, &mut crc)?;
            if u32::from(u16::from_le_bytes(stored)) != expected {
                return Err(invalid("gzip: header CRC does not match"));
            }
        }
        self.state.reset(DataFormat::Raw);
        self.crc = 0;
        self.size = 0;
        Ok(true)
    }

    /// Reads a member's trailer and checks it against what was inflated.
    fn trailer(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        self.framing(&mut trailer, &mut 0)?;
        let [c0, c1, c2, c3, s0, s1, s2, s3] = trailer;
        if u32::from_le_bytes([c0, c1, c2, c3]) != self.crc {
            return Err(invalid("gzip: data CRC does not match the trailer"));
        }
        if u32::from_le_bytes([s0, s1, s2, s3]) != self.size {
            return Err(invalid("gzip: data size does not match the trailer"));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.part {
                Part::End => return Ok(0),
                Part::Header { first } => {
                    self.part = if self.header(first)? {
                        Part::Data
                    } else {
                        Part::End
                    };
                }
                Part::Data => {
                    let input = self.inner.fill_buf()?;
                    let at_end = input.is_empty();
                    let result = inflate(&mut self.state, input, buf, MZFlush::None);
                    self.inner.consume(result.bytes_consumed);
                    let out = &buf[..result.bytes_written];
                    self.crc = crc32_update(self.crc, out);
                    self.size = self.size.wrapping_add(out.len() as u32);
                    match result.status {
                        Ok(MZStatus::StreamEnd) => {
                            self.trailer()?;
                            self.part = Part::Header { first: false };
                        }
                        Ok(_) | Err(MZError::Buf) => {
                            if out.is_empty() && result.bytes_consumed == 0 {
                                return Err(if at_end {
                                    cut_short()
                                } else {
                                    invalid("gzip: corrupt deflate data")
                                });
                            }
                        }
                        Err(_) => return Err(invalid("gzip: corrupt deflate data")),
                    }
                    if !out.is_empty() {
                        return Ok(out.len());
                    }
                }
            }
        }
    }
}

/// CRC-32 (IEEE, reflected, as gzip uses), one byte at a time from a 1 KB table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32 of the bytes whose CRC so far is `crc` followed by `data`.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    fn decode(stream: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Decoder::new(stream).read_to_end(&mut out)?;
        Ok(out)
    }

    fn error(stream: &[u8]) -> String {
        decode(stream).unwrap_err().to_string()
    }

    /// Text that compresses, longer than miniz's 32 KiB window.
    fn text() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("line {} of {}\n", i % 977, i % 13).into_bytes())
            .collect()
    }

    #[test]
    fn crc32_is_gzip_s() {
        assert_eq!(crc32_update(0, b""), 0);
        assert_eq!(crc32_update(0, b"123456789"), 0xcbf4_3926);
        let split = crc32_update(crc32_update(0, b"12345"), b"6789");
        assert_eq!(split, 0xcbf4_3926);
    }

    #[test]
    fn members_decode_in_order_whatever_the_read_size() {
        let (a, b) = (text(), b"second member\n".to_vec());
        let stream = [gzip(&a), gzip(b""), gzip(&b)].concat();
        assert_eq!(decode(&stream).unwrap(), [&a[..], &b[..]].concat());
        // One byte at a time: the same bytes.
        let mut decoder = Decoder::new(&stream[..]);
        let mut out = Vec::new();
        let mut byte = [0u8];
        while decoder.read(&mut byte).unwrap() == 1 {
            out.push(byte[0]);
        }
        assert_eq!(out, [&a[..], &b[..]].concat());
        assert_eq!(decode(&gzip(b"")).unwrap(), b"");
    }

    #[test]
    fn optional_header_fields_are_skipped_and_the_header_crc_checked() {
        let plain = gzip(b"payload");
        let body = &plain[10..];
        let mut header = vec![0x1f, 0x8b, 8, FEXTRA | FNAME | FCOMMENT | FHCRC];
        header.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
        header.extend_from_slice(&[70, 0]);
        header.extend(std::iter::repeat_n(b'x', 70));
        header.extend_from_slice(b"name.tar\0a comment\0");
        let crc = crc32_update(0, &header) as u16;
        let good = [&header[..], &crc.to_le_bytes(), body].concat();
        assert_eq!(decode(&good).unwrap(), b"payload");
        let bad = [&header[..], &(crc ^ 1).to_le_bytes(), body].concat();
        assert_eq!(error(&bad), "gzip: header CRC does not match");
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = gzip(b"payload");
        let with = |at: usize, value: u8| {
            let mut s = good.clone();
            s[at] = value;
            s
        };
        assert_eq!(error(&with(1, 0x8c)), "gzip: not a gzip member (bad magic)");
        assert_eq!(
            error(&with(2, 7)),
            "gzip: compression method is not deflate"
        );
        assert_eq!(error(&with(3, 0x20)), "gzip: reserved header flags are set");
        // Something after a member that is not another member.
        let trailing = [&good[..], b"garbage"].concat();
        assert_eq!(error(&trailing), "gzip: not a gzip member (bad magic)");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let stream = [gzip(&text()), gzip(b"second")].concat();
        let first_len = gzip(&text()).len();
        for cut in (0..stream.len()).filter(|&c| c % 97 == 0 || c > stream.len() - 30) {
            // Ending exactly between two members is a whole stream of one member.
            if cut == first_len {
                continue;
            }
            let e = decode(&stream[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
            assert_eq!(e.to_string(), "gzip: stream cut short", "cut at {cut}");
        }
        assert_eq!(decode(&stream[..first_len]).unwrap(), text());
    }

    #[test]
    fn the_trailer_must_match_the_data() {
        let good = gzip(&text());
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 1;
        assert_eq!(error(&crc), "gzip: data CRC does not match the trailer");
        let mut size = good.clone();
        size[n - 1] ^= 1;
        assert_eq!(error(&size), "gzip: data size does not match the trailer");
        let mut data = good;
        data[n / 2] ^= 0x10;
        let e = error(&data);
        assert!(
            e == "gzip: corrupt deflate data" || e == "gzip: data CRC does not match the trailer",
            "{e}"
        );
    }
}
