//! Timing device work for the benchmarks (`backbone bench`, `detect bench`, `segment bench`).

use std::time::Instant;
use tch::{Kind, Tensor};

/// Seconds for `iters` calls of `run` after `warmup` untimed ones. Each call returns a tensor
/// that depends on its work; reading one value of it drains the device's queue, once before
/// the timed window and once at its end, so the window holds exactly the timed calls.
pub fn timed(
    warmup: usize,
    iters: usize,
    mut run: impl FnMut() -> anyhow::Result<Tensor>,
) -> anyhow::Result<f64> {
    let sync = |t: Tensor| {
        let _ = t.sum(Kind::Float).double_value(&[]);
    };
    for _ in 0..warmup {
        let _ = run()?;
    }
    sync(run()?);
    let start = Instant::now();
    let mut last = None;
    for _ in 0..iters {
        last = Some(run()?);
    }
    if let Some(t) = last {
        sync(t);
    }
    Ok(start.elapsed().as_secs_f64())
}
