//! rtmdl's CPU sub-tasks and job input sources.
//!
//! A job is a chain of CPU pre-processing → ONNX inference → CPU
//! post-processing. The CPU steps are plain Rust functions registered here by
//! name ([`build`], listed by [`functions`]); their parameters come from the
//! config as a [`toml::Table`], checked once at config load into a
//! [`FunctionSpec`]. A job's input comes from a [`Source`] ([`source`],
//! listed by [`sources`]), likewise checked into a [`SourceSpec`]. Fault
//! injection (`fault`) is described by the core's [`FaultSpec`]
//! ([`fault_spec`], [`fault_body`]), so the simulator can inject the same
//! faults.
//!
//! # Data conventions
//!
//! Data flowing between the sub-tasks of one job is [`Data`], a list of
//! `f32` tensors:
//!
//! * an **image / frame** is `[H, W, 3]`, RGB, values `0..=255`;
//! * a **model input** is NCHW, `[1, 3, h, w]`;
//! * **detection boxes** are `[N, 6]` rows `(x1, y1, x2, y2, score, class)`
//!   in pixel coordinates of the frame (`x2`/`y2` exclusive edges, i.e. a box
//!   covering the whole frame is `(0, 0, W, H)`);
//! * a **classification result** is `[2]`: `(class index, confidence)`, with
//!   class `-1` when the confidence is below the stage's threshold;
//! * **decoded text** (CTC) is `[T]` of class indices;
//! * **audio** is mono `[N]` with samples in `-1..=1`.
//!
//! # Passing tensors along
//!
//! A stage reads its *primary* tensor from the front of the list (`input[0]`),
//! puts its result in front of the output and passes every further tensor
//! along unchanged, after its own outputs. This is how the frame reaches a
//! later stage: `resize_normalize` with `keep_frame = true` returns
//! `[model_input, frame]`; the inference step is expected to replace the
//! model's inputs by its outputs and keep the trailing tensors, giving
//! `[grid, frame]`; `decode_boxes` returns `[boxes, frame]` (boxes already
//! scaled to the frame), `nms` `[kept, frame]`, and `crop_resize` finds the
//! frame and the boxes by their shapes to build the next model's input.
//! Moving a tensor along costs no copy.
//!
//! # Errors
//!
//! Unknown names, bad parameters and wrong inputs are [`OpError`]s, never
//! panics. Parameters are checked once, when a stage is built; unknown
//! parameters are rejected.
//!
//! # Performance
//!
//! Stages run on the real-time hot path: they keep their scratch buffers
//! (resize tables, FFT plans and buffers, filter banks, index lists) between
//! calls; each call allocates only the tensors it returns. Sources that read
//! files load them all at construction.

use std::path::PathBuf;

pub use ndarray;
use rtmdl_core::FaultSpec;

mod audio;
mod classify;
mod imgops;
mod misc;
mod ocr;
mod params;
mod sources;
mod vision;
mod yolov8;

/// The tensors flowing between the sub-tasks of one job (see the crate doc).
pub type Data = Vec<ndarray::ArrayD<f32>>;

/// Everything that can go wrong building or running a stage or a source.
#[derive(thiserror::Error, Debug)]
pub enum OpError {
    /// No CPU function of that name is registered.
    #[error("unknown CPU function `{name}`{}; known functions: {}", did_you_mean(suggestion), known.join(", "))]
    UnknownFunction {
        name: String,
        known: Vec<String>,
        /// The nearest known name, if one is close.
        suggestion: Option<String>,
    },
    /// No source of that kind exists.
    #[error("unknown source kind `{kind}`{}; known kinds: {}", did_you_mean(suggestion), known.join(", "))]
    UnknownSource {
        kind: String,
        known: Vec<String>,
        suggestion: Option<String>,
    },
    /// A parameter is missing, unknown, of the wrong type or out of range.
    #[error("`{function}`: bad parameter `{param}`: expected {expected}")]
    BadParam {
        function: String,
        param: String,
        expected: String,
    },
    /// The data given to a stage has the wrong number or shape of tensors.
    #[error("`{function}`: bad input: {reason}")]
    BadInput { function: String, reason: String },
    /// A file or folder could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could be read but not decoded as an image.
    #[error("cannot decode image `{}`: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// One CPU sub-task of a job: consumes the data of the previous step and
/// returns the data for the next.
pub trait CpuStage: Send {
    /// The registered function name.
    fn name(&self) -> &str;
    /// Runs the sub-task once.
    fn run(&mut self, input: Data) -> Result<Data, OpError>;
}

/// A job's input: called once per release with the release's sequence number.
pub trait Source: Send {
    /// The data of release `seq`. Generators are deterministic per
    /// `(seed, seq)`; file sources cycle through their files by `seq`.
    fn next(&mut self, seq: u64) -> Result<Data, OpError>;
    /// What frame `seq` shows, for sources that know (a `route`); `None`
    /// when nothing the task answers about is in view.
    fn truth(&self, _seq: u64) -> Option<Truth> {
        None
    }
    /// Whether the source knows the ground truth of its frames, so a run can
    /// judge the answers.
    fn judged(&self) -> bool {
        false
    }
}

/// The class a job's result names: a classification result (`[2]`: class,
/// confidence; class `-1` when below the threshold) gives its class, any
/// other first tensor the index of its largest element; `None` for no
/// tensor or an empty one.
pub fn answer(out: &Data) -> Option<i64> {
    let t = out.first()?;
    if t.ndim() == 1 && t.len() == 2 {
        return Some(t[[0]].round() as i64);
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in t.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as i64)
}

/// The ground truth of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truth {
    /// The class the job's answer should name.
    pub class: u32,
    /// Which appearance the frame belongs to (one light phase, one sign in
    /// view), numbered over the whole run.
    pub episode: u64,
    /// The class's name (`"red"`, `"stop"`, …).
    pub label: &'static str,
}

type Builder = fn(&toml::Table) -> Result<Box<dyn CpuStage>, OpError>;

const REGISTRY: &[(&str, &str, Builder)] = &[
    (
        "resize_normalize",
        "frame [H,W,3] -> bilinear resize -> (x-mean)/std -> NCHW [1,3,height,width] (+ the frame if keep_frame); params: width, height, mean=[0,0,0], std=[255,255,255] (R,G,B order), keep_frame=false, bgr=false (planes in B,G,R order)",
        vision::ResizeNormalize::build,
    ),
    (
        "crop_resize",
        "finds a frame [H,W,3] and boxes [N,6] in the input, crops the top-scoring box (whole frame if none), resizes + normalises to NCHW [1,3,height,width]; params: width, height, mean=[0,0,0], std=[255,255,255], margin=0.0, min_score=0.0, keep_frame=false, keep_boxes=false, bgr=false, rotate_class (takes a leading (class, confidence) [2] and rotates the crop 180 degrees when class equals it)",
        vision::CropResize::build,
    ),
    (
        "softmax_top1",
        "logits/probs [1,C] -> [2] (class, confidence), class -1 if confidence < threshold; params: threshold=0.0, apply_softmax=true",
        classify::SoftmaxTop1::build,
    ),
    (
        "nms",
        "boxes [N,6] -> kept boxes [M,6], per-class greedy NMS, highest score first; params: iou_threshold=0.45, score_threshold=0.25, max_boxes=100, class_agnostic=false",
        vision::Nms::build,
    ),
    (
        "decode_boxes",
        "YOLO-like grid [1,A*(5+C),Gh,Gw] -> boxes [N,6] (scaled to a carried frame); params: anchors=[[w,h],...], classes, stride, score_threshold=0.25, scale_to_frame=true",
        vision::DecodeBoxes::build,
    ),
    (
        "decode_yolov8",
        "anchor-free YOLOv8 / YOLO11 head [1,4+C,N] (cx,cy,w,h in model-input pixels, then C class scores) -> boxes [M,6] of the candidates whose best class score reaches score_threshold (scaled to a carried frame); params: width, height (the model input's), classes (checked when given), score_threshold=0.25, scale_to_frame=true, layout=\"channels_first\" | \"channels_last\" ([1,N,4+C])",
        yolov8::DecodeYolov8::build,
    ),
    (
        "db_boxes",
        "DB text-detection map [1,1,H,W] -> boxes [N,6] (x1,y1,x2,y2,score,0) of the regions above thresh, unclipped, scaled to a carried frame; params: thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, min_size=3, max_candidates=1000, scale_to_frame=true",
        ocr::DbBoxes::build,
    ),
    (
        "ctc_greedy_decode",
        "CTC logits [1,T,C] -> [L] class indices (argmax, repeats collapsed, blanks removed); params: blank=0",
        classify::CtcGreedy::build,
    ),
    (
        "mfcc",
        "audio [N] -> MFCC [1,1,n_mfcc,frames], frames = 1 + N/hop; params: sample_rate=16000, n_mfcc=13, n_fft=512, hop=160, n_mels=40, f_min=0, f_max=sample_rate/2",
        audio::Mfcc::build,
    ),
    (
        "reshape",
        "first tensor -> same data, new shape (one dim may be -1), e.g. audio [N] -> [1, N]; params: shape",
        misc::Reshape::build,
    ),
    (
        "identity",
        "passes the data through unchanged; no params",
        misc::Identity::build,
    ),
    (
        "fault",
        "fault injection for robustness tests: passes the data through, but after `skip` clean calls every `every`-th call (at most `times`) fails; params: mode = \"error\" | \"panic\" | \"hang\", skip=0, every=1, times (unlimited), hang_ms=3600000",
        misc::Fault::build,
    ),
    (
        "busy",
        "spins the CPU for `ms` milliseconds (monotonic clock), then passes the data through; params: ms",
        misc::Busy::build,
    ),
];

const FUNCTIONS: &[(&str, &str)] = &{
    let mut out = [("", ""); REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        out[i] = (REGISTRY[i].0, REGISTRY[i].1);
        i += 1;
    }
    out
};

/// The registered CPU functions: `(name, one-line description incl. params)`.
pub fn functions() -> &'static [(&'static str, &'static str)] {
    FUNCTIONS
}

/// Builds the CPU function `function` with its parameters from the config.
pub fn build(function: &str, params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
    match REGISTRY.iter().find(|(name, _, _)| *name == function) {
        Some((_, _, builder)) => builder(params),
        None => {
            let known: Vec<&str> = REGISTRY.iter().map(|r| r.0).collect();
            Err(OpError::UnknownFunction {
                name: function.to_string(),
                suggestion: params::nearest(function, &known),
                known: known.into_iter().map(String::from).collect(),
            })
        }
    }
}

/// The shape of the first tensor `function` hands on, where its parameters
/// fix it (`resize_normalize` and `crop_resize`: the model input `[1, 3,
/// height, width]`); `None` when it depends on the input or the parameters
/// are bad.
pub fn output_shape(function: &str, params: &toml::Table) -> Option<Vec<usize>> {
    match function {
        "resize_normalize" => vision::ResizeNormalize::output_shape(params),
        "crop_resize" => vision::CropResize::output_shape(params),
        _ => None,
    }
}

/// Parses the `fault` function's parameters (also an inference stage's
/// `params.fault`): `mode = "error" | "panic" | "hang"`, `skip`, `every`,
/// `times`, `hang_ms`.
pub fn fault_spec(params: &toml::Table) -> Result<FaultSpec, OpError> {
    misc::fault_spec(params)
}

/// A `fault` stage for `spec`: passes the data through, and errors, panics
/// or sleeps on the calls the spec hits (calls counted per body).
pub fn fault_body(spec: &FaultSpec) -> Box<dyn CpuStage> {
    misc::Fault::from_spec(spec)
}

/// A registered CPU function with parameters that build: checked once (at
/// config load), then [`FunctionSpec::build`] makes each worker its own
/// stage.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    name: String,
    params: toml::Table,
}

impl FunctionSpec {
    /// Checks the name and the parameters by building the stage once.
    pub fn new(name: &str, params: toml::Table) -> Result<Self, OpError> {
        build(name, &params)?;
        Ok(FunctionSpec {
            name: name.to_string(),
            params,
        })
    }

    /// The registered function name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh stage (its own scratch buffers and call counters).
    pub fn build(&self) -> Result<Box<dyn CpuStage>, OpError> {
        build(&self.name, &self.params)
    }

    /// See [`output_shape`].
    pub fn output_shape(&self) -> Option<Vec<usize>> {
        output_shape(&self.name, &self.params)
    }
}

/// A job input source whose kind and parameters are checked (without reading
/// any file); [`SourceSpec::build`] makes the source, loading files then.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    params: toml::Table,
}

impl SourceSpec {
    /// Checks `kind = "..."` and the kind's parameters (see [`sources`]).
    pub fn new(params: toml::Table) -> Result<Self, OpError> {
        sources::check(&params)?;
        Ok(SourceSpec { params })
    }

    /// The source kind.
    pub fn kind(&self) -> &str {
        self.params
            .get("kind")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
    }

    /// The shape of the first tensor every job of this source carries,
    /// where the parameters alone fix it (a `tensor` source's `shape`);
    /// `None` otherwise. Checked against the first stage's model before the
    /// first release.
    pub fn output_shape(&self) -> Option<Vec<usize>> {
        if self.kind() != "tensor" {
            return None;
        }
        let dims = self.params.get("shape")?.as_array()?;
        dims.iter()
            .map(|d| d.as_integer().and_then(|d| usize::try_from(d).ok()))
            .collect()
    }

    /// Builds the source (a `folder` source reads its images here).
    pub fn build(&self) -> Result<Box<dyn Source>, OpError> {
        sources::build(&self.params)
    }
}

/// The source kinds: `(kind, one-line description incl. params)`.
pub fn sources() -> &'static [(&'static str, &'static str)] {
    sources::KINDS
}

/// Builds a job's input source; `params` holds `kind = "..."` and the
/// kind's parameters (see [`sources`]).
pub fn source(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
    sources::build(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_function_lists_known_and_suggests() {
        let err = build("resize_normalise", &toml::Table::new())
            .err()
            .unwrap();
        match &err {
            OpError::UnknownFunction {
                name,
                known,
                suggestion,
            } => {
                assert_eq!(name, "resize_normalise");
                assert_eq!(known.len(), REGISTRY.len());
                assert_eq!(suggestion.as_deref(), Some("resize_normalize"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("did you mean `resize_normalize`"), "{msg}");
        assert!(msg.contains("ctc_greedy_decode"), "{msg}");
        let err = build("zzzzzzzzzzzzzzzz", &toml::Table::new())
            .err()
            .unwrap();
        assert!(matches!(
            err,
            OpError::UnknownFunction {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn functions_lists_every_registered_name_once() {
        let names: Vec<_> = functions().iter().map(|f| f.0).collect();
        assert_eq!(names.len(), REGISTRY.len());
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n));
            assert!(!functions()[i].1.is_empty());
        }
    }

    #[test]
    fn every_function_builds_with_minimal_params() {
        let minimal = |name: &str| -> toml::Table {
            let s = match name {
                "resize_normalize" | "crop_resize" => "width = 4\nheight = 4",
                "decode_boxes" => "anchors = [[10, 10]]\nclasses = 2\nstride = 8",
                "decode_yolov8" => "width = 4\nheight = 4",
                "busy" => "ms = 0",
                "fault" => "mode = \"error\"",
                "reshape" => "shape = [-1]",
                _ => "",
            };
            s.parse().unwrap()
        };
        for (name, _) in functions() {
            let stage = build(name, &minimal(name)).unwrap();
            assert_eq!(stage.name(), *name);
        }
    }

    #[test]
    fn stages_and_sources_are_send() {
        fn is_send<T: Send>() {}
        is_send::<Box<dyn CpuStage>>();
        is_send::<Box<dyn Source>>();
    }
}
