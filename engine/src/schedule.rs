//! The learning rate at every iteration: linear warmup (section 3.1, "learning rate warmup"),
//! then a decay (cosine, section 5.1; steps, the baseline; poly, for segmentation).
//!
//! With `W` warmup iterations, `N` iterations in all, `T = N - W` and `t = iter - W`:
//!
//! ```text
//! warmup (iter < W):  lr = base * iter / W                          (GluonCV: from 0)
//! cosine:             lr = floor + (base - floor) * (1 + cos(pi * t / T)) / 2
//! step:               lr = base * factor^k,  k = number of boundaries e with iter >= e * iters_per_epoch
//! poly:               lr = base * (1 - t / T)^power
//! constant:           lr = base
//! ```
//!
//! Past the last iteration the decays stay at their end value.

use serde::{Deserialize, Serialize};

/// How the learning rate falls after warmup.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Decay {
    /// Half a cosine from `base` down to `floor` (the paper: floor 0).
    Cosine {
        #[serde(default)]
        floor: f64,
    },
    /// Multiply by `factor` at each of `epochs` (fractional epochs allowed).
    Step {
        epochs: Vec<f64>,
        factor: f64,
    },
    /// `(1 - t/T)^power` (FCN: power 0.9).
    Poly {
        power: f64,
    },
    Constant,
}

impl Decay {
    /// Rejects decays that would make no sense, with a sentence saying why.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Decay::Cosine { floor } if !(floor.is_finite() && *floor >= 0.0) => {
                Err(format!("cosine floor must be a number >= 0, not {floor}"))
            }
            Decay::Step { epochs, factor } => {
                if !(factor.is_finite() && *factor > 0.0) {
                    return Err(format!("step factor must be a number > 0, not {factor}"));
                }
                if let Some(e) = epochs.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
                    return Err(format!("step epochs must be numbers >= 0, not {e}"));
                }
                if epochs.windows(2).any(|w| w[0] > w[1]) {
                    return Err(format!(
                        "step epochs must be in increasing order, not {epochs:?}"
                    ));
                }
                Ok(())
            }
            Decay::Poly { power } if !(power.is_finite() && *power > 0.0) => {
                Err(format!("poly power must be a number > 0, not {power}"))
            }
            _ => Ok(()),
        }
    }
}

/// The learning rate as a function of the global iteration (counted from 0).
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    base_lr: f64,
    warmup_iters: u64,
    total_iters: u64,
    decay: Decay,
    /// Step boundaries in iterations.
    step_iters: Vec<u64>,
}

/// `epochs * iters_per_epoch`, rounded to the nearest iteration.
fn to_iters(epochs: f64, iters_per_epoch: u64) -> u64 {
    (epochs * iters_per_epoch as f64).round().max(0.0) as u64
}

impl LrSchedule {
    /// `base_lr` already scaled (see [`linear_scaled_lr`]); `warmup_epochs` and `epochs` may
    /// be fractional and are rounded to whole iterations. Warmup longer than training is cut
    /// to the training length. Check user input first with [`LrSchedule::validate`].
    pub fn new(
        base_lr: f64,
        warmup_epochs: f64,
        decay: Decay,
        epochs: f64,
        iters_per_epoch: u64,
    ) -> Self {
        let total_iters = to_iters(epochs, iters_per_epoch);
        let warmup_iters = to_iters(warmup_epochs, iters_per_epoch).min(total_iters);
        let step_iters = match &decay {
            Decay::Step { epochs, .. } => epochs
                .iter()
                .map(|e| to_iters(*e, iters_per_epoch))
                .collect(),
            _ => Vec::new(),
        };
        LrSchedule {
            base_lr,
            warmup_iters,
            total_iters,
            decay,
            step_iters,
        }
    }

    /// Checks the numbers a config gives [`LrSchedule::new`].
    pub fn validate(
        base_lr: f64,
        warmup_epochs: f64,
        decay: &Decay,
        epochs: f64,
    ) -> Result<(), String> {
        if !(base_lr.is_finite() && base_lr > 0.0) {
            return Err(format!("learning rate must be a number > 0, not {base_lr}"));
        }
        if !(epochs.is_finite() && epochs > 0.0) {
            return Err(format!("epochs must be a number > 0, not {epochs}"));
        }
        if !(warmup_epochs.is_finite() && (0.0..=epochs).contains(&warmup_epochs)) {
            return Err(format!(
                "warmup epochs must be between 0 and the {epochs} training epochs, not {warmup_epochs}"
            ));
        }
        if let Decay::Cosine { floor } = decay {
            if *floor > base_lr {
                return Err(format!(
                    "cosine floor {floor} is above the learning rate {base_lr}"
                ));
            }
        }
        decay.validate()
    }

    pub fn warmup_iters(&self) -> u64 {
        self.warmup_iters
    }

    pub fn total_iters(&self) -> u64 {
        self.total_iters
    }

    /// The learning rate at global iteration `iter` (0 is the first).
    pub fn lr(&self, iter: u64) -> f64 {
        let base = self.base_lr;
        if iter < self.warmup_iters {
            return base * iter as f64 / self.warmup_iters as f64;
        }
        let span = self.total_iters - self.warmup_iters;
        // Fraction of the decay done: 0 right after warmup, 1 at the end (and beyond).
        let progress = if span == 0 {
            1.0
        } else {
            ((iter - self.warmup_iters) as f64 / span as f64).min(1.0)
        };
        match &self.decay {
            Decay::Cosine { floor } => {
                floor + (base - floor) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
            Decay::Step { factor, .. } => {
                let passed = self.step_iters.iter().filter(|&&b| iter >= b).count();
                base * factor.powi(passed as i32)
            }
            Decay::Poly { power } => base * (1.0 - progress).powf(*power),
            Decay::Constant => base,
        }
    }
}

/// The linear scaling rule (section 3.1): `lr = base_lr_per_256 * batch_size / 256`.
pub fn linear_scaled_lr(base_lr_per_256: f64, batch_size: usize) -> f64 {
    base_lr_per_256 * batch_size as f64 / 256.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    macro_rules! assert_lr {
        ($s:expr, $iter:expr, $want:expr) => {
            let got = $s.lr($iter);
            assert!(close(got, $want), "iter {}: {} != {}", $iter, got, $want);
        };
    }

    #[test]
    fn paper_recipe_warmup_then_cosine() {
        // Batch 1024: lr 0.4; 5 warmup epochs of 10 iterations, 120 epochs in all.
        let base = linear_scaled_lr(0.1, 1024);
        assert!(close(base, 0.4));
        let s = LrSchedule::new(base, 5.0, Decay::Cosine { floor: 0.0 }, 120.0, 10);
        assert_eq!((s.warmup_iters(), s.total_iters()), (50, 1200));
        assert_lr!(s, 0, 0.0);
        assert_lr!(s, 25, 0.2); // 0.4 * 25 / 50
        assert_lr!(s, 49, 0.392); // 0.4 * 49 / 50
        assert_lr!(s, 50, 0.4); // end of warmup: cos(0) = 1
        assert_lr!(s, 625, 0.2); // t = 575 = T / 2: cos(pi/2) = 0
        assert_lr!(
            s,
            1199,
            0.2 * (1.0 + (std::f64::consts::PI * 1149.0 / 1150.0).cos())
        );
        assert_lr!(s, 1200, 0.0);
        assert_lr!(s, 5000, 0.0);
    }

    #[test]
    fn cosine_with_floor_and_fractional_warmup() {
        // 0.5 warmup epochs of 8 iterations = 4 iterations; 2 epochs = 16 iterations, T = 12.
        let s = LrSchedule::new(1.0, 0.5, Decay::Cosine { floor: 0.1 }, 2.0, 8);
        assert_eq!(s.warmup_iters(), 4);
        assert_lr!(s, 1, 0.25);
        assert_lr!(s, 4, 1.0);
        // t = T/4: 0.1 + 0.9 * (1 + cos(pi/4)) / 2
        assert_lr!(s, 7, 0.1 + 0.45 * (1.0 + std::f64::consts::FRAC_1_SQRT_2));
        assert_lr!(s, 10, 0.55); // 0.1 + 0.9 * (1 + cos(pi/2)) / 2
        assert_lr!(s, 16, 0.1);
    }

    #[test]
    fn step_decay_at_epoch_boundaries() {
        // Detection recipe: lr 0.001, x0.1 at epoch 14 of 20; 100 iterations per epoch.
        let decay = Decay::Step {
            epochs: vec![14.0, 18.0],
            factor: 0.1,
        };
        let s = LrSchedule::new(0.001, 0.0, decay, 20.0, 100);
        assert_lr!(s, 0, 0.001);
        assert_lr!(s, 1399, 0.001);
        assert_lr!(s, 1400, 0.0001);
        assert_lr!(s, 1799, 0.0001);
        assert_lr!(s, 1800, 0.00001);
        assert_lr!(s, 1999, 0.00001);
    }

    #[test]
    fn step_decay_after_warmup_keeps_absolute_boundaries() {
        let decay = Decay::Step {
            epochs: vec![2.0],
            factor: 0.5,
        };
        let s = LrSchedule::new(0.8, 1.0, decay, 4.0, 4);
        assert_lr!(s, 2, 0.4); // warmup: 0.8 * 2 / 4
        assert_lr!(s, 4, 0.8);
        assert_lr!(s, 7, 0.8);
        assert_lr!(s, 8, 0.4);
    }

    #[test]
    fn poly_decay() {
        // FCN: power 0.9, no warmup; 100 iterations.
        let s = LrSchedule::new(0.01, 0.0, Decay::Poly { power: 0.9 }, 10.0, 10);
        assert_lr!(s, 0, 0.01);
        assert_lr!(s, 50, 0.01 * 0.5f64.powf(0.9));
        assert_lr!(s, 75, 0.01 * 0.25f64.powf(0.9));
        assert_lr!(s, 100, 0.0);
        // With 2 warmup epochs the decay spans the other 80 iterations.
        let s = LrSchedule::new(0.01, 2.0, Decay::Poly { power: 2.0 }, 10.0, 10);
        assert_lr!(s, 10, 0.005);
        assert_lr!(s, 60, 0.01 * 0.25);
    }

    #[test]
    fn constant_and_all_warmup() {
        let s = LrSchedule::new(0.1, 1.0, Decay::Constant, 3.0, 10);
        assert_lr!(s, 5, 0.05);
        assert_lr!(s, 10, 0.1);
        assert_lr!(s, 29, 0.1);
        // Warmup as long as training: the last iterations warm up, nothing divides by zero.
        let s = LrSchedule::new(0.1, 5.0, Decay::Cosine { floor: 0.0 }, 1.0, 10);
        assert_eq!(s.warmup_iters(), 10);
        assert_lr!(s, 9, 0.09);
        assert!(s.lr(10).is_finite());
    }

    #[test]
    fn decay_reads_from_toml() {
        #[derive(Deserialize)]
        struct Wrapper {
            decay: Decay,
        }
        let read = |s: &str| toml::from_str::<Wrapper>(s).map(|w| w.decay);
        assert_eq!(
            read("decay = { kind = \"cosine\" }").unwrap(),
            Decay::Cosine { floor: 0.0 }
        );
        assert_eq!(
            read("[decay]\nkind = \"step\"\nepochs = [30, 60, 90]\nfactor = 0.1").unwrap(),
            Decay::Step {
                epochs: vec![30.0, 60.0, 90.0],
                factor: 0.1
            }
        );
        assert_eq!(
            read("decay = { kind = \"poly\", power = 0.9 }").unwrap(),
            Decay::Poly { power: 0.9 }
        );
        assert_eq!(
            read("decay = { kind = \"constant\" }").unwrap(),
            Decay::Constant
        );
        assert!(read("decay = { kind = \"cosine\", flor = 0.1 }").is_err());
        assert!(read("decay = { kind = \"linear\" }").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let cos = Decay::Cosine { floor: 0.0 };
        assert!(LrSchedule::validate(0.4, 5.0, &cos, 120.0).is_ok());
        assert!(LrSchedule::validate(0.0, 5.0, &cos, 120.0)
            .unwrap_err()
            .contains("learning rate"));
        assert!(LrSchedule::validate(0.4, 130.0, &cos, 120.0)
            .unwrap_err()
            .contains("warmup"));
        assert!(LrSchedule::validate(0.4, 5.0, &cos, f64::NAN)
            .unwrap_err()
            .contains("epochs"));
        assert!(
            LrSchedule::validate(0.4, 5.0, &Decay::Cosine { floor: 1.0 }, 120.0)
                .unwrap_err()
                .contains("floor")
        );
        let unsorted = Decay::Step {
            epochs: vec![60.0, 30.0],
            factor: 0.1,
        };
        assert!(unsorted.validate().unwrap_err().contains("increasing"));
        let zero = Decay::Step {
            epochs: vec![30.0],
            factor: 0.0,
        };
        assert!(zero.validate().unwrap_err().contains("factor"));
        assert!(Decay::Poly { power: -1.0 }
            .validate()
            .unwrap_err()
            .contains("power"));
    }
}
