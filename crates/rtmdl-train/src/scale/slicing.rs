//! Channel ranking, the one function-preserving reordering, and width / depth slicing.

use crate::{Arch, BN_EPS, BN_PARAMS, Result, TrainError, Weights};

/// Channels kept at width `w` of a layer with `c` channels: `⌈w·c⌉`, at least 1, at
/// most `c` (a hair under the exact product is taken as the product, so `0.75 · 16`
/// is 12 whatever the float rounding).
pub fn scaled_channels(c: usize, w: f32) -> usize {
    let x = (w as f64 * c as f64 - 1e-6).ceil();
    (x.max(1.0) as usize).min(c)
}

/// A variant's name: `w{round(100·width):03}-d{depth}`, e.g. `w050-d1`.
pub fn variant_name(width: f32, depth: usize) -> String {
    format!("w{:03}-d{depth}", (width as f64 * 100.0).round() as u64)
}

/// Whether `name` is a tensor of the shared part: a conv weight or a batch-norm
/// gamma / beta of the stem, the down-sampling stage or a residual block. Everything
/// else (the shared batch norms' running statistics, `head.*`, `fc.*`, `box.*`) is
/// private to a variant.
pub fn is_shared_tensor(name: &str) -> bool {
    let private_layer =
        name.starts_with("head.") || name.starts_with("fc.") || name.starts_with("box.");
    let stats = name.ends_with(".running_mean") || name.ends_with(".running_var");
    !private_layer && !stats
}

/// Multiply-accumulate operations of one inference of `arch` (convolutions and linear
/// layers; batch norms, pools and activations not counted).
pub fn macs(arch: &Arch) -> u64 {
    let (h, w) = (arch.height as u64, arch.width as u64);
    let (h2, w2) = (h / 2, w / 2);
    let (h4, w4) = (h2 / 2, w2 / 2);
    let (c1, c2, c3) = (arch.c1 as u64, arch.c2 as u64, arch.c3 as u64);
    let stem = h * w * c1 * 3 * 9;
    let down = h2 * w2 * c2 * c1 * 9;
    let blocks = arch.blocks as u64 * 2 * h4 * w4 * c2 * c2 * 9;
    let head = h4 * w4 * c3 * c2 * 9;
    let fc = c3 * arch.classes as u64 + if arch.box_head { c3 * 4 } else { 0 };
    stem + down + blocks + head + fc
}

/// Importance of each output channel of `conv` followed by batch norm `bn`:
/// `|gamma| / sqrt(running_var + eps) · L1(filter)` (the L1 norm of the filter as the
/// batch norm scales it).
fn importance(w: &Weights, conv: &str, bn: &str) -> Result<Vec<f64>> {
    let (s, data) = w.get(conv)?;
    let cout = s[0];
    let per = data.len() / cout.max(1);
    let gamma = w.get(&format!("{bn}.weight"))?.1;
    let var = w.get(&format!("{bn}.running_var"))?.1;
    Ok((0..cout)
        .map(|o| {
            let l1: f64 = data[o * per..(o + 1) * per]
                .iter()
                .map(|v| v.abs() as f64)
                .sum();
            gamma[o].abs() as f64 / (var[o] as f64 + BN_EPS as f64).sqrt() * l1
        })
        .collect())
}

/// Channel indices, most important first (ties: lower index first).
fn ranking(imp: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..imp.len()).collect();
    idx.sort_by(|&a, &b| imp[b].total_cmp(&imp[a]).then(a.cmp(&b)));
    idx
}

/// The entries `idx` (in that order) of dimension `dim` of a row-major tensor.
fn take(shape: &[usize], data: &[f32], dim: usize, idx: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let n = shape[dim];
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in idx {
            let start = (o * n + j) * inner;
            out.extend_from_slice(&data[start..start + inner]);
        }
    }
    let mut s = shape.to_vec();
    s[dim] = idx.len();
    (s, out)
}

/// The leading `dst[k]` entries of every dimension `k` of a row-major tensor.
pub(crate) fn prefix(shape: &[usize], data: &[f32], dst: &[usize]) -> Vec<f32> {
    debug_assert_eq!(shape.len(), dst.len());
    let mut s = shape.to_vec();
    let mut d = data.to_vec();
    for k in 0..shape.len() {
        if dst[k] != s[k] {
            let idx: Vec<usize> = (0..dst[k]).collect();
            (s, d) = take(&s, &d, k, &idx);
        }
    }
    d
}

fn reorder(w: &mut Weights, name: &str, dim: usize, perm: &[usize]) -> Result<()> {
    let (s, d) = w.get(name)?;
    let (s, d) = take(s, d, dim, perm);
    w.insert(name, s, d);
    Ok(())
}

/// Reorders a conv's output channels and its batch norm's four tensors.
fn reorder_conv_bn(w: &mut Weights, conv: &str, bn: &str, perm: &[usize]) -> Result<()> {
    reorder(w, conv, 0, perm)?;
    for p in BN_PARAMS {
        reorder(w, &format!("{bn}.{p}"), 0, perm)?;
    }
    Ok(())
}

/// The channel orders [`permute_by_importance`] applies, most important first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permutation {
    /// Stem channels (`c1`).
    pub stem: Vec<usize>,
    /// The residual stream (`c2`): `down`'s outputs and every block's `conv2` outputs,
    /// ranked by their summed importance.
    pub stream: Vec<usize>,
    /// Each block's internal channels (`conv1` outputs).
    pub blocks: Vec<Vec<usize>>,
    /// Head conv channels (`c3`).
    pub head: Vec<usize>,
}

/// Ranks the channels of every conv by importance and reorders the whole weight set
/// once, most important first, so that every width level is a prefix. The network
/// computes the same function (only the order of channels changes).
///
/// * stem: own ranking (reorders `stem.*` dim 0 and `down.conv` dim 1);
/// * residual stream: one ranking shared by `down.conv`, every `blocks.{i}.conv2` and
///   their batch norms (importances summed over these producers), so the residual
///   additions still add matching channels; reorders the input dim of every
///   `blocks.{i}.conv1` and of `head.conv`;
/// * block-internal channels: one ranking per block (`conv1` / `bn1` outputs,
///   `conv2` inputs);
/// * head: its own ranking (`head.*` dim 0, `fc.weight` / `box.weight` dim 1).
pub fn permute_by_importance(arch: &Arch, w: &Weights) -> Result<(Weights, Permutation)> {
    arch.check(w)?;
    let stem = ranking(&importance(w, "stem.conv.weight", "stem.bn")?);
    let mut stream_imp = importance(w, "down.conv.weight", "down.bn")?;
    for i in 0..arch.blocks {
        let imp = importance(
            w,
            &format!("blocks.{i}.conv2.weight"),
            &format!("blocks.{i}.bn2"),
        )?;
        for (s, v) in stream_imp.iter_mut().zip(imp) {
            *s += v;
        }
    }
    let stream = ranking(&stream_imp);
    let head = ranking(&importance(w, "head.conv.weight", "head.bn")?);
    let mut out = w.clone();
    reorder_conv_bn(&mut out, "stem.conv.weight", "stem.bn", &stem)?;
    reorder(&mut out, "down.conv.weight", 1, &stem)?;
    reorder_conv_bn(&mut out, "down.conv.weight", "down.bn", &stream)?;
    let mut blocks = Vec::new();
    for i in 0..arch.blocks {
        let (c1, b1) = (
            format!("blocks.{i}.conv1.weight"),
            format!("blocks.{i}.bn1"),
        );
        let (c2, b2) = (
            format!("blocks.{i}.conv2.weight"),
            format!("blocks.{i}.bn2"),
        );
        let inner = ranking(&importance(w, &c1, &b1)?);
        reorder(&mut out, &c1, 1, &stream)?;
        reorder_conv_bn(&mut out, &c1, &b1, &inner)?;
        reorder(&mut out, &c2, 1, &inner)?;
        reorder_conv_bn(&mut out, &c2, &b2, &stream)?;
        blocks.push(inner);
    }
    reorder(&mut out, "head.conv.weight", 1, &stream)?;
    reorder_conv_bn(&mut out, "head.conv.weight", "head.bn", &head)?;
    reorder(&mut out, "fc.weight", 1, &head)?;
    if arch.box_head {
        reorder(&mut out, "box.weight", 1, &head)?;
    }
    arch.check(&out)?;
    Ok((
        out,
        Permutation {
            stem,
            stream,
            blocks,
            head,
        },
    ))
}

/// The architecture of the variant of `base` at `width` and `depth`: channels
/// [`scaled_channels`] of each, `depth` blocks, named `{base}-{variant_name}`.
pub fn variant_arch(base: &Arch, width: f32, depth: usize) -> Result<Arch> {
    if !(width.is_finite() && width > 0.0 && width <= 1.0) {
        return Err(TrainError::Scale(format!("width {width} is not in (0, 1]")));
    }
    if depth > base.blocks {
        return Err(TrainError::Scale(format!(
            "depth {depth}: {} has only {} residual blocks",
            base.name, base.blocks
        )));
    }
    Ok(Arch {
        name: format!("{}-{}", base.name, variant_name(width, depth)),
        c1: scaled_channels(base.c1, width),
        c2: scaled_channels(base.c2, width),
        c3: scaled_channels(base.c3, width),
        blocks: depth,
        ..base.clone()
    })
}

/// Slices the (reordered) weights `w` of `base` to the variant at `width` / `depth`:
/// the first [`scaled_channels`] channels of every layer (dim 0 of a conv and its batch
/// norm, dim 1 of the next conv or linear layer) and blocks `0..depth`. Running
/// statistics and the head are sliced too (the starting point for the re-fit).
pub fn slice_variant(
    base: &Arch,
    w: &Weights,
    width: f32,
    depth: usize,
) -> Result<(Arch, Weights)> {
    base.check(w)?;
    let arch = variant_arch(base, width, depth)?;
    let mut out = Weights::default();
    for (name, shape) in arch.tensor_shapes() {
        let (s, d) = w.get(&name)?;
        out.insert(name, shape.clone(), prefix(s, d, &shape));
    }
    Ok((arch, out))
}
