//! A 3D binary mask kept as bits inside its bounding box: a TotalSegmentator organ of a 512×512×300 CT takes
//! kilobytes to a few megabytes instead of the 78.6 MB of one `bool` per voxel, and a slice that misses the box is
//! rejected without looking at a voxel.

/// Set voxels of a `shape` volume (x fastest), stored as one bit per voxel of their bounding box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxMask {
    shape: [usize; 3],
    /// `[lo, hi)` per axis; empty masks have `lo == hi == [0; 3]`.
    lo: [usize; 3],
    hi: [usize; 3],
    bits: Vec<u64>,
    count: usize,
}

impl BoxMask {
    /// An empty mask.
    pub fn empty(shape: [usize; 3]) -> BoxMask {
        BoxMask {
            shape,
            lo: [0; 3],
            hi: [0; 3],
            bits: Vec::new(),
            count: 0,
        }
    }

    /// The mask of the set entries of a flat `bool` volume.
    pub fn from_bools(shape: [usize; 3], v: &[bool]) -> BoxMask {
        let one = BoxMask::by_value(shape, |f| {
            for (i, &b) in v.iter().enumerate() {
                if b {
                    f(i, 1);
                }
            }
        });
        one.into_iter().next().map_or_else(|| BoxMask::empty(shape), |(_, m)| m)
    }

    /// One mask per positive label value of a label volume whose `(index, value)` pairs `visit` yields (called
    /// twice), in ascending value order: two passes for any number of labels.
    pub fn by_value(shape: [usize; 3], visit: impl Fn(&mut dyn FnMut(usize, u32))) -> Vec<(u32, BoxMask)> {
        let [nx, ny, _] = shape;
        let mut boxes: std::collections::BTreeMap<u32, ([usize; 3], [usize; 3])> = Default::default();
        visit(&mut |i, v| {
            let p = [i % nx, (i / nx) % ny, i / (nx * ny)];
            let (lo, hi) = boxes.entry(v).or_insert(([usize::MAX; 3], [0; 3]));
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a] + 1);
            }
        });
        let mut masks: std::collections::BTreeMap<u32, BoxMask> = boxes
            .into_iter()
            .map(|(v, (lo, hi))| {
                let len: usize = (0..3).map(|a| hi[a] - lo[a]).product();
                let m = BoxMask {
                    shape,
                    lo,
                    hi,
                    bits: vec![0u64; len.div_ceil(64)],
                    count: 0,
                };
                (v, m)
            })
            .collect();
        visit(&mut |i, v| {
            if let Some(m) = masks.get_mut(&v) {
                let b = m.bit_of([i % nx, (i / nx) % ny, i / (nx * ny)]);
                m.bits[b / 64] |= 1 << (b % 64);
            }
        });
        masks
            .into_iter()
            .map(|(v, mut m)| {
                m.count = m.bits.iter().map(|w| w.count_ones() as usize).sum();
                (v, m)
            })
            .collect()
    }

    fn bit_of(&self, p: [usize; 3]) -> usize {
        let (bx, by) = (self.hi[0] - self.lo[0], self.hi[1] - self.lo[1]);
        (p[0] - self.lo[0]) + bx * ((p[1] - self.lo[1]) + by * (p[2] - self.lo[2]))
    }

    /// Number of set voxels.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether voxel `(i, j, k)` is set.
    pub fn contains(&self, p: [usize; 3]) -> bool {
        (0..3).all(|a| p[a] >= self.lo[a] && p[a] < self.hi[a]) && {
            let b = self.bit_of(p);
            self.bits[b / 64] >> (b % 64) & 1 == 1
        }
    }

    /// Whether the box reaches index `s` along `axis` (a slice there may hold set voxels).
    pub fn touches(&self, axis: usize, s: usize) -> bool {
        self.count > 0 && s >= self.lo[axis] && s < self.hi[axis]
    }

    /// Calls `f` with every set voxel's `[i, j, k]`, in flat-index order (x fastest).
    pub fn for_each(&self, mut f: impl FnMut([usize; 3])) {
        if self.count == 0 {
            return;
        }
        let (bx, by) = (self.hi[0] - self.lo[0], self.hi[1] - self.lo[1]);
        for (w, &word) in self.bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let b = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                f([
                    self.lo[0] + b % bx,
                    self.lo[1] + (b / bx) % by,
                    self.lo[2] + b / (bx * by),
                ]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set voxels as a flat `bool` volume.
    fn to_bools(m: &BoxMask) -> Vec<bool> {
        let [nx, ny, nz] = m.shape;
        let mut v = vec![false; nx * ny * nz];
        m.for_each(|p| v[p[0] + nx * (p[1] + ny * p[2])] = true);
        v
    }

    #[test]
    fn bits_in_the_box_equal_the_bool_volume() {
        let shape = [13, 7, 5];
        let n = 13 * 7 * 5;
        let mut seed = 3u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for case in 0..50 {
            let v: Vec<bool> = (0..n).map(|i| (i * 7 + case) % 11 == 0 && next() % 3 == 0).collect();
            let m = BoxMask::from_bools(shape, &v);
            assert_eq!(to_bools(&m), v, "case {case}");
            assert_eq!(m.count(), v.iter().filter(|&&b| b).count());
            let mut order = Vec::new();
            m.for_each(|p| order.push(p[0] + 13 * (p[1] + 7 * p[2])));
            let want: Vec<usize> = (0..n).filter(|&i| v[i]).collect();
            assert_eq!(order, want, "flat-index order");
            for (i, &set) in v.iter().enumerate() {
                assert_eq!(m.contains([i % 13, (i / 13) % 7, i / 91]), set);
            }
            for k in 0..5 {
                let any = (0..91).any(|r| v[k * 91 + r]);
                assert!(m.touches(2, k) || !any, "a slice with voxels is touched");
            }
        }
        // by value: one mask per label, each equal to its bool volume
        let labels: Vec<u32> = (0..n).map(|i| [0, 0, 0, 1, 2, 7][(i * 5 + i / 13) % 6]).collect();
        let split = BoxMask::by_value(shape, |f| {
            for (i, &l) in labels.iter().enumerate() {
                if l > 0 {
                    f(i, l);
                }
            }
        });
        assert_eq!(split.iter().map(|(v, _)| *v).collect::<Vec<_>>(), vec![1, 2, 7]);
        for (v, m) in &split {
            assert_eq!(to_bools(m), labels.iter().map(|l| l == v).collect::<Vec<_>>());
        }
        let e = BoxMask::from_bools(shape, &vec![false; n]);
        assert_eq!(e.count(), 0);
        assert!(!e.contains([0, 0, 0]) && !e.touches(2, 0));
        let one = BoxMask::from_bools(shape, &(0..n).map(|i| i == n - 1).collect::<Vec<_>>());
        assert!(one.contains([12, 6, 4]) && one.count() == 1 && one.touches(0, 12) && !one.touches(0, 11));
    }
}
