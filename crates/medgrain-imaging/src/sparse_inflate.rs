//! A gzip (RFC 1952) / deflate (RFC 1951) decoder for data that is mostly zeros — segmentation masks — that never
//! writes the zeros: it returns the non-zero bytes with their positions ([`Sparse`]). A 512×512×300 organ mask is
//! 78.6 MB of which > 98 % are zeros, stored as long back-references of zeros; a general inflater writes (and the
//! caller then scans) every one of those bytes, ≈ 8 ms per mask, which made the masks most of a volume's time. Here a
//! back-reference whose source lies inside the current run of zeros only moves the output position, so the cost
//! follows the compressed size and the mask's non-zero voxels, not the volume's size.
//!
//! How: the 32 KiB window holds the real bytes except for the current zero run, which is implicit (reads inside it
//! give 0) and written into the window only when a non-zero byte ends it (at most 32 KiB, usually a row gap). The
//! CRC-32 of a zero run is applied arithmetically (multiplication by x^(8n) modulo the CRC polynomial, as zlib's
//! `crc32_combine` does), so the gzip trailer is still checked. Multi-member files are decoded member after member.
//! Tested against flate2 on random, mask-like and multi-member streams at every compression level, and on real
//! TotalSegmentator output in the NIfTI reader's tests.

use std::fmt;

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InflateError(pub String);

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gzip: {}", self.0)
    }
}

impl std::error::Error for InflateError {}

fn bad<T>(m: impl Into<String>) -> Result<T, InflateError> {
    Err(InflateError(m.into()))
}

/// Decoded output as its non-zero bytes: maximal runs of non-zero bytes (`segments`: start position and length,
/// in order) whose bytes are concatenated in `data`; every other position up to `len` is zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    pub len: u64,
    pub segments: Vec<(u64, u32)>,
    pub data: Vec<u8>,
}

impl Sparse {
    /// Bytes `[start, start + n)` with the zeros filled in (past `len`: zeros).
    pub fn read_range(&self, start: u64, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let end = start + n as u64;
        let first = self.segments.partition_point(|&(s, l)| s + l as u64 <= start);
        let mut offset: usize = self.segments[..first].iter().map(|&(_, l)| l as usize).sum();
        for &(s, l) in &self.segments[first..] {
            if s >= end {
                break;
            }
            let (from, to) = (s.max(start), (s + l as u64).min(end));
            let src = &self.data[offset + (from - s) as usize..offset + (to - s) as usize];
            out[(from - start) as usize..(to - start) as usize].copy_from_slice(src);
            offset += l as usize;
        }
        out
    }

    /// Calls `f(position, byte)` for every non-zero byte in `[start, end)`, in order.
    pub fn for_each_nonzero(&self, start: u64, end: u64, mut f: impl FnMut(u64, u8)) {
        let mut offset = 0usize;
        for &(s, l) in &self.segments {
            let bytes = &self.data[offset..offset + l as usize];
            offset += l as usize;
            if s + l as u64 <= start {
                continue;
            }
            if s >= end {
                break;
            }
            for (k, &b) in bytes.iter().enumerate() {
                let p = s + k as u64;
                if p >= start && p < end {
                    f(p, b);
                }
            }
        }
    }
}

// ---- CRC-32 of zero runs (zlib's crc32_combine arithmetic) ----

const POLY: u32 = 0xedb8_8320;

/// a·b modulo the CRC polynomial (reflected bit order).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(8·2^k) modulo the CRC polynomial, k = 0..64 (x^8, x^16, x^32, ...).
fn x8_powers() -> &'static [u32; 64] {
    static TABLE: std::sync::OnceLock<[u32; 64]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 64];
        let mut sq = multmodp(1 << 30, 1 << 30); // x^2
        sq = multmodp(sq, sq); // x^4
        sq = multmodp(sq, sq); // x^8
        for v in t.iter_mut() {
            *v = sq;
            sq = multmodp(sq, sq);
        }
        t
    })
}

/// x^(8·n) modulo the CRC polynomial.
fn x8nmodp(mut n: u64) -> u32 {
    let table = x8_powers();
    let mut p = 1u32 << 31; // x^0
    let mut k = 0;
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(table[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32 of a message with CRC `crc` followed by `n` zero bytes: short runs through the byte-wise CRC (a
/// carry-less-multiply kernel), long ones arithmetically.
pub fn crc32_zeros(crc: u32, n: u64) -> u32 {
    const ZEROS: [u8; 2048] = [0; 2048];
    if n <= ZEROS.len() as u64 {
        let mut h = crc32fast::Hasher::new_with_initial(crc);
        h.update(&ZEROS[..n as usize]);
        return h.finalize();
    }
    !multmodp(x8nmodp(n), !crc)
}

// ---- bits ----

struct Bits<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
    /// Bits handed out beyond the end of the input (zeros): a truncated stream.
    over: u32,
}

impl<'a> Bits<'a> {
    fn new(input: &'a [u8]) -> Self {
        Bits {
            input,
            pos: 0,
            buf: 0,
            n: 0,
            over: 0,
        }
    }
    #[inline]
    fn refill(&mut self) {
        if self.pos + 8 <= self.input.len() {
            let w = u64::from_le_bytes(self.input[self.pos..self.pos + 8].try_into().expect("eight bytes"));
            self.buf |= w << self.n;
            let take = (63 - self.n) / 8;
            self.pos += take as usize;
            self.n += take * 8;
        } else {
            while self.n <= 56 {
                if self.pos < self.input.len() {
                    self.buf |= (self.input[self.pos] as u64) << self.n;
                    self.pos += 1;
                } else {
                    self.over += 8;
                }
                self.n += 8;
            }
        }
    }
    #[inline]
    fn peek(&mut self, k: u32) -> u32 {
        if self.n < k {
            self.refill();
        }
        (self.buf & ((1u64 << k) - 1)) as u32
    }
    /// Up to 56 bits without consuming them.
    #[inline]
    fn peek64(&mut self, k: u32) -> u64 {
        if self.n < k {
            self.refill();
        }
        self.buf & ((1u64 << k) - 1)
    }
    /// Bits consumed so far (padding past the end included).
    #[inline]
    fn consumed(&self) -> u64 {
        self.pos as u64 * 8 + self.over as u64 - self.n as u64
    }
    #[inline]
    fn consume(&mut self, k: u32) {
        self.buf >>= k;
        self.n -= k;
    }
    #[inline]
    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        let v = self.peek(k);
        self.consume(k);
        v
    }
    /// Drops the bits up to the next byte boundary.
    fn align(&mut self) {
        let r = self.n % 8;
        self.consume(r);
    }
    /// The input position of the next unread byte (after [`Bits::align`]).
    fn byte_pos(&self) -> usize {
        self.pos - (self.n / 8) as usize + (self.over / 8) as usize
    }
    fn truncated(&self) -> bool {
        // padding bytes that were consumed, not merely buffered
        self.over > self.n
    }
}

// ---- Huffman tables ----

const FAST: u32 = 10;

/// A canonical Huffman code: a `FAST`-bit lookup table (symbol << 4 | length; 0 = longer code) and the counts and
/// sorted symbols for the slow path.
struct Huffman {
    fast: Vec<u16>,
    count: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Result<Huffman, InflateError> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        // over-subscribed codes are invalid; incomplete ones are allowed (RFC 1951 single-distance-code case)
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = left * 2 - c as i32;
            if left < 0 {
                return bad("invalid Huffman code lengths (over-subscribed)");
            }
        }
        let mut offs = [0u16; 16];
        for l in 1..15 {
            offs[l + 1] = offs[l] + count[l];
        }
        let mut symbols = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbols[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        let mut fast = vec![0u16; 1 << FAST];
        let mut code = 0u32;
        let mut next = [0u32; 16];
        for l in 1..16 {
            code = (code + count[l - 1] as u32) << 1;
            next[l] = code;
        }
        for (s, &l) in lengths.iter().enumerate() {
            let l = l as u32;
            if l == 0 || l > FAST {
                continue;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            let rev = c.reverse_bits() >> (32 - l);
            let mut i = rev;
            while i < (1 << FAST) {
                fast[i as usize] = ((s as u16) << 4) | l as u16;
                i += 1 << l;
            }
        }
        Ok(Huffman { fast, count, symbols })
    }

    #[inline]
    fn decode(&self, b: &mut Bits) -> Result<u16, InflateError> {
        let e = self.fast[b.peek(FAST) as usize];
        if e != 0 {
            b.consume((e & 15) as u32);
            return Ok(e >> 4);
        }
        // canonical decoding one bit at a time (codes longer than FAST bits)
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for l in 1..16 {
            code |= b.bits(1) as i32;
            let c = self.count[l] as i32;
            if code - first < c {
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        bad("invalid Huffman code")
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
];

// ---- output ----

const WIN: usize = 1 << 15;
const MASK: u64 = WIN as u64 - 1;

struct Out {
    win: Vec<u8>,
    pos: u64,
    /// Start of the current zero run (its bytes are not in the window yet), if one is open.
    zero_from: Option<u64>,
    /// Start of the member (positions before it belong to earlier members).
    member_start: u64,
    /// CRC-32 of the member's bytes up to the open zero run or the open segment's start.
    crc: u32,
    /// Start of the open segment in `sparse.data`, if one is open.
    seg_data: Option<usize>,
    sparse: Sparse,
    /// At most this many non-zero bytes are kept (a bound against malicious streams).
    limit: u64,
}

impl Out {
    fn new(limit: u64) -> Out {
        Out {
            win: vec![0u8; WIN],
            pos: 0,
            zero_from: Some(0),
            member_start: 0,
            crc: 0,
            seg_data: None,
            sparse: Sparse::default(),
            limit,
        }
    }

    fn close_segment(&mut self) {
        if let Some(d) = self.seg_data.take() {
            let bytes = &self.sparse.data[d..];
            let mut h = crc32fast::Hasher::new_with_initial(self.crc);
            h.update(bytes);
            self.crc = h.finalize();
            let start = self.pos - bytes.len() as u64;
            self.sparse.segments.push((start, bytes.len() as u32));
        }
    }

    /// Ends the open zero run: its bytes go into the window (the last 32 KiB of them) and into the CRC.
    fn end_zero_run(&mut self, z: u64) {
        let from = z.max(self.pos.saturating_sub(WIN as u64));
        let mut p = from;
        while p < self.pos {
            let slot = (p & MASK) as usize;
            let n = ((WIN - slot) as u64).min(self.pos - p) as usize;
            self.win[slot..slot + n].fill(0);
            p += n as u64;
        }
        self.crc = crc32_zeros(self.crc, self.pos - z);
    }

    #[inline]
    fn put(&mut self, b: u8) -> Result<(), InflateError> {
        if b == 0 {
            if self.zero_from.is_none() {
                self.close_segment();
                self.zero_from = Some(self.pos);
            }
        } else {
            if let Some(z) = self.zero_from.take() {
                self.end_zero_run(z);
            }
            if self.sparse.data.len() as u64 >= self.limit {
                return bad(format!("more than {} non-zero bytes", self.limit));
            }
            match self.seg_data {
                // a segment's length is a u32: very long ones are split
                Some(d) if self.sparse.data.len() - d < u32::MAX as usize => {}
                _ => {
                    self.close_segment();
                    self.seg_data = Some(self.sparse.data.len());
                }
            }
            self.win[(self.pos & MASK) as usize] = b;
            self.sparse.data.push(b);
        }
        self.pos += 1;
        Ok(())
    }

    /// Copies `len` bytes from `dist` back; returns true when they were all inside the open zero run (nothing
    /// written: the position moves).
    #[inline]
    fn copy(&mut self, len: u64, dist: u64) -> Result<bool, InflateError> {
        if dist > self.pos - self.member_start || dist as usize > WIN {
            return bad("a back-reference reaches before the start of the data");
        }
        let src = self.pos - dist;
        if let Some(z) = self.zero_from {
            if src >= z {
                // copies of the zero run are zeros: nothing to write
                self.pos += len;
                return Ok(true);
            }
        }
        // Gather the source (≤ 258 bytes): the part before the zero run from the window, the rest zeros; an
        // overlapping copy (dist < len) repeats its first `dist` bytes.
        let n = len as usize;
        let mut tmp = [0u8; 258];
        let head = n.min(dist as usize);
        let from_window = match self.zero_from {
            Some(z) => (z - src).min(head as u64) as usize,
            None => head,
        };
        self.read_window(src, &mut tmp[..from_window]);
        for i in head..n {
            tmp[i] = tmp[i - head];
        }
        self.put_slice(&tmp[..n])?;
        Ok(false)
    }

    /// The window's bytes from position `p` (none of them inside the open zero run).
    fn read_window(&self, p: u64, out: &mut [u8]) {
        let slot = (p & MASK) as usize;
        let first = out.len().min(WIN - slot);
        out[..first].copy_from_slice(&self.win[slot..slot + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.win[..rest]);
    }

    /// [`Out::put`] for a run of bytes: zeros extend (or open) the zero run, non-zero stretches go to the window
    /// and the open segment as slices.
    fn put_slice(&mut self, bytes: &[u8]) -> Result<(), InflateError> {
        let mut i = 0;
        while i < bytes.len() {
            if let Some(z) = self.zero_from {
                let j = bytes[i..].iter().position(|&b| b != 0).map_or(bytes.len(), |k| i + k);
                self.pos += (j - i) as u64;
                i = j;
                if i == bytes.len() {
                    break;
                }
                self.zero_from = None;
                self.end_zero_run(z);
            } else if bytes[i] == 0 {
                self.close_segment();
                self.zero_from = Some(self.pos);
                continue;
            }
            let j = bytes[i..].iter().position(|&b| b == 0).map_or(bytes.len(), |k| i + k);
            let run = &bytes[i..j];
            if (self.sparse.data.len() + run.len()) as u64 > self.limit {
                return bad(format!("more than {} non-zero bytes", self.limit));
            }
            match self.seg_data {
                Some(d) if self.sparse.data.len() - d + run.len() <= u32::MAX as usize => {}
                _ => {
                    self.close_segment();
                    self.seg_data = Some(self.sparse.data.len());
                }
            }
            self.sparse.data.extend_from_slice(run);
            let slot = (self.pos & MASK) as usize;
            let first = run.len().min(WIN - slot);
            self.win[slot..slot + first].copy_from_slice(&run[..first]);
            self.win[..run.len() - first].copy_from_slice(&run[first..]);
            self.pos += run.len() as u64;
            i = j;
        }
        Ok(())
    }

    /// The member's CRC-32 (closing what is open, then reopening the state for the next member).
    fn member_crc(&mut self) -> u32 {
        self.close_segment();
        if let Some(z) = self.zero_from {
            self.crc = crc32_zeros(self.crc, self.pos - z);
            self.zero_from = Some(self.pos);
        }
        self.crc
    }
}

fn inflate_member(b: &mut Bits, out: &mut Out) -> Result<(), InflateError> {
    loop {
        let last = b.bits(1);
        match b.bits(2) {
            0 => {
                b.align();
                let len = b.bits(16);
                let nlen = b.bits(16);
                if len != !nlen & 0xffff {
                    return bad("stored block length check failed");
                }
                for _ in 0..len {
                    let v = b.bits(8) as u8;
                    out.put(v)?;
                }
            }
            t @ (1 | 2) => {
                let (lit, dist) = if t == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l)?, Huffman::new(&[5u8; 30])?)
                } else {
                    dynamic_tables(b)?
                };
                // The bits of the last back-reference that only extended the zero run: the same bits again
                // decode to the same copy, still inside the run, so repeats are skipped without decoding.
                let mut repeat: Option<(u64, u32, u64)> = None;
                loop {
                    if let Some((bits, n, len)) = repeat {
                        while b.peek64(n) == bits {
                            b.consume(n);
                            out.pos += len;
                            if b.truncated() {
                                return bad("truncated stream");
                            }
                        }
                    }
                    let (start, ahead) = (b.consumed(), b.peek64(56));
                    let sym = lit.decode(b)?;
                    if sym < 256 {
                        repeat = None;
                        out.put(sym as u8)?;
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = (sym - 257) as usize;
                        if i >= 29 {
                            return bad("invalid length symbol");
                        }
                        let len = LBASE[i] as u64 + b.bits(LEXT[i] as u32) as u64;
                        let d = dist.decode(b)? as usize;
                        if d >= 30 {
                            return bad("invalid distance symbol");
                        }
                        let dd = DBASE[d] as u64 + b.bits(DEXT[d] as u32) as u64;
                        let n = (b.consumed() - start) as u32;
                        repeat = (out.copy(len, dd)? && n <= 56).then(|| (ahead & ((1u64 << n) - 1), n, len));
                    }
                    if b.truncated() {
                        return bad("truncated stream");
                    }
                }
            }
            _ => return bad("invalid block type 3"),
        }
        if b.truncated() {
            return bad("truncated stream");
        }
        if last == 1 {
            return Ok(());
        }
    }
}

fn dynamic_tables(b: &mut Bits) -> Result<(Huffman, Huffman), InflateError> {
    const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
    let hlit = b.bits(5) as usize + 257;
    let hdist = b.bits(5) as usize + 1;
    let hclen = b.bits(4) as usize + 4;
    if hlit > 286 || hdist > 30 {
        return bad("too many length or distance codes");
    }
    let mut cl = [0u8; 19];
    for &o in ORDER.iter().take(hclen) {
        cl[o] = b.bits(3) as u8;
    }
    let clh = Huffman::new(&cl)?;
    let mut lengths = vec![0u8; hlit + hdist];
    let mut i = 0;
    while i < lengths.len() {
        let sym = clh.decode(b)?;
        let (v, n) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                if i == 0 {
                    return bad("repeat with no previous length");
                }
                (lengths[i - 1], 3 + b.bits(2) as usize)
            }
            17 => (0, 3 + b.bits(3) as usize),
            18 => (0, 11 + b.bits(7) as usize),
            _ => return bad("invalid code length symbol"),
        };
        if i + n > lengths.len() {
            return bad("code lengths overflow");
        }
        lengths[i..i + n].fill(v);
        i += n;
        if b.truncated() {
            return bad("truncated stream");
        }
    }
    if lengths[256] == 0 {
        return bad("no end-of-block code");
    }
    Ok((Huffman::new(&lengths[..hlit])?, Huffman::new(&lengths[hlit..])?))
}

/// Skips a gzip member header; returns the offset of the deflate data.
fn gzip_header(input: &[u8]) -> Result<usize, InflateError> {
    if input.len() < 18 || input[0] != 0x1f || input[1] != 0x8b {
        return bad("not a gzip member");
    }
    if input[2] != 8 {
        return bad("unknown compression method");
    }
    let flags = input[3];
    let mut p = 10usize;
    if flags & 4 != 0 {
        let xlen = u16::from_le_bytes([input[p], input[p + 1]]) as usize;
        p += 2 + xlen;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let end = input.get(p..).and_then(|r| r.iter().position(|&c| c == 0));
            p += end.ok_or_else(|| InflateError("unterminated header string".into()))? + 1;
        }
    }
    if flags & 2 != 0 {
        p += 2;
    }
    if p >= input.len() {
        return bad("truncated header");
    }
    Ok(p)
}

/// Decodes a gzip file (one or more members) into its non-zero bytes, checking each member's CRC-32 and size.
/// At most `limit` non-zero bytes are kept; more is an error.
pub fn gunzip_sparse(input: &[u8], limit: u64) -> Result<Sparse, InflateError> {
    let mut out = Out::new(limit);
    let mut at = 0usize;
    loop {
        let start = at + gzip_header(&input[at..])?;
        let mut b = Bits::new(&input[start..]);
        out.member_start = out.pos;
        out.crc = 0;
        inflate_member(&mut b, &mut out)?;
        b.align();
        let end = start + b.byte_pos();
        let trailer = input
            .get(end..end + 8)
            .ok_or_else(|| InflateError("truncated trailer".into()))?;
        let want_crc = u32::from_le_bytes(trailer[..4].try_into().expect("four bytes"));
        let want_len = u32::from_le_bytes(trailer[4..].try_into().expect("four bytes"));
        let crc = out.member_crc();
        if crc != want_crc {
            return bad(format!("CRC-32 mismatch ({crc:08x}, trailer {want_crc:08x})"));
        }
        if (out.pos - out.member_start) as u32 != want_len {
            return bad("size mismatch with the trailer");
        }
        at = end + 8;
        if at >= input.len() || input[at..].iter().all(|&c| c == 0) {
            break;
        }
    }
    out.close_segment();
    out.sparse.len = out.pos;
    Ok(out.sparse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A tiny deterministic generator (no dependency).
    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn mask_like(nx: usize, ny: usize, nz: usize, seed: u64) -> Vec<u8> {
        // ellipsoids of label values in a zero volume, like organ masks
        let mut s = seed;
        let mut v = vec![0u8; nx * ny * nz];
        for label in 1..4u8 {
            let c = [
                (xorshift(&mut s) % nx as u64) as f64,
                (xorshift(&mut s) % ny as u64) as f64,
                (xorshift(&mut s) % nz as u64) as f64,
            ];
            let r = [6.0 + (xorshift(&mut s) % 10) as f64, 5.0, 4.0];
            for z in 0..nz {
                for y in 0..ny {
                    for x in 0..nx {
                        let d = ((x as f64 - c[0]) / r[0]).powi(2)
                            + ((y as f64 - c[1]) / r[1]).powi(2)
                            + ((z as f64 - c[2]) / r[2]).powi(2);
                        if d <= 1.0 {
                            v[(z * ny + y) * nx + x] = label;
                        }
                    }
                }
            }
        }
        v
    }

    fn dense(s: &Sparse) -> Vec<u8> {
        s.read_range(0, s.len as usize)
    }

    #[test]
    fn matches_flate2_at_every_level() {
        let mut seed = 7u64;
        let random: Vec<u8> = (0..70_000).map(|_| (xorshift(&mut seed) % 256) as u8).collect();
        let sparse_random: Vec<u8> = (0..200_000)
            .map(|_| {
                if xorshift(&mut seed).is_multiple_of(50) {
                    1 + (xorshift(&mut seed) % 255) as u8
                } else {
                    0
                }
            })
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("zeros", vec![0u8; 1_000_003]),
            ("ones", vec![1u8; 100_000]),
            ("random", random),
            ("sparse random", sparse_random),
            ("mask", mask_like(64, 48, 40, 3)),
            ("text", b"the quick brown fox jumps over the lazy dog\n".repeat(3000)),
        ];
        for (name, data) in &cases {
            for level in [0, 1, 6, 9] {
                let s =
                    gunzip_sparse(&gz(data, level), u64::MAX).unwrap_or_else(|e| panic!("{name} level {level}: {e}"));
                assert_eq!(s.len, data.len() as u64, "{name} level {level}");
                assert_eq!(dense(&s), *data, "{name} level {level}");
                assert!(s.data.iter().all(|&b| b != 0));
                assert_eq!(s.data.len(), data.iter().filter(|&&b| b != 0).count());
            }
        }
    }

    #[test]
    fn multi_member_files_are_concatenated() {
        let a = mask_like(32, 32, 16, 1);
        let b = mask_like(32, 32, 16, 2);
        let mut file = gz(&a, 6);
        file.extend(gz(&b, 1));
        let s = gunzip_sparse(&file, u64::MAX).unwrap();
        assert_eq!(dense(&s), [a, b].concat());
    }

    #[test]
    fn damage_is_an_error_not_a_wrong_answer() {
        let data = mask_like(64, 48, 40, 5);
        let file = gz(&data, 6);
        let mut crc = file.clone();
        let n = crc.len();
        crc[n - 8] ^= 1;
        assert!(gunzip_sparse(&crc, u64::MAX).unwrap_err().0.contains("CRC"));
        let mut size = file.clone();
        size[n - 4] ^= 1;
        assert!(gunzip_sparse(&size, u64::MAX).is_err());
        for cut in [n - 4, n - 9, n / 2, 20] {
            assert!(gunzip_sparse(&file[..cut], u64::MAX).is_err(), "cut at {cut}");
        }
        assert!(gunzip_sparse(b"not gzip at all, not gzip at all", u64::MAX).is_err());
        assert!(gunzip_sparse(&file, 10).unwrap_err().0.contains("non-zero"));
    }

    #[test]
    fn mutated_streams_never_panic_and_never_disagree_with_flate2() {
        // 3,000 deterministic mutations (bit flips, byte sets, truncations) of two real-looking streams: every one
        // must return (no panic, no endless loop); whatever decodes must equal what flate2 decodes
        let mut seed = 11u64;
        for (data, level) in [(mask_like(48, 40, 24, 4), 6), (mask_like(48, 40, 24, 8), 1)] {
            let file = gz(&data, level);
            for _ in 0..1500 {
                let mut m = file.clone();
                match xorshift(&mut seed) % 3 {
                    0 => {
                        let i = (xorshift(&mut seed) % m.len() as u64) as usize;
                        m[i] ^= 1 << (xorshift(&mut seed) % 8);
                    }
                    1 => {
                        let i = 10 + (xorshift(&mut seed) % (m.len() as u64 - 10)) as usize;
                        m[i] = xorshift(&mut seed) as u8;
                    }
                    _ => m.truncate((xorshift(&mut seed) % m.len() as u64) as usize),
                }
                if let Ok(s) = gunzip_sparse(&m, 1 << 24) {
                    let mut want = Vec::new();
                    let ok = std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&m[..]), &mut want);
                    assert!(ok.is_ok(), "we decoded a stream flate2 refuses");
                    assert_eq!(dense(&s), want);
                }
            }
        }
    }

    #[test]
    fn zero_run_crc_is_zlibs() {
        // crc32 of "abc" then n zeros, against crc32fast over the bytes
        for n in [0u64, 1, 7, 255, 4096, 1_000_001] {
            let mut h = crc32fast::Hasher::new();
            h.update(b"abc");
            let base = h.clone().finalize();
            h.update(&vec![0u8; n as usize]);
            assert_eq!(crc32_zeros(base, n), h.finalize(), "n = {n}");
        }
    }

    #[test]
    fn ranges_and_nonzero_positions() {
        let data = mask_like(40, 30, 20, 9);
        let s = gunzip_sparse(&gz(&data, 6), u64::MAX).unwrap();
        assert_eq!(s.read_range(1000, 5000), data[1000..6000].to_vec());
        let mut got = Vec::new();
        s.for_each_nonzero(100, 20_000, |p, b| got.push((p, b)));
        let want: Vec<(u64, u8)> = (100..20_000u64)
            .filter(|&p| data[p as usize] != 0)
            .map(|p| (p, data[p as usize]))
            .collect();
        assert_eq!(got, want);
    }
}
