//! Checkpoints: `.safetensors` files whose header metadata says what they hold (task,
//! architecture, classes, input transform, config, epoch, metrics), written atomically, and
//! loaded by parameter name with one error that lists every name or shape that does not fit.

use crate::limits;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid safetensors file ({reason})", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: {message}", path.display())]
    Content { path: PathBuf, message: String },
    #[error("{}: the tensors do not fit {model}:{details}", path.display())]
    Mismatch {
        path: PathBuf,
        model: String,
        details: String,
    },
    /// A metadata field that does not parse, is out of range or contradicts the tensors.
    #[error("{}: checkpoint metadata '{field}': {message}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl CheckpointError {
    pub fn content(path: &Path, message: impl Into<String>) -> Self {
        CheckpointError::Content {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn field(path: &Path, field: &str, message: impl Into<String>) -> Self {
        CheckpointError::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, CheckpointError>;

/// What a checkpoint is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Classification,
    Detection,
    Segmentation,
}

/// The header metadata. Each field is stored under its own key; structured values as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub task: TaskKind,
    pub arch: String,
    pub num_classes: i64,
    pub classes: Vec<String>,
    /// The model's own settings (for a ResNet, its `ResNetConfig`).
    pub model: serde_json::Value,
    /// How inputs are prepared at evaluation (resize, crop, mean, std).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<serde_json::Value>,
    /// The resolved training config, when the checkpoint comes from a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
}

impl Metadata {
    fn to_header(&self) -> HashMap<String, String> {
        let value = serde_json::to_value(self).expect("metadata serialises");
        let serde_json::Value::Object(map) = value else {
            unreachable!("a struct is an object")
        };
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect()
    }

    /// Parses the header field by field, so that a field of the wrong type is named.
    fn from_header(header: &HashMap<String, String>, path: &Path) -> Result<Self> {
        if !header.contains_key("task") {
            return Err(CheckpointError::content(
                path,
                "no checkpoint metadata (task, arch, classes) in the header: a plain PyTorch state dict? Convert it with `backbone import`",
            ));
        }
        let text = |key: &str| {
            header
                .get(key)
                .ok_or_else(|| CheckpointError::field(path, key, "missing"))
        };
        let required = |key: &str| {
            field(header, key).ok_or_else(|| CheckpointError::field(path, key, "missing"))
        };
        // Names are stored bare, not as JSON strings.
        let task = typed(
            path,
            "task",
            serde_json::Value::String(text("task")?.clone()),
            "classification, detection or segmentation",
        )?;
        let arch = text("arch")?.clone();
        let num_classes = typed(path, "num_classes", required("num_classes")?, "an integer")?;
        let classes = typed(
            path,
            "classes",
            required("classes")?,
            "a list of class names",
        )?;
        let model = required("model")?;
        let counter = |key: &str| -> Result<Option<u64>> {
            field(header, key)
                .map(|v| typed(path, key, v, "a count (0 or more)"))
                .transpose()
        };
        Ok(Metadata {
            task,
            arch,
            num_classes,
            classes,
            model,
            transform: field(header, "transform"),
            config: field(header, "config"),
            epoch: counter("epoch")?,
            iter: counter("iter")?,
            metrics: field(header, "metrics"),
        })
    }

    /// The `model` field read as a task's model config (`what` names it in the error, "a
    /// ResNet config").
    pub fn model_as<C: serde::de::DeserializeOwned>(&self, path: &Path, what: &str) -> Result<C> {
        serde_json::from_value(self.model.clone())
            .map_err(|e| CheckpointError::field(path, "model", format!("not {what} ({e})")))
    }

    /// The `transform` field read as a task's input transform (`what` names it in the error),
    /// or `absent` where the checkpoint has none (a missing transform is an error without).
    pub fn transform_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        what: &str,
        absent: Option<T>,
    ) -> Result<T> {
        match (&self.transform, absent) {
            (Some(t), _) => serde_json::from_value(t.clone()).map_err(|e| {
                CheckpointError::field(path, "transform", format!("not {what} ({e})"))
            }),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(CheckpointError::field(path, "transform", "missing")),
        }
    }

    /// Checks that the model config agrees with the header: its architecture (`described`, "a
    /// resnet50d") is `arch` (`same_arch`, as the task compares them), and its head's classes
    /// (`num_classes`; `head`, "3 classes") are `num_classes`.
    pub fn check_model_agrees(
        &self,
        path: &Path,
        same_arch: bool,
        described: &str,
        num_classes: Option<i64>,
        head: &str,
    ) -> Result<()> {
        let bad = |message: String| Err(CheckpointError::field(path, "model", message));
        if !same_arch {
            return bad(format!("describes {described} but arch says {}", self.arch));
        }
        if num_classes != Some(self.num_classes) {
            return bad(format!(
                "has {head} but num_classes is {}",
                self.num_classes
            ));
        }
        Ok(())
    }

    /// Checks what every checkpoint's metadata must satisfy whatever its task: a known
    /// architecture name of sane length, a number of classes within bounds and as many class
    /// names, none twice (torchvision's "N/A" placeholders aside). Task-specific fields (the model config, the transform) are checked by the
    /// task's own [`TaskSpec`].
    pub fn validate(&self, path: &Path) -> Result<()> {
        if self.arch.is_empty() || self.arch.len() > limits::NAME_LEN {
            return Err(CheckpointError::field(
                path,
                "arch",
                format!(
                    "must be a name of 1 to {} characters, not {}",
                    limits::NAME_LEN,
                    short(&format!("{:?}", self.arch))
                ),
            ));
        }
        limits::check("the number of classes", self.num_classes, &limits::CLASSES)
            .map_err(|e| CheckpointError::field(path, "num_classes", e))?;
        if self.classes.len() as i64 != self.num_classes {
            return Err(CheckpointError::field(
                path,
                "classes",
                format!(
                    "lists {} class names but num_classes is {}",
                    self.classes.len(),
                    self.num_classes
                ),
            ));
        }
        if let Some(name) = datasets::class_list::first_duplicate(&self.classes) {
            return Err(CheckpointError::field(
                path,
                "classes",
                format!(
                    "names class {} twice (two classes of one name cannot be told apart)",
                    short(&format!("{name:?}"))
                ),
            ));
        }
        Ok(())
    }
}

/// The value of `key` in the header: JSON where it parses (numbers, lists, objects), else the
/// string itself.
fn field(header: &HashMap<String, String>, key: &str) -> Option<serde_json::Value> {
    let text = header.get(key)?;
    Some(serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone())))
}

/// `value` as a `T`, or an error naming the field, what it must be and what it is.
fn typed<T: serde::de::DeserializeOwned>(
    path: &Path,
    key: &str,
    value: serde_json::Value,
    expected: &str,
) -> Result<T> {
    let shown = short(&value.to_string());
    serde_json::from_value(value)
        .map_err(|_| CheckpointError::field(path, key, format!("must be {expected}, not {shown}")))
}

/// A value quoted in an error, cut to a readable length.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Tensors by name (sorted), on the CPU, as read from or about to be written to a file.
pub type NamedTensors = BTreeMap<String, Tensor>;

/// A checkpoint file's contents.
#[derive(Debug)]
pub struct Checkpoint {
    pub metadata: Metadata,
    pub tensors: NamedTensors,
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// Writes tensors (any device) and optional metadata to `path` atomically: a temporary file in
/// the same folder, flushed to disk, then renamed over the old one. If anything fails (a full
/// disk), the old file is untouched and the temporary file is removed.
pub fn write_safetensors(
    path: &Path,
    tensors: &NamedTensors,
    header: Option<HashMap<String, String>>,
) -> Result<()> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(Device::Cpu).contiguous();
        let dtype = dtype_of(t.kind()).ok_or_else(|| {
            CheckpointError::content(
                path,
                format!(
                    "tensor {name} has type {:?}, which safetensors cannot hold",
                    t.kind()
                ),
            )
        })?;
        let numel = t.numel();
        let mut buf = vec![0u8; numel * dtype.size()];
        t.copy_data_u8(&mut buf, numel);
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        bytes.push((name.as_str(), dtype, shape, buf));
    }
    let views = bytes.iter().map(|(name, dtype, shape, buf)| {
        (
            *name,
            TensorView::new(*dtype, shape.clone(), buf).expect("sizes agree"),
        )
    });
    let data = safetensors::serialize(views, &header)
        .map_err(|e| CheckpointError::content(path, format!("cannot serialise: {e}")))?;

    crate::atomic_write::write(path, &data).map_err(io)
}

/// Reads every tensor of a safetensors file onto the CPU, and its header metadata.
/// The file is opened through the bounded input layer (a regular file of at most
/// `MAX_CHECKPOINT_BYTES`), and the lengths its header declares are checked against the
/// file's length before its contents are read (see [`read_checked_file`]).
pub fn read_safetensors(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let data = read_checked_file(path)?;
    let format = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: describe_format_error(e),
    };
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(format)?;
    let header = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&data).map_err(format)?;
    let mut tensors = NamedTensors::new();
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            CheckpointError::content(
                path,
                format!("tensor {name} has unsupported type {:?}", view.dtype()),
            )
        })?;
        let shape = view
            .shape()
            .iter()
            .map(|&d| i64::try_from(d))
            .collect::<std::result::Result<Vec<i64>, _>>()
            .map_err(|_| {
                CheckpointError::content(
                    path,
                    format!("tensor {name} has an impossible shape {:?}", view.shape()),
                )
            })?;
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| CheckpointError::content(path, format!("tensor {name}: {e}")))?;
        tensors.insert(name, t);
    }
    Ok((tensors, header))
}

/// The bytes of a safetensors file, read only once its header agrees with its length: the
/// first 8 bytes declare the header's length, the header's `data_offsets` where the tensor
/// data ends, and the file must end exactly there. A file that lies about either is refused
/// before its body is read or anything of its declared size is allocated.
fn read_checked_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    const MAX_HEADER: u64 = 100_000_000;
    let data_error = |e: datasets::DataError| match e {
        datasets::DataError::Io { path, source } => CheckpointError::Io { path, source },
        other => CheckpointError::content(path, other.message()),
    };
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let format = |reason: String| CheckpointError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let (file, len) = datasets::input_file::open_regular(
        path,
        datasets::limits::MAX_CHECKPOINT_BYTES,
        "a checkpoint",
    )
    .map_err(data_error)?;
    let mut file = file.take(len);
    let mut prefix = [0u8; 8];
    if len < 8 {
        return Err(format(format!(
            "truncated: {len} bytes, shorter than the 8-byte header length"
        )));
    }
    file.read_exact(&mut prefix).map_err(io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER {
        return Err(format(
            "its first 8 bytes declare a header over 100 MB".into(),
        ));
    }
    if 8 + header_len > len {
        return Err(format(format!(
            "truncated: its first 8 bytes declare a {header_len}-byte header, but the file is {len} bytes"
        )));
    }
    let mut data = Vec::with_capacity(8 + header_len as usize);
    data.extend_from_slice(&prefix);
    (&mut file)
        .take(header_len)
        .read_to_end(&mut data)
        .map_err(io)?;
    // Only the end of the tensor data matters here; safetensors checks the rest below.
    let data_end = declared_data_end(&data[8..]);
    if let Some(end) = data_end {
        let expected = 8 + header_len + end;
        if expected > len {
            return Err(format(format!(
                "truncated: its header declares {end} bytes of tensor data, so a {expected}-byte file, but the file is {len} bytes"
            )));
        }
    }
    data.try_reserve_exact((len - data.len() as u64) as usize)
        .map_err(|e| CheckpointError::content(path, format!("cannot hold the file ({e})")))?;
    file.read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 != len {
        return Err(CheckpointError::content(
            path,
            "changed length while it was read".to_string(),
        ));
    }
    Ok(data)
}

/// The largest `data_offsets` end in a safetensors header, or None where the header is not
/// the JSON it should be (safetensors then names the problem).
fn declared_data_end(header: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(header).ok()?;
    let mut end = 0u64;
    for (name, info) in value.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info.get("data_offsets")?.as_array()?;
        for offset in offsets {
            end = end.max(offset.as_u64()?);
        }
    }
    Some(end)
}

/// A safetensors format error as a sentence (the crate's own are debug names such as
/// `InvalidOffset("bn1.bias")`).
fn describe_format_error(e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall | E::InvalidHeaderLength => {
            "truncated: shorter than the header length it declares".into()
        }
        E::MetadataIncompleteBuffer => {
            "truncated or padded: the tensor data does not end where the header says".into()
        }
        E::HeaderTooLarge => "its first 8 bytes declare a header over 100 MB".into(),
        E::InvalidHeader => "its header is not UTF-8 text".into(),
        E::InvalidHeaderStart => "its header does not start with '{'".into(),
        E::InvalidHeaderDeserialization => {
            "its header is not a JSON table of tensors (dtype, shape, data_offsets) with string metadata".into()
        }
        E::TensorNotFound(name) => format!("tensor {name} is not in the file"),
        E::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and type".into()
        }
        E::InvalidOffset(name) => format!(
            "the data offsets of tensor {name} overlap or leave a gap after the previous tensor"
        ),
        E::ValidationOverflow => "a tensor's shape is too large to exist".into(),
        E::InvalidTensorView(dtype, shape, len) => format!(
            "a {dtype:?} tensor of shape {shape:?} cannot span {len} bytes"
        ),
        E::IoError(e) => e.to_string(),
        E::JsonError(e) => format!("bad header JSON ({e})"),
    }
}

/// What a task's checkpoint says about its model (its config, input transform, head), each
/// field checked against the tensors. Each task implements it in its own crate, so this core
/// reads and writes checkpoints of every task without knowing any.
pub trait TaskSpec: Sized {
    /// The task whose checkpoints this spec describes.
    const TASK: TaskKind;

    /// The spec of `ckpt` (read from `path`, named in errors), every task-specific field
    /// checked.
    fn of(ckpt: &Checkpoint, path: &Path) -> Result<Self>;
}

impl Checkpoint {
    /// Reads a checkpoint of any task, checking what every task's metadata must satisfy
    /// ([`Metadata::validate`]); [`Checkpoint::read_as`] checks a task's own fields too.
    pub fn read(path: &Path) -> Result<Self> {
        let (tensors, header) = read_safetensors(path)?;
        let metadata = Metadata::from_header(&header, path)?;
        metadata.validate(path)?;
        Ok(Checkpoint { metadata, tensors })
    }

    /// Reads a checkpoint that must hold `S`'s task, and its spec, every field checked before
    /// the command does anything with it.
    pub fn read_as<S: TaskSpec>(path: &Path) -> Result<(Self, S)> {
        let ckpt = Self::read(path)?;
        ckpt.expect_task(S::TASK, path)?;
        let spec = S::of(&ckpt, path)?;
        Ok((ckpt, spec))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_safetensors(path, &self.tensors, Some(self.metadata.to_header()))
    }

    /// Checks that the checkpoint holds the expected task, with a message naming the file.
    pub fn expect_task(&self, task: TaskKind, path: &Path) -> Result<()> {
        if self.metadata.task != task {
            return Err(CheckpointError::content(
                path,
                format!(
                    "is a {:?} checkpoint ({}), not a {:?} one",
                    self.metadata.task, self.metadata.arch, task
                )
                .to_lowercase(),
            ));
        }
        Ok(())
    }
}

/// What keeps `tensors` from filling `vars` by name, as one line listing the variables
/// without a tensor, the tensors without a variable and the names whose shapes differ; None
/// when they fit.
pub fn name_mismatch(vars: &NamedTensors, tensors: &NamedTensors) -> Option<String> {
    let missing: Vec<String> = vars
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = tensors
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .cloned()
        .collect();
    let wrong_shape: Vec<String> = tensors
        .iter()
        .filter_map(|(name, t)| {
            let v = vars.get(name)?;
            (v.size() != t.size())
                .then(|| format!("{name} (file {:?}, model {:?})", t.size(), v.size()))
        })
        .collect();
    let mut details = String::new();
    for (label, items) in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("with the wrong shape", wrong_shape),
    ] {
        if !items.is_empty() {
            details.push_str(&format!(" {} {label}: {};", items.len(), items.join(", ")));
        }
    }
    details.pop();
    (!details.is_empty()).then_some(details)
}

/// Refuses weights that are not all finite floating point: a tensor of another type (`model`
/// says whose tensors these are: "a classifier's"), or one holding NaN or an infinity.
pub fn check_finite_weights(tensors: &NamedTensors, path: &Path, model: &str) -> Result<()> {
    if let Some((name, t)) = tensors.iter().find(|(_, t)| !t.is_floating_point()) {
        return Err(CheckpointError::content(
            path,
            format!(
                "tensor {name} holds {:?} values; {model} tensors are floating point",
                t.kind()
            ),
        ));
    }
    if let Some(name) = first_non_finite(tensors) {
        return Err(CheckpointError::content(
            path,
            format!("tensor {name} holds NaN or infinite values"),
        ));
    }
    Ok(())
}

/// The name of the first floating-point tensor holding a NaN or an infinity, if any: weights
/// and training state are finite, so such a file is corrupt (or was written to lie).
pub fn first_non_finite(tensors: &NamedTensors) -> Option<&str> {
    tensors
        .iter()
        .find(|(_, t)| {
            t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false)
        })
        .map(|(name, _)| name.as_str())
}

/// The variables of a VarStore, by name.
pub fn var_store_tensors(vs: &tch::nn::VarStore) -> NamedTensors {
    vs.variables().into_iter().collect()
}

/// Copies `tensors` into the VarStore's variables of the same names. Every variable must be
/// filled and every tensor used, with equal shapes; otherwise one error lists every missing
/// name, unexpected name and shape mismatch. Types are converted (e.g. f16 files into f32).
pub fn load_into(
    vs: &tch::nn::VarStore,
    tensors: &NamedTensors,
    path: &Path,
    model: &str,
) -> Result<()> {
    let vars: NamedTensors = vs.variables().into_iter().collect();
    if let Some(details) = name_mismatch(&vars, tensors) {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            model: model.to_string(),
            details,
        });
    }
    tch::no_grad(|| {
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            var.copy_(&tensors[name]);
        }
    });
    Ok(())
}

#[cfg(test)]
mod metadata_tests {
    use super::*;

    fn metadata(classes: &[&str]) -> Metadata {
        Metadata {
            task: TaskKind::Detection,
            arch: "fasterrcnn_resnet50_fpn".into(),
            num_classes: classes.len() as i64,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            model: serde_json::Value::Null,
            transform: None,
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        }
    }

    #[test]
    fn a_class_named_twice_is_refused_but_torchvision_placeholders() {
        let path = Path::new("model.safetensors");
        let err = metadata(&["cat", "dog", "cat"])
            .validate(path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("names class \"cat\" twice"), "{err}");
        assert!(err.contains("model.safetensors"), "{err}");
        metadata(&["person", "N/A", "car", "N/A"])
            .validate(path)
            .unwrap();
    }
}
