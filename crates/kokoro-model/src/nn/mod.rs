//! Kokoro's network blocks, one per file, as burn modules.

pub mod adain;
pub mod adain_resblk;
pub mod albert;
pub mod conv;
pub mod decoder;
pub mod generator;
pub mod lstm;
pub mod prosody;
pub mod source;
pub mod stft;
pub mod text_encoder;
