//! `backbone bench` times the training step of every classifier family, in both memory
//! formats the recipes train in.

use e2e::{json, run_err, run_ok};

#[test]
fn mobilenet_v1_steps_in_nchw_and_channels_last() {
    for layout in [None, Some("--channels-last")] {
        let mut args = vec![
            "bench",
            "--arch",
            "mobilenet_v1",
            "--num-classes",
            "10",
            "--batch",
            "2",
            "--input-size",
            "32",
            "--warmup",
            "1",
            "--iters",
            "1",
            "--threads",
            "1",
            "--json",
        ];
        args.extend(layout);
        let report = json(&run_ok(e2e::bin!("backbone"), &args));
        assert_eq!(report["arch"], "mobilenet_v1");
        assert_eq!(report["channels_last"], layout.is_some());
        let rate = report["images_per_s"].as_f64().unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{report}");
    }
}

#[test]
fn inception_v3_steps_at_its_smallest_input_and_refuses_a_smaller_one() {
    let args = |side: &'static str| {
        vec![
            "bench",
            "--arch",
            "inception_v3",
            "--num-classes",
            "10",
            "--batch",
            "2",
            "--input-size",
            side,
            "--warmup",
            "1",
            "--iters",
            "1",
            "--threads",
            "1",
            "--json",
        ]
    };
    let report = json(&run_ok(e2e::bin!("backbone"), &args("75")));
    assert_eq!(report["arch"], "inception_v3");
    assert_eq!(report["input_size"], 75);
    let rate = report["images_per_s"].as_f64().unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{report}");
    let err = run_err(e2e::bin!("backbone"), &args("64"), 2);
    assert!(
        err.contains("inception_v3 needs inputs of at least 75x75"),
        "{err}"
    );
}
