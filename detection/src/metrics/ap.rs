//! Average precision from a ranked list of outcomes, by the VOC devkit's two rules, and the
//! variant of the 11-point rule that GluonCV's `VOC07MApMetric` computes.
//!
//! All take the cumulative true and false positive counts down the ranking. Where nothing
//! has counted yet (the first detections all matched difficult boxes) precision is 0/0:
//! GluonCV applies `nan_to_num` and the devkit's MATLAB `max` skips NaN, and both amount to
//! reading it as 0, which is what is done here. (One corner differs: where *every* ranked
//! detection matched a difficult box, MATLAB's `max` of nothing but NaN is NaN, so the
//! devkit's 11-point AP of that class is NaN; here, as in GluonCV, it is 0.)

/// The 11 recall thresholds of VOC2007's metric, with the exact values the devkit's MATLAB
/// `0:0.1:1` produces: the colon operator fills the first half as `0 + k * 0.1` and the
/// second as `1 - (10 - k) * 0.1`. So recall exactly 0.6 or 0.7 (3 of 5, 7 of 10) reaches
/// its threshold here as in the devkit, whereas numpy's `np.arange(0, 1.1, 0.1)` (GluonCV,
/// py-faster-rcnn, detectron2) makes those thresholds 0.6000000000000001 and
/// 0.7000000000000001 (see [`numpy_recall_thresholds`]). Recall exactly 0.3 (3 of 10) stays
/// below `0.30000000000000004` in all of them.
pub fn voc07_recall_thresholds() -> [f64; 11] {
    std::array::from_fn(|k| {
        if k <= 5 {
            k as f64 * 0.1
        } else {
            1.0 - (10 - k) as f64 * 0.1
        }
    })
}

/// The thresholds of GluonCV's `VOC07MApMetric`: `np.arange(0., 1.1, 0.1)`, which numpy
/// fills as `start + k * (next - start)`, i.e. `k * 0.1`, giving 0.30000000000000004,
/// 0.6000000000000001 and 0.7000000000000001 where MATLAB gives 0.30000000000000004, 0.6 and
/// 0.7.
pub fn numpy_recall_thresholds() -> [f64; 11] {
    std::array::from_fn(|k| k as f64 * 0.1)
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

/// VOC2007's 11-point AP at `thresholds` (the devkit's [`voc07_recall_thresholds`] or
/// GluonCV's [`numpy_recall_thresholds`]): the best precision at recall at or above each
/// (0 where recall never gets there), each divided by 11 and added up in threshold order,
/// as both the devkit and GluonCV accumulate it.
pub fn eleven_point(thresholds: &[f64; 11], precision: &[f64], recall: &[f64]) -> f64 {
    thresholds
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
        .fold(0.0, |sum, p| sum + p)
}

/// `np.sum` of a 1-D float64 array, bit for bit: numpy's pairwise summation (blocks of at
/// most 128 summed with eight interleaved accumulators, the rest added one by one; longer
/// arrays split in two halves rounded to multiples of 8). GluonCV's mAP is `np.nanmean` of
/// the class APs, that is this sum (NaN read as 0) over the number of non-NaN entries; a
/// plain left-to-right sum differs from it in the last bits.
pub fn numpy_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |sum, v| sum + v)
    } else if n <= 128 {
        let mut r: [f64; 8] = std::array::from_fn(|j| values[j]);
        let whole = n - n % 8;
        for block in values[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(block) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[whole..].iter().fold(head, |sum, v| sum + v)
    } else {
        let half = n / 2 - (n / 2) % 8;
        numpy_sum(&values[..half]) + numpy_sum(&values[half..])
    }
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
    fn numpy_thresholds_are_arange_values() {
        let t = numpy_recall_thresholds();
        assert_eq!(t[3], 0.30000000000000004);
        assert_eq!(t[6], 0.6000000000000001);
        assert_eq!(t[7], 0.7000000000000001);
        assert_eq!(t[10], 1.0);
        // 3 of 5 found does not reach GluonCV's 0.6 threshold: the point drops to the best
        // precision at higher recall.
        assert!(3.0 / 5.0 < t[6]);
    }

    #[test]
    fn recall_of_exactly_six_tenths_scores_differently_under_the_two_point_sets() {
        // 5 positives; hits at ranks 1, 2, 3 (precision 1), a miss, then a hit at rank 5
        // (recall 0.8, precision 0.8). At t = 0.6 the devkit takes precision 1 (recall 3/5
        // reaches 0.6), GluonCV only 0.8 (3/5 < 0.6000000000000001).
        let (p, r) = precision_recall(&[1, 2, 3, 3, 4], &[0, 0, 0, 1, 1], 5);
        let devkit = eleven_point(&voc07_recall_thresholds(), &p, &r);
        let gluoncv = eleven_point(&numpy_recall_thresholds(), &p, &r);
        assert!(
            (devkit - gluoncv - 0.2 / 11.0).abs() < 1e-15,
            "{devkit} {gluoncv}"
        );
    }

    #[test]
    fn numpy_sum_is_pairwise() {
        // Values from np.sum (numpy 2.4): the pairwise sum of these 20 differs from the
        // left-to-right sum in its last bit.
        let v = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|k| 0.1 * k as f64 + 1.0 / (k as f64 + 3.0))
                .collect()
        };
        let sequential = v(20).iter().fold(0.0, |s, x| s + x);
        assert_eq!(numpy_sum(&v(20)), 21.190813250217275);
        assert_eq!(sequential, 21.19081325021728);
        // Over 128 values numpy splits the array in two (64 + 65 here).
        assert_eq!(numpy_sum(&v(129)), 829.5562249260524);
        assert_eq!(numpy_sum(&[]), 0.0);
        assert_eq!(numpy_sum(&[0.5, 0.25]), 0.75);
    }

    #[test]
    fn one_perfect_detection_gives_one() {
        let (p, r) = precision_recall(&[1], &[0], 1);
        // Eleven additions of 1/11, as the devkit sums them, round to just above 1.
        assert!((eleven_point(&voc07_recall_thresholds(), &p, &r) - 1.0).abs() < 1e-15);
        assert_eq!(area(&p, &r), 1.0);
    }

    #[test]
    fn a_leading_false_positive_halves_precision() {
        // FP then TP, one positive: precision [0, 0.5], recall [0, 1].
        let (p, r) = precision_recall(&[0, 1], &[1, 1], 1);
        assert_eq!(p, vec![0.0, 0.5]);
        assert_eq!(area(&p, &r), 0.5);
        assert!((eleven_point(&voc07_recall_thresholds(), &p, &r) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn nothing_found_is_zero() {
        let (p, r) = precision_recall(&[0, 0], &[1, 2], 3);
        assert_eq!(eleven_point(&voc07_recall_thresholds(), &p, &r), 0.0);
        assert_eq!(area(&p, &r), 0.0);
        assert_eq!(area(&[], &[]), 0.0);
        assert_eq!(eleven_point(&voc07_recall_thresholds(), &[], &[]), 0.0);
    }
}
