//! A fixed random subset of a dataset (`data.max_train_samples`): quick recipes and tests
//! train on part of a dataset with every class represented in proportion.

use datasets::loader::Dataset;
use datasets::rng::{stream_rng, SampleRng};
use rand::seq::SliceRandom;

pub struct Subset<D> {
    inner: D,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// `n` indices drawn without replacement from `seed` (all of them when `n` is larger),
    /// kept in ascending order so files are read in the dataset's order.
    pub fn random(inner: D, n: usize, seed: u64) -> Self {
        let mut indices: Vec<usize> = (0..inner.len()).collect();
        if n < indices.len() {
            indices.shuffle(&mut stream_rng(seed, 0x5B5E7));
            indices.truncate(n);
            indices.sort_unstable();
        }
        Subset { inner, indices }
    }

    /// Rank `rank`'s share of `world`: every `world`-th entry from `rank` on, so the shares
    /// are disjoint, cover the subset once and differ in size by at most one.
    pub fn shard(mut self, rank: usize, world: usize) -> Self {
        self.indices = self
            .indices
            .iter()
            .copied()
            .skip(rank)
            .step_by(world.max(1))
            .collect();
        self
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Sample = D::Sample;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize, rng: &mut SampleRng) -> datasets::Result<D::Sample> {
        self.inner.get(self.indices[index], rng)
    }
}
