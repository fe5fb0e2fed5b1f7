//! The parallel loader shared by classification, detection and segmentation.
//!
//! A [`Dataset`] turns an index into a sample (decoded and augmented); a [`Collate`] packs the
//! samples of one batch into the plain buffers the training engine wants. The loader decides
//! which indices go into which batch, runs the work on worker threads, and hands batches back
//! in a fixed order.
//!
//! Guarantees the trainer relies on:
//! - Sample `i` of epoch `e` is augmented with `sample_rng(seed, e, i)`, whichever worker
//!   draws it and whatever the worker count, rank or resume point: runs are reproducible.
//! - The epoch's order is a permutation drawn from `stream_rng(seed, e)` (identity without
//!   shuffling); rank `r` of `w` takes positions `r, r + w, r + 2w, ...` of it. Every rank gets
//!   `ceil(n / w)` samples: the permutation wraps around to pad the last round, as PyTorch's
//!   `DistributedSampler` does, so all ranks run the same number of steps.
//! - Batches come out in order. Each worker builds whole batches (one batch at a time, like
//!   PyTorch's `DataLoader`), and at most `prefetch` batches are in flight (being built, or
//!   built and waiting) at any time, which bounds memory.
//! - `epoch(e, start_batch)` starts at batch `start_batch` without decoding what comes before,
//!   and its batches are exactly the tail of the full epoch's batches.
//! - A bad sample either ends the epoch with its [`DataError`] (the iterator yields the error,
//!   then stops) or, with `skip_bad`, is left out and recorded. A batch with a skipped sample
//!   is simply smaller (it is not refilled from the next batch): batch boundaries then stay
//!   the same with and without bad files, so resuming by batch number stays exact. A batch in
//!   which every sample is bad is not yielded at all.
//! - Dropping the iterator mid-epoch stops the workers (they check between samples) and joins
//!   them before `drop` returns.

use crate::error::{DataError, Result};
use crate::rng::{sample_rng, stream_rng, SampleRng};
use crossbeam_channel::{unbounded, Receiver, Sender};
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Indexed samples, produced on worker threads.
pub trait Dataset: Send + Sync + 'static {
    type Sample: Send + 'static;

    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads and augments sample `index`. All randomness must come from `rng`, which the
    /// loader seeds from (seed, epoch, index): that is what makes augmentation reproducible.
    fn get(&self, index: usize, rng: &mut SampleRng) -> Result<Self::Sample>;
}

/// Packs one batch's samples (in batch order, with their dataset indices) into a batch.
/// Any `Fn(Vec<S>, Vec<usize>) -> Result<B>` closure is a `Collate`.
pub trait Collate<S>: Send + Sync + 'static {
    type Batch: Send + 'static;

    fn collate(&self, samples: Vec<S>, indices: Vec<usize>) -> Result<Self::Batch>;
}

impl<S, B, F> Collate<S> for F
where
    F: Fn(Vec<S>, Vec<usize>) -> Result<B> + Send + Sync + 'static,
    B: Send + 'static,
{
    type Batch = B;

    fn collate(&self, samples: Vec<S>, indices: Vec<usize>) -> Result<B> {
        self(samples, indices)
    }
}

/// How batches are drawn. `Default` gives one rank, no shuffle, 32 per batch, a worker per
/// core (at least one).
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Worker threads; 0 builds batches on the calling thread (handy for debugging).
    pub workers: usize,
    /// Batches in flight at most (being built or waiting to be taken). Fewer than `workers`
    /// leaves workers idle; about twice `workers` keeps them all busy.
    pub prefetch: usize,
    pub shuffle: bool,
    /// Leave out the last, smaller batch of each epoch.
    pub drop_last: bool,
    pub seed: u64,
    pub rank: usize,
    pub world_size: usize,
    /// Leave out samples that fail to load (recorded, see [`Loader::skipped`]) instead of
    /// ending the epoch with their error.
    pub skip_bad: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoaderConfig::in_order(32, workers)
    }
}

impl LoaderConfig {
    /// One pass over every sample in the dataset's order, as evaluation reads a split: no
    /// shuffling, the last short batch kept, two batches in flight per worker.
    pub fn in_order(batch_size: usize, workers: usize) -> Self {
        LoaderConfig {
            batch_size,
            workers,
            prefetch: 2 * workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            rank: 0,
            world_size: 1,
            skip_bad: false,
        }
    }

    fn validate(&self) -> std::result::Result<(), InvalidLoaderConfig> {
        let fail = |msg: String| Err(InvalidLoaderConfig(msg));
        if self.batch_size == 0 {
            return fail("batch_size must be at least 1".into());
        }
        if self.prefetch == 0 {
            return fail("prefetch must be at least 1".into());
        }
        if self.world_size == 0 {
            return fail("world_size must be at least 1".into());
        }
        if self.rank >= self.world_size {
            return fail(format!(
                "rank {} is not below world_size {}",
                self.rank, self.world_size
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid loader configuration: {0}")]
pub struct InvalidLoaderConfig(String);

/// A sample left out under `skip_bad`.
#[derive(Clone, Debug, PartialEq)]
pub struct SkippedSample {
    pub index: usize,
    /// The file that failed.
    pub path: PathBuf,
    /// The whole error message (it starts with the path).
    pub error: String,
}

/// Samples skipped so far, each once however many epochs skipped it.
type SkipLog = Arc<Mutex<BTreeMap<usize, SkippedSample>>>;

pub struct Loader<D: Dataset, C: Collate<D::Sample>> {
    dataset: Arc<D>,
    collate: Arc<C>,
    config: LoaderConfig,
    skipped: SkipLog,
}

impl<D: Dataset, C: Collate<D::Sample>> Loader<D, C> {
    pub fn new(
        dataset: D,
        collate: C,
        config: LoaderConfig,
    ) -> std::result::Result<Self, InvalidLoaderConfig> {
        config.validate()?;
        Ok(Loader {
            dataset: Arc::new(dataset),
            collate: Arc::new(collate),
            config,
            skipped: Arc::default(),
        })
    }

    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Samples this rank sees per epoch (padding included).
    pub fn samples_per_epoch(&self) -> usize {
        self.dataset.len().div_ceil(self.config.world_size)
    }

    /// Batches this rank yields per epoch (fewer if whole batches are skipped as bad).
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.samples_per_epoch();
        if self.config.drop_last {
            n / self.config.batch_size
        } else {
            n.div_ceil(self.config.batch_size)
        }
    }

    /// The dataset indices this rank visits in `epoch`, in order.
    pub fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        shard_order(self.dataset.len(), &self.config, epoch)
    }

    /// Every sample skipped as bad so far (under `skip_bad`), sorted by index.
    pub fn skipped(&self) -> Vec<SkippedSample> {
        lock(&self.skipped).values().cloned().collect()
    }

    /// The batches of `epoch`, from batch number `start_batch` on (0 for a whole epoch).
    pub fn epoch(&self, epoch: u64, start_batch: usize) -> EpochIter<C::Batch> {
        let order = self.epoch_indices(epoch);
        let end = self.batches_per_epoch();
        let cancel = Arc::new(AtomicBool::new(false));
        let skipped_this_epoch = Arc::new(AtomicUsize::new(0));
        let job = Arc::new(BatchJob {
            dataset: Arc::clone(&self.dataset),
            collate: Arc::clone(&self.collate),
            order,
            batch_size: self.config.batch_size,
            seed: self.config.seed,
            epoch,
            skip_bad: self.config.skip_bad,
            skip_log: Arc::clone(&self.skipped),
            skipped_this_epoch: Arc::clone(&skipped_this_epoch),
            cancel: Arc::clone(&cancel),
        });
        EpochIter::start(
            job,
            start_batch.min(end),
            end,
            &self.config,
            cancel,
            skipped_this_epoch,
        )
    }
}

/// Shuffle (or not), then take this rank's share, wrapping around to pad.
fn shard_order(n: usize, config: &LoaderConfig, epoch: u64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut permutation: Vec<usize> = (0..n).collect();
    if config.shuffle {
        permutation.shuffle(&mut stream_rng(config.seed, epoch));
    }
    let per_rank = n.div_ceil(config.world_size);
    (0..per_rank)
        .map(|k| permutation[(k * config.world_size + config.rank) % n])
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A worker that panicked while holding the lock left a complete map behind (inserts are
    // single calls), so the data is still good.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything a worker needs to build batch `k` of one epoch.
struct BatchJob<D: Dataset, C: Collate<D::Sample>> {
    dataset: Arc<D>,
    collate: Arc<C>,
    order: Vec<usize>,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    skip_bad: bool,
    skip_log: SkipLog,
    skipped_this_epoch: Arc<AtomicUsize>,
    cancel: Arc<AtomicBool>,
}

/// A batch, or nothing when every sample was skipped or the epoch was abandoned.
type BatchOutcome<B> = Result<Option<B>>;

trait BuildBatch<B>: Send + Sync {
    fn build(&self, batch: usize) -> BatchOutcome<B>;
}

impl<D: Dataset, C: Collate<D::Sample>> BuildBatch<C::Batch> for BatchJob<D, C> {
    fn build(&self, batch: usize) -> BatchOutcome<C::Batch> {
        let start = batch * self.batch_size;
        let positions = &self.order[start..(start + self.batch_size).min(self.order.len())];
        let mut samples = Vec::with_capacity(positions.len());
        let mut indices = Vec::with_capacity(positions.len());
        for &index in positions {
            if self.cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let mut rng = sample_rng(self.seed, self.epoch, index as u64);
            match self.dataset.get(index, &mut rng) {
                Ok(sample) => {
                    samples.push(sample);
                    indices.push(index);
                }
                Err(error) if self.skip_bad => {
                    self.skipped_this_epoch.fetch_add(1, Ordering::Relaxed);
                    lock(&self.skip_log)
                        .entry(index)
                        .or_insert_with(|| SkippedSample {
                            index,
                            path: error.path().to_path_buf(),
                            error: error.to_string(),
                        });
                }
                Err(error) => return Err(error),
            }
        }
        if samples.is_empty() {
            return Ok(None);
        }
        self.collate.collate(samples, indices).map(Some)
    }
}

/// Builds a batch, turning a panic in dataset or collate code into an error for that batch
/// (otherwise the consumer would wait for it for ever).
fn build_guarded<B>(job: &dyn BuildBatch<B>, batch: usize) -> BatchOutcome<B> {
    catch_unwind(AssertUnwindSafe(|| job.build(batch))).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(DataError::bug(
            format!("<batch {batch}>"),
            format!("data loading panicked: {what}"),
        ))
    })
}

/// One epoch's batches, in order. Dropping it stops and joins the workers.
pub struct EpochIter<B: Send + 'static> {
    job: Arc<dyn BuildBatch<B>>,
    /// Next batch number to hand out, next to give a worker, one past the last.
    next_out: usize,
    next_issued: usize,
    end: usize,
    /// `None` once the epoch is over or abandoned: workers see the channel close and exit.
    jobs: Option<Sender<usize>>,
    results: Receiver<(usize, BatchOutcome<B>)>,
    /// Batches that finished ahead of their turn.
    waiting: HashMap<usize, BatchOutcome<B>>,
    workers: Vec<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
    skipped_this_epoch: Arc<AtomicUsize>,
}

impl<B: Send + 'static> EpochIter<B> {
    fn start(
        job: Arc<dyn BuildBatch<B>>,
        start_batch: usize,
        end: usize,
        config: &LoaderConfig,
        cancel: Arc<AtomicBool>,
        skipped_this_epoch: Arc<AtomicUsize>,
    ) -> Self {
        let (jobs_tx, jobs_rx) = unbounded::<usize>();
        let (results_tx, results_rx) = unbounded();
        let remaining = end - start_batch;
        let workers = (0..config.workers.min(remaining))
            .map(|i| {
                let job = Arc::clone(&job);
                let jobs = jobs_rx.clone();
                let results = results_tx.clone();
                let cancel = Arc::clone(&cancel);
                std::thread::Builder::new()
                    .name(format!("loader-{i}"))
                    .spawn(move || worker_loop(&*job, &jobs, &results, &cancel))
                    .expect("cannot start a data loader thread")
            })
            .collect();
        let mut iter = EpochIter {
            job,
            next_out: start_batch,
            next_issued: start_batch,
            end,
            jobs: Some(jobs_tx),
            results: results_rx,
            waiting: HashMap::new(),
            workers,
            cancel,
            skipped_this_epoch,
        };
        if !iter.workers.is_empty() {
            for _ in 0..config.prefetch {
                iter.issue_next();
            }
        }
        iter
    }

    /// Samples skipped as bad in this epoch so far.
    pub fn skipped_count(&self) -> usize {
        self.skipped_this_epoch.load(Ordering::Relaxed)
    }

    /// The number of the batch the next call to `next` returns (counting from 0 in the epoch).
    pub fn next_batch_number(&self) -> usize {
        self.next_out
    }

    fn issue_next(&mut self) {
        if self.next_issued < self.end {
            if let Some(jobs) = &self.jobs {
                // The workers only leave while we are stopping them, so this cannot fail.
                let _ = jobs.send(self.next_issued);
                self.next_issued += 1;
            }
        }
    }

    /// The outcome of batch `self.next_out`, waiting for workers if needed.
    fn take_next_outcome(&mut self) -> BatchOutcome<B> {
        if self.workers.is_empty() {
            return build_guarded(&*self.job, self.next_out);
        }
        loop {
            if let Some(outcome) = self.waiting.remove(&self.next_out) {
                return outcome;
            }
            match self.results.recv() {
                Ok((batch, outcome)) => {
                    self.waiting.insert(batch, outcome);
                }
                // Workers never leave while jobs are pending, unless they could not even
                // report a panic; say so rather than hang.
                Err(_) => {
                    return Err(DataError::bug(
                        format!("<batch {}>", self.next_out),
                        "data loader workers stopped unexpectedly",
                    ))
                }
            }
        }
    }

    fn stop(&mut self) {
        self.next_out = self.end;
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // A worker's panics are caught per batch; a panic escaping it has nothing to tell.
            let _ = worker.join();
        }
        self.waiting.clear();
    }
}

fn worker_loop<B>(
    job: &dyn BuildBatch<B>,
    jobs: &Receiver<usize>,
    results: &Sender<(usize, BatchOutcome<B>)>,
    cancel: &AtomicBool,
) {
    while let Ok(batch) = jobs.recv() {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let outcome = build_guarded(job, batch);
        if results.send((batch, outcome)).is_err() {
            return;
        }
    }
}

impl<B: Send + 'static> Iterator for EpochIter<B> {
    type Item = Result<B>;

    fn next(&mut self) -> Option<Result<B>> {
        while self.next_out < self.end {
            let outcome = self.take_next_outcome();
            self.next_out += 1;
            self.issue_next();
            match outcome {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue,
                Err(error) => {
                    self.stop();
                    return Some(Err(error));
                }
            }
        }
        self.stop();
        None
    }
}

impl<B: Send + 'static> Drop for EpochIter<B> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Sample i is (i, a random number from its generator); index 13 is "corrupt" if asked.
    struct Numbers {
        n: usize,
        bad: Option<usize>,
    }

    impl Dataset for Numbers {
        type Sample = (usize, u64);
        fn len(&self) -> usize {
            self.n
        }
        fn get(&self, index: usize, rng: &mut SampleRng) -> Result<(usize, u64)> {
            if Some(index) == self.bad {
                return Err(DataError::invalid(format!("n/{index}.jpg"), "corrupt"));
            }
            Ok((index, rng.random()))
        }
    }

    type Batch = Vec<(usize, u64)>;
    type CollateFn = fn(Vec<(usize, u64)>, Vec<usize>) -> Result<Batch>;

    fn collate(samples: Vec<(usize, u64)>, _indices: Vec<usize>) -> Result<Batch> {
        Ok(samples)
    }

    fn loader(n: usize, bad: Option<usize>, config: LoaderConfig) -> Loader<Numbers, CollateFn> {
        Loader::new(Numbers { n, bad }, collate as _, config).unwrap()
    }

    fn config(workers: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size: 4,
            workers,
            prefetch: 3,
            shuffle: true,
            seed: 5,
            ..LoaderConfig::default()
        }
    }

    fn all(
        loader: &Loader<Numbers, impl Collate<(usize, u64), Batch = Batch>>,
        epoch: u64,
        start: usize,
    ) -> Vec<Batch> {
        loader.epoch(epoch, start).map(|b| b.unwrap()).collect()
    }

    #[test]
    fn order_and_augmentation_do_not_depend_on_workers() {
        let reference = all(&loader(23, None, config(0)), 2, 0);
        assert_eq!(reference.len(), 6);
        assert_eq!(reference.last().unwrap().len(), 3);
        for workers in [1, 2, 5] {
            assert_eq!(all(&loader(23, None, config(workers)), 2, 0), reference);
        }
        let mut seen: Vec<usize> = reference.iter().flatten().map(|s| s.0).collect();
        assert_ne!(seen, (0..23).collect::<Vec<_>>(), "not shuffled");
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn epochs_shuffle_differently_but_samples_keep_their_numbers_within_an_epoch() {
        let l = loader(23, None, config(2));
        let (a, b) = (all(&l, 0, 0), all(&l, 1, 0));
        assert_ne!(a, b);
        let lookup: HashMap<usize, u64> = a.iter().flatten().copied().collect();
        let other: HashMap<usize, u64> = b.iter().flatten().copied().collect();
        assert!(lookup.iter().all(|(i, v)| other[i] != *v));
    }

    #[test]
    fn resume_yields_exactly_the_remaining_batches() {
        let l = loader(23, None, config(2));
        let full = all(&l, 3, 0);
        for start in 0..=7 {
            assert_eq!(all(&l, 3, start), full[start.min(6)..]);
        }
    }

    #[test]
    fn ranks_partition_the_epoch() {
        for world_size in [1, 2, 3, 4] {
            let mut union = Vec::new();
            for rank in 0..world_size {
                let cfg = LoaderConfig {
                    rank,
                    world_size,
                    ..config(1)
                };
                let l = loader(22, None, cfg);
                let mine: Vec<usize> = all(&l, 1, 0).iter().flatten().map(|s| s.0).collect();
                assert_eq!(mine.len(), 22usize.div_ceil(world_size));
                union.extend(mine);
            }
            // Padding repeats at most world_size - 1 samples; nothing is missing.
            let padding = union.len() - 22;
            union.sort();
            union.dedup();
            assert_eq!(union, (0..22).collect::<Vec<_>>());
            assert!(padding < world_size);
        }
    }

    #[test]
    fn drop_last_leaves_out_the_short_batch() {
        let l = loader(
            23,
            None,
            LoaderConfig {
                drop_last: true,
                ..config(2)
            },
        );
        assert_eq!(l.batches_per_epoch(), 5);
        assert!(all(&l, 0, 0).iter().all(|b| b.len() == 4));
    }

    #[test]
    fn bad_sample_ends_the_epoch_with_its_error() {
        let l = loader(23, Some(13), config(2));
        let results: Vec<_> = l.epoch(0, 0).collect();
        let error = results.last().unwrap().as_ref().unwrap_err();
        assert_eq!(error.to_string(), "n/13.jpg: corrupt");
        assert!(results[..results.len() - 1].iter().all(|r| r.is_ok()));
    }

    #[test]
    fn skip_bad_leaves_the_sample_out_and_records_it() {
        let cfg = LoaderConfig {
            skip_bad: true,
            ..config(2)
        };
        let l = loader(23, Some(13), cfg);
        let mut epoch = l.epoch(0, 0);
        let batches: Vec<_> = (&mut epoch).map(|b| b.unwrap()).collect();
        assert_eq!(epoch.skipped_count(), 1);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 22);
        assert_eq!(batches.len(), 6, "the batch with the bad sample is smaller");
        let _ = all(&l, 1, 0);
        let skipped = l.skipped();
        assert_eq!(skipped.len(), 1, "recorded once over two epochs");
        assert_eq!(skipped[0].index, 13);
        assert_eq!(skipped[0].path, PathBuf::from("n/13.jpg"));
    }

    #[test]
    fn dropping_mid_epoch_stops_the_workers() {
        let l = loader(
            10_000,
            None,
            LoaderConfig {
                batch_size: 1,
                ..config(4)
            },
        );
        let mut epoch = l.epoch(0, 0);
        assert!(epoch.next().unwrap().is_ok());
        drop(epoch); // joins the workers: the test would hang here otherwise
    }

    #[test]
    fn panics_become_errors() {
        let panicking = |_: Vec<(usize, u64)>, _: Vec<usize>| -> Result<()> { panic!("boom") };
        // The default hook would print the intended panic with a backtrace, which under
        // RUST_BACKTRACE=1 takes a debug build about 12 s to symbolise.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let l = Loader::new(Numbers { n: 8, bad: None }, panicking, config(2)).unwrap();
        let first = l.epoch(0, 0).next();
        std::panic::set_hook(hook);
        let first = first.unwrap().unwrap_err();
        assert!(first.to_string().contains("boom"), "{first}");
    }

    #[test]
    fn invalid_config_is_an_error() {
        let cfg = LoaderConfig {
            rank: 2,
            world_size: 2,
            ..config(1)
        };
        let err = Loader::new(Numbers { n: 1, bad: None }, collate, cfg)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "invalid loader configuration: rank 2 is not below world_size 2"
        );
    }
}
