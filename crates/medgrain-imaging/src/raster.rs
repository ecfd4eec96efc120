//! 2D rasters (PNG, JPEG, TIFF): decoding into typed pixel buffers in `[row, col, channel]` order, label-map
//! reading for masks, and PNG encoding for images medgrain writes itself.

use crate::{ImagingError, Result};
use image::{DynamicImage, ImageEncoder, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// Stored pixel values, row-major, channels interleaved.
#[derive(Debug, Clone, PartialEq)]
pub enum PixelData {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

/// A decoded 2D image. Pixel values are exactly as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    /// 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    pub data: PixelData,
    /// Lower-case format name: "png" | "jpeg" | "tiff".
    pub format: &'static str,
}

impl Raster {
    /// Number of pixels (rows × cols).
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Largest value the stored type can hold (255, 65535, or 1.0 for float images).
    pub fn full_scale(&self) -> f32 {
        match self.data {
            PixelData::U8(_) => 255.0,
            PixelData::U16(_) => 65535.0,
            PixelData::F32(_) => 1.0,
        }
    }

    /// Luminance per pixel in 0..1 of the stored type's range (ITU-R BT.601 weights for colour; alpha ignored).
    pub fn luminance(&self) -> Vec<f32> {
        let n = self.pixel_count();
        let c = self.channels as usize;
        let scale = 1.0 / self.full_scale();
        // one loop per stored type and layout, so that each compiles to straight (vectorised) code
        fn grey<T: Copy>(px: &[T], n: usize, c: usize, scale: f32, f: impl Fn(T) -> f32) -> Vec<f32> {
            if c == 1 {
                px[..n].iter().map(|&v| f(v) * scale).collect()
            } else if c >= 3 {
                px.chunks_exact(c)
                    .take(n)
                    .map(|p| (0.299 * f(p[0]) + 0.587 * f(p[1]) + 0.114 * f(p[2])) * scale)
                    .collect()
            } else {
                px.chunks_exact(c).take(n).map(|p| f(p[0]) * scale).collect()
            }
        }
        match &self.data {
            PixelData::U8(v) => grey(v, n, c, scale, |x| x as f32),
            PixelData::U16(v) => grey(v, n, c, scale, |x| x as f32),
            PixelData::F32(v) => grey(v, n, c, scale, |x| x),
        }
    }

    /// Photometric description used in probes and captions: "grey" or "rgb".
    pub fn is_colour(&self) -> bool {
        self.channels >= 3
    }
}

fn decode_error(path: &Path, e: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Decodes an in-memory PNG/JPEG/TIFF; `path` is used only to name the file in errors.
pub fn decode_raster(bytes: &[u8], path: &Path) -> Result<Raster> {
    if bytes.is_empty() {
        return Err(decode_error(path, "file is empty"));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_error(path, e))?;
    let format = match reader.format() {
        Some(image::ImageFormat::Png) => "png",
        Some(image::ImageFormat::Jpeg) => "jpeg",
        Some(image::ImageFormat::Tiff) => "tiff",
        Some(other) => {
            return Err(ImagingError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("image format {other:?} is not one of PNG, JPEG, TIFF"),
            })
        }
        None => return Err(decode_error(path, "not a PNG, JPEG or TIFF file")),
    };
    let img = reader.decode().map_err(|e| decode_error(path, e))?;
    let (width, height) = (img.width(), img.height());
    let (channels, data) = match img {
        DynamicImage::ImageLuma8(b) => (1, PixelData::U8(b.into_raw())),
        DynamicImage::ImageLumaA8(b) => (2, PixelData::U8(b.into_raw())),
        DynamicImage::ImageRgb8(b) => (3, PixelData::U8(b.into_raw())),
        DynamicImage::ImageRgba8(b) => (4, PixelData::U8(b.into_raw())),
        DynamicImage::ImageLuma16(b) => (1, PixelData::U16(b.into_raw())),
        DynamicImage::ImageLumaA16(b) => (2, PixelData::U16(b.into_raw())),
        DynamicImage::ImageRgb16(b) => (3, PixelData::U16(b.into_raw())),
        DynamicImage::ImageRgba16(b) => (4, PixelData::U16(b.into_raw())),
        DynamicImage::ImageRgb32F(b) => (3, PixelData::F32(b.into_raw())),
        DynamicImage::ImageRgba32F(b) => (4, PixelData::F32(b.into_raw())),
        other => {
            return Err(ImagingError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("pixel type {:?}", other.color()),
            })
        }
    };
    Ok(Raster {
        width,
        height,
        channels,
        data,
        format,
    })
}

/// A 2D label map (0 = background), `[row, col]` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub width: u32,
    pub height: u32,
    pub labels: Vec<u32>,
}

/// Reads a single-channel 8- or 16-bit image as a label map. Colour masks are refused: a colour mask has no
/// unambiguous label value per pixel.
pub fn read_label_map(bytes: &[u8], path: &Path) -> Result<LabelMap> {
    let r = decode_raster(bytes, path)?;
    if r.channels != 1 {
        return Err(ImagingError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("a label map must have one channel, this image has {}", r.channels),
        });
    }
    let labels = match r.data {
        PixelData::U8(v) => v.into_iter().map(u32::from).collect(),
        PixelData::U16(v) => v.into_iter().map(u32::from).collect(),
        PixelData::F32(_) => {
            return Err(ImagingError::Unsupported {
                path: path.to_path_buf(),
                reason: "floating-point label maps are not supported".into(),
            })
        }
    };
    Ok(LabelMap {
        width: r.width,
        height: r.height,
        labels,
    })
}

/// Encodes 8-bit grey (channels = 1) or RGB (channels = 3) pixels as PNG. Output is deterministic for given
/// pixels.
pub fn encode_png(width: u32, height: u32, channels: u8, pixels: &[u8]) -> Result<Vec<u8>> {
    let colour = match channels {
        1 => image::ExtendedColorType::L8,
        2 => image::ExtendedColorType::La8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        n => {
            return Err(ImagingError::Encode {
                path: "<memory>".into(),
                reason: format!("{n} channels"),
            })
        }
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, width, height, colour)
        .map_err(|e| ImagingError::Encode {
            path: "<memory>".into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_keeps_pixels() {
        let px: Vec<u8> = (0..12u8).collect();
        let bytes = encode_png(4, 3, 1, &px).unwrap();
        let r = decode_raster(&bytes, Path::new("x.png")).unwrap();
        assert_eq!((r.width, r.height, r.channels), (4, 3, 1));
        assert_eq!(r.data, PixelData::U8(px));
    }

    #[test]
    fn luminance_uses_bt601_weights() {
        let bytes = encode_png(1, 1, 3, &[255, 0, 0]).unwrap();
        let r = decode_raster(&bytes, Path::new("x.png")).unwrap();
        assert!((r.luminance()[0] - 0.299).abs() < 1e-6);
    }

    #[test]
    fn garbage_and_empty_are_errors() {
        assert!(decode_raster(b"", Path::new("e.png")).is_err());
        assert!(decode_raster(b"\x89PNG\r\n\x1a\nbroken", Path::new("t.png")).is_err());
        assert!(decode_raster(b"hello world", Path::new("t.txt")).is_err());
    }

    #[test]
    fn colour_label_map_is_refused() {
        let bytes = encode_png(1, 1, 3, &[1, 2, 3]).unwrap();
        let e = read_label_map(&bytes, Path::new("m.png")).unwrap_err();
        assert!(e.to_string().contains("one channel"), "{e}");
    }
}
