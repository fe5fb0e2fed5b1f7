//! `backbone bench` times the training step of every classifier family, in both memory
//! formats the recipes train in.

use e2e::{json, run_ok};

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
