//! Leaf layers shared by every family: convolution, batch norm and linear with PyTorch-style
//! initialisation set explicitly (tch's defaults differ), and a multiply-add counter.
use std::cell::Cell;
use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init};
use tch::Tensor;

/// He et al. (2015) normal init with fan_out, as torchvision/timm initialise their convs.
pub const HE_FAN_OUT: Init =
    Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };

/// Multiply-adds of a forward pass, in two parts: what conv and linear layers do (the plain count), and
/// the SK selection's elementwise V = sum_m a_m * U_m (M per output element), which the paper counts too:
/// with it SKNet-50 and -101 come to its 4.47 and 8.46 GFLOPs (without, 4.46 and 8.45).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Macs {
    pub layers: u64,
    pub selection: u64,
}

thread_local! {
    /// Multiply-adds summed while a count is active on this thread.
    static MAC_COUNT: Cell<Option<Macs>> = const { Cell::new(None) };
}

fn add_to_count(add: impl FnOnce(&mut Macs)) {
    MAC_COUNT.with(|c| {
        if let Some(mut total) = c.get() {
            add(&mut total);
            c.set(Some(total));
        }
    });
}

fn add_macs(n: u64) {
    add_to_count(|m| m.layers += n);
}

/// Counts an SK selection's elementwise multiply-adds (while a count is active).
pub fn add_selection_macs(n: u64) {
    add_to_count(|m| m.selection += n);
}

/// Runs `f` with multiply-add counting on and returns its result with the count.
pub fn count_macs<T>(f: impl FnOnce() -> T) -> (T, Macs) {
    MAC_COUNT.with(|c| c.set(Some(Macs::default())));
    let out = f();
    let total = MAC_COUNT.with(|c| c.replace(None)).unwrap_or_default();
    (out, total)
}

/// A 2-D convolution (always square kernels here) that reports its multiply-adds.
#[derive(Debug)]
pub struct Conv2d {
    inner: nn::Conv2D,
    macs_per_output: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ConvOpts {
    pub stride: i64,
    pub dilation: i64,
    pub groups: i64,
    pub bias: bool,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts { stride: 1, dilation: 1, groups: 1, bias: false }
    }
}

impl ConvOpts {
    pub fn stride(self, stride: i64) -> Self {
        ConvOpts { stride, ..self }
    }
    pub fn groups(self, groups: i64) -> Self {
        ConvOpts { groups, ..self }
    }
    pub fn dilation(self, dilation: i64) -> Self {
        ConvOpts { dilation, ..self }
    }
    pub fn bias(self, bias: bool) -> Self {
        ConvOpts { bias, ..self }
    }
}

/// Convolution with "same" padding for odd kernels: pad = dilation * (k - 1) / 2.
pub fn conv2d(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, opts: ConvOpts) -> Conv2d {
    conv2d_init(vs, c_in, c_out, kernel, opts, HE_FAN_OUT, Init::Const(0.))
}

/// A 1x1 conv with bias used as the classifier (timm's conv heads), with PyTorch's default init
/// U(-1/sqrt(in), 1/sqrt(in)) like `linear`.
pub fn classifier_conv(vs: nn::Path, c_in: i64, c_out: i64) -> Conv2d {
    let bound = 1.0 / (c_in as f64).sqrt();
    let uniform = Init::Uniform { lo: -bound, up: bound };
    conv2d_init(vs, c_in, c_out, 1, ConvOpts::default().bias(true), uniform, uniform)
}

fn conv2d_init(
    vs: nn::Path,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    opts: ConvOpts,
    ws_init: Init,
    bs_init: Init,
) -> Conv2d {
    let config = nn::ConvConfig {
        stride: opts.stride,
        padding: opts.dilation * (kernel - 1) / 2,
        dilation: opts.dilation,
        groups: opts.groups,
        bias: opts.bias,
        ws_init,
        bs_init,
        padding_mode: nn::PaddingMode::Zeros,
    };
    let inner = nn::conv2d(vs, c_in, c_out, kernel, config);
    Conv2d { inner, macs_per_output: ((c_in / opts.groups) * kernel * kernel) as u64 }
}

impl nn::Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let ys = xs.apply(&self.inner);
        add_macs(ys.numel() as u64 * self.macs_per_output);
        ys
    }
}

/// PyTorch's default batch norm epsilon.
pub const BN_EPS: f64 = 1e-5;

/// Batch norm with gamma 1, beta 0 (tch would draw gamma from U(0,1)).
pub fn batch_norm(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    batch_norm_eps(vs, channels, BN_EPS)
}

/// Batch norm with gamma 1, beta 0 and a given epsilon (DPN's weights were trained with 1e-3).
pub fn batch_norm_eps(vs: nn::Path, channels: i64, eps: f64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig { ws_init: Init::Const(1.), bs_init: Init::Const(0.), eps, ..Default::default() };
    nn::batch_norm2d(vs, channels, config)
}

/// A fully connected layer with PyTorch's default init (U(-1/sqrt(in), 1/sqrt(in)) for both tensors).
#[derive(Debug)]
pub struct Linear {
    inner: nn::Linear,
    c_in: i64,
}

pub fn linear(vs: nn::Path, c_in: i64, c_out: i64) -> Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    let config = nn::LinearConfig {
        ws_init: Init::Uniform { lo: -bound, up: bound },
        bs_init: Some(Init::Uniform { lo: -bound, up: bound }),
        bias: true,
    };
    Linear { inner: nn::linear(vs, c_in, c_out, config), c_in }
}

impl nn::Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let ys = xs.apply(&self.inner);
        add_macs(ys.numel() as u64 * self.c_in as u64);
        ys
    }
}

/// Conv -> BN -> optional ReLU, the unit most blocks are made of.
#[derive(Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: nn::BatchNorm,
    pub relu: bool,
}

impl nn::ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = xs.apply(&self.conv).apply_t(&self.bn, train);
        if self.relu {
            ys.relu()
        } else {
            ys
        }
    }
}

impl ConvBn {
    /// The same unit with a ReLU after its BN.
    pub fn with_relu(self) -> ConvBn {
        ConvBn { relu: true, ..self }
    }
}

/// A conv-BN unit whose variables are `<conv_name>.weight` and `<bn_name>.*` under `vs`. The helpers below
/// name the conventions the families use.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn(
    vs: &nn::Path,
    conv_name: &str,
    bn_name: &str,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    opts: ConvOpts,
    relu: bool,
) -> ConvBn {
    ConvBn { conv: conv2d(vs / conv_name, c_in, c_out, kernel, opts), bn: batch_norm(vs / bn_name, c_out), relu }
}

/// Conv -> BN named as timm's `ConvNormAct`: `<vs>.conv.weight`, `<vs>.bn.*`.
pub fn conv_bn_unit(vs: &nn::Path, c_in: i64, c_out: i64, kernel: i64, opts: ConvOpts) -> ConvBn {
    conv_bn(vs, "conv", "bn", c_in, c_out, kernel, opts, false)
}

/// Conv -> BN named as torchvision's ResNet: `conv<n>.weight`, `bn<n>.*` under `vs`.
pub fn conv_bn_numbered(vs: &nn::Path, n: usize, c_in: i64, c_out: i64, kernel: i64, opts: ConvOpts) -> ConvBn {
    conv_bn(vs, &format!("conv{n}"), &format!("bn{n}"), c_in, c_out, kernel, opts, false)
}

/// Conv -> BN in two slots of a torchvision `Sequential`: the conv at index `slot`, its BN at `slot + 1`.
pub fn conv_bn_slots(vs: &nn::Path, slot: usize, c_in: i64, c_out: i64, kernel: i64, opts: ConvOpts) -> ConvBn {
    conv_bn(vs, &slot.to_string(), &(slot + 1).to_string(), c_in, c_out, kernel, opts, false)
}

/// Modules applied one after another, like PyTorch's `Sequential` (tch's `SequentialT` cannot take a boxed
/// module such as an SK-or-conv unit).
#[derive(Debug)]
pub struct Chain(pub Vec<Box<dyn nn::ModuleT>>);

impl nn::ModuleT for Chain {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (first, rest) = self.0.split_first().expect("a chain holds at least one module");
        rest.iter().fold(first.forward_t(xs, train), |ys, module| module.forward_t(&ys, train))
    }
}

/// BN -> ReLU -> conv, the pre-activation unit of DenseNet and DPN.
#[derive(Debug)]
pub struct BnReluConv {
    bn: nn::BatchNorm,
    conv: Conv2d,
}

impl nn::ModuleT for BnReluConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply_t(&self.bn, train).relu().apply(&self.conv)
    }
}

/// A BN (epsilon `bn_eps`) over `c_in` channels at `bn_vs`, then a ReLU and a conv at `conv_vs`.
pub fn bn_relu_conv(
    bn_vs: nn::Path,
    conv_vs: nn::Path,
    bn_eps: f64,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    opts: ConvOpts,
) -> BnReluConv {
    BnReluConv { bn: batch_norm_eps(bn_vs, c_in, bn_eps), conv: conv2d(conv_vs, c_in, c_out, kernel, opts) }
}

/// The ImageNet stems' 3x3/2 max pool (padding 1).
pub fn stem_max_pool(xs: &Tensor) -> Tensor {
    xs.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
}

/// Global average pool to (N, C).
pub fn global_avg_pool(xs: &Tensor) -> Tensor {
    xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}
