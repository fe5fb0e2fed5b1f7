//! Non-maximum suppression equal to `torchvision.ops.nms` / `batched_nms`: boxes visited by
//! descending score (ties by index, as torchvision's stable sort), a box is dropped when its
//! IoU with an already kept box is strictly above the threshold; the kept indices come back
//! by descending score.
//!
//! Two algorithms give the same result: on the CPU a greedy loop over the boxes in host
//! memory (the work is one pass per kept box over the later ones, vectorised); on other
//! devices the suppression bitmask of all pairs is computed there, copied to the host once,
//! and the greedy pass reads it, as torchvision's CUDA kernel does.

use tch::{Device, Kind, Tensor};

use super::boxes::box_iou;

/// Which of the two equal algorithms runs; [`nms`] picks by device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NmsAlgorithm {
    /// Boxes copied to the host, greedy loop there.
    HostLoop,
    /// IoU bitmask on the boxes' device, one copy to the host, greedy pass over the bits.
    DeviceMask,
}

impl NmsAlgorithm {
    pub fn for_device(device: Device) -> Self {
        if device == Device::Cpu {
            NmsAlgorithm::HostLoop
        } else {
            NmsAlgorithm::DeviceMask
        }
    }
}

/// Indices (i64, on the boxes' device) of the boxes `[N, 4]` kept by NMS over `scores` `[N]`,
/// by descending score. One host sync (the number kept is data-dependent).
pub fn nms(boxes: &Tensor, scores: &Tensor, iou_threshold: f64) -> Tensor {
    nms_with(
        NmsAlgorithm::for_device(boxes.device()),
        boxes,
        scores,
        None,
        iou_threshold,
    )
}

/// NMS within each category `idxs` `[N]` (i64): boxes of different categories never suppress
/// each other. Follows torchvision's two code paths so that float rounding agrees too: up to
/// 1000 boxes on the CPU (5000 elsewhere) it offsets each category's boxes by
/// `idx * (max coordinate + 1)` and runs one NMS; above that, NMS per category on the
/// original coordinates.
pub fn batched_nms(boxes: &Tensor, scores: &Tensor, idxs: &Tensor, iou_threshold: f64) -> Tensor {
    let algorithm = NmsAlgorithm::for_device(boxes.device());
    let element_limit = if boxes.device() == Device::Cpu {
        4000
    } else {
        20000
    };
    if boxes.numel() > element_limit {
        nms_with(algorithm, boxes, scores, Some(idxs), iou_threshold)
    } else {
        nms_with(
            algorithm,
            &offset_by_category(boxes, idxs),
            scores,
            None,
            iou_threshold,
        )
    }
}

/// torchvision's coordinate trick: categories moved apart so that they cannot overlap.
pub fn offset_by_category(boxes: &Tensor, idxs: &Tensor) -> Tensor {
    if boxes.numel() == 0 {
        return boxes.shallow_clone();
    }
    let max_coordinate = boxes.max();
    let offsets = idxs.to_kind(boxes.kind()) * (max_coordinate + 1.0);
    boxes + offsets.unsqueeze(1)
}

/// NMS by a chosen algorithm; with `categories`, only boxes of the same category suppress
/// each other.
pub fn nms_with(
    algorithm: NmsAlgorithm,
    boxes: &Tensor,
    scores: &Tensor,
    categories: Option<&Tensor>,
    iou_threshold: f64,
) -> Tensor {
    let device = boxes.device();
    let n = boxes.size()[0];
    if n == 0 {
        return Tensor::zeros([0], (Kind::Int64, device));
    }
    match algorithm {
        NmsAlgorithm::HostLoop => {
            let host = |t: &Tensor, kind| t.to_device(Device::Cpu).to_kind(kind).contiguous();
            let order = host(scores, scores.kind()).sort_stable(true, 0, true).1;
            let order = Vec::<i64>::try_from(&order).expect("sort indices are i64");
            let categories =
                categories.map(|c| Vec::<i64>::try_from(&host(c, Kind::Int64)).expect("i64"));
            let keep = if boxes.kind() == Kind::Double {
                let flat =
                    Vec::<f64>::try_from(&host(boxes, Kind::Double).view([-1])).expect("f64");
                greedy_f64(&flat, &order, categories.as_deref(), iou_threshold)
            } else {
                let flat = Vec::<f32>::try_from(&host(boxes, Kind::Float).view([-1])).expect("f32");
                greedy_f32(
                    &flat,
                    &order,
                    categories.as_deref(),
                    strict_f32_threshold(iou_threshold),
                )
            };
            Tensor::from_slice(&keep).to_device(device)
        }
        NmsAlgorithm::DeviceMask => mask_nms(boxes, scores, categories, iou_threshold),
    }
}

/// The greedy loop over host boxes in structure-of-arrays form, so the inner loop (one pass
/// of a kept box over the later ones) vectorises; the category test is compiled in only when
/// categories are given, as dense `i32` so that it keeps the float lanes' width.
macro_rules! greedy {
    ($name:ident, $t:ty) => {
        fn $name(
            flat: &[$t],
            order: &[i64],
            categories: Option<&[i64]>,
            threshold: $t,
        ) -> Vec<i64> {
            let column =
                |c: usize| -> Vec<$t> { order.iter().map(|&i| flat[i as usize * 4 + c]).collect() };
            let boxes = [column(0), column(1), column(2), column(3)];
            match categories {
                Some(c) => {
                    let dense = dense_categories(order.iter().map(|&i| c[i as usize]));
                    run_greedy_pass::<$t, true>(&boxes, &dense, order, threshold)
                }
                None => run_greedy_pass::<$t, false>(&boxes, &[], order, threshold),
            }
        }
    };
}
greedy!(greedy_f32, f32);
greedy!(greedy_f64, f64);

/// Category ids renumbered 0, 1, 2, ... in order of first appearance.
fn dense_categories(ids: impl Iterator<Item = i64>) -> Vec<i32> {
    let mut numbers = std::collections::HashMap::new();
    ids.map(|id| {
        let next = numbers.len() as i32;
        *numbers.entry(id).or_insert(next)
    })
    .collect()
}

trait Coordinate:
    Copy
    + PartialOrd
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Add<Output = Self>
{
    const ZERO: Self;
    fn min(self, other: Self) -> Self;
    fn max(self, other: Self) -> Self;
}

impl Coordinate for f32 {
    const ZERO: Self = 0.0;
    fn min(self, other: Self) -> Self {
        f32::min(self, other)
    }
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
}

impl Coordinate for f64 {
    const ZERO: Self = 0.0;
    fn min(self, other: Self) -> Self {
        f64::min(self, other)
    }
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
}

/// [`greedy_pass`] compiled for AVX2 when the CPU has it (8 lanes instead of SSE2's 4; the
/// portable build cannot assume it), else the portable build.
fn run_greedy_pass<T: Coordinate, const BY_CATEGORY: bool>(
    boxes: &[Vec<T>; 4],
    category: &[i32],
    order: &[i64],
    threshold: T,
) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to support AVX2.
        return unsafe { greedy_pass_avx2::<T, BY_CATEGORY>(boxes, category, order, threshold) };
    }
    greedy_pass::<T, BY_CATEGORY>(boxes, category, order, threshold)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn greedy_pass_avx2<T: Coordinate, const BY_CATEGORY: bool>(
    boxes: &[Vec<T>; 4],
    category: &[i32],
    order: &[i64],
    threshold: T,
) -> Vec<i64> {
    greedy_pass::<T, BY_CATEGORY>(boxes, category, order, threshold)
}

#[inline(always)]
fn greedy_pass<T: Coordinate, const BY_CATEGORY: bool>(
    [x1, y1, x2, y2]: &[Vec<T>; 4],
    category: &[i32],
    order: &[i64],
    threshold: T,
) -> Vec<i64> {
    let n = order.len();
    let area: Vec<T> = (0..n).map(|k| (x2[k] - x1[k]) * (y2[k] - y1[k])).collect();
    let mut suppressed = vec![0u8; n];
    let mut keep = Vec::new();
    for i in 0..n {
        if suppressed[i] != 0 {
            continue;
        }
        keep.push(order[i]);
        let (ix1, iy1, ix2, iy2, iarea) = (x1[i], y1[i], x2[i], y2[i], area[i]);
        let rest = i + 1..n;
        let s = &mut suppressed[rest.clone()];
        let (jx1, jy1, jx2, jy2) = (
            &x1[rest.clone()],
            &y1[rest.clone()],
            &x2[rest.clone()],
            &y2[rest.clone()],
        );
        let jarea = &area[rest.clone()];
        let (jcat, icat) = if BY_CATEGORY {
            (&category[rest], category[i])
        } else {
            (&category[..0], 0)
        };
        for k in 0..s.len() {
            let w = (ix2.min(jx2[k]) - ix1.max(jx1[k])).max(T::ZERO);
            let h = (iy2.min(jy2[k]) - iy1.max(jy1[k])).max(T::ZERO);
            let inter = w * h;
            let iou = inter / (iarea + jarea[k] - inter);
            let same = if BY_CATEGORY { jcat[k] == icat } else { true };
            s[k] |= ((iou > threshold) & same) as u8;
        }
    }
    keep
}

/// The `f32` bound `t` with `iou > t` exactly when `iou as f64 > threshold`: torchvision's
/// kernel compares single-precision IoUs with the double-precision threshold.
fn strict_f32_threshold(threshold: f64) -> f32 {
    let nearest = threshold as f32;
    if (nearest as f64) > threshold {
        // The largest f32 below `nearest`; `iou >= nearest` is `iou > that`.
        let bits = nearest.to_bits();
        if nearest > 0.0 {
            f32::from_bits(bits - 1)
        } else if nearest == 0.0 {
            -f32::from_bits(1)
        } else {
            f32::from_bits(bits + 1)
        }
    } else {
        nearest
    }
}

/// Rows of the IoU bitmask computed at once (bounds the device memory to rows x N floats).
const MASK_ROWS: i64 = 2048;

fn mask_nms(
    boxes: &Tensor,
    scores: &Tensor,
    categories: Option<&Tensor>,
    threshold: f64,
) -> Tensor {
    let device = boxes.device();
    let n = boxes.size()[0];
    let order = scores.sort_stable(true, 0, true).1;
    let sorted = boxes.index_select(0, &order);
    let sorted_categories = categories.map(|c| c.index_select(0, &order));
    let bytes_per_row = (n + 7) / 8;
    let bit_values = Tensor::from_slice(&[1u8, 2, 4, 8, 16, 32, 64, 128]).to_device(device);
    let mut packed_rows = Vec::new();
    let mut start = 0;
    while start < n {
        let rows = MASK_ROWS.min(n - start);
        let chunk = sorted.narrow(0, start, rows);
        let mut over = box_iou(&chunk, &sorted).gt(threshold);
        if let Some(c) = &sorted_categories {
            over = over.logical_and(
                &c.narrow(0, start, rows)
                    .unsqueeze(1)
                    .eq_tensor(&c.unsqueeze(0)),
            );
        }
        let padded = over
            .to_kind(Kind::Uint8)
            .constant_pad_nd([0, bytes_per_row * 8 - n]);
        let packed = (padded.view([rows, bytes_per_row, 8]) * &bit_values).sum_dim_intlist(
            -1,
            false,
            Kind::Uint8,
        );
        packed_rows.push(packed);
        start += rows;
    }
    // The one copy to the host.
    let mask = Vec::<u8>::try_from(
        &Tensor::cat(&packed_rows, 0)
            .to_device(Device::Cpu)
            .view([-1]),
    )
    .expect("the packed mask is u8");
    let row_len = bytes_per_row as usize;
    let mut removed = vec![0u8; row_len];
    let mut kept_positions = Vec::new();
    for i in 0..n as usize {
        if removed[i / 8] >> (i % 8) & 1 == 1 {
            continue;
        }
        kept_positions.push(i as i64);
        let row = &mask[i * row_len..(i + 1) * row_len];
        // Bits of earlier boxes are already decided, so OR-ing the whole row is harmless.
        for (r, &m) in removed[i / 8..].iter_mut().zip(&row[i / 8..]) {
            *r |= m;
        }
    }
    order.index_select(0, &Tensor::from_slice(&kept_positions).to_device(device))
}
