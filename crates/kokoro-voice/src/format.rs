//! Reading voices in every published format, recognised by content (kokoro-onnx names its `.npz`
//! bundle `voices-v1.0.bin`, so the extension cannot be trusted).

use std::io::{Cursor, Read};
use std::path::Path;

use crate::{STYLE_WIDTH, VOICE_BIN_BYTES, VOICE_LEN, VOICE_ROWS, Voice, VoiceError};

/// Most bytes one zip entry may decompress to: one voice's `.npy` array (magic, version and
/// length, a header of at most 64 KiB, then 510 x 256 f32) or one voice's `.pt` storage. Issue 12:
/// entries were read whole however large, so a small zip could expand to gigabytes.
pub(crate) const MAX_ENTRY_BYTES: u64 = VOICE_BIN_BYTES as u64 + 10 + 65_536;
/// Most entries a zip voice file may hold: kokoro-onnx's bundle has 54 voices.
pub(crate) const MAX_ENTRIES: usize = 4096;
/// How many times its own size reading a file may take (decompressed entries, pickle values and
/// the voices made of them), plus [`BUDGET_VOICES`] voices. Real voices barely compress, so this
/// only stops zip bombs; the extra voices let one voice through however well it compresses.
const MAX_EXPANSION: u64 = 8;
/// Voices' worth of bytes a read may take beyond [`MAX_EXPANSION`] times the file's size.
const BUDGET_VOICES: u64 = 4;

/// A voice file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceFormat {
    /// One raw pack: 510 x 1 x 256 little-endian f32, nothing else.
    Bin,
    /// A zip of `.npy` arrays, one per voice (numpy's `savez`; kokoro-onnx's `voices-v1.0.bin`).
    Npz,
    /// Safetensors, one tensor per voice.
    Safetensors,
    /// PyTorch `torch.save` (a zip with `data.pkl`): the official voices' `.pt` form.
    Pt,
}

impl VoiceFormat {
    /// Recognises a format by its first bytes and length.
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            let is_torch = zip::ZipArchive::new(Cursor::new(bytes))
                .is_ok_and(|z| z.file_names().any(|n| n.is_ok_and(|n| n.ends_with("data.pkl"))));
            return Some(if is_torch { Self::Pt } else { Self::Npz });
        }
        if bytes.len() >= 9 {
            let header = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            if header > 1 && header < bytes.len() as u64 && bytes[8] == b'{' {
                return Some(Self::Safetensors);
            }
        }
        (bytes.len() == VOICE_BIN_BYTES).then_some(Self::Bin)
    }
}

/// Reads every voice in `bytes`. A raw `.bin` pack has no name inside: it gets `name`.
/// `what` names the source in errors.
pub fn read_voices(bytes: &[u8], name: &str, what: &str) -> Result<Vec<(String, Voice)>, VoiceError> {
    match VoiceFormat::detect(bytes) {
        Some(format) => read_voices_as(format, bytes, name, what),
        None => Err(VoiceError::BadFile {
            what: what.to_string(),
            message: format!(
                "not a voice file: neither a raw pack ({VOICE_BIN_BYTES} bytes), an .npz or .pt file nor safetensors ({} bytes)",
                bytes.len()
            ),
        }),
    }
}

/// Reads every voice in `bytes` as `format`, whatever its content looks like (the fuzz targets
/// drive each reader directly this way). A raw `.bin` pack or a lone `.pt` tensor gets `name`.
pub fn read_voices_as(format: VoiceFormat, bytes: &[u8], name: &str, what: &str) -> Result<Vec<(String, Voice)>, VoiceError> {
    match format {
        VoiceFormat::Bin => Ok(vec![(name.to_string(), Voice::from_bin_bytes(bytes, what)?)]),
        VoiceFormat::Npz => read_npz(bytes, what),
        VoiceFormat::Safetensors => read_safetensors(bytes, what),
        VoiceFormat::Pt => crate::torch::read_pt(bytes, name, what)?
            .into_iter()
            .map(|(n, values)| {
                let voice = Voice::from_values(values, &format!("{what}: {n}"))?;
                Ok((n, voice))
            })
            .collect(),
    }
}

/// Reads a voice file; a raw pack is named after the file.
pub fn read_voice_file(path: &Path) -> Result<Vec<(String, Voice)>, VoiceError> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| VoiceError::Io(what.clone(), e))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("voice");
    read_voices(&bytes, stem, &what)
}

pub(crate) fn bad(what: &str, message: impl Into<String>) -> VoiceError {
    VoiceError::BadFile { what: what.to_string(), message: message.into() }
}

/// What reading one file may still allocate: every decompressed entry, pickle value and voice
/// is charged here first, so memory stays proportional to the file's size (Issue 12).
pub(crate) struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    pub(crate) fn for_file(bytes: &[u8]) -> Self {
        let limit = (bytes.len() as u64).saturating_mul(MAX_EXPANSION).saturating_add(BUDGET_VOICES * MAX_ENTRY_BYTES);
        Self { left: limit, limit }
    }

    /// Takes `bytes` from what is left, or fails naming the file.
    pub(crate) fn spend(&mut self, bytes: u64, what: &str) -> Result<(), VoiceError> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            bad(what, format!(
                "reading it takes more than {} bytes ({MAX_EXPANSION} times its size plus {BUDGET_VOICES} voices): a zip bomb?",
                self.limit
            ))
        })?;
        Ok(())
    }
}

/// Opens a zip voice file, refusing more than [`MAX_ENTRIES`] entries. `kind` names the format
/// in errors.
pub(crate) fn open_zip<'a>(bytes: &'a [u8], kind: &str, what: &str) -> Result<zip::ZipArchive<Cursor<&'a [u8]>>, VoiceError> {
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(what, format!("not a valid {kind}: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(bad(what, format!("{} entries, more than {MAX_ENTRIES}: not a voice file", zip.len())));
    }
    Ok(zip)
}

/// Decompresses one zip entry of at most `cap` bytes, charging it to `budget`. The declared size
/// is only checked, never used to allocate; the `zip` crate stops at it, and the read is also cut
/// one byte past the cap in case an entry gets past that. `label` names the entry in errors.
pub(crate) fn read_entry(
    entry: &mut zip::read::ZipFile<'_, Cursor<&[u8]>>,
    label: &str,
    cap: u64,
    budget: &mut Budget,
    what: &str,
) -> Result<Vec<u8>, VoiceError> {
    let declared = entry.size();
    if declared > cap {
        return Err(bad(what, format!("{label}: declares {declared} bytes, more than the {cap} an entry of a voice file may have")));
    }
    let mut out = Vec::new();
    entry.take(cap.min(budget.left) + 1).read_to_end(&mut out).map_err(|e| bad(what, format!("{label}: {e}")))?;
    if out.len() as u64 > cap {
        return Err(bad(what, format!("{label}: decompresses to more than the {cap} bytes an entry of a voice file may have")));
    }
    budget.spend(out.len() as u64, what)?;
    Ok(out)
}

/// Is `dims` the shape of a voice: sizes of 510, 1 and 256 only, 510 x 256 values in all? Checked
/// multiplication: a file's sizes may overflow any product (Issue 12).
pub(crate) fn is_voice_shape(dims: &[usize]) -> bool {
    dims.iter().all(|d| [1, STYLE_WIDTH, VOICE_ROWS].contains(d))
        && dims.iter().try_fold(1usize, |n, d| n.checked_mul(*d)) == Some(VOICE_LEN)
}

fn read_npz(bytes: &[u8], what: &str) -> Result<Vec<(String, Voice)>, VoiceError> {
    let mut zip = open_zip(bytes, ".npz (zip)", what)?;
    let mut budget = Budget::for_file(bytes);
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(what, format!("entry {i}: {e}")))?;
        let entry_name = entry.name().map_err(|e| bad(what, format!("entry {i}: {e}")))?.to_string();
        let Some(name) = entry_name.strip_suffix(".npy").map(str::to_string) else { continue };
        let npy = read_entry(&mut entry, &entry_name, MAX_ENTRY_BYTES, &mut budget, what)?;
        let entry_what = format!("{what}: {name}");
        budget.spend(VOICE_BIN_BYTES as u64, what)?;
        out.push((name, Voice::from_values(read_npy(&npy, &entry_what)?, &entry_what)?));
    }
    if out.is_empty() {
        return Err(bad(what, "the .npz holds no .npy arrays"));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The values of a little-endian float32 `.npy` array of 510 x 256 (any shape with that many
/// values whose dimensions are 510, 1 and 256, in C order).
fn read_npy(npy: &[u8], what: &str) -> Result<Vec<f32>, VoiceError> {
    let rest = npy.strip_prefix(b"\x93NUMPY").ok_or_else(|| bad(what, "not an .npy array (no magic)"))?;
    let (major, rest) = rest.split_first().ok_or_else(|| bad(what, "truncated .npy header"))?;
    let rest = rest.get(1..).ok_or_else(|| bad(what, "truncated .npy header"))?;
    let (len, rest) = match major {
        1 => (rest.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize), rest.get(2..)),
        2 | 3 => (rest.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize), rest.get(4..)),
        v => return Err(bad(what, format!(".npy version {v} is not supported"))),
    };
    let (len, rest) = len.zip(rest).ok_or_else(|| bad(what, "truncated .npy header"))?;
    let header = rest.get(..len).ok_or_else(|| bad(what, "truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(what, ".npy header is not text"))?;
    let data = &rest[len..];
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").and_then(|d| d.strip_prefix('\'')).and_then(|d| d.split('\'').next()).unwrap_or("");
    if descr != "<f4" {
        return Err(bad(what, format!("dtype {descr:?} is not supported (voices are little-endian float32, '<f4')")));
    }
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(what, "Fortran-ordered arrays are not supported"));
    }
    let shape = field("shape").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split(')').next()).unwrap_or("");
    // numpy writes a trailing comma for one dimension: "(130560,)".
    let dims: Option<Vec<usize>> = shape.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().ok()).collect();
    if !dims.is_some_and(|dims| is_voice_shape(&dims)) {
        return Err(bad(what, format!("shape ({shape}) is not a voice (510, 1, 256)")));
    }
    if data.len() != VOICE_LEN * 4 {
        return Err(bad(what, format!("{} data bytes for shape ({shape}), expected {}", data.len(), VOICE_LEN * 4)));
    }
    Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn read_safetensors(bytes: &[u8], what: &str) -> Result<Vec<(String, Voice)>, VoiceError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(what, format!("not valid safetensors: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let entry_what = format!("{what}: {name}");
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(bad(&entry_what, format!("dtype {:?} is not supported (voices are F32)", view.dtype())));
        }
        if !is_voice_shape(view.shape()) {
            return Err(VoiceError::BadShape { what: entry_what, message: format!("shape {:?} is not a voice (510, 1, 256)", view.shape()) });
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.push((name, Voice::from_values(values, &entry_what)?));
    }
    if out.is_empty() {
        return Err(bad(what, "the safetensors file holds no tensors"));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes voices as one safetensors file (F32, shape 510 x 1 x 256 each).
pub fn write_safetensors(voices: &[(String, Voice)]) -> Result<Vec<u8>, VoiceError> {
    let bytes: Vec<(String, Vec<u8>)> = voices.iter().map(|(n, v)| (n.clone(), v.to_bin_bytes())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![510, 1, 256], b).unwrap()))
        .collect();
    safetensors::serialize(views, None).map_err(|e| bad("safetensors", e.to_string()))
}

/// Writes voices as an `.npz` bundle (stored, like numpy's `savez`): one `NAME.npy` per voice,
/// `<f4`, shape (510, 1, 256).
pub fn write_npz(voices: &[(String, Voice)]) -> Result<Vec<u8>, VoiceError> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, voice) in voices {
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (510, 1, 256), }".to_string();
        // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        zip.start_file(format!("{name}.npy"), options).map_err(|e| bad("npz", e.to_string()))?;
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((header.len() as u16).to_le_bytes());
        npy.extend(header.as_bytes());
        npy.extend(voice.to_bin_bytes());
        zip.write_all(&npy).map_err(|e| bad("npz", e.to_string()))?;
    }
    Ok(zip.finish().map_err(|e| bad("npz", e.to_string()))?.into_inner())
}
