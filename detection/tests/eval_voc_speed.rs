//! The VOC evaluator at the size of VOC2007 test: 4,952 images, 20 classes, ~15k boxes,
//! ~149k detections. Ignored by default (a measurement, not a check of behaviour):
//!
//!     cargo test -p detection --release --test eval_voc_speed -- --ignored --nocapture
//!
//! The Python peer, GluonCV's VOC07MApMetric algorithm in numpy on data of the same sizes:
//!
//!     python detection/tests/golden/voc_eval_golden.py --bench

use detection::metrics::voc::{Detection, GroundTruth, VocEvaluator, VocMetric};
use std::time::Instant;

/// splitmix64: a deterministic stream without a dependency.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn random_box(&mut self) -> [f64; 4] {
        let (x, y) = (self.uniform(1.0, 400.0), self.uniform(1.0, 400.0));
        let (w, h) = (self.uniform(10.0, 200.0), self.uniform(10.0, 200.0));
        [x, y, x + w, y + h]
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture, in release for the real figure"]
fn voc07_test_sized_evaluation_takes_well_under_a_second() {
    let (images, classes, per_image) = (4952, 20, 30);
    let mut rng = Stream(7);
    let mut ev = VocEvaluator::new((0..classes).map(|c| format!("class{c}")).collect());
    let (mut boxes, mut detections) = (0, 0);
    let start = Instant::now();
    for i in 0..images {
        let gt: Vec<GroundTruth> = (0..1 + rng.below(5))
            .map(|_| GroundTruth {
                bbox: rng.random_box(),
                class: rng.below(classes as u64) as usize,
                difficult: rng.below(10) == 0,
            })
            .collect();
        let image = ev.add_image(&format!("{i:06}"), &gt).unwrap();
        let dets: Vec<Detection> = (0..per_image)
            .map(|_| {
                let score = rng.uniform(0.0, 1.0);
                if rng.below(2) == 0 {
                    // Near a ground-truth box (found, duplicated or missed by a little).
                    let g = gt[rng.below(gt.len() as u64) as usize];
                    let mut bbox = g.bbox;
                    for v in &mut bbox {
                        *v += rng.uniform(-12.0, 12.0);
                    }
                    Detection {
                        bbox,
                        class: g.class,
                        score,
                    }
                } else {
                    Detection {
                        bbox: rng.random_box(),
                        class: rng.below(classes as u64) as usize,
                        score,
                    }
                }
            })
            .collect();
        ev.add_detections(image, &dets).unwrap();
        boxes += gt.len();
        detections += dets.len();
    }
    let added = start.elapsed().as_secs_f64();
    for metric in [VocMetric::Voc07, VocMetric::Voc12] {
        let start = Instant::now();
        let report = ev.evaluate(metric, 0.5);
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"metric\": \"{}\", \"images\": {images}, \"ground_truth\": {boxes}, \"detections\": {detections}, \"add_seconds\": {added:.3}, \"evaluate_seconds\": {seconds:.4}, \"threads\": {}, \"map\": {:.4}}}",
            metric.name(),
            rayon::current_num_threads(),
            report.map.unwrap()
        );
        assert!(seconds < 1.0, "{seconds} s");
    }
}
