//! Label masks stored as 8-bit PNGs: VOC's palette PNGs (`SegmentationClass`) and ADE20K's
//! grayscale PNGs. Both are read as raw 8-bit values (palette indices, not the colours they
//! stand for), as PIL's `Image.open(...)` followed by `np.array` gives them.

use crate::error::{DataError, Result};
use crate::input::file::read_bounded;
use crate::input::image_header::{inspect, ImageKind};
use crate::input::limits::{check_pixel_count, max_image_file_bytes, max_image_pixels};
use std::path::Path;

/// A mask exactly as stored: one raw value per pixel, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct RawMask {
    pub width: usize,
    pub height: usize,
    pub values: Vec<u8>,
}

/// Reads an 8-bit palette or grayscale PNG without expanding the palette.
pub fn read_mask(path: &Path) -> Result<RawMask> {
    let limit = max_image_file_bytes(max_image_pixels()?);
    let bytes = read_bounded(path, limit, "a PNG label mask")?;
    decode_mask(&bytes, path)
}

/// Decodes PNG bytes; `path` only names the source in errors. The declared size is checked
/// against the pixel limit, and the file for completeness, before anything is decoded.
pub fn decode_mask(bytes: &[u8], path: &Path) -> Result<RawMask> {
    let corrupt =
        |why: String| DataError::invalid(path, format!("corrupt or truncated PNG mask ({why})"));
    if ImageKind::sniff(bytes) != Some(ImageKind::Png) {
        return Err(DataError::invalid(
            path,
            "not a PNG (a label mask must be a PNG)",
        ));
    }
    let found = inspect(bytes, ImageKind::Png);
    let (width, height) = found.size.map_err(corrupt)?;
    check_pixel_count(path, "mask", width as u64, height as u64)?;
    found.complete.map_err(corrupt)?;
    // Only 8-bit masks are accepted, so the frame needs one byte per pixel; the decoder's
    // own buffers come on top.
    let limits = png::Limits {
        bytes: (width as usize * height as usize).saturating_add(16 << 20),
    };
    let decoding = |e: png::DecodingError| corrupt(e.to_string());
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(decoding)?;
    let (color, depth) = {
        let info = reader.info();
        (info.color_type, info.bit_depth)
    };
    let supported = matches!(color, png::ColorType::Indexed | png::ColorType::Grayscale)
        && depth == png::BitDepth::Eight;
    if !supported {
        return Err(DataError::invalid(
            path,
            format!(
                "a label mask must be an 8-bit palette or grayscale PNG, this one is {color:?} with {} bits per sample",
                depth as u8
            ),
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DataError::invalid(path, "PNG mask too large"))?;
    let mut values = vec![0u8; size];
    let frame = reader.next_frame(&mut values).map_err(decoding)?;
    values.truncate(frame.buffer_size());
    Ok(RawMask {
        width: frame.width as usize,
        height: frame.height as usize,
        values,
    })
}

/// The standard VOC colour map: index `i`'s bits, three at a time, fill the colour channels
/// from the most significant bit down (index 255, the boundary, is (224, 224, 192)).
pub fn voc_palette() -> [u8; 768] {
    let mut palette = [0u8; 768];
    for index in 0..256usize {
        let mut bits = index;
        let mut rgb = [0u8; 3];
        for shift in (0..8).rev() {
            for (channel, value) in rgb.iter_mut().enumerate() {
                *value |= (((bits >> channel) & 1) as u8) << shift;
            }
            bits >>= 3;
        }
        palette[index * 3..index * 3 + 3].copy_from_slice(&rgb);
    }
    palette
}

/// How a mask is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskEncoding {
    /// VOC: palette PNG with [`voc_palette`].
    VocPalette,
    /// ADE20K: 8-bit grayscale PNG.
    Grayscale,
}

/// Encodes a mask to PNG bytes (fast compression: masks compress well anyway).
pub fn encode_mask(
    values: &[u8],
    width: usize,
    height: usize,
    encoding: MaskEncoding,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(values.len() / 4);
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    match encoding {
        MaskEncoding::VocPalette => {
            encoder.set_color(png::ColorType::Indexed);
            encoder.set_palette(voc_palette().to_vec());
        }
        MaskEncoding::Grayscale => encoder.set_color(png::ColorType::Grayscale),
    }
    let mut writer = encoder.write_header()?;
    writer.write_image_data(values)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_palette_known_entries() {
        let p = voc_palette();
        assert_eq!(&p[0..3], &[0, 0, 0]);
        assert_eq!(&p[3..6], &[128, 0, 0]); // aeroplane
        assert_eq!(&p[15 * 3..15 * 3 + 3], &[192, 128, 128]); // person
        assert_eq!(&p[255 * 3..], &[224, 224, 192]); // boundary
    }

    #[test]
    fn masks_round_trip_as_raw_values() {
        let values: Vec<u8> = (0..12).map(|v| if v == 5 { 255 } else { v }).collect();
        for encoding in [MaskEncoding::VocPalette, MaskEncoding::Grayscale] {
            let bytes = encode_mask(&values, 4, 3, encoding).unwrap();
            let mask = decode_mask(&bytes, Path::new("m.png")).unwrap();
            assert_eq!((mask.width, mask.height), (4, 3));
            assert_eq!(mask.values, values);
        }
    }

    #[test]
    fn rgb_png_is_refused_with_a_reason() {
        let img = image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        let err = decode_mask(&bytes, Path::new("m.png")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.png: a label mask must be an 8-bit palette or grayscale PNG, this one is Rgb with 8 bits per sample"
        );
    }
}
