use detection::ops::matcher::Matcher;
use detection::ops::sampler::{random_keys, splitmix64, BalancedSampler};
use tch::{Device, Kind, Tensor};

use crate::support::{assert_same_ints, fixture, Get};

#[test]
fn matcher_matches_torchvision_including_ties_and_thresholds() {
    let f = fixture("matching");
    for (name, matcher) in [
        ("rpn", Matcher::new(0.7, 0.3, true)),
        ("rpn_strict", Matcher::new(0.7, 0.3, false)),
        ("head", Matcher::new(0.5, 0.5, false)),
    ] {
        assert_same_ints(
            &matcher.assign(f.t("iou")),
            f.t(&format!("match_{name}")),
            name,
        );
    }
    assert_same_ints(
        &Matcher::new(0.7, 0.3, true).assign(f.t("iou_one")),
        f.t("match_one_rpn"),
        "two ground truths",
    );
}

#[test]
fn an_image_without_objects_matches_everything_to_background() {
    let matches =
        Matcher::new(0.7, 0.3, true).assign(&Tensor::zeros([0, 9], (Kind::Float, Device::Cpu)));
    assert_eq!(Vec::<i64>::try_from(&matches).unwrap(), vec![-1; 9]);
}

/// Labels: `n_pos` positives carrying class labels 1, 2, 3, 1, ..., then negatives (0), then
/// ignored (-1).
fn labels(n_pos: i64, n_neg: i64, n_ignored: i64) -> Tensor {
    let classes = (0..n_pos).map(|i| 1 + i % 3);
    let rest = [(0, n_neg), (-1, n_ignored)]
        .into_iter()
        .flat_map(|(v, n)| std::iter::repeat_n(v, n as usize));
    Tensor::from_slice(&classes.chain(rest).collect::<Vec<i64>>())
}

#[test]
fn sampler_counts_match_torchvision() {
    let f = fixture("matching");
    let rows = Vec::<i64>::try_from(&f.t("sampler_counts").view([-1])).unwrap();
    for row in rows.chunks(5) {
        let (per_image, fraction, n_pos, want_pos, want_neg) =
            (row[0], row[1] as f64 / 100.0, row[2], row[3], row[4]);
        let l = labels(n_pos, 300, 600 - 300 - n_pos);
        let sampler = BalancedSampler::new(per_image, fraction);
        let (pos, neg) = sampler.sample(&l, &random_keys(600, 99, Device::Cpu));
        assert_eq!(
            (pos.size()[0], neg.size()[0]),
            (want_pos, want_neg),
            "{row:?}"
        );
        assert!(
            bool::try_from(l.index_select(0, &pos).ge(1).all()).unwrap(),
            "positives are positive"
        );
        assert!(
            bool::try_from(l.index_select(0, &neg).eq(0).all()).unwrap(),
            "negatives are negative"
        );
    }
}

#[test]
fn sampler_takes_the_largest_keys_and_is_reproducible_from_its_seed() {
    let l = labels(50, 200, 50);
    let sampler = BalancedSampler::new(64, 0.25);
    let keys = random_keys(300, 5, Device::Cpu);
    let (pos, neg) = sampler.sample(&l, &keys);
    // The 16 positives sampled are the 16 positives with the largest keys.
    let (_, best) = keys.narrow(0, 0, 50).topk(16, 0, true, true);
    assert_same_ints(&pos, &best.sort(0, false).0, "positives by key");
    assert_eq!(neg.size(), [48]);
    let (pos_again, neg_again) = sampler.sample(&l, &random_keys(300, 5, Device::Cpu));
    assert!(
        pos.equal(&pos_again) && neg.equal(&neg_again),
        "same seed, same sample"
    );
    let (pos_other, _) = sampler.sample(&l, &random_keys(300, 6, Device::Cpu));
    assert!(!pos.equal(&pos_other), "another seed, another sample");
}

#[test]
fn device_keys_are_splitmix64() {
    let keys = Vec::<i64>::try_from(&random_keys(4, u64::MAX - 1, Device::Cpu)).unwrap();
    let expected: Vec<i64> = (0..4u64)
        .map(|i| (splitmix64((u64::MAX - 1).wrapping_add(i)) >> 1) as i64)
        .collect();
    assert_eq!(keys, expected);
}
