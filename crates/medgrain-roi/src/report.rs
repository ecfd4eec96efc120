//! Per-label connected-component reports (`medgrain rois`): for every label value, its voxel count, bounding box
//! and components (largest first), with physical volume and RAS centroid when spacing and affine are known.
//! Axis order is the array's (nibabel's `x, y, z` for NIfTI, `row, col` for 2D rasters).

use crate::components::{group_by_label, label_components};
use crate::RoiError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentReport {
    pub voxels: u64,
    pub bbox: Vec<[usize; 2]>,
    pub centroid: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mm3: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centroid_ras: Option<[f64; 3]>,
    /// Diameters, volume and intensity figures (3D NIfTI with `measure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurements: Option<medgrain_records::Measurements>,
    /// Shape descriptors (`medgrain_roi::shape`): 2D regionprops-style figures, or 3D axis lengths, elongation and
    /// flatness; voxel units, array axes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<ShapeReport>,
}

/// 2D or 3D shape descriptors of a component.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ShapeReport {
    Plane(crate::shape::Shape2d),
    Volume(crate::shape::Shape3d),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelReport {
    pub label: u32,
    pub name: Option<String>,
    pub voxels: u64,
    pub bbox: Vec<[usize; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mm3: Option<f64>,
    pub components: Vec<ComponentReport>,
}

/// Geometry that turns voxel figures into physical ones.
#[derive(Debug, Clone, Default)]
pub struct Geometry {
    /// Voxel size per axis (array order), mm.
    pub spacing: Option<Vec<f64>>,
    /// Voxel index (array order, first three axes) → RAS mm.
    pub affine: Option<[[f64; 4]; 4]>,
}

/// What to measure per component (3D, first-axis-fastest data with an affine only).
#[derive(Debug, Clone, Copy, Default)]
pub struct MeasureOptions<'a> {
    pub enabled: bool,
    /// Intensities on the same grid (e.g. CT in HU) for mean/std/attenuation.
    pub image: Option<&'a [f64]>,
}

/// Reports the labels of an array stored with its **first** axis fastest (Fortran order, as NIfTI stores it) when
/// `first_axis_fastest`, else row-major (last axis fastest).
pub fn label_report(
    values: &[u32],
    shape: &[usize],
    first_axis_fastest: bool,
    connectivity: usize,
    geometry: &Geometry,
    name_of: &dyn Fn(u32) -> Option<String>,
    measure: MeasureOptions<'_>,
) -> Result<Vec<LabelReport>, RoiError> {
    // label_components works on row-major data; Fortran-ordered data is row-major for the reversed shape.
    let work_shape: Vec<usize> = if first_axis_fastest {
        shape.iter().rev().copied().collect()
    } else {
        shape.to_vec()
    };
    let labeling = label_components(values, &work_shape, connectivity)?;
    let fix = |v: &[[usize; 2]]| -> Vec<[usize; 2]> {
        if first_axis_fastest {
            v.iter().rev().copied().collect()
        } else {
            v.to_vec()
        }
    };
    let fix_c = |v: &[f64]| -> Vec<f64> {
        if first_axis_fastest {
            v.iter().rev().copied().collect()
        } else {
            v.to_vec()
        }
    };
    let voxel_volume = geometry.spacing.as_ref().map(|s| s.iter().take(3).product::<f64>());
    let grid = match (&geometry.affine, shape) {
        (Some(a), [x, y, z]) if measure.enabled && first_axis_fastest => Some(crate::measure::Grid {
            shape: [*x, *y, *z],
            affine: a,
        }),
        _ => None,
    };
    let image_at = |i: usize| measure.image.map_or(f64::NAN, |img| img[i]);
    let members: Vec<Vec<usize>> = if grid.is_some() {
        let mut m = vec![Vec::new(); labeling.components.len() + 1];
        for (i, &c) in labeling.component_of.iter().enumerate() {
            if c > 0 {
                m[c as usize].push(i);
            }
        }
        m
    } else {
        Vec::new()
    };
    // Shapes: pixel lists per component in 2D (perimeter and hull need them), running moments in 3D.
    let ncomp = labeling.components.len() + 1;
    let mut shapes: Vec<Option<ShapeReport>> = vec![None; ncomp];
    match work_shape.as_slice() {
        [_, w] => {
            let mut px: Vec<Vec<(usize, usize)>> = vec![Vec::new(); ncomp];
            for (i, &c) in labeling.component_of.iter().enumerate() {
                if c > 0 {
                    // report in array axes: Fortran order reverses the working (row-major) axes
                    let (r, col) = (i / w, i % w);
                    px[c as usize].push(if first_axis_fastest { (col, r) } else { (r, col) });
                }
            }
            for (c, p) in px.iter().enumerate() {
                shapes[c] = crate::shape::shape_2d(p).map(ShapeReport::Plane);
            }
        }
        [_, b, c3] => {
            let mut m = vec![crate::shape::Moments3::default(); ncomp];
            for (i, &c) in labeling.component_of.iter().enumerate() {
                if c > 0 {
                    m[c as usize].add([i / (b * c3), (i / c3) % b, i % c3]);
                }
            }
            for (c, mm) in m.iter().enumerate() {
                shapes[c] = mm.shape().map(ShapeReport::Volume);
            }
        }
        _ => {}
    }
    let mut out = Vec::new();
    for (label, comps) in group_by_label(&labeling.components) {
        let components: Vec<ComponentReport> = comps
            .iter()
            .map(|c| {
                let centroid = fix_c(&c.centroid);
                let centroid_ras = geometry.affine.filter(|_| centroid.len() >= 3).map(|a| {
                    std::array::from_fn(|r| {
                        a[r][0] * centroid[0] + a[r][1] * centroid[1] + a[r][2] * centroid[2] + a[r][3]
                    })
                });
                ComponentReport {
                    voxels: c.voxels,
                    bbox: fix(&c.bbox),
                    centroid,
                    volume_mm3: voxel_volume.map(|v| v * c.voxels as f64),
                    centroid_ras,
                    measurements: grid.map(|g| {
                        crate::measure::measure_component(
                            &members[c.id as usize],
                            g,
                            measure.image.is_some().then_some(&image_at as &dyn Fn(usize) -> f64),
                            10.0,
                        )
                    }),
                    shape: shapes.get(c.id as usize).cloned().flatten(),
                }
            })
            .collect();
        let voxels: u64 = components.iter().map(|c| c.voxels).sum();
        let rank = shape.len();
        let bbox: Vec<[usize; 2]> = (0..rank)
            .map(|a| {
                let lo = components.iter().map(|c| c.bbox[a][0]).min().unwrap_or(0);
                let hi = components.iter().map(|c| c.bbox[a][1]).max().unwrap_or(0);
                [lo, hi]
            })
            .collect();
        out.push(LabelReport {
            label,
            name: name_of(label),
            voxels,
            bbox,
            volume_mm3: voxel_volume.map(|v| v * voxels as f64),
            components,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_reports_in_array_axes() {
        // shape (x=3, y=2), x fastest: values[x + 3*y]. Label 1 at (x=2, y=0) and (x=2, y=1).
        let mut v = vec![0u32; 6];
        v[2] = 1;
        v[5] = 1;
        let g = Geometry {
            spacing: Some(vec![2.0, 3.0]),
            affine: None,
        };
        let r = label_report(
            &v,
            &[3, 2],
            true,
            1,
            &g,
            &|_| Some("x".into()),
            MeasureOptions::default(),
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].bbox, vec![[2, 3], [0, 2]]);
        assert_eq!(r[0].components[0].centroid, vec![2.0, 0.5]);
        assert_eq!(r[0].volume_mm3, Some(12.0));
        assert_eq!(r[0].name.as_deref(), Some("x"));
    }
}
