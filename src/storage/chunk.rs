//! The sample compression of the storage engine: one chunk holds up to
//! [`MAX_SAMPLES`] samples of one series, encoded as a bit stream.
//!
//! Sits between the head (which appends one sample at a time to a series'
//! open chunk) and the chunk files (which store closed chunks as opaque
//! bytes). It owns the bit layout and nothing else: no I/O, no locking, no
//! knowledge of series.
//!
//! Layout: two bytes (big-endian) with the sample count, then a bit stream
//! written most significant bit first. The first sample is 64 raw bits of
//! timestamp and 64 raw bits of value. Later timestamps are stored as the
//! zig-zagged delta of the delta (Gorilla), in buckets of 0, 7, 14, 24 or 64
//! bits behind a unary prefix. Later values use one of two codes, chosen by
//! whether the previous value is an exactly representable integer:
//!
//! - previous value integral: the delta of the integer delta, bucketed like
//!   timestamps (`0`, `10`+7, `110`+12, `1110`+20, `11110`+64 bits), or the
//!   escape `11111` followed by an XOR code when the new value is not an
//!   integer. Counters that grow by a steady amount, and values that do not
//!   change, cost one bit; this is what keeps realistic counters and integer
//!   gauges well under two bytes per sample, where plain XOR costs 15-30 bits
//!   for each change of an integer counter.
//! - otherwise Gorilla's XOR code: `0` for the same bits, `1` then `0` and
//!   the meaningful bits inside the previous leading/trailing-zero window,
//!   or `1` then `1`, five bits of leading zeros, six bits of length and the
//!   meaningful bits.
//!
//! Decimal scale (chunks whose header has the top bit set, which is every
//! chunk written since; older chunks decode as scale 0): "integral" above
//! means "an exact decimal at the chunk's current scale `k`", that is
//! `m / 10^k` for an integer `m`, and the deltas are of `m`. Exporters print
//! readings such as `23.47` or `0.125`; as binary floats their XOR changes
//! 30-50 bits per sample, as hundredths they are small integers. The first
//! value sets the scale to the smallest `k` (0..=7) at which it is exact; a
//! later value that needs more digits is coded `11111` `1`, three bits of the
//! new scale, then its delta of delta at that scale (the previous value and
//! delta are multiplied up exactly). The escape to XOR is then `11111` `0`.
//!
//! Values are compared and stored as raw bits, so every float (NaN payloads,
//! the staleness marker, ±Inf, -0.0) round-trips bit-exactly. Timestamps use
//! wrapping arithmetic, so any strictly increasing `i64` sequence round-trips,
//! including gaps as wide as the whole `i64` range.

use crate::model::{Sample, Timestamp};

/// Samples per chunk before the head cuts a new one. Prometheus uses the
/// same figure: a query decodes at most this many samples to reach any
/// point, and a chunk of steady counters stays a few dozen bytes.
pub const MAX_SAMPLES: u16 = 120;

/// Bytes of the sample-count header.
const HEADER: usize = 2;

/// Header bit marking the decimal-scale layout (the count itself stays far
/// below it).
const SCALED: u16 = 0x8000;

/// Largest decimal scale: values with up to seven decimal digits.
const MAX_SCALE: u8 = 7;

/// `10^k` for every scale, as floats (all exact) and as integers.
const POW10: [f64; 8] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7];
const POW10_I: [i64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// Bound on the scaled integers, which keeps deltas and deltas of deltas far
/// from `i64` overflow.
const INT_BOUND: u64 = 1 << 53;

/// Whether `v` is an integer the integer code can carry exactly.
#[inline]
fn as_int(v: u64) -> Option<i64> {
    let f = f64::from_bits(v);
    let i = f as i64;
    ((i as f64).to_bits() == v && i.unsigned_abs() <= INT_BOUND).then_some(i)
}

/// The value of `m` at scale `k`, as the decoder computes it.
#[inline]
fn from_dec(m: i64, k: u8) -> u64 {
    if k == 0 {
        (m as f64).to_bits()
    } else {
        (m as f64 / POW10[usize::from(k)]).to_bits()
    }
}

/// `m` when the value with bits `v` is exactly `from_dec(m, k)`. Checked
/// through `from_dec` itself, so whatever this accepts decodes bit-exactly
/// (-0.0, NaN and infinities are never accepted).
#[inline]
fn as_dec(v: u64, k: u8) -> Option<i64> {
    if k == 0 {
        return as_int(v);
    }
    let m = (f64::from_bits(v) * POW10[usize::from(k)]).round();
    // NaN fails this too.
    if m.is_nan() || m.abs() > INT_BOUND as f64 {
        return None;
    }
    let m = m as i64;
    (from_dec(m, k) == v).then_some(m)
}

/// The smallest scale at which the value is an exact decimal, or 0.
fn first_scale(v: u64) -> u8 {
    (0..=MAX_SCALE)
        .find(|&k| as_dec(v, k).is_some())
        .unwrap_or(0)
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Appends bits, most significant first, to a byte vector: a view of an
/// encoder's buffer and of the bits used in its last byte (0 means the last
/// byte is full or absent). A view rather than a struct the encoder holds,
/// so that `used` fills the encoder's padding instead of padding a struct
/// of its own: every series has an open encoder.
struct BitWriter<'a> {
    buf: &'a mut Vec<u8>,
    used: &'a mut u8,
}

impl BitWriter<'_> {
    #[inline]
    fn write_bit(&mut self, bit: bool) {
        if *self.used == 0 {
            self.buf.push(0);
        }
        if bit && let Some(last) = self.buf.last_mut() {
            *last |= 0x80 >> *self.used;
        }
        *self.used = (*self.used + 1) & 7;
    }

    /// Writes the low `n` bits of `v` (`n` at most 64).
    #[inline]
    fn write_bits(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if *self.used == 0 {
                self.buf.push(0);
            }
            let free = 8 - u32::from(*self.used);
            let take = free.min(n);
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= chunk << (free - take);
            }
            n -= take;
            *self.used = ((u32::from(*self.used) + take) & 7) as u8;
        }
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug, Clone, Copy)]
struct BitReader {
    /// Position in bits from the start of the chunk's bit stream.
    pos: usize,
}

impl BitReader {
    #[inline]
    fn read_bit(&mut self, data: &[u8]) -> Option<bool> {
        let byte = *data.get(self.pos >> 3)?;
        let bit = byte & (0x80 >> (self.pos & 7)) != 0;
        self.pos += 1;
        Some(bit)
    }

    #[inline]
    fn read_bits(&mut self, data: &[u8], n: u32) -> Option<u64> {
        let mut need = n;
        let mut out: u64 = 0;
        // Whole 8-byte loads when far from the end: the common case in
        // decoding, and it avoids a loop per byte.
        if need > 0 && (self.pos >> 3) + 9 <= data.len() {
            let at = self.pos >> 3;
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[at..at + 8]);
            let hi = u64::from_be_bytes(word);
            let off = (self.pos & 7) as u32;
            let avail = 64 - off;
            if need <= avail {
                let v = (hi << off) >> (64 - need);
                self.pos += need as usize;
                return Some(v);
            }
            out = (hi << off) >> off;
            self.pos += avail as usize;
            need -= avail;
        }
        while need > 0 {
            let byte = u64::from(*data.get(self.pos >> 3)?);
            let off = (self.pos & 7) as u32;
            let avail = 8 - off;
            let take = avail.min(need);
            let bits = (byte >> (avail - take)) & ((1u64 << take) - 1);
            out = if take == 64 {
                bits
            } else {
                (out << take) | bits
            };
            self.pos += take as usize;
            need -= take;
        }
        Some(out)
    }

    /// Counts leading one bits, stopping after `max`.
    #[inline]
    fn read_unary(&mut self, data: &[u8], max: u32) -> Option<u32> {
        let mut n = 0;
        while n < max {
            if !self.read_bit(data)? {
                break;
            }
            n += 1;
        }
        Some(n)
    }
}

/// Timestamp bucket sizes by unary prefix length (0..=4 ones).
const T_BUCKETS: [u32; 5] = [0, 7, 14, 24, 64];
/// Integer-value bucket sizes by prefix length (0..=4 ones); five ones mean
/// "XOR code follows".
const I_BUCKETS: [u32; 5] = [0, 7, 12, 20, 64];

#[inline]
fn write_bucketed(w: &mut BitWriter, z: u64, buckets: &[u32; 5], escape_after: bool) {
    for (i, &bits) in buckets.iter().enumerate() {
        let last = i == buckets.len() - 1;
        if last || (bits == 0 && z == 0) || (bits > 0 && bits < 64 && z < (1u64 << bits)) {
            // Prefix: i ones then a zero. The final bucket's zero is only
            // needed when an escape code shares the prefix space.
            if i > 0 {
                w.write_bits((1u64 << i) - 1, i as u32);
            }
            if !last || escape_after {
                w.write_bit(false);
            }
            if bits > 0 {
                w.write_bits(z, bits);
            }
            return;
        }
    }
}

/// The encoder of one open chunk. Its fields are the whole state needed to
/// continue appending, so a checkpoint can store and restore it verbatim.
///
/// Every series holds one, so its size is watched (64 bytes, checked by a
/// test): the first timestamp is not kept beside the chunk, where it is the
/// first eight bytes after the header.
#[derive(Debug, Clone, Default)]
pub struct ChunkEncoder {
    buf: Vec<u8>,
    /// Bits used in the last byte of `buf` (see [`BitWriter`]).
    used: u8,
    n: u16,
    t: Timestamp,
    t_delta: u64,
    v: u64,
    int_delta: i64,
    /// XOR window: leading and trailing zeros; `leading == 0xff` means no
    /// window yet.
    leading: u8,
    trailing: u8,
    /// Current decimal scale.
    scale: u8,
    /// Whether this chunk uses the decimal-scale layout (false only for a
    /// chunk restored from a checkpoint written before it existed).
    scaled: bool,
}

impl ChunkEncoder {
    pub fn new() -> Self {
        let mut e = ChunkEncoder::default();
        e.reset();
        e
    }

    /// Empties the encoder, keeping its buffer's capacity so a series that
    /// cuts chunks regularly does not reallocate each time.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; HEADER]);
        self.used = 0;
        self.n = 0;
        self.t = 0;
        self.t_delta = 0;
        self.v = 0;
        self.int_delta = 0;
        self.leading = 0xff;
        self.trailing = 0;
        self.scale = 0;
        self.scaled = true;
    }

    pub fn len(&self) -> u16 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Timestamp of the first sample (meaningless when empty): the chunk
    /// starts with it, all 64 bits, right after the header.
    pub fn min_t(&self) -> Timestamp {
        self.buf
            .get(HEADER..HEADER + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, i64::from_be_bytes)
    }

    /// Timestamp of the newest sample (meaningless when empty).
    pub fn max_t(&self) -> Timestamp {
        self.t
    }

    /// Raw bits of the newest value (meaningless when empty).
    pub fn last_value_bits(&self) -> u64 {
        self.v
    }

    /// The encoded chunk: header plus bit stream.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Heap bytes held by the buffer, for memory accounting.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn w(&mut self) -> BitWriter<'_> {
        BitWriter {
            buf: &mut self.buf,
            used: &mut self.used,
        }
    }

    /// Appends a sample. The caller guarantees `t` is greater than the
    /// previous timestamp; equal or smaller timestamps would decode wrongly.
    pub fn append(&mut self, t: Timestamp, v: f64) {
        let bits = v.to_bits();
        match self.n {
            0 => {
                let mut w = self.w();
                w.write_bits(t as u64, 64);
                w.write_bits(bits, 64);
                self.t_delta = 0;
                self.int_delta = 0;
                if self.scaled {
                    self.scale = first_scale(bits);
                }
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                write_bucketed(&mut self.w(), zigzag(dod), &T_BUCKETS, false);
                self.t_delta = delta;
                self.append_value(bits);
            }
        }
        self.t = t;
        self.v = bits;
        self.n += 1;
        let header = if self.scaled { self.n | SCALED } else { self.n };
        self.buf[..HEADER].copy_from_slice(&header.to_be_bytes());
    }

    fn append_value(&mut self, bits: u64) {
        match as_dec(self.v, self.scale) {
            Some(prev) => match as_dec(bits, self.scale) {
                Some(cur) => {
                    let delta = cur - prev;
                    let dod = delta - self.int_delta;
                    write_bucketed(&mut self.w(), zigzag(dod), &I_BUCKETS, true);
                    self.int_delta = delta;
                }
                None if self.scaled => match self.rescale(prev, bits) {
                    Some((scale, dod, delta)) => {
                        // Escape `11111`, then `1`: rescale.
                        let mut w = self.w();
                        w.write_bits(0b11_1111, 6);
                        w.write_bits(u64::from(scale), 3);
                        write_bucketed(&mut w, zigzag(dod), &I_BUCKETS, true);
                        self.scale = scale;
                        self.int_delta = delta;
                    }
                    None => {
                        // Escape `11111`, then `0`: XOR.
                        self.w().write_bits(0b11_1110, 6);
                        self.write_xor(self.v ^ bits);
                        self.int_delta = 0;
                    }
                },
                None => {
                    self.w().write_bits(0b11111, 5);
                    self.write_xor(self.v ^ bits);
                    self.int_delta = 0;
                }
            },
            None => {
                let x = self.v ^ bits;
                if x == 0 {
                    self.w().write_bit(false);
                } else {
                    self.w().write_bit(true);
                    self.write_xor(x);
                }
                self.int_delta = 0;
            }
        }
    }

    /// A larger scale at which `bits` is an exact decimal and the previous
    /// value (`prev` at the current scale) and delta still fit once
    /// multiplied up: the scale, the delta of delta and the delta there.
    fn rescale(&self, prev: i64, bits: u64) -> Option<(u8, i64, i64)> {
        (self.scale + 1..=MAX_SCALE).find_map(|k| {
            let cur = as_dec(bits, k)?;
            let f = POW10_I[usize::from(k - self.scale)];
            let prev = prev
                .checked_mul(f)
                .filter(|p| p.unsigned_abs() <= INT_BOUND)?;
            let last = self.int_delta.checked_mul(f)?;
            let delta = cur - prev;
            Some((k, delta.checked_sub(last)?, delta))
        })
    }

    /// Writes a non-zero XOR in Gorilla's windowed form.
    fn write_xor(&mut self, x: u64) {
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            let len = 64 - u32::from(self.leading) - u32::from(self.trailing);
            let kept = x >> self.trailing;
            let mut w = self.w();
            w.write_bit(false);
            w.write_bits(kept, len);
        } else {
            let len = 64 - u32::from(leading) - u32::from(trailing);
            let mut w = self.w();
            w.write_bit(true);
            w.write_bits(u64::from(leading), 5);
            // A length of 64 does not fit in six bits; it is stored as 0,
            // which cannot otherwise occur because the XOR is non-zero.
            w.write_bits(u64::from(len & 63), 6);
            w.write_bits(x >> trailing, len);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// Serialises the encoder state (for checkpoints).
    pub fn encode_state(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.t.to_le_bytes());
        out.extend_from_slice(&self.t_delta.to_le_bytes());
        out.extend_from_slice(&self.v.to_le_bytes());
        out.extend_from_slice(&self.int_delta.to_le_bytes());
        // The first timestamp, redundant with the chunk's first bytes and
        // ignored on load, keeps the layout checkpoints have always had.
        out.extend_from_slice(&self.min_t().to_le_bytes());
        out.push(self.leading);
        out.push(self.trailing);
        // Bit usage of the last byte (0..=7) and the scale share a byte, so
        // states saved before scales existed (scale bits 0) still load.
        out.push(self.used | (self.scale << 3));
        out.extend_from_slice(&(self.buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.buf);
    }

    /// Restores a state written by [`ChunkEncoder::encode_state`], returning
    /// it and the bytes consumed, or `None` when `data` is not such a state.
    pub fn decode_state(data: &[u8]) -> Option<(ChunkEncoder, usize)> {
        const FIXED: usize = 8 * 5 + 3 + 4;
        if data.len() < FIXED {
            return None;
        }
        let u = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&data[43..47]);
        let len = u32::from_le_bytes(len) as usize;
        let buf = data.get(FIXED..FIXED + len)?;
        let (used, scale) = (data[42] & 7, data[42] >> 3);
        if buf.len() < HEADER || scale > MAX_SCALE {
            return None;
        }
        let header = u16::from_be_bytes([buf[0], buf[1]]);
        let scaled = header & SCALED != 0;
        if !scaled && scale != 0 {
            return None;
        }
        let e = ChunkEncoder {
            buf: buf.to_vec(),
            used,
            n: header & !SCALED,
            scale,
            // An empty state starts the new layout whatever it was saved as.
            scaled: scaled || header & !SCALED == 0,
            t: u(0) as i64,
            t_delta: u(1),
            v: u(2),
            int_delta: u(3) as i64,
            leading: data[40],
            trailing: data[41],
        };
        Some((e, FIXED + len))
    }
}

/// Number of samples in an encoded chunk.
pub fn sample_count(chunk: &[u8]) -> u16 {
    match chunk {
        [a, b, ..] => u16::from_be_bytes([*a, *b]) & !SCALED,
        _ => 0,
    }
}

/// Decoding state of one chunk. It does not borrow the chunk bytes, so an
/// iterator can own the bytes (or a mapping) and hand them in per call.
#[derive(Debug, Clone)]
pub struct ChunkDecoder {
    r: BitReader,
    n: u16,
    read: u16,
    t: Timestamp,
    t_delta: u64,
    v: u64,
    int_delta: i64,
    leading: u8,
    trailing: u8,
    scale: u8,
    scaled: bool,
}

impl ChunkDecoder {
    pub fn new(chunk: &[u8]) -> Self {
        ChunkDecoder {
            r: BitReader { pos: HEADER * 8 },
            n: sample_count(chunk),
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            int_delta: 0,
            leading: 0,
            trailing: 0,
            scale: 0,
            scaled: matches!(chunk, [a, ..] if *a & 0x80 != 0),
        }
    }

    /// The next sample, or `None` at the end or on malformed data (chunk
    /// bytes are checksummed before they get here, so malformed data means
    /// a bug, and stopping is the safe answer).
    #[inline]
    pub fn next(&mut self, chunk: &[u8]) -> Option<Sample> {
        if self.read >= self.n {
            return None;
        }
        if self.read == 0 {
            self.t = self.r.read_bits(chunk, 64)? as i64;
            self.v = self.r.read_bits(chunk, 64)?;
            if self.scaled {
                self.scale = first_scale(self.v);
            }
        } else {
            let p = self.r.read_unary(chunk, 4)?;
            let z = self.r.read_bits(chunk, T_BUCKETS[p as usize])?;
            let delta = self.t_delta.wrapping_add(unzigzag(z) as u64);
            self.t_delta = delta;
            self.t = self.t.wrapping_add(delta as i64);
            self.read_value(chunk)?;
        }
        self.read += 1;
        Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }

    #[inline]
    fn read_value(&mut self, chunk: &[u8]) -> Option<()> {
        match as_dec(self.v, self.scale) {
            Some(mut prev) => {
                let mut p = self.r.read_unary(chunk, 5)?;
                if p == 5 && self.scaled && self.r.read_bit(chunk)? {
                    let scale = self.r.read_bits(chunk, 3)? as u8;
                    let f = POW10_I[usize::from(scale.checked_sub(self.scale + 1)? + 1)];
                    prev = prev.wrapping_mul(f);
                    self.int_delta = self.int_delta.wrapping_mul(f);
                    self.scale = scale;
                    p = self.r.read_unary(chunk, 5)?;
                    if p == 5 {
                        return None;
                    }
                }
                if p == 5 {
                    let x = self.read_xor(chunk)?;
                    self.v ^= x;
                    self.int_delta = 0;
                } else {
                    let z = self.r.read_bits(chunk, I_BUCKETS[p as usize])?;
                    let delta = self.int_delta.wrapping_add(unzigzag(z));
                    self.int_delta = delta;
                    self.v = from_dec(prev.wrapping_add(delta), self.scale);
                }
            }
            None => {
                if self.r.read_bit(chunk)? {
                    let x = self.read_xor(chunk)?;
                    self.v ^= x;
                }
                self.int_delta = 0;
            }
        }
        Some(())
    }

    fn read_xor(&mut self, chunk: &[u8]) -> Option<u64> {
        if self.r.read_bit(chunk)? {
            self.leading = self.r.read_bits(chunk, 5)? as u8;
            let mut len = self.r.read_bits(chunk, 6)? as u32;
            if len == 0 {
                len = 64;
            }
            self.trailing = (64 - u32::from(self.leading)).checked_sub(len)? as u8;
        }
        let len = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let bits = self.r.read_bits(chunk, len)?;
        Some(bits.checked_shl(u32::from(self.trailing)).unwrap_or(0))
    }
}

/// Decodes every sample of a chunk (tests and tools; queries decode lazily).
pub fn decode_all(chunk: &[u8]) -> Vec<Sample> {
    let mut d = ChunkDecoder::new(chunk);
    let mut out = Vec::with_capacity(usize::from(sample_count(chunk)));
    while let Some(s) = d.next(chunk) {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;
    use proptest::prelude::*;

    #[test]
    fn open_encoder_stays_small_and_knows_its_first_timestamp() {
        // One per series: growing it grows every series' allocation.
        assert_eq!(std::mem::size_of::<ChunkEncoder>(), 64);
        let mut e = ChunkEncoder::new();
        assert_eq!(e.min_t(), 0);
        for t in [-5_000, 10, 20] {
            e.append(t, 1.5);
        }
        assert_eq!((e.min_t(), e.max_t()), (-5_000, 20));
        e.reset();
        e.append(i64::MAX - 1, 0.0);
        assert_eq!(e.min_t(), i64::MAX - 1);
    }

    fn roundtrip(samples: &[(i64, u64)]) {
        let mut e = ChunkEncoder::new();
        for &(t, v) in samples {
            e.append(t, f64::from_bits(v));
        }
        let got: Vec<(i64, u64)> = decode_all(e.bytes())
            .into_iter()
            .map(|s| (s.t, s.v.to_bits()))
            .collect();
        assert_eq!(got, samples);
        // The saved state resumes to the same bytes.
        let mut st = Vec::new();
        e.encode_state(&mut st);
        let (r, used) = ChunkEncoder::decode_state(&st).unwrap();
        assert_eq!(used, st.len());
        assert_eq!(r.bytes(), e.bytes());
        assert_eq!(r.len(), e.len());
    }

    #[test]
    fn special_floats_round_trip_bit_exactly() {
        let vals = [
            0.0f64.to_bits(),
            (-0.0f64).to_bits(),
            stale_nan().to_bits(),
            f64::NAN.to_bits(),
            0x7ff8_dead_beef_0001,
            0xfff0_0000_0000_0001,
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            1.0f64.to_bits(),
            (-0.0f64).to_bits(),
            9007199254740992.0f64.to_bits(),
            (-9007199254740992.0f64).to_bits(),
            9007199254740994.0f64.to_bits(),
            f64::MIN_POSITIVE.to_bits(),
            5e-324f64.to_bits(),
            f64::MAX.to_bits(),
        ];
        let samples: Vec<(i64, u64)> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 15_000, v))
            .collect();
        roundtrip(&samples);
    }

    #[test]
    fn extreme_timestamps() {
        roundtrip(&[(i64::MIN, 1), (0, 2), (i64::MAX, 3)]);
        roundtrip(&[(i64::MIN, 0), (i64::MAX, 0)]);
        roundtrip(&[(-5, 0)]);
    }

    #[test]
    fn steady_counter_costs_about_two_bits_per_sample() {
        let mut e = ChunkEncoder::new();
        for i in 0..120i64 {
            e.append(
                1_700_000_000_000 + i * 15_000,
                (1_000_000 + i * 100_000) as f64,
            );
        }
        // 18 bytes for header and first sample, 7 for the second (first
        // deltas), then 2 bits per sample.
        assert!(
            e.bytes().len() <= 18 + 7 + 118 * 2 / 8 + 1,
            "{}",
            e.bytes().len()
        );
    }

    #[test]
    fn decimal_readings_cost_under_two_bytes_per_sample() {
        // A sensor printed to hundredths: 23.47, 23.52, ...
        let mut e = ChunkEncoder::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..120i64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let hundredths = 2300 + (300.0 * (i as f64 / 20.0).sin()) as i64 + (rng % 10) as i64;
            e.append(1_700_000_000_000 + i * 15_000, hundredths as f64 / 100.0);
        }
        let per_sample = e.bytes().len() as f64 / 120.0;
        assert!(per_sample < 2.0, "{per_sample}");
        let got = decode_all(e.bytes());
        assert_eq!(got.len(), 120);
    }

    #[test]
    fn scale_grows_within_a_chunk() {
        let vals: [f64; 14] = [
            1.0,
            2.0,
            2.5,
            2.75,
            3.125,
            0.1 + 0.2,
            4.0,
            4.01,
            1e9 + 0.5,
            9_007_199_254.740_992,
            -0.0,
            0.000_000_1,
            0.000_000_12,
            5.0,
        ];
        let samples: Vec<(i64, u64)> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 1000, v.to_bits()))
            .collect();
        roundtrip(&samples);
        // A scale change costs a few bits, not an XOR: 0.5 steps after an
        // integer stay cheap.
        let mut e = ChunkEncoder::new();
        for i in 0..120i64 {
            e.append(i * 15_000, 10.0 + i as f64 * 0.5);
        }
        assert!(e.bytes().len() < 18 + 40, "{}", e.bytes().len());
    }

    #[test]
    fn chunks_of_the_earlier_layout_still_decode() {
        // An encoder restored from a state saved before decimal scales
        // existed keeps writing that layout (header bit clear); both decode.
        let mut e = ChunkEncoder::new();
        e.scaled = false;
        let vals = [1.0, 2.0, 2.5, 3.0, 7.25, 7.25, 8.0, f64::NAN, 9.0];
        for (i, v) in vals.iter().enumerate() {
            e.append(i as i64 * 15_000, *v);
        }
        // The exact bytes the encoder wrote before decimal scales existed.
        let earlier: [u8; 40] = [
            0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 63, 240, 0, 0, 0, 0, 0, 0, 224, 7, 83, 8, 19, 246, 131,
            108, 11, 126, 177, 106, 53, 13, 235, 241, 23, 254, 216, 141, 255, 104,
        ];
        assert_eq!(e.bytes(), earlier);
        let got: Vec<u64> = decode_all(&earlier).iter().map(|s| s.v.to_bits()).collect();
        let want: Vec<u64> = vals.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        let mut st = Vec::new();
        e.encode_state(&mut st);
        let (mut r, _) = ChunkEncoder::decode_state(&st).unwrap();
        assert!(!r.scaled);
        r.append(200_000, 9.5);
        assert_eq!(decode_all(r.bytes()).len(), vals.len() + 1);
    }

    fn sample_strategy() -> impl Strategy<Value = Vec<(i64, u64)>> {
        let value = prop_oneof![
            any::<u64>(),
            Just(stale_nan().to_bits()),
            Just(f64::NAN.to_bits()),
            Just(f64::INFINITY.to_bits()),
            Just(f64::NEG_INFINITY.to_bits()),
            Just((-0.0f64).to_bits()),
            (-1_000_000i64..1_000_000).prop_map(|i| (i as f64).to_bits()),
            (0u32..4).prop_map(|i| (f64::from(i) * 0.25).to_bits()),
            any::<i64>().prop_map(|i| (i as f64).to_bits()),
            (-100_000_000i64..100_000_000, 0usize..9)
                .prop_map(|(m, k)| (m as f64 / 10f64.powi(k as i32)).to_bits()),
            (any::<i64>(), 0usize..8).prop_map(|(m, k)| (m as f64 / POW10[k]).to_bits()),
        ];
        let gap = prop_oneof![
            1u64..3,
            14_990u64..15_010,
            any::<u64>(),
            Just(15_000u64),
            (1u64 << 20)..(1u64 << 40),
        ];
        (
            any::<i64>(),
            proptest::collection::vec((gap, value), 1..300),
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                let mut out = Vec::new();
                for (g, v) in steps {
                    if !out.is_empty() {
                        match t.checked_add_unsigned(g) {
                            Some(n) if n > t => t = n,
                            _ => break,
                        }
                    }
                    out.push((t, v));
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn encode_decode_round_trips(samples in sample_strategy()) {
            roundtrip(&samples);
        }
    }
}
