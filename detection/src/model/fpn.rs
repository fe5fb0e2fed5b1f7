//! torchvision's FeaturePyramidNetwork with its LastLevelMaxPool: 1x1 lateral ("inner")
//! convs bring C2..C5 to 256 channels, each coarser sum is upsampled (nearest) to the next
//! lateral's size and added, a 3x3 ("layer") conv smooths each sum, and P6 is P5
//! subsampled by a 1x1 max pool of stride 2.

use tch::nn::{self, Init};
use tch::Tensor;

/// torchvision's FPN convs start as kaiming_uniform(a=1): bound sqrt(3 / fan_in), bias 0.
const FPN_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::Linear,
};

#[derive(Debug)]
pub struct Fpn {
    /// `inner_blocks.{i}.0`: 1x1 laterals, C2 first.
    pub inner: Vec<nn::Conv2D>,
    /// `layer_blocks.{i}.0`: 3x3 output convs.
    pub layer: Vec<nn::Conv2D>,
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            padding: kernel / 2,
            ws_init: FPN_INIT,
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

impl Fpn {
    /// Names `inner_blocks.{i}.0.*` and `layer_blocks.{i}.0.*` under `p` (torchvision wraps
    /// each conv in a one-element Sequential).
    pub fn new(p: &nn::Path, in_channels: &[i64], out_channels: i64) -> Self {
        let inner = in_channels
            .iter()
            .enumerate()
            .map(|(i, &c)| conv(p / "inner_blocks" / i / 0, c, out_channels, 1))
            .collect();
        let layer = (0..in_channels.len())
            .map(|i| conv(p / "layer_blocks" / i / 0, out_channels, out_channels, 3))
            .collect();
        Fpn { inner, layer }
    }

    /// `inputs` finest first (C2..C5); returns P2..P5 and the extra P6 ("pool").
    pub fn forward(&self, inputs: &[Tensor]) -> Vec<Tensor> {
        let last = inputs.len() - 1;
        let mut top_down = inputs[last].apply(&self.inner[last]);
        let mut outputs = vec![top_down.apply(&self.layer[last])];
        for i in (0..last).rev() {
            let mut lateral = inputs[i].apply(&self.inner[i]);
            let size = lateral.size();
            let upsampled = top_down.upsample_nearest2d([size[2], size[3]], None, None);
            // In place: the lateral conv's backward does not read its output.
            let _ = lateral.g_add_(&upsampled);
            top_down = lateral;
            outputs.push(top_down.apply(&self.layer[i]));
        }
        outputs.reverse();
        let p6 = outputs[last].max_pool2d([1, 1], [2, 2], [0, 0], [1, 1], false);
        outputs.push(p6);
        outputs
    }
}
