//! Reading images from disk into 8-bit RGB, with errors that name the file.

use crate::error::{DataError, Result};
use image::RgbImage;
use std::path::Path;

/// Decodes a JPEG or PNG (format from the contents, not the extension) into RGB.
/// Grey, palette and alpha images are converted as PIL's `convert("RGB")` does.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decodes image bytes; `path` is only used to name the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let format = image::guess_format(bytes)
        .map_err(|_| DataError::invalid(path, "not an image (neither JPEG nor PNG)"))?;
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| {
        DataError::invalid(
            path,
            // The decoders' messages sometimes end in a newline: keep the sentence on one line.
            format!(
                "corrupt or truncated {} image ({})",
                format_name(format),
                e.to_string().trim()
            ),
        )
    })?;
    Ok(img.into_rgb8())
}

fn format_name(format: image::ImageFormat) -> &'static str {
    match format {
        image::ImageFormat::Jpeg => "JPEG",
        image::ImageFormat::Png => "PNG",
        _ => "unsupported",
    }
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

    #[test]
    fn missing_file_names_it() {
        let err = load_rgb(Path::new("/nonexistent/a.png")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/a.png: "), "{err}");
    }
}
