//! The visual prompt: a copy of the image, resized to the model's limit (aspect ratio kept), with every ROI's
//! outline drawn in a colour that stands out from the pixels under it. The stored image is never touched.

use base64::Engine;
use image::{imageops::FilterType, ImageEncoder, Rgb, RgbImage};
use medgrain_records::RoiRecord;

/// Outline colours, tried in order; the one farthest from the pixels under the outline is used.
const PALETTE: [[u8; 3]; 5] = [[0, 255, 0], [255, 0, 0], [255, 255, 0], [0, 255, 255], [255, 0, 255]];

/// The image as sent to a model.
#[derive(Debug, Clone)]
pub struct VisualPrompt {
    /// `data:image/png;base64,...`
    pub data_url: String,
    pub width: u32,
    pub height: u32,
    /// Sent size over stored size (≤ 1).
    pub scale: f64,
    /// Each ROI's box in sent-image pixels, half-open `[x0, y0, x1, y1]`.
    pub boxes: Vec<[u32; 4]>,
    /// Outline colour used, as a name.
    pub colour: &'static str,
}

fn colour_name(c: [u8; 3]) -> &'static str {
    match c {
        [0, 255, 0] => "green",
        [255, 0, 0] => "red",
        [255, 255, 0] => "yellow",
        [0, 255, 255] => "cyan",
        _ => "magenta",
    }
}

/// Outline pixels `(row, col)` of a row-major mask.
fn outline(mask: &[bool], w: usize, h: usize) -> Vec<(usize, usize)> {
    (0..h * w)
        .map(|i| (i / w, i % w))
        .filter(|&(r, c)| medgrain_roi::is_border_pixel(mask, w, h, r, c))
        .collect()
}

/// Builds the visual prompt from stored image bytes (any format the image crate decodes) and the record's ROIs.
pub fn visual_prompt(image_bytes: &[u8], rois: &[RoiRecord], max_side: u32) -> Result<VisualPrompt, String> {
    let img = image::load_from_memory(image_bytes).map_err(|e| format!("cannot decode the image: {e}"))?;
    let (w0, h0) = (img.width(), img.height());
    let longest = w0.max(h0).max(1);
    let scale = if longest > max_side {
        max_side as f64 / longest as f64
    } else {
        1.0
    };
    let (w, h) = (
        ((w0 as f64 * scale).round() as u32).max(1),
        ((h0 as f64 * scale).round() as u32).max(1),
    );
    let mut rgb: RgbImage = if scale < 1.0 {
        img.resize_exact(w, h, FilterType::Triangle).to_rgb8()
    } else {
        img.to_rgb8()
    };
    // Outline pixels in stored coordinates, mapped to sent coordinates.
    let mut points: Vec<Vec<(u32, u32)>> = Vec::new();
    let mut boxes = Vec::new();
    for roi in rois {
        let mask = medgrain_roi::rle::decode(&roi.mask_rle).map_err(|e| format!("ROI {}: {e}", roi.label))?;
        let (mh, mw) = (roi.mask_rle.size[0] as usize, roi.mask_rle.size[1] as usize);
        if (mw as u32, mh as u32) != (w0, h0) {
            return Err(format!("ROI {} mask is {mw}×{mh}, image is {w0}×{h0}", roi.label));
        }
        let map = |v: i32, lim: u32| (((v as f64) * scale).round() as u32).min(lim);
        boxes.push([
            map(roi.bbox_xyxy[0], w),
            map(roi.bbox_xyxy[1], h),
            map(roi.bbox_xyxy[2], w),
            map(roi.bbox_xyxy[3], h),
        ]);
        let pts = outline(&mask, mw, mh)
            .into_iter()
            .map(|(r, c)| {
                (
                    ((c as f64 + 0.5) * scale).floor().min(w as f64 - 1.0) as u32,
                    ((r as f64 + 0.5) * scale).floor().min(h as f64 - 1.0) as u32,
                )
            })
            .collect();
        points.push(pts);
    }
    // Pick the colour farthest (squared RGB distance) from the mean colour under the outlines.
    let (mut sum, mut n) = ([0f64; 3], 0f64);
    for (x, y) in points.iter().flatten() {
        let p = rgb.get_pixel(*x, *y).0;
        for k in 0..3 {
            sum[k] += p[k] as f64;
        }
        n += 1.0;
    }
    let mean = if n > 0.0 { sum.map(|s| s / n) } else { [128.0; 3] };
    let distance = |c: [u8; 3]| (0..3).map(|k| (c[k] as f64 - mean[k]).powi(2)).sum::<f64>();
    let mut colour = PALETTE[0];
    for c in PALETTE {
        if distance(c) > distance(colour) {
            colour = c; // strictly farther: ties keep the earlier palette entry
        }
    }
    // Two-pixel-thick outline (the point and its right/lower neighbours) for visibility at any size.
    for (x, y) in points.iter().flatten() {
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (px, py) = (x + dx, y + dy);
            if px < w && py < h {
                rgb.put_pixel(px, py, Rgb(colour));
            }
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot encode the visual prompt: {e}"))?;
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    Ok(VisualPrompt {
        data_url,
        width: w,
        height: h,
        scale,
        boxes,
        colour: colour_name(colour),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgrain_records::MaskRle;

    fn roi_square(w: usize, h: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> RoiRecord {
        let mask: Vec<bool> = (0..w * h)
            .map(|i| (x0..x1).contains(&(i % w)) && (y0..y1).contains(&(i / w)))
            .collect();
        RoiRecord {
            label: "r".into(),
            label_id: Some(1),
            bbox_xyxy: [x0 as i32, y0 as i32, x1 as i32, y1 as i32],
            mask_rle: medgrain_roi::rle::encode(h, w, &mask),
            area_px: ((x1 - x0) * (y1 - y0)) as i64,
            area_fraction: 0.0,
            centroid_xy: [0.0, 0.0],
            position: String::new(),
            side: None,
            side_frame: "image".into(),
            origin: "annotation".into(),
            score: None,
            measurements: None,
            appearance: None,
            organ_context: None,
            patient_position: None,
        }
    }

    fn grey_png(w: u32, h: u32, v: u8) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&vec![v; (w * h) as usize], w, h, image::ExtendedColorType::L8)
            .unwrap();
        out
    }

    fn decode(url: &str) -> RgbImage {
        let b64 = url.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        image::load_from_memory(&bytes).unwrap().to_rgb8()
    }

    #[test]
    fn outline_is_drawn_on_a_copy_and_resized() {
        let png = grey_png(400, 200, 100);
        let original = png.clone();
        let roi = roi_square(400, 200, 100, 50, 200, 150);
        let v = visual_prompt(&png, &[roi], 200).unwrap();
        assert_eq!(png, original, "the stored image must not change");
        assert_eq!((v.width, v.height), (200, 100));
        assert_eq!(v.boxes, vec![[50, 25, 100, 75]]);
        let img = decode(&v.data_url);
        assert_eq!(img.dimensions(), (200, 100));
        // The outline's left edge is drawn, the ROI interior and the background are not.
        // Grey 100: yellow, cyan and magenta are equally far; the first of them in the palette wins.
        assert_eq!(v.colour, "yellow");
        assert_eq!(img.get_pixel(50, 50).0, [255, 255, 0]);
        assert_eq!(img.get_pixel(75, 50).0, [100, 100, 100]);
        assert_eq!(img.get_pixel(10, 10).0, [100, 100, 100]);
    }

    #[test]
    fn colour_stands_out_from_a_green_image() {
        let mut out = Vec::new();
        let px: Vec<u8> = (0..64 * 64).flat_map(|_| [0u8, 250, 0]).collect();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&px, 64, 64, image::ExtendedColorType::Rgb8)
            .unwrap();
        let v = visual_prompt(&out, &[roi_square(64, 64, 10, 10, 30, 30)], 1024).unwrap();
        assert_ne!(v.colour, "green");
        assert_eq!(v.scale, 1.0);
    }

    #[test]
    fn mask_size_mismatch_is_an_error() {
        let png = grey_png(10, 10, 0);
        let mut roi = roi_square(10, 10, 1, 1, 3, 3);
        roi.mask_rle = MaskRle {
            size: [5, 5],
            counts: medgrain_roi::rle::encode(5, 5, &[false; 25]).counts,
        };
        assert!(visual_prompt(&png, &[roi], 100).is_err());
    }
}
