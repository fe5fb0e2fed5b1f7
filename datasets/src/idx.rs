//! The IDX format of MNIST and Fashion-MNIST (gzip-compressed): a magic number giving the
//! element type and the number of dimensions, the dimensions as big-endian u32, then the data.
//! Only unsigned bytes (type 0x08) occur in these datasets, so only they are read.

use crate::error::{DataError, Result};
use std::io::Read;
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl IdxArray {
    /// The number of items (the first dimension).
    pub fn len(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of item `i` (an image, or one label).
    pub fn item(&self, i: usize) -> &[u8] {
        let size: usize = self.dims[1..].iter().product();
        &self.data[i * size..(i + 1) * size]
    }
}

/// Reads a `.gz` IDX file (or a plain one, recognised by its missing gzip header).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let compressed = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if compressed.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(compressed.len() * 4);
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::invalid(path, format!("corrupt gzip data ({e})")))?;
        out
    } else {
        compressed
    };
    parse_idx(&bytes, path)
}

/// Parses uncompressed IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::invalid(
            path,
            "not an IDX file (bad magic number)",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(DataError::invalid(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::invalid(path, "IDX dimensions overflow"))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX data has {} bytes, the header's dimensions {:?} need {expected}",
                data.len(),
                dims
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dims_and_items() {
        let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
        let a = parse_idx(&bytes, Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.item(1), &[4, 5, 6]);
    }

    #[test]
    fn short_data_is_named() {
        let bytes = [0, 0, 8, 1, 0, 0, 0, 5, 1, 2];
        let err = parse_idx(&bytes, Path::new("labels.gz")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels.gz: IDX data has 2 bytes, the header's dimensions [5] need 5"
        );
    }
}
