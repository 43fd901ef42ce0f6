//! Bidirectional single-layer LSTM with PyTorch's parameter names and gate order.
//!
//! burn-nn's `BiLstm` keeps each gate as two `Linear` layers (eight small matmuls a step). Kokoro
//! runs its LSTMs over every token and, in the prosody predictor, every frame, so this one projects
//! all inputs for both directions in one matmul and then steps both directions together as a
//! batch of two: one `[2, 1, H] x [2, H, 4H]` matmul a step.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation::sigmoid;

use super::tanh;
use burn::tensor::{Device, Tensor};

/// Configuration of a [`BiLstm`].
#[derive(Config, Debug)]
pub struct BiLstmConfig {
    /// Features per input step.
    pub d_input: usize,
    /// Hidden features per direction; the output has twice as many.
    pub d_hidden: usize,
}

/// A bidirectional LSTM laid out like `torch.nn.LSTM(bidirectional=True, batch_first=True)`.
///
/// Gate order in every `[4 * hidden, ..]` parameter is PyTorch's: input, forget, cell, output.
#[derive(Module, Debug)]
pub struct BiLstm {
    /// Input weights of the forward direction. Shape `[4 * hidden, input]`.
    pub weight_ih_l0: Param<Tensor<2>>,
    /// Recurrent weights of the forward direction. Shape `[4 * hidden, hidden]`.
    pub weight_hh_l0: Param<Tensor<2>>,
    /// Input bias of the forward direction. Shape `[4 * hidden]`.
    pub bias_ih_l0: Param<Tensor<1>>,
    /// Recurrent bias of the forward direction. Shape `[4 * hidden]`.
    pub bias_hh_l0: Param<Tensor<1>>,
    /// Input weights of the reverse direction. Shape `[4 * hidden, input]`.
    pub weight_ih_l0_reverse: Param<Tensor<2>>,
    /// Recurrent weights of the reverse direction. Shape `[4 * hidden, hidden]`.
    pub weight_hh_l0_reverse: Param<Tensor<2>>,
    /// Input bias of the reverse direction. Shape `[4 * hidden]`.
    pub bias_ih_l0_reverse: Param<Tensor<1>>,
    /// Recurrent bias of the reverse direction. Shape `[4 * hidden]`.
    pub bias_hh_l0_reverse: Param<Tensor<1>>,
    /// Hidden features per direction.
    pub d_hidden: usize,
}

impl BiLstmConfig {
    /// Initializes a [`BiLstm`] with PyTorch's default `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
    pub fn init(&self, device: &Device) -> BiLstm {
        assert!(self.d_input > 0 && self.d_hidden > 0, "BiLstm needs non-zero input and hidden sizes");
        let k = 1.0 / (self.d_hidden as f64).sqrt();
        let init = Initializer::Uniform { min: -k, max: k };
        let g = 4 * self.d_hidden;
        let w = |cols: usize| init.init([g, cols], device);
        let b = || init.init([g], device);
        BiLstm {
            weight_ih_l0: w(self.d_input),
            weight_hh_l0: w(self.d_hidden),
            bias_ih_l0: b(),
            bias_hh_l0: b(),
            weight_ih_l0_reverse: w(self.d_input),
            weight_hh_l0_reverse: w(self.d_hidden),
            bias_ih_l0_reverse: b(),
            bias_hh_l0_reverse: b(),
            d_hidden: self.d_hidden,
        }
    }
}

impl BiLstm {
    /// Runs both directions over the sequence from a zero state.
    ///
    /// # Shapes
    /// - input: `[batch, time, input]`
    /// - output: `[batch, time, 2 * hidden]` (forward features, then reverse)
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        self.forward_masked(input, None)
    }

    /// [`forward`](Self::forward) over a padded batch whose row `b` holds `lengths[b]` valid steps
    /// followed by padding. The forward direction reaches the padding only after the valid steps;
    /// the reverse direction runs over each row reversed within its own length (a per-row gather),
    /// so it starts from a zero state at the row's last valid step exactly as an unbatched pass
    /// does. Outputs at padded steps are unspecified (callers mask them). With `None` every row is
    /// `time` steps long.
    ///
    /// # Shapes
    /// - input: `[batch, time, input]`
    /// - lengths: `batch` values in `1..=time`
    /// - output: `[batch, time, 2 * hidden]` (forward features, then reverse)
    pub fn forward_masked(&self, input: Tensor<3>, lengths: Option<&[usize]>) -> Tensor<3> {
        let [batch, time, d_input] = input.dims();
        let h = self.d_hidden;
        let device = input.device();

        // 1. Input projections for all steps, both directions: [batch, time, 4H] each.
        let x = input.reshape([batch * time, d_input]);
        let project = |w: &Param<Tensor<2>>, bi: &Param<Tensor<1>>, bh: &Param<Tensor<1>>| {
            x.clone().matmul(w.val().transpose()) + (bi.val() + bh.val()).unsqueeze::<2>()
        };
        let fwd = project(&self.weight_ih_l0, &self.bias_ih_l0, &self.bias_hh_l0)
            .reshape([batch, time, 4 * h]);
        let rev = project(&self.weight_ih_l0_reverse, &self.bias_ih_l0_reverse, &self.bias_hh_l0_reverse)
            .reshape([batch, time, 4 * h]);
        // The reverse direction's steps in the order it reads them. The reversal is its own
        // inverse, so the same one puts its outputs back in time order.
        let reversal = lengths.filter(|l| l.iter().any(|&n| n != time)).map(|l| within_length_reversal(l, time, &device));
        let reverse = |t: Tensor<3>| match &reversal {
            Some(idx) => {
                let [b, n, c] = t.dims();
                t.reshape([b * n, c]).select(0, idx.clone()).reshape([b, n, c])
            }
            None => t.flip([1]),
        };
        // Stack the directions as one batch of 2 * batch sequences: [2 * batch, time, 4H].
        let gates_in = Tensor::cat(vec![fwd, reverse(rev)], 0);
        // Recurrent weights, transposed once: [2 * batch, H, 4H].
        let w_hh = Tensor::stack::<3>(
            vec![self.weight_hh_l0.val().transpose(), self.weight_hh_l0_reverse.val().transpose()],
            0,
        )
        .unsqueeze_dim::<4>(1)
        .expand([2, batch, h, 4 * h])
        .reshape([2 * batch, h, 4 * h]);

        // 2. Step both directions together.
        let mut hidden = Tensor::<3>::zeros([2 * batch, 1, h], &device);
        let mut cell = Tensor::<3>::zeros([2 * batch, 1, h], &device);
        let mut outputs = Vec::with_capacity(time);
        for t in 0..time {
            let x_t = gates_in.clone().slice([0..2 * batch, t..t + 1]);
            let gates = x_t + hidden.matmul(w_hh.clone());
            let i = sigmoid(gates.clone().slice([0..2 * batch, 0..1, 0..h]));
            let f = sigmoid(gates.clone().slice([0..2 * batch, 0..1, h..2 * h]));
            let g = tanh(gates.clone().slice([0..2 * batch, 0..1, 2 * h..3 * h]));
            let o = sigmoid(gates.slice([0..2 * batch, 0..1, 3 * h..4 * h]));
            cell = f * cell + i * g;
            hidden = o * tanh(cell.clone());
            outputs.push(hidden.clone());
        }
        let outputs = Tensor::cat(outputs, 1); // [2 * batch, time, H]
        let fwd = outputs.clone().narrow(0, 0, batch);
        let rev = reverse(outputs.narrow(0, batch, batch));
        Tensor::cat(vec![fwd, rev], 2)
    }
}

/// Flat row indices into `[batch * time, ..]` that reverse each row's first `lengths[b]` steps
/// and leave its padding in place.
fn within_length_reversal(lengths: &[usize], time: usize, device: &burn::tensor::Device) -> Tensor<1, burn::tensor::Int> {
    let idx: Vec<i64> = lengths
        .iter()
        .enumerate()
        .flat_map(|(b, &n)| (0..time).map(move |t| (b * time + if t < n { n - 1 - t } else { t }) as i64))
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(idx, [lengths.len() * time]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn single_step_matches_hand_computation() {
        // input=1, hidden=1, every weight 0 and every bias 0 except the input biases below.
        // One step from zero state: i = f = o = sigmoid(b), g = tanh(b_g).
        // With b_i = b_f = b_o = 0 -> 0.5, b_g = 1 -> tanh(1) = 0.761594:
        // c = 0.5 * 0.761594 = 0.380797, h = 0.5 * tanh(0.380797) = 0.181689.
        let device = Device::ndarray();
        let mut lstm = BiLstmConfig::new(1, 1).init(&device);
        let zero2 = || Param::from_tensor(Tensor::<2>::zeros([4, 1], &device));
        let bias = || Param::from_tensor(Tensor::<1>::from_floats([0.0, 0.0, 1.0, 0.0], &device));
        let zero1 = || Param::from_tensor(Tensor::<1>::zeros([4], &device));
        lstm.weight_ih_l0 = zero2();
        lstm.weight_hh_l0 = zero2();
        lstm.weight_ih_l0_reverse = zero2();
        lstm.weight_hh_l0_reverse = zero2();
        lstm.bias_ih_l0 = bias();
        lstm.bias_ih_l0_reverse = bias();
        lstm.bias_hh_l0 = zero1();
        lstm.bias_hh_l0_reverse = zero1();
        let out = lstm.forward(Tensor::<3>::zeros([1, 1, 1], &device));
        assert_eq!(out.dims(), [1, 1, 2]);
        out.into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[[0.181689f32, 0.181689]]]), Default::default());
    }

    #[test]
    fn padded_rows_match_their_unpadded_runs() {
        // Rows of 3 and 1 valid steps padded to 4: each row's valid outputs equal a batch of one.
        let device = Device::ndarray();
        let lstm = BiLstmConfig::new(2, 3).init(&device);
        let x = Tensor::<3>::random([2, 4, 2], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let out = lstm.forward_masked(x.clone(), Some(&[3, 1]));
        for (b, len) in [(0, 3), (1, 1)] {
            let alone = lstm.forward(x.clone().slice([b..b + 1, 0..len]));
            out.clone().slice([b..b + 1, 0..len]).into_data().assert_approx_eq::<f32>(&alone.into_data(), Default::default());
        }
    }

    #[test]
    fn reverse_direction_reads_backwards() {
        // Reverse output at step 0 has seen the whole sequence, forward output at step 0 only x0:
        // feeding [1, 0] vs [0, 1] must swap which end differs.
        let device = Device::ndarray();
        let lstm = BiLstmConfig::new(1, 2).init(&device);
        let a = lstm.forward(Tensor::<3>::from_floats([[[1.0], [0.0]]], &device));
        let b = lstm.forward(Tensor::<3>::from_floats([[[0.0], [1.0]]], &device));
        assert_eq!(a.dims(), [1, 2, 4]);
        // Forward half at t=0 differs (x0 differs) ...
        let fa = a.clone().slice([0..1, 0..1, 0..2]);
        let fb = b.clone().slice([0..1, 0..1, 0..2]);
        assert!((fa - fb).abs().sum().into_scalar::<f32>() > 1e-6);
        // ... and the reverse half at t=1 differs too (it has read only x1).
        let ra = a.slice([0..1, 1..2, 2..4]);
        let rb = b.slice([0..1, 1..2, 2..4]);
        assert!((ra - rb).abs().sum().into_scalar::<f32>() > 1e-6);
    }
}
