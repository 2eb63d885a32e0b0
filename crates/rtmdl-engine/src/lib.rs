//! Inference engines for rtmdl behind one small trait.
//!
//! * [`Engine`] loads a model ([`ModelSpec`]) into a [`Session`]; all parsing,
//!   shape fixing and optimisation happens at load, so [`Session::run`] only computes.
//! * Engines: [`TractEngine`] (pure Rust, always there), [`OrtEngine`]
//!   (onnxruntime, loaded at run time; see [`ort_engine`] for where it is looked for) and,
//!   with the cargo feature `cuda`, `CudaEngine` (tract-cuda on an NVIDIA GPU; the CUDA
//!   libraries are loaded at run time, see `cuda_engine`).
//! * [`select`] picks one from an [`EngineKind`] and says why.
//! * [`onnx_build`] writes ONNX files without Python; [`testmodels`] uses it to make
//!   tiny seeded models for tests and benchmarks.
//!
//! Tensors are [`ndarray::ArrayD<f32>`] (ndarray is re-exported, the same version tract uses).

#![warn(missing_docs)]

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use ndarray;
pub use ndarray::ArrayD;

#[cfg(feature = "cuda")]
pub mod cuda_engine;
mod error;
mod model;
pub mod onnx_build;
pub mod ort_engine;
pub mod testmodels;
pub mod tract_engine;

#[cfg(feature = "cuda")]
pub use cuda_engine::CudaEngine;
pub use error::EngineError;
pub use ort_engine::OrtEngine;
pub use tract_engine::TractEngine;

/// What to load and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The `.onnx` file.
    pub path: PathBuf,
    /// The concrete input shape. Required when the model's input has dynamic dims
    /// (e.g. a symbolic batch); otherwise it must agree with the declared shape.
    pub input_shape: Option<Vec<usize>>,
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
            outputs: None,
            threads: 1,
        }
    }

    /// Sets [`ModelSpec::input_shape`].
    pub fn with_input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
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

/// A loaded model, ready to run. One session is used by one thread at a time.
pub trait Session: Send {
    /// Runs one inference. `input` must have exactly [`Session::input_shape`];
    /// returns one array per output, in [`Session::output_names`] order.
    fn run(&mut self, input: &ArrayD<f32>) -> Result<Vec<ArrayD<f32>>, EngineError>;
    /// The fixed input shape.
    fn input_shape(&self) -> &[usize];
    /// The output shapes (observed on the warm-up run done at load).
    fn output_shapes(&self) -> &[Vec<usize>];
    /// The output tensor names (the graph's outputs, or the output cut).
    fn output_names(&self) -> &[String];
}

/// An inference engine.
pub trait Engine: Send + Sync {
    /// Short name: "tract", "ort" or "cuda".
    fn name(&self) -> &'static str;
    /// Engine and version, e.g. "tract 0.23.9", "onnxruntime 1.31.0" or
    /// "tract-cuda 0.23.9 on NVIDIA H100 80GB HBM3 (driver API 12.8)".
    fn version(&self) -> String;
    /// Reads, validates, optimises and warms up a model (one inference on zeros).
    fn load(&self, spec: &ModelSpec) -> Result<Box<dyn Session>, EngineError>;
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
