//! What an export to PyTorch hands over: a state dict a PyTorch model loads with
//! `load_state_dict(strict=True)`, the `__metadata__` that travels with it (class names, the
//! settings the model must be built with), and the Python lines that build and load it. A
//! safetensors file has no place for code, so the lines are printed and the settings written
//! as JSON beside the tensors.

use crate::checkpoint::{write_safetensors, Checkpoint, CheckpointError, NamedTensors};
use crate::cli::BadInput;
use crate::outputs;
use crate::state_dict::CLASSES_KEY;
use anyhow::Context;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// The `__metadata__` key of the keyword arguments (a JSON object) the model is built with.
pub const KWARGS_KEY: &str = "torchvision_kwargs";
/// The `__metadata__` key of the model's builder, e.g. `torchvision.models.detection.fasterrcnn_resnet50_fpn`.
pub const BUILDER_KEY: &str = "torchvision_builder";
/// The `__metadata__` key of the batch-norm epsilon the weights were trained with.
pub const BN_EPS_KEY: &str = "bn_eps";

/// PyTorch's default batch-norm epsilon (`nn.BatchNorm2d`, `FrozenBatchNorm2d`).
pub const TORCH_BN_EPS: f64 = 1e-5;

/// A state dict ready to write, with what a user needs to load it.
pub struct PytorchExport {
    pub tensors: NamedTensors,
    pub header: HashMap<String, String>,
    /// The Python that builds the model and loads the file (the file's path left as `OUT`
    /// until [`PytorchExport::python`] fills it in).
    lines: Vec<String>,
}

const OUT: &str = "{OUT}";

impl PytorchExport {
    /// `builder(**kwargs)` with the weights loaded from the file, and the batch norms' epsilon
    /// set where the weights' is not PyTorch's default. `classes` are the names of the model's
    /// output rows in order; `extra` goes into the metadata as it is.
    pub fn new(
        tensors: NamedTensors,
        builder: &str,
        kwargs: &[(&str, Value)],
        bn_eps: f64,
        classes: &[String],
        extra: &[(&str, Value)],
    ) -> Self {
        let kwargs_object: serde_json::Map<String, Value> = kwargs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut header = HashMap::from([
            // safetensors' own tag for a PyTorch state dict.
            ("format".to_string(), "pt".to_string()),
            (
                CLASSES_KEY.to_string(),
                serde_json::to_string(classes).expect("names serialise"),
            ),
            (BUILDER_KEY.to_string(), builder.to_string()),
            (
                KWARGS_KEY.to_string(),
                Value::Object(kwargs_object).to_string(),
            ),
            (BN_EPS_KEY.to_string(), bn_eps.to_string()),
        ]);
        for (k, v) in extra {
            header.insert(k.to_string(), v.to_string());
        }
        let arguments: Vec<String> = kwargs
            .iter()
            .map(|(k, v)| format!("{k}={}", python_literal(v)))
            .collect();
        let mut lines = vec![
            "import safetensors.torch, torch, torchvision".to_string(),
            format!("model = {builder}({})", arguments.join(", ")),
            format!("model.load_state_dict(safetensors.torch.load_file({OUT}), strict=True)"),
        ];
        if bn_eps != TORCH_BN_EPS {
            // torchvision builds its batch norms with 1e-5; these weights were trained with
            // another epsilon, which only this line gives the model back.
            lines.push(format!(
                "[setattr(m, \"eps\", {bn_eps}) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]"
            ));
        }
        lines.push("model.eval()".to_string());
        PytorchExport {
            tensors,
            header,
            lines,
        }
    }

    /// Adds a line of Python after the model is ready (how to call it, as a comment or code).
    pub fn then(mut self, line: String) -> Self {
        self.lines.push(line);
        self
    }

    /// The Python lines that build the model and load the file at `out`.
    pub fn python(&self, out: &Path) -> String {
        let path = python_literal(&Value::String(out.display().to_string()));
        self.lines
            .iter()
            .map(|line| line.replace(OUT, &path) + "\n")
            .collect()
    }

    /// Writes the state dict and its metadata to `out`, atomically.
    pub fn write(&self, out: &Path) -> Result<(), CheckpointError> {
        write_safetensors(out, &self.tensors, Some(self.header.clone()))
    }
}

/// What `detect export` and `segment export` do once they know the converter: refuse an
/// output that is the checkpoint, read the checkpoint, convert it, write the state dict
/// atomically, say so (with `note`'s line, if any, about the checkpoint), and print the
/// Python that loads it.
pub fn export_command(
    ckpt_path: &Path,
    output: &Path,
    convert: impl FnOnce(&Checkpoint, &Path) -> Result<PytorchExport, CheckpointError>,
    note: impl FnOnce(&Checkpoint) -> Option<String>,
) -> anyhow::Result<()> {
    outputs::check(
        &[outputs::named(ckpt_path, "the checkpoint")],
        &[outputs::named(output, "the state dict")],
        true,
    )
    .map_err(BadInput)?;
    let ckpt = Checkpoint::read(ckpt_path)?;
    let export = convert(&ckpt, ckpt_path)?;
    export
        .write(output)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "exported {} ({}, {} classes) to {}; in Python:",
        ckpt_path.display(),
        ckpt.metadata.arch,
        ckpt.metadata.num_classes,
        output.display()
    );
    if let Some(note) = note(&ckpt) {
        eprintln!("note: {note}");
    }
    print!("{}", export.python(output));
    Ok(())
}

/// A JSON value as Python source: numbers and strings read the same in both (a JSON string
/// is a valid Python string literal), lists become tuples or lists alike, and the three
/// words differ.
pub fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// An `f32` as the shortest decimal that reads back as it (0.485, not 0.48500001430511475),
/// so the Python line shows the number the checkpoint holds.
pub fn f32_value(x: f32) -> Value {
    let shortest: f64 = x.to_string().parse().expect("a float prints as a float");
    Value::from(shortest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_line_spells_python_and_fills_in_the_path() {
        let export = PytorchExport::new(
            NamedTensors::new(),
            "torchvision.models.x",
            &[
                ("num_classes", json!(3)),
                ("aux_loss", json!(true)),
                ("image_mean", json!([f32_value(0.485), 0.5])),
            ],
            0.0,
            &["a".into(), "b".into()],
            &[],
        );
        let python = export.python(Path::new("out dir/m.safetensors"));
        assert!(
            python.contains(
                "model = torchvision.models.x(num_classes=3, aux_loss=True, image_mean=[0.485, 0.5])"
            ),
            "{python}"
        );
        assert!(
            python.contains("load_file(\"out dir/m.safetensors\"), strict=True)"),
            "{python}"
        );
        assert!(python.contains("setattr(m, \"eps\", 0)"), "{python}");
        assert_eq!(export.header["classes"], "[\"a\",\"b\"]");
        assert_eq!(
            export.header[KWARGS_KEY],
            "{\"aux_loss\":true,\"image_mean\":[0.485,0.5],\"num_classes\":3}"
        );
    }
}
