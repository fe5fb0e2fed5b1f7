//! Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, 2015) for the 3x3 convolutions
//! of CPU inference in oneDNN's blocked layout (see [`crate::onednn`]).
//!
//! oneDNN convolves directly: 9 multiply-adds per output and input channel. F(4x4, 3x3)
//! computes each 4x4 block of outputs from a 6x6 block of inputs with 36 multiply-adds per
//! channel pair, 2.25 instead of 9 per output, as 36 batched matrix products over the
//! channels; the transforms around them are additions over memory. A dilated convolution is
//! the same thing on the image's dilation-strided sub-grids, so the dilated 3x3 convs of an
//! FCN backbone (output stride 8 or 16) go this way too. In float32 the outputs differ from
//! the direct convolution by about 2e-6 of their norm.
//!
//! It pays where the matrix products dominate, i.e. with many channels: on two cores an FCN
//! ResNet-50's 2048 -> 512 head conv runs 1.6-1.7 times as fast as oneDNN's on 60 x 60 maps
//! (crop 480) and 2.4 times on 16 x 16 ones, layout changes included; its 512 -> 512 dilated
//! convs gain 0.9-1.4 times (bench/winograd_probe.py, docs/results.md).
//! The transformed weights (4 times the size of the 3x3 ones) are made once per weight and
//! kept by the conv beside its folded weights.

use tch::{Device, Kind, Tensor};

/// Input block side (`OUT + 3 - 1`) and output block side.
const IN: i64 = 6;
const OUT: i64 = 4;

/// Bᵀ, G and Aᵀ for F(4, 3) with interpolation points 0, ±1, ±2 and infinity.
const BT: [[f64; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
const AT: [[f64; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// Below this many input or output channels the transforms cost about what the products save:
/// an FCN's 256 -> 256 convs at dilation 2 ran at 0.97-1.07 times oneDNN's speed on 60 x 60
/// maps and 0.84-0.92 times on 16 x 16 ones (bench/winograd_probe.py).
pub const MIN_CHANNELS: i64 = 512;

/// Whether a conv with `weight` (O x I x kH x kW), `stride`, `padding` and `dilation` on `x`
/// goes this way: `x` in the blocked layout of CPU inference, float32, a 3x3 kernel at
/// stride 1 that keeps the size (padding = dilation), and at least [`MIN_CHANNELS`] in and
/// out.
pub fn applies(x: &Tensor, weight: &Tensor, stride: i64, padding: i64, dilation: i64) -> bool {
    let w = weight.size();
    x.is_mkldnn()
        && x.kind() == Kind::Float
        && weight.kind() == Kind::Float
        && weight.device() == Device::Cpu
        && w.len() == 4
        && w[2..] == [3, 3]
        && stride == 1
        && padding == dilation
        && w[0] >= MIN_CHANNELS
        && w[1] >= MIN_CHANNELS
}

/// The weights in the transformed domain, `G w Gᵀ` per channel pair, as 36 matrices of
/// in x out channels (float32, computed in float64).
pub fn transform_weight(weight: &Tensor) -> Tensor {
    let _no_grad = tch::no_grad_guard();
    let size = weight.size();
    let (c_out, c_in) = (size[0], size[1]);
    let g = Tensor::from_slice(G.as_flattened())
        .view([IN, 3])
        .to_device(weight.device());
    // reshape, not view: a channels-last model's weights are not contiguous.
    let w = weight.to_kind(Kind::Double).reshape([c_out * c_in, 3, 3]);
    // (O*I) x 6 x 6, then 36 x I x O.
    g.matmul(&w)
        .matmul(&g.tr())
        .view([c_out, c_in, IN * IN])
        .permute([2, 1, 0])
        .to_kind(Kind::Float)
        .contiguous()
}

/// The 3x3 convolution at stride 1 and padding = `dilation`, plus `bias`, of `x` (N x C x H x
/// W, in the blocked layout or strided), with weights `u` from [`transform_weight`]. The result
/// is in `x`'s layout.
pub fn conv3x3(x: &Tensor, u: &Tensor, bias: Option<&Tensor>, dilation: i64) -> Tensor {
    let blocked = x.is_mkldnn();
    let dense = match blocked {
        true => x.to_dense(None, false),
        false => x.shallow_clone(),
    };
    let size = dense.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let c_out = u.size()[2];
    let d = dilation;
    // Output row y = (by * OUT + i) * d + r: block by of OUT rows i, on the sub-grid r.
    let (blocks_h, blocks_w) = (ceil_div(h, OUT * d), ceil_div(w, OUT * d));
    let (padded_h, padded_w) = (blocks_h * OUT * d + 2 * d, blocks_w * OUT * d + 2 * d);
    // Channels-last, so that a block's pixels are runs of channels, in one copy that also
    // pads: zeros d wide above and left (the conv's own), and whatever completes the last
    // blocks below and right.
    let padded = Tensor::zeros([n, padded_h, padded_w, c], (Kind::Float, dense.device()));
    padded
        .narrow(1, d, h)
        .narrow(2, d, w)
        .copy_(&dense.permute([0, 2, 3, 1]));
    let s = padded.stride();
    let (s_n, s_h, s_w, s_c) = (s[0], s[1], s[2], s[3]);
    let tiles = n * blocks_h * d * blocks_w * d;
    // 6 x 6 x N x blocks_h x d x blocks_w x d x C: input row (by * OUT * d + r) + d * t for
    // block row t.
    let input_blocks = padded
        .as_strided(
            [IN, IN, n, blocks_h, d, blocks_w, d, c],
            [
                d * s_h,
                d * s_w,
                s_n,
                OUT * d * s_h,
                s_h,
                OUT * d * s_w,
                s_w,
                s_c,
            ],
            None,
        )
        .reshape([IN * IN, tiles * c]);
    // Bᵀ d B for every block and channel at once: (Bᵀ ⊗ Bᵀ) on the 36 values of a block.
    let transformed = kron(&BT, dense.device())
        .matmul(&input_blocks)
        .view([IN * IN, tiles, c]);
    let products = transformed.bmm(u);
    drop(transformed);
    // Aᵀ m A: (Aᵀ ⊗ Aᵀ) on the 36 products of a block gives its 4 x 4 outputs, with the
    // bias added while they are still rows of channels.
    let mut outputs = kron(&AT, dense.device())
        .matmul(&products.view([IN * IN, tiles * c_out]))
        .view(&[OUT, OUT, n, blocks_h, d, blocks_w, d, c_out][..]);
    if let Some(b) = bias {
        let _ = outputs.g_add_(b);
    }
    // Back to N x C x H x W in one copy (output row (by * OUT + i) * d + r), then cropped.
    let y = outputs
        .permute([2, 7, 3, 0, 4, 5, 1, 6])
        .reshape([n, c_out, blocks_h * OUT * d, blocks_w * OUT * d])
        .narrow(2, 0, h)
        .narrow(3, 0, w);
    match blocked {
        true => y.contiguous().g_to_mkldnn(None),
        false => y.contiguous(),
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// `m ⊗ m` for a transform matrix `m`, as a float32 tensor on `device`.
fn kron<const R: usize, const C: usize>(m: &[[f64; C]; R], device: Device) -> Tensor {
    let m = Tensor::from_slice(m.as_flattened())
        .view([R as i64, C as i64])
        .to_kind(Kind::Float)
        .to_device(device);
    m.kron(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
        let diff = (got.to_kind(Kind::Double) - want).norm().double_value(&[]);
        diff / want.norm().double_value(&[])
    }

    #[test]
    fn equals_the_direct_convolution_at_every_dilation_and_awkward_size() {
        let _no_grad = tch::no_grad_guard();
        tch::manual_seed(7);
        for (dilation, h, w) in [(1, 13, 17), (2, 20, 11), (4, 30, 30), (1, 4, 4), (3, 5, 29)] {
            let x = Tensor::randn([2, 8, h, w], (Kind::Float, Device::Cpu));
            let weight = Tensor::randn([5, 8, 3, 3], (Kind::Float, Device::Cpu)) * 0.2;
            let bias = Tensor::randn([5], (Kind::Float, Device::Cpu));
            let want = x.to_kind(Kind::Double).conv2d(
                &weight.to_kind(Kind::Double),
                Some(&bias.to_kind(Kind::Double)),
                [1, 1],
                [dilation, dilation],
                [dilation, dilation],
                1,
            );
            let u = transform_weight(&weight);
            // A channels-last model's weights (strided, not contiguous) transform alike.
            let channels_last = weight
                .permute([0, 2, 3, 1])
                .contiguous()
                .permute([0, 3, 1, 2]);
            assert_eq!(transform_weight(&channels_last), u);
            let got = conv3x3(&x, &u, Some(&bias), dilation);
            assert_eq!(got.size(), want.size());
            let error = relative_error(&got, &want);
            assert!(
                error < 1e-5,
                "dilation {dilation}, {h}x{w}: error {error:e}"
            );
            let unbiased = conv3x3(&x, &u, None, dilation);
            let error = relative_error(&(unbiased + bias.view([1, -1, 1, 1])), &want);
            assert!(error < 1e-5, "without bias, dilation {dilation}: {error:e}");
            if tch::utils::has_mkldnn() {
                let blocked = conv3x3(&x.g_to_mkldnn(None), &u, Some(&bias), dilation);
                assert!(blocked.is_mkldnn(), "the blocked layout is kept");
                let error = relative_error(&blocked.to_dense(None, false), &want);
                assert!(error < 1e-5, "blocked, dilation {dilation}: {error:e}");
            }
        }
    }

    #[test]
    fn only_wide_stride_one_3x3_convs_in_the_blocked_layout() {
        // The libtorch this project links (the torch 2.11 wheel) has oneDNN; without it the
        // blocked layout this test is about does not exist, and the test must say so.
        assert!(
            tch::utils::has_mkldnn(),
            "this libtorch has no oneDNN, so the blocked layout cannot be tested"
        );
        let c = MIN_CHANNELS;
        let x = Tensor::randn([1, c, 8, 8], (Kind::Float, Device::Cpu));
        let blocked = x.g_to_mkldnn(None);
        let w = |o: i64, i: i64, k: i64| Tensor::zeros([o, i, k, k], (Kind::Float, Device::Cpu));
        assert!(applies(&blocked, &w(c, c, 3), 1, 2, 2));
        assert!(applies(&blocked, &w(c, 4 * c, 3), 1, 1, 1), "an FCN head");
        assert!(!applies(&x, &w(c, c, 3), 1, 1, 1), "strided input");
        assert!(!applies(&blocked, &w(c, c, 3), 2, 1, 1), "stride 2");
        assert!(!applies(&blocked, &w(c, c, 1), 1, 0, 1), "1x1");
        assert!(!applies(&blocked, &w(c / 2, c, 3), 1, 1, 1), "few outputs");
        assert!(!applies(&blocked, &w(c, c / 2, 3), 1, 1, 1), "few inputs");
        assert!(!applies(&blocked, &w(c, c, 3), 1, 0, 1), "no padding");
    }
}
