//! RoIAlign equal to `torchvision.ops.roi_align`, built from ATen ops so that it runs on any
//! device and autograd gives the gradient with respect to the features.
//!
//! torchvision averages, over a `gy x gx` grid of points per output bin, the bilinear value
//! at each point (a point more than one pixel outside the map counts 0; coordinates are
//! clamped to the map). Every part of that is a product of a y-factor and an x-factor, so for
//! one RoI the output is `Ay [ph, H] · F [C, H, W] · Ax^T [W, pw]`, where `Ay` holds, for each
//! output row, the summed bilinear weights of its sample rows divided by `gy` (`Ax` likewise).
//! `Ay` and `Ax` are zero outside the rows and columns the RoI touches. RoIs are sorted by the
//! size of that window and taken in chunks; a chunk of large windows is pooled from the whole
//! map (one matrix product `[n·ph, H] x [H, C·W]` and one batched `[n, ph·C, W] x [n, W, pw]`),
//! a chunk of small ones from its gathered windows (the same two products, batched per RoI, on
//! `[hc, wc·C]` windows), whichever costs less; on a large map (FPN's P2) the windows make the
//! work about the RoIs' own area. Chunks keep the intermediates within a memory bound.

use tch::{Device, Kind, Tensor};

/// Floats the intermediates of one chunk may hold (128 MB in single precision).
const CHUNK_ELEMENTS: i64 = 32 << 20;

/// Pooled features `[R, C, ph, pw]` of `rois` `[R, 5]` (image index, x1, y1, x2, y2 in image
/// coordinates) on `input` `[N, C, H, W]`. `sampling_ratio <= 0` picks
/// `ceil(roi size / output size)` points per bin per axis, as torchvision; `aligned` shifts
/// the RoI by half a pixel and lets it be smaller than one pixel.
///
/// Host syncs: one copy of the RoIs' windows (and image indices) to plan the chunks, and with
/// an adaptive sampling ratio one read of the largest grid.
pub fn roi_align(
    input: &Tensor,
    rois: &Tensor,
    output_size: (i64, i64),
    spatial_scale: f64,
    sampling_ratio: i64,
    aligned: bool,
) -> Tensor {
    roi_align_by_image(
        input,
        rois,
        None,
        output_size,
        spatial_scale,
        sampling_ratio,
        aligned,
    )
}

/// [`roi_align`] for callers that already hold the RoIs' image indices on the host (`None`:
/// read from `rois`).
pub fn roi_align_by_image(
    input: &Tensor,
    rois: &Tensor,
    image_of_roi: Option<&[i64]>,
    output_size: (i64, i64),
    spatial_scale: f64,
    sampling_ratio: i64,
    aligned: bool,
) -> Tensor {
    let settings = RoiAlign {
        output_size,
        spatial_scale,
        sampling_ratio,
        aligned,
        plan: PoolPlan::Cheapest,
    };
    settings.pool(input, rois, image_of_roi)
}

/// How chunks of RoIs are pooled; every plan gives the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolPlan {
    /// Per chunk, whichever of the two costs less.
    Cheapest,
    /// Always from the whole map.
    WholeMap,
    /// Always from gathered windows.
    Windows,
}

/// RoIAlign's settings, with the pooling plan exposed for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiAlign {
    pub output_size: (i64, i64),
    pub spatial_scale: f64,
    pub sampling_ratio: i64,
    pub aligned: bool,
    pub plan: PoolPlan,
}

impl RoiAlign {
    /// See [`roi_align`]; `image_of_roi` as in [`roi_align_by_image`].
    pub fn pool(&self, input: &Tensor, rois: &Tensor, image_of_roi: Option<&[i64]>) -> Tensor {
        let RoiAlign {
            output_size: (ph, pw),
            spatial_scale,
            sampling_ratio,
            aligned,
            plan,
        } = *self;
        let size = input.size();
        let (c, h, w) = (size[1], size[2], size[3]);
        let r = rois.size()[0];
        let device = input.device();
        if r == 0 {
            return Tensor::zeros([0, c, ph, pw], (input.kind(), device));
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

        // The one copy to the host: image index and window of every RoI.
        let (y_first, y_len) = support(&ay);
        let (x_first, x_len) = support(&ax);
        let windows_of = Tensor::stack(
            &[
                rois.select(1, 0).to_kind(Kind::Int64),
                y_first,
                y_len,
                x_first,
                x_len,
            ],
            1,
        );
        let windows_of = Vec::<i64>::try_from(&windows_of.to_device(Device::Cpu).view([-1]))
            .expect("the windows are i64");
        let windows: Vec<Window> = windows_of
            .chunks(5)
            .enumerate()
            .map(|(i, p)| Window {
                roi: i as i64,
                image: image_of_roi.map_or(p[0], |ids| ids[i]),
                y_first: p[1],
                y_len: p[2],
                x_first: p[3],
                x_len: p[4],
            })
            .collect();

        let mut pieces = Vec::new();
        let mut order = Vec::with_capacity(r as usize);
        let to_dev = |v: &[i64]| Tensor::from_slice(v).to_device(device);
        for chunk in plan_chunks(windows, c, ph, pw) {
            let image = chunk[0].image;
            let hc = chunk.iter().map(|win| win.y_len).max().unwrap_or(0).max(1);
            let wc = chunk.iter().map(|win| win.x_len).max().unwrap_or(0).max(1);
            let ids: Vec<i64> = chunk.iter().map(|win| win.roi).collect();
            // Measured on CPU, a flop of the gathered windows' small products costs about ten of
            // the whole-map products', so the windows only pay when they are much smaller.
            let window_cost = 10 * ph * wc * (hc + pw);
            let whole_cost = ph * w * (h + pw);
            let whole_map = match plan {
                PoolPlan::Cheapest => window_cost >= whole_cost,
                PoolPlan::WholeMap => true,
                PoolPlan::Windows => false,
            };
            if whole_map {
                // Neighbours side by side, so that each piece's common window is narrow.
                let mut by_position = chunk.clone();
                by_position.sort_by_key(|win| (win.x_first, win.y_first, win.roi));
                let per_piece = (CHUNK_ELEMENTS / (ph * c * w).max(1)).max(1) as usize;
                for part in by_position.chunks(per_piece) {
                    let ids: Vec<i64> = part.iter().map(|win| win.roi).collect();
                    order.extend_from_slice(&ids);
                    let map = input.get(image);
                    pieces.push(pool_common_window(
                        &map,
                        &ay,
                        &ax,
                        &to_dev(&ids),
                        part,
                        (ph, pw),
                    ));
                }
                continue;
            }
            order.extend_from_slice(&ids);
            let n = chunk.len() as i64;
            // Window origins, moved back where needed so that every window lies inside the map.
            let y0: Vec<i64> = chunk.iter().map(|win| win.y_first.min(h - hc)).collect();
            let x0: Vec<i64> = chunk.iter().map(|win| win.x_first.min(w - wc)).collect();
            let (ids, y0, x0) = (
                to_dev(&ids),
                to_dev(&y0).view([n, 1]),
                to_dev(&x0).view([n, 1]),
            );
            let rows = &y0 + Tensor::arange(hc, (Kind::Int64, device)).view([1, hc]); // [n, hc]
            let cols = &x0 + Tensor::arange(wc, (Kind::Int64, device)).view([1, wc]); // [n, wc]
            let ay_win = ay.index_select(0, &ids).gather(
                2,
                &rows.unsqueeze(1).expand([n, ph, hc], false),
                false,
            );
            let ax_win = ax.index_select(0, &ids).gather(
                2,
                &cols.unsqueeze(1).expand([n, pw, wc], false),
                false,
            );
            // [H*W, C] of this image; the windows are gathered as [n, hc, wc*C].
            let pixels = input.get(image).permute([1, 2, 0]).reshape([h * w, c]);
            let flat = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view([-1]);
            let window = pixels.index_select(0, &flat).view([n, hc, wc * c]);
            let pooled_rows = ay_win.bmm(&window).view([n, ph, wc, c]);
            let pooled = ax_win.unsqueeze(1).matmul(&pooled_rows); // [n, ph, pw, C]
            pieces.push(pooled.permute([0, 3, 1, 2]));
        }
        let mut inverse = vec![0i64; order.len()];
        for (position, &roi) in order.iter().enumerate() {
            inverse[roi as usize] = position as i64;
        }
        Tensor::cat(&pieces, 0)
            .index_select(0, &Tensor::from_slice(&inverse).to_device(device))
            .contiguous()
    }
}

/// Pooled `[n, C, ph, pw]` of the RoIs `ids` (windows `part`) from `map` `[C, H, W]`, cut to
/// the smallest window holding all of theirs: one product `[n*ph, hu] x [hu, C*wu]`, then one
/// batched `[n, ph*C, wu] x [n, wu, pw]`.
fn pool_common_window(
    map: &Tensor,
    ay: &Tensor,
    ax: &Tensor,
    ids: &Tensor,
    part: &[Window],
    (ph, pw): (i64, i64),
) -> Tensor {
    let c = map.size()[0];
    let n = ids.size()[0];
    let read = || part.iter().filter(|win| win.y_len > 0 && win.x_len > 0);
    let y0 = read().map(|win| win.y_first).min().unwrap_or(0);
    let y1 = read().map(|win| win.y_first + win.y_len).max().unwrap_or(1);
    let x0 = read().map(|win| win.x_first).min().unwrap_or(0);
    let x1 = read().map(|win| win.x_first + win.x_len).max().unwrap_or(1);
    let (hu, wu) = (y1 - y0, x1 - x0);
    let rows = map
        .narrow(1, y0, hu)
        .narrow(2, x0, wu)
        .permute([1, 0, 2])
        .reshape([hu, c * wu]);
    let ay = ay.index_select(0, ids).narrow(2, y0, hu);
    let ax = ax.index_select(0, ids).narrow(2, x0, wu);
    let pooled_rows = ay.reshape([n * ph, hu]).mm(&rows); // [n*ph, C*wu]
    let pooled = pooled_rows.view([n, ph * c, wu]).bmm(&ax.transpose(1, 2)); // [n, ph*C, pw]
    pooled.view([n, ph, c, pw]).permute([0, 2, 1, 3])
}

/// The rows (or columns) one RoI reads: the first index with a non-zero weight and how many
/// follow up to the last one (0 when it reads nothing).
fn support(weights: &Tensor) -> (Tensor, Tensor) {
    let len = weights.size()[2];
    let used = weights.ne(0.0).any_dim(1, false).to_kind(Kind::Int64); // [R, len]
    let first = used.argmax(1, false);
    let last = (used.flip([1]).argmax(1, false)).neg() + (len - 1);
    let count = (&last - &first + 1) * used.amax([1], false);
    (first, count)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    roi: i64,
    image: i64,
    y_first: i64,
    y_len: i64,
    x_first: i64,
    x_len: i64,
}

/// RoIs grouped by image, sorted by window size, cut into chunks whose common window keeps
/// the intermediates within [`CHUNK_ELEMENTS`].
fn plan_chunks(mut windows: Vec<Window>, c: i64, ph: i64, pw: i64) -> Vec<Vec<Window>> {
    windows.sort_by_key(|win| {
        (
            win.image,
            win.y_len.max(1) * win.x_len.max(1),
            win.y_len,
            win.roi,
        )
    });
    let mut chunks: Vec<Vec<Window>> = Vec::new();
    let mut current: Vec<Window> = Vec::new();
    let (mut hc, mut wc) = (1, 1);
    for win in windows {
        let (h2, w2) = (hc.max(win.y_len), wc.max(win.x_len));
        let n = current.len() as i64 + 1;
        let cost = n * c * (h2 * w2 + ph * w2 + ph * pw);
        let same_image = current.first().is_none_or(|first| first.image == win.image);
        if !current.is_empty() && (!same_image || cost > CHUNK_ELEMENTS) {
            chunks.push(std::mem::take(&mut current));
            (hc, wc) = (win.y_len.max(1), win.x_len.max(1));
        } else {
            (hc, wc) = (h2, w2);
        }
        current.push(win);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Weights `[R, bins, len]` of one axis: for each RoI and output bin, the bilinear weights of
/// its sample points over the `len` pixels of the axis, averaged over the points.
fn axis_weights(
    start: &Tensor,
    extent: &Tensor,
    bins: i64,
    len: i64,
    sampling_ratio: i64,
) -> Tensor {
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
    let used = Tensor::arange(points, opts)
        .view([1, 1, points])
        .lt_tensor(&grid.view([r, 1, 1]));
    // An empty RoI has a grid of 0 points (no samples); dividing by 1 instead keeps the
    // unused positions finite.
    let grid = grid.clamp_min(1.0);
    let (start, bin_size, grid) = (
        start.view([r, 1, 1]),
        bin_size.view([r, 1, 1]),
        grid.view([r, 1, 1]),
    );
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
