//! Importer for the official `kokoro-v1_0.pth`: a dict of five state dicts (`bert`,
//! `bert_encoder`, `predictor`, `text_encoder`, `decoder`), read with burn-store's PyTorch reader.
//!
//! Keys may carry a `module.` prefix inside each state dict (upstream trained with
//! DataParallel); it is dropped. Weight norm, stored as `weight_g`/`weight_v` or
//! `parametrizations.weight.original0/1`, is folded here: `w = g * v / ||v||`, the norm taken over
//! every axis but the first.
//!
//! Issue 12: the checkpoint is untrusted, so nothing it declares is inflated or allocated beyond
//! [`MAX_EXPANSION`] times its size on disk.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::store::pytorch_reader::{DType, PytorchReader};

use super::{LoadError, QTensor, WeightSet, io_err};

/// The top-level keys of the official checkpoint.
pub const PTH_COMPONENTS: [&str; 5] = ["bert", "bert_encoder", "predictor", "text_encoder", "decoder"];

/// How many times its own size a checkpoint may expand to: in the sizes its zip entries declare
/// uncompressed, and in the bytes its tensors materialize. `torch.save` stores entries
/// uncompressed and the official checkpoint has no tensors sharing storage, so it expands to its
/// own size; 4 leaves room for a re-zipped (deflated) file, whose float weights shrink by a few
/// percent, while a deflate bomb (up to ~1000:1) or a stride-0 view of one value is refused before
/// anything is inflated or allocated. burn-store's own limits are fixed (100 MiB of pickle, 10 GiB
/// per tensor), whatever the file's size.
const MAX_EXPANSION: u64 = 4;

/// Reads the official PyTorch checkpoint into a float32 [`WeightSet`].
pub fn import_pth(path: &Path) -> Result<WeightSet, LoadError> {
    read_pth(path, &path.display().to_string())
}

/// Reads an official-layout checkpoint already in memory; `what` names it in errors, and its last
/// path component becomes the weight set's source.
///
/// burn-store's reader opens checkpoints by path only (its `from_reader` takes a bare pickle:
/// tensor bytes live outside the pickle), so the bytes go to a private temporary file, removed
/// again once every tensor has been read.
pub fn import_pth_bytes(bytes: &[u8], what: &str) -> Result<WeightSet, LoadError> {
    let tmp = TempFile::with_contents(bytes)?;
    read_pth(&tmp.0, what)
}

/// Reads the checkpoint at `file`; errors and the source name say `what`.
fn read_pth(file: &Path, what: &str) -> Result<WeightSet, LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt { path: what.to_string(), format: "PyTorch", reason };
    let file_len = check_zip_expansion(file).map_err(|e| match e {
        ZipCheck::Io(e) => LoadError::Io { path: what.to_string(), source: e },
        ZipCheck::Corrupt(reason) => corrupt(reason),
    })?;
    let budget = file_len.saturating_mul(MAX_EXPANSION);
    let mut materialized = 0u64;
    let reader = PytorchReader::new(file).map_err(|e| corrupt(e.to_string()))?;
    let mut raw: BTreeMap<String, QTensor> = BTreeMap::new();
    for (key, tensor) in reader.tensors() {
        let name = normalise_key(key).ok_or_else(|| {
            LoadError::Mismatch(format!("{key}: not under one of {PTH_COMPONENTS:?}; is this a Kokoro checkpoint?"))
        })?;
        if super::is_unused_upstream(&name) {
            continue; // e.g. the int64 `position_ids` buffer, the pooler
        }
        let width = match tensor.dtype() {
            DType::F32 => 4,
            DType::F64 => 8,
            other => return Err(corrupt(format!("{key}: unsupported dtype {other:?} (expected float32)"))),
        };
        // Issue 12: a view may declare far more elements than its storage holds (stride 0), so
        // its size is checked against the file before `read` allocates it.
        let size = tensor.byte_len() as u64;
        materialized = materialized.saturating_add(size);
        if materialized > budget {
            return Err(corrupt(format!(
                "{key}: shape {:?} would materialize {size} bytes, taking the tensors past {MAX_EXPANSION} x the file's {file_len} bytes",
                tensor.shape()
            )));
        }
        let bytes = tensor.read().map_err(|e| corrupt(format!("{key}: {e}")))?;
        let data: Vec<f32> = if width == 4 {
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect()
        };
        raw.insert(name, QTensor::F32 { shape: tensor.shape().to_vec(), data });
    }
    let tensors = fold_weight_norm(raw).map_err(LoadError::Mismatch)?;
    let file = Path::new(what).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(WeightSet { tensors, source: format!("{file} (PyTorch)") })
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with_contents(bytes: &[u8]) -> Result<Self, LoadError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir();
        // `create_new` never follows or reuses another's file; a name left by a crashed process
        // with the same id is skipped.
        let mut attempt = 0;
        let (path, mut file) = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("kokoro-pth-{}-{n}.pth", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(io_err(&path, e)),
            }
        };
        let tmp = TempFile(path);
        file.write_all(bytes).map_err(|e| io_err(&tmp.0, e))?;
        Ok(tmp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a file left behind in the temporary directory harms nothing.
        let _ = std::fs::remove_file(&self.0);
    }
}

enum ZipCheck {
    Io(std::io::Error),
    Corrupt(String),
}

/// Returns the file's size, after checking that a zip checkpoint's entries declare at most
/// [`MAX_EXPANSION`] times that in all (issue 12). burn-store never inflates an entry past its
/// declared size (a read stops there, and one that finds more is an error), so the declared
/// sizes bound all decompression. Other containers (legacy, TAR) are not compressed.
fn check_zip_expansion(file: &Path) -> Result<u64, ZipCheck> {
    let mut f = File::open(file).map_err(ZipCheck::Io)?;
    let file_len = f.metadata().map_err(ZipCheck::Io)?.len();
    let mut magic = Vec::with_capacity(4);
    (&mut f).take(4).read_to_end(&mut magic).map_err(ZipCheck::Io)?;
    // The same test burn-store detects the container by.
    if magic != b"PK\x03\x04" && magic != b"PK\x05\x06" {
        return Ok(file_len);
    }
    f.rewind().map_err(ZipCheck::Io)?;
    let corrupt = |e: zip::result::ZipError| ZipCheck::Corrupt(format!("zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(BufReader::new(f)).map_err(corrupt)?;
    let budget = file_len.saturating_mul(MAX_EXPANSION);
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(corrupt)?;
        total = total.saturating_add(entry.size());
        if total > budget {
            let name = entry.name().map_or_else(|_| format!("number {i}"), |n| n.into_owned());
            return Err(ZipCheck::Corrupt(format!(
                "zip entry {name} expands to {} bytes, taking the archive past {MAX_EXPANSION} x the file's {file_len} bytes",
                entry.size()
            )));
        }
    }
    Ok(file_len)
}

/// `bert.module.embeddings.x` -> `bert.embeddings.x`; `None` if the key is under no component.
fn normalise_key(key: &str) -> Option<String> {
    let (top, rest) = key.split_once('.')?;
    PTH_COMPONENTS.contains(&top).then(|| format!("{top}.{}", rest.strip_prefix("module.").unwrap_or(rest)))
}

/// Replaces every (g, v) pair by the folded `weight`.
pub(crate) fn fold_weight_norm(mut raw: BTreeMap<String, QTensor>) -> Result<BTreeMap<String, QTensor>, String> {
    const PAIRS: [(&str, &str); 2] =
        [(".weight_g", ".weight_v"), (".parametrizations.weight.original0", ".parametrizations.weight.original1")];
    let names: Vec<String> = raw.keys().cloned().collect();
    for name in names {
        for (g_suffix, v_suffix) in PAIRS {
            let Some(base) = name.strip_suffix(g_suffix) else { continue };
            // Names are unique and no suffix is another's, so nothing removed it yet.
            let Some(g) = raw.remove(&name) else { continue };
            let v = raw
                .remove(&format!("{base}{v_suffix}"))
                .ok_or_else(|| format!("{name} has no matching {base}{v_suffix}"))?;
            let (QTensor::F32 { data: g, .. }, QTensor::F32 { shape, data: v }) = (g, v) else {
                return Err(format!("{base}: weight norm parts must be float"));
            };
            // Issue 12: one magnitude per row (axis 0), so a 0-d direction or one of no rows has
            // nothing to fold (and `v.len() / rows` would divide by zero).
            let Some(&rows) = shape.first() else {
                return Err(format!("{base}: weight norm direction is a 0-d tensor"));
            };
            if rows == 0 || !v.len().is_multiple_of(rows) {
                return Err(format!("{base}: weight norm direction of shape {shape:?} has no rows of equal length"));
            }
            if g.len() != rows {
                return Err(format!("{base}: {} norms for {rows} rows", g.len()));
            }
            let per = v.len() / rows;
            let mut w = Vec::with_capacity(v.len());
            for r in 0..rows {
                let row = &v[r * per..(r + 1) * per];
                let norm = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                // An all-zero direction (an unused output channel) folds to zeros, not 0/0.
                let factor = if norm > 0.0 { g[r] as f64 / norm } else { 0.0 };
                w.extend(row.iter().map(|x| (*x as f64 * factor) as f32));
            }
            raw.insert(format!("{base}.weight"), QTensor::F32 { shape, data: w });
        }
    }
    if let Some(orphan) = raw.keys().find(|k| k.ends_with(".weight_v") || k.ends_with(".original1")) {
        return Err(format!("{orphan} has no matching weight-norm magnitude"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lose_the_data_parallel_prefix() {
        assert_eq!(normalise_key("bert.module.embeddings.x").as_deref(), Some("bert.embeddings.x"));
        assert_eq!(normalise_key("decoder.encode.conv1.bias").as_deref(), Some("decoder.encode.conv1.bias"));
        assert_eq!(normalise_key("optimizer.state"), None);
    }

    #[test]
    fn zero_direction_folds_to_zeros() {
        let mut raw = BTreeMap::new();
        raw.insert("c.weight_g".to_string(), QTensor::F32 { shape: vec![1, 1], data: vec![0.0] });
        raw.insert("c.weight_v".to_string(), QTensor::F32 { shape: vec![1, 2], data: vec![0.0, 0.0] });
        assert_eq!(fold_weight_norm(raw).unwrap()["c.weight"], QTensor::F32 { shape: vec![1, 2], data: vec![0.0, 0.0] });
    }

    #[test]
    fn weight_norm_folds_per_output_row() {
        // Row 0: v = [3, 4] (norm 5), g = 10 -> [6, 8]. Row 1: v = [0, 2] (norm 2), g = 1 -> [0, 1].
        let mut raw = BTreeMap::new();
        raw.insert("c.weight_g".to_string(), QTensor::F32 { shape: vec![2, 1], data: vec![10.0, 1.0] });
        raw.insert("c.weight_v".to_string(), QTensor::F32 { shape: vec![2, 2], data: vec![3.0, 4.0, 0.0, 2.0] });
        let out = fold_weight_norm(raw).unwrap();
        assert_eq!(out["c.weight"], QTensor::F32 { shape: vec![2, 2], data: vec![6.0, 8.0, 0.0, 1.0] });
    }
}
