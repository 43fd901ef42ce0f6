//! `AdainResBlk1d`: the style-conditioned residual block of the prosody predictor and decoder.
//!
//! Upstream: `kokoro/istftnet.py` `AdainResBlk1d` (hexgrad/kokoro).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use super::adain::{AdaIn1d, AdaIn1dConfig};
use super::conv::{conv1d, conv1d_forward, conv_transpose1d, upsample_nearest2};
use super::{TimeMask, masked};

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
        self.forward_masked(x, style, None)
    }

    /// [`forward`](Self::forward) over a padded batch whose padded steps are zero: AdaIN takes
    /// per-row statistics, and every layer that can make a padded step nonzero (conv biases) is
    /// followed by the mask, so each conv reads zeros past a row's end as its padding would.
    /// `mask` describes the input; when upsampling the output's mask is twice as long. The output
    /// is zero at padded steps. Without a mask this is exactly `forward`.
    ///
    /// # Shapes
    /// - x: `[batch, dim_in, time]`
    /// - style: `[batch, style_dim]`
    /// - mask: `[batch, 1, time]`
    /// - output: `[batch, dim_out, time]`, or `2 * time` when upsampling
    pub fn forward_masked(&self, x: Tensor<3>, style: Tensor<2>, mask: Option<&TimeMask>) -> Tensor<3> {
        let up_mask = match (&self.pool, mask) {
            (Some(_), Some(m)) => Some(m.scaled(2, 0)),
            _ => None,
        };
        let out_mask = if self.pool.is_some() { up_mask.as_ref() } else { mask };
        // residual (leaky_relu keeps AdaIN's zeros at padding)
        let mut r = leaky_relu(self.norm1.forward_masked(x.clone(), style.clone(), mask), 0.2);
        if let Some(pool) = &self.pool {
            // The transposed conv's last output reads one step past the row's end: a zero here,
            // as in the unbatched pass. Its bias is then masked.
            r = masked(pool.forward(r), out_mask);
        }
        r = masked(conv1d_forward(&self.conv1, r), out_mask);
        r = leaky_relu(self.norm2.forward_masked(r, style, out_mask), 0.2);
        r = masked(conv1d_forward(&self.conv2, r), out_mask);
        // shortcut: nearest upsampling and the bias-free 1x1 conv keep zeros at zero.
        let mut sc = if self.pool.is_some() { upsample_nearest2(x) } else { x };
        if let Some(conv) = &self.conv1x1 {
            sc = conv1d_forward(conv, sc);
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

    #[test]
    fn padded_rows_match_their_unpadded_runs() {
        // Rows of 5 and 2 valid steps padded to 5, zero past the end: an upsampling block gives
        // each row what it gives alone, and zeros at its 2 * length.. padding.
        use crate::nn::TimeMask;
        use burn::tensor::Distribution;
        let d = Device::ndarray();
        let blk = AdainResBlk1dConfig::new(4, 2, 3).with_upsample(true).init(&d);
        let mask = TimeMask::new(vec![5, 2], 5, &d);
        let x = mask.apply(Tensor::<3>::random([2, 4, 5], Distribution::Normal(0.0, 1.0), &d));
        let style = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &d);
        let y = blk.forward_masked(x.clone(), style.clone(), Some(&mask));
        for (b, len) in [(0, 5), (1, 2)] {
            let alone = blk.forward(x.clone().slice([b..b + 1, 0..4, 0..len]), style.clone().narrow(0, b, 1));
            y.clone().slice([b..b + 1, 0..2, 0..2 * len]).into_data().assert_approx_eq::<f32>(&alone.into_data(), Default::default());
        }
        let pad = y.slice([1..2, 0..2, 4..10]).abs().sum().into_scalar::<f32>();
        assert_eq!(pad, 0.0);
    }
}
