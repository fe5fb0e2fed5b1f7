//! What a detection recipe says about its evaluation metric and gradient clipping, read as
//! `detect finetune` reads it (the file plus `--set` overrides, then `validate`).

use detection::metrics::voc::VocMetric;
use detection::train::config::{FinetuneConfig, ValMetric};
use engine::command::Recipe;
use engine::config_file::load;
use std::path::Path;

fn voc_c4(sets: &[&str]) -> Result<FinetuneConfig, String> {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/detection/voc-c4.toml"
    ));
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config: FinetuneConfig = load(path, &sets).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

#[test]
fn the_paper_recipe_scores_as_gluoncv_and_clips_at_five() {
    let config = voc_c4(&[]).unwrap();
    assert_eq!(
        config.val_metric(),
        Ok(ValMetric::Voc(VocMetric::Voc07Gluoncv))
    );
    assert_eq!(config.optim.clip_value, Some(5.0));
    assert_eq!(config.engine().optim.sgd().clip_value, Some(5.0));
    let devkit = voc_c4(&["eval.metric=voc07"]).unwrap();
    assert_eq!(devkit.val_metric(), Ok(ValMetric::Voc(VocMetric::Voc07)));
    assert_eq!(
        voc_c4(&["eval.metric=voc12"]).unwrap().val_metric(),
        Ok(ValMetric::Voc(VocMetric::Voc12))
    );
}

#[test]
fn an_unknown_metric_names_the_key_and_the_metrics_there_are() {
    let err = voc_c4(&["eval.metric=voc2007"]).unwrap_err();
    assert_eq!(
        err,
        "eval.metric must be one of voc07, voc07-gluoncv, voc12, coco, not \"voc2007\""
    );
}

/// `coco` scores COCO validation data only (it used to be accepted and then scored as
/// VOC07 on any data); unset, the metric follows the validation data as `detect eval`'s
/// default does.
#[test]
fn coco_scores_coco_validation_data_only_and_is_its_default() {
    let err = voc_c4(&["eval.metric=coco"]).unwrap_err();
    assert!(
        err.starts_with("eval.metric = \"coco\" needs COCO validation data"),
        "{err}"
    );
    assert!(err.contains("--val-data"), "{err}");
    let coco = |sets: &[&str]| {
        let mut all = vec![
            "data.spec=\"coco:train.json\"",
            "data.val_spec=\"coco:val.json\"",
        ];
        all.extend_from_slice(sets);
        voc_c4(&all).unwrap()
    };
    assert_eq!(
        coco(&["eval.metric=coco"]).val_metric(),
        Ok(ValMetric::Coco)
    );
    let mut unset = coco(&[]);
    unset.eval.metric = None;
    assert_eq!(unset.val_metric(), Ok(ValMetric::Coco));
    assert_eq!(
        coco(&["eval.metric=voc12"]).val_metric(),
        Ok(ValMetric::Voc(VocMetric::Voc12))
    );
    let mut voc = voc_c4(&[]).unwrap();
    voc.eval.metric = None;
    assert_eq!(voc.val_metric(), Ok(ValMetric::Voc(VocMetric::Voc07)));
}

#[test]
fn clip_value_must_be_a_finite_positive_number() {
    for bad in ["0", "-5.0", "inf", "nan"] {
        let err = voc_c4(&[&format!("optim.clip_value={bad}")]).unwrap_err();
        assert!(
            err.starts_with("optim: clip_value must be a finite number above 0"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        voc_c4(&["optim.clip_value=0.5"]).unwrap().optim.clip_value,
        Some(0.5)
    );
}
