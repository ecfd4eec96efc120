//! Masks from polygons and boxes, as COCO tools make them: [`polygon_mask`] is a port of pycocotools'
//! `rleFrPoly` (maskApi.c: the outline is traced on a 5× upsampled grid, the crossings of pixel-centre columns are
//! kept, and the column-major run lengths between them give the mask), so a polygon annotation becomes exactly the
//! mask `annToMask` gives. [`box_mask`] rasterises an `[x, y, w, h]` box as pycocotools' `rleFrBbox` does.

/// Row-major `h × w` mask of a polygon given as `[x0, y0, x1, y1, …]` in pixel coordinates (COCO convention:
/// pixel (c, r) covers [c, c+1) × [r, r+1)).
pub fn polygon_mask(xy: &[f64], h: usize, w: usize) -> Vec<bool> {
    let k = xy.len() / 2;
    let mut out = vec![false; h * w];
    if k == 0 || h == 0 || w == 0 {
        return out;
    }
    let scale = 5.0;
    // upsample and get discrete points densely along the entire boundary
    let mut x: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j] + 0.5) as i64).collect();
    let mut y: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j + 1] + 0.5) as i64).collect();
    x.push(x[0]);
    y.push(y[0]);
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for j in 0..k {
        let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
        let (dx, dy) = ((xe - xs).abs(), (ys - ye).abs());
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        let s = if dx >= dy {
            (ye - ys) as f64 / dx as f64
        } else {
            (xe - xs) as f64 / dy as f64
        };
        if dx >= dy {
            for d in 0..=dx {
                let t = if flip { dx - d } else { d };
                u.push(t + xs);
                v.push((ys as f64 + s * t as f64 + 0.5) as i64);
            }
        } else {
            for d in 0..=dy {
                let t = if flip { dy - d } else { d };
                v.push(t + ys);
                u.push((xs as f64 + s * t as f64 + 0.5) as i64);
            }
        }
    }
    // points along the y-boundary, downsampled
    let mut a: Vec<u64> = Vec::new();
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
        let xd = (xd + 0.5) / scale - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (w - 1) as f64 {
            continue;
        }
        let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
        let yd = ((yd + 0.5) / scale - 0.5).clamp(0.0, h as f64).ceil();
        a.push(xd as u64 * h as u64 + yd as u64);
    }
    a.push((h * w) as u64);
    a.sort_unstable();
    // differences → run lengths; zero-length runs merge their neighbours
    let mut p = 0;
    for t in a.iter_mut() {
        let cur = *t;
        *t -= p;
        p = cur;
    }
    let mut b: Vec<u64> = Vec::with_capacity(a.len());
    let mut j = 0;
    b.push(a[j]);
    j += 1;
    while j < a.len() {
        if a[j] > 0 {
            b.push(a[j]);
            j += 1;
        } else {
            j += 1;
            if j < a.len() {
                if let Some(last) = b.last_mut() {
                    *last += a[j];
                }
                j += 1;
            }
        }
    }
    // column-major runs, alternating unset/set, starting unset
    let mut idx = 0usize;
    for (n, &run) in b.iter().enumerate() {
        let run = run as usize;
        if n % 2 == 1 {
            for q in idx..(idx + run).min(h * w) {
                let (c, r) = (q / h, q % h);
                out[r * w + c] = true;
            }
        }
        idx += run;
    }
    out
}

/// Row-major `h × w` mask of a COCO box `[x, y, bw, bh]`, rasterised as pycocotools' `rleFrBbox` does: as the
/// polygon of its four corners (for whole-pixel boxes, the pixels whose centres lie inside).
pub fn box_mask(bbox: [f64; 4], h: usize, w: usize) -> Vec<bool> {
    let [x, y, bw, bh] = bbox;
    let (xe, ye) = (x + bw, y + bh);
    polygon_mask(&[x, y, x, ye, xe, ye, xe, y], h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_aligned_square_covers_its_pixels() {
        // a square with corners on pixel boundaries 2..6 covers pixel columns/rows 2..5 (pycocotools' convention
        // puts the boundary through pixel centres after the half-pixel shift; the mask is the 4×4 block)
        let m = polygon_mask(&[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0], 10, 10);
        let n = m.iter().filter(|&&b| b).count();
        assert_eq!(n, 16); // the 4×4 block of pixels 2..=5
        assert!((2..6).all(|r| (2..6).all(|c| m[r * 10 + c])));
        assert!(m[3 * 10 + 3] && !m[0] && !m[9 * 10 + 9]);
    }

    #[test]
    fn boxes_use_pixel_centres() {
        let m = box_mask([1.0, 2.0, 3.0, 2.0], 5, 6);
        let set: Vec<(usize, usize)> = (0..30).filter(|&i| m[i]).map(|i| (i / 6, i % 6)).collect();
        assert_eq!(set, [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]);
    }

    #[test]
    fn degenerate_inputs_are_empty() {
        assert!(polygon_mask(&[], 4, 4).iter().all(|&b| !b));
        assert!(polygon_mask(&[1.0, 1.0], 0, 4).is_empty());
    }
}
