//! Where voice files come from, behind an async trait: a folder on disk ([`DirStore`]) and an HTTP
//! directory ([`HttpStore`]); the browser's IndexedDB store implements the same trait.
//!
//! Names are validated before any path or URL is built from them: `../../etc/passwd` never
//! reaches the filesystem or the network. The native stores do their I/O inline (blocking) inside
//! the future, which suits a thread per request or `spawn_blocking`; the trait stays async so that
//! the browser store can await IndexedDB.

use std::future::Future;
use std::path::PathBuf;

use crate::{Voice, VoiceError, check_voice_name, format::read_voices};

/// A source of voice files.
pub trait VoiceStore: Send + Sync {
    /// Names of the voices available, sorted.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, VoiceError>> + Send;

    /// The raw bytes of one voice (any format [`read_voices`] reads).
    fn fetch(&self, name: &str) -> impl Future<Output = Result<Vec<u8>, VoiceError>> + Send;

    /// One voice, fetched and parsed.
    fn load(&self, name: &str) -> impl Future<Output = Result<Voice, VoiceError>> + Send {
        async move {
            let bytes = self.fetch(name).await?;
            let mut voices = read_voices(&bytes, name, name)?;
            let at = voices.iter().position(|(n, _)| n == name).unwrap_or(0);
            Ok(voices.swap_remove(at).1)
        }
    }
}

/// Voices as `NAME.bin` files in a folder.
#[derive(Debug, Clone)]
pub struct DirStore {
    pub dir: PathBuf,
}

impl VoiceStore for DirStore {
    async fn list(&self) -> Result<Vec<String>, VoiceError> {
        let what = self.dir.display().to_string();
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| VoiceError::Io(what, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".bin")).map(str::to_string))
            .filter(|n| crate::is_valid_voice_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn fetch(&self, name: &str) -> Result<Vec<u8>, VoiceError> {
        let path = self.dir.join(format!("{}.bin", check_voice_name(name)?));
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VoiceError::Unknown(name.to_string())),
            r => r.map_err(|e| VoiceError::Io(path.display().to_string(), e)),
        }
    }
}

/// Voices served over HTTP: `GET {base}/NAME.bin`, and `GET {base}/index.json` (a JSON array of
/// names) for the list.
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
pub struct HttpStore {
    pub base: String,
    /// Largest body accepted (a voice is 522,240 bytes; bundles are larger).
    pub max_bytes: u64,
}

#[cfg(feature = "http")]
impl HttpStore {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), max_bytes: 64 << 20 }
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, VoiceError> {
        let url = format!("{}/{path}", self.base);
        let io = |e: ureq::Error| VoiceError::Io(url.clone(), std::io::Error::other(e.to_string()));
        match ureq::get(&url).call() {
            Ok(mut response) => Ok(Some(response.body_mut().with_config().limit(self.max_bytes).read_to_vec().map_err(io)?)),
            Err(ureq::Error::StatusCode(404)) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(feature = "http")]
impl VoiceStore for HttpStore {
    async fn list(&self) -> Result<Vec<String>, VoiceError> {
        let bytes = self.get("index.json")?.ok_or_else(|| VoiceError::BadFile {
            what: format!("{}/index.json", self.base),
            message: "not found (an HTTP voice directory lists its voices in index.json)".into(),
        })?;
        let mut names: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| VoiceError::BadFile {
            what: format!("{}/index.json", self.base),
            message: format!("not a JSON array of names: {e}"),
        })?;
        names.retain(|n| crate::is_valid_voice_name(n));
        names.sort();
        Ok(names)
    }

    async fn fetch(&self, name: &str) -> Result<Vec<u8>, VoiceError> {
        let name = check_voice_name(name)?;
        self.get(&format!("{name}.bin"))?.ok_or_else(|| VoiceError::Unknown(name.to_string()))
    }
}
