//! `backbone bench`: images per second of a full training step (forward, backward, SGD step)
//! on random data, after warm-up, with one sync per timed window.

use crate::arch::Arch;
use crate::resnet::{ResNet, ResNetConfig};
use engine::amp::LossScaler;
use engine::channels_last::{tensor_to_channels_last, var_store_to_channels_last};
use engine::optim::{Sgd, SgdConfig};
use serde::Serialize;
use std::time::Instant;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct StepBenchSettings {
    pub arch: Arch,
    pub batch: i64,
    pub input_size: i64,
    pub num_classes: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: Device,
    pub warmup: usize,
    pub iters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepBenchResult {
    pub arch: String,
    pub batch: i64,
    pub input_size: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: String,
    pub threads: i32,
    pub images_per_s: f64,
    pub step_ms: f64,
}

pub fn bench_train_step(s: &StepBenchSettings) -> StepBenchResult {
    let vs = nn::VarStore::new(s.device);
    let model = ResNet::new(&vs.root(), &ResNetConfig::classifier(s.arch, s.num_classes));
    let mut x = Tensor::randn(
        [s.batch, 3, s.input_size, s.input_size],
        (Kind::Float, s.device),
    );
    if s.channels_last {
        // Before the optimiser, so its momentum buffers take the same layout.
        x = tensor_to_channels_last(&x);
        var_store_to_channels_last(&vs);
    }
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
    let labels = Tensor::randint(s.num_classes, [s.batch], (Kind::Int64, s.device));
    let mut step = || {
        let forward = || model.forward_t(&x, true);
        let logits = if s.amp {
            tch::autocast(true, forward)
        } else {
            forward()
        };
        let loss = logits
            .to_kind(Kind::Float)
            .cross_entropy_for_logits(&labels);
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
    };
    let sync = |t: Tensor| {
        // One value read waits for every queued kernel.
        let _ = t.double_value(&[]);
    };
    for _ in 0..s.warmup {
        let _ = step();
    }
    sync(step());
    let start = Instant::now();
    let mut last = None;
    for _ in 0..s.iters {
        last = Some(step());
    }
    if let Some(l) = last {
        sync(l);
    }
    let secs = start.elapsed().as_secs_f64();
    StepBenchResult {
        arch: s.arch.to_string(),
        batch: s.batch,
        input_size: s.input_size,
        amp: s.amp,
        channels_last: s.channels_last,
        device: format!("{:?}", s.device).to_lowercase(),
        threads: tch::get_num_threads(),
        images_per_s: (s.iters as i64 * s.batch) as f64 / secs,
        step_ms: secs * 1000.0 / s.iters as f64,
    }
}
