//! Connected-component labelling of N-dimensional label maps with scipy's connectivity semantics
//! (`scipy.ndimage.generate_binary_structure(rank, k)`: neighbours whose offset has at most `k` non-zero axes).
//! Each component holds voxels of one label value; different labels never merge.

use crate::RoiError;
use std::collections::VecDeque;

/// One connected component of one label value.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Label value in the input map.
    pub label: u32,
    /// Component number in [`Labeling::component_of`] (1-based).
    pub id: u32,
    pub voxels: u64,
    /// `[lo, hi)` per axis, array index order.
    pub bbox: Vec<[usize; 2]>,
    /// Mean index per axis.
    pub centroid: Vec<f64>,
}

/// The result of labelling: a component id per voxel (0 = background) and the components in discovery order.
#[derive(Debug, Clone)]
pub struct Labeling {
    pub shape: Vec<usize>,
    pub component_of: Vec<u32>,
    pub components: Vec<Component>,
}

/// Neighbour offsets (per axis, in -1..=1) of the structuring element `generate_binary_structure(rank, k)`.
pub fn neighbour_offsets(rank: usize, connectivity: usize) -> Vec<Vec<isize>> {
    let mut out = Vec::new();
    let total = 3usize.pow(rank as u32);
    for code in 0..total {
        let mut c = code;
        let off: Vec<isize> = (0..rank)
            .map(|_| {
                let d = (c % 3) as isize - 1;
                c /= 3;
                d
            })
            .collect();
        let nonzero = off.iter().filter(|&&d| d != 0).count();
        if nonzero > 0 && nonzero <= connectivity {
            out.push(off);
        }
    }
    out
}

/// Labels the connected components of every non-zero value of `values` (row-major, last axis fastest).
/// `connectivity` is scipy's: 1 = faces only, `rank` = full.
pub fn label_components(values: &[u32], shape: &[usize], connectivity: usize) -> Result<Labeling, RoiError> {
    let rank = shape.len();
    if rank == 0 {
        return Err(RoiError::Shape("a label map needs at least one axis".into()));
    }
    if connectivity == 0 || connectivity > rank {
        return Err(RoiError::Connectivity { connectivity, rank });
    }
    let n: usize = shape.iter().product();
    if n != values.len() {
        return Err(RoiError::Shape(format!(
            "shape {shape:?} has {n} elements but the data has {}",
            values.len()
        )));
    }
    if n >= u32::MAX as usize {
        return Err(RoiError::Shape(format!("{n} voxels exceed the supported 2^32")));
    }
    let offsets = neighbour_offsets(rank, connectivity);
    let mut strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let mut component_of = vec![0u32; n];
    let mut components = Vec::new();
    let mut queue = VecDeque::new();
    let mut coord = vec![0usize; rank];
    for start in 0..n {
        let label = values[start];
        if label == 0 || component_of[start] != 0 {
            continue;
        }
        let id = components.len() as u32 + 1;
        component_of[start] = id;
        queue.push_back(start);
        let mut voxels = 0u64;
        let mut sums = vec![0f64; rank];
        let mut bbox = vec![[usize::MAX, 0usize]; rank];
        while let Some(idx) = queue.pop_front() {
            let mut rem = idx;
            for a in 0..rank {
                coord[a] = rem / strides[a];
                rem %= strides[a];
            }
            voxels += 1;
            for a in 0..rank {
                sums[a] += coord[a] as f64;
                bbox[a][0] = bbox[a][0].min(coord[a]);
                bbox[a][1] = bbox[a][1].max(coord[a] + 1);
            }
            'next: for off in &offsets {
                let mut nidx = 0usize;
                for a in 0..rank {
                    let c = coord[a] as isize + off[a];
                    if c < 0 || c as usize >= shape[a] {
                        continue 'next;
                    }
                    nidx += c as usize * strides[a];
                }
                if values[nidx] == label && component_of[nidx] == 0 {
                    component_of[nidx] = id;
                    queue.push_back(nidx);
                }
            }
        }
        components.push(Component {
            label,
            id,
            voxels,
            centroid: sums.iter().map(|s| s / voxels as f64).collect(),
            bbox,
        });
    }
    Ok(Labeling {
        shape: shape.to_vec(),
        component_of,
        components,
    })
}

/// Components grouped per label: labels ascending, components largest first (ties: smallest bbox lo first).
pub fn group_by_label(components: &[Component]) -> Vec<(u32, Vec<&Component>)> {
    let mut sorted: Vec<&Component> = components.iter().collect();
    sorted.sort_by(|a, b| {
        a.label.cmp(&b.label).then(b.voxels.cmp(&a.voxels)).then_with(|| {
            let lo_a: Vec<usize> = a.bbox.iter().map(|r| r[0]).collect();
            let lo_b: Vec<usize> = b.bbox.iter().map(|r| r[0]).collect();
            lo_a.cmp(&lo_b)
        })
    });
    let mut out: Vec<(u32, Vec<&Component>)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((l, v)) if *l == c.label => v.push(c),
            _ => out.push((c.label, vec![c])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_sizes_match_scipy() {
        // generate_binary_structure(2,1).sum()-1 == 4, (2,2) -> 8, (3,1) -> 6, (3,2) -> 18, (3,3) -> 26
        assert_eq!(neighbour_offsets(2, 1).len(), 4);
        assert_eq!(neighbour_offsets(2, 2).len(), 8);
        assert_eq!(neighbour_offsets(3, 1).len(), 6);
        assert_eq!(neighbour_offsets(3, 2).len(), 18);
        assert_eq!(neighbour_offsets(3, 3).len(), 26);
    }

    #[test]
    fn diagonal_pixels_join_only_with_full_connectivity() {
        // 1 0
        // 0 1
        let v = [1, 0, 0, 1];
        assert_eq!(label_components(&v, &[2, 2], 1).unwrap().components.len(), 2);
        let full = label_components(&v, &[2, 2], 2).unwrap();
        assert_eq!(full.components.len(), 1);
        assert_eq!(full.components[0].bbox, vec![[0, 2], [0, 2]]);
        assert_eq!(full.components[0].centroid, vec![0.5, 0.5]);
    }

    #[test]
    fn different_labels_never_merge_and_sort_as_specified() {
        // row 0: 2 2 0 1
        // row 1: 0 0 0 1
        // row 2: 2 0 0 0
        let v = [2, 2, 0, 1, 0, 0, 0, 1, 2, 0, 0, 0];
        let l = label_components(&v, &[3, 4], 2).unwrap();
        let g = group_by_label(&l.components);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, 1);
        assert_eq!(g[0].1[0].voxels, 2);
        assert_eq!(g[1].0, 2);
        assert_eq!(g[1].1.iter().map(|c| c.voxels).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(g[1].1[1].bbox, vec![[2, 3], [0, 1]]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(label_components(&[1, 2, 3], &[2, 2], 1).is_err());
        assert!(label_components(&[1; 4], &[2, 2], 3).is_err());
        assert!(label_components(&[1; 4], &[2, 2], 0).is_err());
    }
}
