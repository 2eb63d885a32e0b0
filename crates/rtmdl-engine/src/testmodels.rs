//! Tiny seeded models for tests and benchmarks, built with [`crate::onnx_build`]:
//! no downloads, same bytes for the same arguments.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::onnx_build::{Attr, Dim, GraphBuilder, fixed};
use tract_onnx::pb;

/// Name of the input of every test model.
pub const INPUT: &str = "input";
/// Channels after the first conv of [`tiny_cnn`].
pub const TINY_CNN_C1: usize = 8;
/// Channels after the second conv of [`tiny_cnn`].
pub const TINY_CNN_C2: usize = 16;
/// The intermediate tensor of [`tiny_cnn`] after conv2 + relu, shape
/// `[1, TINY_CNN_C2, ceil(h/2), ceil(w/2)]` (use it for output-cut tests).
pub const TINY_CNN_FEATURES: &str = "relu2";
/// The output of [`tiny_cnn`] (softmax probabilities, `[1, classes]`).
pub const TINY_CNN_OUTPUT: &str = "probs";
/// The output of [`tiny_mlp`] (`[batch, outputs]`).
pub const TINY_MLP_OUTPUT: &str = "logits";

/// Uniform values in `[-scale, scale]`.
fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..=scale)).collect()
}

/// A tiny CNN with input `[1, in_ch, h, w]` and output `[1, classes]`:
/// Conv3x3(pad 1)+BatchNorm+Relu → Conv3x3(stride 2, pad 1)+Relu → GlobalAveragePool →
/// Flatten → Gemm → Softmax. Weights come from a ChaCha8 RNG seeded with `seed`.
///
/// Zero sizes are bumped to 1 (so this never fails).
pub fn tiny_cnn(seed: u64, in_ch: usize, h: usize, w: usize, classes: usize) -> Vec<u8> {
    let (in_ch, h, w) = (in_ch.max(1), h.max(1), w.max(1));
    cnn(seed, in_ch, fixed(&[1, in_ch, h, w]), classes)
}

/// [`tiny_cnn`] taking any image size: input `[1, in_ch, height, width]`
/// with `height` and `width` symbolic (a config's `input_shape` fixes
/// them), as many detectors and classifiers are exported.
pub fn tiny_cnn_any_size(seed: u64, in_ch: usize, classes: usize) -> Vec<u8> {
    let in_ch = in_ch.max(1);
    let dims = vec![
        Dim::Fixed(1),
        Dim::Fixed(in_ch),
        Dim::sym("height"),
        Dim::sym("width"),
    ];
    cnn(seed, in_ch, dims, classes)
}

fn cnn(seed: u64, in_ch: usize, input: Vec<Dim>, classes: usize) -> Vec<u8> {
    let classes = classes.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (c1, c2) = (TINY_CNN_C1, TINY_CNN_C2);
    let mut g = GraphBuilder::new("tiny_cnn");
    g.input(INPUT, &input);

    let k1 = (2.0 / (in_ch * 9) as f32).sqrt();
    let w1 = uniform(&mut rng, c1 * in_ch * 9, k1);
    let b1 = uniform(&mut rng, c1, 0.1);
    let gamma = (0..c1).map(|_| rng.random_range(0.5..1.5)).collect();
    let beta = uniform(&mut rng, c1, 0.1);
    let mean = uniform(&mut rng, c1, 0.1);
    let var = (0..c1).map(|_| rng.random_range(0.5..1.5)).collect();
    let k2 = (2.0 / (c1 * 9) as f32).sqrt();
    let w2 = uniform(&mut rng, c2 * c1 * 9, k2);
    let b2 = uniform(&mut rng, c2, 0.1);
    let k3 = (1.0 / c2 as f32).sqrt();
    let w3 = uniform(&mut rng, classes * c2, k3);
    let b3 = uniform(&mut rng, classes, 0.1);

    // All lengths match their shapes by construction.
    let inits: [(&str, Vec<usize>, Vec<f32>); 10] = [
        ("conv1.w", vec![c1, in_ch, 3, 3], w1),
        ("conv1.b", vec![c1], b1),
        ("bn1.scale", vec![c1], gamma),
        ("bn1.bias", vec![c1], beta),
        ("bn1.mean", vec![c1], mean),
        ("bn1.var", vec![c1], var),
        ("conv2.w", vec![c2, c1, 3, 3], w2),
        ("conv2.b", vec![c2], b2),
        ("fc.w", vec![classes, c2], w3),
        ("fc.b", vec![classes], b3),
    ];
    for (name, shape, data) in inits {
        g.initializer(name, &shape, data)
            .expect("tiny_cnn initializer sizes are consistent");
    }

    let k3x3 = ("kernel_shape", Attr::Ints(vec![3, 3]));
    let pad1 = ("pads", Attr::Ints(vec![1, 1, 1, 1]));
    g.node(
        "Conv",
        &[INPUT, "conv1.w", "conv1.b"],
        &["conv1"],
        &[
            k3x3.clone(),
            pad1.clone(),
            ("strides", Attr::Ints(vec![1, 1])),
        ],
    );
    g.node(
        "BatchNormalization",
        &["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
        &["bn1"],
        &[("epsilon", Attr::Float(1e-5))],
    );
    g.node("Relu", &["bn1"], &["relu1"], &[]);
    g.node(
        "Conv",
        &["relu1", "conv2.w", "conv2.b"],
        &["conv2"],
        &[k3x3, pad1, ("strides", Attr::Ints(vec![2, 2]))],
    );
    g.node("Relu", &["conv2"], &[TINY_CNN_FEATURES], &[]);
    classifier_head(&mut g, TINY_CNN_FEATURES, TINY_CNN_OUTPUT, classes);
    g.encode()
}

/// Writes [`tiny_cnn`] to `path`.
pub fn write_tiny_cnn(
    path: impl AsRef<Path>,
    seed: u64,
    in_ch: usize,
    h: usize,
    w: usize,
    classes: usize,
) -> std::io::Result<()> {
    std::fs::write(path, tiny_cnn(seed, in_ch, h, w, classes))
}

/// A two-layer perceptron `Gemm → Relu → Gemm` with input `[1, inputs]` and output
/// `[1, outputs]`; its cost is about `2·hidden·(inputs + outputs)` flops, so `hidden`
/// scales it for speed tests. Zero sizes are bumped to 1.
pub fn tiny_mlp(seed: u64, inputs: usize, hidden: usize, outputs: usize) -> Vec<u8> {
    mlp(seed, Dim::Fixed(1), inputs, hidden, outputs)
}

/// [`tiny_mlp`] with a symbolic batch dim named `N` (the spec's `input_shape` must fix it).
pub fn tiny_mlp_dynamic_batch(seed: u64, inputs: usize, hidden: usize, outputs: usize) -> Vec<u8> {
    mlp(seed, Dim::sym("N"), inputs, hidden, outputs)
}

/// Writes [`tiny_mlp`] to `path`.
pub fn write_tiny_mlp(
    path: impl AsRef<Path>,
    seed: u64,
    inputs: usize,
    hidden: usize,
    outputs: usize,
) -> std::io::Result<()> {
    std::fs::write(path, tiny_mlp(seed, inputs, hidden, outputs))
}

/// [`tiny_mlp_dynamic_batch`] as exporters write them: the intermediate
/// tensors and the output annotated with another symbol (`batch`) than the
/// input's (`N`). Valid for any batch; tract cannot unify `batch` with the
/// 1 an `input_shape` fixes unless the annotations give way.
pub fn tiny_mlp_annotated(seed: u64, inputs: usize, hidden: usize, outputs: usize) -> Vec<u8> {
    mlp_with(seed, Dim::sym("N"), inputs, hidden, outputs, true)
}

fn mlp(seed: u64, batch: Dim, inputs: usize, hidden: usize, outputs: usize) -> Vec<u8> {
    mlp_with(seed, batch, inputs, hidden, outputs, false)
}

fn mlp_with(
    seed: u64,
    batch: Dim,
    inputs: usize,
    hidden: usize,
    outputs: usize,
    annotated: bool,
) -> Vec<u8> {
    let (inputs, hidden, outputs) = (inputs.max(1), hidden.max(1), outputs.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = GraphBuilder::new("tiny_mlp");
    g.input(INPUT, &[batch.clone(), Dim::Fixed(inputs)]);
    let w1 = uniform(&mut rng, hidden * inputs, (2.0 / inputs as f32).sqrt());
    let b1 = uniform(&mut rng, hidden, 0.1);
    let w2 = uniform(&mut rng, outputs * hidden, (1.0 / hidden as f32).sqrt());
    let b2 = uniform(&mut rng, outputs, 0.1);
    for (name, shape, data) in [
        ("fc1.w", [hidden, inputs], w1),
        ("fc1.b", [1, hidden], b1),
        ("fc2.w", [outputs, hidden], w2),
        ("fc2.b", [1, outputs], b2),
    ] {
        g.initializer(name, &shape, data)
            .expect("tiny_mlp initializer sizes are consistent");
    }
    let trans_b = [("transB", Attr::Int(1))];
    g.node("Gemm", &[INPUT, "fc1.w", "fc1.b"], &["fc1"], &trans_b);
    g.node("Relu", &["fc1"], &["hidden"], &[]);
    g.node(
        "Gemm",
        &["hidden", "fc2.w", "fc2.b"],
        &[TINY_MLP_OUTPUT],
        &trans_b,
    );
    if annotated {
        let b = Dim::sym("batch");
        g.annotate("fc1", &[b.clone(), Dim::Fixed(hidden)]);
        g.annotate("hidden", &[b.clone(), Dim::Fixed(hidden)]);
        g.output(TINY_MLP_OUTPUT, &[b, Dim::Fixed(outputs)]);
    } else {
        g.output(TINY_MLP_OUTPUT, &[batch, Dim::Fixed(outputs)]);
    }
    g.encode()
}

/// A tiny recurrent model with three inputs, like Silero VAD's interface:
///
/// * `x`: f32 `[1, N]` (`N` symbolic), `state`: f32 `[2, B, 4]` (`B` symbolic),
///   `rate`: i64 scalar;
/// * `y = mean(x) · rate + sum(state)`, f32 `[1, 1]`;
/// * `state_out = state + mean(x)`, f32 `[2, B, 4]`.
///
/// Fed back (`state_out` → `state`, from zeros) with a constant `x` of mean `m`, run k
/// (from 0) gives `y = m · rate + 8 · k · m`.
pub fn tiny_recurrent() -> Vec<u8> {
    let mut g = GraphBuilder::new("tiny_recurrent");
    g.input("x", &[Dim::Fixed(1), Dim::sym("N")]);
    g.input("state", &[Dim::Fixed(2), Dim::sym("B"), Dim::Fixed(4)]);
    g.input_i64("rate", &[]);
    g.node(
        "ReduceMean",
        &["x"],
        &["xm"],
        &[("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))],
    );
    g.node("Cast", &["rate"], &["ratef"], &[("to", Attr::Int(1))]);
    g.node("Mul", &["xm", "ratef"], &["scaled"], &[]);
    g.node("Add", &["state", "xm"], &["state_out"], &[]);
    g.node(
        "ReduceSum",
        &["state"],
        &["ssum"],
        &[("keepdims", Attr::Int(0))],
    );
    g.node("Add", &["scaled", "ssum"], &["y"], &[]);
    g.output("y", &[Dim::Fixed(1), Dim::Fixed(1)]);
    g.output("state_out", &[Dim::Fixed(2), Dim::sym("B"), Dim::Fixed(4)]);
    g.encode()
}

/// The element types of [`typed_inputs`]' inputs, in order (names `x0`,
/// `x1`, ...).
pub const TYPED_INPUTS: [crate::DType; 7] = [
    crate::DType::F32,
    crate::DType::F16,
    crate::DType::F64,
    crate::DType::I32,
    crate::DType::I8,
    crate::DType::U8,
    crate::DType::Bool,
];

/// One input of each of [`TYPED_INPUTS`]' types, each `[1, 4]`; every
/// input is cast to f32 and the output `y` `[1, 4]` is their sum.
pub fn typed_inputs() -> Vec<u8> {
    use pb::tensor_proto::DataType as D;
    let mut g = GraphBuilder::new("typed_inputs");
    let types = [
        D::Float,
        D::Float16,
        D::Double,
        D::Int32,
        D::Int8,
        D::Uint8,
        D::Bool,
    ];
    let mut acc = String::new();
    for (k, ty) in types.iter().enumerate() {
        let (x, xf) = (format!("x{k}"), format!("f{k}"));
        g.input_typed(&x, &[Dim::Fixed(1), Dim::Fixed(4)], *ty);
        g.node("Cast", &[&x], &[&xf], &[("to", Attr::Int(D::Float as i64))]);
        acc = if acc.is_empty() {
            xf
        } else {
            let sum = format!("s{k}");
            g.node("Add", &[&acc, &xf], &[&sum], &[]);
            sum
        };
    }
    g.node("Identity", &[&acc], &["y"], &[]);
    g.output("y", &[Dim::Fixed(1), Dim::Fixed(4)]);
    g.encode()
}

/// The output of [`conv_net`] (softmax probabilities, `[1, classes]`).
pub const CONV_NET_OUTPUT: &str = "probs";
/// Output channels of the four convolutions of [`conv_net`].
pub const CONV_NET_CHANNELS: [usize; 4] = [32, 64, 128, 256];

/// A small but not tiny CNN for GPU benchmarks, input `[1, 3, h, w]` (e.g. 224×224),
/// output `[1, classes]`: four Conv3x3(stride 2, pad 1)+BatchNorm+Relu blocks with
/// [`CONV_NET_CHANNELS`] channels → GlobalAveragePool → Flatten → Gemm → Softmax.
/// About 0.37 GFLOP at 224×224. Weights come from a ChaCha8 RNG seeded with `seed`.
///
/// Zero sizes are bumped to 1 (so this never fails).
pub fn conv_net(seed: u64, h: usize, w: usize, classes: usize) -> Vec<u8> {
    let (h, w, classes) = (h.max(1), w.max(1), classes.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = GraphBuilder::new("conv_net");
    g.input(INPUT, &fixed(&[1, 3, h, w]));
    let mut prev = INPUT.to_string();
    let mut in_ch = 3;
    for (i, &out_ch) in CONV_NET_CHANNELS.iter().enumerate() {
        let k = (2.0 / (in_ch * 9) as f32).sqrt();
        let inits: [(String, Vec<usize>, Vec<f32>); 6] = [
            (
                format!("conv{i}.w"),
                vec![out_ch, in_ch, 3, 3],
                uniform(&mut rng, out_ch * in_ch * 9, k),
            ),
            (
                format!("conv{i}.b"),
                vec![out_ch],
                uniform(&mut rng, out_ch, 0.1),
            ),
            (
                format!("bn{i}.scale"),
                vec![out_ch],
                (0..out_ch).map(|_| rng.random_range(0.5..1.5)).collect(),
            ),
            (
                format!("bn{i}.bias"),
                vec![out_ch],
                uniform(&mut rng, out_ch, 0.1),
            ),
            (
                format!("bn{i}.mean"),
                vec![out_ch],
                uniform(&mut rng, out_ch, 0.1),
            ),
            (
                format!("bn{i}.var"),
                vec![out_ch],
                (0..out_ch).map(|_| rng.random_range(0.5..1.5)).collect(),
            ),
        ];
        for (name, shape, data) in inits {
            g.initializer(&name, &shape, data)
                .expect("conv_net initializer sizes are consistent");
        }
        let (conv, bn, relu) = (format!("conv{i}"), format!("bn{i}"), format!("relu{i}"));
        g.node(
            "Conv",
            &[prev.as_str(), &format!("conv{i}.w"), &format!("conv{i}.b")],
            &[conv.as_str()],
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        );
        g.node(
            "BatchNormalization",
            &[
                conv.as_str(),
                &format!("bn{i}.scale"),
                &format!("bn{i}.bias"),
                &format!("bn{i}.mean"),
                &format!("bn{i}.var"),
            ],
            &[bn.as_str()],
            &[("epsilon", Attr::Float(1e-5))],
        );
        g.node("Relu", &[bn.as_str()], &[relu.as_str()], &[]);
        prev = relu;
        in_ch = out_ch;
    }
    let kf = (1.0 / in_ch as f32).sqrt();
    g.initializer(
        "fc.w",
        &[classes, in_ch],
        uniform(&mut rng, classes * in_ch, kf),
    )
    .expect("conv_net fc.w size is consistent");
    g.initializer("fc.b", &[classes], uniform(&mut rng, classes, 0.1))
        .expect("conv_net fc.b size is consistent");
    classifier_head(&mut g, &prev, CONV_NET_OUTPUT, classes);
    g.encode()
}

/// Writes [`conv_net`] to `path`.
pub fn write_conv_net(
    path: impl AsRef<Path>,
    seed: u64,
    h: usize,
    w: usize,
    classes: usize,
) -> std::io::Result<()> {
    std::fs::write(path, conv_net(seed, h, w, classes))
}

/// GlobalAveragePool → Flatten → Gemm (`fc.w`, `fc.b`) → Softmax into
/// `output` `[1, classes]`: the head both test CNNs share.
fn classifier_head(g: &mut GraphBuilder, features: &str, output: &str, classes: usize) {
    g.node("GlobalAveragePool", &[features], &["gap"], &[]);
    g.node("Flatten", &["gap"], &["flat"], &[("axis", Attr::Int(1))]);
    g.node(
        "Gemm",
        &["flat", "fc.w", "fc.b"],
        &["logits"],
        &[("transB", Attr::Int(1))],
    );
    g.node(
        "Softmax",
        &["logits"],
        &[output],
        &[("axis", Attr::Int(-1))],
    );
    g.output(output, &fixed(&[1, classes]));
}
