//! `KModel`: the whole network, and a forward pass that reports each stage.
//!
//! Upstream: `kokoro/model.py` `KModel.forward` (hexgrad/kokoro).

use std::time::Duration;

// std's Instant panics in the browser; web-time is the same type natively.
use web_time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{KokoroConfig, MAX_FRAMES, MAX_PHONEME_IDS, MAX_SPEED, MIN_SPEED};
use crate::nn::albert::{Albert, AlbertConfig};
use crate::nn::decoder::{Decoder, DecoderConfig};
use crate::nn::generator::GeneratorConfig;
use crate::nn::prosody::{ProsodyPredictor, ProsodyPredictorConfig};
use crate::nn::source::SourceNoise;
use crate::nn::text_encoder::{TextEncoder, TextEncoderConfig};
use crate::voice::{STYLE_WIDTH, StyleVector};
use crate::Error;

/// Kokoro-82M: PL-BERT, its projection, the prosody predictor, the text encoder and the decoder.
#[derive(Module, Debug)]
pub struct KModel {
    pub bert: Albert,
    /// PL-BERT hidden to model width. Weight shape `[768, 512]`.
    pub bert_encoder: Linear,
    pub predictor: ProsodyPredictor,
    pub text_encoder: TextEncoder,
    pub decoder: Decoder,
}

impl KModel {
    /// Builds the network for `config` with freshly initialised parameters.
    pub fn init(config: &KokoroConfig, device: &Device) -> Self {
        let p = &config.plbert;
        KModel {
            bert: AlbertConfig::from_plbert(config.n_token, p).init(device),
            bert_encoder: LinearConfig::new(p.hidden_size, config.hidden_dim).init(device),
            predictor: ProsodyPredictorConfig::new(config.style_dim, config.hidden_dim, config.n_layer, config.max_dur)
                .init(device),
            text_encoder: TextEncoderConfig::new(
                config.hidden_dim,
                config.text_encoder_kernel_size,
                config.n_layer,
                config.n_token,
            )
            .init(device),
            decoder: DecoderConfig::new(
                config.hidden_dim,
                config.style_dim,
                GeneratorConfig::from_istftnet(config.style_dim, &config.istftnet),
            )
            .init(device),
        }
    }
}

/// One utterance to synthesise.
#[derive(Debug, Clone)]
pub struct ForwardInput {
    /// Phoneme ids without the boundary zeros (1..=510 of them).
    pub ids: Vec<u32>,
    /// The voice's style row for this length.
    pub style: StyleVector,
    /// Speaking rate; durations are divided by it before rounding. Default: 1.
    pub speed: f32,
    /// The source's noise.
    pub noise: SourceNoise,
    /// If true, the output keeps every stage's tensor (for golden tests).
    pub keep_intermediates: bool,
}

impl ForwardInput {
    /// An input at speed 1 with seeded noise (seed 0) and no intermediates.
    pub fn new(ids: Vec<u32>, style: StyleVector) -> Self {
        Self { ids, style, speed: 1.0, noise: SourceNoise::Seeded(0), keep_intermediates: false }
    }
    pub fn with_speed(mut self, speed: f32) -> Self {
        self.speed = speed;
        self
    }
    pub fn with_noise(mut self, noise: SourceNoise) -> Self {
        self.noise = noise;
        self
    }
    pub fn with_intermediates(mut self, keep: bool) -> Self {
        self.keep_intermediates = keep;
        self
    }
}

/// Wall time of each stage of one forward pass.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageTimings {
    pub bert: Duration,
    pub predictor: Duration,
    pub text_encoder: Duration,
    pub decoder: Duration,
    pub total: Duration,
}

/// A host copy of a tensor with its shape.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        let data = t.into_data();
        Self { shape: data.shape().to_vec(), data: data.try_to_vec::<f32>().expect("float tensor") }
    }
}

/// Every stage's output, named as in MODEL.md and the golden files.
#[derive(Debug, Clone)]
pub struct Intermediates {
    pub d_en: HostTensor,
    pub d: HostTensor,
    pub duration_sums: HostTensor,
    pub en: HostTensor,
    pub f0: HostTensor,
    pub n: HostTensor,
    pub t_en: HostTensor,
    pub asr: HostTensor,
    pub generator_input: HostTensor,
    pub spectrum: HostTensor,
}

/// What one forward pass produced.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Frames per token, the two boundary tokens included.
    pub durations: Vec<u32>,
    /// 24 kHz mono samples.
    pub audio: Vec<f32>,
    pub timings: StageTimings,
    pub intermediates: Option<Intermediates>,
}

/// Tensors of the first half of a pass: everything up to the durations, which must be read to the
/// host (the alignment is built there) before the second half can start.
struct Prosody {
    ids: Tensor<2, Int>,
    d_en: Tensor<3>,
    d: Tensor<3>,
    /// Predicted frames per token before rounding: `[1, tokens]`.
    sums: Tensor<2>,
    style_decoder: Tensor<2>,
    style_prosody: Tensor<2>,
}

/// Tensors of the second half; `audio` is `[1, samples]`.
struct Rendered {
    en: Tensor<3>,
    f0: Tensor<2>,
    n: Tensor<2>,
    t_en: Tensor<3>,
    asr: Tensor<3>,
    generator_input: Tensor<3>,
    spectrum: Tensor<3>,
    audio: Tensor<2>,
}

/// Stage timer. With `sync` it waits for the device at each lap, so a lap is the stage's compute
/// time; without (the browser, where waiting blocks) a lap is dispatch time, and the wait lands in
/// the stage that reads a tensor back.
struct StageClock<'a> {
    device: &'a Device,
    sync: bool,
    start: Instant,
    lap: Instant,
}

impl<'a> StageClock<'a> {
    fn new(device: &'a Device, sync: bool) -> Self {
        let now = Instant::now();
        Self { device, sync, start: now, lap: now }
    }

    fn lap(&mut self) -> Result<Duration, Error> {
        if self.sync {
            self.device.sync().map_err(device_error)?;
        }
        let now = Instant::now();
        let lap = now - self.lap;
        self.lap = now;
        Ok(lap)
    }
}

impl KModel {
    /// Synthesises one utterance (batch of one), waiting for the device where it reads tensors.
    pub fn forward(&self, input: &ForwardInput, device: &Device) -> Result<ForwardOutput, Error> {
        let mut clock = StageClock::new(device, true);
        let (prosody, bert) = self.prosody(input, device, &mut clock)?;
        let sums = prosody.sums.clone().into_data().try_to_vec::<f32>().map_err(device_error)?;
        let durations = round_durations(&sums, input.speed);
        check_frames(&durations)?;
        let (rendered, mut timings) = self.render(&prosody, &durations, input, device, &mut clock)?;
        let audio = rendered.audio.clone().into_data().try_to_vec::<f32>().map_err(device_error)?;
        timings.bert = bert;
        timings.decoder = clock.lap()?;
        timings.total = clock.start.elapsed();
        Ok(output(prosody, rendered, durations, audio, timings, input.keep_intermediates))
    }

    /// The same pass for targets that cannot block on the device (WebGPU in a browser): reads
    /// are awaited. Stage timings are dispatch times except where a read waits (see `StageClock`).
    pub async fn forward_async(&self, input: &ForwardInput, device: &Device) -> Result<ForwardOutput, Error> {
        let mut clock = StageClock::new(device, false);
        let (prosody, bert) = self.prosody(input, device, &mut clock)?;
        let sums = prosody.sums.clone().into_data_async().await.map_err(device_error)?;
        let sums = sums.try_to_vec::<f32>().map_err(device_error)?;
        let durations = round_durations(&sums, input.speed);
        check_frames(&durations)?;
        let (rendered, mut timings) = self.render(&prosody, &durations, input, device, &mut clock)?;
        let audio = rendered.audio.clone().into_data_async().await.map_err(device_error)?;
        let audio = audio.try_to_vec::<f32>().map_err(device_error)?;
        timings.bert = bert;
        timings.decoder = clock.lap()?;
        timings.total = clock.start.elapsed();
        Ok(output(prosody, rendered, durations, audio, timings, input.keep_intermediates))
    }

    /// PL-BERT, its projection and the duration head. Returns the tensors and PL-BERT's lap.
    fn prosody(&self, input: &ForwardInput, device: &Device, clock: &mut StageClock) -> Result<(Prosody, Duration), Error> {
        let n_token = self.text_encoder.embedding.weight.val().dims()[0];
        validate(input, n_token)?;
        let tokens = input.ids.len() + 2;
        let ids: Vec<i64> = std::iter::once(0).chain(input.ids.iter().map(|&i| i as i64)).chain([0]).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens]), device);
        let style = Tensor::<2>::from_data(TensorData::new(input.style.0.to_vec(), [1, STYLE_WIDTH]), device);
        // First half conditions the decoder, second half the prosody predictor.
        let half = STYLE_WIDTH / 2;
        let style_decoder = style.clone().slice([0..1, 0..half]);
        let style_prosody = style.slice([0..1, half..STYLE_WIDTH]);

        // 1. PL-BERT and its projection: d_en [1, 512, tokens].
        let d_en = self.bert_encoder.forward(self.bert.forward(ids.clone(), None)).swap_dims(1, 2);
        let bert = clock.lap()?;

        // 2a. Prosody text encoder and the duration head: sums [tokens].
        let d = self.predictor.text_encoder.forward(d_en.clone(), style_prosody.clone());
        let sums = self.predictor.durations(d.clone());
        Ok((Prosody { ids, d_en, d, sums, style_decoder, style_prosody }, bert))
    }

    /// Alignment, F0 and N, the text encoder and the decoder, for the rounded `durations`.
    fn render(
        &self,
        p: &Prosody,
        durations: &[u32],
        input: &ForwardInput,
        device: &Device,
        clock: &mut StageClock,
    ) -> Result<(Rendered, StageTimings), Error> {
        let frames: usize = durations.iter().map(|&f| f as usize).sum();
        // Alignment as a gather: frame f reads the token it belongs to (exactly d^T @ one-hot).
        let frame_token: Vec<i64> =
            durations.iter().enumerate().flat_map(|(t, &n)| std::iter::repeat_n(t as i64, n as usize)).collect();
        let frame_token = Tensor::<1, Int>::from_data(TensorData::new(frame_token, [frames]), device);

        // 2b. en [1, 512, frames]; F0 and N [1, 2 * frames].
        let en = p.d.clone().swap_dims(1, 2).select(2, frame_token.clone());
        let (f0, n) = self.predictor.f0_n(en.clone(), p.style_prosody.clone());
        let predictor = clock.lap()?;

        // 3. Text encoder: t_en [1, 512, tokens]; asr [1, 512, frames].
        let t_en = self.text_encoder.forward(p.ids.clone());
        let asr = t_en.clone().select(2, frame_token);
        let text_encoder = clock.lap()?;

        // 4. Decoder and generator (its lap is taken once the audio is read).
        let out = self.decoder.forward(asr.clone(), f0.clone(), n.clone(), p.style_decoder.clone(), input.noise);
        let rendered = Rendered {
            en,
            f0,
            n,
            t_en,
            asr,
            generator_input: out.generator_input,
            spectrum: out.generator.spectrum,
            audio: out.generator.audio,
        };
        Ok((rendered, StageTimings { predictor, text_encoder, ..StageTimings::default() }))
    }
}

fn output(
    p: Prosody,
    r: Rendered,
    durations: Vec<u32>,
    audio: Vec<f32>,
    timings: StageTimings,
    keep: bool,
) -> ForwardOutput {
    let intermediates = keep.then(|| Intermediates {
        d_en: HostTensor::from_tensor(p.d_en),
        d: HostTensor::from_tensor(p.d),
        duration_sums: HostTensor::from_tensor(p.sums),
        en: HostTensor::from_tensor(r.en),
        f0: HostTensor::from_tensor(r.f0),
        n: HostTensor::from_tensor(r.n),
        t_en: HostTensor::from_tensor(r.t_en),
        asr: HostTensor::from_tensor(r.asr),
        generator_input: HostTensor::from_tensor(r.generator_input),
        spectrum: HostTensor::from_tensor(r.spectrum),
    });
    ForwardOutput { durations, audio, timings, intermediates }
}

fn device_error(e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{e:?}"))
}

fn validate(input: &ForwardInput, n_token: usize) -> Result<(), Error> {
    if input.ids.is_empty() {
        return Err(Error::EmptyInput);
    }
    if input.ids.len() > MAX_PHONEME_IDS {
        return Err(Error::TooManyIds { got: input.ids.len(), max: MAX_PHONEME_IDS });
    }
    if let Some(&bad) = input.ids.iter().find(|&&i| i == 0 || i as usize >= n_token) {
        return Err(Error::IdOutOfRange { id: bad, max: n_token as u32 - 1 });
    }
    if !(MIN_SPEED..=MAX_SPEED).contains(&input.speed) {
        return Err(Error::BadSpeed(input.speed));
    }
    Ok(())
}

/// Refuses durations that add up to more than [`MAX_FRAMES`], before the decoder allocates for them.
fn check_frames(durations: &[u32]) -> Result<(), Error> {
    let frames: usize = durations.iter().map(|&f| f as usize).sum();
    if frames > MAX_FRAMES {
        return Err(Error::TooManyFrames { got: frames, max: MAX_FRAMES });
    }
    Ok(())
}

/// `round(sum / speed).clamp(min=1)`, rounding half to even as `torch.round` does.
pub fn round_durations(sums: &[f32], speed: f32) -> Vec<u32> {
    sums.iter().map(|&s| (s / speed).round_ties_even().max(1.0) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let style = StyleVector([0.0; STYLE_WIDTH]);
        let input = |ids: Vec<u32>| ForwardInput::new(ids, style.clone());
        assert!(matches!(validate(&input(vec![]), 178), Err(Error::EmptyInput)));
        assert!(matches!(validate(&input(vec![1; 511]), 178), Err(Error::TooManyIds { got: 511, max: 510 })));
        assert!(matches!(validate(&input(vec![5, 178]), 178), Err(Error::IdOutOfRange { id: 178, max: 177 })));
        assert!(matches!(validate(&input(vec![5]).with_speed(f32::NAN), 178), Err(Error::BadSpeed(_))));
        assert!(matches!(validate(&input(vec![5]).with_speed(-1.0), 178), Err(Error::BadSpeed(_))));
        // Issue 12: 0.0001 ran towards an out-of-memory abort, 1000 spoke; OpenAI's range is 0.25-4.
        assert!(matches!(validate(&input(vec![5]).with_speed(0.0001), 178), Err(Error::BadSpeed(_))));
        assert!(matches!(validate(&input(vec![5]).with_speed(1000.0), 178), Err(Error::BadSpeed(_))));
        assert!(matches!(validate(&input(vec![5]).with_speed(0.249), 178), Err(Error::BadSpeed(_))));
        assert!(validate(&input(vec![5]).with_speed(0.25), 178).is_ok());
        assert!(validate(&input(vec![5]).with_speed(4.0), 178).is_ok());
        assert!(validate(&input(vec![1; 510]), 178).is_ok());
    }

    #[test]
    fn frames_are_bounded_per_pass() {
        assert!(check_frames(&[MAX_FRAMES as u32]).is_ok());
        assert!(matches!(
            check_frames(&[MAX_FRAMES as u32 / 2, MAX_FRAMES as u32 / 2 + 1]),
            Err(Error::TooManyFrames { got, max: MAX_FRAMES }) if got == MAX_FRAMES + 1
        ));
    }

    #[test]
    fn durations_round_half_to_even_and_clamp() {
        // 2.5 -> 2 (even), 3.5 -> 4, 0.2 -> 0 -> clamped to 1; speed 2 halves 5.0 -> 2.5 -> 2.
        assert_eq!(round_durations(&[2.5, 3.5, 0.2], 1.0), vec![2, 4, 1]);
        assert_eq!(round_durations(&[5.0], 2.0), vec![2]);
    }
}
