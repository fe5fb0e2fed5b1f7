//! Classification losses on soft targets: label smoothing (section 5.2), soft cross entropy
//! (what mixup's mixed targets need), and knowledge distillation (section 5.3). All computed
//! in f32 whatever the logits' type, as the paper does under fp16.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How label smoothing spreads `eps` over the classes (K of them).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingStyle {
    /// The paper's eq. 4: the true class gets `1 - eps`, every other `eps / (K - 1)`.
    Paper,
    /// GluonCV's code and PyTorch's `CrossEntropyLoss(label_smoothing)`: every class gets
    /// `eps / K` on top of `(1 - eps)` for the true one, i.e. true `1 - eps + eps / K`,
    /// others `eps / K`.
    Uniform,
}

/// Rejects a smoothing epsilon outside [0, 1).
pub fn validate_smoothing(eps: f64) -> Result<(), String> {
    if eps.is_finite() && (0.0..1.0).contains(&eps) {
        Ok(())
    } else {
        Err(format!(
            "label smoothing epsilon must be in [0, 1), not {eps}"
        ))
    }
}

/// Smoothed one-hot targets: f32, `N x num_classes`, on the labels' device. `labels` holds
/// N class indices (i64) in `0..num_classes`. With one class there is nothing to spread to
/// and every row is 1.
pub fn one_hot_targets(
    labels: &Tensor,
    num_classes: i64,
    eps: f64,
    style: SmoothingStyle,
) -> Tensor {
    let k = num_classes as f64;
    let (on, off) = match style {
        _ if num_classes <= 1 => (1.0, 0.0),
        SmoothingStyle::Paper => (1.0 - eps, eps / (k - 1.0)),
        SmoothingStyle::Uniform => (1.0 - eps + eps / k, eps / k),
    };
    let n = labels.size()[0];
    let mut targets = Tensor::full([n, num_classes], off, (Kind::Float, labels.device()));
    let _ = targets.scatter_value_(1, &labels.to_kind(Kind::Int64).view([n, 1]), on);
    targets
}

/// Mean over the batch of `-sum_k t_k * log_softmax(logits)_k`, in f32. `logits` and
/// `targets` are `N x K`.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    let log_p = logits.log_softmax(-1, Kind::Float);
    -(log_p * targets.to_kind(Kind::Float))
        .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
        .mean(Kind::Float)
}

/// Knowledge distillation as the paper and GluonCV write it, in f32:
///
/// ```text
/// loss = (1 - w) * T^2 * CE(student / T, softmax(teacher / T)) + w * CE(student, targets)
/// ```
///
/// `w` is `hard_weight`, `T` the temperature; `targets` are the (smoothed, mixed) soft
/// targets. No gradient flows into the teacher. The `T^2` keeps the soft term's gradient
/// on the scale of the hard one's (Hinton et al.).
pub fn distillation_loss(
    student: &Tensor,
    teacher: &Tensor,
    targets: &Tensor,
    temperature: f64,
    hard_weight: f64,
) -> Tensor {
    let student = student.to_kind(Kind::Float);
    let teacher_p = (teacher.detach().to_kind(Kind::Float) / temperature).softmax(-1, Kind::Float);
    let soft = soft_cross_entropy(&(&student / temperature), &teacher_p);
    let hard = soft_cross_entropy(&student, targets);
    soft * ((1.0 - hard_weight) * temperature * temperature) + hard * hard_weight
}

/// Rejects a temperature that is not > 0 or a hard weight outside [0, 1].
pub fn validate_distillation(temperature: f64, hard_weight: f64) -> Result<(), String> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(format!(
            "distillation temperature must be a number > 0, not {temperature}"
        ));
    }
    if !(hard_weight.is_finite() && (0.0..=1.0).contains(&hard_weight)) {
        return Err(format!(
            "distillation hard weight must be in [0, 1], not {hard_weight}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        Vec::<Vec<f32>>::try_from(t).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn smoothed_rows_for_four_classes() {
        let labels = Tensor::from_slice(&[2i64, 0]);
        let paper = one_hot_targets(&labels, 4, 0.1, SmoothingStyle::Paper);
        assert_eq!(paper.kind(), Kind::Float);
        let third = (0.1f64 / 3.0) as f32;
        assert_eq!(
            rows(&paper),
            vec![
                vec![third, third, 0.9, third],
                vec![0.9, third, third, third]
            ]
        );
        let uniform = one_hot_targets(&labels, 4, 0.1, SmoothingStyle::Uniform);
        assert_eq!(
            rows(&uniform),
            vec![
                vec![0.025, 0.025, 0.925, 0.025],
                vec![0.925, 0.025, 0.025, 0.025]
            ]
        );
        for t in [paper, uniform] {
            let sums =
                Vec::<f32>::try_from(t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float))
                    .unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
        }
        let plain = one_hot_targets(&labels, 4, 0.0, SmoothingStyle::Paper);
        assert_eq!(rows(&plain)[0], vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn soft_cross_entropy_by_hand() {
        // Row 1: logits (0, ln 2, ln 3) softmax = (1, 2, 3) / 6, target (1, 0, 0):
        //   -ln(1/6) = ln 6.
        // Row 2: logits (0, 0, 0), target (0.5, 0.5, 0): -ln(1/3) = ln 3.
        // Mean: (ln 6 + ln 3) / 2 = ln(18) / 2.
        let logits =
            Tensor::from_slice(&[0.0f32, 2f32.ln(), 3f32.ln(), 0.0, 0.0, 0.0]).view([2, 3]);
        let targets = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.5, 0.5, 0.0]).view([2, 3]);
        let loss = soft_cross_entropy(&logits, &targets);
        assert_eq!(loss.size(), Vec::<i64>::new());
        assert!((scalar(&loss) - 18f64.ln() / 2.0).abs() < 1e-6);
    }

    #[test]
    fn uniform_smoothing_equals_pytorch_label_smoothing() {
        tch::manual_seed(0);
        let logits = Tensor::randn([8, 5], (Kind::Float, Device::Cpu)) * 3.0;
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 4, 2, 0]);
        let ours = soft_cross_entropy(
            &logits,
            &one_hot_targets(&labels, 5, 0.1, SmoothingStyle::Uniform),
        );
        let torch =
            logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.1);
        assert!((scalar(&ours) - scalar(&torch)).abs() < 1e-5);
    }

    #[test]
    fn half_logits_are_computed_in_f32() {
        let logits = Tensor::from_slice(&[0.0f32, 2f32.ln(), 3f32.ln()])
            .view([1, 3])
            .to_kind(Kind::Half);
        let targets = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([1, 3]);
        let loss = soft_cross_entropy(&logits, &targets);
        assert_eq!(loss.kind(), Kind::Float);
        assert!((scalar(&loss) - 6f64.ln()).abs() < 1e-3);
    }

    #[test]
    fn distillation_at_t1_w0_is_cross_entropy_against_the_teacher() {
        tch::manual_seed(1);
        let student = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
        let teacher = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
        let targets = one_hot_targets(
            &Tensor::from_slice(&[0i64, 1, 2, 3]),
            6,
            0.0,
            SmoothingStyle::Paper,
        );
        let kd = distillation_loss(&student, &teacher, &targets, 1.0, 0.0);
        let want = soft_cross_entropy(&student, &teacher.softmax(-1, Kind::Float));
        assert!((scalar(&kd) - scalar(&want)).abs() < 1e-6);
        // w = 1 is the hard loss alone.
        let hard = distillation_loss(&student, &teacher, &targets, 20.0, 1.0);
        assert!((scalar(&hard) - scalar(&soft_cross_entropy(&student, &targets))).abs() < 1e-6);
    }

    #[test]
    fn distillation_formula_with_temperature() {
        // Student (0, 0), teacher (0, 20 ln 3) at T = 20: p = softmax(0, ln 3) = (1/4, 3/4);
        // the student / T is uniform, so the soft CE is ln 2 and the soft term
        // (1 - 0.5) * 400 * ln 2. Hard target (1, 0): CE = ln 2, weighted 0.5.
        let student = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        let teacher = Tensor::from_slice(&[0.0f32, 20.0 * 3f32.ln()]).view([1, 2]);
        let targets = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let kd = distillation_loss(&student, &teacher, &targets, 20.0, 0.5);
        let want = 0.5 * 400.0 * 2f64.ln() + 0.5 * 2f64.ln();
        assert!((scalar(&kd) - want).abs() < 1e-3, "{} {want}", scalar(&kd));
    }

    #[test]
    fn gradient_flows_only_to_the_student() {
        let student = Tensor::randn([3, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let teacher = Tensor::randn([3, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let targets = one_hot_targets(
            &Tensor::from_slice(&[0i64, 1, 2]),
            4,
            0.1,
            SmoothingStyle::Uniform,
        );
        distillation_loss(&student, &teacher, &targets, 20.0, 0.5).backward();
        assert!(student.grad().defined());
        assert!(scalar(&student.grad().abs().sum(Kind::Float)) > 0.0);
        assert!(!teacher.grad().defined());
    }

    #[test]
    fn validation() {
        assert!(validate_smoothing(0.1).is_ok());
        assert!(validate_smoothing(1.0).unwrap_err().contains("[0, 1)"));
        assert!(validate_smoothing(-0.1).is_err());
        assert!(validate_distillation(20.0, 0.5).is_ok());
        assert!(validate_distillation(0.0, 0.5)
            .unwrap_err()
            .contains("temperature"));
        assert!(validate_distillation(20.0, 1.5)
            .unwrap_err()
            .contains("hard weight"));
        let style: SmoothingStyle = serde_json::from_str("\"uniform\"").unwrap();
        assert_eq!(style, SmoothingStyle::Uniform);
        assert!(serde_json::from_str::<SmoothingStyle>("\"gluon\"").is_err());
    }
}
