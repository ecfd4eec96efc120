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
    fn side_is_none_in_the_centre() {
        assert_eq!(image_side(50.0, 100.0), None);
        assert_eq!(image_side(30.0, 100.0), Some("left"));
        assert_eq!(image_side(70.0, 100.0), Some("right"));
    }
}
