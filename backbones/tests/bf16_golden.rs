//! `train.amp = "bf16"` on the CPU computes what PyTorch's `torch.autocast("cpu",
//! dtype=torch.bfloat16)` computes: torchvision's resnet18 with the formula's weights
//! (tests/fixtures/pytorch/make_bf16_golden.py), the same input, the training forward, the
//! loss the classification task trains with, the gradients, and the eval forward.
//!
//! What PyTorch computes in bf16 depends on the CPU: oneDNN's bf16 kernels where it has
//! AVX-512 bf16 or AMX, ATen's generic ones elsewhere, and the two part by far more than one
//! rounding step after 18 layers (PyTorch's own train logits by 0.22, conv1's gradient norm
//! by half). So the script runs here where Python has torch and torchvision; elsewhere the
//! committed figures, made on a CPU without bf16 units, serve on such a CPU only.

use backbones::interop::{import, Framework};
use backbones::{Arch, ResNet, ResNetConfig};
use e2e::{fixture, formula};
use engine::amp::{Autocast, Precision};
use engine::loss::{one_hot_targets, soft_cross_entropy, SmoothingStyle};
use serde_json::Value;
use tch::nn::ModuleT;
use tch::{nn, Device, Kind, Tensor};

const N: i64 = 4;
const SIZE: i64 = 64;
const CLASSES: i64 = 10;

fn resnet18() -> Arch {
    "resnet18".parse().unwrap()
}

fn read(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// resnet18 with the formula's weights, imported through `backbone import`'s code.
fn model(dir: &std::path::Path) -> (nn::VarStore, ResNet) {
    let state_dict = dir.join("resnet18.safetensors");
    formula::write_state_dict(&read("pytorch/resnet18_bf16_keys.json"), &state_dict);
    let ckpt = import(&state_dict, Framework::Torchvision, resnet18().into(), None).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), &ResNetConfig::classifier(resnet18(), CLASSES));
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            v.copy_(&ckpt.tensors[&name]);
        }
    });
    (vs, model)
}

/// The script's input: sin(0.0173 i) * 1.5 over N x 3 x 64 x 64, by the same libtorch ops.
fn formula_input() -> Tensor {
    let i = Tensor::arange(N * 3 * SIZE * SIZE, (Kind::Float, Device::Cpu));
    ((i * 0.0173).sin() * 1.5).view([N, 3, SIZE, SIZE])
}

fn flat(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn rows(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

struct Pass {
    train_logits: Tensor,
    loss: Tensor,
    grads: Vec<(String, Tensor)>,
    eval_logits: Tensor,
}

/// One training forward, loss and backward, then an eval forward, all inside `autocast`,
/// from the formula's weights.
fn pass(autocast: Autocast) -> Pass {
    let tmp = tempfile::tempdir().unwrap();
    let (vs, model) = model(tmp.path());
    let x = formula_input();
    let labels = Tensor::from_slice(&[1i64, 4, 7, 9]);
    let targets = one_hot_targets(&labels, CLASSES, 0.1, SmoothingStyle::Uniform);
    let (train_logits, loss) = autocast.run(|| {
        let logits = model.forward_t(&x, true);
        let loss = soft_cross_entropy(&logits, &targets);
        (logits, loss)
    });
    loss.backward();
    let variables = vs.variables();
    let grads = ["conv1.weight", "layer4.1.bn2.weight", "fc.weight"]
        .iter()
        .map(|n| (n.to_string(), variables[*n].grad()))
        .collect();
    let eval_logits = tch::no_grad(|| autocast.run(|| model.forward_t(&x, false)));
    Pass {
        train_logits,
        loss,
        grads,
        eval_logits,
    }
}

const FIXTURE_ELSEWHERE: &str =
    "this CPU has bf16 kernels and the committed figures come from one without";

/// PyTorch's figures for this CPU's kernels (see the module's note), or why there are none.
fn golden_for_this_cpu() -> Result<Value, String> {
    let fixture_serves = engine::amp::cpu_bf16() == Some(engine::amp::CpuBf16::Emulated);
    let python = match e2e::python::with_modules(&["torch", "torchvision"]) {
        Ok(python) => python,
        Err(_) if fixture_serves => return Ok(read("pytorch/resnet18_bf16_golden.json")),
        Err(reason) => return Err(format!("{FIXTURE_ELSEWHERE}: {reason}")),
    };
    let out = tempfile::tempdir().unwrap();
    let script = fixture("pytorch/make_bf16_golden.py");
    e2e::run_ok(
        &python,
        &[script.to_str().unwrap(), out.path().to_str().unwrap()],
    );
    let text = std::fs::read_to_string(out.path().join("resnet18_bf16_golden.json")).unwrap();
    Ok(serde_json::from_str(&text).unwrap())
}

#[test]
fn resnet18_under_cpu_bf16_autocast_matches_pytorchs() {
    let golden = match golden_for_this_cpu() {
        Ok(golden) => golden,
        Err(reason) => {
            eprintln!("skipped comparing with PyTorch's bf16: {reason}");
            return;
        }
    };
    let (theirs, theirs_fp32) = (&golden["bf16"], &golden["fp32"]);
    let ours = pass(Autocast::new(Precision::Bf16, Device::Cpu));

    // The same types as PyTorch's: bf16 logits (linear is on ATen's lower-precision list),
    // the loss in fp32.
    assert_eq!(theirs["logits_dtype"], "bfloat16");
    assert_eq!(ours.train_logits.kind(), Kind::BFloat16);
    assert_eq!(ours.loss.kind(), Kind::Float);

    // bf16 keeps 8 significant bits: one rounding step is 2^-8 of a value. Ours and
    // PyTorch's run the same kernels, so they agree far more closely than bf16 and fp32 do.
    let logits = flat(&ours.train_logits);
    let range = logits.iter().fold(0f64, |m, v| m.max(v.abs()));
    let tolerance = range / 128.0;
    let diff = max_abs_diff(&logits, &rows(&theirs["train_logits"]));
    let bf16_vs_fp32 = max_abs_diff(
        &rows(&theirs["train_logits"]),
        &rows(&theirs_fp32["train_logits"]),
    );
    assert!(diff <= tolerance, "train logits: {diff} > {tolerance}");
    assert!(
        bf16_vs_fp32 > 4.0 * diff.max(tolerance / 8.0),
        "the fixture must tell bf16 from fp32: {bf16_vs_fp32} vs {diff}"
    );

    let loss = ours.loss.double_value(&[]);
    let (want, fp32_loss) = (
        theirs["loss"].as_f64().unwrap(),
        theirs_fp32["loss"].as_f64().unwrap(),
    );
    assert!(
        (loss - want).abs() <= 2e-3 * want,
        "loss {loss} vs PyTorch's {want}"
    );
    assert!((loss - want).abs() * 4.0 < (fp32_loss - want).abs());

    for (name, grad) in &ours.grads {
        let g = flat(grad);
        let sum_sq: f64 = g.iter().map(|v| v * v).sum();
        let want = theirs["grads"][name]["sum_sq"].as_f64().unwrap();
        assert!(
            (sum_sq - want).abs() <= 0.02 * want,
            "{name}: |grad|^2 {sum_sq} vs PyTorch's {want}"
        );
        let first: Vec<f64> = theirs["grads"][name]["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let scale = want.sqrt() / (g.len() as f64).sqrt();
        let d = max_abs_diff(&g[..first.len()], &first);
        assert!(
            d <= 0.05 * scale.max(first.iter().fold(0f64, |m, v| m.max(v.abs()))),
            "{name}: first values differ by {d}"
        );
    }

    let eval = flat(&ours.eval_logits);
    let range = eval.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&eval, &rows(&theirs["eval_logits"]));
    assert!(diff <= range / 128.0, "eval logits: {diff}");
}

#[test]
fn resnet18_in_fp32_matches_pytorchs_fp32() {
    let golden = read("pytorch/resnet18_bf16_golden.json");
    let ours = pass(Autocast::OFF);
    assert_eq!(ours.train_logits.kind(), Kind::Float);
    let logits = flat(&ours.train_logits);
    let diff = max_abs_diff(&logits, &rows(&golden["fp32"]["train_logits"]));
    assert!(diff < 1e-3, "fp32 train logits: {diff}");
    let want = golden["fp32"]["loss"].as_f64().unwrap();
    assert!((ours.loss.double_value(&[]) - want).abs() < 1e-5 * want.max(1.0));
}
