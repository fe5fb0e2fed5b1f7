//! Checkpoints: `.safetensors` files whose header metadata says what they hold (task,
//! architecture, classes, input transform, config, epoch, metrics), written atomically, and
//! loaded by parameter name with one error that lists every name or shape that does not fit.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
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
}

impl CheckpointError {
    pub fn content(path: &Path, message: impl Into<String>) -> Self {
        CheckpointError::Content {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, CheckpointError>;

/// What a checkpoint is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Detection,
    Segmentation,
}

/// The header metadata. Each field is stored under its own key; structured values as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub task: Task,
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

    fn from_header(header: &HashMap<String, String>, path: &Path) -> Result<Self> {
        if !header.contains_key("task") {
            return Err(CheckpointError::content(
                path,
                "no checkpoint metadata (task, arch, classes) in the header: a plain PyTorch state dict? Convert it with `backbone import`",
            ));
        }
        let map: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .map(|(k, v)| {
                let value = match k.as_str() {
                    "task" | "arch" => serde_json::Value::String(v.clone()),
                    _ => serde_json::from_str(v)
                        .unwrap_or_else(|_| serde_json::Value::String(v.clone())),
                };
                (k.clone(), value)
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| CheckpointError::content(path, format!("bad checkpoint metadata ({e})")))
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

    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| CheckpointError::content(path, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads every tensor of a safetensors file onto the CPU, and its header metadata.
pub fn read_safetensors(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let data = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: match e {
            safetensors::SafeTensorError::HeaderTooSmall
            | safetensors::SafeTensorError::InvalidHeaderLength
            | safetensors::SafeTensorError::MetadataIncompleteBuffer => "truncated".to_string(),
            other => format!("{other:?}"),
        },
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
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| CheckpointError::content(path, format!("tensor {name}: {e}")))?;
        tensors.insert(name, t);
    }
    Ok((tensors, header))
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self> {
        let (tensors, header) = read_safetensors(path)?;
        let metadata = Metadata::from_header(&header, path)?;
        Ok(Checkpoint { metadata, tensors })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_safetensors(path, &self.tensors, Some(self.metadata.to_header()))
    }

    /// Checks that the checkpoint holds the expected task, with a message naming the file.
    pub fn expect_task(&self, task: Task, path: &Path) -> Result<()> {
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
    let vars = vs.variables();
    let mut missing: Vec<&str> = vars
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    missing.sort_unstable();
    let unexpected: Vec<&str> = tensors
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    let wrong_shape: Vec<String> = tensors
        .iter()
        .filter_map(|(name, t)| {
            let v = vars.get(name)?;
            (v.size() != t.size())
                .then(|| format!("{name} (file {:?}, model {:?})", t.size(), v.size()))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty()) {
        let mut details = String::new();
        let mut list = |label: &str, items: Vec<String>| {
            if !items.is_empty() {
                details.push_str(&format!(" {} {label}: {};", items.len(), items.join(", ")));
            }
        };
        list("missing", missing.iter().map(|s| s.to_string()).collect());
        list(
            "unexpected",
            unexpected.iter().map(|s| s.to_string()).collect(),
        );
        list("with the wrong shape", wrong_shape);
        details.pop();
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
