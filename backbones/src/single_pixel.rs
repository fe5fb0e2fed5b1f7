//! A convolution whose output is one pixel, computed as the matrix product it is.
//!
//! Small inputs shrink the last stage of a network to a single pixel: a ResNet's layer4 on
//! Fashion-MNIST's 28 px images, Inception-V3's last blocks at 75 px. A 3x3 conv padded by 1
//! on a 1x1 map then reads its input through the centre tap only; the other eight multiply
//! padding. The result is one matrix product, batch x (channels x the taps that reach the
//! input) by that x outputs, and so are its gradients (zero for the taps that see only
//! padding, as the convolution's own). Convolution kernels do not all see it: oneDNN's AVX2
//! kernels take the weight gradient of such a conv through im2col and a GEMM over all nine
//! taps, 40 ms for one 512 -> 512 conv at batch 128 on two cores, most of fashion-quick's
//! training step (docs/results.md). The product here does the same sums in a different
//! order, so the outputs agree to float rounding.

use tch::Tensor;

/// The kernel taps of one spatial dimension that reach the input when the output is one
/// pixel: taps `first_tap..first_tap + count`, reading input rows `first_row`,
/// `first_row + dilation`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Taps {
    first_tap: i64,
    first_row: i64,
    count: i64,
}

/// The taps of a dimension of `size` under a conv of `kernel` taps, `padding` each side,
/// `dilation` and `stride`, when that makes an output of one pixel and at least one tap reads
/// the input; `None` otherwise.
fn taps(size: i64, kernel: i64, padding: i64, dilation: i64, stride: i64) -> Option<Taps> {
    // Geometry libtorch refuses is left for it to name.
    if stride < 1 || padding < 0 || dilation < 1 {
        return None;
    }
    let span = size + 2 * padding - dilation * (kernel - 1) - 1;
    if span < 0 || span / stride != 0 {
        return None;
    }
    let first_tap = (padding + dilation - 1) / dilation;
    let count = (first_tap..kernel)
        .take_while(|tap| tap * dilation - padding < size)
        .count() as i64;
    (count > 0).then_some(Taps {
        first_tap,
        first_row: first_tap * dilation - padding,
        count,
    })
}

/// Whether libtorch would call a 4-D tensor's strides channels-last (its
/// `is_channels_last_strides_2d`), which is what a convolution's output follows.
fn channels_last_strides(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    if size.len() != 4 || stride[1] == 0 {
        return false;
    }
    let mut min = 0;
    for d in [1, 3, 2, 0] {
        if size[d] == 0 || stride[d] < min || (d == 0 && min == stride[1]) {
            return false;
        }
        min = if size[d] > 1 {
            stride[d] * size[d]
        } else {
            stride[d]
        };
    }
    true
}

/// `x.conv2d(weight, bias, stride, padding, dilation, 1)` as a matrix product, when its
/// output is one pixel (dense convs on dense tensors only); `None` where it is not.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: i64,
    padding: [i64; 2],
    dilation: i64,
) -> Option<Tensor> {
    if x.dim() != 4 || weight.dim() != 4 || x.is_mkldnn() || weight.is_mkldnn() {
        return None;
    }
    let (input, kernel) = (x.size(), weight.size());
    if input[1] != kernel[1] {
        return None;
    }
    let rows = taps(input[2], kernel[2], padding[0], dilation, stride)?;
    let cols = taps(input[3], kernel[3], padding[1], dilation, stride)?;
    let (batch, outputs) = (input[0], kernel[0]);
    let seen = x
        .slice(
            2,
            rows.first_row,
            rows.first_row + (rows.count - 1) * dilation + 1,
            dilation,
        )
        .slice(
            3,
            cols.first_row,
            cols.first_row + (cols.count - 1) * dilation + 1,
            dilation,
        );
    let used = weight
        .slice(2, rows.first_tap, rows.first_tap + rows.count, 1)
        .slice(3, cols.first_tap, cols.first_tap + cols.count, 1);
    // Both flattened taps-major, channels last: a view for channels-last tensors.
    let y = seen
        .permute([0, 2, 3, 1])
        .reshape([batch, -1])
        .linear(&used.permute([0, 2, 3, 1]).reshape([outputs, -1]), bias);
    Some(
        if channels_last_strides(x) || channels_last_strides(weight) {
            y.view([batch, 1, 1, outputs]).permute([0, 3, 1, 2])
        } else {
            y.view([batch, outputs, 1, 1])
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// `t` with channels-last strides, or as it is.
    fn in_format(t: Tensor, channels_last: bool) -> Tensor {
        if channels_last {
            t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
        } else {
            t
        }
    }

    #[test]
    fn the_taps_that_reach_the_input() {
        // A padded 3x3 on one pixel: the centre only.
        let centre = Taps {
            first_tap: 1,
            first_row: 0,
            count: 1,
        };
        assert_eq!(taps(1, 3, 1, 1, 1), Some(centre));
        assert_eq!(taps(1, 3, 1, 1, 2), Some(centre));
        // Dilated by 2, padded by 2: still the centre.
        assert_eq!(taps(1, 3, 2, 2, 1), Some(centre));
        // 2 -> 1 at stride 2: the lower-right 2 taps of each dimension.
        let two = Taps {
            first_tap: 1,
            first_row: 0,
            count: 2,
        };
        assert_eq!(taps(2, 3, 1, 1, 2), Some(two));
        // Unpadded: every tap.
        let all = Taps {
            first_tap: 0,
            first_row: 0,
            count: 3,
        };
        assert_eq!(taps(3, 3, 0, 1, 1), Some(all));
        // Outputs wider than one pixel are not this module's.
        assert_eq!(taps(2, 3, 1, 1, 1), None);
        assert_eq!(taps(3, 1, 0, 1, 1), None);
        assert_eq!(taps(4, 3, 1, 1, 2), None);
        // Geometry libtorch refuses.
        assert_eq!(taps(1, 3, 1, 1, 0), None);
        assert_eq!(taps(1, 3, -1, 1, 1), None);
        assert_eq!(taps(1, 3, 1, 0, 1), None);
        // A 1x1 kernel on one pixel.
        let one = Taps {
            first_tap: 0,
            first_row: 0,
            count: 1,
        };
        assert_eq!(taps(1, 1, 0, 1, 1), Some(one));
    }

    /// Forward and every gradient beside libtorch's convolution, in both memory formats,
    /// for the shapes small inputs give: ResNet's padded 3x3s at one pixel (stride 1 and 2,
    /// dilated), its 1x1s, Inception's 1x3 and 3x1, and a valid 3x3 on a 3x3 map.
    #[test]
    fn equals_the_convolution_and_its_gradients() {
        tch::manual_seed(5);
        /// Kernel, input height and width, stride, padding, dilation.
        type Case = ([i64; 2], [i64; 2], i64, [i64; 2], i64);
        let cases: [Case; 8] = [
            ([3, 3], [1, 1], 1, [1, 1], 1),
            ([3, 3], [2, 2], 2, [1, 1], 1),
            ([3, 3], [1, 1], 1, [2, 2], 2),
            ([1, 1], [1, 1], 1, [0, 0], 1),
            ([1, 1], [2, 2], 2, [0, 0], 1),
            ([1, 3], [1, 1], 1, [0, 1], 1),
            ([3, 1], [1, 1], 1, [1, 0], 1),
            ([3, 3], [3, 3], 1, [0, 0], 1),
        ];
        for (case, (kernel, hw, stride, padding, dilation)) in cases.into_iter().enumerate() {
            for (channels_last, with_bias) in [(false, false), (true, true), (true, false)] {
                let opts = (Kind::Float, Device::Cpu);
                let x = in_format(Tensor::randn([5, 12, hw[0], hw[1]], opts), channels_last)
                    .set_requires_grad(true);
                let w = in_format(
                    Tensor::randn([7, 12, kernel[0], kernel[1]], opts),
                    channels_last,
                )
                .set_requires_grad(true);
                let b = Tensor::randn([7], opts).set_requires_grad(true);
                let bias = with_bias.then_some(&b);
                let reference = x.conv2d(&w, bias, [stride; 2], padding, [dilation; 2], 1);
                let ours = conv2d(&x, &w, bias, stride, padding, dilation)
                    .unwrap_or_else(|| panic!("case {case}: a one-pixel output"));
                let what = format!("case {case}, channels-last {channels_last}");
                assert_eq!(ours.size(), reference.size(), "{what}");
                assert_eq!(ours.stride(), reference.stride(), "{what}: strides");
                let scale = reference.abs().max().double_value(&[]);
                let diff = (&ours - &reference).abs().max().double_value(&[]);
                assert!(diff <= 1e-5 * scale, "{what}: forward off by {diff}");
                // A loss that weighs each output differently, so that the gradients differ.
                let weights = Tensor::randn(reference.size(), opts);
                let grads = |y: &Tensor| {
                    let mut inputs = vec![&x, &w];
                    if with_bias {
                        inputs.push(&b);
                    }
                    Tensor::run_backward(&[(y * &weights).sum(Kind::Float)], &inputs, false, false)
                };
                for (i, (g, r)) in grads(&ours).iter().zip(grads(&reference)).enumerate() {
                    let scale = r.abs().max().double_value(&[]).max(1e-6);
                    let diff = (g - &r).abs().max().double_value(&[]);
                    assert!(diff <= 1e-5 * scale, "{what}: gradient {i} off by {diff}");
                }
            }
        }
    }

    #[test]
    fn outputs_wider_than_a_pixel_and_blocked_tensors_are_left_to_the_convolution() {
        let opts = (Kind::Float, Device::Cpu);
        let w = Tensor::randn([4, 3, 3, 3], opts);
        assert!(conv2d(&Tensor::randn([1, 3, 2, 2], opts), &w, None, 1, [1, 1], 1).is_none());
        assert!(conv2d(&Tensor::randn([1, 3, 5, 1], opts), &w, None, 1, [1, 1], 1).is_none());
        if tch::utils::has_mkldnn() {
            let blocked = Tensor::randn([1, 3, 1, 1], opts).g_to_mkldnn(None);
            assert!(conv2d(&blocked, &w, None, 1, [1, 1], 1).is_none());
        }
    }
}
