//! Deterministic random numbers for data: one generator per (seed, epoch, sample), so a sample
//! gets the same augmentation whatever worker draws it, in whatever order, and after a resume.

use rand::SeedableRng;

/// The generator every augmentation draws from.
pub type SampleRng = rand_pcg::Pcg64Mcg;

/// SplitMix64's constants: the increment (the golden ratio) and the finaliser's multipliers.
/// Detection's sampler hashes tensors on the device with the same three.
pub const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
pub const SPLITMIX_MUL_1: u64 = 0xBF58_476D_1CE4_E5B9;
pub const SPLITMIX_MUL_2: u64 = 0x94D0_49BB_1331_11EB;

/// SplitMix64's finaliser alone: a bijection of 64-bit words that spreads nearby inputs.
pub fn splitmix64_finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(SPLITMIX_MUL_1);
    z = (z ^ (z >> 27)).wrapping_mul(SPLITMIX_MUL_2);
    z ^ (z >> 31)
}

/// SplitMix64 of `x`: spreads nearby inputs (epoch 3 vs 4) over the whole 64-bit range. The
/// one copy of the hash every seed in the project is derived with.
pub fn splitmix64(x: u64) -> u64 {
    splitmix64_finalise(x.wrapping_add(SPLITMIX_GAMMA))
}

fn mix(z: u64) -> u64 {
    splitmix64(z)
}

/// The generator for sample `index` in `epoch` of a run seeded with `seed`.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> SampleRng {
    SampleRng::seed_from_u64(mix(mix(mix(seed) ^ epoch) ^ index))
}

/// A generator for a whole stream (an epoch's shuffle, a dataset's generation).
pub fn stream_rng(seed: u64, stream: u64) -> SampleRng {
    SampleRng::seed_from_u64(mix(mix(seed) ^ stream.rotate_left(32)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn same_inputs_same_numbers_different_inputs_different_numbers() {
        let a: u64 = sample_rng(7, 3, 11).random();
        let b: u64 = sample_rng(7, 3, 11).random();
        let c: u64 = sample_rng(7, 4, 11).random();
        let d: u64 = sample_rng(7, 3, 12).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
