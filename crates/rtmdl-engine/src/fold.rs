//! Folding `If` nodes whose condition is known once the input shapes and constants are.
//!
//! Exporters in script mode (torch.onnx, spox) leave `If` nodes whose condition depends
//! only on constants and tensor *shapes*: Silero VAD branches on `sr == 16000`, then on
//! `Shape(x)[k] == 1` to decide whether to `Squeeze`. tract types both branches of every
//! `If`, and the branch that would never run often cannot be typed (it squeezes an axis
//! that is not 1), so such a model fails to load in tract although onnxruntime runs it.
//!
//! [`fold_ifs`] replaces every top-level `If` whose condition is *shape-only* (each path
//! from a graph input to the condition goes through `Shape` or `Size`) by the nodes of
//! the branch taken, evaluating the condition with tract on the part of the graph it
//! needs (with the session's fixed input shapes and zeros). Nested `If`s become top-level
//! when their parent is inlined, and are folded in turn. An `If` on data (or one whose
//! condition tract cannot compute on its own) stays as it is.

use std::collections::HashSet;
use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::{EngineError, InputInfo};

/// Most `If`s folded in one model (a guard against a pathological graph).
const MAX_FOLDS: usize = 1000;

/// Folds the shape-only `If`s of `proto`'s main graph (see the module docs). Returns
/// how many were folded.
pub(crate) fn fold_ifs(
    proto: &mut pb::ModelProto,
    inputs: &[InputInfo],
    path: &Path,
    engine: &'static str,
) -> Result<usize, EngineError> {
    let mut folded = 0;
    let mut skip: HashSet<String> = HashSet::new();
    while folded < MAX_FOLDS {
        let Some(graph) = proto.graph.as_ref() else {
            return Ok(folded);
        };
        let Some(at) = graph.node.iter().position(|n| {
            n.op_type == "If"
                && n.domain.is_empty()
                && !n.input.is_empty()
                && !skip.contains(&n.input[0])
        }) else {
            return Ok(folded);
        };
        let cond = graph.node[at].input[0].clone();
        if !shape_only(graph, &cond) {
            skip.insert(cond);
            continue;
        }
        // A condition tract cannot compute here is left to tract's own If.
        let Ok(value) = evaluate(proto, &cond, inputs, path, engine) else {
            skip.insert(cond);
            continue;
        };
        let graph = proto.graph.as_mut().expect("checked above");
        inline(graph, at, value).map_err(|reason| EngineError::Prepare {
            engine,
            path: path.to_path_buf(),
            reason: format!("folding If node {:?}: {reason}", graph.node[at].name),
        })?;
        folded += 1;
    }
    Ok(folded)
}

/// Whether `tensor` depends only on constants and shapes: walking up from it, every
/// path ends at an initializer or a `Constant`, or passes through `Shape`/`Size`.
/// Graph inputs, control flow and random ops make it data-dependent.
fn shape_only(graph: &pb::GraphProto, tensor: &str) -> bool {
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut todo = vec![tensor.to_string()];
    let mut seen = HashSet::new();
    while let Some(t) = todo.pop() {
        if t.is_empty() || !seen.insert(t.clone()) || inits.contains(t.as_str()) {
            continue;
        }
        let Some(node) = graph.node.iter().find(|n| n.output.contains(&t)) else {
            // A graph input, or a name from an outer scope: data.
            return false;
        };
        match node.op_type.as_str() {
            "Shape" | "Size" => continue,
            "If" | "Loop" | "Scan" | "RandomNormal" | "RandomUniform" | "RandomNormalLike"
            | "RandomUniformLike" | "Multinomial" | "Bernoulli" => return false,
            _ if !node.domain.is_empty() => return false,
            _ => todo.extend(node.input.iter().cloned()),
        }
    }
    true
}

/// The value of the boolean `cond`, computed by tract on the nodes it needs.
fn evaluate(
    proto: &pb::ModelProto,
    cond: &str,
    inputs: &[InputInfo],
    path: &Path,
    engine: &'static str,
) -> Result<bool, EngineError> {
    let fail = |what: &str, e: TractError| EngineError::Prepare {
        engine,
        path: path.to_path_buf(),
        reason: format!("evaluating the condition {cond:?} of an If node: {what}: {e:#}"),
    };
    let graph = proto.graph.as_ref().expect("fold_ifs checked the graph");
    // Only the nodes the condition needs (walking up, through Shape/Size too).
    let mut needed = HashSet::new();
    let mut todo = vec![cond.to_string()];
    let mut seen = HashSet::new();
    while let Some(t) = todo.pop() {
        if t.is_empty() || !seen.insert(t.clone()) {
            continue;
        }
        if let Some(i) = graph.node.iter().position(|n| n.output.contains(&t))
            && needed.insert(i)
        {
            todo.extend(graph.node[i].input.iter().cloned());
        }
    }
    let mut sub = proto.clone();
    let g = sub.graph.as_mut().expect("cloned");
    g.node = graph
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| needed.contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    g.output = vec![pb::ValueInfoProto {
        name: cond.to_string(),
        ..Default::default()
    }];
    g.value_info.clear();
    let dir = path.parent().and_then(|p| p.to_str()).map(str::to_owned);
    let mut model = tract_onnx::onnx()
        .parse(&sub, dir.as_deref())
        .map_err(|e| fail("parsing", e))?
        .model;
    let outlets = model
        .input_outlets()
        .map_err(|e| fail("listing the inputs", e))?
        .to_vec();
    let mut feeds = TVec::new();
    for (i, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let Some(info) = inputs.iter().find(|x| x.name == name) else {
            return Err(fail(
                "matching inputs",
                TractError::msg(format!("unexpected input {name:?}")),
            ));
        };
        let dt = crate::tract_engine::datum_type(info.dtype);
        let (fact, zeros) = (
            TypedFact::dt_shape(dt, info.shape.as_slice()),
            Tensor::zero_dt(dt, &info.shape),
        );
        model
            .set_input_fact(i, InferenceFact::from(fact))
            .map_err(|e| fail("fixing input shapes", e))?;
        feeds.push(zeros.map_err(|e| fail("making inputs", e))?.into_tvalue());
    }
    let runnable = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| fail("preparing", e))?;
    let out = runnable.run(feeds).map_err(|e| fail("running", e))?;
    let value = out
        .first()
        .ok_or_else(|| fail("running", TractError::msg("no output")))?;
    let value = value
        .cast_to_scalar::<bool>()
        .map_err(|e| fail("reading the condition", e))?;
    Ok(value)
}

/// Replaces the `If` node at `at` by the nodes of the branch `cond` selects, followed by
/// one `Identity` per output (branch output → If output).
fn inline(graph: &mut pb::GraphProto, at: usize, cond: bool) -> Result<(), String> {
    let node = graph.node[at].clone();
    let wanted = if cond { "then_branch" } else { "else_branch" };
    let branch = node
        .attribute
        .iter()
        .find(|a| a.name == wanted)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| format!("no {wanted} graph"))?;
    if branch.output.len() != node.output.len() {
        return Err(format!(
            "{wanted} has {} outputs, the node {}",
            branch.output.len(),
            node.output.len()
        ));
    }
    let mut nodes = branch.node.clone();
    for (from, to) in branch.output.iter().zip(&node.output) {
        if to.is_empty() {
            continue;
        }
        nodes.push(pb::NodeProto {
            op_type: "Identity".into(),
            name: format!("{}/folded/{to}", node.name),
            input: vec![from.name.clone()],
            output: vec![to.clone()],
            ..Default::default()
        });
    }
    graph.initializer.extend(branch.initializer.iter().cloned());
    graph.node.splice(at..=at, nodes);
    Ok(())
}
