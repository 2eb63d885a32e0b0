//! What the real runtime runs for each stage and where each task's jobs come
//! from, typed and checked at load: a bad parameter is a [`ConfigError`]
//! with the line and column of the value at fault, like every other config
//! error, and the runtime never reads TOML.
//!
//! # Inference stage parameters
//!
//! `params` of a stage `on = "gpu"` (all optional):
//!
//! * `file = "m.onnx"`: the model, instead of the variant's `file` (relative
//!   to the config);
//! * `input_shape = [1, 3, 320, 320]`: the shape of the model's first input
//!   that `inputs` does not fix to a constant (normally the one the job's first
//!   tensor goes into), fixing its dynamic dims;
//! * `outputs = ["name", ...]`: an output cut;
//! * `inputs = { NAME = VALUE, ... }`: the model's other inputs. `VALUE` is a
//!   number (every element; converted to the input's type, e.g. `sr = 16000`
//!   for an int64 scalar), `"zeros"`, or a table `{ fill = 0.0, shape = [2, 1,
//!   128] }` (`shape` for inputs with dynamic dims). An input named here is a
//!   constant fixed at load, unless `feedback` feeds it, in which case this is
//!   its initial value;
//! * `feedback = { OUTPUT = "INPUT", ... }`: recurrent state: the input gets
//!   the output of the job before (Silero VAD: `feedback = { stateN = "state"
//!   }`). The state is one per task and stage, shared by the GPU lanes;
//!   fed-back outputs are not passed on to the next stage;
//! * `threads = 4`: intra-op threads of this model's sessions, instead of
//!   the run's `--threads`;
//! * `fault = { mode = "error" | "panic" | "hang", skip, every, times, hang_ms
//!   }`: fault injection into the inference itself (the `fault` CPU
//!   function's parameters, parsed by `rtmdl_ops::fault_spec`), to test
//!   failure isolation; also set on the core's `Stage::fault` so the simulator
//!   injects the same faults.
//!
//! The model inputs that `inputs` does not name take the job's first tensors,
//! in the model's input order (each must be f32); the tensors after them
//! travel on, after the model's outputs.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rtmdl_core::{FaultSpec, Resource};
use rtmdl_ops::{FunctionSpec, OpError, SourceSpec};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{ConfigError, Src, with_suggestion};

/// What the real runtime runs for one stage.
#[derive(Clone, Debug, PartialEq)]
pub enum StageBody {
    /// A CPU stage naming a registered function (parameters checked).
    Function(FunctionSpec),
    /// A GPU stage: an inference of the variant's model (or `params.file`).
    /// Without a model file it runs emulated, like [`StageBody::Emulated`].
    Inference(InferenceParams),
    /// A CPU stage naming no function: busy work for its profiled time.
    Emulated,
}

/// The parameters of an inference stage (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferenceParams {
    /// The model instead of the variant's file, resolved against the
    /// config's folder.
    pub file: Option<PathBuf>,
    pub input_shape: Option<Vec<usize>>,
    pub outputs: Option<Vec<String>>,
    /// Constant or initial values of inputs, by input name.
    pub inputs: BTreeMap<String, InputInit>,
    /// Recurrent links: output name → the input it feeds (each input fed by
    /// at most one output).
    pub feedback: BTreeMap<String, String>,
    /// Faults injected before each inference.
    pub fault: Option<FaultSpec>,
    /// The engine this stage runs on instead of the run's (`engine = "ort"`
    /// on the stage).
    pub engine: Option<StageEngine>,
    /// Intra-op threads of this model's sessions instead of the run's
    /// `--threads`.
    pub threads: Option<usize>,
}

/// The engine an inference stage names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageEngine {
    Tract,
    Ort,
    Cuda,
}

impl StageEngine {
    /// The name as written in a config.
    pub fn as_str(self) -> &'static str {
        match self {
            StageEngine::Tract => "tract",
            StageEngine::Ort => "ort",
            StageEngine::Cuda => "cuda",
        }
    }
}

/// The value of an entry of `inputs`: every element `fill`, with `shape`
/// for an input with dynamic dims.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputInit {
    pub fill: f64,
    pub shape: Option<Vec<usize>>,
}

/// `params` of an inference stage as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInference {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    input_shape: Option<Dims>,
    #[serde(default)]
    outputs: Option<Vec<String>>,
    #[serde(default)]
    inputs: BTreeMap<String, InputInit>,
    #[serde(default)]
    feedback: BTreeMap<String, String>,
    #[serde(default)]
    fault: Option<toml::Table>,
    #[serde(default)]
    threads: Option<i64>,
}

/// A list of positive integers (a tensor shape).
struct Dims(Vec<usize>);

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dims;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of positive integers like [1, 3, 320, 320]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
                let mut dims = Vec::new();
                while let Some(d) = seq.next_element::<i64>()? {
                    match usize::try_from(d) {
                        Ok(d) if d > 0 => dims.push(d),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "expected a list of positive integers like [1, 3, 320, 320], got the dim {d}"
                            )));
                        }
                    }
                }
                Ok(Dims(dims))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for InputInit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FillShape {
            #[serde(default)]
            fill: f64,
            #[serde(default)]
            shape: Option<Dims>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InputInit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"zeros\" or { fill = number, shape = [..] }")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<InputInit, E> {
                Ok(InputInit {
                    fill: n as f64,
                    shape: None,
                })
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<InputInit, E> {
                Ok(InputInit {
                    fill: n,
                    shape: None,
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<InputInit, E> {
                match s {
                    "zeros" => Ok(InputInit::default()),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InputInit, A::Error> {
                let p = FillShape::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(InputInit {
                    fill: p.fill,
                    shape: p.shape.map(|d| d.0),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One step of a path into the document: a key or an array index.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the document, printed like `models.signs.stages[2].params`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Field(Vec<Seg>);

impl Field {
    pub(crate) fn key(&self, k: &str) -> Field {
        let mut f = self.clone();
        f.0.push(Seg::Key(k.to_string()));
        f
    }

    pub(crate) fn index(&self, i: usize) -> Field {
        let mut f = self.clone();
        f.0.push(Seg::Index(i));
        f
    }

    /// Appends a parameter path as ops and serde name it (`mean`,
    /// `anchors[1]`, `inputs.sr.fill`); `?` and `.` (unknown, the root) add
    /// nothing.
    fn join(&self, path: &str) -> Field {
        let mut f = self.clone();
        for part in path.split('.').filter(|p| !p.is_empty() && *p != "?") {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                f.0.push(Seg::Key(key.to_string()));
            }
            for idx in pieces {
                match idx.trim_end_matches(']').parse() {
                    Ok(i) => f.0.push(Seg::Index(i)),
                    Err(_) => return f,
                }
            }
        }
        f
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where `field` is written in `text`: the span of its key (`at_key`) or
/// value, or of the deepest part of the path that is there (a missing
/// parameter points at its table).
fn locate(text: &str, field: &Field, at_key: bool) -> Range<usize> {
    let Ok(doc) = DeTable::parse(text) else {
        return 0..0;
    };
    let root = Spanned::new(doc.span(), DeValue::Table(doc.into_inner()));
    let mut cur = &root;
    let mut key_span = None;
    for seg in &field.0 {
        let next = match (seg, cur.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => t
                .iter()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(key, v)| (Some(key.span()), v)),
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i).map(|v| (None, v)),
            _ => None,
        };
        let Some((key, value)) = next else {
            return cur.span();
        };
        key_span = key;
        cur = value;
    }
    match key_span {
        Some(k) if at_key => k,
        _ => cur.span(),
    }
}

impl Src<'_> {
    /// An error about `field`, at its value (or its key).
    fn at(&self, field: &Field, at_key: bool, message: impl Into<String>) -> ConfigError {
        self.err(locate(self.text, field, at_key), field.to_string(), message)
    }

    /// An error of `rtmdl-ops` about the parameters at `params`.
    fn op_err(&self, params: &Field, e: OpError) -> ConfigError {
        match &e {
            OpError::BadParam { param, .. } => self.at(&params.join(param), false, e.to_string()),
            _ => self.at(params, false, e.to_string()),
        }
    }
}

/// The body of stage `field` (`models.NAME.stages[i]`), and the faults it
/// injects.
/// What a stage's body is made of, as written: on the stage, or a
/// variant's own `params.STAGE` with the stage's other fields.
pub(crate) struct RawBody {
    pub on: Resource,
    pub function: Option<Spanned<String>>,
    pub params: Option<Spanned<toml::Table>>,
    pub engine: Option<Spanned<String>>,
}

/// A stage's body; `field` locates the stage, `params_at` its parameters.
pub(crate) fn stage_body(
    src: &Src,
    field: &Field,
    params_at: &Field,
    raw: RawBody,
    config: &Path,
) -> Result<(StageBody, Option<FaultSpec>), ConfigError> {
    let RawBody {
        on,
        function,
        params,
        engine,
    } = raw;
    let params = params.map(Spanned::into_inner).unwrap_or_default();
    let engine = match engine {
        None => None,
        Some(_) if on == Resource::Cpu => {
            return Err(src.at(
                &field.key("engine"),
                true,
                "only an inference stage (on = \"gpu\") runs on an engine; a CPU stage runs its function",
            ));
        }
        Some(e) => Some(match e.get_ref().as_str() {
            "tract" => StageEngine::Tract,
            "ort" => StageEngine::Ort,
            "cuda" => StageEngine::Cuda,
            other => {
                return Err(src.err(
                    e.span(),
                    field.key("engine").to_string(),
                    format!("expected \"tract\", \"ort\" or \"cuda\", got {other:?}"),
                ));
            }
        }),
    };
    match (on, function) {
        (Resource::Gpu, _) => {
            let mut p = inference(src, params_at, params, config)?;
            p.engine = engine;
            let fault = p.fault;
            Ok((StageBody::Inference(p), fault))
        }
        (Resource::Cpu, None) => Ok((StageBody::Emulated, None)),
        (Resource::Cpu, Some(name)) => {
            let name = name.into_inner();
            let fault = match name.as_str() {
                "fault" => {
                    Some(rtmdl_ops::fault_spec(&params).map_err(|e| src.op_err(params_at, e))?)
                }
                _ => None,
            };
            let f = FunctionSpec::new(&name, params).map_err(|e| match e {
                OpError::UnknownFunction { .. } => {
                    src.at(&field.key("function"), false, e.to_string())
                }
                e => src.op_err(params_at, e),
            })?;
            Ok((StageBody::Function(f), fault))
        }
    }
}

/// Deserialises and checks the parameters of an inference stage.
fn inference(
    src: &Src,
    field: &Field,
    params: toml::Table,
    config: &Path,
) -> Result<InferenceParams, ConfigError> {
    let raw: RawInference =
        serde_path_to_error::deserialize(toml::Value::Table(params)).map_err(|e| {
            // toml adds "in `inputs.sr`" lines: the field says where already.
            let inner = e.inner().to_string();
            let lines: Vec<&str> = inner.lines().filter(|l| !l.starts_with("in `")).collect();
            let message = with_suggestion(lines.join(" ").trim());
            // An unknown key (the path ends with it) is the key's fault.
            let unknown = message.starts_with("unknown field `");
            src.at(&field.join(&e.path().to_string()), unknown, message)
        })?;
    if raw.outputs.as_ref().is_some_and(Vec::is_empty) {
        return Err(src.at(
            &field.key("outputs"),
            false,
            "expected a non-empty list of output names",
        ));
    }
    let mut fed = BTreeMap::new();
    for (output, input) in &raw.feedback {
        if let Some(other) = fed.insert(input, output) {
            return Err(src.at(
                &field.key("feedback").key(output),
                false,
                format!("input {input:?} is already fed by output {other:?}"),
            ));
        }
    }
    let fault = match &raw.fault {
        Some(t) => Some(rtmdl_ops::fault_spec(t).map_err(|e| src.op_err(&field.key("fault"), e))?),
        None => None,
    };
    let threads = match raw.threads {
        None => None,
        Some(n @ 1..=256) => Some(n as usize),
        Some(n) => {
            return Err(src.at(
                &field.key("threads"),
                false,
                format!("expected between 1 and 256 intra-op threads, got {n}"),
            ));
        }
    };
    Ok(InferenceParams {
        file: raw.file.map(|f| resolve(config, &f)),
        input_shape: raw.input_shape.map(|d| d.0),
        outputs: raw.outputs,
        inputs: raw.inputs,
        feedback: raw.feedback,
        fault,
        engine: None,
        threads,
    })
}

/// The source of task `field` (`tasks[i]`), its `path` resolved against the
/// config's folder, a `route` given the task's `period` unless it names its
/// own; checked without reading any file.
pub(crate) fn source(
    src: &Src,
    field: &Field,
    params: Spanned<toml::Table>,
    config: &Path,
    period: rtmdl_core::Time,
) -> Result<SourceSpec, ConfigError> {
    let mut params = params.into_inner();
    if params.get("kind").and_then(toml::Value::as_str) == Some("route")
        && !params.contains_key("period")
    {
        params.insert("period".into(), toml::Value::String(format!("{period} ns")));
    }
    if let Some(toml::Value::String(p)) = params.get("path") {
        let abs = resolve(config, p).display().to_string();
        params.insert("path".into(), toml::Value::String(abs));
    }
    SourceSpec::new(params).map_err(|e| {
        let field = field.key("source");
        match e {
            OpError::UnknownSource { .. } => src.at(&field.key("kind"), false, e.to_string()),
            e => src.op_err(&field, e),
        }
    })
}

/// `p` relative to the folder of the config at `config` (absolute stays).
pub(crate) fn resolve(config: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}
