//! Organ context of an ROI on a slice: which organ holds or surrounds it, and the organ's own intensity (HU for
//! CT) with the ROI's attenuation against it. Organs come as one label per pixel (0 = none), row-major like the ROI
//! mask.

/// Organ `k`'s mean and std on the slice (its pixels outside the ROI; `None` below 10 pixels) and the ROI's
/// attenuation against that mean (`ORGAN_ISO_BAND_HU` either side counts as iso-attenuating, as for the ROI against
/// its shell).
pub fn organ_intensity(
    k: u16,
    mask: &[bool],
    organs: &[u16],
    values: &[f64],
    roi_mean: Option<f64>,
) -> Option<(f64, f64, Option<&'static str>)> {
    const ORGAN_ISO_BAND_HU: f64 = 10.0;
    if values.len() != organs.len() {
        return None;
    }
    let (mut n, mut sum, mut sum2) = (0usize, 0.0, 0.0);
    for ((&l, &m), &v) in organs.iter().zip(mask).zip(values) {
        if l == k && !m {
            n += 1;
            sum += v;
            sum2 += v * v;
        }
    }
    if n < 10 {
        return None;
    }
    let mean = sum / n as f64;
    let std = (sum2 / n as f64 - mean * mean).max(0.0).sqrt();
    let attenuation = roi_mean.map(|r| {
        if r < mean - ORGAN_ISO_BAND_HU {
            "hypoattenuating"
        } else if r > mean + ORGAN_ISO_BAND_HU {
            "hyperattenuating"
        } else {
            "isoattenuating"
        }
    });
    Some((mean, std, attenuation))
}

/// The organ holding or surrounding an ROI (`mask`, row-major `h × w`) among per-pixel organ labels, as (organ
/// label, relation, fraction of the ROI inside that organ): the organ with most of the ROI's pixels ("inside" when
/// ≥ half), else the organ most present in a 2-pixel ring around the ROI ("enclosed" when it fills ≥ half of the
/// ring — a lesion cut out of its organ's mask — else "adjacent").
pub fn organ_context(mask: &[bool], organs: &[u16], w: usize, h: usize) -> Option<(u16, &'static str, f64)> {
    let area = mask.iter().filter(|&&b| b).count();
    if area == 0 || organs.len() != mask.len() {
        return None;
    }
    let labels = organs.iter().copied().max().unwrap_or(0) as usize + 1;
    let mut inside = vec![0usize; labels];
    for (i, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
        inside[organs[i] as usize] += 1;
    }
    let best = (1..labels).max_by_key(|&k| (inside[k], std::cmp::Reverse(k)))?;
    let fraction = |k: usize| inside[k] as f64 / area as f64;
    if fraction(best) >= 0.5 {
        return Some((best as u16, "inside", fraction(best)));
    }
    // the ring: pixels within 2 (Chebyshev) of the ROI, not in it; only pixels within 2 of the ROI's box qualify
    let mut ring = vec![0usize; labels];
    let mut ring_n = 0usize;
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for (i, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
        let (r, c) = (i / w, i % w);
        (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c));
    }
    for r in r0.saturating_sub(2)..(r1 + 3).min(h) {
        for c in c0.saturating_sub(2)..(c1 + 3).min(w) {
            if mask[r * w + c] {
                continue;
            }
            let near = (r.saturating_sub(2)..(r + 3).min(h))
                .any(|rr| (c.saturating_sub(2)..(c + 3).min(w)).any(|cc| mask[rr * w + cc]));
            if near {
                ring[organs[r * w + c] as usize] += 1;
                ring_n += 1;
            }
        }
    }
    let around = (1..labels).max_by_key(|&k| (ring[k], std::cmp::Reverse(k)))?;
    if ring[around] == 0 {
        return (inside[best] > 0).then(|| (best as u16, "adjacent", fraction(best)));
    }
    let relation = if ring[around] * 2 >= ring_n {
        "enclosed"
    } else {
        "adjacent"
    };
    Some((around as u16, relation, fraction(around)))
}
