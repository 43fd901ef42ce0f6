//! The iSTFTNet generator: harmonic source, two upsampling stages with AdaIN resblocks, and an
//! inverse STFT.
//!
//! Upstream: `kokoro/istftnet.py` `Generator`, `AdaINResBlock1` (hexgrad/kokoro).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, ConvTranspose1d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use super::adain::{AdaIn1d, AdaIn1dConfig};
use super::conv::{compute_precision, conv1d, conv1d_forward, conv1d_forward_at, conv_transpose1d};
use super::source::{SourceModule, SourceModuleConfig, SourceNoise};
use super::stft::Stft;
use super::{TimeMask, masked};
use crate::config::IstftNetConfig;

/// Configuration of an [`AdaInResBlock1`].
#[derive(Config, Debug)]
pub struct AdaInResBlock1Config {
    pub channels: usize,
    pub kernel_size: usize,
    /// Dilations of the three first convolutions.
    pub dilation: Vec<usize>,
    pub style_dim: usize,
}

/// Three residual units of AdaIN -> Snake -> dilated conv -> AdaIN -> Snake -> conv.
#[derive(Module, Debug)]
pub struct AdaInResBlock1 {
    /// Dilated convolutions. Weight shape `[channels, channels, kernel]`.
    pub convs1: Vec<Conv1d>,
    /// Undilated convolutions. Weight shape `[channels, channels, kernel]`.
    pub convs2: Vec<Conv1d>,
    pub adain1: Vec<AdaIn1d>,
    pub adain2: Vec<AdaIn1d>,
    /// Snake frequencies before `convs1`. Shape `[1, channels, 1]` each.
    pub alpha1: Vec<Param<Tensor<3>>>,
    /// Snake frequencies before `convs2`. Shape `[1, channels, 1]` each.
    pub alpha2: Vec<Param<Tensor<3>>>,
}

impl AdaInResBlock1Config {
    /// Initializes an [`AdaInResBlock1`].
    pub fn init(&self, device: &Device) -> AdaInResBlock1 {
        let (c, k) = (self.channels, self.kernel_size);
        assert!(k % 2 == 1, "resblock kernel size must be odd, got {k}");
        let pad = |d: usize| (k * d - d) / 2;
        AdaInResBlock1 {
            convs1: self.dilation.iter().map(|&d| conv1d(c, c, k, 1, pad(d), d, device)).collect(),
            convs2: self.dilation.iter().map(|_| conv1d(c, c, k, 1, pad(1), 1, device)).collect(),
            adain1: self.dilation.iter().map(|_| AdaIn1dConfig::new(self.style_dim, c).init(device)).collect(),
            adain2: self.dilation.iter().map(|_| AdaIn1dConfig::new(self.style_dim, c).init(device)).collect(),
            alpha1: self.dilation.iter().map(|_| Param::from_tensor(Tensor::ones([1, c, 1], device))).collect(),
            alpha2: self.dilation.iter().map(|_| Param::from_tensor(Tensor::ones([1, c, 1], device))).collect(),
        }
    }
}

impl AdaInResBlock1 {
    /// # Shapes
    /// - x: `[batch, channels, time]`, style: `[batch, style_dim]`
    /// - output: `[batch, channels, time]`
    pub fn forward(&self, x: Tensor<3>, style: Tensor<2>) -> Tensor<3> {
        self.forward_masked(x, style, None)
    }

    /// [`forward`](Self::forward) over a padded batch whose padded steps are zero; they stay zero
    /// (AdaIN masks its output, Snake maps 0 to 0, each conv's bias is masked).
    pub fn forward_masked(&self, mut x: Tensor<3>, style: Tensor<2>, mask: Option<&TimeMask>) -> Tensor<3> {
        // The resblocks' convolutions are the ones a lower precision applies to (the bulk of
        // the model's FLOPs); see ComputePrecision.
        let precision = compute_precision();
        for i in 0..self.convs1.len() {
            let mut xt = self.adain1[i].forward_snake(x.clone(), style.clone(), self.alpha1[i].val(), mask);
            xt = masked(conv1d_forward_at(&self.convs1[i], xt, precision), mask);
            xt = self.adain2[i].forward_snake(xt, style.clone(), self.alpha2[i].val(), mask);
            x = masked(conv1d_forward_at(&self.convs2[i], xt, precision), mask) + x;
        }
        x
    }
}

/// Configuration of a [`Generator`].
#[derive(Config, Debug)]
pub struct GeneratorConfig {
    pub style_dim: usize,
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub upsample_initial_channel: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub gen_istft_n_fft: usize,
    pub gen_istft_hop_size: usize,
}

impl GeneratorConfig {
    /// Builds the configuration from Kokoro's `istftnet` section.
    pub fn from_istftnet(style_dim: usize, c: &IstftNetConfig) -> Self {
        Self::new(
            style_dim,
            c.upsample_rates.clone(),
            c.upsample_kernel_sizes.clone(),
            c.upsample_initial_channel,
            c.resblock_kernel_sizes.clone(),
            c.resblock_dilation_sizes.clone(),
            c.gen_istft_n_fft,
            c.gen_istft_hop_size,
        )
    }

    /// Initializes a [`Generator`].
    pub fn init(&self, device: &Device) -> Generator {
        assert_eq!(
            self.upsample_rates.len(),
            self.upsample_kernel_sizes.len(),
            "upsample_rates and upsample_kernel_sizes differ in length"
        );
        let stages = self.upsample_rates.len();
        let bins2 = self.gen_istft_n_fft + 2;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let mut noise_convs = Vec::new();
        let mut noise_res = Vec::new();
        for (i, (&u, &k)) in self.upsample_rates.iter().zip(&self.upsample_kernel_sizes).enumerate() {
            let c_in = self.upsample_initial_channel >> i;
            let c = self.upsample_initial_channel >> (i + 1);
            ups.push(conv_transpose1d(c_in, c, k, u, (k - u) / 2, 0, 1, device));
            for (&rk, d) in self.resblock_kernel_sizes.iter().zip(&self.resblock_dilation_sizes) {
                resblocks.push(AdaInResBlock1Config::new(c, rk, d.clone(), self.style_dim).init(device));
            }
            if i + 1 < stages {
                let stride: usize = self.upsample_rates[i + 1..].iter().product();
                noise_convs.push(conv1d(bins2, c, 2 * stride, stride, stride.div_ceil(2), 1, device));
                noise_res.push(AdaInResBlock1Config::new(c, 7, vec![1, 3, 5], self.style_dim).init(device));
            } else {
                noise_convs.push(conv1d(bins2, c, 1, 1, 0, 1, device));
                noise_res.push(AdaInResBlock1Config::new(c, 11, vec![1, 3, 5], self.style_dim).init(device));
            }
        }
        let last = self.upsample_initial_channel >> stages;
        let total_up: usize = self.upsample_rates.iter().product::<usize>() * self.gen_istft_hop_size;
        Generator {
            m_source: SourceModuleConfig::new().with_upsample_scale(total_up).init(device),
            noise_convs,
            noise_res,
            ups,
            resblocks,
            conv_post: conv1d(last, bins2, 7, 1, 3, 1, device),
            num_kernels: self.resblock_kernel_sizes.len(),
            n_fft: self.gen_istft_n_fft,
            hop: self.gen_istft_hop_size,
        }
    }
}

/// iSTFTNet generator.
#[derive(Module, Debug)]
pub struct Generator {
    pub m_source: SourceModule,
    pub noise_convs: Vec<Conv1d>,
    pub noise_res: Vec<AdaInResBlock1>,
    pub ups: Vec<ConvTranspose1d>,
    pub resblocks: Vec<AdaInResBlock1>,
    /// Weight shape `[n_fft + 2, channels, 7]`.
    pub conv_post: Conv1d,
    pub num_kernels: usize,
    pub n_fft: usize,
    pub hop: usize,
}

/// What [`Generator::forward`] returns.
#[derive(Debug, Clone)]
pub struct GeneratorOutput {
    /// Output of `conv_post`, before exp/sin. Shape `[batch, n_fft + 2, spec_frames]`.
    pub spectrum: Tensor<3>,
    /// Audio. Shape `[batch, samples]`.
    pub audio: Tensor<2>,
}

impl Generator {
    /// # Shapes
    /// - x: `[batch, channels, 2 * frames]` (decoder features)
    /// - style: `[batch, style_dim]` (decoder half)
    /// - f0: `[batch, 2 * frames]` in Hz
    pub fn forward(&self, x: Tensor<3>, style: Tensor<2>, f0: Tensor<2>, noise: SourceNoise) -> GeneratorOutput {
        let stft = self.stft();
        // 1. Harmonic source and its spectrum: [b, n_fft + 2, samples / hop + 1].
        let har = stft.magnitude_phase(self.m_source.forward(f0, noise));
        let spectrum = self.spectrum(x, style, har, None);
        GeneratorOutput { audio: self.istft(spectrum.clone()), spectrum }
    }

    /// [`forward`](Self::forward) over a padded batch whose `x` is zero past each row's
    /// `mask.lengths[b]` steps, with each row's own source noise.
    ///
    /// The harmonic source (a running phase sum, with seeded noise of the row's own length), its
    /// reflect-padded STFT and the inverse STFT read a row's ends, so they run per row on the
    /// row's valid steps; each row's source noise is what an unbatched pass draws for it. The
    /// convolutions run on the whole batch. Row `b` of the spectrum holds
    /// `mask.lengths[b] * 60 + 1` valid frames (for Kokoro's 300x upsampling and hop 5), row `b`
    /// of the audio `mask.lengths[b] * 300` valid samples; zeros follow.
    ///
    /// # Shapes
    /// - x: `[batch, channels, time]` (decoder features; `time` = 2 * frames)
    /// - style: `[batch, style_dim]`
    /// - f0: `[batch, time]` in Hz
    /// - noise: `batch` values
    /// - mask: `[batch, 1, time]`
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        style: Tensor<2>,
        f0: Tensor<2>,
        noise: &[SourceNoise],
        mask: &TimeMask,
    ) -> GeneratorOutput {
        let stft = self.stft();
        let batch = mask.lengths.len();
        assert_eq!(noise.len(), batch, "one source noise per row");
        // 1. Per row: harmonic source and its spectrum, zero-padded to the batch's frames.
        let har_mask = mask.scaled(self.m_source.upsample_scale / self.hop, 1);
        let har = (0..batch)
            .map(|b| {
                let f0_b = f0.clone().slice([b..b + 1, 0..mask.lengths[b]]);
                pad_time(stft.magnitude_phase(self.m_source.forward(f0_b, noise[b])), har_mask.time())
            })
            .collect();
        let spectrum = self.spectrum(x, style, Tensor::cat(har, 0), Some(mask));
        // 3. Per row: inverse STFT of its valid frames, zero-padded to the batch's samples.
        let samples = self.hop * (har_mask.time() - 1);
        let audio = (0..batch)
            .map(|b| {
                let [_, bins2, _] = spectrum.dims();
                let rows = spectrum.clone().slice([b..b + 1, 0..bins2, 0..har_mask.lengths[b]]);
                let audio = self.istft(rows);
                let len = audio.dims()[1];
                if len < samples {
                    Tensor::cat(vec![audio, Tensor::zeros([1, samples - len], &f0.device())], 1)
                } else {
                    audio
                }
            })
            .collect();
        GeneratorOutput { audio: Tensor::cat(audio, 0), spectrum }
    }

    fn stft(&self) -> Stft {
        Stft { n_fft: self.n_fft, hop: self.hop }
    }

    /// Upsampling stages and `conv_post`: the spectrum before exp/sin, `[b, n_fft + 2, frames]`.
    /// With a mask (for `x`), padded steps are zeroed after every conv, at each stage's rate.
    fn spectrum(&self, mut x: Tensor<3>, style: Tensor<2>, har: Tensor<3>, mask: Option<&TimeMask>) -> Tensor<3> {
        // 2. Upsampling stages, each adding the source branch, then averaging the resblocks.
        let stages = self.ups.len();
        let mut mask = mask.cloned();
        for i in 0..stages {
            let last = i + 1 == stages;
            x = leaky_relu(x, 0.1);
            let time_in = x.dims()[2];
            x = self.ups[i].forward(x);
            // Each transposed conv multiplies the time axis by its stride; a row's valid steps too.
            mask = mask.map(|m| m.scaled(x.dims()[2] / time_in, 0));
            x = masked(x, mask.as_ref());
            // The reflection pad adds one step in front: every row gains one valid step.
            let stage_mask = if last { mask.as_ref().map(|m| m.scaled(1, 1)) } else { mask.clone() };
            if last {
                // ReflectionPad1d((1, 0)): prepend x[..., 1].
                let [b, c, _] = x.dims();
                x = Tensor::cat(vec![x.clone().slice([0..b, 0..c, 1..2]), x], 2);
            }
            let source = masked(conv1d_forward(&self.noise_convs[i], har.clone()), stage_mask.as_ref());
            let x_source = self.noise_res[i].forward_masked(source, style.clone(), stage_mask.as_ref());
            x = x + x_source;
            let blocks = &self.resblocks[i * self.num_kernels..(i + 1) * self.num_kernels];
            let sum = blocks
                .iter()
                .map(|b| b.forward_masked(x.clone(), style.clone(), stage_mask.as_ref()))
                .reduce(|a, b| a + b)
                .expect("at least one resblock kernel");
            x = sum / self.num_kernels as f64;
        }
        // F.leaky_relu's default slope is 0.01.
        conv1d_forward(&self.conv_post, leaky_relu(x, 0.01))
    }

    /// 3. Spectrum -> audio: `[b, hop * (frames - 1)]`.
    fn istft(&self, spectrum: Tensor<3>) -> Tensor<2> {
        let stft = self.stft();
        let [b, _, frames] = spectrum.dims();
        let bins = stft.bins();
        let magnitude = spectrum.clone().slice([0..b, 0..bins, 0..frames]).exp();
        let phase = spectrum.slice([0..b, bins..2 * bins, 0..frames]).sin();
        stft.inverse(magnitude, phase)
    }
}

/// Zero-pads `x: [b, c, t]` on the right to `time` steps.
fn pad_time(x: Tensor<3>, time: usize) -> Tensor<3> {
    let [b, c, t] = x.dims();
    if t == time {
        return x;
    }
    Tensor::cat(vec![x.clone(), Tensor::zeros([b, c, time - t], &x.device())], 2)
}
