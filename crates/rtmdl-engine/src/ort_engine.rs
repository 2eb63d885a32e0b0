//! The onnxruntime engine, through the `ort` crate with a run-time loaded shared library.
//!
//! The library is looked for, in order:
//! 1. `ORT_DYLIB_PATH` (when set and not empty, it is the only place looked at);
//! 2. the `capi/` folder of the `onnxruntime` Python package, found through
//!    `python3`/`python` (their `site-packages` folders first, then by importing
//!    `onnxruntime`);
//! 3. a few system library folders.
//!
//! The library is loaded once per process; its version is checked before `ort` touches
//! it, and `ort`'s initialisation runs under `catch_unwind`, so a missing, foreign or
//! too old library is an [`EngineError`], never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use ort::session::builder::PrepackedWeights;
use ort::session::{Session as OrtSession, SessionInputValue};
use ort::value::TensorRef;
use prost::Message;
use tract_onnx::pb;

use crate::DType;
use crate::model::{self, PreparedModel, Spare};
use crate::{
    Engine, EngineError, EngineKind, InputInfo, LoadedModel, ModelSpec, Session, Tensor, TensorView,
};

/// The onnxruntime release this crate is developed and tested against (also in the
/// crate's `ORT_VERSION` file, which CI uses for `pip install onnxruntime==...`).
pub const PINNED_ORT_VERSION: &str = "1.31.0";

/// The oldest onnxruntime minor version (`1.x`) the `ort` bindings accept.
pub const MIN_ORT_MINOR: u32 = ort::MINOR_VERSION;

/// Where an onnxruntime shared library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtDylib {
    /// Path of the shared library.
    pub path: PathBuf,
    /// How it was found (e.g. "ORT_DYLIB_PATH", "python3 site-packages").
    pub found_via: String,
}

/// Looks for the onnxruntime shared library (see the module docs for the order).
///
/// Does not load it. The error lists every place that was looked at.
pub fn find_dylib() -> Result<OrtDylib, EngineError> {
    find_dylib_with(std::env::var_os("ORT_DYLIB_PATH").as_deref())
}

fn find_dylib_with(env_path: Option<&std::ffi::OsStr>) -> Result<OrtDylib, EngineError> {
    if let Some(p) = env_path.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(OrtDylib {
                path,
                found_via: "ORT_DYLIB_PATH".into(),
            })
        } else {
            Err(EngineError::OrtNotFound {
                reason: format!("ORT_DYLIB_PATH={} is not a file", path.display()),
                searched: vec![format!("ORT_DYLIB_PATH={}", path.display())],
            })
        };
    }
    let mut searched = vec!["ORT_DYLIB_PATH (unset)".to_string()];
    for python in ["python3", "python"] {
        // Cheap first: list site-packages without importing onnxruntime.
        match python_lines(
            python,
            "import site, sys\n\
             dirs = []\n\
             try: dirs += site.getsitepackages()\n\
             except Exception: pass\n\
             try: dirs.append(site.getusersitepackages())\n\
             except Exception: pass\n\
             print('\\n'.join(dirs + sys.path))",
        ) {
            Ok(dirs) => {
                for dir in dirs {
                    let capi = Path::new(&dir).join("onnxruntime").join("capi");
                    if !capi.is_dir() {
                        continue;
                    }
                    searched.push(capi.display().to_string());
                    if let Some(path) = lib_in_dir(&capi) {
                        return Ok(OrtDylib {
                            path,
                            found_via: format!("{python} site-packages"),
                        });
                    }
                }
                searched.push(format!("{python} site-packages (no onnxruntime/capi)"));
            }
            Err(e) => {
                searched.push(format!("{python} ({e})"));
                continue;
            }
        }
        // Then ask the package itself (covers editable or unusual installs).
        match python_lines(
            python,
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ) {
            Ok(lines) => {
                if let Some(dir) = lines.first() {
                    let capi = Path::new(dir).join("capi");
                    searched.push(capi.display().to_string());
                    if let Some(path) = lib_in_dir(&capi) {
                        return Ok(OrtDylib {
                            path,
                            found_via: format!("{python} -c 'import onnxruntime'"),
                        });
                    }
                }
            }
            Err(_) => searched.push(format!("{python} -c 'import onnxruntime' (failed)")),
        }
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        let dir = Path::new(dir);
        if dir.is_dir() {
            searched.push(dir.display().to_string());
            if let Some(path) = lib_in_dir(dir) {
                return Ok(OrtDylib {
                    path,
                    found_via: "system library folder".into(),
                });
            }
        }
    }
    Err(EngineError::OrtNotFound {
        reason: format!(
            "no {} library; set ORT_DYLIB_PATH or `pip install onnxruntime=={PINNED_ORT_VERSION}`",
            lib_pattern()
        ),
        searched,
    })
}

/// Runs `python -c code` and returns its non-empty stdout lines.
fn python_lines(python: &str, code: &str) -> Result<Vec<String>, String> {
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("not runnable: {e}"))?;
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn lib_pattern() -> &'static str {
    if cfg!(target_os = "windows") {
        "onnxruntime.dll"
    } else if cfg!(target_os = "macos") {
        "libonnxruntime*.dylib"
    } else {
        "libonnxruntime.so*"
    }
}

/// The onnxruntime library in `dir`, if any (the plain name first, then versioned ones,
/// highest first; never `libonnxruntime_providers_*`).
fn lib_in_dir(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            if cfg!(target_os = "windows") {
                name.eq_ignore_ascii_case("onnxruntime.dll")
            } else if cfg!(target_os = "macos") {
                name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
            } else {
                name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
            }
        })
        .collect();
    // Shortest name (unversioned) first, then the last in name order.
    found.sort_by(|a, b| {
        (a.as_os_str().len(), b.as_os_str()).cmp(&(b.as_os_str().len(), a.as_os_str()))
    });
    found.into_iter().next()
}

/// Reads `OrtGetApiBase()->GetVersionString()` of a library without involving `ort`,
/// and checks that the library hands out the C API version `ort` will ask for.
fn library_version(lib: &libloading::Library, path: &Path) -> Result<String, EngineError> {
    // SAFETY: `OrtGetApiBase` has this signature in every onnxruntime release; the
    // returned pointers are checked for null and the string is copied out at once.
    unsafe {
        let getter: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib
            .get(b"OrtGetApiBase")
            .map_err(|_| EngineError::OrtInit {
                path: path.to_path_buf(),
                reason: "the library does not export OrtGetApiBase: not an onnxruntime library"
                    .into(),
            })?;
        let base = getter();
        if base.is_null() {
            return Err(EngineError::OrtInit {
                path: path.to_path_buf(),
                reason: "OrtGetApiBase returned null".into(),
            });
        }
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err(EngineError::OrtInit {
                path: path.to_path_buf(),
                reason: "GetVersionString returned null".into(),
            });
        }
        let version = std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned();
        // `ort` panics when this returns null; check it here so it becomes an error.
        if major_minor(&version).is_some_and(|(_, minor)| minor >= MIN_ORT_MINOR)
            && ((*base).GetApi)(MIN_ORT_MINOR).is_null()
        {
            return Err(EngineError::OrtInit {
                path: path.to_path_buf(),
                reason: format!(
                    "the library (version {version}) does not provide C API version {MIN_ORT_MINOR}"
                ),
            });
        }
        Ok(version)
    }
}

/// Parses "1.31.0" into (1, 31).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The process-wide onnxruntime: library, version and `ort` environment.
struct OrtRuntime {
    dylib: OrtDylib,
    version: String,
    env: ort::environment::Environment,
    /// Keeps our own handle on the library so it is never unloaded.
    _lib: libloading::Library,
}

/// Only one `ort` environment (and one library) can exist per process: the first
/// successful initialisation is kept for good; failures are not cached.
static RUNTIME: Mutex<Option<Arc<OrtRuntime>>> = Mutex::new(None);

fn runtime(dylib: OrtDylib) -> Result<Arc<OrtRuntime>, EngineError> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        if rt.dylib.path != dylib.path {
            // Different path, maybe the same file: compare canonical paths.
            let same = std::fs::canonicalize(&rt.dylib.path).ok()
                == std::fs::canonicalize(&dylib.path).ok();
            if !same {
                return Err(EngineError::OrtInit {
                    path: dylib.path,
                    reason: format!(
                        "onnxruntime is already loaded in this process from {}",
                        rt.dylib.path.display()
                    ),
                });
            }
        }
        return Ok(rt.clone());
    }
    let path = dylib.path.clone();
    if !path.is_file() {
        return Err(EngineError::OrtNotFound {
            reason: format!("{} is not a file", path.display()),
            searched: vec![path.display().to_string()],
        });
    }
    // SAFETY: loading a shared library runs its initialisers; this is the documented way
    // to use onnxruntime dynamically, and the path was chosen by the user or found in
    // an onnxruntime installation.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| EngineError::OrtInit {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let version = library_version(&lib, &path)?;
    let required = format!(">= 1.{MIN_ORT_MINOR} (tested with {PINNED_ORT_VERSION})");
    match major_minor(&version) {
        Some((1, minor)) if minor >= MIN_ORT_MINOR => {}
        _ => {
            return Err(EngineError::OrtVersion {
                path,
                found: version,
                required,
            });
        }
    }
    let init_path = path.clone();
    let built = std::panic::catch_unwind(move || {
        ort::init_from(&init_path)
            .map_err(|e| e.to_string())?
            .with_name("rtmdl")
            .with_telemetry(false)
            // onnxruntime's own logger writes ANSI-coloured lines; its
            // warnings go through rtmdl's plain stderr instead, and its
            // errors are dropped here: each one also comes back from the
            // call that failed, and is reported there once.
            .with_logger(std::sync::Arc::new(
                |level: ort::logging::LogLevel,
                 _category: &str,
                 _id: &str,
                 _at: &str,
                 message: &str| {
                    if matches!(level, ort::logging::LogLevel::Warning) {
                        eprintln!("warning: onnxruntime: {message}");
                    }
                },
            ))
            .build()
            .map_err(|e| e.to_string())
    });
    let env = match built {
        Ok(Ok(env)) => env,
        Ok(Err(reason)) => return Err(EngineError::OrtInit { path, reason }),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(EngineError::OrtInit {
                path,
                reason: format!("ort panicked during initialisation: {msg}"),
            });
        }
    };
    let rt = Arc::new(OrtRuntime {
        dylib,
        version,
        env,
        _lib: lib,
    });
    *slot = Some(rt.clone());
    Ok(rt)
}

/// Runs ONNX models with onnxruntime (CPU execution provider).
///
/// Sessions are created with `threads` intra-op threads, one inter-op thread and
/// intra-op spinning off (spinning workers would steal CPU from other real-time tasks).
///
/// # Loaded once, one onnxruntime session per lane
///
/// `ort` 2.0.0-rc.15's `Session::run` takes `&mut self` (since rc.10; pykeio/ort#402),
/// so an onnxruntime session cannot be shared by lanes that run at once. A loaded model
/// therefore keeps what can be shared: the model read, checked and (for constants and
/// output cuts) rewritten once, as bytes every session is built from, and one
/// `PrepackedWeights` container, so the sessions share their pre-packed weights instead
/// of each holding a copy. Each spawn still builds (and optimises) an onnxruntime session
/// from those bytes.
#[derive(Clone)]
pub struct OrtEngine {
    rt: Arc<OrtRuntime>,
}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("dylib", &self.rt.dylib)
            .field("version", &self.rt.version)
            .finish()
    }
}

impl OrtEngine {
    /// Finds onnxruntime (see [`find_dylib`]) and initialises it (once per process).
    pub fn new() -> Result<Self, EngineError> {
        Self::from_dylib(find_dylib()?)
    }

    /// Initialises onnxruntime from a given library. Fails if another library was
    /// already loaded in this process.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, EngineError> {
        Self::from_dylib(OrtDylib {
            path: path.into(),
            found_via: "explicit path".into(),
        })
    }

    fn from_dylib(dylib: OrtDylib) -> Result<Self, EngineError> {
        Ok(OrtEngine {
            rt: runtime(dylib)?,
        })
    }

    /// Where the loaded library is and how it was found.
    pub fn dylib(&self) -> &OrtDylib {
        &self.rt.dylib
    }

    /// The onnxruntime version string the library reports (e.g. "1.31.0").
    pub fn ort_version(&self) -> &str {
        &self.rt.version
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Ort
    }

    fn version(&self) -> String {
        format!("onnxruntime {}", self.rt.version)
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
        let prepared = model::prepare(spec)?;
        Ok(Arc::new(OrtModel::new(self.rt.clone(), prepared)?))
    }
}

/// A model read and checked once: the bytes its onnxruntime sessions are built from.
struct OrtModel {
    rt: Arc<OrtRuntime>,
    path: PathBuf,
    bytes: Vec<u8>,
    threads: usize,
    /// Pre-packed weights, shared by the sessions.
    prepacked: PrepackedWeights,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    spare: Spare<OrtSessionImpl>,
}

impl OrtModel {
    fn new(rt: Arc<OrtRuntime>, prepared: PreparedModel) -> Result<Self, EngineError> {
        let PreparedModel {
            path,
            mut proto,
            inputs,
            output_names,
            cut,
            modified,
            threads,
            bytes: file_bytes,
        } = prepared;
        if cut || modified {
            // onnxruntime can only return graph outputs: make the cut tensors the outputs.
            if let Some(graph) = proto.graph.as_mut() {
                graph.output = output_names
                    .iter()
                    .map(|name| pb::ValueInfoProto {
                        name: name.clone(),
                        r#type: Some(pb::TypeProto {
                            value: Some(pb::type_proto::Value::TensorType(
                                pb::type_proto::Tensor {
                                    elem_type: pb::tensor_proto::DataType::Float as i32,
                                    shape: None,
                                },
                            )),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect();
            }
        }
        // Constant inputs are initializers of the prepared graph (see `model`); an
        // unchanged model is passed on as read (re-encoding would drop unknown fields).
        let bytes = if cut || modified {
            proto.encode_to_vec()
        } else {
            file_bytes
        };
        // `PrepackedWeights::new` panics when onnxruntime cannot make the container.
        let prepacked =
            std::panic::catch_unwind(PrepackedWeights::new).map_err(|_| EngineError::Prepare {
                engine: "ort",
                path: path.clone(),
                reason: "cannot create a pre-packed weights container".into(),
            })?;
        let mut model = OrtModel {
            rt,
            path,
            bytes,
            threads,
            prepacked,
            inputs,
            output_names,
            output_shapes: vec![],
            spare: Spare::empty(),
        };
        let mut first = model.session()?;
        model.output_shapes = model::warm_up(&mut first)?;
        first.output_shapes.clone_from(&model.output_shapes);
        model.spare = Spare::new(first);
        Ok(model)
    }

    /// A new onnxruntime session of the model (not warmed up).
    fn session(&self) -> Result<OrtSessionImpl, EngineError> {
        let path = &self.path;
        let fail = |what: &str, e: String| EngineError::Prepare {
            engine: "ort",
            path: path.clone(),
            reason: format!("{what}: {e}"),
        };
        let mut builder = OrtSession::builder(&self.rt.env)
            .map_err(|e| fail("creating the session builder", e.to_string()))?
            .with_intra_threads(self.threads)
            .map_err(|e| fail("setting intra-op threads", e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| fail("setting inter-op threads", e.to_string()))?
            .with_intra_op_spinning(false)
            .map_err(|e| fail("disabling spinning", e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // For models with external data loaded from memory (output cut below).
            builder = builder
                .with_config_entry(
                    "session.model_external_initializers_file_folder_path",
                    dir.to_string_lossy(),
                )
                .map_err(|e| fail("setting the model folder", e.to_string()))?;
        }
        builder = builder
            .with_prepacked_weights(&self.prepacked)
            .map_err(|e| fail("sharing pre-packed weights", e.to_string()))?;
        let session = builder
            .commit_from_memory(&self.bytes)
            .map_err(|e| fail("building the session", e.to_string()))?;
        let inputs = &self.inputs;
        let output_names = &self.output_names;
        let ort_inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if ort_inputs.len() != inputs.len()
            || ort_inputs.iter().zip(inputs).any(|(o, i)| *o != i.name)
        {
            let expected: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(fail(
                "checking inputs",
                format!("onnxruntime sees inputs {ort_inputs:?}, expected {expected:?}"),
            ));
        }
        let ort_outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        if ort_outputs != *output_names {
            return Err(fail(
                "checking outputs",
                format!("onnxruntime sees outputs {ort_outputs:?}, expected {output_names:?}"),
            ));
        }
        Ok(OrtSessionImpl {
            path: path.clone(),
            session,
            inputs: inputs.clone(),
            output_names: output_names.clone(),
            output_shapes: self.output_shapes.clone(),
        })
    }
}

impl LoadedModel for OrtModel {
    fn spawn(&self) -> Result<Box<dyn Session>, EngineError> {
        if let Some(s) = self.spare.take() {
            return Ok(Box::new(s));
        }
        let mut s = self.session()?;
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

/// One onnxruntime session of an [`OrtModel`].
struct OrtSessionImpl {
    path: PathBuf,
    session: OrtSession,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
}

/// An input in standard (contiguous) layout, as onnxruntime needs it.
enum Contiguous<'a> {
    F32(ndarray::CowArray<'a, f32, ndarray::IxDyn>),
    I64(ndarray::CowArray<'a, i64, ndarray::IxDyn>),
}

/// A carrier tensor cast to an input's declared type, as an onnxruntime
/// value: floats with `as` (f16 rounded to nearest), integers from `f32`
/// with `as` (toward zero, saturating) or from `i64` with `as`, bool as
/// "not zero".
fn cast_input(c: &Contiguous<'_>, d: DType) -> Result<SessionInputValue<'static>, ort::Error> {
    use ort::value::Tensor as OrtTensor;
    fn value<X>(a: ndarray::ArrayD<X>) -> Result<SessionInputValue<'static>, ort::Error>
    where
        X: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
    {
        Ok(OrtTensor::from_array(a)?.into_dyn().into())
    }
    macro_rules! cast {
        ($f:expr) => {
            match c {
                Contiguous::F32(a) => value(a.mapv(|v| $f(v as f64))),
                Contiguous::I64(a) => value(a.mapv(|v| $f(v as f64))),
            }
        };
    }
    match d {
        DType::F32 => cast!(|v: f64| v as f32),
        DType::F16 => cast!(|v: f64| half::f16::from_f64(v)),
        DType::F64 => cast!(|v: f64| v),
        DType::I64 => cast!(|v: f64| v as i64),
        DType::I32 => cast!(|v: f64| v as i32),
        DType::I8 => cast!(|v: f64| v as i8),
        DType::U8 => cast!(|v: f64| v as u8),
        DType::Bool => cast!(|v: f64| v != 0.0),
    }
}

/// Copies one onnxruntime output into our tensor: f32 and i64 as they are, other
/// numeric and boolean types converted to f32.
fn extract(value: &ort::value::DynValue) -> Result<Tensor, ort::Error> {
    use ort::value::TensorElementType as T;
    fn cast<X: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        value: &ort::value::DynValue,
        f: impl Fn(X) -> f32,
    ) -> Result<Tensor, ort::Error> {
        Ok(Tensor::F32(value.try_extract_array::<X>()?.mapv(f)))
    }
    let ty = match value.dtype() {
        ort::value::ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(ort::Error::new(format!(
                "output of type {other:?} is not a tensor"
            )));
        }
    };
    match ty {
        T::Float32 => Ok(Tensor::F32(value.try_extract_array::<f32>()?.to_owned())),
        T::Int64 => Ok(Tensor::I64(value.try_extract_array::<i64>()?.to_owned())),
        T::Float64 => cast::<f64>(value, |v| v as f32),
        T::Int32 => cast::<i32>(value, |v| v as f32),
        T::Int16 => cast::<i16>(value, f32::from),
        T::Int8 => cast::<i8>(value, f32::from),
        T::Uint8 => cast::<u8>(value, f32::from),
        T::Uint16 => cast::<u16>(value, f32::from),
        T::Uint32 => cast::<u32>(value, |v| v as f32),
        T::Uint64 => cast::<u64>(value, |v| v as f32),
        T::Bool => cast::<bool>(value, |v| if v { 1.0 } else { 0.0 }),
        T::Float16 => cast::<half::f16>(value, f32::from),
        other => Err(ort::Error::new(format!(
            "output element type {other:?} is not supported"
        ))),
    }
}

impl Session for OrtSessionImpl {
    fn run_many(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        model::check_inputs(&self.path, &self.inputs, inputs)?;
        let path = &self.path;
        let fail = |e: ort::Error| EngineError::Run {
            engine: "ort",
            path: path.clone(),
            reason: e.to_string(),
        };
        let contiguous: Vec<Contiguous<'_>> = inputs
            .iter()
            .map(|v| match v {
                TensorView::F32(a) => Contiguous::F32(a.as_standard_layout()),
                TensorView::I64(a) => Contiguous::I64(a.as_standard_layout()),
            })
            .collect();
        let mut values: Vec<SessionInputValue<'_>> = Vec::with_capacity(contiguous.len());
        for (c, info) in contiguous.iter().zip(&self.inputs) {
            values.push(match (c, info.dtype) {
                (Contiguous::F32(a), DType::F32) => {
                    TensorRef::from_array_view(a).map_err(fail)?.into()
                }
                (Contiguous::I64(a), DType::I64) => {
                    TensorRef::from_array_view(a).map_err(fail)?.into()
                }
                // A carrier cast to the input's declared type (an owned copy).
                (c, d) => cast_input(c, d).map_err(fail)?,
            });
        }
        let outputs = self.session.run(values.as_slice()).map_err(fail)?;
        let mut result = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            result.push(extract(&value).map_err(fail)?);
        }
        Ok(result)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_env_path_is_named() {
        let err = find_dylib_with(Some("/nonexistent/libonnxruntime.so".as_ref())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn lib_in_dir_skips_providers() {
        let dir = std::env::temp_dir().join(format!("rtmdl-ort-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        assert_eq!(lib_in_dir(&dir), None);
        std::fs::write(dir.join("libonnxruntime.so.1.31.0"), b"x").unwrap();
        assert_eq!(lib_in_dir(&dir), Some(dir.join("libonnxruntime.so.1.31.0")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_parse() {
        assert_eq!(major_minor("1.31.0"), Some((1, 31)));
        assert_eq!(major_minor("garbage"), None);
    }
}
