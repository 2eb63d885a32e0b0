//! The tract engine: pure Rust, always available.

use std::path::PathBuf;

use ndarray::ArrayD;
use tract_onnx::prelude::*;

use crate::model::{self, PreparedModel};
use crate::{Engine, EngineError, ModelSpec, Session};

/// The tract version this crate is built against (pinned with `=` in Cargo.toml).
pub const TRACT_VERSION: &str = "0.23.9";

/// Runs ONNX models with [tract](https://github.com/sonos/tract).
///
/// Models are decoded, typed, decluttered and optimised at [`Engine::load`]; the
/// returned session keeps a ready execution state, so [`Session::run`] only computes.
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

    fn version(&self) -> String {
        format!("tract {TRACT_VERSION}")
    }

    fn load(&self, spec: &ModelSpec) -> Result<Box<dyn Session>, EngineError> {
        let prepared = model::prepare(spec)?;
        Ok(Box::new(TractSession::new(prepared)?))
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
    let fail = |what: &str, e: TractError| EngineError::Prepare {
        engine,
        path: path.clone(),
        reason: format!("{what}: {e:#}"),
    };
    let dir = path.parent().and_then(|p| p.to_str()).map(str::to_owned);
    let parsed = tract_onnx::onnx()
        .parse(&prepared.proto, dir.as_deref())
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
    let mut model = parsed
        .model
        .with_input_fact(
            0,
            InferenceFact::from(f32::fact(prepared.input_shape.as_slice())),
        )
        .map_err(|e| fail("fixing the input shape", e))?;
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

/// A loaded, optimised tract model with its execution state.
struct TractSession {
    path: PathBuf,
    state: TypedSimpleState,
    input_shape: Vec<usize>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
}

impl TractSession {
    fn new(prepared: PreparedModel) -> Result<Self, EngineError> {
        let typed = decluttered(&prepared, "tract")?;
        let PreparedModel {
            path,
            input_shape,
            output_names,
            threads,
            ..
        } = prepared;
        let fail = |what: &str, e: TractError| EngineError::Prepare {
            engine: "tract",
            path: path.clone(),
            reason: format!("{what}: {e:#}"),
        };
        let typed = typed.into_optimized().map_err(|e| fail("optimising", e))?;
        let executor = executor(threads, &path, "tract")?;
        let options = RunOptions {
            executor,
            ..RunOptions::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(|e| fail("building the execution plan", e))?;
        let state = plan
            .spawn()
            .map_err(|e| fail("creating the execution state", e))?;
        let mut session = TractSession {
            path,
            state,
            input_shape,
            output_names,
            output_shapes: vec![],
        };
        let shape = session.input_shape.clone();
        session.output_shapes = model::warm_up(&mut session, &shape)?;
        Ok(session)
    }
}

impl Session for TractSession {
    fn run(&mut self, input: &ArrayD<f32>) -> Result<Vec<ArrayD<f32>>, EngineError> {
        model::check_input(&self.path, &self.input_shape, input.shape())?;
        let fail = |e: TractError| EngineError::Run {
            engine: "tract",
            path: self.path.clone(),
            reason: format!("{e:#}"),
        };
        let contiguous = input.as_standard_layout();
        let data = contiguous.as_slice().unwrap_or_default();
        let tensor = Tensor::from_shape(input.shape(), data).map_err(fail)?;
        let outputs = self.state.run(tvec!(tensor.into_tvalue())).map_err(fail)?;
        let mut result = Vec::with_capacity(outputs.len());
        for out in outputs {
            let out = out.cast_to::<f32>().map_err(fail)?;
            let view = out.to_plain_array_view::<f32>().map_err(fail)?;
            result.push(view.to_owned());
        }
        Ok(result)
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }
}
