//! Inference engines for rtmdl behind one small trait.
//!
//! * [`Engine::load`] loads a model ([`ModelSpec`]) once into a [`LoadedModel`]: all
//!   parsing, shape fixing and optimisation happens there. The loaded model is immutable
//!   and shared (`Send + Sync`, in an `Arc`); [`LoadedModel::spawn`] makes a [`Session`]
//!   with its own execution state for one thread (one per GPU lane, say), so
//!   [`Session::run`] only computes. This is tract's split of a plan
//!   (`SimplePlan`/`Runnable`) from its per-thread state (`spawn()`).
//!   [`Engine::session`] is load + spawn, for a single user.
//! * Engines: [`TractEngine`] (pure Rust, always there), [`OrtEngine`]
//!   (onnxruntime, loaded at run time; see [`ort_engine`] for where it is looked for) and,
//!   with the cargo feature `cuda`, `CudaEngine` (tract-cuda on an NVIDIA GPU; the CUDA
//!   libraries are loaded at run time, see `cuda_engine`).
//! * [`select`] picks one from an [`EngineKind`] and says why.
//! * [`onnx_build`] writes ONNX files without Python; [`testmodels`] uses it to make
//!   tiny seeded models for tests and benchmarks.
//!
//! Tensors are [`ndarray::ArrayD<f32>`] (ndarray is re-exported, the same version tract uses).
//!
//! # Several inputs, integer inputs, recurrent state
//!
//! A model may have several inputs, each `f32` or `i64` ([`DType`]):
//!
//! * [`Session::inputs`] lists them (name, type, concrete shape) in graph order and
//!   [`Session::run_many`] takes one [`TensorView`] per input and returns typed
//!   [`Tensor`]s; [`Session::run`] stays the short path for one `f32` input.
//! * Dynamic dims are fixed by name with [`ModelSpec::with_input_shape_of`] (and, for the
//!   first input, [`ModelSpec::with_input_shape`]).
//! * Inputs whose value never changes (Silero VAD's `sr`) are fixed at load with
//!   [`ModelSpec::with_constant`]: reading the model turns them into
//!   initializers of the graph for every engine, so they are folded where possible (an
//!   `If` on the sample rate disappears in tract) and are no longer session inputs.
//! * An input fed from an output of the previous run (Silero VAD's `state` from
//!   `stateN`) is handled by [`RecurrentSession`], a [`Session`] wrapping another one;
//!   its state lives in a [`SharedState`] that several sessions (one per GPU lane) can
//!   share. [`RecurrentModel`] is the [`LoadedModel`] that spawns them.

#![warn(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

pub use ndarray;
pub use ndarray::ArrayD;

#[cfg(feature = "cuda")]
pub mod cuda_engine;
mod error;
mod fallback;
mod fold;
pub mod inspect;
mod model;
pub mod onnx_build;
pub mod ort_engine;
pub mod recurrent;
mod tensor;
pub mod testmodels;
pub mod tract_engine;
pub mod variants;

#[cfg(feature = "cuda")]
pub use cuda_engine::CudaEngine;
pub use error::EngineError;
pub use fallback::Fallback;
pub use ort_engine::OrtEngine;
pub use recurrent::{Feedback, RecurrentModel, RecurrentSession, SharedState};
pub use tensor::{DType, InputInfo, InputValue, Tensor, TensorView};
pub use tract_engine::TractEngine;

/// What to load and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The `.onnx` file.
    pub path: PathBuf,
    /// The concrete shape of the first input (the first one not fixed by
    /// [`ModelSpec::constants`]). Required when that input has dynamic dims (e.g. a
    /// symbolic batch); otherwise it must agree with the declared shape.
    pub input_shape: Option<Vec<usize>>,
    /// Concrete shapes of inputs by name (any input, the first included; naming the
    /// first here and also setting `input_shape` is an error).
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Inputs fixed to a value at load: they become constants of the graph and are not
    /// inputs of the session.
    pub constants: Vec<(String, InputValue)>,
    /// Output cut: run only up to these tensors (node output names) and return them,
    /// in this order, instead of the graph's outputs.
    pub outputs: Option<Vec<String>>,
    /// Intra-op threads (0 is taken as 1). Default 1.
    pub threads: usize,
}

impl ModelSpec {
    /// A spec for `path` with the model's own shapes and outputs and one thread.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ModelSpec {
            path: path.into(),
            input_shape: None,
            input_shapes: Vec::new(),
            constants: Vec::new(),
            outputs: None,
            threads: 1,
        }
    }

    /// Sets [`ModelSpec::input_shape`].
    pub fn with_input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Adds the shape of input `name` to [`ModelSpec::input_shapes`].
    pub fn with_input_shape_of(
        mut self,
        name: impl Into<String>,
        shape: impl Into<Vec<usize>>,
    ) -> Self {
        self.input_shapes.push((name.into(), shape.into()));
        self
    }

    /// Adds a constant input to [`ModelSpec::constants`].
    pub fn with_constant(mut self, name: impl Into<String>, value: InputValue) -> Self {
        self.constants.push((name.into(), value));
        self
    }

    /// Sets [`ModelSpec::outputs`] (an output cut).
    pub fn with_outputs<S: Into<String>>(mut self, outputs: impl IntoIterator<Item = S>) -> Self {
        self.outputs = Some(outputs.into_iter().map(Into::into).collect());
        self
    }

    /// Sets [`ModelSpec::threads`].
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

/// A model loaded once by [`Engine::load`], ready to spawn sessions: immutable, shared by
/// the threads that run it.
pub trait LoadedModel: Send + Sync {
    /// A session with its own execution state, warmed up (one inference on zeros, on
    /// the calling thread). The model's weights and plan are shared, not copied.
    fn spawn(&self) -> Result<Box<dyn Session>, EngineError>;
    /// The inputs its sessions take (see [`Session::inputs`]).
    fn inputs(&self) -> &[InputInfo];
    /// The output shapes (observed on the warm-up run done at load).
    fn output_shapes(&self) -> &[Vec<usize>];
    /// The output tensor names (the graph's outputs, or the output cut).
    fn output_names(&self) -> &[String];
    /// The model file (for messages).
    fn path(&self) -> &Path;
}

/// A running instance of a [`LoadedModel`], with its own execution state. One session is
/// used by one thread at a time.
pub trait Session: Send {
    /// Runs one inference with one tensor per input, in [`Session::inputs`] order, each
    /// of exactly that input's type and shape; returns one tensor per output, in
    /// [`Session::output_names`] order (`f32` and `i64` outputs keep their type, outputs
    /// of other types are converted to `f32`).
    fn run_many(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError>;
    /// The inputs the session takes (graph order, without [`ModelSpec::constants`]).
    fn inputs(&self) -> &[InputInfo];
    /// The output shapes (observed on the warm-up run done at load).
    fn output_shapes(&self) -> &[Vec<usize>];
    /// The output tensor names (the graph's outputs, or the output cut).
    fn output_names(&self) -> &[String];
    /// The model file (for messages).
    fn path(&self) -> &Path;

    /// Runs one inference of a model with a single `f32` input, which must have exactly
    /// [`Session::input_shape`]; returns one array per output, in
    /// [`Session::output_names`] order, converted to `f32`. A model with another number
    /// of inputs, or a non-`f32` one, is an [`EngineError::InputMismatch`]: use
    /// [`Session::run_many`].
    fn run(&mut self, input: &ArrayD<f32>) -> Result<Vec<ArrayD<f32>>, EngineError> {
        let outputs = self.run_many(&[TensorView::F32(input.view())])?;
        Ok(outputs.into_iter().map(Tensor::into_f32).collect())
    }

    /// The shape of the first input (empty when the session takes no input).
    fn input_shape(&self) -> &[usize] {
        self.inputs().first().map_or(&[], |i| i.shape.as_slice())
    }
}

/// An inference engine.
pub trait Engine: Send + Sync {
    /// Short name: "tract", "ort" or "cuda".
    fn name(&self) -> &'static str;
    /// Which engine this is: [`EngineKind::Tract`], [`EngineKind::Ort`] or
    /// [`EngineKind::Cuda`] (never `Auto`).
    fn kind(&self) -> EngineKind;
    /// Engine and version, e.g. "tract 0.23.9", "onnxruntime 1.31.0" or
    /// "tract-cuda 0.23.9 on NVIDIA H100 80GB HBM3 (driver API 12.8)".
    fn version(&self) -> String;
    /// Reads, validates, optimises and warms up a model (one inference on zeros), once:
    /// spawn a session per thread from the result.
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError>;
    /// The models another engine had to load, one line each (a
    /// [`Fallback`]; none for a plain engine).
    fn fallbacks(&self) -> Vec<String> {
        Vec::new()
    }
    /// One session of a model: [`Engine::load`], then [`LoadedModel::spawn`] (the first
    /// spawn reuses the session warmed up at load, so this costs what loading does).
    fn session(&self, spec: &ModelSpec) -> Result<Box<dyn Session>, EngineError> {
        self.load(spec)?.spawn()
    }
}

/// Which engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EngineKind {
    /// The CUDA engine when built with the `cuda` feature and a GPU is usable;
    /// otherwise onnxruntime when it is found, tract otherwise.
    #[default]
    Auto,
    /// Always tract.
    Tract,
    /// Always onnxruntime (an error when it is not found).
    Ort,
    /// Always the CUDA engine (tract-cuda): an error when this build lacks the `cuda`
    /// feature ([`EngineError::NotBuilt`]) or no GPU is usable
    /// ([`EngineError::CudaUnavailable`]).
    Cuda,
}

impl EngineKind {
    /// The name as accepted by [`FromStr`] and printed by [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Tract => "tract",
            EngineKind::Ort => "ort",
            EngineKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineKind {
    type Err = EngineError;

    /// Accepts "auto", "tract", "ort" (and "onnxruntime"), "cuda" (and "gpu"),
    /// case-insensitively. "cuda" parses in every build; selecting it fails without the
    /// `cuda` feature.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(EngineKind::Auto),
            "tract" => Ok(EngineKind::Tract),
            "ort" | "onnxruntime" => Ok(EngineKind::Ort),
            "cuda" | "gpu" => Ok(EngineKind::Cuda),
            _ => Err(EngineError::UnknownEngine(s.to_string())),
        }
    }
}

/// Picks an engine and returns it with a one-line human note saying which one and why.
///
/// `Auto` tries, in order: the CUDA engine (only with the `cuda` feature, when a GPU is
/// usable), onnxruntime, tract; the note says which was taken and why the ones before
/// it were not.
pub fn select(kind: EngineKind) -> Result<(Box<dyn Engine>, String), EngineError> {
    match kind {
        EngineKind::Tract => {
            let e = TractEngine::new();
            let note = format!("tract: using {} (requested)", e.version());
            Ok((Box::new(e), note))
        }
        EngineKind::Ort => {
            let e = OrtEngine::new()?;
            let note = format!(
                "ort: using {} from {} (found via {})",
                e.version(),
                e.dylib().path.display(),
                e.dylib().found_via
            );
            Ok((Box::new(e), note))
        }
        EngineKind::Cuda => {
            let e = new_cuda()?;
            let note = format!("cuda: using {} (requested)", e.version());
            Ok((e, note))
        }
        EngineKind::Auto => {
            let mut skipped = String::new();
            if cfg!(feature = "cuda") {
                match new_cuda() {
                    Ok(e) => {
                        let note = format!("auto: using {} (a GPU is usable)", e.version());
                        return Ok((e, note));
                    }
                    Err(err) => skipped = format!("cuda not usable ({err}); "),
                }
            }
            match OrtEngine::new() {
                Ok(e) => {
                    let note = format!(
                        "auto: {skipped}using {} from {} (found via {})",
                        e.version(),
                        e.dylib().path.display(),
                        e.dylib().found_via
                    );
                    Ok((Box::new(e), note))
                }
                Err(err) => {
                    let t = TractEngine::new();
                    let note = format!("auto: {skipped}{err}; using {}", t.version());
                    Ok((Box::new(t), note))
                }
            }
        }
    }
}

/// The CUDA engine, or why not.
#[cfg(feature = "cuda")]
fn new_cuda() -> Result<Box<dyn Engine>, EngineError> {
    Ok(Box::new(CudaEngine::new()?))
}

/// The CUDA engine, or why not.
#[cfg(not(feature = "cuda"))]
fn new_cuda() -> Result<Box<dyn Engine>, EngineError> {
    Err(EngineError::NotBuilt {
        engine: "cuda",
        feature: "cuda",
    })
}
