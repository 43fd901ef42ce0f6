//! What can go wrong between a request and its audio.

use kokoro_text::TextError;
use kokoro_voice::VoiceError;

/// Errors of an engine call. Each has a stable [`code`](EngineError::code) that front ends pass
/// on (the worker's messages, the server's JSON errors), whatever the message says.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Occurs when the text cannot be chunked or phonemized.
    #[error(transparent)]
    Text(#[from] TextError),
    /// Occurs when a voice name, mix or file is bad or unknown.
    #[error(transparent)]
    Voice(#[from] VoiceError),
    /// Occurs when the model refuses the input (too long, bad speed) or the device fails.
    #[error(transparent)]
    Model(#[from] kokoro_model::Error),
    /// Occurs when `lang` is not a supported dialect.
    #[error("unknown language {0:?}: use en-us or en-gb")]
    Language(String),
    /// Occurs when there was no text, or nothing in it that can be spoken.
    #[error("nothing to say: the text has no words or numbers that can be spoken")]
    NothingToSay,
    /// Occurs when the scheduler's queue or held audio is full: nothing was queued.
    #[error("the engine is overloaded: retry in {} s", retry_after.as_secs().max(1))]
    Overloaded { retry_after: std::time::Duration },
    /// Occurs when a request passes its deadline before its last chunk.
    #[error("the request passed its deadline")]
    Timeout,
    /// Occurs when a request was cancelled.
    #[error("the request was cancelled")]
    Cancelled,
    /// Occurs when the scheduler stops with the request unfinished.
    #[error("the engine is shutting down")]
    ShuttingDown,
}

impl EngineError {
    /// A short, stable identifier of the kind of error.
    pub fn code(&self) -> &'static str {
        use kokoro_model::Error as M;
        match self {
            Self::Text(TextError::UnknownDialect(_) | TextError::DialectNotBuilt(_)) | Self::Language(_) => "bad_language",
            Self::Text(_) => "bad_text",
            Self::Voice(VoiceError::Unknown(_)) => "unknown_voice",
            Self::Voice(VoiceError::Io(..)) => "voice_unavailable",
            Self::Voice(_) => "bad_voice",
            Self::Model(M::BadSpeed(_)) => "bad_speed",
            Self::Model(M::TooManyIds { .. } | M::TooManyFrames { .. } | M::IdOutOfRange { .. }) => "too_long",
            Self::Model(M::EmptyInput) | Self::NothingToSay => "nothing_to_say",
            Self::Model(M::Device(_)) => "device",
            Self::Overloaded { .. } => "overloaded",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// Whether the request was at fault (bad text, voice, speed, length), not the machine.
    pub fn is_input(&self) -> bool {
        !matches!(self.code(), "device" | "voice_unavailable" | "overloaded" | "timeout" | "cancelled" | "shutting_down")
    }
}
