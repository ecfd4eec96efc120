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
/// `connectivity` is scipy's: 1 = faces only, `rank` = full. Components are numbered in the raster order of their
/// first voxel (as scipy numbers them). Ranks 1–3 run on runs along the last axis with union–find
/// ([`label_runs_3d`]); higher ranks use a breadth-first flood fill.
pub fn label_components(values: &[u32], shape: &[usize], connectivity: usize) -> Result<Labeling, RoiError> {
    check_input(values, shape, connectivity)?;
    match *shape {
        [a] => label_runs_3d(values, [1, 1, a], connectivity, shape),
        [a, b] => label_runs_3d(values, [1, a, b], connectivity, shape),
        [a, b, c] => label_runs_3d(values, [a, b, c], connectivity, shape),
        _ => label_components_bfs(values, shape, connectivity),
    }
}

fn check_input(values: &[u32], shape: &[usize], connectivity: usize) -> Result<(), RoiError> {
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
    Ok(())
}

/// A run of equal non-zero values along the last axis: `[start, end)` within its row.
#[derive(Clone, Copy)]
struct Run {
    start: u32,
    end: u32,
    value: u32,
}

fn find(parent: &mut [u32], mut r: u32) -> u32 {
    while parent[r as usize] != r {
        let p = parent[r as usize];
        parent[r as usize] = parent[p as usize];
        r = p;
    }
    r
}

/// Run-based labelling of a 3D map (`shape3`, last axis fastest); lower ranks come padded with leading axes of 1
/// (offsets along a padded axis never occur, so the connectivity is unchanged).
/// `connectivity` counts non-zero offset axes as scipy does: a neighbouring row whose (axis 0, axis 1) offset has
/// `k` non-zero axes touches along the last axis with overlap when `k = connectivity`, and also diagonally (one
/// voxel apart) when `k < connectivity`. `out_shape` is the caller's shape (for the result).
fn label_runs_3d(
    values: &[u32],
    shape3: [usize; 3],
    connectivity: usize,
    out_shape: &[usize],
) -> Result<Labeling, RoiError> {
    let [d0, d1, d2] = shape3;
    let rows = d0 * d1;
    // runs per row
    let mut runs: Vec<Run> = Vec::new();
    let mut row_start = Vec::with_capacity(rows + 1);
    for r in 0..rows {
        row_start.push(runs.len());
        let row = &values[r * d2..(r + 1) * d2];
        let mut x = 0;
        while x < d2 {
            let v = row[x];
            if v == 0 {
                x += 1;
                continue;
            }
            let s = x;
            while x < d2 && row[x] == v {
                x += 1;
            }
            runs.push(Run {
                start: s as u32,
                end: x as u32,
                value: v,
            });
        }
    }
    row_start.push(runs.len());
    if runs.len() >= u32::MAX as usize {
        return Err(RoiError::Shape("too many runs".into()));
    }
    let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
    // earlier neighbour rows: (axis-0 offset, axis-1 offset) with 1 or 2 non-zero axes
    let prev: [(isize, isize); 4] = [(0, -1), (-1, -1), (-1, 0), (-1, 1)];
    for r in 0..rows {
        let (i0, i1) = ((r / d1) as isize, (r % d1) as isize);
        for &(a, b) in &prev {
            let k = (a != 0) as usize + (b != 0) as usize;
            if k > connectivity {
                continue;
            }
            let (n0, n1) = (i0 + a, i1 + b);
            if n0 < 0 || n1 < 0 || n1 >= d1 as isize {
                continue;
            }
            let diagonal = u32::from(k < connectivity); // runs one voxel apart along the last axis still touch
            let nr = n0 as usize * d1 + n1 as usize;
            let (mut p0, pe) = (row_start[nr], row_start[nr + 1]);
            for q in row_start[r]..row_start[r + 1] {
                let rq = runs[q];
                // runs of the neighbour row wholly left of q's reach are done with (q's successors start later)
                while p0 < pe && runs[p0].end + diagonal <= rq.start {
                    p0 += 1;
                }
                let mut p = p0;
                while p < pe && runs[p].start < rq.end + diagonal {
                    if runs[p].value == rq.value {
                        let (x, y) = (find(&mut parent, p as u32), find(&mut parent, q as u32));
                        if x != y {
                            // the earlier run (in raster order) stays the root
                            let (lo, hi) = if x < y { (x, y) } else { (y, x) };
                            parent[hi as usize] = lo;
                        }
                    }
                    p += 1;
                }
            }
        }
    }
    // ids in raster order of each component's first run
    let mut id_of_root = vec![0u32; runs.len()];
    let mut components: Vec<Component> = Vec::new();
    let mut sums: Vec<[u128; 3]> = Vec::new();
    let mut component_of = vec![0u32; values.len()];
    let rank = out_shape.len();
    for r in 0..rows {
        let (i0, i1) = (r / d1, r % d1);
        let first = row_start[r];
        for (j, run) in runs[first..row_start[r + 1]].iter().enumerate() {
            let root = find(&mut parent, (first + j) as u32) as usize;
            if id_of_root[root] == 0 {
                components.push(Component {
                    label: run.value,
                    id: components.len() as u32 + 1,
                    voxels: 0,
                    bbox: vec![[usize::MAX, 0]; 3],
                    centroid: Vec::new(),
                });
                sums.push([0; 3]);
                id_of_root[root] = components.len() as u32;
            }
            let id = id_of_root[root];
            let (s, e) = (run.start as usize, run.end as usize);
            component_of[r * d2 + s..r * d2 + e].iter_mut().for_each(|c| *c = id);
            let c = &mut components[id as usize - 1];
            let n = (e - s) as u64;
            c.voxels += n;
            let sm = &mut sums[id as usize - 1];
            sm[0] += i0 as u128 * n as u128;
            sm[1] += i1 as u128 * n as u128;
            sm[2] += ((s + e - 1) as u128 * n as u128) / 2;
            for (a, lo, hi) in [(0, i0, i0 + 1), (1, i1, i1 + 1), (2, s, e)] {
                c.bbox[a][0] = c.bbox[a][0].min(lo);
                c.bbox[a][1] = c.bbox[a][1].max(hi);
            }
        }
    }
    // back to the caller's rank: drop the padded leading axes
    let skip = 3 - rank;
    for (c, sm) in components.iter_mut().zip(&sums) {
        c.centroid = sm[skip..].iter().map(|&t| t as f64 / c.voxels as f64).collect();
        c.bbox.drain(..skip);
    }
    Ok(Labeling {
        shape: out_shape.to_vec(),
        component_of,
        components,
    })
}

/// Breadth-first labelling for any rank (the reference the run-based path is tested against).
pub fn label_components_bfs(values: &[u32], shape: &[usize], connectivity: usize) -> Result<Labeling, RoiError> {
    check_input(values, shape, connectivity)?;
    let rank = shape.len();
    let n: usize = shape.iter().product();
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
    fn run_labelling_equals_flood_fill_on_random_maps() {
        // a small LCG: blobs of three labels at several densities, every rank 1–3 and connectivity
        let mut seed = 0x2545_f491_u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let shapes: [&[usize]; 6] = [&[37], &[9, 13], &[1, 17], &[6, 7, 8], &[3, 1, 11], &[12, 10, 9]];
        for shape in shapes {
            for density in [20u32, 50, 80] {
                let n: usize = shape.iter().product();
                let values: Vec<u32> = (0..n)
                    .map(|_| if next() % 100 < density { 1 + next() % 3 } else { 0 })
                    .collect();
                for k in 1..=shape.len() {
                    let runs = label_components(&values, shape, k).expect("runs");
                    let bfs = label_components_bfs(&values, shape, k).expect("bfs");
                    assert_eq!(runs.component_of, bfs.component_of, "{shape:?} density {density} k {k}");
                    assert_eq!(runs.components, bfs.components, "{shape:?} density {density} k {k}");
                }
            }
        }
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
