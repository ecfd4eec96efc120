//! COCO run-length encoding in pycocotools' compressed string form (`rleToString` / `rleFrString` in
//! `maskApi.c`): runs over the column-major (Fortran order) flattening, starting with a run of zeros, each
//! count delta-coded against the count two places back and written as 5-bit groups offset by 48.

use crate::RoiError;
use medgrain_records::MaskRle;

/// Encodes a mask given as a predicate on `(row, col)`.
pub fn encode_with(height: usize, width: usize, is_set: impl Fn(usize, usize) -> bool) -> MaskRle {
    encode_window(height, width, [0, height], [0, width], is_set)
}

/// Encodes a mask that is unset outside rows `rows[0]..rows[1]` and columns `cols[0]..cols[1]`, visiting only that
/// window: the same string as [`encode_with`] over the whole image.
pub fn encode_window(
    height: usize,
    width: usize,
    rows: [usize; 2],
    cols: [usize; 2],
    is_set: impl Fn(usize, usize) -> bool,
) -> MaskRle {
    // positions are column-major indices; a run ends where the value changes
    struct Runs {
        counts: Vec<i64>,
        current: bool,
        start: usize,
    }
    impl Runs {
        fn visit(&mut self, v: bool, pos: usize) {
            if v != self.current {
                self.counts.push((pos - self.start) as i64);
                self.start = pos;
                self.current = v;
            }
        }
    }
    let mut runs = Runs {
        counts: Vec::new(),
        current: false,
        start: 0,
    };
    let (r1, c1) = (rows[1].min(height), cols[1].min(width));
    for c in cols[0]..c1 {
        let base = c * height;
        if rows[0] > 0 {
            runs.visit(false, base);
        }
        for r in rows[0]..r1 {
            runs.visit(is_set(r, c), base + r);
        }
        if r1 < height {
            runs.visit(false, base + r1);
        }
    }
    if c1 < width {
        runs.visit(false, c1 * height);
    }
    let mut counts = runs.counts;
    counts.push((height * width - runs.start) as i64);
    MaskRle {
        size: [height as i32, width as i32],
        counts: counts_to_string(&counts),
    }
}

/// Encodes a row-major boolean mask.
pub fn encode(height: usize, width: usize, mask: &[bool]) -> MaskRle {
    encode_with(height, width, |r, c| mask[r * width + c])
}

fn counts_to_string(counts: &[i64]) -> String {
    let mut s = String::new();
    for (i, &c) in counts.iter().enumerate() {
        let mut x = c;
        if i > 2 {
            x -= counts[i - 2];
        }
        loop {
            let mut ch = x & 0x1f;
            x >>= 5;
            let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                ch |= 0x20;
            }
            s.push((ch as u8 + 48) as char);
            if !more {
                break;
            }
        }
    }
    s
}

fn string_to_counts(s: &str) -> Result<Vec<i64>, RoiError> {
    let bytes = s.as_bytes();
    let mut counts = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0;
        loop {
            let b = *bytes
                .get(p)
                .ok_or_else(|| RoiError::Rle("string ends inside a count".into()))?;
            if !(48..48 + 64).contains(&b) {
                return Err(RoiError::Rle(format!("byte {b} is outside the RLE alphabet")));
            }
            if k >= 12 {
                return Err(RoiError::Rle("count is too long".into()));
            }
            let c = (b - 48) as i64;
            x |= (c & 0x1f) << (5 * k);
            let more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        let i = counts.len();
        if i > 2 {
            x += counts[i - 2];
        }
        counts.push(x);
    }
    Ok(counts)
}

/// The crack boundary of a row-major mask: every pixel edge between a set pixel and an unset one (or the border),
/// as an SVG path in pixel coordinates.
pub fn outline_path(mask: &[bool], h: usize, w: usize) -> String {
    use std::fmt::Write;
    let at = |r: isize, c: isize| {
        r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w && mask[r as usize * w + c as usize]
    };
    let mut d = String::new();
    for r in 0..h as isize {
        for c in 0..w as isize {
            if !at(r, c) {
                continue;
            }
            if !at(r - 1, c) {
                let _ = write!(d, "M{c} {r}h1");
            }
            if !at(r + 1, c) {
                let _ = write!(d, "M{c} {}h1", r + 1);
            }
            if !at(r, c - 1) {
                let _ = write!(d, "M{c} {r}v1");
            }
            if !at(r, c + 1) {
                let _ = write!(d, "M{} {r}v1", c + 1);
            }
        }
    }
    d
}

/// Decodes to a row-major boolean mask of `size[0] × size[1]`.
pub fn decode(rle: &MaskRle) -> Result<Vec<bool>, RoiError> {
    let (h, w) = (rle.size[0], rle.size[1]);
    if h < 0 || w < 0 {
        return Err(RoiError::Rle(format!("negative size {:?}", rle.size)));
    }
    let (h, w) = (h as usize, w as usize);
    let n = h * w;
    let counts = string_to_counts(&rle.counts)?;
    let mut out = vec![false; n];
    let mut pos = 0usize;
    let mut value = false;
    for c in counts {
        if c < 0 || pos + c as usize > n {
            return Err(RoiError::Rle(format!("runs exceed the {h}x{w} mask")));
        }
        if value {
            for k in pos..pos + c as usize {
                let (col, row) = (k / h, k % h);
                out[row * w + col] = true;
            }
        }
        pos += c as usize;
        value = !value;
    }
    if pos != n {
        return Err(RoiError::Rle(format!("runs cover {pos} of {n} pixels")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain scan of every pixel in column-major order (how `encode` worked before windows).
    fn naive_counts(h: usize, w: usize, m: &[bool]) -> Vec<i64> {
        let (mut counts, mut cur, mut run) = (Vec::new(), false, 0i64);
        for c in 0..w {
            for r in 0..h {
                if m[r * w + c] != cur {
                    counts.push(run);
                    run = 0;
                    cur = m[r * w + c];
                }
                run += 1;
            }
        }
        counts.push(run);
        counts
    }

    #[test]
    fn window_encoding_equals_the_full_scan() {
        // pseudo-random blobs in boxes touching every edge and corner, and fully set / empty images
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for case in 0..400 {
            let (h, w) = (1 + next() % 12, 1 + next() % 12);
            let (r0, c0) = (next() % h, next() % w);
            let (r1, c1) = (r0 + 1 + next() % (h - r0), c0 + 1 + next() % (w - c0));
            let mut m = vec![false; h * w];
            for r in r0..r1 {
                for c in c0..c1 {
                    m[r * w + c] = case % 7 == 0 || next() % 3 != 0;
                }
            }
            let got = encode_window(h, w, [r0, r1], [c0, c1], |r, c| m[r * w + c]);
            let want = MaskRle {
                size: [h as i32, w as i32],
                counts: counts_to_string(&naive_counts(h, w, &m)),
            };
            assert_eq!(got, want, "case {case}: {h}x{w} window {r0}..{r1} x {c0}..{c1}");
        }
        let full = vec![true; 12];
        assert_eq!(encode(3, 4, &full).counts, counts_to_string(&[0, 12]));
        assert_eq!(encode(3, 4, &[false; 12]).counts, counts_to_string(&[12]));
    }

    #[test]
    fn hand_derived_small_mask() {
        // 2x3 mask, column-major: col0 = [0,1], col1 = [1,1], col2 = [0,0]
        // flattened: 0 1 1 1 0 0 -> counts [1, 3, 2]; deltas: i<=2 unchanged -> chars 48+1, 48+3, 48+2
        let mask = [false, true, false, true, true, false];
        let rle = encode(2, 3, &mask);
        assert_eq!(rle.counts, "132");
        assert_eq!(decode(&rle).unwrap(), mask.to_vec());
    }

    #[test]
    fn large_and_negative_deltas_round_trip() {
        let (h, w) = (37, 53);
        let mask: Vec<bool> = (0..h * w)
            .map(|i| (i * 7919 % 13) < 4 || (i > 900 && i < 1500))
            .collect();
        let rle = encode(h, w, &mask);
        assert_eq!(decode(&rle).unwrap(), mask);
    }

    #[test]
    fn empty_and_full_masks() {
        let rle = encode(4, 4, &[false; 16]);
        // 16 zeros: 16 = 0b10000 has the sign bit of its 5-bit group set, so a continuation group follows:
        // (16 | 0x20) + 48 = 96 = '`', then 0 + 48 = '0'.
        assert_eq!(rle.counts, "`0");
        assert!(decode(&rle).unwrap().iter().all(|v| !v));
        let full = encode(4, 4, &[true; 16]);
        assert!(decode(&full).unwrap().iter().all(|&v| v));
    }

    #[test]
    fn corrupt_strings_are_errors() {
        let bad = MaskRle {
            size: [2, 2],
            counts: "9".into(),
        };
        assert!(decode(&bad).is_err());
        let alphabet = MaskRle {
            size: [2, 2],
            counts: "\u{7f}".into(),
        };
        assert!(decode(&alphabet).is_err());
    }
}
