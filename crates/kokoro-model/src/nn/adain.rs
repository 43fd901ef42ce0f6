//! Style-conditioned normalisations: [`AdaIn1d`] (over time) and [`AdaLayerNorm`] (over channels).
//!
//! Upstream: `kokoro/istftnet.py` `AdaIN1d` and `kokoro/modules.py` `AdaLayerNorm` (hexgrad/kokoro).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::TimeMask;
use super::conv::{f32_values, kernels_take, snake};

/// Epsilon of both normalisations (PyTorch's default for InstanceNorm1d and layer_norm).
const EPS: f64 = 1e-5;

/// Configuration of an [`AdaIn1d`].
#[derive(Config, Debug)]
pub struct AdaIn1dConfig {
    /// Width of the style vector.
    pub style_dim: usize,
    /// Channels of the normalised signal.
    pub num_features: usize,
}

/// Adaptive instance normalisation: `(1 + gamma(s)) * instance_norm(x) + beta(s)`.
///
/// The published weights carry no InstanceNorm affine parameters (they are ones and zeros).
#[derive(Module, Debug)]
pub struct AdaIn1d {
    /// Style to `[gamma | beta]`. Weight shape `[style_dim, 2 * channels]`.
    pub fc: Linear,
}

impl AdaIn1dConfig {
    /// Initializes an [`AdaIn1d`].
    pub fn init(&self, device: &Device) -> AdaIn1d {
        AdaIn1d { fc: LinearConfig::new(self.style_dim, 2 * self.num_features).init(device) }
    }
}

impl AdaIn1d {
    /// # Shapes
    /// - x: `[batch, channels, time]`
    /// - style: `[batch, style_dim]`
    /// - output: `[batch, channels, time]`
    pub fn forward(&self, x: Tensor<3>, style: Tensor<2>) -> Tensor<3> {
        self.forward_masked(x, style, None)
    }

    /// [`forward`](Self::forward) over a padded batch: each row's mean and (biased) variance are
    /// taken over its own valid steps, divided by its true length, and the padded steps of the
    /// output are zero. Without a mask this is exactly `forward`.
    ///
    /// # Shapes
    /// - x: `[batch, channels, time]`
    /// - style: `[batch, style_dim]`
    /// - mask: `[batch, 1, time]`
    /// - output: `[batch, channels, time]`
    pub fn forward_masked(&self, x: Tensor<3>, style: Tensor<2>, mask: Option<&TimeMask>) -> Tensor<3> {
        let [batch, channels, _] = x.dims();
        let h = self.fc.forward(style).reshape([batch, 2 * channels, 1]);
        let gamma = h.clone().slice([0..batch, 0..channels]);
        let beta = h.slice([0..batch, channels..2 * channels]);
        match mask {
            None => {
                let (var, mean) = x.clone().var_mean_bias(2);
                let normed = (x - mean) / (var + EPS).sqrt();
                (gamma + 1.0) * normed + beta
            }
            Some(m) => {
                let mean = m.apply(x.clone()).sum_dim(2) / m.counts.clone();
                let centred = m.apply(x - mean);
                let var = centred.clone().square().sum_dim(2) / m.counts.clone();
                let normed = centred / (var + EPS).sqrt();
                m.apply((gamma + 1.0) * normed + beta)
            }
        }
    }
}

impl AdaIn1d {
    /// `snake(self.forward_masked(x, style, mask), alpha)`: on the CPU backend one fused kernel
    /// (kokoro-kernels' `adain_snake`: statistics, then one write per row), elsewhere the tensor
    /// ops.
    ///
    /// # Shapes
    /// - x: `[batch, channels, time]`
    /// - style: `[batch, style_dim]`
    /// - alpha: `[1, channels, 1]`
    /// - output: `[batch, channels, time]`
    pub fn forward_snake(&self, x: Tensor<3>, style: Tensor<2>, alpha: Tensor<3>, mask: Option<&TimeMask>) -> Tensor<3> {
        let [batch, _, time] = x.dims();
        let f32s = style.dtype() == burn::tensor::DType::F32 && alpha.dtype() == burn::tensor::DType::F32;
        if !(kernels_take(&x) && f32s && batch > 0 && time > 0) {
            return snake(self.forward_masked(x, style, mask), alpha);
        }
        let device = x.device();
        let [batch, channels, time] = x.dims();
        let h = f32_values(self.fc.forward(style)); // [batch, 2 * channels]: gamma | beta
        let scale: Vec<f32> = (0..batch * channels).map(|i| 1.0 + h[(i / channels) * 2 * channels + i % channels]).collect();
        let shift: Vec<f32> = (0..batch * channels).map(|i| h[(i / channels) * 2 * channels + channels + i % channels]).collect();
        let alpha = f32_values(alpha);
        let shape = kokoro_kernels::AdaInShape { batch, channels, time };
        let lengths = mask.map(|m| m.lengths.as_slice());
        let out = kokoro_kernels::adain_snake(&f32_values(x), shape, &scale, &shift, Some(&alpha), lengths, EPS)
            .expect("a module's shapes and a TimeMask's lengths");
        Tensor::from_data(burn::tensor::TensorData::new(out, [batch, channels, time]), &device)
    }
}

/// Configuration of an [`AdaLayerNorm`].
#[derive(Config, Debug)]
pub struct AdaLayerNormConfig {
    /// Width of the style vector.
    pub style_dim: usize,
    /// Channels of the normalised signal.
    pub channels: usize,
}

/// Adaptive layer normalisation over the channel axis, without affine parameters of its own.
#[derive(Module, Debug)]
pub struct AdaLayerNorm {
    /// Style to `[gamma | beta]`. Weight shape `[style_dim, 2 * channels]`.
    pub fc: Linear,
}

impl AdaLayerNormConfig {
    /// Initializes an [`AdaLayerNorm`].
    pub fn init(&self, device: &Device) -> AdaLayerNorm {
        AdaLayerNorm { fc: LinearConfig::new(self.style_dim, 2 * self.channels).init(device) }
    }
}

impl AdaLayerNorm {
    /// # Shapes
    /// - x: `[batch, time, channels]`
    /// - style: `[batch, style_dim]`
    /// - output: `[batch, time, channels]`
    pub fn forward(&self, x: Tensor<3>, style: Tensor<2>) -> Tensor<3> {
        let [batch, _, channels] = x.dims();
        let h = self.fc.forward(style).reshape([batch, 1, 2 * channels]);
        let gamma = h.clone().slice([0..batch, 0..1, 0..channels]);
        let beta = h.slice([0..batch, 0..1, channels..2 * channels]);
        let (var, mean) = x.clone().var_mean_bias(2);
        let normed = (x - mean) / (var + EPS).sqrt();
        (gamma + 1.0) * normed + beta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::TensorData;

    #[test]
    fn adain_with_zero_style_is_instance_norm() {
        // x = [1, 3] over time: mean 2, biased var 1 -> [-1, 1] (up to eps).
        let device = Device::ndarray();
        let mut m = AdaIn1dConfig::new(2, 1).init(&device);
        m.fc.weight = Param::from_tensor(Tensor::zeros([2, 2], &device));
        m.fc.bias = Some(Param::from_tensor(Tensor::from_floats([1.0, 0.5], &device)));
        // gamma = 1 -> scale 2, beta = 0.5: [-1, 1] * 2 + 0.5 = [-1.5, 2.5].
        let y = m.forward(Tensor::from_floats([[[1.0, 3.0]]], &device), Tensor::zeros([1, 2], &device));
        y.into_data().assert_approx_eq::<f32>(&TensorData::from([[[-1.5f32, 2.5]]]), Default::default());
    }

    #[test]
    fn ada_layer_norm_normalises_channels() {
        let device = Device::ndarray();
        let mut m = AdaLayerNormConfig::new(1, 2).init(&device);
        m.fc.weight = Param::from_tensor(Tensor::zeros([1, 4], &device));
        m.fc.bias = Some(Param::from_tensor(Tensor::zeros([4], &device)));
        // Channels [0, 4]: mean 2, var 4 -> [-1, 1].
        let y = m.forward(Tensor::from_floats([[[0.0, 4.0]]], &device), Tensor::zeros([1, 1], &device));
        y.into_data().assert_approx_eq::<f32>(&TensorData::from([[[-1.0f32, 1.0]]]), Default::default());
    }
}
