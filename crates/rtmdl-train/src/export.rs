//! ONNX export through `rtmdl_engine::onnx_build`.

use std::path::Path;

use rtmdl_engine::onnx_build::{Attr, Dim, GraphBuilder, fixed};

use crate::{Arch, BN_EPS, BN_PARAMS, Result, TrainError, Weights};

/// Writes `arch` with weights `w` as an ONNX model (opset 13) to `path`.
///
/// Input `input` `[1, 3, H, W]`; outputs `logits` `[1, classes]` and, with a box head,
/// `box` `[1, 4]`. Batch norms are `BatchNormalization` nodes (inference mode, epsilon
/// [`BN_EPS`]); initializers carry the [`Weights`] names.
pub fn export_onnx(arch: &Arch, w: &Weights, path: impl AsRef<Path>) -> Result<()> {
    let g = build_graph(arch, w)?;
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    g.save(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn build_graph(arch: &Arch, w: &Weights) -> Result<GraphBuilder> {
    arch.check(w)?;
    let mut g = GraphBuilder::new(arch.name.clone());
    g.input("input", &fixed(&[1, 3, arch.height, arch.width]));
    for (name, shape) in arch.tensor_shapes() {
        let (_, data) = w.get(&name)?;
        g.initializer(name, &shape, data.to_vec())?;
    }
    let conv_attrs = [
        ("kernel_shape", Attr::Ints(vec![3, 3])),
        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ("strides", Attr::Ints(vec![1, 1])),
    ];
    let pool_attrs = [
        ("kernel_shape", Attr::Ints(vec![2, 2])),
        ("strides", Attr::Ints(vec![2, 2])),
    ];
    let bn_attrs = [("epsilon", Attr::Float(BN_EPS))];
    // conv + BN; returns the BN output name.
    let conv_bn = |g: &mut GraphBuilder, x: &str, conv_w: &str, bn: &str, out: &str| {
        let c = format!("{out}.conv");
        g.node("Conv", &[x, conv_w], &[&c], &conv_attrs);
        let p = BN_PARAMS.map(|s| format!("{bn}.{s}"));
        let b = format!("{out}.bn");
        g.node(
            "BatchNormalization",
            &[&c, &p[0], &p[1], &p[2], &p[3]],
            &[&b],
            &bn_attrs,
        );
        b
    };
    let mut x = "input".to_string();
    for stage in ["stem", "down"] {
        let b = conv_bn(
            &mut g,
            &x,
            &format!("{stage}.conv.weight"),
            &format!("{stage}.bn"),
            stage,
        );
        let r = format!("{stage}.relu");
        g.node("Relu", &[&b], &[&r], &[]);
        let o = format!("{stage}.out");
        g.node("MaxPool", &[&r], &[&o], &pool_attrs);
        x = o;
    }
    for i in 0..arch.blocks {
        let p = format!("blocks.{i}");
        let b1 = conv_bn(
            &mut g,
            &x,
            &format!("{p}.conv1.weight"),
            &format!("{p}.bn1"),
            &format!("{p}.1"),
        );
        let r1 = format!("{p}.1.relu");
        g.node("Relu", &[&b1], &[&r1], &[]);
        let b2 = conv_bn(
            &mut g,
            &r1,
            &format!("{p}.conv2.weight"),
            &format!("{p}.bn2"),
            &format!("{p}.2"),
        );
        let s = format!("{p}.add");
        g.node("Add", &[&b2, &x], &[&s], &[]);
        let o = format!("{p}.out");
        g.node("Relu", &[&s], &[&o], &[]);
        x = o;
    }
    let b = conv_bn(&mut g, &x, "head.conv.weight", "head.bn", "head");
    g.node("Relu", &[&b], &["head.out"], &[]);
    g.node("GlobalAveragePool", &["head.out"], &["head.pool"], &[]);
    g.node(
        "Flatten",
        &["head.pool"],
        &["features"],
        &[("axis", Attr::Int(1))],
    );
    g.node(
        "Gemm",
        &["features", "fc.weight", "fc.bias"],
        &["logits"],
        &[("transB", Attr::Int(1))],
    );
    g.output("logits", &[Dim::from(1), Dim::from(arch.classes)]);
    if arch.box_head {
        g.node(
            "Gemm",
            &["features", "box.weight", "box.bias"],
            &["box.raw"],
            &[("transB", Attr::Int(1))],
        );
        g.node("Sigmoid", &["box.raw"], &["box"], &[]);
        g.output("box", &[Dim::from(1), Dim::from(4)]);
    }
    Ok(g)
}
