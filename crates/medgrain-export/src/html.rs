//! HTML text for the pages medgrain renders (the `inspect --html` report, the review server).

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The outline of a row's ROI (its `mask_rle`, decoded) as an SVG path in pixel coordinates: the mask's pixel-edge
/// boundary ([`medgrain_roi::rle::outline_path`]). `None` when the ROI has no readable mask.
pub fn roi_outline(roi: &serde_json::Value) -> Option<String> {
    let rle: medgrain_records::MaskRle = serde_json::from_value(roi.get("mask_rle")?.clone()).ok()?;
    let mask = medgrain_roi::rle::decode(&rle).ok()?;
    let (h, w) = (rle.size[0].max(0) as usize, rle.size[1].max(0) as usize);
    Some(medgrain_roi::rle::outline_path(&mask, h, w))
}

/// The MIME type of an image a row stores (PNG unless its bytes say JPEG or TIFF).
pub fn image_mime(bytes: &[u8]) -> &'static str {
    match crate::export::rows::image_ext(bytes) {
        Some("jpg") => "image/jpeg",
        Some("tif") => "image/tiff",
        _ => "image/png",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_becomes_text() {
        assert_eq!(
            super::esc("<img src=x onerror=\"a('b')\"> & co"),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt; &amp; co"
        );
    }
}
