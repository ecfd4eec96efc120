//! Box annotations from a CSV file (`annotations = "boxes.csv"` in an `image-folder` source), one row per box —
//! the layout of VinDr-CXR (`image_id, class_name, x_min, y_min, x_max, y_max`), RSNA Pneumonia
//! (`patientId, x, y, width, height, Target`) and NIH ChestX-ray14 box lists. Column names come from
//! `[source.box_columns]`; corners (`x_min … y_max`) or origin + size (`x, y, width, height`) are recognised from the
//! header. Each box becomes a COCO-style box region (`bbox = [x, y, w, h]`, rasterised as pycocotools does), named by
//! the label column. Rows whose coordinates are empty (VinDr "No finding", RSNA `Target = 0`) say the image has no
//! box; a row with unreadable coordinates is an error naming its line.

use crate::sources::coco::{Annotations, Region};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Column names of a box CSV.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BoxColumns {
    /// The image: a path relative to the source root, or a file stem (`image_id`) matched against the images' stems.
    pub file: String,
    /// The finding's name.
    pub label: String,
    pub x_min: String,
    pub y_min: String,
    pub x_max: String,
    pub y_max: String,
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
}

impl Default for BoxColumns {
    fn default() -> Self {
        let s = |v: &str| v.to_string();
        BoxColumns {
            file: s("file"),
            label: s("label"),
            x_min: s("x_min"),
            y_min: s("y_min"),
            x_max: s("x_max"),
            y_max: s("y_max"),
            x: s("x"),
            y: s("y"),
            width: s("width"),
            height: s("height"),
        }
    }
}

/// Reads a box CSV into regions per image key (the `file` column's value, `\` → `/`, leading `./` dropped).
pub fn read_box_csv(path: &Path, cols: &BoxColumns) -> Result<Annotations, String> {
    let at = |m: String| format!("{}: {m}", path.display());
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| at(e.to_string()))?;
    let header = rdr.headers().map_err(|e| at(e.to_string()))?.clone();
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| {
            at(format!(
                "no column {name:?} (columns: {:?}); set [source.box_columns]",
                header.iter().collect::<Vec<_>>()
            ))
        })
    };
    let file_col = need(&cols.file)?;
    let label_col = need(&cols.label)?;
    let corners = [&cols.x_min, &cols.y_min, &cols.x_max, &cols.y_max].map(|c| find(c));
    let sized = [&cols.x, &cols.y, &cols.width, &cols.height].map(|c| find(c));
    let (idx, as_corners) = match (corners, sized) {
        ([Some(a), Some(b), Some(c), Some(d)], _) => ([a, b, c, d], true),
        (_, [Some(a), Some(b), Some(c), Some(d)]) => ([a, b, c, d], false),
        _ => {
            return Err(at(format!(
                "needs box columns {:?} or {:?}",
                [&cols.x_min, &cols.y_min, &cols.x_max, &cols.y_max],
                [&cols.x, &cols.y, &cols.width, &cols.height]
            )))
        }
    };
    let mut out = Annotations::new();
    for (n, row) in rdr.records().enumerate() {
        let line = n + 2; // 1-based, after the header
        let row = row.map_err(|e| at(format!("line {line}: {e}")))?;
        let key = row
            .get(file_col)
            .unwrap_or("")
            .trim()
            .replace('\\', "/")
            .trim_start_matches("./")
            .to_string();
        if key.is_empty() {
            return Err(at(format!("line {line}: empty {:?}", cols.file)));
        }
        let raw: Vec<&str> = idx.iter().map(|&i| row.get(i).unwrap_or("").trim()).collect();
        let entry = out.entry(key).or_default();
        if raw.iter().all(|v| v.is_empty() || v.eq_ignore_ascii_case("nan")) {
            continue; // an image without a box
        }
        let mut v = [0f64; 4];
        for (k, r) in raw.iter().enumerate() {
            v[k] = r
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| at(format!("line {line}: box coordinate {r:?} is not a number")))?;
        }
        let xywh = if as_corners {
            [v[0], v[1], v[2] - v[0], v[3] - v[1]]
        } else {
            v
        };
        if xywh[2] < 0.0 || xywh[3] < 0.0 {
            return Err(at(format!("line {line}: box {v:?} has a negative width or height")));
        }
        let label = row.get(label_col).unwrap_or("").trim();
        let name = if label.is_empty() { "box" } else { label };
        entry.push(Region::bbox(name.to_string(), xywh));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("b.csv");
        std::fs::write(&p, text).expect("write");
        (d, p)
    }

    #[test]
    fn corners_sizes_and_empty_rows() {
        let cols = BoxColumns {
            file: "image_id".into(),
            label: "class_name".into(),
            ..BoxColumns::default()
        };
        let (_d, p) = write("image_id,class_name,x_min,y_min,x_max,y_max\na,Nodule/Mass,10,20,30,60\na,Aortic enlargement,0,0,5,5\nb,No finding,,,,\n");
        let ann = read_box_csv(&p, &cols).expect("read");
        assert_eq!(ann["a"].len(), 2);
        assert_eq!(ann["a"][0].name, "Nodule/Mass");
        assert!(ann["b"].is_empty(), "an image listed without a box has no region");
        // the region is the COCO box [10, 20, 20, 40]: its mask has 20 × 40 pixels
        let (m, _) = crate::sources::coco::label_map(&ann["a"][..1], 100, 100).expect("map");
        assert_eq!(m.labels.iter().filter(|&&l| l == 1).count(), 20 * 40);

        let cols = BoxColumns {
            file: "patientId".into(),
            label: "Target".into(),
            ..BoxColumns::default()
        };
        let (_d, p) = write("patientId,x,y,width,height,Target\np1,10,20,30,40,1\np2,,,,,0\n");
        let ann = read_box_csv(&p, &cols).expect("read");
        let (m, names) = crate::sources::coco::label_map(&ann["p1"], 100, 100).expect("map");
        assert_eq!(m.labels.iter().filter(|&&l| l == 1).count(), 30 * 40);
        assert_eq!(names, ["1"]);
    }

    #[test]
    fn bad_rows_and_headers_are_named() {
        let (_d, p) = write("file,label,x_min,y_min,x_max,y_max\na.png,x,1,2,three,4\n");
        let e = read_box_csv(&p, &BoxColumns::default()).expect_err("bad number");
        assert!(e.contains("line 2") && e.contains("three"), "{e}");
        let (_d, p) = write("file,label,x_min,y_min,x_max,y_max\na.png,x,10,2,5,4\n");
        assert!(read_box_csv(&p, &BoxColumns::default())
            .expect_err("negative")
            .contains("negative"));
        let (_d, p) = write("file,label,left,top\na.png,x,1,2\n");
        assert!(read_box_csv(&p, &BoxColumns::default())
            .expect_err("columns")
            .contains("box columns"));
        let (_d, p) = write("image,label,x,y,width,height\na.png,x,1,2,3,4\n");
        assert!(read_box_csv(&p, &BoxColumns::default())
            .expect_err("file col")
            .contains("\"file\""));
    }
}
