//! `segment eval --multi-scale` against GluonCV's `MultiEvalModel` as transcribed in torch by
//! tests/fixtures/pytorch/make_fcn_multiscale_golden.py, around torchvision's fcn_resnet50 with
//! the formula weights of tests/src/formula.rs (the model of torchvision_golden.rs) upsampling
//! with corners aligned, as GluonCV's FCN: on two small images (one landscape, one portrait) at
//! base 64 / crop 48 and scales 0.5..1.75, so that single windows, padded windows and
//! overlapping windows all occur, the per-pixel classes are the transcription's.

use e2e::{fixture, formula};
use segmentation::evaluate::{multi_scale_scores, MultiScale};
use segmentation::import::{import_torchvision, TorchvisionFcn};
use segmentation::Segmenter;
use std::path::Path;
use tch::Device;

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// torchvision's fcn_resnet50 with the formula weights, imported, its checkpoint saying that
/// it upsamples with corners aligned (as a model trained with the ADE20K recipe does).
fn aligned_model(dir: &Path) -> Segmenter {
    let state_dict = dir.join("fcn_resnet50.safetensors");
    formula::write_state_dict(&json("pytorch/fcn_resnet50_keys.json"), &state_dict);
    let mut ckpt = import_torchvision(&state_dict, TorchvisionFcn::FcnResnet50, None).unwrap();
    assert_eq!(
        ckpt.metadata.model["align_corners"], false,
        "imports upsample as torchvision"
    );
    ckpt.metadata.model["align_corners"] = true.into();
    let out = dir.join("fcn.safetensors");
    ckpt.write(&out).unwrap();
    let model = Segmenter::from_checkpoint(&out, Device::Cpu).unwrap();
    assert!(model.model.config.align_corners);
    model
}

fn pairs(v: &serde_json::Value) -> Vec<(usize, usize)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

#[test]
fn multi_scale_masks_are_gluoncvs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = aligned_model(tmp.path());
    let golden = json("pytorch/fcn_multiscale_golden.json");
    let ms = MultiScale {
        base_size: golden["base_size"].as_u64().unwrap() as usize,
        crop_size: golden["crop_size"].as_u64().unwrap() as usize,
        scales: golden["scales"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect(),
        flip: true,
    };
    for case in golden["images"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let image = image::open(fixture(&format!("pytorch/{name}")))
            .unwrap()
            .to_rgb8();
        let (w, h) = (image.width() as usize, image.height() as usize);
        let scores = multi_scale_scores(&model, image.as_raw(), w, h, &ms);
        assert_eq!(scores.size(), [1, 5, h as i64, w as i64]);

        // The mask, every pixel but near-ties.
        let expected = image::open(fixture(&format!(
            "pytorch/{}",
            case["mask"].as_str().unwrap()
        )))
        .unwrap()
        .to_luma8();
        let ties = pairs(&case["ties"]);
        let ours = Vec::<i64>::try_from(scores.argmax(1, false).flatten(0, -1)).unwrap();
        let differ: Vec<(usize, usize)> = ours
            .iter()
            .enumerate()
            .filter(|&(i, &c)| c != expected.as_raw()[i] as i64 && !ties.contains(&(i / w, i % w)))
            .map(|(i, _)| (i / w, i % w))
            .collect();
        assert!(
            differ.is_empty(),
            "{name}: {} of {} pixels differ from GluonCV's, e.g. {:?}",
            differ.len(),
            ours.len(),
            &differ[..differ.len().min(5)]
        );

        // The sums themselves, at a grid of pixels (float rounding through exp: 1e-3).
        let pixels = pairs(&case["pixels"]);
        for (i, &(y, x)) in pixels.iter().enumerate() {
            for (k, expected) in case["scores"][i].as_array().unwrap().iter().enumerate() {
                let expected = expected.as_f64().unwrap();
                let got = scores.double_value(&[0, k as i64, y as i64, x as i64]);
                assert!(
                    (got - expected).abs() <= 1e-3 * expected.abs().max(1e-3),
                    "{name} class {k} at ({y}, {x}): {got} vs {expected}"
                );
            }
        }
    }
}
