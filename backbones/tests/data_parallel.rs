//! Data-parallel training through the engine's loop: two processes on 127.0.0.1 (Gloo),
//! started as `--nproc` starts them (this test executable re-run as the ranks, with
//! torchrun's variables). A small conv net with batch norm on generated images:
//!
//! - two ranks hold identical weights, equal to one process trained on the combined batch
//!   (SyncBatchNorm, so batch statistics are those of the combined batch), and likewise
//!   with gradient accumulation (frozen BN);
//! - a run whose rank 0 is SIGKILLed mid-run and then resumed ends with the same weights;
//! - a rank SIGKILLed mid-run makes the other fail, naming it, within the timeout.

use backbones::layers::{BatchNorm2d, NormMode};
use datasets::loader::{Dataset, Loader, LoaderConfig};
use datasets::rng::SampleRng;
use engine::checkpoint::{Metadata, TaskKind};
use engine::config::{EngineConfig, OptimSection, RunSection, ScheduleSection};
use engine::data_parallel;
use engine::fit::{fit, RunOptions};
use engine::schedule::Decay;
use engine::task::{Learner, Losses, Metrics, Step, Task};
use engine::transfer::upload;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

const SIDE: usize = 6;
const PIXELS: usize = 3 * SIDE * SIDE;
const SAMPLES: usize = 32;
/// What a rank process does (set by the test that starts it).
const SCENARIO: &str = "DP_TEST_SCENARIO";
const OUT: &str = "DP_TEST_OUT";

/// Sample `i`: a 3 x 6 x 6 image of deterministic noise shifted by its class `i % 3`.
struct Images;

fn image(i: usize) -> (Vec<f32>, i64) {
    let class = (i % 3) as i64;
    let x = (0..PIXELS)
        .map(|p| {
            let h = (i * 7919 + p * 104_729) % 1013;
            (h as f32 / 1013.0 - 0.5)
                + if p / (SIDE * SIDE) == class as usize {
                    0.8
                } else {
                    0.0
                }
        })
        .collect();
    (x, class)
}

impl Dataset for Images {
    type Sample = (Vec<f32>, i64);
    fn len(&self) -> usize {
        SAMPLES
    }
    fn get(&self, index: usize, _rng: &mut SampleRng) -> datasets::Result<Self::Sample> {
        Ok(image(index))
    }
}

struct Batch {
    x: Vec<f32>,
    y: Vec<i64>,
}

type Collate = fn(Vec<(Vec<f32>, i64)>, Vec<usize>) -> datasets::Result<Batch>;

fn collate(samples: Vec<(Vec<f32>, i64)>, _: Vec<usize>) -> datasets::Result<Batch> {
    Ok(Batch {
        x: samples.iter().flat_map(|s| s.0.clone()).collect(),
        y: samples.iter().map(|s| s.1).collect(),
    })
}

#[derive(Clone, Serialize, Deserialize)]
struct Data {
    batch_size: usize,
}

#[derive(Clone, Serialize, Deserialize)]
struct Config {
    data: Data,
    optim: OptimSection,
    schedule: ScheduleSection,
    train: RunSection,
}

struct ConvNet {
    config: Config,
    vs: nn::VarStore,
    conv: nn::Conv2D,
    bn: BatchNorm2d,
    fc: nn::Linear,
    /// This process SIGKILLs itself when it reaches this step.
    die_at: Option<u64>,
}

impl ConvNet {
    fn new(config: Config, norm: NormMode, die_at: Option<u64>) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv_config = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let conv = nn::conv2d(vs.root() / "conv", 3, 4, 3, conv_config);
        let bn = BatchNorm2d::new(vs.root() / "bn", 4, norm, 1.0, 1e-5);
        let fc = nn::linear(vs.root() / "fc", 4, 3, Default::default());
        // Different starting weights on every rank: the broadcast from rank 0 must fix that.
        tch::no_grad(|| {
            let mut variables: Vec<_> = vs.variables().into_iter().collect();
            variables.sort_by(|a, b| a.0.cmp(&b.0));
            let offset = data_parallel::rank_from_env() as f64 * 0.3;
            for (i, (_, mut v)) in variables.into_iter().enumerate() {
                let n = v.numel() as i64;
                let values = Tensor::arange(n, (Kind::Float, Device::Cpu));
                let init =
                    ((values * 0.37 + i as f64 + offset).sin() * 0.5).view(v.size().as_slice());
                v.copy_(&init);
            }
        });
        ConvNet {
            config,
            vs,
            conv,
            bn,
            fc,
            die_at,
        }
    }

    fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.bn.forward_t(&self.conv.forward(x), train).relu();
        self.fc
            .forward(&h.mean_dim([2, 3].as_slice(), false, Kind::Float))
    }
}

impl Learner for ConvNet {
    type Input = (Tensor, Tensor);

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, (x, y): &Self::Input, step: &Step) -> Losses {
        if self.die_at == Some(step.iter) {
            // SAFETY: this process ends here, as under `kill -9`.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let loss = self.logits(x, true).cross_entropy_for_logits(y);
        Losses::from([("loss".to_string(), loss)])
    }
}

impl Task for ConvNet {
    type Config = Config;
    type Batch = Batch;
    const BEST_METRIC: &'static str = "neg_loss";

    fn config(&self) -> &Config {
        &self.config
    }
    fn upload(&self, b: &Batch) -> Self::Input {
        let n = b.y.len() as i64;
        let s = SIDE as i64;
        (
            upload(&b.x, &[n, 3, s, s], Device::Cpu),
            upload(&b.y, &[n], Device::Cpu),
        )
    }
    fn evaluate(&mut self, _autocast: engine::amp::Autocast) -> anyhow::Result<Metrics> {
        let _guard = tch::no_grad_guard();
        let (xs, ys): (Vec<Vec<f32>>, Vec<i64>) = (0..12).map(image).unzip();
        let s = SIDE as i64;
        let x = Tensor::from_slice(&xs.concat()).view([12, 3, s, s]);
        let loss = self
            .logits(&x, false)
            .cross_entropy_for_logits(&Tensor::from_slice(&ys))
            .double_value(&[]);
        Ok(Metrics::from([("neg_loss".to_string(), -loss)]))
    }
    fn metadata(&self) -> Metadata {
        Metadata {
            task: TaskKind::Classification,
            arch: "convnet".into(),
            num_classes: 3,
            classes: vec!["a".into(), "b".into(), "c".into()],
            model: serde_json::json!({}),
            transform: None,
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        }
    }
}

fn config(batch_size: usize, accumulate: u64) -> Config {
    Config {
        data: Data { batch_size },
        optim: OptimSection {
            lr: 2.0,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
            no_bias_decay: true,
            lr_mult: BTreeMap::new(),
            freeze: Vec::new(),
            clip_value: None,
        },
        schedule: ScheduleSection {
            epochs: 3,
            warmup_epochs: 0.5,
            decay: Decay::Cosine { floor: 0.0 },
        },
        train: RunSection {
            accumulate,
            log_every: 1,
            checkpoint_every_iters: 2,
            threads: 1,
            ..RunSection::default()
        },
    }
}

/// Trains (as this process's rank, or alone) and returns the final weights.
fn train(task: &mut ConvNet, out: &Path, resume: bool) -> anyhow::Result<()> {
    let c = &task.config;
    let engine = EngineConfig {
        optim: c.optim.clone(),
        schedule: c.schedule.clone(),
        run: c.train.clone(),
        batch_size: c.data.batch_size,
    };
    let loader = Loader::new(
        Images,
        collate as Collate,
        LoaderConfig {
            batch_size: c.data.batch_size,
            workers: 1,
            prefetch: 2,
            shuffle: true,
            drop_last: true,
            seed: 5,
            rank: data_parallel::rank(),
            world_size: data_parallel::world_size(),
            ..LoaderConfig::default()
        },
    )?;
    fit(
        task,
        &loader,
        &engine,
        &RunOptions {
            out: out.to_path_buf(),
            resume,
            max_iters: None,
        },
    )?;
    Ok(())
}

fn weights(vs: &nn::VarStore) -> BTreeMap<String, Vec<f32>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, Vec::<f32>::try_from(v.flatten(0, -1)).unwrap()))
        .collect()
}

fn save_weights(vs: &nn::VarStore, path: &Path) {
    std::fs::write(path, serde_json::to_vec(&weights(vs)).unwrap()).unwrap();
}

fn load_weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_close(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>, what: &str) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, va) in a {
        for (x, y) in va.iter().zip(&b[name]) {
            assert!(
                (x - y).abs() <= 1e-5,
                "{what}: {name} differs: {va:?} vs {:?}",
                b[name]
            );
        }
    }
}

/// The body of a rank process: what `DP_TEST_SCENARIO` says, then its weights to
/// `DP_TEST_OUT/rank<R>.json`. Returns false in the test process itself.
fn run_as_rank() -> bool {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return false;
    };
    let out = PathBuf::from(std::env::var(OUT).unwrap());
    data_parallel::join_from_env(Device::Cpu).unwrap();
    let rank = data_parallel::rank();
    let (batch, accumulate, norm, die_at, resume) = match scenario.as_str() {
        "sync_bn" => (4, 1, NormMode::Sync, None, false),
        "accumulate" => (2, 2, NormMode::Frozen, None, false),
        "rank0_killed" => (4, 1, NormMode::Sync, (rank == 0).then_some(5), false),
        "resume" => (4, 1, NormMode::Sync, None, true),
        "rank1_killed" => (4, 1, NormMode::Frozen, (rank == 1).then_some(3), false),
        other => panic!("unknown scenario {other}"),
    };
    let mut task = ConvNet::new(config(batch, accumulate), norm, die_at);
    match train(&mut task, &out.join("run"), resume) {
        Ok(()) => save_weights(&task.vs, &out.join(format!("rank{rank}.json"))),
        Err(e) => eprintln!("rank {rank} error: {e:#}"),
    }
    true
}

/// Starts the two ranks of `scenario` as `--nproc 2` does and waits for them.
fn launch(test: &str, scenario: &str, out: &Path) -> distributed::launch::Outcome {
    // Through the children's environment only: tests run in parallel threads of this process.
    let out = out.to_str().unwrap();
    let env = [
        (SCENARIO, scenario),
        (OUT, out),
        ("TRICKS_DIST_TIMEOUT_S", "20"),
    ];
    let args = [test, "--exact", "--nocapture", "--test-threads=1"].map(Into::into);
    distributed::launch::run_local_ranks(2, &args, &env).unwrap()
}

/// One process on the combined batch (2 x the rank batch), the same recipe.
fn reference(
    batch: usize,
    accumulate: u64,
    norm: NormMode,
    out: &Path,
) -> BTreeMap<String, Vec<f32>> {
    let mut task = ConvNet::new(config(batch, accumulate), norm, None);
    train(&mut task, out, false).unwrap();
    weights(&task.vs)
}

#[test]
fn two_ranks_with_sync_bn_match_one_process_on_the_combined_batch() {
    if run_as_rank() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outcome = launch(
        "two_ranks_with_sync_bn_match_one_process_on_the_combined_batch",
        "sync_bn",
        tmp.path(),
    );
    assert_eq!(outcome, distributed::launch::Outcome::Success);
    let (r0, r1) = (
        load_weights(&tmp.path().join("rank0.json")),
        load_weights(&tmp.path().join("rank1.json")),
    );
    assert_eq!(r0, r1, "the ranks' weights differ");
    let alone = reference(8, 1, NormMode::Batch, &tmp.path().join("alone"));
    assert_close(&r0, &alone, "2 ranks x 4 with SyncBN vs 1 x 8");
    // Only rank 0 wrote the run folder, and it logged 3 epochs of 4 steps.
    let log = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["iter"], 12);
    assert!(tmp.path().join("run/last.safetensors").exists());
}

#[test]
fn two_ranks_accumulating_match_one_process_on_the_combined_batch() {
    if run_as_rank() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outcome = launch(
        "two_ranks_accumulating_match_one_process_on_the_combined_batch",
        "accumulate",
        tmp.path(),
    );
    assert_eq!(outcome, distributed::launch::Outcome::Success);
    let r0 = load_weights(&tmp.path().join("rank0.json"));
    assert_eq!(r0, load_weights(&tmp.path().join("rank1.json")));
    let alone = reference(8, 1, NormMode::Frozen, &tmp.path().join("alone"));
    assert_close(&r0, &alone, "2 ranks x 2 micro-batches x 2 vs 1 x 8");
}

#[test]
fn a_run_killed_mid_way_and_resumed_ends_with_the_uninterrupted_weights() {
    if run_as_rank() {
        return;
    }
    let test = "a_run_killed_mid_way_and_resumed_ends_with_the_uninterrupted_weights";
    let tmp = tempfile::tempdir().unwrap();
    let outcome = launch(test, "rank0_killed", tmp.path());
    match outcome {
        distributed::launch::Outcome::Failed {
            rank: 0, message, ..
        } => {
            assert!(
                message.contains("rank 0 was killed by signal 9"),
                "{message}"
            )
        }
        other => panic!("expected rank 0 to be killed: {other:?}"),
    }
    assert!(!tmp.path().join("rank1.json").exists());
    assert_eq!(
        launch(test, "resume", tmp.path()),
        distributed::launch::Outcome::Success
    );
    let resumed = load_weights(&tmp.path().join("rank1.json"));
    assert_eq!(resumed, load_weights(&tmp.path().join("rank0.json")));
    let whole = tempfile::tempdir().unwrap();
    assert_eq!(
        launch(test, "sync_bn", whole.path()),
        distributed::launch::Outcome::Success
    );
    assert_eq!(resumed, load_weights(&whole.path().join("rank0.json")));
}

#[test]
fn a_killed_rank_is_named_by_the_survivor_within_the_timeout() {
    if run_as_rank() {
        return;
    }
    // Ranks started by hand, as torchrun's agent would (the launcher would stop the
    // survivor itself): the survivor must find out on its own.
    let test = "a_killed_rank_is_named_by_the_survivor_within_the_timeout";
    let tmp = tempfile::tempdir().unwrap();
    let store = distributed::Store::tcp("127.0.0.1", 0, true, Duration::from_secs(30)).unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(std::env::current_exe().unwrap())
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(SCENARIO, "rank1_killed")
                .env(OUT, tmp.path())
                .env("TRICKS_DIST_TIMEOUT_S", "10")
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", store.port().unwrap().to_string())
                .env("TORCHELASTIC_USE_AGENT_STORE", "True")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let survivor = String::from_utf8_lossy(&outputs[0].stderr).to_string();
    assert!(
        survivor.contains("rank 0 error: rank 0 of 2: the gradient all-reduce failed: lost rank 1"),
        "{survivor}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10 + 8),
        "took {:?}",
        start.elapsed()
    );
    assert!(!tmp.path().join("rank0.json").exists());
}
