//! The tract engine: pure Rust, always available.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::model::{self, PreparedModel, Spare};
use crate::{
    DType, Engine, EngineError, EngineKind, InputInfo, LoadedModel, ModelSpec, Session, TensorView,
};

/// The tract version this crate is built against (pinned with `=` in Cargo.toml).
pub const TRACT_VERSION: &str = "0.23.9";

/// Runs ONNX models with [tract](https://github.com/sonos/tract).
///
/// Models are decoded, typed, decluttered and optimised once, at [`Engine::load`]; the
/// optimised graph and its plan are shared by the sessions spawned from it, each with
/// its own execution state (tract's `SimplePlan::spawn`), so [`Session::run`] only
/// computes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TractEngine;

impl TractEngine {
    /// Creates the engine (cheap; tract needs no global set-up).
    pub fn new() -> Self {
        TractEngine
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn version(&self) -> String {
        format!("tract {TRACT_VERSION}")
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
        let prepared = model::prepare(spec)?;
        Ok(Arc::new(TractModel::new(prepared)?))
    }
}

/// Parses the model of `prepared`, fixes its input shape, applies the output cut, and
/// returns it typed and decluttered (not yet optimised for a backend). Errors are
/// [`EngineError::Prepare`] for `engine`.
pub(crate) fn decluttered(
    prepared: &PreparedModel,
    engine: &'static str,
) -> Result<TypedModel, EngineError> {
    let path = &prepared.path;
    let dir = path.parent().and_then(|p| p.to_str()).map(str::to_owned);
    // tract types both branches of an If: fold those decided by shapes and constants.
    let has_if = prepared
        .proto
        .graph
        .as_ref()
        .is_some_and(|g| g.node.iter().any(|n| n.op_type == "If"));
    let folded;
    let proto = if has_if {
        let mut p = prepared.proto.clone();
        crate::fold::fold_ifs(&mut p, &prepared.inputs, path, engine)?;
        folded = p;
        &folded
    } else {
        &prepared.proto
    };
    match typed_model(prepared, proto, dir.as_deref(), engine) {
        // Exporters annotate intermediate tensors and outputs with their own
        // symbolic dims (`batch`, `height`, ...), which tract cannot unify
        // with the sizes `input_shape` fixes. The inputs fix every shape:
        // drop the annotations and type the graph from the inputs alone.
        Err(EngineError::Prepare { reason, .. })
            if reason.contains("unify") || reason.contains("Failed analyse") =>
        {
            let mut bare = proto.clone();
            strip_annotations(&mut bare);
            typed_model(prepared, &bare, dir.as_deref(), engine).map_err(|e| match e {
                EngineError::Prepare {
                    engine,
                    path,
                    reason: again,
                } => EngineError::Prepare {
                    engine,
                    path,
                    reason: format!(
                        "{again} (also without the graph's shape annotations; with them: {reason})"
                    ),
                },
                other => other,
            })
        }
        other => other,
    }
}

/// The graph's intermediate shape annotations removed, and the outputs'
/// shapes (their element types stay).
fn strip_annotations(proto: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb::type_proto::Value;
    if let Some(g) = proto.graph.as_mut() {
        g.value_info.clear();
        for o in &mut g.output {
            if let Some(Value::TensorType(t)) = o.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = None;
            }
        }
    }
}

/// Parse, fix the inputs, type and declutter one ONNX graph.
fn typed_model(
    prepared: &PreparedModel,
    proto: &tract_onnx::pb::ModelProto,
    dir: Option<&str>,
    engine: &'static str,
) -> Result<TypedModel, EngineError> {
    let path = &prepared.path;
    let fail = |what: &str, e: TractError| EngineError::Prepare {
        engine,
        path: path.clone(),
        reason: format!("{what}: {e:#}"),
    };
    let parsed = tract_onnx::onnx()
        .parse(proto, dir)
        .map_err(|e| fail("parsing the ONNX graph", e))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(EngineError::Prepare {
            engine,
            path: path.clone(),
            reason: format!(
                "unresolved inputs at top level: {:?}",
                parsed.unresolved_inputs
            ),
        });
    }
    let mut model = parsed.model;
    // tract names each source node after its graph input; match by name, not position.
    let outlets = model
        .input_outlets()
        .map_err(|e| fail("listing the inputs", e))?
        .to_vec();
    if outlets.len() != prepared.inputs.len() {
        return Err(EngineError::Prepare {
            engine,
            path: path.clone(),
            reason: format!(
                "tract sees {} input(s), expected {} ({})",
                outlets.len(),
                prepared.inputs.len(),
                model::describe_inputs(&prepared.inputs)
            ),
        });
    }
    for (i, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let info = prepared.inputs.get(i).filter(|info| info.name == name);
        let Some(info) = info else {
            return Err(EngineError::Prepare {
                engine,
                path: path.clone(),
                reason: format!(
                    "tract's input #{i} is {name:?}, expected {}",
                    model::describe_inputs(&prepared.inputs)
                ),
            });
        };
        let fact = TypedFact::dt_shape(datum_type(info.dtype), info.shape.as_slice());
        model
            .set_input_fact(i, InferenceFact::from(fact))
            .map_err(|e| fail(&format!("fixing the shape of input {name:?}"), e))?;
    }
    if prepared.cut {
        model = model
            .with_outputs_by_name(&prepared.output_names)
            .map_err(|e| fail("selecting the output cut", e))?;
    }
    let typed = model.into_typed().map_err(|e| fail("typing", e))?;
    typed
        .into_decluttered()
        .map_err(|e| fail("decluttering", e))
}

/// A multi-threaded executor for intra-op parallelism when `threads > 1`.
pub(crate) fn executor(
    threads: usize,
    path: &std::path::Path,
    engine: &'static str,
) -> Result<Option<multithread::Executor>, EngineError> {
    if threads <= 1 {
        return Ok(None);
    }
    // rayon panics if it cannot spawn its threads: keep that an error.
    std::panic::catch_unwind(|| multithread::Executor::multithread(threads))
        .map(Some)
        .map_err(|_| EngineError::Prepare {
            engine,
            path: path.to_path_buf(),
            reason: format!("cannot start a pool of {threads} threads"),
        })
}

/// A loaded, optimised tract model: the graph, and the plan its sessions share.
struct TractModel {
    path: PathBuf,
    /// The optimised graph, shared by every plan.
    graph: Arc<TypedModel>,
    /// The plan of every session when a session computes on its calling thread alone
    /// (one thread). With more threads each session gets its own plan over the same
    /// graph, with its own pool of intra-op threads, as when each lane loaded the model.
    plan: Arc<TypedSimplePlan>,
    threads: usize,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    spare: Spare<TractSession>,
}

impl TractModel {
    fn new(prepared: PreparedModel) -> Result<Self, EngineError> {
        let typed = decluttered(&prepared, "tract")?;
        let PreparedModel {
            path,
            inputs,
            output_names,
            threads,
            ..
        } = prepared;
        let typed = typed
            .into_optimized()
            .map_err(|e| plan_err(&path, "optimising", e))?;
        let graph = Arc::new(typed);
        let plan = plan_for(&graph, threads, &path)?;
        let mut first = TractSession::new(&plan, &path, &inputs, &output_names, vec![])?;
        let output_shapes = model::warm_up(&mut first)?;
        first.output_shapes.clone_from(&output_shapes);
        Ok(TractModel {
            path,
            graph,
            plan,
            threads,
            inputs,
            output_names,
            output_shapes,
            spare: Spare::new(first),
        })
    }
}

fn plan_err(path: &Path, what: &str, e: TractError) -> EngineError {
    EngineError::Prepare {
        engine: "tract",
        path: path.to_path_buf(),
        reason: format!("{what}: {e:#}"),
    }
}

/// An execution plan over the shared graph (with a pool of `threads` intra-op threads
/// when `threads > 1`).
fn plan_for(
    graph: &Arc<TypedModel>,
    threads: usize,
    path: &Path,
) -> Result<Arc<TypedSimplePlan>, EngineError> {
    let options = RunOptions {
        executor: executor(threads, path, "tract")?,
        ..RunOptions::default()
    };
    TypedSimplePlan::new_with_options(graph.clone(), &options)
        .map_err(|e| plan_err(path, "building the execution plan", e))
}

impl LoadedModel for TractModel {
    fn spawn(&self) -> Result<Box<dyn Session>, EngineError> {
        if let Some(s) = self.spare.take() {
            return Ok(Box::new(s));
        }
        let plan = if self.threads > 1 {
            plan_for(&self.graph, self.threads, &self.path)?
        } else {
            self.plan.clone()
        };
        let mut s = TractSession::new(
            &plan,
            &self.path,
            &self.inputs,
            &self.output_names,
            self.output_shapes.clone(),
        )?;
        model::warm_up(&mut s)?;
        Ok(Box::new(s))
    }

    fn inputs(&self) -> &[InputInfo] {
        &self.inputs
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// One execution state of a [`TractModel`]'s plan.
struct TractSession {
    path: PathBuf,
    state: TypedSimpleState,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
}

impl TractSession {
    fn new(
        plan: &Arc<TypedSimplePlan>,
        path: &Path,
        inputs: &[InputInfo],
        output_names: &[String],
        output_shapes: Vec<Vec<usize>>,
    ) -> Result<Self, EngineError> {
        let state = plan
            .spawn()
            .map_err(|e| plan_err(path, "creating the execution state", e))?;
        Ok(TractSession {
            path: path.to_path_buf(),
            state,
            inputs: inputs.to_vec(),
            output_names: output_names.to_vec(),
            output_shapes,
        })
    }
}

/// tract's type for ours.
pub(crate) fn datum_type(d: DType) -> DatumType {
    match d {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::F64 => f64::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::Bool => bool::datum_type(),
    }
}

/// The inputs as tract values (tract owns its inputs: one copy each), each
/// cast to its input's declared type (`infos`, in order) where it comes in
/// a carrier.
pub(crate) fn to_tvalues(
    inputs: &[TensorView<'_>],
    infos: &[crate::InputInfo],
) -> TractResult<TVec<TValue>> {
    let mut values = TVec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        let tensor = match input {
            TensorView::F32(a) => {
                let c = a.as_standard_layout();
                Tensor::from_shape(a.shape(), c.as_slice().unwrap_or_default())?
            }
            TensorView::I64(a) => {
                let c = a.as_standard_layout();
                Tensor::from_shape(a.shape(), c.as_slice().unwrap_or_default())?
            }
        };
        let tensor = match infos.get(k).map(|i| datum_type(i.dtype)) {
            Some(dt) if dt != tensor.datum_type() => tensor.cast_to_dt(dt)?.into_owned(),
            _ => tensor,
        };
        values.push(tensor.into_tvalue());
    }
    Ok(values)
}

/// tract's outputs as our tensors: f32 and i64 kept, other types converted to f32.
pub(crate) fn from_tvalues(outputs: TVec<TValue>) -> TractResult<Vec<crate::Tensor>> {
    let mut result = Vec::with_capacity(outputs.len());
    for out in outputs {
        let t = if out.datum_type() == i64::datum_type() {
            crate::Tensor::I64(out.to_plain_array_view::<i64>()?.to_owned())
        } else {
            let out = out.cast_to::<f32>()?;
            crate::Tensor::F32(out.to_plain_array_view::<f32>()?.to_owned())
        };
        result.push(t);
    }
    Ok(result)
}

impl Session for TractSession {
    fn run_many(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<crate::Tensor>, EngineError> {
        model::check_inputs(&self.path, &self.inputs, inputs)?;
        let fail = |e: TractError| EngineError::Run {
            engine: "tract",
            path: self.path.clone(),
            reason: format!("{e:#}"),
        };
        let values = to_tvalues(inputs, &self.inputs).map_err(fail)?;
        let outputs = self.state.run(values).map_err(fail)?;
        from_tvalues(outputs).map_err(fail)
    }

    fn inputs(&self) -> &[InputInfo] {
        &self.inputs
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn path(&self) -> &Path {
        &self.path
    }
}
