//! The response formats of `POST /v1/audio/speech`, 24 kHz mono: each an encoder fed chunk by
//! chunk, so a streamed response sends each chunk's audio as soon as it is spoken.

use kokoro_engine::SAMPLE_RATE;
use kokoro_engine::wav::{pcm16, pcm16_bytes};
use serde::{Deserialize, Serialize};

/// OpenAI's `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    #[default]
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    /// Raw 16-bit little-endian samples, no header.
    Pcm,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 6] = [Self::Mp3, Self::Opus, Self::Aac, Self::Flac, Self::Wav, Self::Pcm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
            Self::Wav => "wav",
            Self::Pcm => "pcm",
        }
    }

    /// The `Content-Type` OpenAI answers with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            // Ogg Opus; OpenAI's and Kokoro-FastAPI's answers say audio/opus.
            Self::Opus => "audio/opus",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
        }
    }

    /// An encoder for a stream whose length is not known yet.
    pub fn encoder(self) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(match self {
            Self::Wav => Box::new(WavStream { header_sent: false }),
            Self::Pcm => Box::new(Pcm),
            Self::Mp3 => Box::new(Mp3::new()?),
            Self::Opus => Box::new(OggOpus::new()?),
            Self::Flac => Box::new(Flac { samples: Vec::new() }),
            Self::Aac => Box::new(FfmpegAac::new()?),
        })
    }

    /// The whole audio at once: a WAV's header carries its real sizes (a streamed one cannot).
    pub fn encode_all(self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        self.encode_whole(self.encoder()?, audio)
    }

    /// [`encode_all`](Self::encode_all) with an encoder already made (a fresh one of this format).
    pub fn encode_whole(self, mut encoder: Box<dyn Encoder>, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        match self {
            Self::Wav => Ok(wav_header(Some(audio.len())).into_iter().chain(pcm16_bytes(audio)).collect()),
            _ => {
                let mut out = encoder.push(audio)?;
                out.extend(encoder.finish()?);
                Ok(out)
            }
        }
    }
}

/// An audio encoder fed chunk by chunk. Each call returns the bytes ready to send.
pub trait Encoder: Send {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError>;
    /// The last bytes (trailing frames, end of stream).
    fn finish(&mut self) -> Result<Vec<u8>, EncodeError>;
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Occurs when a format's encoder is not part of this build.
    #[error("response_format {0:?} is not available in this server")]
    NotBuilt(&'static str),
    /// Occurs when a format needs a program this machine lacks (aac: ffmpeg).
    #[error("response_format {format:?} is not available on this server: {why}")]
    Unavailable { format: &'static str, why: String },
    /// Occurs when an encoder library fails (it should not on valid samples).
    #[error("{format} encoder failed: {message}")]
    Failed { format: &'static str, message: String },
}

struct Pcm;

impl Encoder for Pcm {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        Ok(pcm16_bytes(audio))
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        Ok(Vec::new())
    }
}

/// A streamed WAV: its sizes are unknown when the header goes out, so they say "as long as
/// possible" (0xFFFFFFFF), as OpenAI's streamed WAVs do; decoders read to the end of the data.
struct WavStream {
    header_sent: bool,
}

impl Encoder for WavStream {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let mut out = if self.header_sent { Vec::new() } else { wav_header(None) };
        self.header_sent = true;
        out.extend(audio.iter().flat_map(|&s| pcm16(s).to_le_bytes()));
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        Ok(if self.header_sent { Vec::new() } else { self.push(&[])? })
    }
}

/// MP3 by LAME: 24 kHz is MPEG-2 layer III; 64 kbit/s CBR mono, transparent for speech.
struct Mp3 {
    lame: mp3lame_encoder::Encoder,
}

/// MP3's bit rate.
const MP3_BITRATE: mp3lame_encoder::Bitrate = mp3lame_encoder::Bitrate::Kbps64;

impl Mp3 {
    fn new() -> Result<Self, EncodeError> {
        use mp3lame_encoder::{Builder, Mode, Quality};
        let failed = |e: mp3lame_encoder::BuildError| EncodeError::Failed { format: "mp3", message: e.to_string() };
        let mut b = Builder::new().ok_or(EncodeError::Failed { format: "mp3", message: "lame_init failed".into() })?;
        b.set_num_channels(1).map_err(failed)?;
        b.set_sample_rate(SAMPLE_RATE).map_err(failed)?;
        // Pinned: at low bit rates LAME would otherwise resample to 22.05 kHz.
        b.set_output_sample_rate(std::num::NonZeroU32::new(SAMPLE_RATE)).map_err(failed)?;
        b.set_mode(Mode::Mono).map_err(failed)?;
        b.set_brate(MP3_BITRATE).map_err(failed)?;
        b.set_quality(Quality::Good).map_err(failed)?;
        // No Xing/LAME tag: it is filled in by seeking back to the start, which a stream cannot.
        b.set_to_write_vbr_tag(false).map_err(failed)?;
        Ok(Self { lame: b.build().map_err(failed)? })
    }
}

impl Encoder for Mp3 {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        let clipped: Vec<f32> = audio.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
        let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(clipped.len()));
        self.lame
            .encode_to_vec(mp3lame_encoder::MonoPcm(clipped.as_slice()), &mut out)
            .map_err(|e| EncodeError::Failed { format: "mp3", message: e.to_string() })?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(7200);
        self.lame
            .flush_to_vec::<mp3lame_encoder::FlushGap>(&mut out)
            .map_err(|e| EncodeError::Failed { format: "mp3", message: e.to_string() })?;
        Ok(out)
    }
}

/// Opus in Ogg (RFC 7845) by opus-pure: 20 ms frames at 24 kHz, 32 kbit/s. The last packet is
/// held back until the next one or the end, so the end can be trimmed to the exact length.
struct OggOpus {
    opus: opus_pure::OpusEncoder,
    writer: Option<opus_pure::OggOpusWriter<Vec<u8>>>,
    pre_skip: u64,
    /// Samples not yet making a whole frame.
    pending: Vec<f32>,
    /// The last packet encoded, not yet written.
    held: Option<Vec<u8>>,
    /// Input samples so far.
    samples: u64,
    /// The encoder's output buffer, reused for every frame.
    scratch: Vec<u8>,
}

/// Samples per Opus frame at 24 kHz (20 ms).
const OPUS_FRAME: usize = 480;

impl OggOpus {
    fn new() -> Result<Self, EncodeError> {
        let failed = |e: opus_pure::Error| EncodeError::Failed { format: "opus", message: e.to_string() };
        let mut opus = opus_pure::OpusEncoder::new(SAMPLE_RATE as i32, 1, opus_pure::Application::Voip).map_err(failed)?;
        opus.bitrate_bps = 32_000;
        let head = opus_pure::OpusHead::for_encoder(&opus, SAMPLE_RATE);
        let pre_skip = u64::from(head.pre_skip);
        let mut writer = opus_pure::OggOpusWriter::new(Vec::new(), head).map_err(failed)?;
        // Small pages: each packet goes out as soon as the next one is written.
        writer.set_page_target(1);
        Ok(Self { opus, writer: Some(writer), pre_skip, pending: Vec::new(), held: None, samples: 0, scratch: vec![0; opus_pure::MAX_PACKET_BYTES] })
    }

    fn failed(e: opus_pure::Error) -> EncodeError {
        EncodeError::Failed { format: "opus", message: e.to_string() }
    }

    fn encode_frame(&mut self, frame: &[f32]) -> Result<(), EncodeError> {
        let len = self.opus.encode(frame, OPUS_FRAME, &mut self.scratch).map_err(Self::failed)?;
        let packet = self.scratch[..len].to_vec();
        if let Some(previous) = self.held.replace(packet) {
            self.writer.as_mut().expect("not finished").write_packet(&previous).map_err(Self::failed)?;
        }
        Ok(())
    }

    /// The bytes the writer has produced so far.
    fn take_bytes(&mut self) -> Vec<u8> {
        self.writer.as_mut().and_then(|w| w.get_mut()).map(std::mem::take).unwrap_or_default()
    }
}

impl Encoder for OggOpus {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        self.samples += audio.len() as u64;
        self.pending.extend(audio.iter().map(|s| s.clamp(-1.0, 1.0)));
        let whole = self.pending.len() / OPUS_FRAME * OPUS_FRAME;
        let frames: Vec<f32> = self.pending.drain(..whole).collect();
        for frame in frames.chunks_exact(OPUS_FRAME) {
            self.encode_frame(frame)?;
        }
        Ok(self.take_bytes())
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        // Silence past the end flushes the encoder's look-ahead out, so the last real samples
        // are in some packet; the final granule then trims the stream to the exact length.
        let needed = self.samples + self.pre_skip.div_ceil(2);
        let mut encoded = self.samples - self.pending.len() as u64;
        while encoded < needed {
            let mut frame = std::mem::take(&mut self.pending);
            frame.resize(OPUS_FRAME, 0.0);
            self.encode_frame(&frame)?;
            encoded += OPUS_FRAME as u64;
        }
        let mut writer = self.writer.take().expect("finished once");
        if let Some(last) = self.held.take() {
            let final_granule = self.pre_skip + 2 * self.samples;
            let duration = final_granule.saturating_sub(writer.granule() as u64) as u32;
            writer.write_packet_with_duration(&last, duration).map_err(Self::failed)?;
        }
        writer.finish().map_err(Self::failed)
    }
}

/// FLAC by flacenc (16-bit, 24 kHz mono). Its STREAMINFO holds the length and MD5 of the whole
/// audio, so it is written at the end: a streamed FLAC arrives in one piece.
struct Flac {
    samples: Vec<i32>,
}

impl Encoder for Flac {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        self.samples.extend(audio.iter().map(|&s| i32::from(pcm16(s))));
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        use flacenc::component::BitRepr;
        use flacenc::error::Verify;
        let failed = |message: String| EncodeError::Failed { format: "flac", message };
        let config = flacenc::config::Encoder::default().into_verified().map_err(|(_, e)| failed(format!("{e:?}")))?;
        let source = flacenc::source::MemSource::from_samples(&self.samples, 1, 16, SAMPLE_RATE as usize);
        let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size).map_err(|e| failed(format!("{e:?}")))?;
        let mut sink = flacenc::bitsink::ByteSink::new();
        stream.write(&mut sink).map_err(|e| failed(format!("{e:?}")))?;
        Ok(sink.into_inner())
    }
}

/// AAC-LC in ADTS frames (64 kbit/s), by ffmpeg's native AAC encoder run as a child process
/// fed 16-bit PCM on its stdin. Why a process: no AAC encoder is maintained in Rust, and the one
/// C library crates wrap (fdk-aac) is non-free (Debian ships it in non-free) and needs a C++
/// toolchain; ffmpeg is LGPL, in Debian's main, and what Kokoro-FastAPI encodes AAC with (PyAV).
/// `KOKORO_FFMPEG` names the program (default: `ffmpeg` on the PATH). ADTS needs no container
/// header, so each chunk's frames can be sent as ffmpeg makes them.
struct FfmpegAac {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// ffmpeg's output, read by a thread so that a full pipe never blocks the writes.
    out: std::sync::mpsc::Receiver<Vec<u8>>,
    reader: Option<std::thread::JoinHandle<()>>,
    errors: Option<std::thread::JoinHandle<String>>,
}

impl FfmpegAac {
    fn new() -> Result<Self, EncodeError> {
        Self::new_with(&std::env::var_os("KOKORO_FFMPEG").unwrap_or_else(|| "ffmpeg".into()))
    }

    fn new_with(program: &std::ffi::OsStr) -> Result<Self, EncodeError> {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let rate = SAMPLE_RATE.to_string();
        let mut child = Command::new(program)
            .args(["-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", &rate, "-ac", "1", "-i", "pipe:0"])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "adts", "pipe:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EncodeError::Unavailable {
                format: "aac",
                why: format!("it is encoded by ffmpeg, which could not be started ({}: {e}); install ffmpeg (Debian: apt install ffmpeg)", program.to_string_lossy()),
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, out) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buffer = vec![0u8; 16 << 10];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Self { stdin: child.stdin.take(), child, out, reader: Some(reader), errors: Some(errors) })
    }

    fn ready(&self) -> Vec<u8> {
        self.out.try_iter().flatten().collect()
    }

    fn failed(&mut self, what: &str) -> EncodeError {
        let _ = self.child.kill();
        let said = self.errors.take().and_then(|h| h.join().ok()).unwrap_or_default();
        EncodeError::Failed { format: "aac", message: format!("{what}: {}", said.trim()) }
    }
}

impl Encoder for FfmpegAac {
    fn push(&mut self, audio: &[f32]) -> Result<Vec<u8>, EncodeError> {
        use std::io::Write;
        let Some(stdin) = self.stdin.as_mut() else { return Err(self.failed("audio after the end")) };
        if let Err(e) = stdin.write_all(&pcm16_bytes(audio)) {
            return Err(self.failed(&format!("writing to ffmpeg: {e}")));
        }
        Ok(self.ready())
    }

    fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        drop(self.stdin.take()); // end of input: ffmpeg flushes its last frames and exits
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let bytes = self.ready();
        match self.child.wait() {
            Ok(status) if status.success() => Ok(bytes),
            Ok(status) => Err(self.failed(&format!("ffmpeg exited with {status}"))),
            Err(e) => Err(self.failed(&format!("waiting for ffmpeg: {e}"))),
        }
    }
}

impl Drop for FfmpegAac {
    fn drop(&mut self) {
        // A request that ended early (client gone, failure) leaves no ffmpeg behind.
        if self.stdin.is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A 44-byte PCM WAV header, 16-bit mono at the model's rate; `samples` None when streamed.
fn wav_header(samples: Option<usize>) -> Vec<u8> {
    let data = samples.map_or(u32::MAX, |n| u32::try_from(n * 2).unwrap_or(u32::MAX));
    let riff = samples.map_or(u32::MAX, |_| data.saturating_add(36));
    let mut h = Vec::with_capacity(44);
    h.extend(b"RIFF");
    h.extend(riff.to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes()); // fmt chunk size
    h.extend(1u16.to_le_bytes()); // integer PCM
    h.extend(1u16.to_le_bytes()); // mono
    h.extend(SAMPLE_RATE.to_le_bytes());
    h.extend((SAMPLE_RATE * 2).to_le_bytes()); // bytes per second
    h.extend(2u16.to_le_bytes()); // block align
    h.extend(16u16.to_le_bytes()); // bits per sample
    h.extend(b"data");
    h.extend(data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_wav_equals_the_engines_and_a_streamed_one_holds_the_same_samples() {
        let audio: Vec<f32> = (0..1000).map(|i| (i as f32 / 37.0).sin() * 0.8).collect();
        let whole = AudioFormat::Wav.encode_all(&audio).unwrap();
        assert_eq!(whole, kokoro_engine::wav::wav_bytes(&audio).unwrap());
        let mut e = AudioFormat::Wav.encoder().unwrap();
        let mut streamed = e.push(&audio[..400]).unwrap();
        streamed.extend(e.push(&audio[400..]).unwrap());
        streamed.extend(e.finish().unwrap());
        assert_eq!(&streamed[..4], b"RIFF");
        assert_eq!(&streamed[4..8], &u32::MAX.to_le_bytes());
        assert_eq!(&streamed[44..], &whole[44..]);
        assert_eq!(AudioFormat::Pcm.encode_all(&audio).unwrap(), pcm16_bytes(&audio));
    }

    /// 1.5 s of a voice-like test signal: harmonics of a gliding pitch under a syllable envelope.
    fn voice_like() -> Vec<f32> {
        (0..36_000)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let pitch = 140.0 + 30.0 * (t * 2.0).sin();
                let envelope = (t * std::f32::consts::PI * 4.0).sin().abs();
                envelope * (1..=5).map(|h| (2.0 * std::f32::consts::PI * pitch * h as f32 * t).sin() / h as f32).sum::<f32>() * 0.3
            })
            .collect()
    }

    /// Streams `audio` through `format`'s encoder in uneven pieces, as chunks arrive.
    fn streamed(format: AudioFormat, audio: &[f32]) -> Vec<u8> {
        let mut e = format.encoder().unwrap();
        let mut out = Vec::new();
        for piece in [&audio[..7_001], &audio[7_001..20_000], &audio[20_000..]] {
            out.extend(e.push(piece).unwrap());
        }
        out.extend(e.finish().unwrap());
        out
    }

    /// Normalized cross-correlation at the best lag within `max_lag` samples.
    fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> f64 {
        (0..=max_lag)
            .map(|lag| {
                let (x, y) = (&a[..a.len().min(b.len().saturating_sub(lag))], &b[lag..]);
                let dot: f64 = x.iter().zip(y).map(|(&p, &q)| f64::from(p) * f64::from(q)).sum();
                let nx: f64 = x.iter().map(|&p| f64::from(p) * f64::from(p)).sum();
                let ny: f64 = y.iter().take(x.len()).map(|&q| f64::from(q) * f64::from(q)).sum();
                dot / (nx * ny).sqrt()
            })
            .fold(f64::MIN, f64::max)
    }

    /// Correlation of the 20 ms RMS envelopes of two signals of the same length.
    fn envelope_correlation(a: &[f32], b: &[f32]) -> f64 {
        let envelope = |x: &[f32]| -> Vec<f64> {
            x.chunks(480).map(|f| (f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len() as f64).sqrt()).collect()
        };
        let (ea, eb) = (envelope(a), envelope(b));
        let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
        let (ma, mb) = (mean(&ea), mean(&eb));
        let cov: f64 = ea.iter().zip(&eb).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = ea.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = eb.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn flac_is_lossless() {
        let audio = voice_like();
        let bytes = streamed(AudioFormat::Flac, &audio);
        assert_eq!(&bytes[..4], b"fLaC");
        let mut reader = claxon::FlacReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!((reader.streaminfo().sample_rate, reader.streaminfo().channels, reader.streaminfo().bits_per_sample), (SAMPLE_RATE, 1, 16));
        let decoded: Vec<i32> = reader.samples().map(Result::unwrap).collect();
        let expected: Vec<i32> = audio.iter().map(|&s| i32::from(pcm16(s))).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn ogg_opus_decodes_to_exactly_the_input_length_and_sounds_like_it() {
        let audio = voice_like();
        let bytes = streamed(AudioFormat::Opus, &audio);
        assert_eq!(&bytes[..4], b"OggS");
        let mut reader = opus_pure::OggOpusReader::new(std::io::Cursor::new(bytes)).unwrap();
        let head = reader.head().clone();
        assert_eq!((head.channel_count, head.input_sample_rate), (1, SAMPLE_RATE));
        let mut decoder = head.decoder(SAMPLE_RATE as i32).unwrap();
        let mut trim = opus_pure::Trim::new(&head, SAMPLE_RATE as i32, 1).unwrap();
        let mut block = vec![0.0f32; opus_pure::MAX_PACKET_SAMPLES];
        let mut decoded = Vec::new();
        for packet in reader.packets() {
            let packet = packet.unwrap();
            let n = decoder.decode(&packet.data, opus_pure::MAX_PACKET_SAMPLES, &mut block).unwrap();
            decoded.extend_from_slice(trim.keep(&packet, &block[..n]));
        }
        assert_eq!(decoded.len(), audio.len(), "pre-skip and end trim give the exact length");
        // A speech codec at 32 kbit/s keeps the spectrum, not the waveform: compare loudness
        // over time (20 ms frames), aligned by the trim.
        let c = envelope_correlation(&audio, &decoded);
        assert!(c > 0.98, "loudness over time against the input's: {c}");
    }

    #[test]
    fn mp3_decodes_to_the_input_with_lames_delay() {
        let audio = voice_like();
        let bytes = streamed(AudioFormat::Mp3, &audio);
        let decoded = decode_mp3(&bytes);
        // LAME delays by 576 + 529 samples and pads the last frame (a streamed MP3 has no LAME
        // tag that would tell a decoder to trim them).
        assert!(decoded.len() >= audio.len() && decoded.len() <= audio.len() + 1105 + 2 * 1152, "{} vs {}", decoded.len(), audio.len());
        let c = best_correlation(&audio, &decoded, 1200);
        assert!(c > 0.9, "correlation with the input {c}");
        let whole = AudioFormat::Mp3.encode_all(&audio).unwrap();
        assert_eq!(whole, bytes, "streamed in pieces or at once: the same file");
    }

    #[test]
    fn aac_decodes_to_the_input_with_the_encoders_priming() {
        let audio = voice_like();
        let bytes = streamed(AudioFormat::Aac, &audio);
        assert_eq!(bytes[0], 0xFF, "an ADTS frame starts the stream");
        assert_eq!(bytes[1] & 0xF6, 0xF0, "ADTS sync word, layer 0");
        let decoded = decode(&bytes, "aac");
        // AAC frames are 1024 samples, with 1024 of priming ahead (no container to trim them).
        assert!(decoded.len() >= audio.len() && decoded.len() <= audio.len() + 3 * 1024, "{} vs {}", decoded.len(), audio.len());
        let c = best_correlation(&audio, &decoded, 2100);
        assert!(c > 0.9, "correlation with the input {c}");
        let whole = AudioFormat::Aac.encode_all(&audio).unwrap();
        assert_eq!(decode(&whole, "aac").len(), decoded.len(), "streamed in pieces or at once: the same length");
    }

    #[test]
    fn without_ffmpeg_aac_is_refused_with_what_to_install() {
        let error = FfmpegAac::new_with("/nonexistent/ffmpeg".as_ref()).err().expect("no such program");
        assert!(error.to_string().contains("install ffmpeg"), "{error}");
    }

    fn decode_mp3(bytes: &[u8]) -> Vec<f32> {
        decode(bytes, "mp3")
    }

    /// Samples of an MP3 or ADTS AAC stream (symphonia, pure Rust).
    fn decode(bytes: &[u8], extension: &str) -> Vec<f32> {
        use symphonia::core::audio::SampleBuffer;
        use symphonia::core::io::MediaSourceStream;
        use symphonia::core::probe::Hint;
        let source = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes.to_vec())), Default::default());
        let mut hint = Hint::new();
        hint.with_extension(extension);
        let probed = symphonia::default::get_probe().format(&hint, source, &Default::default(), &Default::default()).unwrap();
        let mut format = probed.format;
        let track = format.default_track().unwrap().clone();
        assert_eq!(track.codec_params.sample_rate, Some(SAMPLE_RATE));
        let mut decoder = symphonia::default::get_codecs().make(&track.codec_params, &Default::default()).unwrap();
        let mut out = Vec::new();
        while let Ok(packet) = format.next_packet() {
            let decoded = decoder.decode(&packet).unwrap();
            let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
            buffer.copy_interleaved_ref(decoded);
            out.extend_from_slice(buffer.samples());
        }
        out
    }
}
