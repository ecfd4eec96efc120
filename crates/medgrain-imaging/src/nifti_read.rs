//! NIfTI-1 and NIfTI-2 reading (`.nii`, `.nii.gz`; either byte order), with nibabel's conventions: array shape
//! `x, y, z[, t, ...]` (x fastest on disk), the best affine chosen as nibabel's `get_best_affine` does (sform if
//! `sform_code > 0`, else qform if `qform_code > 0`, else the Analyze base affine), scl_slope/scl_inter applied only
//! when the slope is finite and non-zero and the pair is not (1, 0), and orientation codes as `aff2axcodes`.
//! Sizes are checked against the file before anything is allocated, so a header that lies cannot exhaust memory.

use crate::{ImagingError, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

/// Voxel values as stored (before scaling), in file order (x fastest).
#[derive(Debug, Clone, PartialEq)]
pub enum Voxels {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// RGB24: three u8 per voxel.
    Rgb8(Vec<u8>),
}

impl Voxels {
    /// numpy-style dtype name.
    pub fn dtype(&self) -> &'static str {
        match self {
            Voxels::U8(_) => "uint8",
            Voxels::I8(_) => "int8",
            Voxels::I16(_) => "int16",
            Voxels::U16(_) => "uint16",
            Voxels::I32(_) => "int32",
            Voxels::U32(_) => "uint32",
            Voxels::I64(_) => "int64",
            Voxels::U64(_) => "uint64",
            Voxels::F32(_) => "float32",
            Voxels::F64(_) => "float64",
            Voxels::Rgb8(_) => "rgb8",
        }
    }

    /// Number of stored values (RGB: three per voxel).
    pub fn len(&self) -> usize {
        match self {
            Voxels::U8(v) | Voxels::Rgb8(v) => v.len(),
            Voxels::I8(v) => v.len(),
            Voxels::I16(v) => v.len(),
            Voxels::U16(v) => v.len(),
            Voxels::I32(v) => v.len(),
            Voxels::U32(v) => v.len(),
            Voxels::I64(v) => v.len(),
            Voxels::U64(v) => v.len(),
            Voxels::F32(v) => v.len(),
            Voxels::F64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stored value `i` as f64 (the same number [`Voxels::values`] gives at position `i`); `None` past the end.
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Voxels::U8(v) | Voxels::Rgb8(v) => v.get(i).map(|&x| x as f64),
            Voxels::I8(v) => v.get(i).map(|&x| x as f64),
            Voxels::I16(v) => v.get(i).map(|&x| x as f64),
            Voxels::U16(v) => v.get(i).map(|&x| x as f64),
            Voxels::I32(v) => v.get(i).map(|&x| x as f64),
            Voxels::U32(v) => v.get(i).map(|&x| x as f64),
            Voxels::I64(v) => v.get(i).map(|&x| x as f64),
            Voxels::U64(v) => v.get(i).map(|&x| x as f64),
            Voxels::F32(v) => v.get(i).map(|&x| x as f64),
            Voxels::F64(v) => v.get(i).copied(),
        }
    }

    /// Calls `f(i)` for every position whose value is > 0 (as f64, so NaN is not), in ascending order: a mask's
    /// voxels without converting every value. Runs of zero bytes are skipped eight at a time.
    pub fn for_each_positive(&self, mut f: impl FnMut(usize)) {
        fn typed<T: Copy>(v: &[T], positive: impl Fn(T) -> bool, f: &mut impl FnMut(usize)) {
            for (i, &x) in v.iter().enumerate() {
                if positive(x) {
                    f(i);
                }
            }
        }
        match self {
            Voxels::U8(v) | Voxels::Rgb8(v) => for_each_nonzero_byte(v, f),
            Voxels::I8(v) => typed(v, |x| x > 0, &mut f),
            Voxels::I16(v) => typed(v, |x| x > 0, &mut f),
            Voxels::U16(v) => typed(v, |x| x > 0, &mut f),
            Voxels::I32(v) => typed(v, |x| x > 0, &mut f),
            Voxels::U32(v) => typed(v, |x| x > 0, &mut f),
            Voxels::I64(v) => typed(v, |x| x > 0, &mut f),
            Voxels::U64(v) => typed(v, |x| x > 0, &mut f),
            Voxels::F32(v) => typed(v, |x| x > 0.0, &mut f),
            Voxels::F64(v) => typed(v, |x| x > 0.0, &mut f),
        }
    }

    /// Each stored value as f64 (RGB: each channel).
    pub fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        match self {
            Voxels::U8(v) | Voxels::Rgb8(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::I8(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::I16(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::U16(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::I32(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::U32(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::I64(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::U64(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::F32(v) => Box::new(v.iter().map(|&x| x as f64)),
            Voxels::F64(v) => Box::new(v.iter().copied()),
        }
    }
}

/// The header fields medgrain uses.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    pub little_endian: bool,
    /// `dim[1..=dim[0]]`.
    pub shape: Vec<usize>,
    pub datatype: i16,
    pub bitpix: i16,
    /// `pixdim[0..8]`.
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i16,
    pub sform_code: i16,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub descrip: String,
}

/// A NIfTI image: header and stored voxels.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    pub header: NiftiHeader,
    pub voxels: Voxels,
}

/// The largest volume medgrain reads into memory (4 GiB of voxel data).
pub const MAX_VOXEL_BYTES: u64 = 4 << 30;

fn invalid(path: &Path, reason: impl Into<String>) -> ImagingError {
    ImagingError::InvalidVolume {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

struct Fields<'a> {
    b: &'a [u8],
    le: bool,
}

impl Fields<'_> {
    /// A signed integer of `w` bytes (2, 4 or 8).
    fn int(&self, o: usize, w: usize) -> i64 {
        match w {
            2 => self.i16(o) as i64,
            4 => self.i32(o) as i64,
            _ => self.i64(o),
        }
    }
    /// A float of `w` bytes (4 or 8).
    fn float(&self, o: usize, w: usize) -> f64 {
        if w == 4 {
            self.f32(o)
        } else {
            self.f64(o)
        }
    }
    fn i16(&self, o: usize) -> i16 {
        let a = [self.b[o], self.b[o + 1]];
        if self.le {
            i16::from_le_bytes(a)
        } else {
            i16::from_be_bytes(a)
        }
    }
    fn i32(&self, o: usize) -> i32 {
        let a = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
        if self.le {
            i32::from_le_bytes(a)
        } else {
            i32::from_be_bytes(a)
        }
    }
    fn i64(&self, o: usize) -> i64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[o..o + 8]);
        if self.le {
            i64::from_le_bytes(a)
        } else {
            i64::from_be_bytes(a)
        }
    }
    fn f32(&self, o: usize) -> f64 {
        let a = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
        (if self.le {
            f32::from_le_bytes(a)
        } else {
            f32::from_be_bytes(a)
        }) as f64
    }
    fn f64(&self, o: usize) -> f64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[o..o + 8]);
        if self.le {
            f64::from_le_bytes(a)
        } else {
            f64::from_be_bytes(a)
        }
    }
}

/// Parses a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header from the start of `b`.
pub fn parse_header(b: &[u8], path: &Path) -> Result<NiftiHeader> {
    if b.len() < 348 {
        return Err(invalid(
            path,
            format!("{} bytes is too short for a NIfTI header", b.len()),
        ));
    }
    let size_le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let size_be = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (version, le) = match (size_le, size_be) {
        (348, _) => (1u8, true),
        (_, 348) => (1, false),
        (540, _) => (2, true),
        (_, 540) => (2, false),
        _ => return Err(invalid(path, "not a NIfTI file (sizeof_hdr is neither 348 nor 540)")),
    };
    let l = if version == 1 { &NIFTI1 } else { &NIFTI2 };
    if b.len() < l.header_len {
        return Err(invalid(path, format!("truncated NIfTI-{version} header")));
    }
    let magic = &b[l.magic_at..l.magic_at + 4];
    if !l.magics.contains(&magic) {
        return Err(invalid(path, format!("bad NIfTI-{version} magic {magic:?}")));
    }
    let f = Fields { b, le };
    let ndim = f.int(l.dim_at, l.dim_w);
    if !(1..=7).contains(&ndim) {
        return Err(invalid(path, format!("dim[0] = {ndim} is outside 1..=7")));
    }
    let mut shape = Vec::new();
    for k in 1..=ndim as usize {
        let d = f.int(l.dim_at + l.dim_w * k, l.dim_w);
        if d < 1 || d > u32::MAX as i64 {
            return Err(invalid(
                path,
                format!("dim[{k}] = {d} is out of range (must be at least 1)"),
            ));
        }
        shape.push(d as usize);
    }
    let fw = l.float_w;
    let three = |at: usize| [f.float(at, fw), f.float(at + fw, fw), f.float(at + 2 * fw, fw)];
    Ok(NiftiHeader {
        version,
        little_endian: le,
        shape,
        datatype: f.int(l.datatype_at, 2) as i16,
        bitpix: f.int(l.bitpix_at, 2) as i16,
        pixdim: std::array::from_fn(|k| f.float(l.pixdim_at + fw * k, fw)),
        vox_offset: if version == 1 {
            f.float(l.vox_offset_at, 4)
        } else {
            f.int(l.vox_offset_at, 8) as f64
        },
        scl_slope: f.float(l.slope_at, fw),
        scl_inter: f.float(l.slope_at + fw, fw),
        qform_code: f.int(l.qform_at, l.code_w) as i16,
        sform_code: f.int(l.qform_at + l.code_w, l.code_w) as i16,
        quatern: three(l.quatern_at),
        qoffset: three(l.quatern_at + 3 * fw),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.float(l.srow_at + fw * (4 * r + c), fw))),
        descrip: String::from_utf8_lossy(&b[l.descrip_at..l.descrip_at + 80])
            .trim_end_matches('\0')
            .to_string(),
    })
}

/// Byte offsets of the header fields medgrain reads (NIfTI-1 and NIfTI-2 standards).
struct Layout {
    header_len: usize,
    magic_at: usize,
    magics: [&'static [u8]; 2],
    dim_at: usize,
    /// Width of dim[] entries: 2 (int16) or 8 (int64).
    dim_w: usize,
    /// Width of float fields: 4 (float32) or 8 (float64).
    float_w: usize,
    datatype_at: usize,
    bitpix_at: usize,
    pixdim_at: usize,
    vox_offset_at: usize,
    /// scl_slope, then scl_inter.
    slope_at: usize,
    /// qform_code, then sform_code.
    qform_at: usize,
    code_w: usize,
    /// quatern_b/c/d, then qoffset_x/y/z.
    quatern_at: usize,
    srow_at: usize,
    descrip_at: usize,
}

const NIFTI1: Layout = Layout {
    header_len: 348,
    magic_at: 344,
    magics: [b"n+1\0", b"ni1\0"],
    dim_at: 40,
    dim_w: 2,
    float_w: 4,
    datatype_at: 70,
    bitpix_at: 72,
    pixdim_at: 76,
    vox_offset_at: 108,
    slope_at: 112,
    qform_at: 252,
    code_w: 2,
    quatern_at: 256,
    srow_at: 280,
    descrip_at: 148,
};

const NIFTI2: Layout = Layout {
    header_len: 540,
    magic_at: 4,
    magics: [b"n+2\0", b"ni2\0"],
    dim_at: 16,
    dim_w: 8,
    float_w: 8,
    datatype_at: 12,
    bitpix_at: 14,
    pixdim_at: 104,
    vox_offset_at: 168,
    slope_at: 176,
    qform_at: 344,
    code_w: 4,
    quatern_at: 352,
    srow_at: 400,
    descrip_at: 240,
};

/// Bytes per voxel for a datatype code, with the variant constructor name.
fn voxel_size(datatype: i16) -> Option<usize> {
    Some(match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 768 | 16 => 4,
        64 | 1024 | 1280 => 8,
        128 => 3,
        _ => return None,
    })
}

fn decode_voxels(datatype: i16, raw: &[u8], le: bool) -> Option<Voxels> {
    macro_rules! conv {
        ($t:ty, $n:expr, $var:ident) => {{
            let v: Vec<$t> = raw
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if le {
                        <$t>::from_le_bytes(a)
                    } else {
                        <$t>::from_be_bytes(a)
                    }
                })
                .collect();
            Voxels::$var(v)
        }};
    }
    Some(match datatype {
        2 => Voxels::U8(raw.to_vec()),
        256 => Voxels::I8(raw.iter().map(|&b| b as i8).collect()),
        4 => conv!(i16, 2, I16),
        512 => conv!(u16, 2, U16),
        8 => conv!(i32, 4, I32),
        768 => conv!(u32, 4, U32),
        16 => conv!(f32, 4, F32),
        64 => conv!(f64, 8, F64),
        1024 => conv!(i64, 8, I64),
        1280 => conv!(u64, 8, U64),
        128 => Voxels::Rgb8(raw.to_vec()),
        _ => return None,
    })
}

/// Parses the header at the start of a (possibly gzip-compressed) NIfTI byte stream; reads at most 540 bytes of
/// it (extensions are skipped later through vox_offset).
fn header_of(mut r: impl Read, path: &Path) -> Result<NiftiHeader> {
    let mut head = [0u8; 2];
    let n = read_up_to(&mut r, &mut head).map_err(|e| invalid(path, e.to_string()))?;
    let mut header_bytes = vec![0u8; 540];
    header_bytes[..n].copy_from_slice(&head[..n]);
    let rest = if head[..n] == [0x1f, 0x8b] {
        let mut dec = MultiGzDecoder::new(std::io::Cursor::new(head).chain(r));
        let k = read_up_to(&mut dec, &mut header_bytes).map_err(|e| invalid(path, format!("gzip: {e}")))?;
        return parse_header(&header_bytes[..k], path);
    } else {
        read_up_to(&mut r, &mut header_bytes[n..]).map_err(|e| invalid(path, e.to_string()))?
    };
    parse_header(&header_bytes[..n + rest], path)
}

/// Reads only the header of a `.nii` or `.nii.gz` file (no voxel data is read or decompressed).
pub fn read_nifti_header(path: &Path) -> Result<NiftiHeader> {
    let file = std::fs::File::open(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    header_of(std::io::BufReader::new(file), path)
}

/// Where a file's voxels are: the header, the voxel bytes' offset and length in the (decompressed) file, the bytes
/// needed in all, and whether the file is gzip. Checks every size before anything is allocated.
struct Span {
    header: NiftiHeader,
    offset: u64,
    total: u64,
    gz: bool,
}

fn span_of(file_bytes: &[u8], path: &Path) -> Result<Span> {
    let gz = file_bytes.starts_with(&[0x1f, 0x8b]);
    let header = header_of(file_bytes, path)?;
    let vsize = voxel_size(header.datatype)
        .ok_or_else(|| invalid(path, format!("unsupported NIfTI datatype code {}", header.datatype)))?;
    let count = header
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| invalid(path, "dimensions overflow"))?;
    let need = count
        .checked_mul(vsize as u64)
        .ok_or_else(|| invalid(path, "dimensions overflow"))?;
    if need > MAX_VOXEL_BYTES {
        return Err(invalid(
            path,
            format!("{} voxels ({need} bytes) exceed the supported 4 GiB", count),
        ));
    }
    let min_offset = if header.version == 1 { 348.0 } else { 540.0 };
    if !(header.vox_offset.is_finite() && header.vox_offset >= 0.0) {
        return Err(invalid(path, format!("bad vox_offset {}", header.vox_offset)));
    }
    // vox_offset is a float: a huge one saturates to u64::MAX; the sum is checked (cargo-fuzz found the overflow)
    let offset = header.vox_offset.max(min_offset) as u64;
    let total = offset
        .checked_add(need)
        .filter(|&t| t <= MAX_VOXEL_BYTES + (1 << 32))
        .ok_or_else(|| invalid(path, format!("vox_offset {} is beyond any file", header.vox_offset)))?;
    if gz && total > (file_bytes.len() as u64).saturating_mul(1100).max(1 << 20) {
        return Err(invalid(
            path,
            format!("header claims {need} bytes of voxels, more than this compressed file can hold"),
        ));
    }
    Ok(Span {
        header,
        offset,
        total,
        gz,
    })
}

/// Decompresses a single-member gzip file with libdeflate into `out` (resized; its old bytes are overwritten, not
/// zeroed first) when the trailer's size covers `total` bytes. `None` when libdeflate cannot: several members,
/// sizes beyond 4 GiB, damaged data — the caller then reads with flate2, whose errors name the problem.
fn gunzip_whole(file_bytes: &[u8], total: u64, out: &mut Vec<u8>) -> Option<usize> {
    let trailer = file_bytes.len().checked_sub(4).map(|k| &file_bytes[k..])?;
    let isize = u32::from_le_bytes(trailer.try_into().ok()?) as u64;
    if isize < total || isize > total + (64 << 20) {
        return None;
    }
    if out.len() < isize as usize {
        out.resize(isize as usize, 0);
    }
    let n = libdeflater::Decompressor::new()
        .gzip_decompress(file_bytes, &mut out[..isize as usize])
        .ok()?;
    (n as u64 >= total).then_some(n)
}

/// The decompressed bytes of `file_bytes` (at least `span.total` of them) in `out`.
fn inflate_into(file_bytes: &[u8], span: &Span, path: &Path, out: &mut Vec<u8>) -> Result<()> {
    let total = span.total;
    if gunzip_whole(file_bytes, total, out).is_some() {
        return Ok(());
    }
    out.clear();
    let mut dec = MultiGzDecoder::new(file_bytes).take(total);
    dec.read_to_end(out).map_err(|e| invalid(path, format!("gzip: {e}")))?;
    if (out.len() as u64) < total {
        return Err(invalid(
            path,
            format!("truncated: header needs {total} bytes, the file holds {}", out.len()),
        ));
    }
    Ok(())
}

/// Reads a `.nii` or `.nii.gz` file (gzip detected by content).
pub fn read_nifti(path: &Path) -> Result<NiftiImage> {
    let file_bytes = std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let span = span_of(&file_bytes, path)?;
    let (offset, total) = (span.offset as usize, span.total as usize);
    let decode = |header: NiftiHeader, data: &[u8]| {
        let voxels = decode_voxels(header.datatype, data, header.little_endian)
            .ok_or_else(|| invalid(path, format!("unsupported NIfTI datatype code {}", header.datatype)))?;
        Ok(NiftiImage { header, voxels })
    };
    // Plain files: check the size before allocating. Gzip: read at most `total` bytes and compare.
    if span.gz {
        let mut all = Vec::new();
        inflate_into(&file_bytes, &span, path, &mut all)?;
        if span.header.datatype == 2 {
            // uint8 (masks): the decompressed buffer becomes the voxels, moved down in place rather than copied
            all.truncate(total);
            all.drain(..offset);
            return Ok(NiftiImage {
                header: span.header,
                voxels: Voxels::U8(all),
            });
        }
        // other types are decoded straight from the inflated bytes (no copy of the voxel bytes first)
        decode(span.header, &all[offset..total])
    } else {
        if file_bytes.len() < total {
            return Err(invalid(
                path,
                format!(
                    "truncated: header needs {total} bytes, the file has {}",
                    file_bytes.len()
                ),
            ));
        }
        decode(span.header, &file_bytes[offset..total])
    }
}

/// The stored bytes of a NIfTI file's voxels, borrowed from a caller's buffer (see [`read_nifti_raw`]).
pub struct RawVoxels<'a> {
    pub datatype: i16,
    pub little_endian: bool,
    pub bytes: &'a [u8],
}

impl RawVoxels<'_> {
    /// The voxels decoded into their type.
    pub fn to_voxels(&self) -> Option<Voxels> {
        decode_voxels(self.datatype, self.bytes, self.little_endian)
    }

    /// Value `i` as f64, decoded from the stored bytes (the number [`Voxels::get`] gives); `None` past the end or
    /// for RGB.
    pub fn get(&self, i: usize) -> Option<f64> {
        macro_rules! at {
            ($t:ty, $n:expr) => {{
                let b = self.bytes.get(i * $n..i * $n + $n)?;
                let a: [u8; $n] = b.try_into().ok()?;
                Some(if self.little_endian {
                    <$t>::from_le_bytes(a)
                } else {
                    <$t>::from_be_bytes(a)
                } as f64)
            }};
        }
        match self.datatype {
            2 => self.bytes.get(i).map(|&b| b as f64),
            256 => self.bytes.get(i).map(|&b| b as i8 as f64),
            4 => at!(i16, 2),
            512 => at!(u16, 2),
            8 => at!(i32, 4),
            768 => at!(u32, 4),
            16 => at!(f32, 4),
            64 => at!(f64, 8),
            1024 => at!(i64, 8),
            1280 => at!(u64, 8),
            _ => None,
        }
    }

    /// [`Voxels::for_each_positive`] on the stored bytes: uint8 masks are scanned in place, other types decoded.
    pub fn for_each_positive(&self, f: impl FnMut(usize)) {
        if self.datatype == 2 {
            for_each_nonzero_byte(self.bytes, f);
        } else if let Some(v) = self.to_voxels() {
            v.for_each_positive(f);
        }
    }
}

/// Reads a NIfTI file's header and voxel bytes into `scratch`, which callers reuse from file to file: reading a
/// volume's 117 organ masks this way allocates (and page-faults) one buffer instead of 117. The checks and
/// errors are [`read_nifti`]'s.
pub fn read_nifti_raw<'a>(path: &Path, scratch: &'a mut Vec<u8>) -> Result<(NiftiHeader, RawVoxels<'a>)> {
    let file_bytes = read_file(path)?;
    let span = span_of(&file_bytes, path)?;
    raw_from_bytes(&file_bytes, span, path, scratch)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn raw_from_bytes<'a>(
    file_bytes: &[u8],
    span: Span,
    path: &Path,
    scratch: &'a mut Vec<u8>,
) -> Result<(NiftiHeader, RawVoxels<'a>)> {
    voxel_size(span.header.datatype).ok_or_else(|| {
        invalid(
            path,
            format!("unsupported NIfTI datatype code {}", span.header.datatype),
        )
    })?;
    let (offset, total) = (span.offset as usize, span.total as usize);
    if span.gz {
        inflate_into(file_bytes, &span, path, scratch)?;
    } else {
        if file_bytes.len() < total {
            return Err(invalid(
                path,
                format!(
                    "truncated: header needs {total} bytes, the file has {}",
                    file_bytes.len()
                ),
            ));
        }
        scratch.clear();
        scratch.extend_from_slice(&file_bytes[..total]);
    }
    let header = span.header;
    let raw = RawVoxels {
        datatype: header.datatype,
        little_endian: header.little_endian,
        bytes: &scratch[offset..total],
    };
    Ok((header, raw))
}

/// A mask's voxels as [`read_nifti_mask`] gives them: the stored bytes in the caller's buffer, or — for a gzip'd
/// one-byte mask — only its non-zero bytes, never inflated in full ([`crate::sparse_inflate`]).
pub enum MaskVoxels<'a> {
    Raw(RawVoxels<'a>),
    Sparse {
        /// 2 (uint8) or 256 (int8).
        datatype: i16,
        bytes: crate::sparse_inflate::Sparse,
        /// The voxels are the file's bytes `[offset, total)`.
        offset: u64,
        total: u64,
    },
}

impl MaskVoxels<'_> {
    /// Calls `f(i)` for every voxel `i` (file order) with a value > 0, in order — what [`RawVoxels::for_each_positive`]
    /// gives for the same file.
    pub fn for_each_positive(&self, mut f: impl FnMut(usize)) {
        match self {
            MaskVoxels::Raw(raw) => raw.for_each_positive(f),
            MaskVoxels::Sparse {
                datatype,
                bytes,
                offset,
                total,
            } => {
                let signed = *datatype == 256;
                bytes.for_each_nonzero(*offset, *total, |p, b| {
                    if !signed || (b as i8) > 0 {
                        f((p - offset) as usize)
                    }
                })
            }
        }
    }
}

impl MaskVoxels<'_> {
    /// For a uint8 mask: calls `f(i, value)` for every non-zero voxel, in order, and returns true; false (and no
    /// calls) for other types.
    pub fn for_each_nonzero_u8(&self, mut f: impl FnMut(usize, u8)) -> bool {
        match self {
            MaskVoxels::Raw(raw) if raw.datatype == 2 => {
                let bytes = raw.bytes;
                for_each_nonzero_byte(bytes, |i| f(i, bytes[i]));
                true
            }
            MaskVoxels::Sparse {
                datatype: 2,
                bytes,
                offset,
                total,
            } => {
                bytes.for_each_nonzero(*offset, *total, |p, b| f((p - offset) as usize, b));
                true
            }
            _ => false,
        }
    }

    /// The number of voxels the file holds.
    pub fn len(&self) -> usize {
        match self {
            MaskVoxels::Raw(raw) => voxel_size(raw.datatype).map_or(0, |s| raw.bytes.len() / s),
            MaskVoxels::Sparse { offset, total, .. } => (total - offset) as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a mask (organ, lesion) for its positive voxels: a gzip'd uint8/int8 file is decoded by the sparse inflater,
/// which skips the zero runs that are > 98 % of a CT-sized mask (≈ 10× less time than inflating every byte; see
/// BENCHMARKS.md "Real-size volumes"); anything else, or a stream the sparse inflater refuses (damaged,
/// truncated), goes through [`read_nifti_raw`] into `scratch`, whose checks and errors apply.
pub fn read_nifti_mask<'a>(path: &Path, scratch: &'a mut Vec<u8>) -> Result<(NiftiHeader, MaskVoxels<'a>)> {
    let file_bytes = read_file(path)?;
    let span = span_of(&file_bytes, path)?;
    if span.gz && matches!(span.header.datatype, 2 | 256) {
        if let Ok(bytes) = crate::sparse_inflate::gunzip_sparse(&file_bytes, span.total) {
            if bytes.len >= span.total {
                return Ok((
                    span.header.clone(),
                    MaskVoxels::Sparse {
                        datatype: span.header.datatype,
                        bytes,
                        offset: span.offset,
                        total: span.total,
                    },
                ));
            }
        }
    }
    let (header, raw) = raw_from_bytes(&file_bytes, span, path, scratch)?;
    Ok((header, MaskVoxels::Raw(raw)))
}

/// Calls `f(i)` for every non-zero byte, skipping zero runs 64 bytes at a time (an OR of eight words, which the
/// compiler turns into vector instructions).
fn for_each_nonzero_byte(v: &[u8], mut f: impl FnMut(usize)) {
    let blocks = v.chunks_exact(64);
    let tail = blocks.remainder();
    for (b, block) in blocks.enumerate() {
        let any = block.chunks_exact(8).fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().expect("eight bytes"))
        });
        if any == 0 {
            continue;
        }
        for (k, &x) in block.iter().enumerate() {
            if x > 0 {
                f(b * 64 + k);
            }
        }
    }
    let base = v.len() - tail.len();
    for (k, &x) in tail.iter().enumerate() {
        if x > 0 {
            f(base + k);
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl NiftiHeader {
    /// (slope, intercept) to apply, or `None` when nibabel would not scale.
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let (s, i) = (self.scl_slope, self.scl_inter);
        if !s.is_finite() || s == 0.0 {
            return None;
        }
        let i = if i.is_finite() { i } else { 0.0 };
        if s == 1.0 && i == 0.0 {
            None
        } else {
            Some((s, i))
        }
    }

    /// Voxel sizes of the spatial axes as stored (`pixdim[1..=ndim]`).
    pub fn zooms(&self) -> Vec<f64> {
        (1..=self.shape.len()).map(|k| self.pixdim[k]).collect()
    }

    /// The qform affine (nibabel's `get_qform`): quaternion rotation, voxel sizes with qfac, offsets.
    pub fn qform(&self) -> [[f64; 4]; 4] {
        let [b, c, d] = self.quatern;
        let w2 = 1.0 - (b * b + c * c + d * d);
        let a = if w2 < 0.0 && w2.abs() < 3.0 * f32::EPSILON as f64 {
            0.0
        } else {
            w2.max(0.0).sqrt()
        };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let vox = [self.pixdim[1], self.pixdim[2], self.pixdim[3] * qfac];
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * vox[j];
            }
            m[i][3] = self.qoffset[i];
        }
        m[3][3] = 1.0;
        m
    }

    /// The sform affine.
    pub fn sform(&self) -> [[f64; 4]; 4] {
        [self.srow[0], self.srow[1], self.srow[2], [0.0, 0.0, 0.0, 1.0]]
    }

    /// nibabel's Analyze base affine (`shape_zoom_affine` with x flipped).
    pub fn base_affine(&self) -> [[f64; 4]; 4] {
        let mut m = [[0.0; 4]; 4];
        for (k, row) in m.iter_mut().take(3).enumerate() {
            let dim = self.shape.get(k).copied().unwrap_or(1) as f64;
            let mut zoom = if k < self.shape.len() { self.pixdim[k + 1] } else { 1.0 };
            if k == 0 {
                zoom = -zoom;
            }
            row[k] = zoom;
            row[3] = -(dim - 1.0) / 2.0 * zoom;
        }
        m[3][3] = 1.0;
        m
    }

    /// nibabel's `get_best_affine`: sform if its code is set, else qform, else the base affine.
    pub fn best_affine(&self) -> [[f64; 4]; 4] {
        if self.sform_code > 0 {
            self.sform()
        } else if self.qform_code > 0 {
            self.qform()
        } else {
            self.base_affine()
        }
    }
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The orthogonal polar factor of a non-singular 3×3 matrix (Newton iteration `R ← (R + R⁻ᵀ) / 2`), which equals
/// `P·Qᵀ` from its SVD — what nibabel's `io_orientation` uses.
pub(crate) fn polar(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let mut r = m;
    for _ in 0..100 {
        let d = det3(&r);
        if d.abs() < 1e-12 {
            return None;
        }
        // inverse transpose = cofactor matrix / det
        let mut cof = [[0.0; 3]; 3];
        for (i, row) in cof.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let (i1, i2) = ((i + 1) % 3, (i + 2) % 3);
                let (j1, j2) = ((j + 1) % 3, (j + 2) % 3);
                *v = (r[i1][j1] * r[i2][j2] - r[i1][j2] * r[i2][j1]) / d;
            }
        }
        let mut next = [[0.0; 3]; 3];
        let mut delta = 0.0f64;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (r[i][j] + cof[i][j]);
                delta = delta.max((next[i][j] - r[i][j]).abs());
            }
        }
        r = next;
        if delta < 1e-14 {
            break;
        }
    }
    Some(r)
}

/// Orientation codes of an affine's voxel axes, as nibabel's `aff2axcodes` (labels R/L, A/P, S/I); `None` for
/// an axis whose direction is undefined.
pub fn axcodes(affine: &[[f64; 4]; 4]) -> [Option<char>; 3] {
    let labels = [('L', 'R'), ('P', 'A'), ('I', 'S')];
    crate::reorient::io_orientation(affine).map(|o| o.map(|(ax, neg)| if neg { labels[ax].0 } else { labels[ax].1 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{write_nifti1_gz, NiftiDatatype, NiftiVolume};

    /// The positive positions the plain way: every value converted and compared.
    fn positives_by_values(v: &Voxels) -> Vec<usize> {
        v.values()
            .enumerate()
            .filter(|(_, x)| *x > 0.0)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn raw_reads_equal_full_reads_for_masks_and_other_types() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [37, 21, 13]; // not a multiple of 8 or 64: the tail is scanned too
        let n: usize = dims.iter().product();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mask: Vec<u8> = (0..n)
            .map(|i| {
                if i > n - 3 || next() % 97 == 0 {
                    (1 + next() % 3) as u8
                } else {
                    0
                }
            })
            .collect();
        let hu: Vec<u8> = (0..n)
            .flat_map(|_| ((next() % 2000) as i16 - 1000).to_le_bytes())
            .collect();
        let a = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut scratch = vec![9u8; 5]; // stale contents must not leak into a read
        for (name, data, dt) in [
            ("m.nii.gz", &mask, NiftiDatatype::Uint8),
            ("h.nii.gz", &hu, NiftiDatatype::Int16),
        ] {
            let p = dir.path().join(name);
            let vol = NiftiVolume {
                dims,
                affine: a,
                datatype: dt,
                data,
                description: "",
            };
            write_nifti1_gz(&p, &vol).unwrap();
            let full = read_nifti(&p).unwrap();
            let (_, raw) = read_nifti_raw(&p, &mut scratch).unwrap();
            let mut got = Vec::new();
            raw.for_each_positive(|i| got.push(i));
            let want = positives_by_values(&full.voxels);
            assert!(!want.is_empty());
            assert_eq!(got, want, "{name}");
            let mut again = Vec::new();
            full.voxels.for_each_positive(|i| again.push(i));
            assert_eq!(again, want, "{name}");
            assert_eq!(raw.to_voxels().unwrap(), full.voxels, "{name}");
            for i in (0..n).step_by(7).chain([n - 1, n]) {
                assert_eq!(raw.get(i), full.voxels.get(i), "{name} value {i}");
            }
            // a file of two gzip members (libdeflate reads one): the flate2 path gives the same voxels
            let bytes = std::fs::read(&p).unwrap();
            let raw_file = {
                use std::io::Read;
                let mut d = flate2::read::GzDecoder::new(&bytes[..]);
                let mut v = Vec::new();
                d.read_to_end(&mut v).unwrap();
                v
            };
            let mut two = Vec::new();
            for part in [&raw_file[..400], &raw_file[400..]] {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(part).unwrap();
                two.extend(e.finish().unwrap());
            }
            let q = dir.path().join(format!("two_{name}"));
            std::fs::write(&q, &two).unwrap();
            assert_eq!(read_nifti(&q).unwrap().voxels, full.voxels, "{name} in two members");
            let (_, raw2) = read_nifti_raw(&q, &mut scratch).unwrap();
            assert_eq!(raw2.to_voxels().unwrap(), full.voxels, "{name} in two members");
        }
        // a truncated file is an error from both readers, not a panic
        let p = dir.path().join("h.nii.gz");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() / 2);
        let q = dir.path().join("bad.nii.gz");
        std::fs::write(&q, &bytes).unwrap();
        assert!(read_nifti(&q).is_err());
        assert!(read_nifti_raw(&q, &mut scratch).is_err());
    }

    #[test]
    fn round_trip_with_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.nii.gz");
        let vals: Vec<i16> = (0..2 * 3 * 4).map(|v| v as i16 - 7).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = [
            [-2.0, 0.0, 0.0, 10.0],
            [0.0, -2.0, 0.0, 20.0],
            [0.0, 0.0, 5.0, -30.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        write_nifti1_gz(
            &p,
            &NiftiVolume {
                dims: [2, 3, 4],
                affine: a,
                datatype: NiftiDatatype::Int16,
                data: &bytes,
                description: "t",
            },
        )
        .unwrap();
        let img = read_nifti(&p).unwrap();
        assert_eq!(read_nifti_header(&p).unwrap(), img.header);
        assert_eq!(img.header.shape, vec![2, 3, 4]);
        assert_eq!(img.voxels, Voxels::I16(vals));
        assert_eq!(img.header.best_affine(), a);
        // qform (from the quaternion) equals the sform for this rotation.
        let q = img.header.qform();
        for i in 0..3 {
            for j in 0..4 {
                assert!((q[i][j] - a[i][j]).abs() < 1e-6, "{q:?}");
            }
        }
        assert_eq!(axcodes(&a), [Some('L'), Some('P'), Some('S')]);
    }

    #[test]
    fn lying_and_broken_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.nii");
        std::fs::write(&p, b"short").unwrap();
        assert!(read_nifti(&p).is_err());
        // A header claiming 65535^3 int16 voxels with no data.
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&3i16.to_le_bytes());
        for k in 1..=3 {
            h[40 + 2 * k..42 + 2 * k].copy_from_slice(&i16::MAX.to_le_bytes());
        }
        h[70..72].copy_from_slice(&4i16.to_le_bytes());
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        std::fs::write(&p, &h).unwrap();
        let e = read_nifti(&p).unwrap_err().to_string();
        assert!(e.contains("exceed") || e.contains("truncated"), "{e}");
        // Reasonable dims but missing data.
        for k in 1..=3 {
            h[40 + 2 * k..42 + 2 * k].copy_from_slice(&4i16.to_le_bytes());
        }
        std::fs::write(&p, &h).unwrap();
        assert!(read_nifti(&p).unwrap_err().to_string().contains("truncated"));
        // A vox_offset of 3e38 (found by cargo-fuzz: offset + size overflowed, then a slice panicked).
        h[108..112].copy_from_slice(&3e38f32.to_le_bytes());
        std::fs::write(&p, &h).unwrap();
        assert!(read_nifti(&p).unwrap_err().to_string().contains("vox_offset"));
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        // Bad magic.
        h[344..348].copy_from_slice(b"xxxx");
        std::fs::write(&p, &h).unwrap();
        assert!(read_nifti(&p).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn base_affine_is_analyze_style() {
        // nibabel shape_zoom_affine((4, 6, 8), (2, 3, 4), x_flip=True), derived by hand:
        // diag(-2, 3, 4); offsets -(shape-1)/2 * zoom = (1.5*2, -2.5*3, -3.5*4) = (3, -7.5, -14).
        let mut b = vec![0u8; 352];
        b[0..4].copy_from_slice(&348i32.to_le_bytes());
        b[344..348].copy_from_slice(b"n+1\0");
        b[40..42].copy_from_slice(&3i16.to_le_bytes());
        for (k, d) in [4i16, 6, 8].iter().enumerate() {
            b[42 + 2 * k..44 + 2 * k].copy_from_slice(&d.to_le_bytes());
        }
        for (k, z) in [2f32, 3.0, 4.0].iter().enumerate() {
            b[80 + 4 * k..84 + 4 * k].copy_from_slice(&z.to_le_bytes());
        }
        let h = parse_header(&b, Path::new("h.nii")).unwrap();
        assert_eq!(
            h.best_affine(),
            [
                [-2.0, 0.0, 0.0, 3.0],
                [0.0, 3.0, 0.0, -7.5],
                [0.0, 0.0, 4.0, -14.0],
                [0.0, 0.0, 0.0, 1.0]
            ]
        );
        assert_eq!(h.scaling(), None); // slope 0 means unscaled
    }

    #[test]
    fn oblique_axcodes_follow_the_dominant_direction() {
        let t = 0.3f64;
        let a = [
            [t.cos(), -t.sin(), 0.0, 0.0],
            [t.sin(), t.cos(), 0.0, 0.0],
            [0.0, 0.0, -1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(axcodes(&a), [Some('R'), Some('A'), Some('I')]);
    }
}
