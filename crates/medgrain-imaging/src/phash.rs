//! The perceptual hash of the `imagehash` library (`imagehash.phash`, hash size 8, high-frequency factor 4), bit for
//! bit: Pillow's `convert("L")` (ITU-R 601-2 luma in Pillow's fixed point: `(R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16`),
//! Pillow's Lanczos resize to 32×32 (its two-pass fixed-point resampler, `Resample.c`), the type-II DCT of rows then
//! columns (scipy's unnormalised `dct`), the top-left 8×8 coefficients compared with their median. Bit 63 is
//! coefficient (0, 0), as `str(imagehash.phash(img))` prints the hash in hexadecimal.

use crate::{decode_raster, ImagingError, PixelData, Raster, Result};
use std::path::Path;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output index, `(first input index, fixed-point
/// weights)`.
fn coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = (in_size as f32 as f64) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 3.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut k: Vec<f64> = (0..n)
                .map(|x| lanczos((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            let one = (1i64 << PRECISION_BITS) as f64;
            let kk = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin, kk)
        })
        .collect()
}

fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize((ow, oh), LANCZOS)` of an 8-bit greyscale image (`src` row-major `w × h`).
pub fn resize_lanczos_l(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    if w == ow && h == oh {
        return src.to_vec();
    }
    let horiz = coeffs(w, ow);
    let mut vert = coeffs(h, oh);
    let need_h = ow != w;
    let need_v = oh != h;
    let first = vert.first().map_or(0, |v| v.0);
    let last = vert.last().map_or(h, |v| v.0 + v.1.len());
    let (tmp, tw) = if need_h {
        // Horizontal pass over the rows the vertical pass reads.
        for v in vert.iter_mut() {
            v.0 -= first;
        }
        let rows = last - first;
        let mut t = vec![0u8; ow * rows];
        for y in 0..rows {
            let row = &src[(y + first) * w..(y + first + 1) * w];
            for (xx, (xmin, k)) in horiz.iter().enumerate() {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (x, kv) in k.iter().enumerate() {
                    ss = ss.wrapping_add(row[x + xmin] as i32 * kv);
                }
                t[y * ow + xx] = clip8(ss);
            }
        }
        (t, ow)
    } else {
        (src.to_vec(), w)
    };
    if !need_v {
        return tmp;
    }
    let mut out = vec![0u8; tw * oh];
    for (yy, (ymin, k)) in vert.iter().enumerate() {
        for xx in 0..tw {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, kv) in k.iter().enumerate() {
                ss = ss.wrapping_add(tmp[(y + ymin) * tw + xx] as i32 * kv);
            }
            out[yy * tw + xx] = clip8(ss);
        }
    }
    out
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Pillow's `convert("L")` of a decoded raster (16-bit greyscale clipped at 255 as Pillow's `I;16 → L`; 16-bit
/// colour reduced to its high byte as Pillow reads it; alpha ignored).
pub fn to_l(r: &Raster) -> Vec<u8> {
    let c = r.channels as usize;
    match &r.data {
        PixelData::U8(v) => match c {
            1 => v.clone(),
            2 => v.chunks_exact(2).map(|p| p[0]).collect(),
            _ => v.chunks_exact(c).map(|p| luma(p[0], p[1], p[2])).collect(),
        },
        PixelData::U16(v) => match c {
            1 | 2 => v.chunks_exact(c).map(|p| p[0].min(255) as u8).collect(),
            _ => v
                .chunks_exact(c)
                .map(|p| luma((p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8))
                .collect(),
        },
        PixelData::F32(v) => match c {
            1 | 2 => v.chunks_exact(c).map(|p| p[0].clamp(0.0, 255.0) as u8).collect(),
            _ => v
                .chunks_exact(c)
                .map(|p| {
                    let q = |x: f32| x.clamp(0.0, 255.0) as u8;
                    luma(q(p[0]), q(p[1]), q(p[2]))
                })
                .collect(),
        },
    }
}

/// The 64-bit pHash of an 8-bit greyscale image.
pub fn phash_l(l: &[u8], w: usize, h: usize) -> u64 {
    const N: usize = 32;
    let px = resize_lanczos_l(l, w, h, N, N);
    // c[k][n] = cos(π k (2n + 1) / 2N); scipy's dct: y[k] = 2 Σ x[n] c[k][n].
    let mut c = [[0f64; N]; 8];
    for (k, row) in c.iter_mut().enumerate() {
        for (n, v) in row.iter_mut().enumerate() {
            *v = (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * N) as f64).cos();
        }
    }
    // Along axis 0 (rows): a[u][x] = 2 Σ_y p[y][x] c[u][y], then axis 1: d[u][v] = 2 Σ_x a[u][x] c[v][x].
    let mut a = [[0f64; N]; 8];
    for u in 0..8 {
        for x in 0..N {
            a[u][x] = 2.0 * (0..N).map(|y| px[y * N + x] as f64 * c[u][y]).sum::<f64>();
        }
    }
    let mut d = [0f64; 64];
    for u in 0..8 {
        for v in 0..8 {
            d[u * 8 + v] = 2.0 * (0..N).map(|x| a[u][x] * c[v][x]).sum::<f64>();
        }
    }
    let mut s = d;
    s.sort_by(f64::total_cmp);
    let med = (s[31] + s[32]) / 2.0;
    d.iter().fold(0u64, |acc, &v| (acc << 1) | (v > med) as u64)
}

/// pHash of an image file's bytes (PNG, JPEG — decoded by libjpeg-turbo as Pillow does —, TIFF).
pub fn phash_bytes(bytes: &[u8], path: &Path) -> Result<u64> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let (w, h, c, px) = crate::jpeg::decode_file(bytes).map_err(|reason| ImagingError::Decode {
            path: path.to_path_buf(),
            reason,
        })?;
        let l: Vec<u8> = if c == 1 {
            px
        } else {
            px.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect()
        };
        return Ok(phash_l(&l, w, h));
    }
    let r = decode_raster(bytes, path)?;
    Ok(phash_l(&to_l(&r), r.width as usize, r.height as usize))
}

/// The hash as `imagehash` prints it: 16 hexadecimal digits.
pub fn hex(h: u64) -> String {
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant image resizes to itself (weights sum to one in fixed point).
    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 100 * 60];
        assert!(resize_lanczos_l(&src, 100, 60, 32, 32).iter().all(|&v| v == 77));
    }

    /// Hand-derived: a left-dark, right-bright image: only horizontal frequencies differ from 0; (0,0) is the
    /// largest coefficient, so bit 63 is set.
    #[test]
    fn dc_bit_set_for_bright_image() {
        let mut src = vec![0u8; 64 * 64];
        for y in 0..64 {
            for x in 32..64 {
                src[y * 64 + x] = 200;
            }
        }
        let h = phash_l(&src, 64, 64);
        assert_eq!(h >> 63, 1);
    }
}
