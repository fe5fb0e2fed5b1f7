//! `segment bench`: images per second of an FCN training step (forward with the auxiliary
//! head, both losses, backward, SGD step) and of inference (forward of the main head, no
//! grad), on random data, after warm-up, one sync per timed window. bench/fcn_torchvision.py
//! times torchvision's fcn_resnet50 the same way.

use crate::fcn::{Fcn, FcnConfig};
use crate::task::training_losses;
use backbones::Arch;
use engine::amp::LossScaler;
use engine::channels_last::{tensor_to_channels_last, var_store_to_channels_last};
use engine::optim::{Sgd, SgdConfig};
use engine::timing::timed;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct BenchSettings {
    pub arch: Arch,
    pub batch: i64,
    pub crop: i64,
    pub num_classes: i64,
    pub output_stride: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: Device,
    pub warmup: usize,
    pub iters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub arch: String,
    pub batch: i64,
    pub crop: i64,
    pub num_classes: i64,
    pub output_stride: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: String,
    pub threads: i32,
    pub train_images_per_s: f64,
    pub infer_images_per_s: f64,
}

pub fn bench(s: &BenchSettings) -> BenchResult {
    let vs = nn::VarStore::new(s.device);
    let config = FcnConfig::new(s.arch, s.output_stride, s.num_classes, true);
    let model = Fcn::new(&vs.root(), &config);
    let mut x = Tensor::randn([s.batch, 3, s.crop, s.crop], (Kind::Float, s.device));
    if s.channels_last {
        x = tensor_to_channels_last(&x);
        var_store_to_channels_last(&vs);
    }
    let labels = Tensor::randint(
        s.num_classes,
        [s.batch, s.crop, s.crop],
        (Kind::Int64, s.device),
    );
    let mut sgd = Sgd::new(
        &vs,
        &SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            no_bias_decay: false,
            clip_value: None,
        },
    );
    let mut scaler = s.amp.then(|| LossScaler::new(s.device));
    let params = vs.trainable_variables();
    let train_secs = timed(s.warmup, s.iters, || {
        let forward = || {
            let (seg, aux) = training_losses(&model, &x, &labels, 0);
            seg + aux.expect("built with the auxiliary head") * 0.5
        };
        let loss = if s.amp {
            tch::autocast(true, forward)
        } else {
            forward()
        };
        sgd.zero_grad();
        match scaler.as_mut() {
            Some(sc) => {
                sc.scale(&loss).backward();
                let found_inf = sc.unscale(&params);
                sgd.step(0.01, Some(&found_inf));
                sc.update(&found_inf);
            }
            None => {
                loss.backward();
                sgd.step(0.01, None);
            }
        }
        loss
    });
    let infer_secs = {
        let _no_grad = tch::no_grad_guard();
        timed(s.warmup, s.iters, || {
            let forward = || model.forward_to(&x, (s.crop, s.crop), false, false).out;
            if s.amp {
                tch::autocast(true, forward)
            } else {
                forward()
            }
        })
    };
    let images = (s.iters as i64 * s.batch) as f64;
    BenchResult {
        arch: s.arch.to_string(),
        batch: s.batch,
        crop: s.crop,
        num_classes: s.num_classes,
        output_stride: s.output_stride,
        amp: s.amp,
        channels_last: s.channels_last,
        device: format!("{:?}", s.device).to_lowercase(),
        threads: tch::get_num_threads(),
        train_images_per_s: images / train_secs,
        infer_images_per_s: images / infer_secs,
    }
}
