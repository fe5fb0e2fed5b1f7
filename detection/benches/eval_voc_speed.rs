//! The VOC evaluator at the size of VOC2007 test: 4,952 images, 20 classes, ~15k boxes,
//! ~149k detections, timed in the optimised bench profile (exits 1 when scoring takes a
//! second or more):
//!
//!     cargo bench -p detection --bench eval_voc_speed
//!
//! The Python peer, GluonCV's VOC07MApMetric algorithm in numpy on data of the same sizes:
//!
//!     python detection/tests/golden/voc_eval_golden.py --bench

use datasets::rng::{splitmix64, SPLITMIX_GAMMA};
use detection::metrics::voc::{Detection, GroundTruth, VocEvaluator, VocMetric};
use std::time::Instant;

/// SplitMix64 as a stream: the hash of a counter that steps by its gamma.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        let z = splitmix64(self.0);
        self.0 = self.0.wrapping_add(SPLITMIX_GAMMA);
        z
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

/// Scoring VOC07 test's size must take well under this.
const EVALUATE_BUDGET_SECONDS: f64 = 1.0;

fn main() {
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
        if seconds >= EVALUATE_BUDGET_SECONDS {
            eprintln!(
                "{} took {seconds:.3} s, over its {EVALUATE_BUDGET_SECONDS} s budget",
                metric.name()
            );
            std::process::exit(1);
        }
    }
}
