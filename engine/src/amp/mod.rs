//! Mixed precision: which lower-precision type a run computes in (`train.amp`), the autocast
//! region that casts ATen's listed ops to it, and the loss scaler fp16 needs.
//!
//! | `train.amp` | device | forward and loss | loss scaling |
//! |---|---|---|---|
//! | `false` | any | fp32 | none |
//! | `true` or `"fp16"` | CUDA | ATen's CUDA autocast, float16 | dynamic ([`LossScaler`]) |
//! | `true` or `"fp16"` | CPU | runs as `"bf16"` (said once at the start) | none |
//!
//! The substitution is the training commands' ([`crate::fit::set_up`] settles a run's
//! precision before anything is built); the engine itself computes in what its config says,
//! so fp16 on the CPU there is ATen's CPU float16 autocast with loss scaling, which is how
//! the tests exercise the scaler without a GPU.
//! | `"bf16"` | CPU or CUDA | ATen's autocast, bfloat16 | none |
//!
//! bfloat16 keeps fp32's exponent range, so gradients do not underflow and need no scaling
//! (PyTorch's recipes use `GradScaler` only with float16). The weights, the optimiser state
//! and the gradients the optimiser sees stay fp32 in every case.

mod autocast;
mod scaler;

pub use autocast::{autocast_kind, cpu_autocast_enabled, cpu_bf16, Autocast, CpuBf16};
pub use scaler::LossScaler;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind};

/// The precision a run's forward pass and loss are computed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Fp32,
    /// float16 autocast with dynamic loss scaling (CUDA).
    Fp16,
    /// bfloat16 autocast, no loss scaling (CPU or CUDA).
    Bf16,
}

impl Precision {
    /// The type autocast casts listed ops to; `None` for fp32.
    pub fn lower_kind(self) -> Option<Kind> {
        match self {
            Precision::Fp32 => None,
            Precision::Fp16 => Some(Kind::Half),
            Precision::Bf16 => Some(Kind::BFloat16),
        }
    }

    /// Whether steps need a [`LossScaler`] (float16's narrow range flushes small gradients
    /// to zero without one).
    pub fn scales_loss(self) -> bool {
        self == Precision::Fp16
    }

    /// What a run asking for `self` computes in on `device`: fp16 autocast is CUDA's, so on
    /// the CPU it becomes bf16 (see [`Self::substitution_note`]).
    pub fn on(self, device: Device) -> Precision {
        match (self, device) {
            (Precision::Fp16, Device::Cpu) => Precision::Bf16,
            _ => self,
        }
    }

    /// The one line a training run prints when it computes in another precision than its
    /// recipe asks for (fp16 on the CPU), else `None`.
    pub fn substitution_note(self, device: Device) -> Option<String> {
        let runs = self.on(device);
        (runs != self).then(|| {
            format!(
                "train.amp = \"{self}\" asks for float16 autocast, which is CUDA's: on the CPU this run computes in {runs} instead (no loss scaling); --set train.amp=false runs it in fp32"
            )
        })
    }

    /// The line a run or bench computing in bf16 on a CPU where it is slower than fp32
    /// prints (once), else `None`: it still computes what it should.
    pub fn slow_cpu_note(self, device: Device) -> Option<String> {
        if self != Precision::Bf16 || device != Device::Cpu {
            return None;
        }
        let why = match cpu_bf16()? {
            CpuBf16::Faster => return None,
            CpuBf16::Emulated => "oneDNN has no bf16 kernels for it (they need AVX-512 or AMX), so convolutions and matrix products fall back to generic ones, 10 to 40 times slower than fp32 (ResNet and Faster R-CNN training steps on a 2-core AVX2 EPYC)",
            CpuBf16::NoFasterThanFp32 {
                bf16_instructions: true,
            } => "an Intel CPU without AMX, whose AVX-512 bf16 kernels gain less than the casts to and from bf16 cost: 0.53 to 0.85 times fp32's speed on a 2-core Xeon (training and inference of ResNet, Faster R-CNN and FCN; PyTorch's bf16 autocast 0.72 to 0.90 there)",
            CpuBf16::NoFasterThanFp32 {
                bf16_instructions: false,
            } => "an Intel CPU with AVX-512 but neither its bf16 instructions nor AMX, where oneDNN's kernels convert bf16 to fp32 inside: 0.25 to 0.56 times fp32's speed on a 2-core Xeon of that kind (training and inference of ResNet, Faster R-CNN and FCN, and the whole fashion-quick job; PyTorch's bf16 autocast 0.65 on ResNet's training step there)",
        };
        Some(format!(
            "bf16 on this CPU: {why}; --set train.amp=false (a bench: no --amp) runs in fp32"
        ))
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const EXPECTED: &str = "false, true (fp16), \"fp16\" or \"bf16\"";

impl FromStr for Precision {
    type Err = String;

    /// The spellings `--amp` and `train.amp` take.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" | "false" => Ok(Precision::Fp32),
            "fp16" | "true" => Ok(Precision::Fp16),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("expected {EXPECTED}, found \"{other}\"")),
        }
    }
}

/// `false` for fp32 (as recipes always wrote it), else the type's name.
impl Serialize for Precision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Precision::Fp32 => s.serialize_bool(false),
            other => s.serialize_str(other.name()),
        }
    }
}

/// `false`, `true` (fp16, as recipes wrote it before bf16), `"fp16"`, `"bf16"` or `"fp32"`.
impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Precision;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Precision, E> {
                Ok(if v { Precision::Fp16 } else { Precision::Fp32 })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Precision, E> {
                match v {
                    "false" | "true" => Err(E::custom(format!(
                        "expected {EXPECTED}, found the string \"{v}\" (write it without quotes)"
                    ))),
                    _ => v.parse().map_err(E::custom),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Train {
        amp: Precision,
    }

    fn parse(text: &str) -> Result<Precision, String> {
        toml::from_str::<Train>(text)
            .map(|t| t.amp)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn recipes_spell_it_as_a_bool_or_a_type() {
        assert_eq!(parse("amp = false"), Ok(Precision::Fp32));
        assert_eq!(parse("amp = true"), Ok(Precision::Fp16));
        assert_eq!(parse("amp = \"fp16\""), Ok(Precision::Fp16));
        assert_eq!(parse("amp = \"bf16\""), Ok(Precision::Bf16));
        let err = parse("amp = \"float8\"").unwrap_err();
        assert!(err.contains("\"bf16\"") && err.contains("float8"), "{err}");
        assert!(parse("amp = 1").is_err());
        assert!(parse("amp = \"true\"")
            .unwrap_err()
            .contains("without quotes"));
    }

    #[test]
    fn written_back_as_read() {
        for p in [Precision::Fp32, Precision::Fp16, Precision::Bf16] {
            let text = toml::to_string(&Train { amp: p }).unwrap();
            assert_eq!(parse(&text), Ok(p), "{text}");
        }
        assert_eq!(
            toml::to_string(&Train {
                amp: Precision::Fp32
            })
            .unwrap()
            .trim(),
            "amp = false"
        );
    }

    #[test]
    fn fp16_on_the_cpu_runs_in_bf16_and_says_so() {
        assert_eq!(Precision::Fp16.on(Device::Cpu), Precision::Bf16);
        assert_eq!(Precision::Fp16.on(Device::Cuda(0)), Precision::Fp16);
        assert_eq!(Precision::Bf16.on(Device::Cpu), Precision::Bf16);
        let note = Precision::Fp16.substitution_note(Device::Cpu).unwrap();
        assert!(
            note.contains("bf16") && note.contains("train.amp=false"),
            "{note}"
        );
        assert_eq!(Precision::Bf16.substitution_note(Device::Cpu), None);
        assert_eq!(Precision::Fp16.substitution_note(Device::Cuda(0)), None);
        assert!(Precision::Fp16.scales_loss() && !Precision::Bf16.scales_loss());
    }
}
