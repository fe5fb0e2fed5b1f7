//! The argmax over classes of low-resolution class maps brought to an image's size, in row
//! bands: a photo of H x W pixels never holds a K x H x W float tensor (150 classes over a
//! 4000 x 4000 photo would be 9.6 GB), only a band of at most [`BAND_BYTES`].
//!
//! A band is interpolated as libtorch's bilinear upsampling does it (source coordinate
//! `(dst + 0.5) in / out - 0.5` clamped at 0, or `dst (in - 1) / (out - 1)` with corners
//! aligned; ATen's `area_pixel_compute_source_index`), rows then columns. When the whole
//! image fits one band, it is libtorch's own `upsample_bilinear2d`, bit for bit what it was.

use crate::budget::BAND_BYTES;
use crate::fcn::upsample;
use tch::{Kind, Tensor};

/// For each of `out` positions, the two source indices and the second one's weight.
fn source_positions(out: i64, input: i64, align_corners: bool) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let scale = if align_corners {
        if out > 1 {
            (input - 1) as f32 / (out - 1) as f32
        } else {
            0.0
        }
    } else {
        input as f32 / out as f32
    };
    let mut lo = Vec::with_capacity(out as usize);
    let mut hi = Vec::with_capacity(out as usize);
    let mut weight = Vec::with_capacity(out as usize);
    for dst in 0..out {
        let src = if align_corners {
            scale * dst as f32
        } else {
            (scale * (dst as f32 + 0.5) - 0.5).max(0.0)
        };
        let i0 = (src as i64).min(input - 1);
        lo.push(i0);
        hi.push(if i0 < input - 1 { i0 + 1 } else { i0 });
        weight.push((src - i0 as f32).clamp(0.0, 1.0));
    }
    (lo, hi, weight)
}

/// `x` (N x K x h x w) interpolated along `dim` (2 rows, 3 columns) at the output positions
/// `from..from + len` of `positions` ([`source_positions`]).
fn interpolate(
    x: &Tensor,
    dim: i64,
    positions: &(Vec<i64>, Vec<i64>, Vec<f32>),
    from: usize,
    len: usize,
) -> Tensor {
    let (lo, hi, weight) = positions;
    let device = x.device();
    let take = |v: &[i64]| Tensor::from_slice(&v[from..from + len]).to_device(device);
    let mut shape = [1i64, 1, 1, 1];
    shape[dim as usize] = len as i64;
    let w = Tensor::from_slice(&weight[from..from + len])
        .to_device(device)
        .view(shape);
    let a = x.index_select(dim, &take(lo));
    let b = x.index_select(dim, &take(hi));
    &a + (b - &a) * w
}

/// Calls `visit(y0, classes)` for consecutive row bands of the `size` (height, width) image:
/// `classes` (1 x rows x width, int64) is the argmax over classes of the sum of `maps` (each
/// 1 x K x h x w, any h and w) each upsampled bilinearly to `size`.
pub fn argmax_upsampled(
    maps: &[Tensor],
    (height, width): (i64, i64),
    align_corners: bool,
    mut visit: impl FnMut(i64, Tensor),
) {
    let k = maps[0].size()[1];
    let row_bytes = (k * width * 4) as u64;
    if row_bytes * height as u64 <= BAND_BYTES {
        let sum = maps
            .iter()
            .map(|m| upsample(m, (height, width), align_corners))
            .reduce(|a, b| a + b)
            .expect("at least one map");
        visit(0, sum.argmax(1, false));
        return;
    }
    // Each band holds a few K x rows x width float tensors at once.
    let band = ((BAND_BYTES / 4 / row_bytes) as i64).max(1);
    let positions: Vec<_> = maps
        .iter()
        .map(|m| {
            let s = m.size();
            (
                source_positions(height, s[2], align_corners),
                source_positions(width, s[3], align_corners),
            )
        })
        .collect();
    let mut y0 = 0;
    while y0 < height {
        let rows = band.min(height - y0);
        let sum = maps
            .iter()
            .zip(&positions)
            .map(|(m, (ys, xs))| {
                let m = m.to_kind(Kind::Float);
                let banded = interpolate(&m, 2, ys, y0 as usize, rows as usize);
                interpolate(&banded, 3, xs, 0, width as usize)
            })
            .reduce(|a, b| a + b)
            .expect("at least one map");
        visit(y0, sum.argmax(1, false));
        y0 += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Bands and libtorch's whole-image upsampling agree on the interpolated values (so on
    /// the argmax away from exact ties), for both corner conventions.
    #[test]
    fn bands_interpolate_as_libtorch_upsamples() {
        tch::manual_seed(1);
        let a = Tensor::randn([1, 5, 7, 9], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([1, 5, 4, 3], (Kind::Float, Device::Cpu));
        for align in [false, true] {
            for (m, (h, w)) in [(&a, (7, 9)), (&b, (4, 3))] {
                let whole = upsample(m, (61, 43), align).narrow(2, 10, 20);
                let (ys, xs) = (
                    source_positions(61, h, align),
                    source_positions(43, w, align),
                );
                let band = interpolate(&interpolate(m, 2, &ys, 10, 20), 3, &xs, 0, 43);
                let error = (band - whole).abs().max().double_value(&[]);
                assert!(error < 1e-5, "align_corners {align}: off by {error}");
            }
        }
    }

    /// A 3000 x 2000 image of 150 classes (3.6 GB of floats at once) comes back band by band,
    /// every row once, in order.
    #[test]
    fn a_large_image_is_visited_in_bands() {
        let map = Tensor::zeros([1, 150, 4, 4], (Kind::Float, Device::Cpu));
        let _ = map.narrow(1, 7, 1).fill_(1.0);
        let mut next = 0;
        let mut bands = 0;
        argmax_upsampled(&[map], (3000, 2000), false, |y0, classes| {
            assert_eq!(y0, next);
            let rows = classes.size()[1];
            assert!(rows as u64 * 150 * 2000 * 4 <= BAND_BYTES);
            assert_eq!(classes.size()[2], 2000);
            assert_eq!(classes.ne(7).sum(Kind::Int64).int64_value(&[]), 0);
            next += rows;
            bands += 1;
        });
        assert_eq!(next, 3000);
        assert!(bands > 1);
    }
}
