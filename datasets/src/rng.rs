//! Deterministic random numbers for data: one generator per (seed, epoch, sample), so a sample
//! gets the same augmentation whatever worker draws it, in whatever order, and after a resume.

use rand::SeedableRng;

/// The generator every augmentation draws from.
pub type SampleRng = rand_pcg::Pcg64Mcg;

/// SplitMix64's finaliser: spreads nearby inputs (epoch 3 vs 4) over the whole 64-bit range.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
