//! RoIAlign equal to `torchvision.ops.roi_align`, computed as one `embedding_bag` over the
//! feature map's pixels.
//!
//! torchvision averages, over a `gy x gx` grid of points per output bin, the bilinear value at
//! each point (a point more than one pixel outside the map counts 0; coordinates are clamped
//! to the map). So every output value is a weighted sum of at most `4·gy·gx` pixels of one
//! image, with the same weights in every channel. Seen as a table `[N·H·W, C]` (channels last),
//! the map is what `embedding_bag` reads: each output bin is a bag of pixel rows ("taps") summed
//! with per-tap weights, in one fused gather-multiply-add, on CPU and CUDA alike; its backward
//! adds each bin's gradient back to the taps' pixels. Nothing larger than the output and the
//! tap list is written: forward and backward together take about half the time of
//! torchvision's own kernel on the CPU (docs/results.md), though C4's forward alone is slower.
//!
//! A tap's weight is a y-factor times an x-factor, so the taps are built per axis (two per
//! sample point, the low and high neighbour) and combined by broadcasting.

use tch::{Device, Kind, Tensor};

/// `embedding_bag`'s mode that sums each bag.
const BAG_SUM: i64 = 0;

/// Pooled features `[R, C, ph, pw]` of `rois` `[R, 5]` (image index, x1, y1, x2, y2 in image
/// coordinates) on `input` `[N, C, H, W]`. `sampling_ratio <= 0` picks
/// `ceil(roi size / output size)` points per bin per axis, as torchvision; `aligned` shifts
/// the RoI by half a pixel and lets it be smaller than one pixel. The boxes get no gradient,
/// as in torchvision.
///
/// Host syncs off the CPU: none with a fixed sampling ratio; with an adaptive one, one read of
/// the largest grid and one of the number of taps that carry weight.
pub fn roi_align(
    input: &Tensor,
    rois: &Tensor,
    (ph, pw): (i64, i64),
    spatial_scale: f64,
    sampling_ratio: i64,
    aligned: bool,
) -> Tensor {
    let size = input.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let r = rois.size()[0];
    let device = input.device();
    if r == 0 {
        return Tensor::zeros([0, c, ph, pw], (input.kind(), device));
    }
    // Positions in single precision whatever the features' type (under autocast torchvision
    // pools in float too); the weights take the features' type at the end.
    let rois = rois.detach().to_kind(Kind::Float);
    let offset = if aligned { 0.5 } else { 0.0 };
    let coord = |i: i64| rois.select(1, i) * spatial_scale - offset;
    let (x1, y1, x2, y2) = (coord(1), coord(2), coord(3), coord(4));
    let (mut roi_w, mut roi_h) = (&x2 - &x1, &y2 - &y1);
    if !aligned {
        roi_w = roi_w.clamp_min(1.0);
        roi_h = roi_h.clamp_min(1.0);
    }
    let (rows, row_weights) = axis_taps(&y1, &roi_h, ph, h, sampling_ratio); // [R, ph, ty]
    let (cols, col_weights) = axis_taps(&x1, &roi_w, pw, w, sampling_ratio); // [R, pw, tx]
    let (ty, tx) = (rows.size()[2], cols.size()[2]);

    // Tap (bin (i, j), row tap a, column tap b) of RoI k: pixel image·H·W + row·W + col.
    let image = rois.select(1, 0).to_kind(Kind::Int64).view([r, 1, 1, 1, 1]);
    let pixel = image * (h * w) + rows.view([r, ph, 1, ty, 1]) * w + cols.view([r, 1, pw, 1, tx]);
    let weight = row_weights.view([r, ph, 1, ty, 1]) * col_weights.view([r, 1, pw, 1, tx]);
    let bins = r * ph * pw;
    let per_bin = ty * tx;
    let (pixel, weight, offsets) = if sampling_ratio > 0 && device != Device::Cpu {
        // Every bin has the same number of taps: no host sync.
        let offsets = Tensor::arange(bins, (Kind::Int64, device)) * per_bin;
        (pixel.view([-1]), weight.view([-1]), offsets)
    } else {
        // Only the taps that carry weight: on the CPU dropping the rest costs no sync and
        // saves their multiply-adds (a merged duplicate, a point outside the map); with an
        // adaptive grid it also keeps a large RoI from costing every other RoI its grid.
        let weight = weight.view([bins, per_bin]);
        let carries = weight.ne(0.0);
        let taps_per_bin = carries.sum_dim_intlist(1, false, Kind::Int64);
        let offsets = taps_per_bin.cumsum(0, Kind::Int64) - &taps_per_bin;
        let pixel = pixel.view([bins, per_bin]).masked_select(&carries);
        (pixel, weight.masked_select(&carries), offsets)
    };
    let table = input.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
    let (pooled, _, _, _) = Tensor::embedding_bag(
        &table,
        &pixel,
        &offsets,
        false,
        BAG_SUM,
        false,
        Some(weight.to_kind(input.kind())),
        false,
    );
    pooled
        .view([r, ph, pw, c])
        .permute([0, 3, 1, 2])
        .contiguous()
}

/// The taps of one axis: for each RoI and output bin, the pixel index (`[R, bins, 2·points]`,
/// i64) and weight (same shape) of the low and high neighbour of each sample point, the
/// weights already divided by the RoI's number of points on this axis. Points the RoI does
/// not use (an adaptive grid smaller than the largest) and points outside the map weigh 0.
fn axis_taps(
    start: &Tensor,
    extent: &Tensor,
    bins: i64,
    len: i64,
    sampling_ratio: i64,
) -> (Tensor, Tensor) {
    let r = start.size()[0];
    let opts = (Kind::Float, start.device());
    let bin_size = extent / bins as f64;
    let grid = if sampling_ratio > 0 {
        Tensor::full([r], sampling_ratio as f64, opts)
    } else {
        (extent / bins as f64).ceil()
    };
    let points = if sampling_ratio > 0 {
        sampling_ratio
    } else {
        // Non-finite boxes give a NaN grid, which counts as no points.
        grid.nan_to_num(0.0, 0.0, 0.0).max().int64_value(&[]).max(1)
    };
    let bin = Tensor::arange(bins, opts).view([1, bins, 1]);
    let point = Tensor::arange(points, opts).view([1, 1, points]);
    let used = point.lt_tensor(&grid.view([r, 1, 1]));
    // An empty RoI has a grid of 0 points (no samples); dividing by 1 instead keeps the
    // unused positions finite.
    let grid = grid.clamp_min(1.0);
    let (start, bin_size, grid) = (
        start.view([r, 1, 1]),
        bin_size.view([r, 1, 1]),
        grid.view([r, 1, 1]),
    );
    // Same operations in the same order as torchvision's kernel, so positions agree bit for bit.
    let pos = &start + &bin * &bin_size + (&point + 0.5) * &bin_size / &grid; // [R, bins, points]
                                                                              // Non-finite boxes sample nothing rather than index out of the map.
    let pos = pos.nan_to_num(-2.0, (len + 1) as f64, -2.0);
    let inside = pos.ge(-1.0).logical_and(&pos.le(len as f64));
    let pos = pos.clamp_min(0.0);
    let low = pos.floor();
    let inner = low.lt((len - 1) as f64);
    let last = Tensor::full([], (len - 1) as f64, opts);
    let low = low.where_self(&inner, &last);
    let high = (&low + 1.0).where_self(&inner, &last);
    let pos = pos.where_self(&inner, &low);
    let frac_high = &pos - &low;
    let frac_low = frac_high.neg() + 1.0;
    let scale = used.logical_and(&inside).to_kind(Kind::Float) / &grid;
    let index = Tensor::cat(&[low, high], 2).to_kind(Kind::Int64);
    let weight = Tensor::cat(&[frac_low * &scale, frac_high * &scale], 2);
    merge_repeated_taps(&index, &weight)
}

/// Neighbouring sample points of a bin often share a pixel (the high neighbour of one is the
/// low neighbour of the next; in a bin under a pixel wide all share two): each pixel's weights
/// summed onto its first tap, the repeats left weighing 0, so that they can be dropped.
fn merge_repeated_taps(index: &Tensor, weight: &Tensor) -> (Tensor, Tensor) {
    let taps = index.size()[2];
    let same = index.unsqueeze(3).eq_tensor(&index.unsqueeze(2)); // [R, bins, taps, taps]
    let merged =
        (same.to_kind(Kind::Float) * weight.unsqueeze(2)).sum_dim_intlist(3, false, Kind::Float);
    let earlier = Tensor::ones([taps, taps], (Kind::Bool, index.device())).tril(-1);
    let repeat = same.logical_and(&earlier).any_dim(3, false);
    (index.shallow_clone(), merged.masked_fill(&repeat, 0.0))
}
