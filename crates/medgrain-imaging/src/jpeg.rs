//! DCT-based JPEG (DICOM JPEG Baseline 1.2.840.10008.1.2.4.50 and JPEG Extended 1.2.840.10008.1.2.4.51, 8- and
//! 12-bit) decoded by libjpeg-turbo 3 (its TurboJPEG API, built from the source bundled with `turbojpeg-sys`). The
//! 12-bit path is the one older CT and MR archives need; colour JPEGs come out as RGB, libjpeg honouring the Adobe
//! APP14 and JFIF markers for the colour transform, as pydicom's decoders do.

use std::borrow::Cow;
use turbojpeg_sys as tj;

/// One decoded frame: samples in row-major, interleaved order; 8-bit as `u8`, 12-bit as `u16`.
#[derive(Debug, Clone, PartialEq)]
pub enum JpegFrame {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn new() -> Result<Self, String> {
        // SAFETY: plain constructor; null means failure.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as libc::c_int) };
        if h.is_null() {
            return Err("libjpeg-turbo could not be initialised".into());
        }
        Ok(Handle(h))
    }

    fn error(&self) -> String {
        // SAFETY: the handle is valid; libjpeg-turbo returns a NUL-terminated string it owns.
        unsafe {
            let p = tj::tj3GetErrorStr(self.0);
            if p.is_null() {
                "unknown libjpeg-turbo error".into()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: valid handle, a parameter id from the header.
        unsafe { tj::tj3Get(self.0, param as libc::c_int) }
    }
}

/// Whether a JPEG stream carries a JFIF (APP0) or Adobe (APP14) marker, the two that state its colour transform.
fn has_colour_marker(data: &[u8]) -> bool {
    // Markers before the first scan: walk the segments after SOI.
    let mut i = 2;
    while i + 4 <= data.len() && data[i] == 0xFF {
        let marker = data[i + 1];
        if marker == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let body = &data[(i + 4).min(data.len())..(i + 2 + len).min(data.len())];
        // An Adobe segment counts only when it holds the transform byte (12 bytes of data), as libjpeg reads it.
        if (marker == 0xE0 && body.starts_with(b"JFIF"))
            || (marker == 0xEE && body.starts_with(b"Adobe") && body.len() >= 12)
        {
            return true;
        }
        i += 2 + len;
    }
    false
}

/// Decodes one JPEG stream with `samples` components (1 or 3) of `rows × columns`. The stream's own size and
/// component count must agree with the DICOM attributes. `dicom_rgb`: the DICOM header says RGB; a three-component
/// stream with neither JFIF nor Adobe marker is then taken as RGB-coded (no YCbCr → RGB transform), as pydicom does.
pub fn decode_frame(
    data: &[u8],
    rows: usize,
    columns: usize,
    samples: usize,
    dicom_rgb: bool,
) -> Result<JpegFrame, String> {
    let h = Handle::new()?;
    // SAFETY: the buffer outlives the call; libjpeg-turbo only reads `data.len()` bytes.
    if unsafe { tj::tj3DecompressHeader(h.0, data.as_ptr(), data.len() as tj::size_t) } != 0 {
        return Err(format!("JPEG header: {}", h.error()));
    }
    let (w, hgt) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let precision = h.get(tj::TJPARAM_TJPARAM_PRECISION);
    let lossless = h.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1;
    if w as usize != columns || hgt as usize != rows {
        return Err(format!(
            "the JPEG stream is {w}×{hgt}, the DICOM attributes say {columns}×{rows}"
        ));
    }
    if lossless {
        return Err("a lossless JPEG stream in a DCT transfer syntax".into());
    }
    let format = match samples {
        1 => tj::TJPF_TJPF_GRAY,
        3 => tj::TJPF_TJPF_RGB,
        s => return Err(format!("{s} samples per pixel in a JPEG stream")),
    } as libc::c_int;
    let pitch = (columns * samples) as libc::c_int;
    let n = rows * columns * samples;
    let untransformed = dicom_rgb
        && samples == 3
        && precision <= 8
        && !has_colour_marker(data)
        && h.get(tj::TJPARAM_TJPARAM_COLORSPACE) == tj::TJCS_TJCS_YCbCr as i32
        && h.get(tj::TJPARAM_TJPARAM_SUBSAMP) == tj::TJSAMP_TJSAMP_444;
    if untransformed {
        // The three full-resolution planes as coded, interleaved: no colour conversion.
        let plane = rows * columns;
        let mut planes = vec![0u8; 3 * plane];
        let (a, rest) = planes.split_at_mut(plane);
        let (b, c) = rest.split_at_mut(plane);
        let mut ptrs = [a.as_mut_ptr(), b.as_mut_ptr(), c.as_mut_ptr()];
        let mut strides = [columns as libc::c_int; 3];
        // SAFETY: three planes of rows × columns bytes with those strides, which is what 4:4:4 decoding writes.
        let rc = unsafe {
            tj::tj3DecompressToYUVPlanes8(
                h.0,
                data.as_ptr(),
                data.len() as tj::size_t,
                ptrs.as_mut_ptr(),
                strides.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(format!("JPEG decoding: {}", h.error()));
        }
        let mut out = vec![0u8; n];
        for p in 0..plane {
            out[3 * p] = planes[p];
            out[3 * p + 1] = planes[plane + p];
            out[3 * p + 2] = planes[2 * plane + p];
        }
        return Ok(JpegFrame::U8(out));
    }
    // One call per precision; `out` holds rows × pitch samples, which is what libjpeg-turbo writes for this format.
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("JPEG decoding: {}", h.error()))
        }
    };
    let (buf, len) = (data.as_ptr(), data.len() as tj::size_t);
    match precision {
        2..=8 => {
            let mut out = vec![0u8; n];
            // SAFETY: see above; the input buffer outlives the call.
            check(unsafe { tj::tj3Decompress8(h.0, buf, len, out.as_mut_ptr(), pitch, format) })?;
            Ok(JpegFrame::U8(out))
        }
        9..=12 => {
            let mut out = vec![0i16; n];
            // SAFETY: as above, with 16-bit samples.
            check(unsafe { tj::tj3Decompress12(h.0, buf, len, out.as_mut_ptr(), pitch, format) })?;
            Ok(JpegFrame::U16(out.into_iter().map(|v| v as u16).collect()))
        }
        p => Err(format!("{p}-bit JPEG is not a DCT precision (8 or 12)")),
    }
}

/// Splits encapsulated pixel data into one JPEG stream per frame: one fragment per frame, or every fragment of a
/// single frame joined, or streams cut at their start-of-image markers.
pub fn frames_of(fragments: &[Vec<u8>], frames: usize) -> Result<Vec<Cow<'_, [u8]>>, String> {
    // one fragment per frame (the usual case): no copy
    if fragments.len() == frames {
        return Ok(fragments.iter().map(|f| Cow::Borrowed(f.as_slice())).collect());
    }
    let joined: Vec<u8> = fragments.concat();
    if frames == 1 {
        return Ok(vec![Cow::Owned(joined)]);
    }
    // Several fragments per frame: each frame starts with SOI (FF D8 FF) right after the previous frame's EOI.
    let mut starts = vec![0usize];
    let mut i = 2;
    while i + 3 <= joined.len() {
        if joined[i - 2..i] == [0xFF, 0xD9] && joined[i..i + 3] == [0xFF, 0xD8, 0xFF] {
            starts.push(i);
        }
        i += 1;
    }
    if starts.len() != frames {
        return Err(format!(
            "{} fragments hold {} JPEG streams for {frames} frames",
            fragments.len(),
            starts.len()
        ));
    }
    starts.push(joined.len());
    Ok(starts
        .windows(2)
        .map(|w| Cow::Owned(joined[w[0]..w[1]].to_vec()))
        .collect())
}

/// Decodes a JPEG file as Pillow does (libjpeg-turbo, accurate DCT, fancy upsampling): `(width, height, channels,
/// samples)` with 1 channel for greyscale streams and 3 (RGB) for colour ones; 8-bit streams only.
pub fn decode_file(data: &[u8]) -> Result<(usize, usize, usize, Vec<u8>), String> {
    let h = Handle::new()?;
    // SAFETY: the buffer outlives the call; libjpeg-turbo only reads `data.len()` bytes.
    if unsafe { tj::tj3DecompressHeader(h.0, data.as_ptr(), data.len() as tj::size_t) } != 0 {
        return Err(format!("JPEG header: {}", h.error()));
    }
    let (w, hgt) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH) as usize,
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT) as usize,
    );
    if h.get(tj::TJPARAM_TJPARAM_PRECISION) > 8 {
        return Err("a JPEG file of more than 8 bits".into());
    }
    let grey = h.get(tj::TJPARAM_TJPARAM_COLORSPACE) == tj::TJCS_TJCS_GRAY as i32;
    let (format, samples) = if grey {
        (tj::TJPF_TJPF_GRAY, 1)
    } else {
        (tj::TJPF_TJPF_RGB, 3)
    };
    let mut out = vec![0u8; w * hgt * samples];
    // SAFETY: `out` holds rows × pitch bytes, which is what tj3Decompress8 writes for this pixel format.
    let rc = unsafe {
        tj::tj3Decompress8(
            h.0,
            data.as_ptr(),
            data.len() as tj::size_t,
            out.as_mut_ptr(),
            (w * samples) as libc::c_int,
            format as libc::c_int,
        )
    };
    if rc != 0 {
        return Err(format!("JPEG decode: {}", h.error()));
    }
    Ok((w, hgt, samples, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        assert!(decode_frame(b"not a jpeg", 4, 4, 1, false).is_err());
        assert!(decode_frame(&[], 4, 4, 1, false).is_err());
        assert!(!has_colour_marker(&[0xFF, 0xD8, 0xFF]));
        let jfif = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0x00];
        assert!(has_colour_marker(&jfif));
        // a truncated Adobe segment (no transform byte, pydicom's SC_rgb_jpeg.dcm) states nothing
        let short = [
            0xFF, 0xD8, 0xFF, 0xEE, 0x00, 0x0C, b'A', b'd', b'o', b'b', b'e', 0, 0, 0, 0, 0,
        ];
        assert!(!has_colour_marker(&short));
        let full = [
            0xFF, 0xD8, 0xFF, 0xEE, 0x00, 0x0E, b'A', b'd', b'o', b'b', b'e', 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(has_colour_marker(&full));
    }

    #[test]
    fn frames_are_split_at_their_markers() {
        let a = vec![0xFF, 0xD8, 0xFF, 1, 0xFF, 0xD9];
        let b = vec![0xFF, 0xD8, 0xFF, 2, 0xFF, 0xD9];
        let frags = vec![a[..3].to_vec(), a[3..].to_vec(), b.clone()];
        assert_eq!(
            frames_of(&frags, 2).unwrap(),
            vec![Cow::Borrowed(&a[..]), Cow::Borrowed(&b[..])]
        );
        assert_eq!(frames_of(&frags[..2], 1).unwrap(), vec![Cow::Borrowed(&a[..])]);
        assert!(frames_of(&frags, 3).is_ok()); // one fragment per frame is taken as is
        assert!(frames_of(&frags[..2], 2).is_ok());
        assert!(frames_of(std::slice::from_ref(&a), 2).is_err());
    }
}
