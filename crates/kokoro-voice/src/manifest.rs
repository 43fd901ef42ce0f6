//! The voice manifest (`voices/manifest.json` at the repository root, written by
//! `scripts/make-voice-manifest.py`): name, language, gender, size and sha256 of every voice pack
//! this project ships with (kokoro-js@1.2.1). `kokoro fetch` verifies extracted voices against it;
//! the CLI and the browser read language and gender from it.
//!
//! The file is compiled in ([`Manifest::bundled`]) rather than read at run time, so that the
//! browser build, which has no filesystem, sees the same list.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's text, as generated.
const BUNDLED_JSON: &str = include_str!("../../../voices/manifest.json");

/// Parsed on first use: most programs never ask, and parsing 54 entries once is cheap.
static BUNDLED: LazyLock<Manifest> = LazyLock::new(|| {
    // The file is generated and checked by this module's tests, so a parse failure is a build
    // mistake, not a run-time condition a caller could handle.
    Manifest::from_json(BUNDLED_JSON).expect("voices/manifest.json (compiled in) is a valid voice manifest")
});

/// A voice's gender, from the second letter of its name (`af_heart`: female).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
}

impl Gender {
    /// `"female"` or `"male"`, as in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }
}

impl std::fmt::Display for Gender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One voice pack of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The voice's name (`af_heart`), also its file name without `.bin`.
    pub name: String,
    /// BCP-47-style language tag, lower case (`en-us`, `en-gb`, `es`, `fr-fr`, `hi`, `it`, `ja`,
    /// `pt-br`, `zh`).
    pub language: String,
    pub gender: Gender,
    /// Size of the raw `.bin` pack in bytes.
    pub bytes: u64,
    /// sha256 of the `.bin` pack, lower-case hex.
    pub sha256: String,
    /// Where the pack comes from: `package@version:path/in/package`.
    pub source: String,
}

impl ManifestEntry {
    /// Checks `data` against this entry: size first (cheap, and a truncated download is the usual
    /// failure), then sha256.
    pub fn verify(&self, data: &[u8]) -> Result<(), ManifestError> {
        let actual = data.len() as u64;
        if actual != self.bytes {
            return Err(ManifestError::WrongSize { name: self.name.clone(), expected: self.bytes, actual });
        }
        let digest = sha256_hex(data);
        if !digest.eq_ignore_ascii_case(&self.sha256) {
            return Err(ManifestError::WrongDigest { name: self.name.clone(), expected: self.sha256.clone(), actual: digest });
        }
        Ok(())
    }
}

/// Failures to parse a manifest or to verify a voice against it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Occurs when the manifest's JSON does not parse or has the wrong fields.
    #[error("voice manifest: {0}")]
    Parse(String),
    /// Occurs when a manifest names the same voice twice.
    #[error("voice manifest: voice {0:?} is listed twice")]
    Duplicate(String),
    /// Occurs when a voice to verify is not in the manifest.
    #[error("voice {0:?} is not in the voice manifest")]
    NotInManifest(String),
    /// Occurs when a voice's data has a different size from the manifest's.
    #[error("voice {name:?} is {actual} bytes, the manifest says {expected}: truncated or a different file")]
    WrongSize { name: String, expected: u64, actual: u64 },
    /// Occurs when a voice's data has the manifest's size but a different sha256.
    #[error("voice {name:?} has sha256 {actual}, the manifest says {expected}: corrupt or a different file")]
    WrongDigest { name: String, expected: String, actual: String },
}

/// The list of known voices, sorted by name. Built only by [`Manifest::from_json`] (not
/// `Deserialize`), so that the sorted, duplicate-free order [`Manifest::get`] relies on always holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The package the voices come from (`kokoro-js@1.2.1`).
    pub source: String,
    voices: Vec<ManifestEntry>,
}

/// The file's shape, before sorting and the duplicate check.
#[derive(Deserialize)]
struct ManifestFile {
    source: String,
    voices: Vec<ManifestEntry>,
}

impl Manifest {
    /// The manifest compiled into this crate (`voices/manifest.json`), parsed once.
    pub fn bundled() -> &'static Manifest {
        &BUNDLED
    }

    /// Parses a manifest's JSON. Entries are sorted by name (so that [`Manifest::get`] can
    /// binary-search and [`Manifest::iter`] is in a stable order); a name listed twice is refused,
    /// since it would be ambiguous which size and digest apply.
    pub fn from_json(json: &str) -> Result<Self, ManifestError> {
        let ManifestFile { source, mut voices } =
            serde_json::from_str(json).map_err(|e| ManifestError::Parse(e.to_string()))?;
        voices.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = voices.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ManifestError::Duplicate(pair[0].name.clone()));
        }
        Ok(Manifest { source, voices })
    }

    /// The entry for a voice name, if the manifest has it.
    pub fn get(&self, name: &str) -> Option<&ManifestEntry> {
        self.voices.binary_search_by(|e| e.name.as_str().cmp(name)).ok().map(|i| &self.voices[i])
    }

    /// Every entry, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, ManifestEntry> {
        self.voices.iter()
    }

    /// Number of voices.
    pub fn len(&self) -> usize {
        self.voices.len()
    }

    /// Returns true if and only if the manifest lists no voice.
    pub fn is_empty(&self) -> bool {
        self.voices.is_empty()
    }

    /// Checks a voice's `.bin` data against its entry (size, then sha256).
    pub fn verify(&self, name: &str, data: &[u8]) -> Result<(), ManifestError> {
        self.get(name).ok_or_else(|| ManifestError::NotInManifest(name.to_string()))?.verify(data)
    }
}

impl<'a> IntoIterator for &'a Manifest {
    type Item = &'a ManifestEntry;
    type IntoIter = std::slice::Iter<'a, ManifestEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cached_voice(name: &str) -> Option<Vec<u8>> {
        let cache = std::env::var_os("KOKORO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kokoro-burn")
        });
        let path = cache.join("voices").join(format!("{name}.bin"));
        match std::fs::read(&path) {
            Ok(data) => Some(data),
            Err(_) => {
                println!("note: {} is absent (run `kokoro fetch`); skipping the real-file checks", path.display());
                None
            }
        }
    }

    #[test]
    fn bundled_manifest_parses_and_describes_known_voices() {
        let m = Manifest::bundled();
        assert_eq!(m.source, "kokoro-js@1.2.1");
        assert_eq!(m.len(), 54, "kokoro-js 1.2.1 ships 54 voices");
        let heart = m.get("af_heart").expect("af_heart is listed");
        assert_eq!((heart.language.as_str(), heart.gender), ("en-us", Gender::Female));
        assert_eq!(heart.bytes, crate::VOICE_BIN_BYTES as u64);
        assert_eq!(heart.source, "kokoro-js@1.2.1:package/voices/af_heart.bin");
        let george = m.get("bm_george").expect("bm_george is listed");
        assert_eq!((george.language.as_str(), george.gender), ("en-gb", Gender::Male));
        assert!(m.get("xx_nobody").is_none());
    }

    #[test]
    fn bundled_entries_are_sorted_valid_and_follow_the_naming_convention() {
        let m = Manifest::bundled();
        let names: Vec<&str> = m.iter().map(|e| e.name.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        for e in m {
            assert!(crate::is_valid_voice_name(&e.name), "{}", e.name);
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
            assert!(e.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{}", e.name);
            let gender = match e.name.as_bytes()[1] {
                b'f' => Gender::Female,
                b'm' => Gender::Male,
                other => panic!("{}: gender letter {:?}", e.name, other as char),
            };
            assert_eq!(e.gender, gender, "{}", e.name);
            assert!(e.source.ends_with(&format!("package/voices/{}.bin", e.name)), "{}", e.source);
        }
    }

    #[test]
    fn gender_serializes_in_lower_case() {
        assert_eq!(serde_json::to_string(&Gender::Female).unwrap(), "\"female\"");
        assert_eq!(serde_json::from_str::<Gender>("\"male\"").unwrap(), Gender::Male);
        assert!(serde_json::from_str::<Gender>("\"Male\"").is_err());
    }

    #[test]
    fn verify_accepts_the_real_voice_and_rejects_truncated_and_flipped_copies() {
        let Some(data) = cached_voice("af_heart") else { return };
        let m = Manifest::bundled();
        m.verify("af_heart", &data).expect("the fetched af_heart matches the manifest");

        let truncated = &data[..data.len() - 4];
        assert_eq!(
            m.verify("af_heart", truncated),
            Err(ManifestError::WrongSize { name: "af_heart".into(), expected: data.len() as u64, actual: truncated.len() as u64 })
        );

        let mut flipped = data.clone();
        flipped[1234] ^= 0x01;
        match m.verify("af_heart", &flipped) {
            Err(ManifestError::WrongDigest { name, expected, actual }) => {
                assert_eq!(name, "af_heart");
                assert_eq!(expected, m.get("af_heart").unwrap().sha256);
                assert_ne!(actual, expected);
            }
            other => panic!("a flipped byte must be a digest mismatch, got {other:?}"),
        }

        // Another voice's (valid) data is not af_heart.
        assert!(matches!(m.verify("af_bella", &data), Err(ManifestError::WrongDigest { .. })));
    }

    #[test]
    fn verify_refuses_unknown_names_and_checks_size_before_digest() {
        let m = Manifest::bundled();
        assert_eq!(m.verify("xx_nobody", b""), Err(ManifestError::NotInManifest("xx_nobody".into())));
        // Empty data: reported as a size problem, without hashing.
        assert!(matches!(m.verify("af_heart", b""), Err(ManifestError::WrongSize { actual: 0, .. })));
    }

    #[test]
    fn a_manifest_from_json_is_sorted_and_refuses_duplicates() {
        let entry = |name: &str| {
            format!(
                r#"{{"name":"{name}","language":"en-us","gender":"female","bytes":3,"sha256":"{}","source":"test"}}"#,
                sha256_hex(b"abc")
            )
        };
        let m = Manifest::from_json(&format!(r#"{{"source":"t","voices":[{},{}]}}"#, entry("b"), entry("a"))).unwrap();
        assert_eq!(m.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.verify("a", b"abc"), Ok(()));
        let dup = Manifest::from_json(&format!(r#"{{"source":"t","voices":[{},{}]}}"#, entry("a"), entry("a")));
        assert_eq!(dup, Err(ManifestError::Duplicate("a".into())));
        assert!(matches!(Manifest::from_json(r#"{"source":"t","voices":[{"name":"a"}]}"#), Err(ManifestError::Parse(_))));
    }
}
