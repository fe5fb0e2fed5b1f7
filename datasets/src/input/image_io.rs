//! Reading images from disk into 8-bit RGB, with errors that name the file.
//!
//! Every image is untrusted: the file type and length are checked before it is read, the
//! size its header declares is checked against the pixel limit before it is decoded, and a
//! file cut short is an error (see [`crate::input::image_header`]).

use crate::error::{DataError, Result};
use crate::input::file::read_bounded;
use crate::input::image_header::{inspect, ImageKind};
use crate::input::limits::{check_pixel_count, max_image_file_bytes, max_image_pixels};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// An image file read and checked, not yet decoded: its declared size is within the pixel
/// limit and its data reaches its end marker.
pub struct EncodedImage {
    path: PathBuf,
    bytes: Vec<u8>,
    kind: ImageKind,
    width: u32,
    height: u32,
}

impl EncodedImage {
    /// Reads and checks `path` (JPEG or PNG, recognised from the contents).
    pub fn read(path: &Path) -> Result<Self> {
        let limit = max_image_file_bytes(max_image_pixels()?);
        let bytes = read_bounded(path, limit, "a JPEG or PNG image")?;
        Self::from_bytes(bytes, path)
    }

    /// Checks image bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let kind = ImageKind::sniff(&bytes)
            .ok_or_else(|| DataError::invalid(path, "not an image (neither JPEG nor PNG)"))?;
        let broken = |why: String| {
            DataError::invalid(
                path,
                format!("corrupt or truncated {} image ({why})", kind.name()),
            )
        };
        let found = inspect(&bytes, kind);
        let (width, height) = found.size.map_err(broken)?;
        check_pixel_count(path, "image", width as u64, height as u64)?;
        found.complete.map_err(broken)?;
        Ok(EncodedImage {
            path: path.to_path_buf(),
            bytes,
            kind,
            width,
            height,
        })
    }

    /// (width, height) as the header declares them.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Refuses the image unless its declared size is `(width, height)` (from an annotation),
    /// before it is decoded.
    pub fn expect_size(&self, expected: (u32, u32)) -> Result<()> {
        if self.dimensions() == expected {
            return Ok(());
        }
        Err(DataError::invalid(
            &self.path,
            format!(
                "the image is {}x{} but its annotation says {}x{}",
                self.width, self.height, expected.0, expected.1
            ),
        ))
    }

    /// Decodes to RGB. Grey, palette and alpha images are converted as PIL's
    /// `convert("RGB")` does.
    pub fn decode_rgb(self) -> Result<RgbImage> {
        let pixels = self.width as u64 * self.height as u64;
        let mut limits = image::Limits::default();
        // The decoder may not disagree with the header it was checked by, and may allocate
        // at most what the widest pixel format (16-bit RGBA) needs, plus its own tables.
        limits.max_image_width = Some(self.width);
        limits.max_image_height = Some(self.height);
        limits.max_alloc = Some(pixels * 8 + (16 << 20));
        let mut reader = image::ImageReader::with_format(
            std::io::Cursor::new(&self.bytes),
            self.kind.image_format(),
        );
        reader.limits(limits);
        let img = reader.decode().map_err(|e| {
            DataError::invalid(
                &self.path,
                // The decoders' messages sometimes end in a newline: keep the sentence on
                // one line.
                format!(
                    "corrupt or truncated {} image ({})",
                    self.kind.name(),
                    e.to_string().trim()
                ),
            )
        })?;
        if (img.width(), img.height()) != self.dimensions() {
            return Err(DataError::invalid(
                &self.path,
                format!(
                    "corrupt {} image (it decodes to {}x{}, its header declares {}x{})",
                    self.kind.name(),
                    img.width(),
                    img.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        Ok(img.into_rgb8())
    }
}

/// Reads, checks and decodes a JPEG or PNG (format from the contents, not the extension)
/// into RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    EncodedImage::read(path)?.decode_rgb()
}

/// Checks and decodes image bytes; `path` is only used to name the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    EncodedImage::from_bytes(bytes.to_vec(), path)?.decode_rgb()
}

/// Decodes `paths` in batches of `batch_size` (each batch's images in parallel) on a thread
/// that keeps one batch ready ahead of the consumer, so a model never waits on decoding for
/// long. A file that cannot be read ends the sequence with its error.
pub fn decode_batches(
    paths: Vec<PathBuf>,
    batch_size: usize,
) -> impl Iterator<Item = Result<Vec<(PathBuf, RgbImage)>>> {
    use rayon::prelude::*;
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for chunk in paths.chunks(batch_size.max(1)) {
            let batch: Result<Vec<(PathBuf, RgbImage)>> = chunk
                .par_iter()
                .map(|path| Ok((path.clone(), load_rgb(path)?)))
                .collect();
            let failed = batch.is_err();
            // The consumer gone (it stopped early) ends the decoding too.
            if sender.send(batch).is_err() || failed {
                return;
            }
        }
    });
    receiver.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_file_is_not_an_image() {
        let err = decode_rgb(b"hello, world", Path::new("x/notes.jpg")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x/notes.jpg: not an image (neither JPEG nor PNG)"
        );
    }

    #[test]
    fn truncated_png_names_the_format() {
        let img = RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        let err = decode_rgb(&bytes[..bytes.len() / 2], Path::new("cut.png")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cut.png: corrupt or truncated PNG image"),
            "{err}"
        );
    }

    /// A PNG whose chunks are whole but whose compressed data stops half way.
    fn png_with_short_image_data() -> Vec<u8> {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let mut full = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut full),
            image::ImageFormat::Png,
        )
        .unwrap();
        // Signature and IHDR (8 + 25 bytes), then the first IDAT, re-framed with half its data.
        let idat = full.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
        let len = u32::from_be_bytes(full[idat..idat + 4].try_into().unwrap()) as usize;
        let half = &full[idat + 8..idat + 8 + len / 2];
        let mut out = full[..idat].to_vec();
        let mut crc = flate2::Crc::new();
        crc.update(b"IDAT");
        crc.update(half);
        out.extend_from_slice(&(half.len() as u32).to_be_bytes());
        out.extend_from_slice(b"IDAT");
        out.extend_from_slice(half);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
        out
    }

    #[test]
    fn png_with_short_image_data_is_refused() {
        let err = decode_rgb(&png_with_short_image_data(), Path::new("short.png")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("short.png: corrupt or truncated PNG image ("),
            "{err}"
        );
    }

    #[test]
    fn jpeg_without_its_end_is_truncated() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 9]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        // The decoder alone would pad the missing two bytes: the end marker is required.
        let err = decode_rgb(&bytes[..bytes.len() - 2], Path::new("cut.jpg")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cut.jpg: corrupt or truncated JPEG image (truncated: the data ends inside its compressed data, before the end-of-image marker)"
        );
        assert!(decode_rgb(&bytes, Path::new("whole.jpg")).is_ok());
    }

    #[test]
    fn missing_file_names_it() {
        let err = load_rgb(Path::new("/nonexistent/a.png")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/a.png: "), "{err}");
    }
}
