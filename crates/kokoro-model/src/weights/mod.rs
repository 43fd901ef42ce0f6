//! Weight files: import, the canonical file, and loading into [`KModel`].
//!
//! Every source becomes a [`WeightSet`]: tensors named by their upstream PyTorch state-dict paths
//! (weight norm folded, so `X.weight` rather than `X.parametrizations.weight.original0/1`), in
//! PyTorch layout, each either float32 or quantized with its scales. Loading dequantizes to f32 and
//! hands the tensors to burn-store's [`ModuleSnapshot::apply`] with the PyTorch-to-burn adapter
//! (Linear weights transposed, norm `weight`/`bias` read as `gamma`/`beta`); missing and
//! unexpected tensors are reported by name.
//!
//! Key map applied on the way into the module (upstream → ours):
//! - `text_encoder.cnn.N.0.*` → `text_encoder.cnn.N.conv.*`
//! - `text_encoder.cnn.N.1.*` → `text_encoder.cnn.N.norm.*`
//!
//! Upstream tensors the forward pass never reads are dropped with a note: `bert.pooler.*`,
//! `bert.embeddings.position_ids`, and InstanceNorm affine parameters (`*.norm.weight/bias` inside
//! AdaIN layers, ones and zeros in the published weights).

mod canonical;
mod onnx;
mod pth;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

// std's Instant panics in the browser; web-time is the same type natively.
use web_time::Instant;

use burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::Device;

pub use canonical::{read_canonical, read_canonical_bytes, write_canonical};
pub use onnx::{import_onnx, import_onnx_bytes};
pub use pth::{import_pth, import_pth_bytes};

use crate::config::KokoroConfig;
use crate::model::KModel;

/// Errors of reading, converting or loading weights.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Occurs when a weight file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Occurs when a file is not valid in its format (truncated, corrupt, wrong kind of file).
    #[error("{path} is not a valid {format} file: {reason}")]
    Corrupt { path: String, format: &'static str, reason: String },
    /// Occurs when a file's extension or contents match no supported format.
    #[error("{0}: unknown weight format (expected .safetensors, .onnx or .pth)")]
    UnknownFormat(String),
    /// Occurs when a tensor the model needs is missing, has the wrong shape, or an unknown tensor
    /// is present.
    #[error("weights do not match Kokoro-82M v1.0: {0}")]
    Mismatch(String),
    /// Occurs when a canonical file names another model or an unknown storage precision.
    #[error("{path}: {reason}")]
    Metadata { path: String, reason: String },
}

/// How tensors are stored in a weight set or canonical file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Precision {
    /// Everything float32.
    F32,
    /// Quantized tensors kept as int8/uint8 with their scales (the int8 ONNX export's precision).
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

/// One tensor in PyTorch layout, float or quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum QTensor {
    F32 { shape: Vec<usize>, data: Vec<f32> },
    /// Symmetric int8: `value = q * scale[row]`, `scale` has one entry (per tensor) or one per
    /// row (axis 0).
    I8 { shape: Vec<usize>, data: Vec<i8>, scale: Vec<f32> },
    /// Asymmetric uint8 per tensor: `value = (q - zero_point) * scale`.
    U8 { shape: Vec<usize>, data: Vec<u8>, scale: f32, zero_point: u8 },
}

impl QTensor {
    pub fn shape(&self) -> &[usize] {
        match self {
            QTensor::F32 { shape, .. } | QTensor::I8 { shape, .. } | QTensor::U8 { shape, .. } => shape,
        }
    }

    /// Returns the float32 values.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            QTensor::F32 { data, .. } => data.clone(),
            QTensor::I8 { data, scale, .. } if scale.len() == 1 => data.iter().map(|&q| q as f32 * scale[0]).collect(),
            // One scale per row; `validate` checked that rows (axis 0) match the scales. Rows of no
            // values (shape [n, 0]) have nothing to scale, and `chunks_exact(0)` would panic (issue 12).
            QTensor::I8 { data, scale, .. } => match data.len().checked_div(scale.len()) {
                Some(row) if row > 0 => {
                    data.chunks_exact(row).zip(scale).flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s)).collect()
                }
                _ => Vec::new(),
            },
            QTensor::U8 { data, scale, zero_point, .. } => {
                data.iter().map(|&q| (q as f32 - *zero_point as f32) * scale).collect()
            }
        }
    }

    /// Checks that the values fill the shape and the scales fit it; the error names the tensor.
    fn validate(&self, name: &str) -> Result<(), String> {
        let shape = self.shape();
        // Issue 12: shapes come from files, so their product may overflow.
        let n = element_count(shape).ok_or_else(|| format!("{name}: shape {shape:?} has more elements than memory holds"))?;
        let len = match self {
            QTensor::F32 { data, .. } => data.len(),
            QTensor::I8 { data, scale, shape } => {
                // One scale, or one per row. Issue 12: a 0-d tensor has no rows, and a tensor of no
                // rows with no scales would divide by zero when dequantized.
                let per_row = !scale.is_empty() && shape.first() == Some(&scale.len());
                if scale.len() != 1 && !per_row {
                    return Err(format!("{name}: {} scales for shape {shape:?} (expected one, or one per row)", scale.len()));
                }
                data.len()
            }
            QTensor::U8 { data, .. } => data.len(),
        };
        if len != n {
            return Err(format!("{name}: {len} values for shape {:?}", self.shape()));
        }
        Ok(())
    }
}

/// The number of elements of `shape`, or `None` if it overflows `usize`.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// A full set of Kokoro weights, named by PyTorch state-dict paths.
#[derive(Debug, Clone)]
pub struct WeightSet {
    pub tensors: BTreeMap<String, QTensor>,
    /// Where the weights came from (file name and format), kept in the canonical file's metadata.
    pub source: String,
}

impl WeightSet {
    /// Returns the storage precision: `Int8` if any tensor is quantized.
    pub fn precision(&self) -> Precision {
        if self.tensors.values().any(|t| !matches!(t, QTensor::F32 { .. })) { Precision::Int8 } else { Precision::F32 }
    }

    /// Returns a copy with every tensor dequantized to float32.
    pub fn to_f32(&self) -> WeightSet {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), QTensor::F32 { shape: t.shape().to_vec(), data: t.dequantize() }))
            .collect();
        WeightSet { tensors, source: self.source.clone() }
    }

    /// Checks that every tensor's values fill its shape and its scales fit it (what the readers
    /// guarantee and loading relies on); the error lists every tensor that does not.
    pub fn validate(&self) -> Result<(), LoadError> {
        let problems: Vec<String> = self.tensors.iter().filter_map(|(name, t)| t.validate(name).err()).collect();
        if problems.is_empty() { Ok(()) } else { Err(LoadError::Mismatch(problems.join("; "))) }
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.shape().iter().product::<usize>()).sum()
    }

    /// Reads any supported file: canonical `.safetensors`, `.onnx`, or `.pth`.
    pub fn read(path: &Path) -> Result<WeightSet, LoadError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => read_canonical(path),
            "onnx" => import_onnx(path),
            "pth" | "pt" => import_pth(path),
            _ => Err(LoadError::UnknownFormat(path.display().to_string())),
        }
    }

    /// Builds [`KModel`] on `device` from these weights.
    pub fn into_model(self, config: &KokoroConfig, device: &Device) -> Result<KModel, LoadError> {
        self.validate()?;
        let mut tensors = Vec::with_capacity(self.tensors.len());
        let mut problems = Vec::new();
        for (name, t) in &self.tensors {
            if is_unused_upstream(name) {
                continue;
            }
            let data = t.dequantize();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                problems.push(format!("{name}: non-finite value at index {i}"));
                continue;
            }
            tensors.push(PackTensor::new(remap_key(name), DType::F32, t.shape().to_vec(), None, Bytes::from_elems(data)));
        }
        if !problems.is_empty() {
            return Err(LoadError::Mismatch(problems.join("; ")));
        }
        let mut model = KModel::init(config, device);
        let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
        let mut report = Vec::new();
        if !result.missing.is_empty() {
            let names: Vec<_> = result.missing.iter().map(|(n, _)| n.as_str()).collect();
            report.push(format!("missing {} tensor(s): {}", names.len(), names.join(", ")));
        }
        if !result.unused.is_empty() {
            report.push(format!("unexpected {} tensor(s): {}", result.unused.len(), result.unused.join(", ")));
        }
        if !result.errors.is_empty() {
            let errs: Vec<_> = result.errors.iter().map(|e| e.to_string()).collect();
            report.push(errs.join("; "));
        }
        if report.is_empty() { Ok(model) } else { Err(LoadError::Mismatch(report.join("; "))) }
    }
}

/// Upstream tensors that `KModel.forward` never reads.
pub(crate) fn is_unused_upstream(name: &str) -> bool {
    name.starts_with("bert.pooler.")
        || name == "bert.embeddings.position_ids"
        || ((name.ends_with(".norm.weight") || name.ends_with(".norm.bias"))
            && (name.contains(".adain") || name.contains(".norm1.") || name.contains(".norm2.")))
}

/// Maps an upstream state-dict path onto this crate's module path (see the module docs).
pub fn remap_key(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("text_encoder.cnn.") {
        let mut parts = rest.splitn(3, '.');
        if let (Some(index), Some(layer), Some(tail)) = (parts.next(), parts.next(), parts.next()) {
            let ours = match layer {
                "0" => "conv",
                "1" => "norm",
                _ => return name.to_string(),
            };
            return format!("text_encoder.cnn.{index}.{ours}.{tail}");
        }
    }
    name.to_string()
}

/// A loaded model with its configuration.
#[derive(Debug)]
pub struct Kokoro {
    pub model: KModel,
    pub config: KokoroConfig,
    /// Precision the weights were stored in.
    pub precision: Precision,
    /// Wall time of reading and loading the weights.
    pub load_time: Duration,
}

impl Kokoro {
    /// Loads Kokoro-82M v1.0 from any supported weight file onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LoadError> {
        let start = Instant::now();
        let weights = WeightSet::read(path)?;
        let precision = weights.precision();
        let config = KokoroConfig::v1();
        let model = weights.into_model(&config, device)?;
        Ok(Self { model, config, precision, load_time: start.elapsed() })
    }

    /// Loads from a canonical file's bytes (fetched rather than read from disk, as in a browser).
    pub fn from_canonical_bytes(bytes: &[u8], what: &str, device: &Device) -> Result<Self, LoadError> {
        let start = Instant::now();
        let weights = canonical::read_canonical_bytes(bytes, what)?;
        let precision = weights.precision();
        let config = KokoroConfig::v1();
        let model = weights.into_model(&config, device)?;
        Ok(Self { model, config, precision, load_time: start.elapsed() })
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaps_text_encoder_conv_blocks_only() {
        assert_eq!(remap_key("text_encoder.cnn.2.0.weight"), "text_encoder.cnn.2.conv.weight");
        assert_eq!(remap_key("text_encoder.cnn.0.1.gamma"), "text_encoder.cnn.0.norm.gamma");
        assert_eq!(remap_key("predictor.text_encoder.lstms.0.weight_ih_l0"), "predictor.text_encoder.lstms.0.weight_ih_l0");
        assert_eq!(remap_key("text_encoder.lstm.bias_ih_l0"), "text_encoder.lstm.bias_ih_l0");
    }

    #[test]
    fn dequantizes_per_row_and_asymmetric() {
        // Rows scaled by 0.5 and 2: [[2, -4], [1, 3]] -> [[1, -2], [2, 6]].
        let t = QTensor::I8 { shape: vec![2, 2], data: vec![2, -4, 1, 3], scale: vec![0.5, 2.0] };
        assert_eq!(t.dequantize(), vec![1.0, -2.0, 2.0, 6.0]);
        // (q - 10) * 0.25: 14 -> 1, 6 -> -1.
        let t = QTensor::U8 { shape: vec![2], data: vec![14, 6], scale: 0.25, zero_point: 10 };
        assert_eq!(t.dequantize(), vec![1.0, -1.0]);
    }
}
