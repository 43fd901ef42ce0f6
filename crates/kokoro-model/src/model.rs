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
use crate::nn::TimeMask;
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

/// First half of a batched pass: row `b` holds utterance `b`'s `tokens[b]` tokens, then padding.
struct BatchProsody {
    ids: Tensor<2, Int>,
    /// `[batch, 1, tokens]`.
    token_mask: TimeMask,
    d_en: Tensor<3>,
    d: Tensor<3>,
    /// `[batch, tokens]`; values past a row's length are unspecified.
    sums: Tensor<2>,
    style_decoder: Tensor<2>,
    style_prosody: Tensor<2>,
}

/// Second half of a batched pass; `frame_mask` is `[batch, 1, frames]` and row `b` of `audio`
/// (`[batch, samples]`) holds `600 * frames[b]` valid samples.
struct BatchRendered {
    frame_mask: TimeMask,
    en: Tensor<3>,
    f0: Tensor<2>,
    n: Tensor<2>,
    t_en: Tensor<3>,
    asr: Tensor<3>,
    generator_input: Tensor<3>,
    spectrum: Tensor<3>,
    audio: Tensor<2>,
}

impl KModel {
    /// Synthesises several utterances in one pass: their ids are padded to the longest, and every
    /// layer sees each utterance's own length (attention key padding, bi-LSTMs reversed within
    /// each length, padded steps zeroed before each convolution, normalisation statistics over
    /// each utterance's own steps, the source, STFT and inverse STFT per utterance). Each output is
    /// what [`forward`](Self::forward) gives that input alone, up to float rounding (the batched
    /// kernels and masked statistics sum in another order): same durations, same noise draw.
    ///
    /// Every output carries the batch's stage timings. [`MAX_FRAMES`] bounds each utterance; the
    /// batch holds `inputs.len()` times the longest one's frames, so the caller sizes batches.
    /// Batches of similar lengths waste the least work on padding.
    pub fn forward_batch(&self, inputs: &[ForwardInput], device: &Device) -> Result<Vec<ForwardOutput>, Error> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let mut clock = StageClock::new(device, true);
        let (prosody, bert) = self.prosody_batch(inputs, device, &mut clock)?;
        let sums = prosody.sums.clone().into_data().try_to_vec::<f32>().map_err(device_error)?;
        let durations = batch_durations(inputs, &sums)?;
        let (rendered, mut timings) = self.render_batch(&prosody, &durations, inputs, device, &mut clock)?;
        let audio = rendered.audio.clone().into_data().try_to_vec::<f32>().map_err(device_error)?;
        timings.bert = bert;
        timings.decoder = clock.lap()?;
        timings.total = clock.start.elapsed();
        Ok(batch_outputs(inputs, prosody, rendered, durations, &audio, timings))
    }

    /// [`forward_batch`](Self::forward_batch) for targets that cannot block on the device (see
    /// [`forward_async`](Self::forward_async)).
    pub async fn forward_batch_async(
        &self,
        inputs: &[ForwardInput],
        device: &Device,
    ) -> Result<Vec<ForwardOutput>, Error> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let mut clock = StageClock::new(device, false);
        let (prosody, bert) = self.prosody_batch(inputs, device, &mut clock)?;
        let sums = prosody.sums.clone().into_data_async().await.map_err(device_error)?;
        let sums = sums.try_to_vec::<f32>().map_err(device_error)?;
        let durations = batch_durations(inputs, &sums)?;
        let (rendered, mut timings) = self.render_batch(&prosody, &durations, inputs, device, &mut clock)?;
        let audio = rendered.audio.clone().into_data_async().await.map_err(device_error)?;
        let audio = audio.try_to_vec::<f32>().map_err(device_error)?;
        timings.bert = bert;
        timings.decoder = clock.lap()?;
        timings.total = clock.start.elapsed();
        Ok(batch_outputs(inputs, prosody, rendered, durations, &audio, timings))
    }

    /// [`prosody`](Self::prosody) for a padded batch.
    fn prosody_batch(
        &self,
        inputs: &[ForwardInput],
        device: &Device,
        clock: &mut StageClock,
    ) -> Result<(BatchProsody, Duration), Error> {
        let n_token = self.text_encoder.embedding.weight.val().dims()[0];
        for input in inputs {
            validate(input, n_token)?;
        }
        let batch = inputs.len();
        let lengths: Vec<usize> = inputs.iter().map(|i| i.ids.len() + 2).collect();
        let tokens = *lengths.iter().max().expect("a non-empty batch");
        // Boundary zeros around each utterance, then padding (id 0 too; masked everywhere).
        let mut ids = vec![0i64; batch * tokens];
        let mut key_padding = vec![0f32; batch * tokens];
        for (b, input) in inputs.iter().enumerate() {
            for (t, &id) in input.ids.iter().enumerate() {
                ids[b * tokens + 1 + t] = id as i64;
            }
            key_padding[b * tokens + lengths[b]..(b + 1) * tokens].fill(1.0);
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, tokens]), device);
        let key_padding = Tensor::<2>::from_data(TensorData::new(key_padding, [batch, tokens]), device);
        let style: Vec<f32> = inputs.iter().flat_map(|i| i.style.0).collect();
        let style = Tensor::<2>::from_data(TensorData::new(style, [batch, STYLE_WIDTH]), device);
        let half = STYLE_WIDTH / 2;
        let style_decoder = style.clone().slice([0..batch, 0..half]);
        let style_prosody = style.slice([0..batch, half..STYLE_WIDTH]);
        let token_mask = TimeMask::new(lengths, tokens, device);

        // 1. PL-BERT, padded keys masked: d_en [b, 512, tokens].
        let d_en = self.bert_encoder.forward(self.bert.forward(ids.clone(), Some(key_padding))).swap_dims(1, 2);
        let bert = clock.lap()?;

        // 2a. Duration encoder and head, the bi-LSTMs within each row's length: sums [b, tokens].
        let lengths = Some(token_mask.lengths.as_slice());
        let d = self.predictor.text_encoder.forward_masked(d_en.clone(), style_prosody.clone(), lengths);
        let sums = self.predictor.durations_masked(d.clone(), lengths);
        Ok((BatchProsody { ids, token_mask, d_en, d, sums, style_decoder, style_prosody }, bert))
    }

    /// [`render`](Self::render) for a padded batch with each row's rounded `durations`.
    fn render_batch(
        &self,
        p: &BatchProsody,
        durations: &[Vec<u32>],
        inputs: &[ForwardInput],
        device: &Device,
        clock: &mut StageClock,
    ) -> Result<(BatchRendered, StageTimings), Error> {
        let batch = durations.len();
        let tokens = p.token_mask.time();
        let lengths: Vec<usize> = durations.iter().map(|d| d.iter().map(|&f| f as usize).sum()).collect();
        let frames = *lengths.iter().max().expect("a non-empty batch");
        let frame_mask = TimeMask::new(lengths, frames, device);
        // Alignment as a gather over all rows' tokens: frame f of row b reads row b's token; padded
        // frames read row b's first token and are masked.
        let mut frame_token = Vec::with_capacity(batch * frames);
        for (b, d) in durations.iter().enumerate() {
            let base = (b * tokens) as i64;
            let start = frame_token.len();
            frame_token.extend(d.iter().enumerate().flat_map(|(t, &n)| std::iter::repeat_n(base + t as i64, n as usize)));
            frame_token.resize(start + frames, base);
        }
        let frame_token = Tensor::<1, Int>::from_data(TensorData::new(frame_token, [batch * frames]), device);
        let align = |x: Tensor<3>| {
            // x: [b, channels, tokens] -> [b, channels, frames]
            let [_, c, _] = x.dims();
            let rows = x.swap_dims(1, 2).reshape([batch * tokens, c]).select(0, frame_token.clone());
            frame_mask.apply(rows.reshape([batch, frames, c]).swap_dims(1, 2))
        };

        // 2b. en [b, 640, frames]; F0 and N [b, 2 * frames], zero past each row's end.
        let en = align(p.d.clone().swap_dims(1, 2));
        let (f0, n) = self.predictor.f0_n_masked(en.clone(), p.style_prosody.clone(), Some(&frame_mask));
        let predictor = clock.lap()?;

        // 3. Text encoder: t_en [b, 512, tokens]; asr [b, 512, frames].
        let t_en = self.text_encoder.forward_masked(p.ids.clone(), Some(&p.token_mask));
        let asr = align(t_en.clone());
        let text_encoder = clock.lap()?;

        // 4. Decoder and generator, each row with its own noise.
        let noise: Vec<SourceNoise> = inputs.iter().map(|i| i.noise).collect();
        let out = self.decoder.forward_masked(
            asr.clone(),
            f0.clone(),
            n.clone(),
            p.style_decoder.clone(),
            &noise,
            &frame_mask,
        );
        let rendered = BatchRendered {
            frame_mask,
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

/// Each row's durations, rounded with its own speed, from the `[batch, tokens]` sums.
fn batch_durations(inputs: &[ForwardInput], sums: &[f32]) -> Result<Vec<Vec<u32>>, Error> {
    let tokens = sums.len() / inputs.len();
    inputs
        .iter()
        .enumerate()
        .map(|(b, input)| {
            let row = &sums[b * tokens..b * tokens + input.ids.len() + 2];
            let durations = round_durations(row, input.speed);
            check_frames(&durations)?;
            Ok(durations)
        })
        .collect()
}

/// Cuts the batch's tensors into one output per utterance, each at its own length.
fn batch_outputs(
    inputs: &[ForwardInput],
    p: BatchProsody,
    r: BatchRendered,
    durations: Vec<Vec<u32>>,
    audio: &[f32],
    timings: StageTimings,
) -> Vec<ForwardOutput> {
    let samples = audio.len() / inputs.len();
    let samples_per_frame = samples / r.frame_mask.time();
    durations
        .into_iter()
        .enumerate()
        .map(|(b, durations)| {
            let tokens = p.token_mask.lengths[b];
            let frames = r.frame_mask.lengths[b];
            let row3 = |x: &Tensor<3>, len: usize| {
                let [_, c, _] = x.dims();
                HostTensor::from_tensor(x.clone().slice([b..b + 1, 0..c, 0..len]))
            };
            let row2 = |x: &Tensor<2>, len: usize| HostTensor::from_tensor(x.clone().slice([b..b + 1, 0..len]));
            let intermediates = inputs[b].keep_intermediates.then(|| {
                let [_, _, width] = p.d.dims();
                // The spectrum has (frames * k) + 1 steps for the batch and for each row alike.
                let [_, bins2, spec] = r.spectrum.dims();
                let spec_frames = (spec - 1) / r.frame_mask.time() * frames + 1;
                Intermediates {
                    d_en: row3(&p.d_en, tokens),
                    d: HostTensor::from_tensor(p.d.clone().slice([b..b + 1, 0..tokens, 0..width])),
                    duration_sums: row2(&p.sums, tokens),
                    en: row3(&r.en, frames),
                    f0: row2(&r.f0, 2 * frames),
                    n: row2(&r.n, 2 * frames),
                    t_en: row3(&r.t_en, tokens),
                    asr: row3(&r.asr, frames),
                    generator_input: row3(&r.generator_input, 2 * frames),
                    spectrum: HostTensor::from_tensor(r.spectrum.clone().slice([
                        b..b + 1,
                        0..bins2,
                        0..spec_frames,
                    ])),
                }
            });
            let audio = audio[b * samples..b * samples + frames * samples_per_frame].to_vec();
            ForwardOutput { durations, audio, timings: timings.clone(), intermediates }
        })
        .collect()
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
