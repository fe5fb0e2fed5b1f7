//! What a JPEG or PNG file declares before any pixel is decoded: its format and size, and
//! whether its data reaches the format's end marker.
//!
//! The size is read here, not by a decoder, so that an image declaring billions of pixels is
//! refused before anything is allocated for it. Completeness is checked here because the JPEG
//! decoder pads missing data with grey instead of failing: a JPEG must reach its end-of-image
//! marker (EOI) after its last scan, a PNG its IEND chunk. Both walks read segment and chunk
//! headers only (and, in a JPEG, look for the 0xFF bytes that start markers), so they cost
//! little next to decoding. Anything after the end marker is ignored, as decoders do.

/// The formats the readers accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    /// From the first bytes (the extension is not trusted).
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(PNG_SIGNATURE) {
            Some(ImageKind::Png)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "JPEG",
            ImageKind::Png => "PNG",
        }
    }

    pub fn image_format(self) -> image::ImageFormat {
        match self {
            ImageKind::Jpeg => image::ImageFormat::Jpeg,
            ImageKind::Png => image::ImageFormat::Png,
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

/// What walking a file's structure found. The size can be known even when the file turns out
/// to be cut short, so that a huge truncated image is reported as too large first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// (width, height) as the header declares them, or why they could not be read.
    pub size: Result<(u32, u32), String>,
    /// `Ok` when the data reaches its end marker; otherwise why not (starting "truncated:"
    /// when the file ends early).
    pub complete: Result<(), String>,
}

/// Walks `bytes`, which must start like `kind` (see [`ImageKind::sniff`]).
pub fn inspect(bytes: &[u8], kind: ImageKind) -> Inspection {
    let mut size = None;
    let complete = match kind {
        ImageKind::Jpeg => walk_jpeg(bytes, &mut size),
        ImageKind::Png => walk_png(bytes, &mut size),
    };
    let size = match (size, &complete) {
        (Some(Ok(size)), _) => Ok(size),
        (Some(Err(why)), _) => Err(why),
        (None, Err(why)) => Err(why.clone()),
        (None, Ok(())) => Err("no frame header".to_string()),
    };
    Inspection { size, complete }
}

fn truncated(where_: &str) -> String {
    format!("truncated: the data ends {where_}")
}

fn declared_size(width: u32, height: u32) -> Result<(u32, u32), String> {
    if width == 0 || height == 0 {
        Err(format!(
            "its header declares an empty size, {width}x{height}"
        ))
    } else {
        Ok((width, height))
    }
}

/// Start-of-frame markers (SOF0..SOF15 without DHT, JPG and DAC, which share the range).
fn is_start_of_frame(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

fn walk_jpeg(bytes: &[u8], size: &mut Option<Result<(u32, u32), String>>) -> Result<(), String> {
    let len = bytes.len();
    let mut pos = 2; // after SOI
    loop {
        if pos >= len {
            return Err(truncated("before its end-of-image marker"));
        }
        if bytes[pos] != 0xFF {
            return Err(format!(
                "a marker should start at byte {pos}, found 0x{:02x}",
                bytes[pos]
            ));
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while pos < len && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&code) = bytes.get(pos) else {
            return Err(truncated("before its end-of-image marker"));
        };
        pos += 1;
        match code {
            0xD9 => {
                return match size {
                    Some(_) => Ok(()),
                    None => Err("it ends before any frame header".to_string()),
                };
            }
            // Restart markers and TEM stand alone (no length).
            0xD0..=0xD7 | 0x01 => continue,
            0x00 | 0xD8 => {
                return Err(format!(
                    "unexpected marker 0xff{code:02x} at byte {}",
                    pos - 2
                ));
            }
            _ => {}
        }
        let Some(length) = bytes.get(pos..pos + 2) else {
            return Err(truncated("inside a segment header"));
        };
        let length = u16::from_be_bytes([length[0], length[1]]) as usize;
        if length < 2 {
            return Err(format!(
                "segment 0xff{code:02x} at byte {} has an impossible length {length}",
                pos - 2
            ));
        }
        let end = pos + length;
        if end > len {
            return Err(truncated(&format!(
                "inside segment 0xff{code:02x} ({} of its {length} bytes present)",
                len - pos
            )));
        }
        let body = &bytes[pos + 2..end];
        if is_start_of_frame(code) && size.is_none() {
            // precision, height, width, components...
            *size = Some(match body {
                [_, h0, h1, w0, w1, ..] => declared_size(
                    u16::from_be_bytes([*w0, *w1]) as u32,
                    u16::from_be_bytes([*h0, *h1]) as u32,
                ),
                _ => Err(format!(
                    "its frame header is {} bytes, too short to hold a size",
                    body.len()
                )),
            });
        }
        pos = end;
        if code == 0xDA {
            pos = end_of_entropy_coded_data(bytes, pos)?;
        }
    }
}

/// After a scan header: the position of the 0xFF that starts the next marker. In
/// entropy-coded data 0xFF is followed by 0x00 (a stuffed data byte) or a restart marker.
fn end_of_entropy_coded_data(bytes: &[u8], mut pos: usize) -> Result<usize, String> {
    loop {
        let Some(offset) = bytes[pos..].iter().position(|&b| b == 0xFF) else {
            return Err(truncated(
                "inside its compressed data, before the end-of-image marker",
            ));
        };
        let at = pos + offset;
        match bytes.get(at + 1) {
            None => {
                return Err(truncated(
                    "inside its compressed data, before the end-of-image marker",
                ))
            }
            Some(0x00 | 0xD0..=0xD7) => pos = at + 2,
            Some(_) => return Ok(at),
        }
    }
}

fn walk_png(bytes: &[u8], size: &mut Option<Result<(u32, u32), String>>) -> Result<(), String> {
    let len = bytes.len();
    let mut pos = PNG_SIGNATURE.len();
    let mut first = true;
    loop {
        if pos == len {
            return Err(truncated("before its IEND chunk"));
        }
        let Some(header) = bytes.get(pos..pos + 8) else {
            return Err(truncated("inside a chunk header, before its IEND chunk"));
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = &header[4..8];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(format!("the chunk at byte {pos} has no valid type"));
        }
        let name = String::from_utf8_lossy(kind);
        // The format caps chunk lengths at 2^31 - 1.
        if length > i32::MAX as u32 {
            return Err(format!(
                "chunk {name} declares an impossible length {length}"
            ));
        }
        let data = pos + 8;
        let end = data + length as usize + 4; // + CRC
        if first {
            if kind != b"IHDR" || length != 13 {
                return Err("it does not start with an IHDR chunk".to_string());
            }
            if end <= len {
                let w = &bytes[data..data + 4];
                let h = &bytes[data + 4..data + 8];
                *size = Some(declared_size(
                    u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                    u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
                ));
            }
            first = false;
        }
        if end > len {
            return Err(truncated(&format!(
                "inside its {name} chunk ({} of its {length} data bytes present)",
                len.saturating_sub(data).min(length as usize)
            )));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 7]));
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    #[test]
    fn whole_files_are_complete_with_their_size() {
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let bytes = encoded(format);
            let kind = ImageKind::sniff(&bytes).unwrap();
            assert_eq!(kind.image_format(), format);
            let found = inspect(&bytes, kind);
            assert_eq!(found.size, Ok((40, 30)));
            assert_eq!(found.complete, Ok(()));
            // Bytes after the end marker are ignored.
            let mut padded = bytes.clone();
            padded.extend_from_slice(b"trailing");
            assert_eq!(inspect(&padded, kind).complete, Ok(()));
        }
    }

    #[test]
    fn every_cut_is_truncated_and_keeps_the_size_once_read() {
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let bytes = encoded(format);
            let kind = ImageKind::sniff(&bytes).unwrap();
            for cut in 3..bytes.len() {
                let found = inspect(&bytes[..cut], kind);
                let why = found.complete.unwrap_err();
                assert!(
                    why.starts_with("truncated: "),
                    "{format:?} cut at {cut}: {why}"
                );
                if cut > bytes.len() / 2 {
                    assert_eq!(found.size, Ok((40, 30)), "{format:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn the_size_is_read_from_the_header_alone() {
        // A JPEG frame header declaring 65000x65000, and nothing after it.
        let mut jpeg = vec![
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8, 0xFD, 0xE8, 0xFD, 0xE8, 3,
        ];
        jpeg.extend_from_slice(&[1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
        let found = inspect(&jpeg, ImageKind::Jpeg);
        assert_eq!(found.size, Ok((65000, 65000)));
        assert!(found.complete.is_err());
    }
}
