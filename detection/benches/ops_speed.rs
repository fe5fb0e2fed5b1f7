//! CPU timings of the costly units beside torchvision's (tests/golden/speed.py times the same
//! shapes), in the optimised bench profile: `cargo bench -p detection --bench ops_speed`.
//! Exits 1 when NMS is over its budget.

use std::time::Instant;

use detection::ops::nms::nms;
use detection::ops::poolers::MultiScaleRoIAlign;
use detection::ops::roi_align::roi_align;
use tch::{Device, Kind, Tensor};

fn median_ms(mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

/// `n` boxes `[n, 4]` with corners in an `h x w` image and sides of 16 to half the image.
fn random_boxes(n: i64, h: f64, w: f64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let extent = Tensor::from_slice(&[w as f32, h as f32]);
    let xy = Tensor::rand([n, 2], opts) * &extent;
    let wh = Tensor::rand([n, 2], opts) * &extent / 2.0 + 16.0;
    Tensor::cat(&[&xy, &(&xy + wh)], 1)
}

/// NMS of 12000 boxes (the RPN's pre-NMS count at training) must take well under this.
const NMS_BUDGET_MS: f64 = 50.0;

fn main() {
    let nms_ms = nms_of_12000_boxes();
    roi_align_timings_c4_and_fpn();
    if nms_ms >= NMS_BUDGET_MS {
        eprintln!("NMS of 12000 boxes took {nms_ms:.1} ms, over its {NMS_BUDGET_MS} ms budget");
        std::process::exit(1);
    }
}

/// Prints and returns the median time of NMS over 12000 boxes, in ms.
fn nms_of_12000_boxes() -> f64 {
    tch::manual_seed(0);
    let boxes = random_boxes(12000, 800.0, 1216.0);
    let scores = Tensor::rand([12000], (Kind::Float, Device::Cpu));
    let ms = median_ms(|| {
        let _ = nms(&boxes, &scores, 0.7);
    });
    println!(
        "nms 12000 @0.7: {ms:.1} ms, kept {}",
        nms(&boxes, &scores, 0.7).size()[0]
    );
    ms
}

fn roi_align_timings_c4_and_fpn() {
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let feature = Tensor::randn([1, 1024, 38, 63], opts);
    let rois = Tensor::cat(
        &[
            Tensor::zeros([512, 1], opts),
            random_boxes(512, 600.0, 1000.0),
        ],
        1,
    );
    let forward = median_ms(|| {
        let _ = roi_align(&feature, &rois, (14, 14), 1.0 / 16.0, 2, false);
    });
    let x = feature.detach().set_requires_grad(true);
    // A dense upstream gradient, as in training (the gradient of a plain sum is a broadcast).
    let upstream = Tensor::randn([512, 1024, 14, 14], opts);
    let both = median_ms(|| {
        (roi_align(&x, &rois, (14, 14), 1.0 / 16.0, 2, false) * &upstream)
            .sum(Kind::Float)
            .backward();
    });
    println!("c4 roi_align 512 x 1024 x 38 x 63 -> 14 x 14: forward {forward:.0} ms, forward+backward {both:.0} ms");

    let levels: Vec<Tensor> = (2..6)
        .map(|k| Tensor::randn([1, 256, 800 >> k, 1216 >> k], opts))
        .collect();
    let boxes = [random_boxes(512, 800.0, 1216.0)];
    let pooler = MultiScaleRoIAlign::new((7, 7), 2);
    let forward = median_ms(|| {
        let _ = pooler.forward(&levels, &boxes, (800, 1216));
    });
    let levels: Vec<Tensor> = levels
        .iter()
        .map(|l| l.detach().set_requires_grad(true))
        .collect();
    let upstream = Tensor::randn([512, 256, 7, 7], opts);
    let both = median_ms(|| {
        (pooler.forward(&levels, &boxes, (800, 1216)) * &upstream)
            .sum(Kind::Float)
            .backward();
    });
    println!("fpn pooler 512 RoIs over P2..P5 (256 ch, 800 x 1216) -> 7 x 7: forward {forward:.0} ms, forward+backward {both:.0} ms");
}
