//! Audio out: 16-bit PCM, and WAV written as the audio arrives (24 kHz mono).

use std::io::{Seek, Write};

use kokoro_model::SAMPLE_RATE;

/// One sample as 16-bit PCM: clipped to [-1, 1], scaled by 32767, rounded.
pub fn pcm16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Samples as little-endian 16-bit PCM bytes (a raw `pcm` stream, or a WAV's data).
pub fn pcm16_bytes(audio: &[f32]) -> Vec<u8> {
    audio.iter().flat_map(|&s| pcm16(s).to_le_bytes()).collect()
}

/// The format of everything the engine writes: mono, 24 kHz, 16-bit integer PCM.
pub fn spec() -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// A WAV file written chunk by chunk; the header's sizes are filled in by [`finish`](Self::finish).
pub struct PcmWavWriter<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    samples: usize,
}

impl<W: Write + Seek> PcmWavWriter<W> {
    pub fn new(out: W) -> Result<Self, hound::Error> {
        Ok(Self { writer: hound::WavWriter::new(out, spec())?, samples: 0 })
    }

    /// Appends samples as 16-bit PCM.
    pub fn write(&mut self, audio: &[f32]) -> Result<(), hound::Error> {
        for &s in audio {
            self.writer.write_sample(pcm16(s))?;
        }
        self.samples += audio.len();
        Ok(())
    }

    /// Completes the header; returns the number of samples written.
    pub fn finish(self) -> Result<usize, hound::Error> {
        self.writer.finalize()?;
        Ok(self.samples)
    }
}

/// A whole WAV file in memory (fails only past WAV's 4 GiB limit).
pub fn wav_bytes(audio: &[f32]) -> Result<Vec<u8>, hound::Error> {
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + 2 * audio.len()));
    let mut w = PcmWavWriter::new(&mut out)?;
    w.write(audio)?;
    w.finish()?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_clips_and_rounds_and_the_wav_reads_back() {
        assert_eq!(pcm16(2.0), 32767);
        assert_eq!(pcm16(-2.0), -32767);
        assert_eq!(pcm16(0.5), 16384);
        let bytes = wav_bytes(&[0.0, 0.5, -1.0]).unwrap();
        assert_eq!(&bytes[44..], &pcm16_bytes(&[0.0, 0.5, -1.0])[..]);
        let r = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(r.spec(), spec());
        assert_eq!(r.into_samples::<i16>().map(Result::unwrap).collect::<Vec<_>>(), vec![0, 16384, -32767]);
    }
}
