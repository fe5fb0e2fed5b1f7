//! RoIAlign equal to `torchvision.ops.roi_align`, built from ATen ops so that it runs on any
//! device and autograd gives the gradient with respect to the features.
//!
//! torchvision averages, over a `gy x gx` grid of points per output bin, the bilinear value
//! at each point (a point more than one pixel outside the map counts 0; coordinates are
//! clamped to the map). Every part of that is a product of a y-factor and an x-factor, so for
//! one RoI the output is `Ay [ph, H] · F [C, H, W] · Ax^T [W, pw]`, where `Ay` holds, for each
//! output row, the summed bilinear weights of its sample rows divided by `gy` (`Ax` likewise).
//! Per image this is one matrix product over all its RoIs' rows (`[R·ph, H] x [H, C·W]`) and
//! one batched product (`[R, ph·C, W] x [R, W, pw]`), done in chunks of RoIs to bound memory.

use tch::{Device, Kind, Tensor};

/// Floats an intermediate `[chunk, ph, C, W]` may hold (256 MB in single precision).
const CHUNK_ELEMENTS: i64 = 64 << 20;

/// Pooled features `[R, C, ph, pw]` of `rois` `[R, 5]` (image index, x1, y1, x2, y2 in image
/// coordinates) on `input` `[N, C, H, W]`. `sampling_ratio <= 0` picks
/// `ceil(roi size / output size)` points per bin per axis, as torchvision; `aligned` shifts
/// the RoI by half a pixel and lets it be smaller than one pixel.
///
/// Host syncs: with more than one image, one copy of the RoIs' image indices; with an adaptive
/// sampling ratio, one read of the largest grid.
pub fn roi_align(
    input: &Tensor,
    rois: &Tensor,
    output_size: (i64, i64),
    spatial_scale: f64,
    sampling_ratio: i64,
    aligned: bool,
) -> Tensor {
    let images = if input.size()[0] == 1 {
        None
    } else {
        let ids = rois.select(1, 0).to_device(Device::Cpu).to_kind(Kind::Int64);
        Some(Vec::<i64>::try_from(&ids).expect("image indices are i64"))
    };
    roi_align_by_image(input, rois, images.as_deref(), output_size, spatial_scale, sampling_ratio, aligned)
}

/// [`roi_align`] for callers that already hold the RoIs' image indices on the host
/// (`None`: all on image 0).
pub fn roi_align_by_image(
    input: &Tensor,
    rois: &Tensor,
    image_of_roi: Option<&[i64]>,
    (ph, pw): (i64, i64),
    spatial_scale: f64,
    sampling_ratio: i64,
    aligned: bool,
) -> Tensor {
    let size = input.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    let r = rois.size()[0];
    if r == 0 {
        return Tensor::zeros([0, c, ph, pw], (input.kind(), input.device()));
    }
    // torchvision passes no gradient to the boxes.
    let rois = rois.detach().to_kind(input.kind());
    let offset = if aligned { 0.5 } else { 0.0 };
    let coord = |i: i64| rois.select(1, i) * spatial_scale - offset;
    let (x1, y1, x2, y2) = (coord(1), coord(2), coord(3), coord(4));
    let (mut roi_w, mut roi_h) = (&x2 - &x1, &y2 - &y1);
    if !aligned {
        roi_w = roi_w.clamp_min(1.0);
        roi_h = roi_h.clamp_min(1.0);
    }
    let ay = axis_weights(&y1, &roi_h, ph, h, sampling_ratio);
    let ax = axis_weights(&x1, &roi_w, pw, w, sampling_ratio);

    let runs = image_runs(image_of_roi, r);
    let mut pieces = Vec::with_capacity(runs.len());
    let chunk = (CHUNK_ELEMENTS / (ph * c * w).max(1)).max(1);
    for (image, start, len) in runs {
        // [H, C*W]: the image's rows, so that Ay multiplies from the left in one product.
        let rows = input.get(image).permute([1, 0, 2]).reshape([h, c * w]);
        let mut done = 0;
        while done < len {
            let n = chunk.min(len - done);
            let ay_c = ay.narrow(0, start + done, n);
            let ax_c = ax.narrow(0, start + done, n);
            let pooled_rows = ay_c.reshape([n * ph, h]).mm(&rows); // [n*ph, C*W]
            let pooled = pooled_rows.view([n, ph * c, w]).bmm(&ax_c.transpose(1, 2)); // [n, ph*C, pw]
            pieces.push(pooled.view([n, ph, c, pw]).permute([0, 2, 1, 3]));
            done += n;
        }
    }
    Tensor::cat(&pieces, 0).contiguous()
}

/// Consecutive runs `(image, first RoI, count)` of RoIs on the same image.
fn image_runs(image_of_roi: Option<&[i64]>, r: i64) -> Vec<(i64, i64, i64)> {
    let Some(ids) = image_of_roi else { return vec![(0, 0, r)] };
    let mut runs: Vec<(i64, i64, i64)> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        match runs.last_mut() {
            Some(last) if last.0 == id => last.2 += 1,
            _ => runs.push((id, i as i64, 1)),
        }
    }
    runs
}

/// Weights `[R, bins, len]` of one axis: for each RoI and output bin, the bilinear weights of
/// its sample points over the `len` pixels of the axis, averaged over the points.
fn axis_weights(start: &Tensor, extent: &Tensor, bins: i64, len: i64, sampling_ratio: i64) -> Tensor {
    let r = start.size()[0];
    let device = start.device();
    let kind = start.kind();
    let bin_size = extent / bins as f64;
    let grid = if sampling_ratio > 0 {
        Tensor::full([r], sampling_ratio as f64, (kind, device))
    } else {
        (extent / bins as f64).ceil()
    };
    let points = if sampling_ratio > 0 {
        sampling_ratio
    } else {
        grid.max().int64_value(&[]).max(0)
    };
    if points == 0 {
        return Tensor::zeros([r, bins, len], (kind, device));
    }
    let opts = (kind, device);
    let bin = Tensor::arange(bins, opts).view([1, bins, 1]);
    let point = Tensor::arange(points, opts).view([1, 1, points]);
    let used = Tensor::arange(points, opts).view([1, 1, points]).lt_tensor(&grid.view([r, 1, 1]));
    // An empty RoI has a grid of 0 points (no samples); dividing by 1 instead keeps the
    // unused positions finite.
    let grid = grid.clamp_min(1.0);
    let (start, bin_size, grid) = (start.view([r, 1, 1]), bin_size.view([r, 1, 1]), grid.view([r, 1, 1]));
    // Same operations in the same order as torchvision's kernel, so positions agree bit for bit.
    let pos = &start + &bin * &bin_size + (point + 0.5) * &bin_size / &grid; // [R, bins, points]
    // Non-finite boxes sample nothing rather than index out of the map.
    let pos = pos.nan_to_num(-2.0, (len + 1) as f64, -2.0);
    let inside = pos.ge(-1.0).logical_and(&pos.le(len as f64));
    let pos = pos.clamp_min(0.0);
    let low = pos.floor();
    let at_end = low.ge((len - 1) as f64);
    let last = Tensor::full([], (len - 1) as f64, opts);
    let low = low.where_self(&at_end.logical_not(), &last);
    let high = (&low + 1.0).where_self(&at_end.logical_not(), &last);
    let pos = pos.where_self(&at_end.logical_not(), &low);
    let frac_high = &pos - &low;
    let frac_low = frac_high.neg() + 1.0;
    let scale = (used.logical_and(&inside)).to_kind(kind) / &grid;
    let index = Tensor::cat(&[low, high], 2).to_kind(Kind::Int64);
    let weight = Tensor::cat(&[frac_low * &scale, frac_high * &scale], 2);
    Tensor::zeros([r, bins, len], opts).scatter_add(2, &index, &weight)
}
