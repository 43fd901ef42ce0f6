//! The harmonic-plus-noise source of iSTFTNet (`SineGen` + `SourceModuleHnNSF`).
//!
//! Upstream: `kokoro/istftnet.py` `SineGen`, `SourceModuleHnNSF` (hexgrad/kokoro).
//!
//! Upstream adds a random initial phase to harmonics 1..8 at sample 0 only, then downsamples the
//! per-sample phase increments by 300 with linear interpolation (half-pixel), which samples
//! positions 149.5 + 300j and so never reads sample 0: the random phase has no effect and is not
//! modelled here. The Gaussian noise is: it comes from a seeded RNG, or is zero in deterministic
//! mode (which is what the ONNX export computes).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// Configuration of a [`SourceModule`].
#[derive(Config, Debug)]
pub struct SourceModuleConfig {
    /// Output sample rate in Hz. Default: 24000.
    #[config(default = 24000)]
    pub sampling_rate: usize,
    /// Samples per F0 value (the generator's total upsampling). Default: 300.
    #[config(default = 300)]
    pub upsample_scale: usize,
    /// Overtones above the fundamental. Default: 8.
    #[config(default = 8)]
    pub harmonic_num: usize,
    /// Amplitude of the sines. Default: 0.1.
    #[config(default = 0.1)]
    pub sine_amp: f64,
    /// Noise std where voiced. Default: 0.003.
    #[config(default = 0.003)]
    pub noise_std: f64,
    /// F0 above which a sample counts as voiced, in Hz. Default: 10.
    #[config(default = 10.0)]
    pub voiced_threshold: f64,
}

/// Merges the fundamental and its overtones into one excitation signal.
#[derive(Module, Debug)]
pub struct SourceModule {
    /// Harmonics to one channel. Weight shape `[harmonics, 1]`.
    pub l_linear: Linear,
    pub sampling_rate: usize,
    pub upsample_scale: usize,
    pub harmonic_num: usize,
    pub sine_amp: f64,
    pub noise_std: f64,
    pub voiced_threshold: f64,
}

/// How the source's noise is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceNoise {
    /// No noise (the ONNX export's behaviour; used by golden tests).
    Deterministic,
    /// Gaussian noise from the device's RNG, seeded with this value before the draw.
    Seeded(u64),
}

impl SourceModuleConfig {
    /// Initializes a [`SourceModule`].
    pub fn init(&self, device: &Device) -> SourceModule {
        SourceModule {
            l_linear: LinearConfig::new(self.harmonic_num + 1, 1).init(device),
            sampling_rate: self.sampling_rate,
            upsample_scale: self.upsample_scale,
            harmonic_num: self.harmonic_num,
            sine_amp: self.sine_amp,
            noise_std: self.noise_std,
            voiced_threshold: self.voiced_threshold,
        }
    }
}

impl SourceModule {
    /// Builds the excitation from an F0 curve.
    ///
    /// # Shapes
    /// - f0: `[batch, f0_frames]` in Hz
    /// - output: `[batch, f0_frames * upsample_scale]`
    pub fn forward(&self, f0: Tensor<2>, noise: SourceNoise) -> Tensor<2> {
        let [batch, n] = f0.dims();
        let device = f0.device();
        let up = self.upsample_scale;
        let len = n * up;
        let dim = self.harmonic_num + 1;

        // 1. Phase increment per F0 frame for each harmonic, wrapped to [0, 1): [b, dim, n].
        let multipliers = Tensor::<1, Int>::arange(1..dim as i64 + 1, &device).float().reshape([1, dim, 1]);
        let rad = f0.clone().unsqueeze_dim::<3>(1) * multipliers / self.sampling_rate as f64;
        let rad = rad.clone() - rad.floor();
        // 2. Instantaneous phase at frame rate, scaled to sample rate (same op order as upstream).
        let phase = rad.cumsum(2) * 2.0 * std::f64::consts::PI * up as f64;
        // 3. Linear (half-pixel) upsampling to one value per sample: [b, dim, len].
        let (lo, hi, w) = half_pixel_linear(n, up, &device);
        let lo_v = phase.clone().select(2, lo);
        let hi_v = phase.select(2, hi);
        let phase = lo_v.clone() + (hi_v - lo_v) * w.reshape([1, 1, len]);
        let sines = phase.sin() * self.sine_amp;

        // 4. Voiced mask from the nearest-upsampled F0: [b, 1, len].
        let f0_up = f0.unsqueeze_dim::<3>(2).expand([batch, n, up]).reshape([batch, 1, len]);
        let uv = f0_up.greater_elem(self.voiced_threshold).float();
        let mut waves = sines * uv.clone();
        if let SourceNoise::Seeded(seed) = noise {
            device.seed(seed);
            let amp = uv.clone() * self.noise_std + (uv.neg() + 1.0) * (self.sine_amp / 3.0);
            waves = waves + Tensor::<3>::random([batch, dim, len], Distribution::Normal(0.0, 1.0), &device) * amp;
        }
        // 5. Merge harmonics: Linear(dim -> 1), tanh.
        super::tanh(self.l_linear.forward(waves.swap_dims(1, 2))).reshape([batch, len])
    }
}

/// Source indices and weights of `F.interpolate(mode="linear", align_corners=False)` by an integer
/// factor: output `i` reads `(i + 0.5) / scale - 0.5`, clamped to the input's ends.
fn half_pixel_linear(n: usize, scale: usize, device: &Device) -> (Tensor<1, Int>, Tensor<1, Int>, Tensor<1>) {
    let len = n * scale;
    let mut lo = Vec::with_capacity(len);
    let mut hi = Vec::with_capacity(len);
    let mut w = Vec::with_capacity(len);
    for i in 0..len {
        let src = ((i as f32 + 0.5) / scale as f32 - 0.5).max(0.0);
        let l = (src.floor() as usize).min(n - 1);
        lo.push(l as i64);
        hi.push((l + 1).min(n - 1) as i64);
        w.push(src - l as f32);
    }
    (
        Tensor::from_data(TensorData::new(lo, [len]), device),
        Tensor::from_data(TensorData::new(hi, [len]), device),
        Tensor::from_data(TensorData::new(w, [len]), device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_pixel_weights_for_scale_two() {
        // n = 2, scale 2: src = [-0.25 -> 0, 0.25, 0.75, 1.25 -> clamps to 1]
        let d = Device::ndarray();
        let (lo, hi, w) = half_pixel_linear(2, 2, &d);
        assert_eq!(lo.into_data().try_to_vec::<i64>().unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(hi.into_data().try_to_vec::<i64>().unwrap(), vec![1, 1, 1, 1]);
        let w = w.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w[0], 0.0);
        assert!((w[1] - 0.25).abs() < 1e-6 && (w[2] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn unvoiced_deterministic_source_is_constant() {
        // F0 = 0 everywhere: no sines, no noise -> tanh(bias) at every sample.
        let d = Device::ndarray();
        let m = SourceModuleConfig::new().with_upsample_scale(4).init(&d);
        let y = m.forward(Tensor::zeros([1, 3], &d), SourceNoise::Deterministic);
        assert_eq!(y.dims(), [1, 12]);
        let v = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| (x - v[0]).abs() < 1e-7));
    }

    #[test]
    fn seeded_noise_is_reproducible() {
        let d = Device::ndarray();
        let m = SourceModuleConfig::new().with_upsample_scale(4).init(&d);
        let f0 = Tensor::<2>::from_floats([[0.0, 200.0, 220.0]], &d);
        let a = m.forward(f0.clone(), SourceNoise::Seeded(7)).into_data();
        let b = m.forward(f0.clone(), SourceNoise::Seeded(7)).into_data();
        let c = m.forward(f0, SourceNoise::Deterministic).into_data();
        a.assert_eq(&b, true);
        assert_ne!(a.try_to_vec::<f32>().unwrap(), c.try_to_vec::<f32>().unwrap());
    }
}
