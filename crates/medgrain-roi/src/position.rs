//! Positions in words, as MedTrinity-25M writes them: horizontal fifths (left, center-left, center,
//! center-right, right) and vertical thirds (upper, middle, lower) of the stored image, plus the image side.
//! Without known orientation "left" means the image's left; records say so with `side_frame = "image"`.

/// Horizontal bin of a centroid x in an image of width `w` (fifths).
pub fn horizontal_bin(x: f64, w: f64) -> &'static str {
    let f = if w > 0.0 { x / w } else { 0.5 };
    match f {
        f if f < 0.2 => "left",
        f if f < 0.4 => "center-left",
        f if f < 0.6 => "center",
        f if f < 0.8 => "center-right",
        _ => "right",
    }
}

/// Vertical bin of a centroid y in an image of height `h` (thirds).
pub fn vertical_bin(y: f64, h: f64) -> &'static str {
    let f = if h > 0.0 { y / h } else { 0.5 };
    match f {
        f if f < 1.0 / 3.0 => "upper",
        f if f < 2.0 / 3.0 => "middle",
        _ => "lower",
    }
}

/// "center-left, upper"-style position of a centroid `(x, y)` in pixel coordinates.
pub fn position_words(x: f64, y: f64, w: f64, h: f64) -> String {
    format!("{}, {}", horizontal_bin(x, w), vertical_bin(y, h))
}

/// The image side of a centroid: `None` in the central fifth, else "left" or "right" of the image.
pub fn image_side(x: f64, w: f64) -> Option<&'static str> {
    match horizontal_bin(x, w) {
        "center" => None,
        _ if x < w / 2.0 => Some("left"),
        _ => Some("right"),
    }
}

/// The patient's midline on one slice as a world x (RAS mm): the median world x of the spine's pixels when the
/// slice has any, else of the body's — the largest 4-connected region above −500 HU, so the table and air outside
/// fall away. `world_x` gives each pixel's world x, `spine` flags spine pixels (vertebrae, spinal cord, sacrum),
/// `hu` the slice's values; all row-major `height × width`. `None` when the slice has neither.
pub fn patient_midline_x(world_x: &[f64], spine: &[bool], hu: &[f64], width: usize, height: usize) -> Option<f64> {
    let n = width * height;
    if world_x.len() != n || spine.len() != n || hu.len() != n {
        return None;
    }
    let median = |mut xs: Vec<f64>| -> Option<f64> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let m = xs.len() / 2;
        Some(if xs.len() % 2 == 1 {
            xs[m]
        } else {
            (xs[m - 1] + xs[m]) / 2.0
        })
    };
    let on_spine: Vec<f64> = (0..n).filter(|&i| spine[i]).map(|i| world_x[i]).collect();
    if !on_spine.is_empty() {
        return median(on_spine);
    }
    let body: Vec<u32> = hu.iter().map(|&v| (v > -500.0) as u32).collect();
    let lab = crate::components::label_components(&body, &[height, width], 1).ok()?;
    let largest = lab
        .components
        .iter()
        .max_by(|a, b| a.voxels.cmp(&b.voxels).then(b.id.cmp(&a.id)))?;
    median(
        (0..n)
            .filter(|&i| lab.component_of[i] == largest.id)
            .map(|i| world_x[i])
            .collect(),
    )
}

/// The patient side of a world x (RAS mm: +x is the patient's right) against the patient's midline: `None` within
/// 5 % of the field of view `fov_mm` of it.
pub fn patient_side(x: f64, midline_x: f64, fov_mm: f64) -> Option<&'static str> {
    if (x - midline_x).abs() < 0.05 * fov_mm {
        None
    } else if x > midline_x {
        Some("right")
    } else {
        Some("left")
    }
}

/// "right, anterior, superior": the ROI's patient side, then its anterior/posterior and superior/inferior offset
/// from the volume's centre where it exceeds 5 % of the field of view along that axis (RAS: +y anterior,
/// +z superior). `world_of_col`/`world_of_row`: the world position (RAS mm) of each display column at the middle row
/// and of each row at the middle column; `centroid_xy` in display pixels.
pub fn patient_position_words(
    side: Option<&str>,
    centroid_xy: [f64; 2],
    world_of_col: &[[f64; 3]],
    world_of_row: &[[f64; 3]],
    volume_centre: [f64; 3],
    volume_fov: [f64; 3],
) -> Option<String> {
    let (w, h) = (world_of_col.len(), world_of_row.len());
    if w == 0 || h == 0 {
        return None;
    }
    let c = (centroid_xy[0].round().max(0.0) as usize).min(w - 1);
    let r = (centroid_xy[1].round().max(0.0) as usize).min(h - 1);
    let mid = world_of_col[w / 2];
    let p: [f64; 3] = std::array::from_fn(|a| world_of_col[c][a] + world_of_row[r][a] - mid[a]);
    let mut words: Vec<String> = side.map(str::to_string).into_iter().collect();
    for (axis, pos, neg) in [(1, "anterior", "posterior"), (2, "superior", "inferior")] {
        let d = p[axis] - volume_centre[axis];
        if d.abs() > 0.05 * volume_fov[axis] {
            words.push(if d > 0.0 { pos } else { neg }.to_string());
        }
    }
    (!words.is_empty()).then(|| words.join(", "))
}

/// Size class of an ROI by its area fraction of the image, used to choose words ("small", ...).
pub fn size_words(area_fraction: f64) -> &'static str {
    match area_fraction {
        f if f < 0.005 => "very small",
        f if f < 0.02 => "small",
        f if f < 0.08 => "medium-sized",
        _ => "large",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_fifths_and_thirds() {
        assert_eq!(position_words(10.0, 10.0, 100.0, 90.0), "left, upper");
        assert_eq!(position_words(35.0, 45.0, 100.0, 90.0), "center-left, middle");
        assert_eq!(position_words(50.0, 80.0, 100.0, 90.0), "center, lower");
        assert_eq!(position_words(79.9, 0.0, 100.0, 90.0), "center-right, upper");
        assert_eq!(position_words(99.0, 89.0, 100.0, 90.0), "right, lower");
    }

    #[test]
    fn midline_follows_the_spine_then_the_body_not_the_field_of_view() {
        // 10 × 4 slice, world x = column index (mm); body at columns 1..=4, a lone "table" pixel row at 7..=9
        let (w, h) = (10, 4);
        let world: Vec<f64> = (0..w * h).map(|i| (i % w) as f64).collect();
        let hu: Vec<f64> = (0..w * h)
            .map(|i| match (i / w, i % w) {
                (_, 1..=4) => 40.0,
                (3, 7..=9) => 100.0,
                _ => -1000.0,
            })
            .collect();
        let none = vec![false; w * h];
        // body columns 1..=4 → median 2.5, not the field of view's 4.5
        assert_eq!(patient_midline_x(&world, &none, &hu, w, h), Some(2.5));
        let mut spine = none.clone();
        spine[w + 3] = true;
        assert_eq!(patient_midline_x(&world, &spine, &hu, w, h), Some(3.0));
        let air = vec![-1000.0; w * h];
        assert_eq!(patient_midline_x(&world, &none, &air, w, h), None);
        assert_eq!(patient_midline_x(&world[1..], &none, &hu, w, h), None);
    }

    #[test]
    fn patient_sides_follow_ras_x() {
        assert_eq!(patient_side(30.0, 0.0, 400.0), Some("right"));
        assert_eq!(patient_side(-30.0, 0.0, 400.0), Some("left"));
        assert_eq!(patient_side(19.0, 0.0, 400.0), None); // within 5 % of 400 mm
        assert_eq!(patient_side(70.0, 50.0, 100.0), Some("right"));
    }

    #[test]
    fn side_is_none_in_the_centre() {
        assert_eq!(image_side(50.0, 100.0), None);
        assert_eq!(image_side(30.0, 100.0), Some("left"));
        assert_eq!(image_side(70.0, 100.0), Some("right"));
    }
}
