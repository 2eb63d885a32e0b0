//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding an engine, loading a model or running it.
///
/// Every variant that concerns a model names its path; every variant that concerns
/// onnxruntime names the library path(s) involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model file does not exist.
    #[error("cannot load model {}: file not found", path.display())]
    ModelNotFound {
        /// The path that was given.
        path: PathBuf,
    },

    /// The model file exists but could not be read.
    #[error("cannot load model {}: {source}", path.display())]
    ModelIo {
        /// The path that was given.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a valid ONNX protobuf (garbage, truncated, or a different format).
    #[error("cannot load model {}: not a valid ONNX protobuf: {reason}", path.display())]
    InvalidModel {
        /// The path that was given.
        path: PathBuf,
        /// What the decoder complained about.
        reason: String,
    },

    /// The file is valid ONNX but uses something this crate does not support
    /// (an input that is neither f32 nor i64, dynamic dims that the spec did not fix, ...).
    #[error("cannot load model {}: {reason}", path.display())]
    UnsupportedModel {
        /// The path that was given.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },

    /// The [`ModelSpec`](crate::ModelSpec) itself is inconsistent (an empty output list, a zero dim, ...).
    #[error("invalid model spec for {}: {reason}", path.display())]
    InvalidSpec {
        /// The model path of the spec.
        path: PathBuf,
        /// What is wrong with the spec.
        reason: String,
    },

    /// An output cut names a tensor that no node of the model produces.
    #[error("cannot load model {}: output cut names unknown tensor {name:?} (the model's node outputs include: {known})", path.display())]
    UnknownOutput {
        /// The path that was given.
        path: PathBuf,
        /// The unknown tensor name.
        name: String,
        /// A few of the tensor names that do exist, comma separated.
        known: String,
    },

    /// An input shape does not match what the model (or the session) expects.
    /// `None` in `expected` stands for a dynamic dim.
    #[error("input shape mismatch for model {}, input {input:?}: expected {}, got {got:?}", path.display(), crate::error::fmt_dims(expected))]
    ShapeMismatch {
        /// The model path.
        path: PathBuf,
        /// The input name.
        input: String,
        /// The expected shape (`None` = any size).
        expected: Vec<Option<usize>>,
        /// The shape that was given.
        got: Vec<usize>,
    },

    /// A spec or a wrapper names a model input that does not exist (or lists one twice).
    #[error("model {}: {what} names input {name:?}, but the model's inputs are: {known}", path.display())]
    UnknownInput {
        /// The model path.
        path: PathBuf,
        /// Where the name came from (e.g. "a constant", "an input shape", "feedback").
        what: String,
        /// The unknown name.
        name: String,
        /// The model's input names, comma separated.
        known: String,
    },

    /// The tensors given to a run do not match the session's inputs in number or type.
    #[error("wrong inputs for model {}: {reason}", path.display())]
    InputMismatch {
        /// The model path.
        path: PathBuf,
        /// What is wrong, naming the inputs.
        reason: String,
    },

    /// The engine could not turn the model into a runnable session.
    #[error("{engine} cannot prepare model {}: {reason}", path.display())]
    Prepare {
        /// Engine name ("tract", "ort").
        engine: &'static str,
        /// The model path.
        path: PathBuf,
        /// The engine's message.
        reason: String,
    },

    /// An inference call failed.
    #[error("{engine} inference failed on model {}: {reason}", path.display())]
    Run {
        /// Engine name ("tract", "ort").
        engine: &'static str,
        /// The model path.
        path: PathBuf,
        /// The engine's message.
        reason: String,
    },

    /// No onnxruntime shared library was found.
    #[error("onnxruntime not found: {reason}; looked in: {}", searched.join(", "))]
    OrtNotFound {
        /// Why the search failed.
        reason: String,
        /// Every place that was looked at (paths and lookup methods).
        searched: Vec<String>,
    },

    /// An onnxruntime library was found but is too old (or unreadable as one).
    #[error("onnxruntime at {} has version {found}, but version {required} is required", path.display())]
    OrtVersion {
        /// The library path.
        path: PathBuf,
        /// The version the library reports.
        found: String,
        /// What is required.
        required: String,
    },

    /// An onnxruntime library was found but could not be loaded or initialised.
    #[error("cannot initialise onnxruntime from {}: {reason}", path.display())]
    OrtInit {
        /// The library path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// An engine name that [`EngineKind`](crate::EngineKind) does not know.
    #[error("unknown engine {0:?}; expected one of: auto, tract, ort, cuda")]
    UnknownEngine(String),

    /// An engine that this build leaves out (its cargo feature is off).
    #[error(
        "engine {engine:?} is not available: built without the `{feature}` feature; rebuild with --features {feature}"
    )]
    NotBuilt {
        /// Engine name ("cuda").
        engine: &'static str,
        /// The cargo feature of `rtmdl-engine` that brings it in.
        feature: &'static str,
    },

    /// The CUDA engine cannot run here: no NVIDIA driver (`libcuda.so.1`), no usable GPU,
    /// a missing CUDA library (cudart, NVRTC, cuBLAS, cuDNN), or a failed initialisation.
    #[error("CUDA engine unavailable: {reason}; looked for: {}", searched.join(", "))]
    CudaUnavailable {
        /// What failed.
        reason: String,
        /// Every library name, path or check that was tried, with its outcome.
        searched: Vec<String>,
    },

    /// A CUDA stream operation of this crate failed (e.g. setting a stream priority).
    #[error("CUDA stream error: {0}")]
    CudaStream(String),
}

/// Formats dims as `[1, 3, ?, 32]`.
pub(crate) fn fmt_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}
