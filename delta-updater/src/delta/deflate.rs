//! A DEFLATE compressor (RFC 1951) whose output is, bit for bit, the raw
//! deflate stream GNU gzip 1.12 writes with `gzip -<level> -n` (levels 1 to 9),
//! so that `.gz` files (Debian's docs and changelogs are `gzip -9n`) can be
//! regenerated exactly from their uncompressed content.
//!
//! The algorithm is Jean-loup Gailly's and Mark Adler's: the LZ77 matcher with
//! hash chains and lazy match evaluation of zlib's `deflate.c`, and the
//! Huffman coding of its `trees.c` (zlib, Copyright (C) 1995-2013 Jean-loup
//! Gailly and Mark Adler, zlib licence). This module is written from zlib's
//! sources and RFC 1951; GNU gzip (whose `deflate.c` and `trees.c` descend from
//! the same code) was consulted only for the behaviour in which its deflate
//! differs from zlib's, which this module follows:
//!
//! - Fixed parameters: a 32 KiB window in a 64 KiB buffer, 15 hash bits
//!   (shift 5) and a buffer of 32 Ki symbols (zlib's default is 16 Ki). The
//!   level table (good, lazy, nice, chain) is zlib's; levels 1 to 3 use the
//!   greedy matcher (`deflate_fast`), 4 to 9 lazy evaluation.
//! - A block ends when 32767 symbols (literals or matches) are buffered, or
//!   32768 matches; and, at levels 3 to 9, at every 4096th symbol if fewer
//!   than half of the symbols are matches and an estimate of the compressed
//!   size (8 bits a symbol, 5 plus the extra bits a distance) is under half
//!   of the block's input. zlib has that estimate only under
//!   `TRUNCATE_BLOCK`.
//! - Input: the first read fills the whole 64 KiB buffer; the window slides
//!   by copying the whole upper 32 KiB down once `strstart` reaches
//!   `WSIZE + MAX_DIST`; at the end of the input two zero bytes are written
//!   after the data and the rest of the buffer keeps its old bytes (zeros
//!   before it is first filled). The rolling hash starts once from the first
//!   two bytes and is never reset. (The input is a slice here: every read
//!   returns all it asks for, as gzip's reads of a regular file do.)
//! - Matching: the hash chain is searched only while `strstart <= 2 * WSIZE -
//!   MIN_LOOKAHEAD`; `longest_match` does not cap `nice_match` or its result
//!   at the lookahead (zlib does): near the end it compares bytes past the
//!   input (the zeros and old bytes above), which can decide which of several
//!   candidates is taken, and its caller then cuts the length to the
//!   lookahead. Strings are inserted into the hash table at every position,
//!   up to the end of every match, even where they run past the end of the
//!   input (zlib inserts only strings that lie within it); the greedy matcher
//!   inserts those inside a match only for matches of at most `max_lazy`
//!   bytes.
//! - Blocks: stored if its length plus 4 is at most the smaller of the
//!   dynamic and fixed sizes in bytes and its start is still in the window,
//!   else fixed if not larger than dynamic, else dynamic; never gzip's
//!   "stored file" (it needs a seekable output, which gzip never assumes).
//!   Only the block ending at the end of the input has `BFINAL`; in lazy
//!   mode a literal still pending at the end goes into it whatever the
//!   buffer's state. An empty input is one fixed block holding only the
//!   end-of-block code.
//!
//! gzip's `--rsyncable` is not implemented. Memory is fixed
//! ([`DEFLATE_MEMORY`]) whatever the input; the state on the stack is under
//! a kilobyte.

use std::io::{self, Write};

/// Window size: matches reach at most this far back (less `MIN_LOOKAHEAD`).
const WSIZE: usize = 0x8000;
const WMASK: usize = WSIZE - 1;
/// The window buffer: two windows, input is read into the upper one.
const WINDOW_SIZE: usize = 2 * WSIZE;
/// Bytes allocated beyond the window buffer, never read in practice (a guard
/// against out-of-bounds indexing; gzip reads no byte past its window).
const WINDOW_PAD: usize = 8;
const HASH_BITS: usize = 15;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: usize = HASH_SIZE - 1;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
/// Shift of the rolling hash: after `MIN_MATCH` bytes the oldest is gone.
const H_SHIFT: usize = HASH_BITS.div_ceil(MIN_MATCH);
/// Lookahead kept before a search, except at the end of the input.
const MIN_LOOKAHEAD: usize = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST: usize = WSIZE - MIN_LOOKAHEAD;
/// Matches of length 3 farther than this are dropped (lazy levels).
const TOO_FAR: usize = 4096;
/// Symbols (literals and matches) buffered for a block.
const LIT_BUFSIZE: usize = 0x8000;
/// Matches buffered for a block.
const DIST_BUFSIZE: usize = LIT_BUFSIZE;
/// Output bytes gathered before a write to the sink.
const OUT_BUFSIZE: usize = 0x4000;

const MAX_BITS: usize = 15;
const MAX_BL_BITS: usize = 7;
const LENGTH_CODES: usize = 29;
const LITERALS: usize = 256;
const END_BLOCK: usize = 256;
const L_CODES: usize = LITERALS + 1 + LENGTH_CODES;
const D_CODES: usize = 30;
const BL_CODES: usize = 19;
const HEAP_SIZE: usize = 2 * L_CODES + 1;
/// Repeat the previous code length 3 to 6 times (2 extra bits).
const REP_3_6: usize = 16;
/// Repeat a zero length 3 to 10 times (3 extra bits).
const REPZ_3_10: usize = 17;
/// Repeat a zero length 11 to 138 times (7 extra bits).
const REPZ_11_138: usize = 18;

/// Elements of each dynamic tree (leaves and internal nodes, plus the guard
/// that `scan_tree` writes after the last code).
const LTREE_SIZE: usize = HEAP_SIZE;
const DTREE_SIZE: usize = 2 * D_CODES + 1;
const BLTREE_SIZE: usize = 2 * BL_CODES + 1;
/// A tree is four `u16` arrays (frequency, code, parent, length).
const TREE_BYTES: usize = 4 * 2 * (LTREE_SIZE + DTREE_SIZE + BLTREE_SIZE);

/// Heap bytes `deflate` allocates, whatever the input (its window, hash chains and symbol buffers), for memory budgets.
///
/// The 64 KiB window buffer (plus a few guard bytes), the `prev` and `head`
/// hash chains (32 Ki `u16` each), the symbol buffer (32 KiB of literals or
/// lengths and 32 Ki `u16` distances), the Huffman trees with their heap and
/// depths, and a 16 KiB output buffer: 318,407 bytes.
pub const DEFLATE_MEMORY: u64 = (WINDOW_SIZE
    + WINDOW_PAD
    + 2 * WSIZE
    + 2 * HASH_SIZE
    + LIT_BUFSIZE
    + 2 * LIT_BUFSIZE
    + TREE_BYTES
    + 2 * HEAP_SIZE
    + HEAP_SIZE
    + OUT_BUFSIZE) as u64;

/// Extra bits of each length code.
const EXTRA_LBITS: [u8; LENGTH_CODES] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Extra bits of each distance code.
const EXTRA_DBITS: [u8; D_CODES] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Extra bits of each bit length code.
const EXTRA_BLBITS: [u8; BL_CODES] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
/// The order in which the bit length code lengths are sent (RFC 1951 3.2.7).
static BL_ORDER: [usize; BL_CODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Length code (0..29) of each match length - `MIN_MATCH`, and the first
/// length - `MIN_MATCH` of each code.
const LENGTH_TABLES: ([u8; 256], [u16; LENGTH_CODES]) = length_tables();
static LENGTH_CODE: [u8; 256] = LENGTH_TABLES.0;
static BASE_LENGTH: [u16; LENGTH_CODES] = LENGTH_TABLES.1;
/// Distance code of each distance - 1: entries 0..256 for distances up to
/// 256, entries 256..512 for (distance - 1) >> 7; and the first distance - 1
/// of each code.
const DIST_TABLES: ([u8; 512], [u16; D_CODES]) = dist_tables();
static DIST_CODE: [u8; 512] = DIST_TABLES.0;
static BASE_DIST: [u16; D_CODES] = DIST_TABLES.1;
/// The fixed literal/length code (RFC 1951 3.2.6), codes bit-reversed.
const STATIC_LTREE: ([u16; L_CODES + 2], [u16; L_CODES + 2]) = static_ltree();
static STATIC_LCODE: [u16; L_CODES + 2] = STATIC_LTREE.0;
static STATIC_LLEN: [u16; L_CODES + 2] = STATIC_LTREE.1;
/// The fixed distance code: 5 bits each.
static STATIC_DCODE: [u16; D_CODES] = static_dcode();
static STATIC_DLEN: [u16; D_CODES] = [5; D_CODES];

const fn length_tables() -> ([u8; 256], [u16; LENGTH_CODES]) {
    let mut length_code = [0u8; 256];
    let mut base_length = [0u16; LENGTH_CODES];
    let mut length = 0;
    let mut code = 0;
    while code < LENGTH_CODES - 1 {
        base_length[code] = length as u16;
        let mut n = 0;
        while n < (1 << EXTRA_LBITS[code]) {
            length_code[length] = code as u8;
            length += 1;
            n += 1;
        }
        code += 1;
    }
    // Length 258 (255 here) could be code 284 with 5 extra bits or code 285:
    // the latter is shorter.
    length_code[length - 1] = code as u8;
    (length_code, base_length)
}

const fn dist_tables() -> ([u8; 512], [u16; D_CODES]) {
    let mut dist_code = [0u8; 512];
    let mut base_dist = [0u16; D_CODES];
    let mut dist = 0;
    let mut code = 0;
    while code < 16 {
        base_dist[code] = dist as u16;
        let mut n = 0;
        while n < (1 << EXTRA_DBITS[code]) {
            dist_code[dist] = code as u8;
            dist += 1;
            n += 1;
        }
        code += 1;
    }
    // From here on, distances are divided by 128.
    dist >>= 7;
    while code < D_CODES {
        base_dist[code] = (dist << 7) as u16;
        let mut n = 0;
        while n < (1 << (EXTRA_DBITS[code] - 7)) {
            dist_code[256 + dist] = code as u8;
            dist += 1;
            n += 1;
        }
        code += 1;
    }
    (dist_code, base_dist)
}

/// Reverses the low `len` bits of `code`.
const fn bi_reverse(code: u16, len: usize) -> u16 {
    let mut code = code;
    let mut res = 0u16;
    let mut i = 0;
    while i < len {
        res = (res << 1) | (code & 1);
        code >>= 1;
        i += 1;
    }
    res
}

const fn static_ltree() -> ([u16; L_CODES + 2], [u16; L_CODES + 2]) {
    let mut len = [0u16; L_CODES + 2];
    let mut n = 0;
    while n < L_CODES + 2 {
        len[n] = if n <= 143 {
            8
        } else if n <= 255 {
            9
        } else if n <= 279 {
            7
        } else {
            8
        };
        n += 1;
    }
    let mut bl_count = [0u16; MAX_BITS + 1];
    n = 0;
    while n < L_CODES + 2 {
        bl_count[len[n] as usize] += 1;
        n += 1;
    }
    let mut next_code = [0u16; MAX_BITS + 1];
    let mut code = 0u16;
    let mut bits = 1;
    while bits <= MAX_BITS {
        code = (code + bl_count[bits - 1]) << 1;
        next_code[bits] = code;
        bits += 1;
    }
    let mut codes = [0u16; L_CODES + 2];
    n = 0;
    while n < L_CODES + 2 {
        let l = len[n] as usize;
        codes[n] = bi_reverse(next_code[l], l);
        next_code[l] += 1;
        n += 1;
    }
    (codes, len)
}

const fn static_dcode() -> [u16; D_CODES] {
    let mut codes = [0u16; D_CODES];
    let mut n = 0;
    while n < D_CODES {
        codes[n] = bi_reverse(n as u16, 5);
        n += 1;
    }
    codes
}

/// Distance code of `dist` (the match distance - 1).
fn d_code(dist: usize) -> usize {
    if dist < 256 {
        DIST_CODE[dist] as usize
    } else {
        DIST_CODE[256 + (dist >> 7)] as usize
    }
}

/// One level's parameters.
struct Config {
    /// Reduce the chain searched when the previous match is this long.
    good: usize,
    /// Lazy levels: do not look for a better match after one this long.
    /// Greedy levels: insert the strings of matches at most this long.
    lazy: usize,
    /// Stop searching at a match this long.
    nice: usize,
    /// Longest hash chain searched.
    chain: usize,
}

/// zlib's and gzip's table, indexed by level (0, store only, is unused).
static CONFIGURATION_TABLE: [Config; 10] = [
    Config {
        good: 0,
        lazy: 0,
        nice: 0,
        chain: 0,
    },
    Config {
        good: 4,
        lazy: 4,
        nice: 8,
        chain: 4,
    },
    Config {
        good: 4,
        lazy: 5,
        nice: 16,
        chain: 8,
    },
    Config {
        good: 4,
        lazy: 6,
        nice: 32,
        chain: 32,
    },
    Config {
        good: 4,
        lazy: 4,
        nice: 16,
        chain: 16,
    },
    Config {
        good: 8,
        lazy: 16,
        nice: 32,
        chain: 32,
    },
    Config {
        good: 8,
        lazy: 16,
        nice: 128,
        chain: 128,
    },
    Config {
        good: 8,
        lazy: 32,
        nice: 128,
        chain: 256,
    },
    Config {
        good: 32,
        lazy: 128,
        nice: 258,
        chain: 1024,
    },
    Config {
        good: 32,
        lazy: 258,
        nice: 258,
        chain: 4096,
    },
];

/// The static description of one kind of tree.
struct StaticDesc {
    /// Lengths of the fixed code, to compute the fixed size of a block.
    static_len: Option<&'static [u16]>,
    extra_bits: &'static [u8],
    /// First code with extra bits.
    extra_base: usize,
    /// Number of codes (leaves).
    elems: usize,
    /// Longest code allowed.
    max_length: usize,
}

static L_DESC: StaticDesc = StaticDesc {
    static_len: Some(&STATIC_LLEN),
    extra_bits: &EXTRA_LBITS,
    extra_base: LITERALS + 1,
    elems: L_CODES,
    max_length: MAX_BITS,
};
static D_DESC: StaticDesc = StaticDesc {
    static_len: Some(&STATIC_DLEN),
    extra_bits: &EXTRA_DBITS,
    extra_base: 0,
    elems: D_CODES,
    max_length: MAX_BITS,
};
static BL_DESC: StaticDesc = StaticDesc {
    static_len: None,
    extra_bits: &EXTRA_BLBITS,
    extra_base: 0,
    elems: BL_CODES,
    max_length: MAX_BL_BITS,
};

/// A Huffman tree: leaves first, then internal nodes.
struct Tree {
    freq: Vec<u16>,
    code: Vec<u16>,
    dad: Vec<u16>,
    len: Vec<u16>,
}

impl Tree {
    fn new(size: usize) -> Self {
        Self {
            freq: vec![0; size],
            code: vec![0; size],
            dad: vec![0; size],
            len: vec![0; size],
        }
    }
}

/// Scratch state of the tree construction, and the sizes of the block.
struct TreeWork {
    /// heap[1..=heap_len] is a heap of nodes by frequency (then depth);
    /// heap[heap_max..] holds the nodes taken out, by increasing frequency.
    heap: Vec<u16>,
    heap_len: usize,
    heap_max: usize,
    /// Depth of each subtree, to break ties between equal frequencies.
    depth: Vec<u8>,
    /// Number of codes of each bit length.
    bl_count: [u16; MAX_BITS + 1],
    /// Bits of the block with dynamic trees (including the trees).
    opt_len: u64,
    /// Bits of the block with the fixed trees.
    static_len: u64,
}

impl TreeWork {
    /// `smaller(n, m)`: n is less frequent, or as frequent and not deeper.
    fn smaller(&self, tree: &Tree, n: usize, m: usize) -> bool {
        tree.freq[n] < tree.freq[m]
            || (tree.freq[n] == tree.freq[m] && self.depth[n] <= self.depth[m])
    }

    /// Restores the heap property from node `k` down.
    fn pqdownheap(&mut self, tree: &Tree, mut k: usize) {
        let v = self.heap[k];
        let mut j = k << 1;
        while j <= self.heap_len {
            if j < self.heap_len
                && self.smaller(tree, self.heap[j + 1] as usize, self.heap[j] as usize)
            {
                j += 1;
            }
            if self.smaller(tree, v as usize, self.heap[j] as usize) {
                break;
            }
            self.heap[k] = self.heap[j];
            k = j;
            j <<= 1;
        }
        self.heap[k] = v;
    }

    /// Computes the code lengths (at most `max_length`) from the tree built
    /// by `build_tree`, and adds the block's size with them to `opt_len`
    /// (and with the fixed code to `static_len`).
    fn gen_bitlen(&mut self, tree: &mut Tree, desc: &StaticDesc, max_code: usize) {
        let max_length = desc.max_length;
        self.bl_count = [0; MAX_BITS + 1];
        let mut overflow = 0;

        // First pass: optimal lengths, which may exceed max_length.
        tree.len[self.heap[self.heap_max] as usize] = 0; // the root
        let mut h = self.heap_max + 1;
        while h < HEAP_SIZE {
            let n = self.heap[h] as usize;
            let mut bits = tree.len[tree.dad[n] as usize] as usize + 1;
            if bits > max_length {
                bits = max_length;
                overflow += 1;
            }
            tree.len[n] = bits as u16;
            h += 1;
            if n > max_code {
                continue; // not a leaf
            }
            self.bl_count[bits] += 1;
            let xbits = if n >= desc.extra_base {
                desc.extra_bits[n - desc.extra_base] as u64
            } else {
                0
            };
            let f = tree.freq[n] as u64;
            self.opt_len = self.opt_len.wrapping_add(f * (bits as u64 + xbits));
            if let Some(stree) = desc.static_len {
                self.static_len = self.static_len.wrapping_add(f * (stree[n] as u64 + xbits));
            }
        }
        if overflow == 0 {
            return;
        }

        // Move leaves down until no length exceeds max_length.
        while overflow > 0 {
            let mut bits = max_length - 1;
            while self.bl_count[bits] == 0 {
                bits -= 1;
            }
            self.bl_count[bits] -= 1; // a leaf moves down
            self.bl_count[bits + 1] += 2; // with an overflowed leaf as brother
            self.bl_count[max_length] -= 1;
            overflow -= 2;
        }

        // Give the lengths again, in increasing frequency (h is HEAP_SIZE).
        let mut bits = max_length;
        while bits != 0 {
            let mut n = self.bl_count[bits];
            while n != 0 {
                h -= 1;
                let m = self.heap[h] as usize;
                if m > max_code {
                    continue;
                }
                if tree.len[m] as usize != bits {
                    let delta = (bits as u64)
                        .wrapping_sub(tree.len[m] as u64)
                        .wrapping_mul(tree.freq[m] as u64);
                    self.opt_len = self.opt_len.wrapping_add(delta);
                    tree.len[m] = bits as u16;
                }
                n -= 1;
            }
            bits -= 1;
        }
    }

    /// Builds the Huffman tree of `tree`'s frequencies, sets its code
    /// lengths and codes, and returns the largest code of non-zero frequency.
    fn build_tree(&mut self, tree: &mut Tree, desc: &StaticDesc) -> usize {
        let elems = desc.elems;
        let mut max_code: isize = -1;
        self.heap_len = 0;
        self.heap_max = HEAP_SIZE;

        for n in 0..elems {
            if tree.freq[n] != 0 {
                self.heap_len += 1;
                self.heap[self.heap_len] = n as u16;
                max_code = n as isize;
                self.depth[n] = 0;
            } else {
                tree.len[n] = 0;
            }
        }

        // At least two codes, so that every code has at least one bit.
        while self.heap_len < 2 {
            let node = if max_code < 2 {
                max_code += 1;
                max_code as usize
            } else {
                0
            };
            self.heap_len += 1;
            self.heap[self.heap_len] = node as u16;
            tree.freq[node] = 1;
            self.depth[node] = 0;
            self.opt_len = self.opt_len.wrapping_sub(1);
            if let Some(stree) = desc.static_len {
                self.static_len = self.static_len.wrapping_sub(stree[node] as u64);
            }
        }
        let max_code = max_code as usize;

        // heap[heap_len/2+1 ..= heap_len] are leaves: make sub-heaps.
        let mut n = self.heap_len / 2;
        while n >= 1 {
            self.pqdownheap(tree, n);
            n -= 1;
        }

        // Combine the two least frequent nodes until one is left.
        let mut node = elems;
        loop {
            // n: least frequent; m: next least frequent.
            let n = self.heap[1] as usize;
            self.heap[1] = self.heap[self.heap_len];
            self.heap_len -= 1;
            self.pqdownheap(tree, 1);
            let m = self.heap[1] as usize;

            self.heap_max -= 1;
            self.heap[self.heap_max] = n as u16;
            self.heap_max -= 1;
            self.heap[self.heap_max] = m as u16;

            tree.freq[node] = tree.freq[n].wrapping_add(tree.freq[m]);
            self.depth[node] = self.depth[n].max(self.depth[m]) + 1;
            tree.dad[n] = node as u16;
            tree.dad[m] = node as u16;

            self.heap[1] = node as u16;
            node += 1;
            self.pqdownheap(tree, 1);
            if self.heap_len < 2 {
                break;
            }
        }
        self.heap_max -= 1;
        self.heap[self.heap_max] = self.heap[1];

        self.gen_bitlen(tree, desc, max_code);
        gen_codes(tree, max_code, &self.bl_count);
        max_code
    }
}

/// Gives each code of non-zero length its (bit-reversed) canonical code.
fn gen_codes(tree: &mut Tree, max_code: usize, bl_count: &[u16; MAX_BITS + 1]) {
    let mut next_code = [0u16; MAX_BITS + 1];
    let mut code = 0u16;
    for bits in 1..=MAX_BITS {
        code = code.wrapping_add(bl_count[bits - 1]) << 1;
        next_code[bits] = code;
    }
    for n in 0..=max_code {
        let len = tree.len[n] as usize;
        if len == 0 {
            continue;
        }
        tree.code[n] = bi_reverse(next_code[len], len);
        next_code[len] = next_code[len].wrapping_add(1);
    }
}

/// Counts, in `bl_tree`, the code length codes that describe `tree`'s code
/// lengths (run-length coded as `send_tree` sends them).
fn scan_tree(tree: &mut Tree, bl_tree: &mut Tree, max_code: usize) {
    let mut prevlen: isize = -1;
    let mut nextlen = tree.len[0] as isize;
    let mut count = 0;
    let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };
    tree.len[max_code + 1] = 0xffff; // guard

    for n in 0..=max_code {
        let curlen = nextlen;
        nextlen = tree.len[n + 1] as isize;
        count += 1;
        if count < max_count && curlen == nextlen {
            continue;
        } else if count < min_count {
            bl_tree.freq[curlen as usize] += count as u16;
        } else if curlen != 0 {
            if curlen != prevlen {
                bl_tree.freq[curlen as usize] += 1;
            }
            bl_tree.freq[REP_3_6] += 1;
        } else if count <= 10 {
            bl_tree.freq[REPZ_3_10] += 1;
        } else {
            bl_tree.freq[REPZ_11_138] += 1;
        }
        count = 0;
        prevlen = curlen;
        (max_count, min_count) = if nextlen == 0 {
            (138, 3)
        } else if curlen == nextlen {
            (6, 3)
        } else {
            (7, 4)
        };
    }
}

/// Bits to the output, least significant first, through a buffer flushed to
/// the sink; the first write error is kept and later output dropped.
struct BitWriter<'a> {
    out: &'a mut dyn Write,
    buf: Vec<u8>,
    bi_buf: u64,
    bi_valid: u32,
    err: Option<io::Error>,
}

impl BitWriter<'_> {
    fn put_byte(&mut self, b: u8) {
        self.buf.push(b);
        if self.buf.len() >= OUT_BUFSIZE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.err.is_none() && !self.buf.is_empty() {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.err = Some(e);
            }
        }
        self.buf.clear();
    }

    /// Sends the low `length` bits of `value`.
    fn send_bits(&mut self, value: u32, length: usize) {
        self.bi_buf |= u64::from(value) << self.bi_valid;
        self.bi_valid += length as u32;
        while self.bi_valid >= 8 {
            self.put_byte(self.bi_buf as u8);
            self.bi_buf >>= 8;
            self.bi_valid -= 8;
        }
    }

    fn send_code(&mut self, c: usize, code: &[u16], len: &[u16]) {
        self.send_bits(u32::from(code[c]), len[c] as usize);
    }

    /// Pads the last byte with zero bits.
    fn bi_windup(&mut self) {
        if self.bi_valid > 0 {
            self.put_byte(self.bi_buf as u8);
        }
        self.bi_buf = 0;
        self.bi_valid = 0;
    }

    /// Sends a stored block's lengths and bytes (after its 3 header bits).
    fn copy_block(&mut self, data: &[u8]) {
        self.bi_windup();
        // gzip writes the lengths as 16-bit values.
        let len = data.len() as u16;
        for b in len.to_le_bytes().into_iter().chain((!len).to_le_bytes()) {
            self.put_byte(b);
        }
        for &b in data {
            self.put_byte(b);
        }
    }

    /// Sends `tree`'s code lengths, run-length coded with `bl_tree`.
    fn send_tree(&mut self, tree: &Tree, bl_tree: &Tree, max_code: usize) {
        let (blc, bll) = (&bl_tree.code[..], &bl_tree.len[..]);
        let mut prevlen: isize = -1;
        let mut nextlen = tree.len[0] as isize;
        let mut count = 0;
        let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };

        for n in 0..=max_code {
            let curlen = nextlen;
            // The guard scan_tree put after max_code ends the last run.
            nextlen = tree.len[n + 1] as isize;
            count += 1;
            if count < max_count && curlen == nextlen {
                continue;
            } else if count < min_count {
                while count != 0 {
                    self.send_code(curlen as usize, blc, bll);
                    count -= 1;
                }
            } else if curlen != 0 {
                if curlen != prevlen {
                    self.send_code(curlen as usize, blc, bll);
                    count -= 1;
                }
                self.send_code(REP_3_6, blc, bll);
                self.send_bits(count - 3, 2);
            } else if count <= 10 {
                self.send_code(REPZ_3_10, blc, bll);
                self.send_bits(count - 3, 3);
            } else {
                self.send_code(REPZ_11_138, blc, bll);
                self.send_bits(count - 11, 7);
            }
            count = 0;
            prevlen = curlen;
            (max_count, min_count) = if nextlen == 0 {
                (138, 3)
            } else if curlen == nextlen {
                (6, 3)
            } else {
                (7, 4)
            };
        }
    }
}

/// Sends a block's symbols (literals or lengths - `MIN_MATCH`, and distances,
/// 0 for a literal) with the given (code, length) tables, and end-of-block.
fn compress_block(
    w: &mut BitWriter<'_>,
    (l_buf, d_buf): (&[u8], &[u16]),
    (lcode, llen): (&[u16], &[u16]),
    (dcode, dlen): (&[u16], &[u16]),
) {
    for (&lc, &dist) in l_buf.iter().zip(d_buf) {
        let lc = lc as usize;
        if dist == 0 {
            w.send_code(lc, lcode, llen);
        } else {
            let code = LENGTH_CODE[lc] as usize;
            w.send_code(code + LITERALS + 1, lcode, llen);
            let extra = EXTRA_LBITS[code] as usize;
            if extra != 0 {
                w.send_bits((lc - BASE_LENGTH[code] as usize) as u32, extra);
            }
            let dist = dist as usize - 1;
            let code = d_code(dist);
            w.send_code(code, dcode, dlen);
            let extra = EXTRA_DBITS[code] as usize;
            if extra != 0 {
                w.send_bits((dist - BASE_DIST[code] as usize) as u32, extra);
            }
        }
    }
    w.send_code(END_BLOCK, lcode, llen);
}

/// The compressor's whole state.
struct Deflater<'a> {
    input: &'a [u8],
    /// Bytes of `input` read into the window so far.
    in_pos: usize,
    level: u32,
    good_match: usize,
    max_lazy: usize,
    nice_match: usize,
    max_chain: usize,

    /// Input, read into the upper half and moved down to the lower one.
    window: Vec<u8>,
    /// prev[pos & WMASK]: the previous position with the same hash.
    prev: Vec<u16>,
    /// head[hash]: the latest position with that hash, or 0 (none).
    head: Vec<u16>,
    /// Hash of the string being inserted.
    ins_h: usize,
    /// Start of the string being processed.
    strstart: usize,
    /// Valid bytes from strstart on.
    lookahead: usize,
    /// Where the best match of longest_match starts.
    match_start: usize,
    /// Window position of the start of the current block (negative once it
    /// slid out of the window).
    block_start: i64,
    /// The input is all read.
    eofile: bool,

    /// The block's symbols: a literal, or a match length - MIN_MATCH ...
    l_buf: Vec<u8>,
    /// ... and its distance (0 for a literal).
    d_buf: Vec<u16>,
    last_lit: usize,
    last_dist: usize,
    dyn_ltree: Tree,
    dyn_dtree: Tree,
    bl_tree: Tree,
    work: TreeWork,

    w: BitWriter<'a>,
}

impl<'a> Deflater<'a> {
    fn new(input: &'a [u8], level: u32, out: &'a mut dyn Write) -> Self {
        let config = &CONFIGURATION_TABLE[level as usize];
        let mut d = Self {
            input,
            in_pos: 0,
            level,
            good_match: config.good,
            max_lazy: config.lazy,
            nice_match: config.nice,
            max_chain: config.chain,
            window: vec![0; WINDOW_SIZE + WINDOW_PAD],
            prev: vec![0; WSIZE],
            head: vec![0; HASH_SIZE],
            ins_h: 0,
            strstart: 0,
            lookahead: 0,
            match_start: 0,
            block_start: 0,
            eofile: false,
            l_buf: vec![0; LIT_BUFSIZE],
            d_buf: vec![0; LIT_BUFSIZE],
            last_lit: 0,
            last_dist: 0,
            dyn_ltree: Tree::new(LTREE_SIZE),
            dyn_dtree: Tree::new(DTREE_SIZE),
            bl_tree: Tree::new(BLTREE_SIZE),
            work: TreeWork {
                heap: vec![0; HEAP_SIZE],
                heap_len: 0,
                heap_max: 0,
                depth: vec![0; HEAP_SIZE],
                bl_count: [0; MAX_BITS + 1],
                opt_len: 0,
                static_len: 0,
            },
            w: BitWriter {
                out,
                buf: Vec::with_capacity(OUT_BUFSIZE),
                bi_buf: 0,
                bi_valid: 0,
                err: None,
            },
        };
        d.init_block();
        d
    }

    /// Copies up to `size` input bytes to window[at..]; returns how many.
    fn read_buf(&mut self, at: usize, size: usize) -> usize {
        let n = size.min(self.input.len() - self.in_pos);
        self.window[at..at + n].copy_from_slice(&self.input[self.in_pos..self.in_pos + n]);
        self.in_pos += n;
        n
    }

    fn update_hash(&mut self, c: u8) {
        self.ins_h = ((self.ins_h << H_SHIFT) ^ c as usize) & HASH_MASK;
    }

    /// Inserts the string at `s` in the hash table; returns the previous
    /// head of its chain.
    fn insert_string(&mut self, s: usize) -> usize {
        self.update_hash(self.window[s + MIN_MATCH - 1]);
        let head = self.head[self.ins_h];
        self.prev[s & WMASK] = head;
        self.head[self.ins_h] = s as u16;
        head as usize
    }

    /// Reads the start of the input.
    fn lm_init(&mut self) {
        self.strstart = 0;
        self.block_start = 0;
        self.lookahead = self.read_buf(0, WINDOW_SIZE);
        if self.lookahead == 0 {
            self.eofile = true;
            return;
        }
        self.eofile = false;
        while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
            self.fill_window();
        }
        self.ins_h = 0;
        for j in 0..MIN_MATCH - 1 {
            self.update_hash(self.window[j]);
        }
    }

    /// Slides the window if needed, and reads more input (or notes its end).
    fn fill_window(&mut self) {
        let mut more = WINDOW_SIZE - self.lookahead - self.strstart;
        if self.strstart >= WSIZE + MAX_DIST {
            self.window.copy_within(WSIZE..WINDOW_SIZE, 0);
            self.match_start = self.match_start.wrapping_sub(WSIZE);
            self.strstart -= WSIZE;
            self.block_start -= WSIZE as i64;
            for p in self.head.iter_mut().chain(self.prev.iter_mut()) {
                *p = if *p as usize >= WSIZE {
                    *p - WSIZE as u16
                } else {
                    0
                };
            }
            more += WSIZE;
        }
        if !self.eofile {
            let at = self.strstart + self.lookahead;
            let n = self.read_buf(at, more);
            if n == 0 {
                self.eofile = true;
                // Clear the two bytes the last hashes read.
                self.window[at..at + MIN_MATCH - 1].fill(0);
            } else {
                self.lookahead += n;
            }
        }
    }

    /// Keeps at least MIN_LOOKAHEAD bytes ahead, except at the end of input.
    fn keep_lookahead(&mut self) {
        while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
            self.fill_window();
        }
    }

    /// Whether a match may be searched for from strstart with chain head
    /// `hash_head`.
    fn can_search(&self, hash_head: usize) -> bool {
        hash_head != 0
            && self.strstart.wrapping_sub(hash_head) <= MAX_DIST
            && self.strstart <= WINDOW_SIZE - MIN_LOOKAHEAD
    }

    /// Returns the length of the longest match from strstart along the hash
    /// chain from `cur_match` if longer than `prev_length` (and sets
    /// match_start), else `prev_length`. The length may exceed the lookahead.
    fn longest_match(&mut self, mut cur_match: usize, prev_length: usize) -> usize {
        let window = &self.window[..];
        let mut chain_length = self.max_chain;
        let scan = self.strstart;
        let mut best_len = prev_length;
        // Candidates at or below limit are too far (or none: 0).
        let limit = self.strstart.saturating_sub(MAX_DIST);
        let strend = scan + MAX_MATCH;
        let mut scan_end1 = window[scan + best_len - 1];
        let mut scan_end = window[scan + best_len];
        if prev_length >= self.good_match {
            chain_length >>= 2;
        }
        let (scan0, scan1) = (window[scan], window[scan + 1]);
        loop {
            let m = cur_match;
            // Skip a candidate that cannot beat best_len; bytes 2 are equal
            // when bytes 0 and 1 are, given equal hashes.
            if window[m + best_len] == scan_end
                && window[m + best_len - 1] == scan_end1
                && window[m] == scan0
                && window[m + 1] == scan1
            {
                // Compare from byte 3 on, in groups of 8 up to strend (the
                // last group may read byte 258, which does not count).
                let mut s = scan + 2;
                let mut p = m + 2;
                'cmp: while s < strend {
                    for _ in 0..8 {
                        s += 1;
                        p += 1;
                        if window[s] != window[p] {
                            break 'cmp;
                        }
                    }
                }
                let len = MAX_MATCH - (strend - s.min(strend));
                if len > best_len {
                    self.match_start = cur_match;
                    best_len = len;
                    if len >= self.nice_match {
                        break;
                    }
                    scan_end1 = window[scan + best_len - 1];
                    scan_end = window[scan + best_len];
                }
            }
            cur_match = self.prev[cur_match & WMASK] as usize;
            if cur_match <= limit {
                break;
            }
            chain_length -= 1;
            if chain_length == 0 {
                break;
            }
        }
        best_len
    }

    fn init_block(&mut self) {
        self.dyn_ltree.freq[..L_CODES].fill(0);
        self.dyn_dtree.freq[..D_CODES].fill(0);
        self.bl_tree.freq[..BL_CODES].fill(0);
        self.dyn_ltree.freq[END_BLOCK] = 1;
        self.work.opt_len = 0;
        self.work.static_len = 0;
        self.last_lit = 0;
        self.last_dist = 0;
    }

    /// Buffers a literal (`dist` 0, `lc` the byte) or a match (`dist` its
    /// distance, `lc` its length - MIN_MATCH); returns whether the block must
    /// end here.
    fn tally(&mut self, dist: usize, lc: usize) -> bool {
        self.l_buf[self.last_lit] = lc as u8;
        self.d_buf[self.last_lit] = dist as u16;
        self.last_lit += 1;
        if dist == 0 {
            self.dyn_ltree.freq[lc] += 1;
        } else {
            self.dyn_ltree.freq[LENGTH_CODE[lc] as usize + LITERALS + 1] += 1;
            self.dyn_dtree.freq[d_code(dist - 1)] += 1;
            self.last_dist += 1;
        }
        // gzip's guess whether ending the block here pays.
        if self.level > 2 && (self.last_lit & 0xfff) == 0 {
            let mut out_length = self.last_lit as u64 * 8;
            let in_length = (self.strstart as i64 - self.block_start) as u64;
            for (&freq, &extra) in self.dyn_dtree.freq[..D_CODES].iter().zip(&EXTRA_DBITS) {
                out_length += u64::from(freq) * (5 + u64::from(extra));
            }
            out_length >>= 3;
            if self.last_dist < self.last_lit / 2 && out_length < in_length / 2 {
                return true;
            }
        }
        self.last_lit == LIT_BUFSIZE - 1 || self.last_dist == DIST_BUFSIZE
    }

    /// Builds the code length tree; returns the index in BL_ORDER of the last
    /// code length code to send (at least 3).
    fn build_bl_tree(&mut self, l_max_code: usize, d_max_code: usize) -> usize {
        scan_tree(&mut self.dyn_ltree, &mut self.bl_tree, l_max_code);
        scan_tree(&mut self.dyn_dtree, &mut self.bl_tree, d_max_code);
        self.work.build_tree(&mut self.bl_tree, &BL_DESC);
        let mut max_blindex = BL_CODES - 1;
        while max_blindex >= 3 {
            if self.bl_tree.len[BL_ORDER[max_blindex]] != 0 {
                break;
            }
            max_blindex -= 1;
        }
        self.work.opt_len = self
            .work
            .opt_len
            .wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);
        max_blindex
    }

    /// Ends the block at strstart (the last one if `eof`): stored, fixed or
    /// dynamic, whichever gzip picks.
    fn flush_block(&mut self, eof: bool) {
        let stored_len = (self.strstart as i64 - self.block_start) as u64;
        let l_max_code = self.work.build_tree(&mut self.dyn_ltree, &L_DESC);
        let d_max_code = self.work.build_tree(&mut self.dyn_dtree, &D_DESC);
        let max_blindex = self.build_bl_tree(l_max_code, d_max_code);

        let mut opt_lenb = self.work.opt_len.wrapping_add(3 + 7) >> 3;
        let static_lenb = self.work.static_len.wrapping_add(3 + 7) >> 3;
        if static_lenb <= opt_lenb {
            opt_lenb = static_lenb;
        }
        let eof_bit = u32::from(eof);
        if stored_len + 4 <= opt_lenb && self.block_start >= 0 {
            self.w.send_bits(eof_bit, 3);
            let start = self.block_start as usize;
            let data = &self.window[start..start + stored_len as usize];
            self.w.copy_block(data);
        } else if static_lenb == opt_lenb {
            self.w.send_bits(2 + eof_bit, 3);
            let symbols = (&self.l_buf[..self.last_lit], &self.d_buf[..self.last_lit]);
            let ltree = (&STATIC_LCODE[..], &STATIC_LLEN[..]);
            let dtree = (&STATIC_DCODE[..], &STATIC_DLEN[..]);
            compress_block(&mut self.w, symbols, ltree, dtree);
        } else {
            self.w.send_bits(4 + eof_bit, 3);
            self.send_all_trees(l_max_code + 1, d_max_code + 1, max_blindex + 1);
            let symbols = (&self.l_buf[..self.last_lit], &self.d_buf[..self.last_lit]);
            let ltree = (&self.dyn_ltree.code[..], &self.dyn_ltree.len[..]);
            let dtree = (&self.dyn_dtree.code[..], &self.dyn_dtree.len[..]);
            compress_block(&mut self.w, symbols, ltree, dtree);
        }
        self.init_block();
        if eof {
            self.w.bi_windup();
        }
    }

    /// Sends the header of a dynamic block: counts, code length code lengths,
    /// and the two trees.
    fn send_all_trees(&mut self, lcodes: usize, dcodes: usize, blcodes: usize) {
        self.w.send_bits((lcodes - 257) as u32, 5);
        self.w.send_bits((dcodes - 1) as u32, 5);
        self.w.send_bits((blcodes - 4) as u32, 4);
        for &c in &BL_ORDER[..blcodes] {
            self.w.send_bits(u32::from(self.bl_tree.len[c]), 3);
        }
        self.w.send_tree(&self.dyn_ltree, &self.bl_tree, lcodes - 1);
        self.w.send_tree(&self.dyn_dtree, &self.bl_tree, dcodes - 1);
    }

    /// Ends the block at strstart (not the last) and starts the next one.
    fn flush_and_restart(&mut self) {
        self.flush_block(false);
        self.block_start = self.strstart as i64;
    }

    /// Levels 1 to 3: takes the longest match at each position, without lazy
    /// evaluation; inserts the strings of matches up to `max_lazy` long.
    fn deflate_fast(&mut self) {
        let mut match_length = 0;
        let prev_length = MIN_MATCH - 1;
        while self.lookahead != 0 && self.w.err.is_none() {
            let hash_head = self.insert_string(self.strstart);
            if self.can_search(hash_head) {
                match_length = self.longest_match(hash_head, prev_length);
                match_length = match_length.min(self.lookahead);
            }
            let flush;
            if match_length >= MIN_MATCH {
                flush = self.tally(
                    self.strstart.wrapping_sub(self.match_start),
                    match_length - MIN_MATCH,
                );
                self.lookahead -= match_length;
                if match_length <= self.max_lazy {
                    // The string at strstart is already in the table.
                    for _ in 1..match_length {
                        self.strstart += 1;
                        self.insert_string(self.strstart);
                    }
                    self.strstart += 1;
                } else {
                    self.strstart += match_length;
                    self.ins_h = self.window[self.strstart] as usize;
                    self.update_hash(self.window[self.strstart + 1]);
                }
                match_length = 0;
            } else {
                flush = self.tally(0, self.window[self.strstart] as usize);
                self.lookahead -= 1;
                self.strstart += 1;
            }
            if flush {
                self.flush_and_restart();
            }
            self.keep_lookahead();
        }
        self.flush_block(true);
    }

    /// Levels 4 to 9: a match is taken only if the next position has no
    /// longer one (else its first byte is a literal).
    fn deflate_slow(&mut self) {
        let mut match_available = false;
        let mut match_length = MIN_MATCH - 1;
        while self.lookahead != 0 && self.w.err.is_none() {
            let hash_head = self.insert_string(self.strstart);
            let prev_length = match_length;
            let prev_match = self.match_start;
            match_length = MIN_MATCH - 1;

            if prev_length < self.max_lazy && self.can_search(hash_head) {
                match_length = self.longest_match(hash_head, prev_length);
                match_length = match_length.min(self.lookahead);
                // A match of 3 far away costs more than its literals.
                if match_length == MIN_MATCH
                    && self.strstart.wrapping_sub(self.match_start) > TOO_FAR
                {
                    match_length -= 1;
                }
            }
            if prev_length >= MIN_MATCH && match_length <= prev_length {
                // The previous match is not beaten: send it.
                let flush = self.tally(
                    self.strstart.wrapping_sub(1).wrapping_sub(prev_match),
                    prev_length - MIN_MATCH,
                );
                // strstart - 1 and strstart are already inserted.
                self.lookahead -= prev_length - 1;
                for _ in 0..prev_length - 2 {
                    self.strstart += 1;
                    self.insert_string(self.strstart);
                }
                match_available = false;
                match_length = MIN_MATCH - 1;
                self.strstart += 1;
                if flush {
                    self.flush_and_restart();
                }
            } else if match_available {
                // No previous match, or the current one is longer: the
                // previous byte is a literal.
                let flush = self.tally(0, self.window[self.strstart - 1] as usize);
                if flush {
                    self.flush_and_restart();
                }
                self.strstart += 1;
                self.lookahead -= 1;
            } else {
                // Nothing to compare with yet: decide at the next step.
                match_available = true;
                self.strstart += 1;
                self.lookahead -= 1;
            }
            self.keep_lookahead();
        }
        if match_available && self.w.err.is_none() {
            self.tally(0, self.window[self.strstart - 1] as usize);
        }
        self.flush_block(true);
    }
}

/// Writes the raw deflate stream (RFC 1951; no gzip header or trailer) that GNU gzip 1.12 writes for `data` at `level` (1..=9) with `-n`.
/// A level outside 1..=9 is an `io::ErrorKind::InvalidInput` error.
pub fn deflate(data: &[u8], level: u32, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    if !(1..=9).contains(&level) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("deflate level {level} is not in 1..=9"),
        ));
    }
    let mut d = Deflater::new(data, level, out);
    d.lm_init();
    if level <= 3 {
        d.deflate_fast();
    } else {
        d.deflate_slow();
    }
    d.w.flush();
    match d.w.err.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_rng::Rng;
    use super::*;
    use std::fs::{self, File};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "is",
        "it",
        "that",
        "for",
        "package",
        "upload",
        "debian",
        "changelog",
        "version",
        "fix",
        "new",
        "upstream",
        "release",
        "bug",
        "closes",
        "maintainer",
        "build",
        "depends",
        "policy",
        "standards",
        "update",
        "patch",
        "remove",
        "install",
        "file",
        "directory",
        "library",
        "symbols",
        "control",
        "rules",
        "copyright",
        "security",
        "CVE",
        "thanks",
        "to",
        "for",
        "the",
        "report",
        "with",
        "from",
        "when",
        "container",
        "runtime",
        "layer",
        "image",
        "delta",
        "compress",
        "window",
        "match",
        "Huffman",
        "tree",
        "block",
        "literal",
        "distance",
        "length",
        "zlib",
        "gzip",
    ];

    /// English-like text: lines of words, paragraphs, some repeated.
    fn text(rng: &mut Rng, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 200);
        let mut paragraphs: Vec<(usize, usize)> = Vec::new();
        while out.len() < size {
            if !paragraphs.is_empty() && rng.below(5) == 0 {
                let (start, end) = paragraphs[rng.below(paragraphs.len())];
                out.extend_from_within(start..end);
                continue;
            }
            let start = out.len();
            for _ in 0..1 + rng.below(8) {
                out.extend_from_slice(b"  * ");
                for i in 0..3 + rng.below(12) {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                    if rng.below(20) == 0 {
                        out.extend_from_slice(format!(" #{}", rng.next() % 1_000_000).as_bytes());
                    }
                }
                out.extend_from_slice(b".\n");
            }
            out.push(b'\n');
            paragraphs.push((start, out.len()));
        }
        out.truncate(size);
        out
    }

    /// A random mix of text, random bytes, runs, small alphabets and copies
    /// of earlier data at various distances.
    fn mixed(rng: &mut Rng, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 70_000);
        while out.len() < size {
            let max = if rng.below(4) == 0 { 70_000 } else { 5_000 };
            let n = 1 + rng.below(max);
            match rng.below(6) {
                0 => out.extend(text(rng, n)),
                1 => out.extend(rng.bytes(n)),
                2 => {
                    let b = rng.next() as u8;
                    out.resize(out.len() + n, b);
                }
                3 => {
                    let k = 2 + rng.below(6) as u8;
                    out.extend((0..n).map(|_| b'a' + (rng.next() as u8) % k));
                }
                _ if !out.is_empty() => {
                    // A copy from up to a bit more than the window back.
                    let dist = 1 + rng.below(out.len().min(WSIZE + 600));
                    let start = out.len() - dist;
                    for i in 0..n.min(3_000) {
                        out.push(out[start + i]);
                    }
                }
                _ => {}
            }
        }
        out.truncate(size);
        out
    }

    /// Long runs mixed with random bytes.
    fn runs_and_random(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..8 {
            let run = [70_000, 300, 33_000, 5][i % 4];
            out.resize(out.len() + run, (i * 37) as u8);
            let n = [20_000, 500, 3, 40_000][(i + 1) % 4];
            out.extend(rng.bytes(n));
        }
        out
    }

    static TMP_SEQ: AtomicUsize = AtomicUsize::new(0);

    /// The raw deflate stream of `gzip -<level> -n -c` on `data` (fed by
    /// stdin from a file, so that every read is full), or why it failed.
    fn gzip_raw(data: &[u8], level: u32) -> Result<Vec<u8>, String> {
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("husk-deflate-test-{}-{seq}", std::process::id()));
        fs::write(&path, data).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let output = File::open(&path).and_then(|stdin| {
            Command::new("gzip")
                .arg(format!("-{level}"))
                .args(["-n", "-c"])
                .stdin(stdin)
                .stderr(Stdio::inherit())
                .output()
        });
        let _ = fs::remove_file(&path);
        let output = output.map_err(|e| format!("running gzip: {e}"))?;
        if !output.status.success() {
            return Err(format!("gzip failed: {}", output.status));
        }
        raw_of_gz(&output.stdout)
    }

    /// The deflate stream of a gzip member without name, comment or extra
    /// field: between the 10-byte header and the 8-byte trailer.
    fn raw_of_gz(gz: &[u8]) -> Result<Vec<u8>, String> {
        if gz.len() < 18 || gz[..3] != [0x1f, 0x8b, 8] {
            return Err("not a deflate gzip member".into());
        }
        if gz[3] != 0 {
            return Err(format!("gzip header flags {:#x}, not 0", gz[3]));
        }
        Ok(gz[10..gz.len() - 8].to_vec())
    }

    /// Whether gzip runs here; if not, says why.
    fn gzip_available() -> bool {
        match Command::new("gzip").arg("--version").output() {
            Ok(o) if o.status.success() => {
                let version = String::from_utf8_lossy(&o.stdout);
                let first = version.lines().next().unwrap_or("");
                if first != "gzip 1.12" {
                    eprintln!("note: comparing with {first:?}, not gzip 1.12");
                }
                true
            }
            Ok(o) => {
                eprintln!("skipped: `gzip --version` failed ({})", o.status);
                false
            }
            Err(e) => {
                eprintln!("skipped: gzip cannot be run: {e}");
                false
            }
        }
    }

    /// Compares our stream with gzip's; returns a description of a mismatch.
    fn compare(name: &str, data: &[u8], level: u32) -> Option<String> {
        let expected = match gzip_raw(data, level) {
            Ok(raw) => raw,
            Err(e) => return Some(format!("level {level}, {name}: {e}")),
        };
        let mut ours = Vec::new();
        if let Err(e) = deflate(data, level, &mut ours) {
            return Some(format!("level {level}, {name}: deflate failed: {e}"));
        }
        if ours == expected {
            return None;
        }
        let first = ours
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(expected.len()));
        Some(format!(
            "level {level}, {name} ({} bytes): ours {} bytes, gzip's {} bytes, first difference at byte {first}",
            data.len(),
            ours.len(),
            expected.len()
        ))
    }

    /// Compares each input at each level 1..=9; fails with every mismatch.
    fn compare_all(inputs: &[(String, Vec<u8>)]) {
        if !gzip_available() {
            return;
        }
        let mut failures = Vec::new();
        let mut compared = 0;
        for (name, data) in inputs {
            for level in 1..=9 {
                failures.extend(compare(name, data, level));
                compared += 1;
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {compared} differ from gzip:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn small_inputs() {
        compare_all(&[
            ("empty".into(), Vec::new()),
            ("1 byte".into(), b"a".to_vec()),
            ("2 bytes".into(), b"ab".to_vec()),
            ("3 bytes".into(), b"abc".to_vec()),
            ("3 equal bytes".into(), b"aaa".to_vec()),
            ("4 zero bytes".into(), vec![0; 4]),
            ("short text".into(), b"hello, hello, hello world\n".to_vec()),
        ]);
    }

    #[test]
    fn zeros_and_random() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        compare_all(&[
            ("1 MiB of zeros".into(), vec![0; 1 << 20]),
            ("300 KB of random bytes".into(), rng.bytes(300_000)),
        ]);
    }

    #[test]
    fn synthetic_text() {
        let mut rng = Rng(0x0bad_cafe_f00d_0001);
        compare_all(&[("400 KB of text".into(), text(&mut rng, 400_000))]);
    }

    #[test]
    fn window_boundary_lengths() {
        let mut rng = Rng(0x5eed_0000_0000_0042);
        let data = mixed(&mut rng, 3 * 32768 + 5);
        let inputs: Vec<_> = [32767, 32768, 32769, 65535, 65536, 65537, 3 * 32768 + 5]
            .iter()
            .map(|&n| (format!("{n} bytes of mixed data"), data[..n].to_vec()))
            .collect();
        compare_all(&inputs);
    }

    #[test]
    fn runs_mixed_with_random() {
        let mut rng = Rng(0x7777_1111_3333_5555);
        compare_all(&[
            ("runs and random".into(), runs_and_random(&mut rng)),
            ("mixed".into(), mixed(&mut rng, 200_000)),
        ]);
    }

    /// At the end of the input gzip's matcher compares bytes past it (two
    /// zeros, then what the window held before) and keeps the longest match
    /// among equally good ones truncated to the lookahead.
    #[test]
    fn matches_past_end_of_input() {
        // Past the end: zeros (the window was never filled).
        let mut zeros = b"_XYZ".to_vec();
        zeros.extend([0; 10]);
        zeros.extend(b"-XYZa+XYZ");
        // Past the end of 100,000 bytes: two zeros, then the bytes read
        // 32 KiB earlier (input offset 67,234), which only the farthest
        // "QRS" continues.
        let mut rng = Rng(5);
        let mut old: Vec<u8> = (0..100_000)
            .map(|_| b'a' + (rng.next() % 4) as u8)
            .collect();
        old[67_234..67_254].copy_from_slice(b"0123456789ABCDEFGHIJ");
        old[97_000..97_005].copy_from_slice(b"QRS\0\0");
        old[97_005..97_025].copy_from_slice(b"0123456789ABCDEFGHIJ");
        old[98_000..98_015].copy_from_slice(b"QRS\0\0\0\0\0\0\0\0\0\0\0\0");
        old[99_500..99_504].copy_from_slice(b"QRS!");
        old[99_996..].copy_from_slice(b"+QRS");
        compare_all(&[
            ("match into zeros past the end".into(), zeros),
            ("match into old window bytes past the end".into(), old),
        ]);
    }

    /// A block that would be stored but whose start has left the window
    /// (gzip then codes it with Huffman trees): 32,000 zeros, then random
    /// bytes with a few 3-byte repeats.
    #[test]
    fn stored_block_out_of_window() {
        let mut rng = Rng(7);
        let mut data = vec![0; 32_000];
        while data.len() < 150_000 {
            if data.len() > 41_000 && rng.below(200) == 0 {
                let start = data.len() - 5_000 - rng.below(4_000);
                for i in 0..3 {
                    data.push(data[start + i]);
                }
            } else {
                data.push(rng.next() as u8);
            }
        }
        compare_all(&[("block stored-worthy but out of the window".into(), data)]);
    }

    /// Up to `max` `changelog.Debian.gz` files of /usr/share/doc, by path.
    fn debian_changelogs(max: usize) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Ok(dir) = fs::read_dir("/usr/share/doc") {
            for entry in dir.flatten() {
                let path = entry.path().join("changelog.Debian.gz");
                if path.is_file() {
                    found.push(path);
                }
            }
        }
        found.sort();
        found.truncate(max);
        found
    }

    fn gunzip(path: &Path) -> Option<Vec<u8>> {
        let out = Command::new("gzip").arg("-dc").arg(path).output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    #[test]
    fn debian_text_files() {
        if !gzip_available() {
            return;
        }
        let mut inputs = Vec::new();
        let mut total = 0;
        for path in debian_changelogs(60) {
            if inputs.len() == 20 || total > 1_000_000 {
                break;
            }
            if let Some(data) = gunzip(&path).filter(|d| d.len() <= 300_000) {
                total += data.len();
                inputs.push((path.display().to_string(), data));
            }
        }
        let gpl = Path::new("/usr/share/common-licenses/GPL-3");
        if let Ok(data) = fs::read(gpl) {
            inputs.push((gpl.display().to_string(), data));
        }
        compare_all(&inputs);
    }

    /// Debian's `gzip -9n` files come back byte for byte from their content.
    #[test]
    fn regenerates_debian_gz_files() {
        if !gzip_available() {
            return;
        }
        let mut failures = Vec::new();
        let mut checked = 0;
        for path in debian_changelogs(40) {
            let Ok(gz) = fs::read(&path) else { continue };
            // Only members made at level 9 (XFL 2) without a name.
            let Ok(raw) = raw_of_gz(&gz) else { continue };
            if gz[8] != 2 {
                continue;
            }
            let Some(data) = gunzip(&path) else { continue };
            let mut ours = Vec::new();
            deflate(&data, 9, &mut ours).unwrap();
            checked += 1;
            if ours != raw {
                failures.push(format!(
                    "{}: ours {} bytes, the file's {} bytes",
                    path.display(),
                    ours.len(),
                    raw.len()
                ));
            }
        }
        eprintln!("regenerated {checked} Debian changelogs");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Random sizes, contents and levels.
    #[test]
    fn randomized() {
        if !gzip_available() {
            return;
        }
        let mut rng = Rng(0xdead_beef_1234_5678);
        let mut failures = Vec::new();
        for i in 0..150 {
            let size = rng.below(200_000);
            let data = mixed(&mut rng, size);
            let level = 1 + rng.below(9) as u32;
            failures.extend(compare(&format!("random input {i}"), &data, level));
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// DEFLATE_MEMORY is what the buffers take.
    #[test]
    fn memory_is_as_declared() {
        let mut sink = Vec::new();
        let d = Deflater::new(b"", 9, &mut sink);
        let tree = |t: &Tree| {
            2 * (t.freq.capacity() + t.code.capacity() + t.dad.capacity() + t.len.capacity())
        };
        let allocated = d.window.capacity()
            + 2 * (d.prev.capacity()
                + d.head.capacity()
                + d.d_buf.capacity()
                + d.work.heap.capacity())
            + d.l_buf.capacity()
            + tree(&d.dyn_ltree)
            + tree(&d.dyn_dtree)
            + tree(&d.bl_tree)
            + d.work.depth.capacity()
            + d.w.buf.capacity();
        assert_eq!(allocated as u64, DEFLATE_MEMORY);
        assert_eq!(DEFLATE_MEMORY, 318_407);
    }

    #[test]
    fn invalid_level() {
        for level in [0, 10, u32::MAX] {
            let mut out = Vec::new();
            let err = deflate(b"data", level, &mut out).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn write_errors_are_returned() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut rng = Rng(3);
        let err = deflate(&rng.bytes(100_000), 6, &mut Broken).unwrap_err();
        assert_eq!(err.to_string(), "broken");
    }
}
