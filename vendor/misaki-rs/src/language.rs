use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Language {
    EnglishUS,
    EnglishGB,
    // Italian,
}

impl Language {
    /// Does this build embed the dialect's lexicons (cargo features `en-us`, `en-gb`)?
    pub fn is_embedded(&self) -> bool {
        crate::data::embedded(*self == Language::EnglishGB).is_some()
    }

    pub fn is_english(&self) -> bool {
        matches!(self, Language::EnglishUS | Language::EnglishGB)
    }
}
