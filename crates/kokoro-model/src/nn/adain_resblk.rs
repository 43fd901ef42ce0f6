//! `AdainResBlk1d`: the style-conditioned residual block of the prosody predictor and decoder.
//!
//! Upstream: `kokoro/istftnet.py` `AdainResBlk1d` (hexgrad/kokoro).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use super::adain::{AdaIn1d, AdaIn1dConfig};
use super::conv::{conv1d, conv_transpose1d, upsample_nearest2};

/// Configuration of an [`AdainResBlk1d`].
#[derive(Config, Debug)]
pub struct AdainResBlk1dConfig {
    /// Input channels.
    pub dim_in: usize,
    /// Output channels.
    pub dim_out: usize,
    /// Width of the style vector.
    pub style_dim: usize,
    /// If true, the block doubles the time axis. Default: false.
    #[config(default = false)]
    pub upsample: bool,
}

/// `(residual(x, s) + shortcut(x)) / sqrt(2)`, where the residual is
/// AdaIN -> LeakyReLU(0.2) -> [depthwise x2 transposed conv] -> conv3 -> AdaIN -> LeakyReLU -> conv3.
#[derive(Module, Debug)]
pub struct AdainResBlk1d {
    /// Weight shape `[dim_out, dim_in, 3]`.
    pub conv1: Conv1d,
    /// Weight shape `[dim_out, dim_out, 3]`.
    pub conv2: Conv1d,
    pub norm1: AdaIn1d,
    pub norm2: AdaIn1d,
    /// Learned shortcut when `dim_in != dim_out`; no bias. Weight shape `[dim_out, dim_in, 1]`.
    pub conv1x1: Option<Conv1d>,
    /// Depthwise x2 upsampler of the residual path. Weight shape `[dim_in, 1, 3]`.
    pub pool: Option<ConvTranspose1d>,
}

impl AdainResBlk1dConfig {
    /// Initializes an [`AdainResBlk1d`].
    pub fn init(&self, device: &Device) -> AdainResBlk1d {
        let (i, o) = (self.dim_in, self.dim_out);
        AdainResBlk1d {
            conv1: conv1d(i, o, 3, 1, 1, 1, device),
            conv2: conv1d(o, o, 3, 1, 1, 1, device),
            norm1: AdaIn1dConfig::new(self.style_dim, i).init(device),
            norm2: AdaIn1dConfig::new(self.style_dim, o).init(device),
            conv1x1: (i != o).then(|| Conv1dConfig::new(i, o, 1).with_bias(false).init(device)),
            pool: self.upsample.then(|| conv_transpose1d(i, i, 3, 2, 1, 1, i, device)),
        }
    }
}

impl AdainResBlk1d {
    /// # Shapes
    /// - x: `[batch, dim_in, time]`
    /// - style: `[batch, style_dim]`
    /// - output: `[batch, dim_out, time]`, or `2 * time` when upsampling
    pub fn forward(&self, x: Tensor<3>, style: Tensor<2>) -> Tensor<3> {
        // residual
        let mut r = leaky_relu(self.norm1.forward(x.clone(), style.clone()), 0.2);
        if let Some(pool) = &self.pool {
            r = pool.forward(r);
        }
        r = self.conv1.forward(r);
        r = leaky_relu(self.norm2.forward(r, style), 0.2);
        r = self.conv2.forward(r);
        // shortcut
        let mut sc = if self.pool.is_some() { upsample_nearest2(x) } else { x };
        if let Some(conv) = &self.conv1x1 {
            sc = conv.forward(sc);
        }
        (r + sc) * std::f32::consts::FRAC_1_SQRT_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_block_doubles_time_and_changes_width() {
        let d = Device::ndarray();
        let blk = AdainResBlk1dConfig::new(4, 2, 3).with_upsample(true).init(&d);
        let y = blk.forward(Tensor::ones([1, 4, 5], &d), Tensor::zeros([1, 3], &d));
        assert_eq!(y.dims(), [1, 2, 10]);
    }
}
