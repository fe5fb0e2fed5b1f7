//! An autocast region, as `with torch.autocast(device_type, dtype):` opens one, through the
//! C++ shim in csrc/autocast.cpp (tch binds only CUDA's fp16 switch). Inside it ATen's
//! dispatcher casts the ops its autocast lists name (convolutions and matrix products to the
//! lower type, losses and reductions that need range to fp32), so a model computes what the
//! same model computes under PyTorch's autocast.

use super::Precision;
use crate::c_abi::take_message;
use std::ffi::c_char;
use tch::{Device, Kind};

/// What `tricks_autocast_enter` replaced.
#[repr(C)]
#[derive(Default)]
struct Prior {
    enabled: bool,
    dtype: i8,
    cache_enabled: bool,
}

extern "C" {
    fn tricks_autocast_enter(device_type: i8, dtype: i8, prior: *mut Prior) -> *mut c_char;
    fn tricks_autocast_exit(device_type: i8, prior: *const Prior) -> *mut c_char;
    fn tricks_cpu_bf16(out: *mut i8) -> *mut c_char;
    fn tricks_autocast_is_enabled(device_type: i8, out: *mut bool) -> *mut c_char;
    fn tricks_autocast_dtype(device_type: i8, out: *mut i8) -> *mut c_char;
}

/// Whether this thread is inside a CPU autocast region: the fp32-only fast paths of CPU
/// inference (oneDNN's blocked layout, Winograd) step aside, so that the ops run as ATen's
/// autocast casts them.
pub fn cpu_autocast_enabled() -> bool {
    let mut enabled = false;
    // SAFETY: `enabled` is a live, writable bool; exceptions come back as messages.
    take_message(unsafe { tricks_autocast_is_enabled(DEVICE_CPU, &mut enabled) })
        .map(|()| enabled)
        .unwrap_or(false)
}

/// The type an autocast region open on this thread for `device`'s type casts ATen's listed ops
/// to (`Kind::BFloat16` or `Kind::Half`), `None` outside one. Inference keeps weights it
/// prepared once in that type, where autocast would cast them again at every forward pass.
pub fn autocast_kind(device: Device) -> Option<Kind> {
    let device_type = match device {
        Device::Cpu => DEVICE_CPU,
        Device::Cuda(_) => DEVICE_CUDA,
        _ => return None,
    };
    let mut dtype = -1;
    // SAFETY: `dtype` is a live, writable i8; exceptions come back as messages.
    take_message(unsafe { tricks_autocast_dtype(device_type, &mut dtype) }).ok()?;
    match dtype {
        SCALAR_HALF => Some(Kind::Half),
        SCALAR_BFLOAT16 => Some(Kind::BFloat16),
        _ => None,
    }
}

/// What computing in bf16 costs on this CPU, against fp32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuBf16 {
    /// oneDNN has no bf16 kernels for it (they need AVX-512 or AMX;
    /// `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is false): ATen's generic kernels,
    /// 10 to 40 times slower than fp32.
    Emulated,
    /// oneDNN's AVX-512 kernels on an Intel core without AMX tiles: measured slower than fp32
    /// on 2-core Xeons with the `avx512_bf16` instructions and without them (then the kernels
    /// convert bf16 to fp32 inside), in PyTorch's autocast as in ours (docs/results.md).
    NoFasterThanFp32 { bf16_instructions: bool },
    /// AMX tiles, or AVX-512 bf16 on another vendor's cores (AMD's: training steps 1.3 to 2
    /// times fp32's).
    Faster,
}

/// What bf16 costs on this CPU; `None` if libtorch cannot tell (built without oneDNN).
pub fn cpu_bf16() -> Option<CpuBf16> {
    let mut code = -1;
    // SAFETY: `code` is a live, writable i8; exceptions come back as messages.
    take_message(unsafe { tricks_cpu_bf16(&mut code) }).ok()?;
    match code {
        0 => Some(CpuBf16::Emulated),
        1 => Some(CpuBf16::NoFasterThanFp32 {
            bf16_instructions: true,
        }),
        2 => Some(CpuBf16::Faster),
        3 => Some(CpuBf16::NoFasterThanFp32 {
            bf16_instructions: false,
        }),
        _ => None,
    }
}

// c10::DeviceType and c10::ScalarType, as ATen numbers them.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_HALF: i8 = 5;
const SCALAR_BFLOAT16: i8 = 15;

/// Where and in what type forward passes run: [`Autocast::run`] wraps one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Autocast {
    precision: Precision,
    device: Device,
}

impl Autocast {
    /// Forward passes in fp32: `run` calls its closure as it is.
    pub const OFF: Autocast = Autocast {
        precision: Precision::Fp32,
        device: Device::Cpu,
    };

    /// Autocast to `precision` on `device`, as asked: fp16 on the CPU is ATen's CPU float16
    /// autocast (a training run has settled its precision before, see [`Precision::on`]).
    pub fn new(precision: Precision, device: Device) -> Self {
        Autocast { precision, device }
    }

    /// The precision forward passes run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `f()` inside the autocast region (nested regions restore the outer one's state on
    /// exit; the cast weights are dropped when the outermost exits, as PyTorch's are).
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let dtype = match self.precision {
            Precision::Fp32 => return f(),
            Precision::Fp16 => SCALAR_HALF,
            Precision::Bf16 => SCALAR_BFLOAT16,
        };
        let device_type = match self.device {
            Device::Cpu => DEVICE_CPU,
            Device::Cuda(_) => DEVICE_CUDA,
            // Autocast is only offered on the devices a run accepts (parse_device).
            other => panic!("autocast: no autocast on {other:?}"),
        };
        let _region = Region::enter(device_type, dtype);
        f()
    }
}

/// An entered region, left when dropped (on a panic too, so a failed forward pass does not
/// leave the thread casting).
struct Region {
    device_type: i8,
    prior: Prior,
}

impl Region {
    fn enter(device_type: i8, dtype: i8) -> Region {
        let mut prior = Prior::default();
        // SAFETY: `prior` is a live, writable Prior; exceptions come back as messages.
        take_message(unsafe { tricks_autocast_enter(device_type, dtype, &mut prior) })
            .unwrap_or_else(|e| panic!("{e}"));
        Region { device_type, prior }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `prior` is what the matching enter wrote.
        let left = take_message(unsafe { tricks_autocast_exit(self.device_type, &self.prior) });
        if let Err(e) = left {
            if !std::thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn conv_output_kind(autocast: Autocast) -> Kind {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        autocast.run(|| x.conv2d(&w, None::<Tensor>, [1], [1], [1], 1).kind())
    }

    #[test]
    fn bf16_casts_convolutions_and_keeps_losses_in_fp32() {
        let bf16 = Autocast::new(Precision::Bf16, Device::Cpu);
        assert_eq!(conv_output_kind(bf16), Kind::BFloat16);
        assert_eq!(conv_output_kind(Autocast::OFF), Kind::Float);
        let logits = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([10, 10], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[1i64, 2, 3, 4]);
        let (y, loss) = bf16.run(|| {
            let y = logits.linear(&w, None::<Tensor>);
            let loss =
                y.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0);
            (y, loss)
        });
        assert_eq!(y.kind(), Kind::BFloat16);
        assert_eq!(
            loss.kind(),
            Kind::Float,
            "ATen's CPU list keeps cross-entropy in fp32"
        );
    }

    #[test]
    fn says_whether_a_cpu_region_is_open() {
        assert!(!cpu_autocast_enabled());
        let bf16 = Autocast::new(Precision::Bf16, Device::Cpu);
        assert!(bf16.run(cpu_autocast_enabled));
        assert!(!Autocast::OFF.run(cpu_autocast_enabled));
        assert!(!cpu_autocast_enabled());
    }

    #[test]
    fn leaving_a_region_restores_the_outer_state() {
        let bf16 = Autocast::new(Precision::Bf16, Device::Cpu);
        let (inner, after_inner) = bf16.run(|| {
            let inner = bf16.run(|| conv_output_kind(Autocast::OFF));
            (inner, conv_output_kind(Autocast::OFF))
        });
        assert_eq!(inner, Kind::BFloat16);
        assert_eq!(after_inner, Kind::BFloat16, "the outer region is still on");
        assert_eq!(conv_output_kind(Autocast::OFF), Kind::Float);
    }

    #[test]
    fn a_panic_inside_leaves_the_region() {
        let bf16 = Autocast::new(Precision::Bf16, Device::Cpu);
        // Silenced: the default hook's backtrace (RUST_BACKTRACE=1) takes a debug build
        // about 12 s to symbolise.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = std::panic::catch_unwind(|| bf16.run(|| panic!("forward failed")));
        std::panic::set_hook(hook);
        assert!(caught.is_err());
        assert_eq!(conv_output_kind(Autocast::OFF), Kind::Float);
    }

    /// libtorch answers, and says "emulated" where the CPU has neither AVX-512 nor AMX,
    /// "faster" where it has AMX, and "no faster" on an Intel core with AVX-512 and no AMX,
    /// whether it has the `avx512_bf16` instructions or not.
    #[test]
    fn knows_what_bf16_costs_on_this_cpu() {
        let bf16 = cpu_bf16().expect("the wheel's libtorch is built with oneDNN");
        if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
            if cfg!(target_arch = "x86_64") && !info.contains("avx512") && !info.contains("amx") {
                assert_eq!(bf16, CpuBf16::Emulated);
            }
            if info.contains("amx_bf16") {
                assert_eq!(bf16, CpuBf16::Faster);
            }
            // oneDNN's bf16 kernels need AVX-512 (BW, VL, DQ); bf16 instructions are optional.
            if info.contains("avx512bw") && !info.contains("amx_bf16") {
                let expected = if info.contains("GenuineIntel") {
                    CpuBf16::NoFasterThanFp32 {
                        bf16_instructions: info.contains("avx512_bf16"),
                    }
                } else {
                    CpuBf16::Faster
                };
                assert_eq!(bf16, expected);
            }
        }
    }

    #[test]
    fn says_what_type_the_open_region_casts_to() {
        assert_eq!(autocast_kind(Device::Cpu), None);
        let bf16 = Autocast::new(Precision::Bf16, Device::Cpu);
        let fp16 = Autocast::new(Precision::Fp16, Device::Cpu);
        assert_eq!(
            bf16.run(|| autocast_kind(Device::Cpu)),
            Some(Kind::BFloat16)
        );
        assert_eq!(fp16.run(|| autocast_kind(Device::Cpu)), Some(Kind::Half));
        assert_eq!(
            bf16.run(|| autocast_kind(Device::Cuda(0))),
            None,
            "CPU's region only"
        );
        assert_eq!(autocast_kind(Device::Cpu), None);
    }

    #[test]
    fn fp16_casts_to_float16() {
        let fp16 = Autocast::new(Precision::Fp16, Device::Cpu);
        assert_eq!(conv_output_kind(fp16), Kind::Half);
    }
}
