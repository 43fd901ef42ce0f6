//! The canonical weight file: safetensors with PyTorch names, weight norm folded.
//!
//! Quantized tensors keep their integer data under their own name (`I8` or `U8`) with sidecar
//! tensors `NAME:scale` (F32, one value or one per row) and, for `U8`, `NAME:zero_point` (U8, one
//! value). The header metadata says what the file is:
//!
//! | key | value |
//! |---|---|
//! | `format` | `kokoro-burn` |
//! | `format_version` | `1` |
//! | `model` | `kokoro-82m-v1.0` |
//! | `precision` | `int8` or `f32` (storage; compute is always f32 here) |
//! | `source` | the file it was converted from |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{LoadError, QTensor, WeightSet, io_err};

pub const FORMAT: &str = "kokoro-burn";
pub const FORMAT_VERSION: &str = "1";
pub const MODEL_ID: &str = "kokoro-82m-v1.0";
const SCALE: &str = ":scale";
const ZERO_POINT: &str = ":zero_point";

/// Writes `weights` as a canonical file (atomically: a temporary file renamed into place).
pub fn write_canonical(weights: &WeightSet, path: &Path) -> Result<(), LoadError> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &weights.tensors {
        match t {
            QTensor::F32 { shape, data } => owned.push((name.clone(), Dtype::F32, shape.clone(), f32_bytes(data))),
            QTensor::I8 { shape, data, scale } => {
                owned.push((name.clone(), Dtype::I8, shape.clone(), data.iter().map(|&v| v as u8).collect()));
                owned.push((format!("{name}{SCALE}"), Dtype::F32, vec![scale.len()], f32_bytes(scale)));
            }
            QTensor::U8 { shape, data, scale, zero_point } => {
                owned.push((name.clone(), Dtype::U8, shape.clone(), data.clone()));
                owned.push((format!("{name}{SCALE}"), Dtype::F32, vec![1], f32_bytes(&[*scale])));
                owned.push((format!("{name}{ZERO_POINT}"), Dtype::U8, vec![1], vec![*zero_point]));
            }
        }
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("sizes were checked")))
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("model".to_string(), MODEL_ID.to_string()),
        ("precision".to_string(), weights.precision().as_str().to_string()),
        ("source".to_string(), weights.source.clone()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| LoadError::Corrupt { path: path.display().to_string(), format: "safetensors", reason: e.to_string() })?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Reads a canonical file, checking its metadata.
pub fn read_canonical(path: &Path) -> Result<WeightSet, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    read_canonical_bytes(&bytes, &path.display().to_string())
}

/// Reads a canonical file already in memory (the browser's download); `what` names it in errors.
pub fn read_canonical_bytes(bytes: &[u8], what: &str) -> Result<WeightSet, LoadError> {
    let p = what.to_string();
    let corrupt = |reason: String| LoadError::Corrupt { path: p.clone(), format: "safetensors", reason };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| meta.get(k).map(String::as_str);
    if get("format") != Some(FORMAT) || get("model") != Some(MODEL_ID) {
        return Err(LoadError::Metadata {
            path: p.clone(),
            reason: format!(
                "not a kokoro-burn weight file for {MODEL_ID} (format={:?}, model={:?}); convert it with `kokoro convert`",
                get("format"),
                get("model")
            ),
        });
    }
    if get("format_version") != Some(FORMAT_VERSION) {
        return Err(LoadError::Metadata {
            path: p.clone(),
            reason: format!("unsupported format_version {:?} (this build reads {FORMAT_VERSION})", get("format_version")),
        });
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    let views: BTreeMap<String, TensorView> = st.tensors().into_iter().collect();
    let mut tensors = BTreeMap::new();
    for (name, view) in &views {
        if name.ends_with(SCALE) || name.ends_with(ZERO_POINT) {
            continue;
        }
        let shape = view.shape().to_vec();
        let sidecar = |suffix: &str| views.get(&format!("{name}{suffix}"));
        let scale = || -> Result<Vec<f32>, LoadError> {
            let v = sidecar(SCALE).ok_or_else(|| corrupt(format!("{name} is quantized but has no {name}{SCALE}")))?;
            if v.dtype() != Dtype::F32 {
                return Err(corrupt(format!("{name}{SCALE} is not F32")));
            }
            Ok(f32_values(v.data()))
        };
        let t = match view.dtype() {
            Dtype::F32 => QTensor::F32 { shape, data: f32_values(view.data()) },
            Dtype::I8 => QTensor::I8 { shape, data: view.data().iter().map(|&b| b as i8).collect(), scale: scale()? },
            Dtype::U8 => {
                let zp = sidecar(ZERO_POINT).ok_or_else(|| corrupt(format!("{name} has no {name}{ZERO_POINT}")))?;
                if zp.dtype() != Dtype::U8 {
                    return Err(corrupt(format!("{name}{ZERO_POINT} is {:?}, not U8", zp.dtype())));
                }
                let scale = scale()?;
                if scale.len() != 1 || zp.data().len() != 1 {
                    return Err(corrupt(format!("{name}: uint8 tensors take one scale and one zero point")));
                }
                QTensor::U8 { shape, data: view.data().to_vec(), scale: scale[0], zero_point: zp.data()[0] }
            }
            other => return Err(corrupt(format!("{name} has unsupported dtype {other:?}"))),
        };
        t.validate(name).map_err(corrupt)?;
        tensors.insert(name.clone(), t);
    }
    let source = get("source").unwrap_or("unknown").to_string();
    Ok(WeightSet { tensors, source })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WeightSet {
        let mut tensors = BTreeMap::new();
        tensors.insert("a.weight".into(), QTensor::F32 { shape: vec![2], data: vec![1.0, -2.0] });
        tensors.insert("b.weight".into(), QTensor::I8 { shape: vec![2, 1], data: vec![3, -3], scale: vec![0.5, 0.25] });
        tensors.insert("c.weight".into(), QTensor::U8 { shape: vec![1], data: vec![200], scale: 0.1, zero_point: 100 });
        WeightSet { tensors, source: "unit test".into() }
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kokoro-canonical-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn round_trip_keeps_quantization() {
        let p = tmp("rt.safetensors");
        write_canonical(&tiny(), &p).unwrap();
        let back = read_canonical(&p).unwrap();
        assert_eq!(back.tensors, tiny().tensors);
        assert_eq!(back.source, "unit test");
    }

    #[test]
    fn truncated_file_is_reported_as_corrupt() {
        let p = tmp("trunc.safetensors");
        write_canonical(&tiny(), &p).unwrap();
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 3]).unwrap();
        let e = read_canonical(&p).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
    }

    #[test]
    fn foreign_safetensors_is_refused_by_metadata() {
        let p = tmp("foreign.safetensors");
        let data = f32_bytes(&[1.0]);
        let v = TensorView::new(Dtype::F32, vec![1], &data).unwrap();
        std::fs::write(&p, safetensors::serialize([("x", v)], None).unwrap()).unwrap();
        let e = read_canonical(&p).unwrap_err().to_string();
        assert!(e.contains("not a kokoro-burn weight file"), "{e}");
    }
}
