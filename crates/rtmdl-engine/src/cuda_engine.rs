//! The CUDA engine (cargo feature `cuda`): ONNX models on an NVIDIA GPU through
//! [tract-cuda](https://crates.io/crates/tract-cuda) 0.23.9, tract's CUDA runtime.
//!
//! A model goes through the same reading and validation as with the other engines, is
//! typed and decluttered by tract, then handed to tract's `"cuda"` runtime
//! (`runtime_for_name("cuda")` → `Runtime::prepare_with_options`), which applies
//! `tract_cuda::CudaTransform` (every op it can translate becomes a GPU op, the rest stay
//! on the CPU with copies around them), optimises, uploads the weights and builds a plan
//! whose outputs are copied back to the host. [`Session::run`] therefore takes and
//! returns host arrays.
//!
//! # What must be on the machine at run time
//!
//! Nothing CUDA is linked at build time: cudarc (inside tract-cuda) opens every library
//! with `dlopen` when it is first needed, trying the names of [`library_candidates`]
//! (`lib{name}.so`, `lib{name}.so.12`, `lib{name}.so.9`, ...). This crate is bound to the
//! CUDA 12.2 API (tract-cuda feature `cuda-12020`). Needed:
//!
//! | what | shared library | pip wheel |
//! | --- | --- | --- |
//! | NVIDIA driver, API ≥ 12.2 (R535+) | `libcuda.so.1` | — |
//! | CUDA runtime | `libcudart.so.12` | `nvidia-cuda-runtime-cu12` |
//! | NVRTC (kernel compiler) | `libnvrtc.so.12` + `libnvrtc-builtins.so.12.*` | `nvidia-cuda-nvrtc-cu12` |
//! | cuBLAS | `libcublas.so.12` + `libcublasLt.so.12` | `nvidia-cublas-cu12` |
//! | cuDNN 9 | `libcudnn.so.9` + its `libcudnn_*.so.9` | `nvidia-cudnn-cu12` |
//!
//! Their folders must be on `LD_LIBRARY_PATH` (or the loader's default path).
//!
//! tract-cuda compiles its CUDA kernels with NVRTC the first time a machine uses it and
//! caches the cubins under `$XDG_CACHE_HOME` (else `~/.cache`)
//! `/tract/0.23.9/cuda/12020/cubins/sm_XY/nvrtc-A.B/` ([`cubin_cache_dir`]). That first
//! compile also needs CUDA *headers*: a toolkit root found through `CUDA_HOME`,
//! `CUDA_PATH`, `/usr/local/cuda` or `nvcc` on `PATH`, whose `include/` has
//! `cuda_fp16.h`, `math_constants.h` and what they include (`vector_types.h`,
//! `crt/host_defines.h`, ...), and CCCL's `cuda/std/cstdint` (in `include/`,
//! `include/cccl/` or `include/libcudacxx/include/`). With pip wheels, the `include/`
//! folders of `nvidia-cuda-runtime-cu12`, `nvidia-cuda-nvcc-cu12` (for `crt/`) and
//! `nvidia-cuda-cccl-cu12` merged into one (`scripts/gpu-check` does that).
//!
//! [`CudaEngine::new`] checks all of it in order (driver → GPU → libraries → tract-cuda's
//! own check → CUDA context and kernels) and turns every failure, including a panic
//! inside cudarc or tract-cuda, into [`EngineError::CudaUnavailable`] naming what was
//! looked for.
//!
//! # Streams, lanes and priorities: what tract-cuda 0.23.9 allows
//!
//! * **One context**: tract-cuda creates a single CUDA context, on device 0, for the
//!   whole process (a global `OnceLock`). There is no way to pick another GPU.
//! * **One stream per OS thread**: tract-cuda keeps a `thread_local!` stream (with its
//!   own cuBLAS and cuDNN handles), created by `CudaContext::new_stream()` the first
//!   time a thread uses the GPU. Every kernel of a run goes to the stream of *the thread
//!   that calls* [`Session::run`]. Hence: sessions used from one thread share, and
//!   serialise on, that thread's stream; sessions used from different threads run on
//!   different streams and can overlap on the GPU. A session has no stream of its own
//!   and a stream cannot be chosen or injected: `tract_cuda::with_cuda_stream` only
//!   lends the current thread's stream. So a *GPU lane* here is a thread: give each lane
//!   its own thread and spawn its sessions there (loading runs on the loading thread's
//!   stream and then synchronises, and every run ends with its outputs copied to the
//!   host, so a session may also be moved to another thread between runs).
//! * **Weights**: uploaded once per [`Engine::load`], read-only, usable from any thread:
//!   the prepared plan (tract's `Runnable`) is shared by every session spawned from the
//!   loaded model, and each [`LoadedModel::spawn`] only creates an execution state (and
//!   warms it up on the calling thread's stream). The CPU ops left in the plan share the
//!   plan's pool of intra-op threads (`threads > 1`) across those sessions.
//!   tract-cuda disables cudarc's cross-stream event tracking (the caller owns
//!   synchronisation); each run allocates its intermediate tensors from a per-run pool.
//! * **Priorities: not exposed by tract-cuda.** Its streams are created with the default
//!   priority (0, the lowest) and cudarc's `new_stream_with_priority` cannot be plugged
//!   in. As a driver-level workaround this crate offers
//!   [`CudaEngine::set_thread_stream_priority`], which sets the CUDA 12 stream
//!   attribute `CU_LAUNCH_ATTRIBUTE_PRIORITY` on the calling thread's tract-cuda stream
//!   (`cuStreamSetAttribute`), meant to apply to all kernels launched into that stream
//!   afterwards (tract's own, cuBLAS's and cuDNN's). CUDA lists this launch attribute
//!   as valid for streams, but whether it changes scheduling like a stream created with
//!   a priority is not verified yet: `examples/gpu_bench.rs priority` measures it.
//!   Priorities, in any case, only order the *dispatch* of thread blocks: running
//!   blocks are not pre-empted.

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tract_onnx::prelude::*;

use crate::model::{self, PreparedModel, Spare};
use crate::tract_engine;
use crate::{
    Engine, EngineError, EngineKind, InputInfo, LoadedModel, ModelSpec, Session, TensorView,
};

/// The tract-cuda version this crate is built against (pinned with `=` in Cargo.toml).
pub const TRACT_CUDA_VERSION: &str = "0.23.9";

/// The CUDA driver API this build is bound to (tract-cuda feature `cuda-12020`): the
/// driver must report at least this (`cuDriverGetVersion`), i.e. 12.2.
pub const CUDA_API_VERSION: i32 = 12020;

/// The names the NVIDIA driver library is opened by, in order.
pub const DRIVER_LIBRARIES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// The CUDA libraries tract-cuda needs besides the driver: (cudarc's short name, what it is).
pub const CUDA_LIBRARIES: [(&str, &str); 5] = [
    ("cudart", "CUDA runtime"),
    ("nvrtc", "NVRTC"),
    ("cublas", "cuBLAS"),
    ("cublasLt", "cuBLASLt"),
    ("cudnn", "cuDNN"),
];

const ENGINE: &str = "cuda";

/// The file names cudarc tries, in order, for the library `short_name` ("nvrtc",
/// "cudnn", ...): `libnvrtc.so`, ..., `libnvrtc.so.12`, ..., `libnvrtc.so.9`, ...
pub fn library_candidates(short_name: &str) -> Vec<String> {
    cudarc::get_lib_name_candidates(short_name)
}

/// Where tract-cuda caches the kernels it compiles (created on first use; the folder
/// below it is per GPU architecture and NVRTC version).
pub fn cubin_cache_dir() -> PathBuf {
    tract_cuda::kernels::cubin_dir().to_path_buf()
}

/// The GPU found by [`probe_gpu`] (device 0, the one tract-cuda uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Device name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// How many CUDA devices the driver sees (tract-cuda uses device 0).
    pub device_count: usize,
    /// Compute capability (major, minor), e.g. (9, 0).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_mem_bytes: usize,
    /// Driver API version as `cuDriverGetVersion` reports it, e.g. 12080.
    pub driver_api: i32,
    /// The driver library that was opened, with its path when known.
    pub driver_library: String,
}

impl GpuInfo {
    /// The driver API version as "major.minor".
    pub fn driver_api_string(&self) -> String {
        api_string(self.driver_api)
    }
}

/// One CUDA library found by [`CudaEngine::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedLibrary {
    /// cudarc's short name ("cudart", "nvrtc", ...).
    pub short_name: &'static str,
    /// The file name that loaded (e.g. "libnvrtc.so.12").
    pub file_name: String,
    /// Its path in this process (from `/proc/self/maps`), when known.
    pub path: Option<PathBuf>,
}

fn api_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// Keeps the driver library open for the life of the process once probed.
static DRIVER: OnceLock<libloading::Library> = OnceLock::new();

/// Looks for the NVIDIA driver and GPU 0 without touching cudarc or tract-cuda:
/// opens `libcuda.so.1` (then `libcuda.so`), runs `cuInit`, counts the devices and reads
/// the first one's name, memory and compute capability. The result is computed once per
/// process.
///
/// The error is [`EngineError::CudaUnavailable`]; its reason names the driver library.
pub fn probe_gpu() -> Result<GpuInfo, EngineError> {
    static PROBE: OnceLock<Result<GpuInfo, (String, Vec<String>)>> = OnceLock::new();
    PROBE
        .get_or_init(|| match catch_unwind(probe_gpu_uncached) {
            Ok(r) => r,
            Err(p) => Err((
                format!("probing libcuda panicked: {}", panic_message(&p)),
                vec![DRIVER_LIBRARIES.join(", ")],
            )),
        })
        .clone()
        .map_err(|(reason, searched)| EngineError::CudaUnavailable { reason, searched })
}

type CuInit = unsafe extern "C" fn(u32) -> c_int;
type CuIntOut = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type CuDeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;

/// What some CUresult codes mean (the ones `cuInit` and device queries return).
fn cu_result_meaning(code: c_int) -> &'static str {
    match code {
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        46 => "CUDA_ERROR_DEVICES_UNAVAILABLE: the GPU is busy or in exclusive mode",
        100 => "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is visible to this process",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        222 => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: the driver library and kernel module differ",
        804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => "see CUresult in cuda.h",
    }
}

fn probe_gpu_uncached() -> Result<GpuInfo, (String, Vec<String>)> {
    let mut searched = Vec::new();
    let mut opened = None;
    for name in DRIVER_LIBRARIES {
        // SAFETY: loading the NVIDIA driver library runs no initialisation we depend on.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                searched.push(format!("{name} (loaded)"));
                opened = Some((name, lib));
                break;
            }
            Err(e) => searched.push(format!("{name} ({})", error_chain(&e))),
        }
    }
    searched.push(ld_library_path_note());
    let Some((lib_name, lib)) = opened else {
        return Err((
            "the NVIDIA driver library libcuda.so.1 was not found (no NVIDIA driver \
             installed, or a container without GPU passthrough)"
                .into(),
            searched,
        ));
    };
    let driver_library = match loaded_path("cuda") {
        Some(p) => format!("{lib_name} ({})", p.display()),
        None => lib_name.to_string(),
    };
    let fail = |what: String| {
        (
            format!("{what} (driver library {driver_library})"),
            searched.clone(),
        )
    };
    // SAFETY: the signatures are those of the CUDA driver API (cuda.h); every out-pointer
    // points to a live local of the right type.
    unsafe {
        fn get<'a, T>(
            lib: &'a libloading::Library,
            name: &str,
        ) -> Result<libloading::Symbol<'a, T>, String> {
            // SAFETY: the caller names T as the symbol's C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map_err(|e| format!("symbol {name} missing: {}", error_chain(&e)))
        }
        let cu_init = get::<CuInit>(&lib, "cuInit").map_err(&fail)?;
        let driver_get_version = get::<CuIntOut>(&lib, "cuDriverGetVersion").map_err(&fail)?;
        let get_count = get::<CuIntOut>(&lib, "cuDeviceGetCount").map_err(&fail)?;
        let device_get = get::<CuDeviceGet>(&lib, "cuDeviceGet").map_err(&fail)?;
        let get_name = get::<CuDeviceGetName>(&lib, "cuDeviceGetName").map_err(&fail)?;
        let total_mem = get::<CuDeviceTotalMem>(&lib, "cuDeviceTotalMem_v2").map_err(&fail)?;
        let get_attr = get::<CuDeviceGetAttribute>(&lib, "cuDeviceGetAttribute").map_err(&fail)?;

        let r = cu_init(0);
        if r != 0 {
            return Err(fail(format!(
                "cuInit(0) returned {r} ({})",
                cu_result_meaning(r)
            )));
        }
        let mut driver_api: c_int = 0;
        let r = driver_get_version(&mut driver_api);
        if r != 0 {
            return Err(fail(format!("cuDriverGetVersion returned {r}")));
        }
        let mut count: c_int = 0;
        let r = get_count(&mut count);
        if r != 0 || count <= 0 {
            return Err(fail(format!(
                "no CUDA device found (cuDeviceGetCount returned {r}, count {count})"
            )));
        }
        let mut dev: c_int = 0;
        let r = device_get(&mut dev, 0);
        if r != 0 {
            return Err(fail(format!(
                "cuDeviceGet(0) returned {r} ({})",
                cu_result_meaning(r)
            )));
        }
        let mut buf = [0 as c_char; 256];
        let name = if get_name(buf.as_mut_ptr(), buf.len() as c_int, dev) == 0 {
            let bytes: Vec<u8> = buf
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            "(unknown name)".to_string()
        };
        let mut mem: usize = 0;
        let _ = total_mem(&mut mem, dev);
        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        let _ = get_attr(&mut major, 75, dev);
        let _ = get_attr(&mut minor, 76, dev);
        if driver_api < CUDA_API_VERSION {
            return Err(fail(format!(
                "the driver supports CUDA API {}, older than the {} this build needs \
                 (upgrade the driver, or rebuild with a lower tract-cuda cuda-XXXXX feature)",
                api_string(driver_api),
                api_string(CUDA_API_VERSION)
            )));
        }
        let _ = DRIVER.set(lib);
        Ok(GpuInfo {
            name,
            device_count: count as usize,
            compute_capability: (major, minor),
            total_mem_bytes: mem,
            driver_api,
            driver_library,
        })
    }
}

/// An error with its sources ("dlopen failed: libcuda.so.1: cannot open shared object
/// file: No such file or directory").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn ld_library_path_note() -> String {
    match std::env::var("LD_LIBRARY_PATH") {
        Ok(v) if !v.is_empty() => format!("LD_LIBRARY_PATH={v}"),
        _ => "LD_LIBRARY_PATH (unset)".to_string(),
    }
}

/// The path of the loaded shared library `lib{short_name}.so*` in this process, read
/// from `/proc/self/maps` (Linux only; `None` elsewhere or when not loaded).
pub fn loaded_path(short_name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let prefix = format!("lib{short_name}.so");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(PathBuf::from)
}

/// Opens each of [`CUDA_LIBRARIES`] by cudarc's candidate names.
fn check_libraries() -> Result<Vec<LoadedLibrary>, (String, Vec<String>)> {
    let mut found = Vec::new();
    for (short, what) in CUDA_LIBRARIES {
        let candidates = library_candidates(short);
        let mut loaded = None;
        let mut notable = Vec::new();
        for name in &candidates {
            // SAFETY: these are NVIDIA's CUDA libraries; cudarc opens them the same way.
            match unsafe { libloading::Library::new(name) } {
                Ok(lib) => {
                    loaded = Some((name.clone(), lib));
                    break;
                }
                Err(e) => {
                    let msg = error_chain(&e);
                    // "No such file" is the expected miss; anything else (a missing
                    // dependency, a wrong architecture) is worth reporting.
                    if !msg.contains("No such file") {
                        notable.push(msg);
                    }
                }
            }
        }
        match loaded {
            Some((file_name, lib)) => {
                let path = loaded_path(short);
                // Leave it loaded: cudarc opens it again anyway.
                std::mem::forget(lib);
                found.push(LoadedLibrary {
                    short_name: short,
                    file_name,
                    path,
                });
            }
            None => {
                let mut searched = vec![format!("lib{short}: {}", candidates.join(", "))];
                searched.extend(notable);
                searched.push(ld_library_path_note());
                return Err((
                    format!(
                        "the {what} library (lib{short}.so*) was not found; install it \
                         (e.g. pip wheel {}) and add its folder to LD_LIBRARY_PATH",
                        wheel_for(short)
                    ),
                    searched,
                ));
            }
        }
    }
    Ok(found)
}

fn wheel_for(short: &str) -> &'static str {
    match short {
        "cudart" => "nvidia-cuda-runtime-cu12",
        "nvrtc" => "nvidia-cuda-nvrtc-cu12",
        "cublas" | "cublasLt" => "nvidia-cublas-cu12",
        "cudnn" => "nvidia-cudnn-cu12",
        _ => "the CUDA toolkit",
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Runs `f`, turning its error or its panic (cudarc and tract-cuda panic when a library
/// or the context cannot be set up) into a message.
fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(p) => Err(format!("panicked: {}", panic_message(&*p))),
    }
}

/// Runs ONNX models on GPU 0 with tract-cuda. See the [module docs](self) for what
/// must be installed and for how streams and threads relate.
#[derive(Debug, Clone)]
pub struct CudaEngine {
    runtime: &'static dyn Runtime,
    gpu: GpuInfo,
    libraries: Vec<LoadedLibrary>,
}

impl CudaEngine {
    /// Checks that the GPU is usable and sets tract-cuda up: driver and GPU
    /// ([`probe_gpu`]), the CUDA libraries, tract-cuda's own check, then the CUDA context
    /// (which compiles and caches the kernels the first time on a machine: seconds to
    /// minutes) and the calling thread's stream.
    ///
    /// Every failure is [`EngineError::CudaUnavailable`], never a panic.
    pub fn new() -> Result<Self, EngineError> {
        let gpu = probe_gpu()?;
        let unavailable = |reason: String, searched: Vec<String>| EngineError::CudaUnavailable {
            reason,
            searched,
        };
        let libraries =
            check_libraries().map_err(|(reason, searched)| unavailable(reason, searched))?;
        let found: Vec<String> = libraries
            .iter()
            .map(|l| match &l.path {
                Some(p) => format!("{} ({})", l.file_name, p.display()),
                None => l.file_name.clone(),
            })
            .collect();
        let runtime = match guarded(|| runtime_for_name("cuda")) {
            Ok(Some(rt)) => rt,
            Ok(None) => {
                return Err(unavailable(
                    "tract's \"cuda\" runtime is not registered in this binary".into(),
                    found,
                ));
            }
            Err(e) => {
                return Err(unavailable(
                    format!("tract-cuda's dependency check failed: {e}"),
                    found,
                ));
            }
        };
        guarded(|| tract_cuda::with_cuda_stream(|_| Ok(()))).map_err(|e| {
            unavailable(
                format!(
                    "setting up the CUDA context on {} failed (on first use tract-cuda \
                     compiles its kernels into {}, which needs the CUDA headers: see \
                     CUDA_HOME): {e}",
                    gpu.name,
                    cubin_cache_dir().display()
                ),
                found.clone(),
            )
        })?;
        Ok(CudaEngine {
            runtime,
            gpu,
            libraries,
        })
    }

    /// The GPU in use (device 0).
    pub fn gpu(&self) -> &GpuInfo {
        &self.gpu
    }

    /// The CUDA libraries found, in [`CUDA_LIBRARIES`] order.
    pub fn libraries(&self) -> &[LoadedLibrary] {
        &self.libraries
    }

    /// The versions the loaded libraries report, as (library, "major.minor[.patch]")
    /// pairs: "cudart", "nvrtc", "cudnn" (an entry says "error: ..." when a query fails).
    pub fn library_versions(&self) -> Vec<(&'static str, String)> {
        let cudart = guarded(|| {
            cudarc::runtime::result::version::get_runtime_version()
                .map_err(|e| TractError::msg(format!("{e:?}")))
        })
        .map(api_string);
        let nvrtc = guarded(|| {
            let (mut major, mut minor): (c_int, c_int) = (0, 0);
            // SAFETY: two live out-pointers, as nvrtcVersion wants.
            unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
                .result()
                .map_err(|e| TractError::msg(format!("{e:?}")))?;
            Ok(format!("{major}.{minor}"))
        });
        let cudnn = guarded(|| {
            let v = cudarc::cudnn::result::get_version();
            // cuDNN 9 encodes major*10000 + minor*100 + patch.
            Ok(format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100))
        });
        [("cudart", cudart), ("nvrtc", nvrtc), ("cudnn", cudnn)]
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_else(|e| format!("error: {e}"))))
            .collect()
    }

    /// The GPU's stream priority range as `(least, greatest)`; lower numbers are higher
    /// priorities, e.g. `(0, -5)`. Both 0 when the GPU has no stream priorities.
    pub fn stream_priority_range(&self) -> Result<(i32, i32), EngineError> {
        guarded(|| {
            tract_cuda::with_cuda_stream(|s| {
                s.context().bind_to_thread()?;
                Ok(cudarc::driver::result::stream::get_priority_range()?)
            })
        })
        .map_err(|e| EngineError::CudaStream(format!("reading the priority range: {e}")))
    }

    /// Sets the priority of the **calling thread's** CUDA stream (tract-cuda has one per
    /// thread and no API for priorities; see the [module docs](self)) through the stream
    /// attribute `CU_LAUNCH_ATTRIBUTE_PRIORITY`. `priority` is clamped to
    /// [`stream_priority_range`](Self::stream_priority_range); lower is more urgent.
    /// Applies to work launched afterwards by any session run on this thread. Returns
    /// the priority the driver reports back for the stream.
    pub fn set_thread_stream_priority(&self, priority: i32) -> Result<i32, EngineError> {
        use cudarc::driver::sys;
        guarded(|| {
            tract_cuda::with_cuda_stream(|s| {
                s.context().bind_to_thread()?;
                let (least, greatest) = cudarc::driver::result::stream::get_priority_range()?;
                let p = priority.clamp(greatest.min(least), greatest.max(least));
                // SAFETY: a zeroed CUlaunchAttributeValue is a valid value of the union;
                // the stream handle is the live stream of this thread.
                unsafe {
                    let mut value: sys::CUstreamAttrValue = std::mem::zeroed();
                    value.priority = p;
                    sys::cuStreamSetAttribute(
                        s.cu_stream(),
                        sys::CUstreamAttrID::CU_LAUNCH_ATTRIBUTE_PRIORITY,
                        &value,
                    )
                    .result()?;
                    let mut back: sys::CUstreamAttrValue = std::mem::zeroed();
                    sys::cuStreamGetAttribute(
                        s.cu_stream(),
                        sys::CUstreamAttrID::CU_LAUNCH_ATTRIBUTE_PRIORITY,
                        &mut back,
                    )
                    .result()?;
                    Ok(back.priority)
                }
            })
        })
        .map_err(|e| EngineError::CudaStream(format!("setting the stream priority: {e}")))
    }
}

impl CudaEngine {
    /// Prepares `spec` for the GPU (without running it) and counts the ops of the plan
    /// by name, sorted by name: ops whose names start with "Cuda" run on the GPU,
    /// "DeviceSync*" are host↔device copies, the others (besides "Source" and "Const")
    /// run on the CPU.
    pub fn plan_ops(&self, spec: &ModelSpec) -> Result<Vec<(String, usize)>, EngineError> {
        let prepared = model::prepare(spec)?;
        let path = prepared.path.clone();
        let runnable = prepare_runnable(self.runtime, &prepared)?;
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        let model = runnable.typed_model().ok_or_else(|| EngineError::Prepare {
            engine: ENGINE,
            path,
            reason: "the prepared plan exposes no model".into(),
        })?;
        for node in &model.nodes {
            *counts.entry(node.op.name().to_string()).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }
}

/// Types, declutters and hands the model to tract-cuda's runtime.
fn prepare_runnable(
    runtime: &'static dyn Runtime,
    prepared: &PreparedModel,
) -> Result<Box<dyn Runnable>, EngineError> {
    let typed = tract_engine::decluttered(prepared, ENGINE)?;
    // Ops left on the CPU use this executor.
    let executor = tract_engine::executor(prepared.threads, &prepared.path, ENGINE)?;
    let options = RunOptions {
        executor,
        ..RunOptions::default()
    };
    guarded(|| runtime.prepare_with_options(typed, &options)).map_err(|e| EngineError::Prepare {
        engine: ENGINE,
        path: prepared.path.clone(),
        reason: format!("preparing the model for the GPU: {e}"),
    })
}

impl Engine for CudaEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Cuda
    }

    fn version(&self) -> String {
        format!(
            "tract-cuda {TRACT_CUDA_VERSION} on {} (driver API {})",
            self.gpu.name,
            self.gpu.driver_api_string()
        )
    }

    /// Prepares the model for the GPU on the calling thread's stream and warms it up
    /// (one run on zeros, also on this thread).
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
        let prepared = model::prepare(spec)?;
        Ok(Arc::new(CudaModel::new(self.runtime, prepared)?))
    }
}

/// A model prepared by tract-cuda: the plan (weights on the GPU) its sessions share.
struct CudaModel {
    path: PathBuf,
    runnable: Arc<dyn Runnable>,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    spare: Spare<CudaSession>,
}

impl CudaModel {
    fn new(runtime: &'static dyn Runtime, prepared: PreparedModel) -> Result<Self, EngineError> {
        let runnable: Arc<dyn Runnable> = Arc::from(prepare_runnable(runtime, &prepared)?);
        let PreparedModel {
            path,
            inputs,
            output_names,
            ..
        } = prepared;
        let mut model = CudaModel {
            path,
            runnable,
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

    /// A new execution state of the shared plan (not warmed up).
    fn session(&self) -> Result<CudaSession, EngineError> {
        let runnable = &self.runnable;
        let state = guarded(|| runnable.spawn()).map_err(|e| EngineError::Prepare {
            engine: ENGINE,
            path: self.path.clone(),
            reason: format!("creating the execution state: {e}"),
        })?;
        Ok(CudaSession {
            path: self.path.clone(),
            state,
            _runnable: self.runnable.clone(),
            inputs: self.inputs.clone(),
            output_names: self.output_names.clone(),
            output_shapes: self.output_shapes.clone(),
            poisoned: None,
        })
    }
}

impl LoadedModel for CudaModel {
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

/// One execution state of a [`CudaModel`]'s plan.
struct CudaSession {
    path: PathBuf,
    state: Box<dyn State>,
    /// The plan the state runs (kept alive with it).
    _runnable: Arc<dyn Runnable>,
    inputs: Vec<InputInfo>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    /// Set when a run panicked inside tract-cuda: the state may be inconsistent.
    poisoned: Option<String>,
}

impl Session for CudaSession {
    fn run_many(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<crate::Tensor>, EngineError> {
        let fail = |reason: String| EngineError::Run {
            engine: ENGINE,
            path: self.path.clone(),
            reason,
        };
        if let Some(why) = &self.poisoned {
            return Err(fail(format!(
                "the session is unusable after an earlier panic ({why})"
            )));
        }
        model::check_inputs(&self.path, &self.inputs, inputs)?;
        let values =
            tract_engine::to_tvalues(inputs, &self.inputs).map_err(|e| fail(format!("{e:#}")))?;
        let state = &mut self.state;
        let outputs = match catch_unwind(AssertUnwindSafe(|| state.run(values))) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(fail(format!("{e:#}"))),
            Err(p) => {
                let msg = panic_message(&*p);
                self.poisoned = Some(msg.clone());
                return Err(fail(format!("tract-cuda panicked: {msg}")));
            }
        };
        tract_engine::from_tvalues(outputs).map_err(|e| fail(format!("{e:#}")))
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
    fn guarded_turns_panics_and_errors_into_messages() {
        assert_eq!(guarded(|| Ok(3)), Ok(3));
        let e = guarded::<()>(|| Err(TractError::msg("boom"))).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let e = guarded::<()>(|| panic!("Could not create CUDA context")).unwrap_err();
        assert!(e.starts_with("panicked: "), "{e}");
        assert!(e.contains("Could not create CUDA context"), "{e}");
    }

    #[test]
    fn candidates_cover_cuda12_and_cudnn9_sonames() {
        assert!(library_candidates("nvrtc").contains(&"libnvrtc.so.12".to_string()));
        assert!(library_candidates("cudnn").contains(&"libcudnn.so.9".to_string()));
        assert!(library_candidates("cublasLt").contains(&"libcublasLt.so.12".to_string()));
    }

    #[test]
    fn cubin_cache_is_per_tract_version_and_api() {
        let dir = cubin_cache_dir();
        let s = dir.to_string_lossy();
        assert!(s.contains("tract/0.23.9/cuda/12020"), "{s}");
    }
}
