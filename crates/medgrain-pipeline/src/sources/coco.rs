//! COCO instance annotations (`annotations = "instances.json"` in an `image-folder` source): per image, each
//! annotation's region — polygons (rasterised as pycocotools' `annToMask` does), RLE (compressed or uncompressed
//! counts) or, without a segmentation, its `bbox` — becomes one label of the image's label map, named by its
//! category. Overlapping annotations: the later one keeps the shared pixels.

use medgrain_imaging::LabelMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    #[serde(default)]
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

#[derive(Deserialize, Clone)]
struct CocoAnnotation {
    image_id: u64,
    category_id: u64,
    #[serde(default)]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    segmentation: Option<serde_json::Value>,
}

/// One region of an image.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    shape: Shape,
}

#[derive(Debug, Clone)]
enum Shape {
    Polygons(Vec<Vec<f64>>),
    Rle { counts: Vec<u64> },
    CompressedRle(medgrain_records::MaskRle),
    Box([f64; 4]),
}

impl Region {
    /// A box region `[x, y, width, height]` (COCO `bbox`, pixel-edge coordinates), rasterised as pycocotools does.
    pub fn bbox(name: String, xywh: [f64; 4]) -> Region {
        Region {
            name,
            shape: Shape::Box(xywh),
        }
    }
}

/// Regions per image file name (relative to the source root).
pub type Annotations = HashMap<String, Vec<Region>>;

/// Reads a COCO instances file.
pub fn read_coco(path: &Path) -> Result<Annotations, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: CocoFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a COCO instances file: {e}", path.display()))?;
    let cats: HashMap<u64, String> = file.categories.into_iter().map(|c| (c.id, c.name)).collect();
    let names: HashMap<u64, String> = file
        .images
        .into_iter()
        .map(|i| {
            (
                i.id,
                i.file_name.replace('\\', "/").trim_start_matches("./").to_string(),
            )
        })
        .collect();
    let mut out: Annotations = HashMap::new();
    for (n, a) in file.annotations.into_iter().enumerate() {
        let file_name = names.get(&a.image_id).ok_or_else(|| {
            format!(
                "{}: annotation {n} names image {} which is not listed",
                path.display(),
                a.image_id
            )
        })?;
        let name = cats
            .get(&a.category_id)
            .cloned()
            .unwrap_or_else(|| format!("category {}", a.category_id));
        let shape = match &a.segmentation {
            Some(serde_json::Value::Array(polys)) if !polys.is_empty() => Shape::Polygons(
                polys
                    .iter()
                    .map(|p| {
                        p.as_array()
                            .map(|v| v.iter().filter_map(|x| x.as_f64()).collect::<Vec<f64>>())
                            .filter(|v| v.len() >= 6 && v.len() % 2 == 0)
                            .ok_or_else(|| {
                                format!("{}: annotation {n}: a polygon needs ≥ 3 (x, y) pairs", path.display())
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(serde_json::Value::Object(o)) => {
                let size = o
                    .get("size")
                    .and_then(|s| s.as_array())
                    .filter(|s| s.len() == 2)
                    .and_then(|s| Some([s[0].as_i64()? as i32, s[1].as_i64()? as i32]))
                    .ok_or_else(|| format!("{}: annotation {n}: RLE without a [h, w] size", path.display()))?;
                match o.get("counts") {
                    Some(serde_json::Value::String(c)) => Shape::CompressedRle(medgrain_records::MaskRle {
                        size,
                        counts: c.clone(),
                    }),
                    Some(serde_json::Value::Array(c)) => Shape::Rle {
                        counts: c.iter().filter_map(|x| x.as_u64()).collect(),
                    },
                    _ => return Err(format!("{}: annotation {n}: RLE without counts", path.display())),
                }
            }
            _ => Shape::Box(
                a.bbox
                    .ok_or_else(|| format!("{}: annotation {n}: neither segmentation nor bbox", path.display()))?,
            ),
        };
        out.entry(file_name.clone()).or_default().push(Region { name, shape });
    }
    Ok(out)
}

/// The label map of an image's regions (label k + 1 = region k) and the regions' names.
pub fn label_map(regions: &[Region], h: usize, w: usize) -> Result<(LabelMap, Vec<String>), String> {
    let mut labels = vec![0u32; h * w];
    for (k, r) in regions.iter().enumerate() {
        let mask: Vec<bool> = match &r.shape {
            Shape::Polygons(polys) => {
                let mut m = vec![false; h * w];
                for p in polys {
                    for (d, s) in m.iter_mut().zip(medgrain_roi::polygon::polygon_mask(p, h, w)) {
                        *d |= s;
                    }
                }
                m
            }
            Shape::Box(b) => medgrain_roi::polygon::box_mask(*b, h, w),
            Shape::Rle { counts } => {
                let mut m = vec![false; h * w];
                let mut idx = 0usize;
                for (n, &run) in counts.iter().enumerate() {
                    if n % 2 == 1 {
                        for q in idx..(idx + run as usize).min(h * w) {
                            m[(q % h) * w + q / h] = true;
                        }
                    }
                    idx += run as usize;
                }
                if idx != h * w {
                    return Err(format!(
                        "region {k} ({}): RLE covers {idx} pixels, the image {}",
                        r.name,
                        h * w
                    ));
                }
                m
            }
            Shape::CompressedRle(rle) => {
                if rle.size != [h as i32, w as i32] {
                    return Err(format!(
                        "region {k} ({}): RLE size {:?} is not the image's [{h}, {w}]",
                        r.name, rle.size
                    ));
                }
                medgrain_roi::rle::decode(rle).map_err(|e| format!("region {k} ({}): {e}", r.name))?
            }
        };
        for (l, m) in labels.iter_mut().zip(mask) {
            if m {
                *l = k as u32 + 1;
            }
        }
    }
    Ok((
        LabelMap {
            width: w as u32,
            height: h as u32,
            labels,
        },
        regions.iter().map(|r| r.name.clone()).collect(),
    ))
}
