use detection::ops::poolers::MultiScaleRoIAlign;
use detection::ops::roi_align::roi_align;
use tch::{Kind, Tensor};

use crate::support::{assert_close, fixture, Get};

/// Output and the gradient of `sum(output * weight)` with respect to `input`.
fn forward_backward(
    input: &Tensor,
    weight: &Tensor,
    run: impl Fn(&Tensor) -> Tensor,
) -> (Tensor, Tensor) {
    let x = input.detach().set_requires_grad(true);
    let y = run(&x);
    (&y * weight).sum(Kind::Float).backward();
    (y.detach(), x.grad())
}

#[test]
fn roi_align_forward_and_backward_match_torchvision() {
    let f = fixture("roi_align");
    let cases = Vec::<i64>::try_from(&f.t("cases").view([-1])).unwrap();
    assert_eq!(cases.len(), 12 * 5);
    for case in cases.chunks(5) {
        let (aligned, sampling_ratio, ph, pw, scale) = (
            case[0] == 1,
            case[1],
            case[2],
            case[3],
            case[4] as f64 / 100.0,
        );
        let name = format!("a{}_s{sampling_ratio}_{ph}x{pw}", case[0]);
        let (out, grad) = forward_backward(f.t("feature"), f.t(&format!("{name}_weight")), |x| {
            roi_align(x, f.t("rois"), (ph, pw), scale, sampling_ratio, aligned)
        });
        assert_close(
            &out,
            f.t(&format!("{name}_out")),
            1e-5,
            1e-5,
            &format!("{name} forward"),
        );
        assert_close(
            &grad,
            f.t(&format!("{name}_grad")),
            1e-5,
            1e-5,
            &format!("{name} backward"),
        );
    }
}

#[test]
fn roi_align_of_no_rois_is_empty() {
    let f = fixture("roi_align");
    let out = roi_align(
        f.t("feature"),
        &Tensor::zeros([0, 5], (Kind::Float, tch::Device::Cpu)),
        (7, 7),
        1.0,
        2,
        false,
    );
    assert_eq!(out.size(), [0, 3, 7, 7]);
}

#[test]
fn multi_scale_pooler_matches_torchvision_forward_and_backward() {
    let f = fixture("roi_align");
    let pooler = MultiScaleRoIAlign::new((7, 7), 2);
    let levels: Vec<Tensor> = (2..6)
        .map(|k| f.t(&format!("pool_p{k}")).detach().set_requires_grad(true))
        .collect();
    let boxes = [
        f.t("pool_boxes0").shallow_clone(),
        f.t("pool_boxes1").shallow_clone(),
    ];
    let pooled = pooler.forward(&levels, &boxes, (64, 80));
    assert_close(&pooled, f.t("pool_out"), 1e-5, 1e-5, "pooled features");
    (&pooled * f.t("pool_weight")).sum(Kind::Float).backward();
    for (k, level) in (2..6).zip(&levels) {
        assert_close(
            &level.grad(),
            f.t(&format!("pool_p{k}_grad")),
            1e-5,
            1e-5,
            &format!("gradient of P{k}"),
        );
    }
    // The boxes were chosen to use every level.
    let all = Tensor::cat(&boxes, 0);
    let used = pooler.levels(&all, 2, 5).bincount::<Tensor>(None, 4);
    assert!(
        bool::try_from(used.gt(0).all()).unwrap(),
        "levels used: {used}"
    );
}

#[test]
fn roi_align_reads_a_channels_last_map_the_same() {
    let f = fixture("roi_align");
    let weight = f.t("a0_s2_7x7_weight");
    let run = |x: &Tensor| roi_align(x, f.t("rois"), (7, 7), 0.5, 2, false);
    let (out, grad) = forward_backward(f.t("feature"), weight, run);
    // NHWC strides with NCHW sizes, as `engine::channels_last` lays out a model's maps.
    let channels_last = f
        .t("feature")
        .permute([0, 2, 3, 1])
        .contiguous()
        .permute([0, 3, 1, 2]);
    let (out_cl, grad_cl) = forward_backward(&channels_last, weight, run);
    assert_close(&out_cl, &out, 1e-6, 1e-6, "channels-last forward");
    assert_close(&grad_cl, &grad, 1e-6, 1e-6, "channels-last backward");
}
