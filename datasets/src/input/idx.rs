//! The IDX format of MNIST and Fashion-MNIST (gzip-compressed): a magic number giving the
//! element type and the number of dimensions, the dimensions as big-endian u32, then the data.
//! Only unsigned bytes (type 0x08) occur in these datasets, so only they are read.

use crate::error::{DataError, Result};
use crate::input::file::open_regular;
use crate::input::limits::MAX_IDX_DATA_BYTES;
use flate2::read::GzDecoder;
use std::io::{BufRead, BufReader, Read};
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
///
/// The data is decompressed as it is read, and never more of it than the header's dimensions
/// call for (at most [`MAX_IDX_DATA_BYTES`]): a small file that inflates to gigabytes is
/// refused after one byte more than its header declares.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let (file, file_len) = open_regular(path, MAX_IDX_DATA_BYTES + 1024, "an IDX file")?;
    let mut file = BufReader::new(file);
    let gzip = file
        .fill_buf()
        .map_err(|e| DataError::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        // Deflate expands at most 1032-fold: more data than that cannot be there.
        let most = file_len.saturating_mul(1032);
        read_idx_from(GzDecoder::new(file), most, path, |e| {
            DataError::invalid(path, format!("corrupt gzip data ({e})"))
        })
    } else {
        read_idx_from(file, file_len, path, |e| DataError::io(path, e))
    }
}

/// Reads an IDX array from `source`, which holds at most `most_bytes` bytes. `read_error`
/// turns a failed read into the error to report (gzip: corrupt data; plain: I/O).
fn read_idx_from(
    mut source: impl Read,
    most_bytes: u64,
    path: &Path,
    read_error: impl Fn(std::io::Error) -> DataError,
) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    let magic_len = read_full(&mut source, &mut magic, &read_error)?;
    let rank = check_magic(&magic[..magic_len], path)?;
    let mut dims_bytes = vec![0u8; 4 * rank];
    if read_full(&mut source, &mut dims_bytes, &read_error)? < dims_bytes.len() {
        return Err(DataError::invalid(path, "truncated IDX header"));
    }
    let (dims, expected) = dims_and_size(&dims_bytes, path)?;
    let mut data = Vec::with_capacity(expected.min(most_bytes as usize));
    // One byte more than needed tells a too-long file from a right one.
    source
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(read_error)?;
    check_data_length(data.len(), expected, &dims, path)?;
    Ok(IdxArray { dims, data })
}

/// Fills as much of `buf` as the source has; returns how much that was.
fn read_full(
    source: &mut impl Read,
    buf: &mut [u8],
    read_error: impl Fn(std::io::Error) -> DataError,
) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    Ok(filled)
}

/// The rank, from the four magic bytes: two zeros, the element type, the number of dimensions.
fn check_magic(magic: &[u8], path: &Path) -> Result<usize> {
    if magic.len() < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::invalid(
            path,
            "not an IDX file (bad magic number)",
        ));
    }
    if magic[2] != 0x08 {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                magic[2]
            ),
        ));
    }
    match magic[3] as usize {
        0 => Err(DataError::invalid(path, "truncated IDX header")),
        rank => Ok(rank),
    }
}

/// The dimensions (big-endian u32 each) and the data bytes they call for, which may not
/// exceed [`MAX_IDX_DATA_BYTES`].
fn dims_and_size(dims_bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize)> {
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX_DATA_BYTES)
        .ok_or_else(|| {
            DataError::invalid(
                path,
                format!(
                    "the IDX header's dimensions {dims:?} call for more than {MAX_IDX_DATA_BYTES} bytes of data"
                ),
            )
        })?;
    Ok((dims, expected as usize))
}

fn check_data_length(found: usize, expected: usize, dims: &[usize], path: &Path) -> Result<()> {
    if found > expected {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX data is longer than the {expected} bytes the header's dimensions {dims:?} need"
            ),
        ));
    }
    if found < expected {
        return Err(DataError::invalid(
            path,
            format!("IDX data has {found} bytes, the header's dimensions {dims:?} need {expected}"),
        ));
    }
    Ok(())
}

/// Parses uncompressed IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let most = bytes.len() as u64;
    read_idx_from(bytes, most, path, |e| DataError::io(path, e))
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
