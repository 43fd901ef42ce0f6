//! Measures used by the golden tests and benchmarks.
//!
//! Log-mel distance: mean absolute difference of natural-log 80-band mel power spectrograms,
//! defined as torchaudio's default `MelSpectrogram` (power 2, HTK mel scale, no filter
//! normalisation) with n_fft 1024, hop 256, a periodic Hann window, centred reflect padding,
//! 0..12 kHz, then `ln(max(mel, 1e-5))`. On "Hello world." (af_heart) the int8 ONNX export sits at
//! 0.170 from the float reference under this definition.

use crate::config::SAMPLE_RATE;

const N_FFT: usize = 1024;
const HOP: usize = 256;
const N_MELS: usize = 80;
/// Fewest samples a log-mel spectrogram takes: reflect padding by `N_FFT / 2` needs one more.
pub const MIN_SAMPLES: usize = N_FFT / 2 + 1;

/// Why two signals cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// Occurs when a signal (or the common part of two) is too short for one spectrogram frame.
    #[error("a log-mel spectrogram needs at least {MIN_SAMPLES} samples ({N_FFT}-point frames, reflect-padded by half of one); got {0}")]
    TooShort(usize),
}

/// `||a - b|| / ||b||` (L2), the relative error of `a` against the reference `b`.
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "relative_error needs equal lengths");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

/// Natural-log mel power spectrogram, `[frames][80]`; at least [`MIN_SAMPLES`] samples.
pub fn log_mel(audio: &[f32]) -> Result<Vec<[f64; N_MELS]>, EvalError> {
    let pad = N_FFT / 2;
    if audio.len() < MIN_SAMPLES {
        return Err(EvalError::TooShort(audio.len()));
    }
    // Reflect padding.
    let mut x = Vec::with_capacity(audio.len() + 2 * pad);
    x.extend((1..=pad).rev().map(|i| audio[i] as f64));
    x.extend(audio.iter().map(|&v| v as f64));
    x.extend((0..pad).map(|i| audio[audio.len() - 2 - i] as f64));
    let window: Vec<f64> =
        (0..N_FFT).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()).collect();
    let bins = N_FFT / 2 + 1;
    let (cos, sin): (Vec<f64>, Vec<f64>) =
        (0..N_FFT).map(|i| (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).sin_cos()).map(|(s, c)| (c, s)).unzip();
    let bank = mel_bank(bins);
    let frames = 1 + (x.len() - N_FFT) / HOP;
    let mut out = Vec::with_capacity(frames);
    let mut power = vec![0f64; bins];
    for f in 0..frames {
        let seg = &x[f * HOP..f * HOP + N_FFT];
        for (k, p) in power.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, (&s, &w)) in seg.iter().zip(&window).enumerate() {
                let idx = (k * n) % N_FFT;
                re += s * w * cos[idx];
                im -= s * w * sin[idx];
            }
            *p = re * re + im * im;
        }
        let mut mel = [0f64; N_MELS];
        for (m, row) in bank.iter().enumerate() {
            mel[m] = row.iter().zip(&power).map(|(a, b)| a * b).sum::<f64>().max(1e-5).ln();
        }
        out.push(mel);
    }
    Ok(out)
}

/// Mean |log-mel difference| over the common length of two signals, which must be at least
/// [`MIN_SAMPLES`] (else there is not one frame to compare).
pub fn try_log_mel_distance(a: &[f32], b: &[f32]) -> Result<f64, EvalError> {
    let n = a.len().min(b.len());
    let (ma, mb) = (log_mel(&a[..n])?, log_mel(&b[..n])?);
    let total: f64 = ma.iter().zip(&mb).map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()).sum::<f64>()).sum();
    Ok(total / (ma.len() * N_MELS) as f64)
}

/// [`try_log_mel_distance`] for threshold checks: signals too short to compare are infinitely far
/// apart, so that `distance < bound` fails rather than passing on nothing compared.
pub fn log_mel_distance(a: &[f32], b: &[f32]) -> f64 {
    try_log_mel_distance(a, b).unwrap_or(f64::INFINITY)
}

/// Triangular HTK-scale filters over 0..sr/2, unnormalised (torchaudio's `melscale_fbanks`).
fn mel_bank(bins: usize) -> Vec<Vec<f64>> {
    let hz_to_mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let mel_to_hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let f_max = SAMPLE_RATE as f64 / 2.0;
    let (m_lo, m_hi) = (hz_to_mel(0.0), hz_to_mel(f_max));
    let points: Vec<f64> = (0..N_MELS + 2).map(|i| mel_to_hz(m_lo + (m_hi - m_lo) * i as f64 / (N_MELS + 1) as f64)).collect();
    let freqs: Vec<f64> = (0..bins).map(|k| f_max * k as f64 / (bins - 1) as f64).collect();
    (0..N_MELS)
        .map(|m| {
            freqs
                .iter()
                .map(|&f| {
                    let up = (f - points[m]) / (points[m + 1] - points[m]);
                    let down = (points[m + 2] - f) / (points[m + 2] - points[m + 1]);
                    up.min(down).max(0.0)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_signals_are_at_distance_zero_and_gain_shows() {
        // Broadband noise (an LCG) puts energy far above the 1e-5 floor in every mel band, so a
        // gain g shifts every log-mel value by ln(g^2): for g = 2, ln 4 = 1.386294.
        let mut state = 12345u32;
        let x: Vec<f32> = (0..4800)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert_eq!(log_mel_distance(&x, &x), 0.0);
        let y: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        let d = log_mel_distance(&x, &y);
        assert!((d - 4f64.ln()).abs() < 1e-6, "{d}");
    }

    #[test]
    fn short_or_empty_audio_is_an_error_not_a_panic() {
        let tone: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.05).sin()).collect();
        for n in [0, 1, 100, MIN_SAMPLES - 1] {
            assert_eq!(try_log_mel_distance(&tone[..n], &tone[..n]), Err(EvalError::TooShort(n)));
            assert_eq!(log_mel(&tone[..n]).unwrap_err(), EvalError::TooShort(n));
            assert_eq!(log_mel_distance(&tone[..n], &tone[..n]), f64::INFINITY, "too short to compare: never below a bound");
        }
        // The common length counts: a long signal against a short one is still too short.
        assert_eq!(try_log_mel_distance(&tone, &tone[..10]), Err(EvalError::TooShort(10)));
        assert_eq!(
            EvalError::TooShort(10).to_string(),
            "a log-mel spectrogram needs at least 513 samples (1024-point frames, reflect-padded by half of one); got 10"
        );
        // The shortest signal that works: one frame per hop of 256 after padding, (513 + 1024 - 1024) / 256 + 1 = 3.
        assert_eq!(log_mel(&tone[..MIN_SAMPLES]).unwrap().len(), 3);
        assert_eq!(try_log_mel_distance(&tone[..MIN_SAMPLES], &tone[..MIN_SAMPLES]), Ok(0.0));
    }

    #[test]
    fn relative_error_of_a_scaled_copy() {
        // 1.01 * b against b: ||0.01 b|| / ||b|| = 0.01.
        let b = [1.0f32, -2.0, 3.0];
        let a: Vec<f32> = b.iter().map(|v| v * 1.01).collect();
        assert!((relative_error(&a, &b) - 0.01).abs() < 1e-6);
    }
}
