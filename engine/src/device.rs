//! `--device cpu|cuda|cuda:N`, with an error when CUDA is asked for and absent.

use tch::Device;

pub fn parse_device(name: &str) -> Result<Device, String> {
    let device = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Device::Cuda(n),
            None => {
                return Err(format!(
                    "unknown device '{name}': expected cpu, cuda or cuda:N"
                ))
            }
        },
    };
    let count = tch::Cuda::device_count() as usize;
    match device {
        Device::Cuda(n) if n >= count => Err(if count == 0 {
            format!("device '{name}' asked for, but CUDA is not available on this machine")
        } else {
            format!("device '{name}' asked for, but this machine has {count} CUDA device(s)")
        }),
        d => Ok(d),
    }
}
