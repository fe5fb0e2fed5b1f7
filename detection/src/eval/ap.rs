//! Average precision from a ranked list of outcomes, by the VOC devkit's two rules.
//!
//! Both take the cumulative true and false positive counts down the ranking. Where nothing
//! has counted yet (the first detections all matched difficult boxes) precision is 0/0: the
//! devkit's MATLAB `max` skips NaN and GluonCV applies `nan_to_num`, and both amount to
//! reading it as 0, which is what is done here.

/// The 11 recall thresholds of VOC2007's metric, with the exact values the devkit's MATLAB
/// `0:0.1:1` produces: the colon operator fills the first half as `0 + k * 0.1` and the
/// second as `1 - (10 - k) * 0.1`. So recall exactly 0.6 or 0.7 (3 of 5, 7 of 10) reaches
/// its threshold here as in the devkit, whereas numpy's `np.arange(0, 1.1, 0.1)` (GluonCV,
/// py-faster-rcnn, detectron2) makes those thresholds 0.6000000000000001 and
/// 0.7000000000000001. Recall exactly 0.3 (3 of 10) stays below `0.30000000000000004` in all
/// of them.
pub fn voc07_recall_thresholds() -> [f64; 11] {
    std::array::from_fn(|k| {
        if k <= 5 {
            k as f64 * 0.1
        } else {
            1.0 - (10 - k) as f64 * 0.1
        }
    })
}

/// Precision and recall after each ranked detection: `tp[i]` and `fp[i]` are the counts
/// among the first `i + 1`, `positives` the number of boxes to find (at least 1).
pub fn precision_recall(tp: &[u32], fp: &[u32], positives: usize) -> (Vec<f64>, Vec<f64>) {
    let positives = positives as f64;
    let precision = tp
        .iter()
        .zip(fp)
        .map(|(&t, &f)| match t + f {
            0 => 0.0,
            n => t as f64 / n as f64,
        })
        .collect();
    let recall = tp.iter().map(|&t| t as f64 / positives).collect();
    (precision, recall)
}

/// VOC2007's 11-point AP: the mean, over the thresholds, of the best precision at recall at
/// or above each (0 where recall never gets there).
pub fn eleven_point(precision: &[f64], recall: &[f64]) -> f64 {
    voc07_recall_thresholds()
        .iter()
        .map(|&t| {
            recall
                .iter()
                .zip(precision)
                .filter(|(&r, _)| r >= t)
                .map(|(_, &p)| p)
                .fold(0.0, f64::max)
                / 11.0
        })
        .sum()
}

/// VOC2010+'s AP: the area under the precision envelope (precision made non-increasing from
/// the right), summed where recall changes, with recall 0 and 1 as the ends.
pub fn area(precision: &[f64], recall: &[f64]) -> f64 {
    let n = precision.len();
    // mrec = [0, recall.., 1], mpre = [0, precision.., 0] as in the devkit's VOCap.m.
    let mrec = |i: usize| match i {
        0 => 0.0,
        i if i == n + 1 => 1.0,
        i => recall[i - 1],
    };
    let mut envelope = Vec::with_capacity(n + 2);
    envelope.push(0.0);
    envelope.extend_from_slice(precision);
    envelope.push(0.0);
    for i in (0..n + 1).rev() {
        envelope[i] = envelope[i].max(envelope[i + 1]);
    }
    (1..n + 2)
        .filter(|&i| mrec(i) != mrec(i - 1))
        .map(|i| (mrec(i) - mrec(i - 1)) * envelope[i])
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_devkit_colon_values() {
        let t = voc07_recall_thresholds();
        assert_eq!(t[0], 0.0);
        assert_eq!(t[3], 0.30000000000000004);
        assert_eq!(t[5], 0.5);
        assert_eq!(t[6], 0.6);
        assert_eq!(t[7], 0.7);
        assert_eq!(t[10], 1.0);
        // 3 of 5 found reaches 0.6 (numpy's arange value 0.6000000000000001 would not).
        assert!(3.0 / 5.0 >= t[6]);
        assert!(3.0 / 10.0 < t[3]);
    }

    #[test]
    fn one_perfect_detection_gives_one() {
        let (p, r) = precision_recall(&[1], &[0], 1);
        // Eleven additions of 1/11, as the devkit sums them, round to just above 1.
        assert!((eleven_point(&p, &r) - 1.0).abs() < 1e-15);
        assert_eq!(area(&p, &r), 1.0);
    }

    #[test]
    fn a_leading_false_positive_halves_precision() {
        // FP then TP, one positive: precision [0, 0.5], recall [0, 1].
        let (p, r) = precision_recall(&[0, 1], &[1, 1], 1);
        assert_eq!(p, vec![0.0, 0.5]);
        assert_eq!(area(&p, &r), 0.5);
        assert!((eleven_point(&p, &r) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn nothing_found_is_zero() {
        let (p, r) = precision_recall(&[0, 0], &[1, 2], 3);
        assert_eq!(eleven_point(&p, &r), 0.0);
        assert_eq!(area(&p, &r), 0.0);
        assert_eq!(area(&[], &[]), 0.0);
        assert_eq!(eleven_point(&[], &[]), 0.0);
    }
}
