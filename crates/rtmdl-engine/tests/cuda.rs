//! The CUDA engine. Without the `cuda` feature: selecting it is a clear error. With it:
//! on a machine without a usable GPU, every way in is a clear error (no panic) and `Auto`
//! falls back; the GPU tests skip with a message (or fail, with `RTMDL_REQUIRE_GPU=1`).

mod common;

use rtmdl_engine::EngineKind;

#[test]
fn cuda_parses_in_every_build() {
    assert_eq!("cuda".parse::<EngineKind>().unwrap(), EngineKind::Cuda);
    assert_eq!(" GPU ".parse::<EngineKind>().unwrap(), EngineKind::Cuda);
    assert_eq!(EngineKind::Cuda.to_string(), "cuda");
    let err = "cudnn".parse::<EngineKind>().unwrap_err();
    assert!(err.to_string().contains("cuda"), "{err}");
}

#[test]
fn conv_net_runs_on_the_cpu() {
    use rtmdl_engine::{Engine, ModelSpec, TractEngine, testmodels};
    let path = common::test_dir("conv-net").join("conv_net.onnx");
    testmodels::write_conv_net(&path, 1, 32, 48, 7).unwrap();
    let mut s = TractEngine::new().session(&ModelSpec::new(&path)).unwrap();
    assert_eq!(s.input_shape(), &[1, 3, 32, 48]);
    assert_eq!(s.output_shapes(), &[vec![1, 7]]);
    let out = s.run(&common::ramp(&[1, 3, 32, 48])).unwrap();
    let sum: f32 = out[0].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
    assert_eq!(
        testmodels::conv_net(1, 8, 8, 2),
        testmodels::conv_net(1, 8, 8, 2)
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn selecting_cuda_without_the_feature_says_how_to_get_it() {
    use rtmdl_engine::{EngineError, select};
    let err = select(EngineKind::Cuda)
        .err()
        .expect("no cuda in this build");
    assert!(matches!(err, EngineError::NotBuilt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("built without the `cuda` feature; rebuild with --features cuda"),
        "{msg}"
    );
    // Auto never mentions or tries cuda in such a build.
    let (_, note) = select(EngineKind::Auto).unwrap();
    assert!(!note.contains("cuda"), "{note}");
}

#[cfg(feature = "cuda")]
mod with_feature {
    use super::common::{ramp, test_dir, tiny_cnn_file};
    use rtmdl_engine::cuda_engine::{self, CudaEngine};
    use rtmdl_engine::{
        Engine, EngineError, EngineKind, ModelSpec, Session, TractEngine, select, testmodels,
    };

    /// The engine, or `None` after printing why the test is skipped. With
    /// `RTMDL_REQUIRE_GPU=1` a missing GPU fails the test instead.
    fn gpu_or_skip() -> Option<CudaEngine> {
        match CudaEngine::new() {
            Ok(e) => Some(e),
            Err(err) => {
                if std::env::var("RTMDL_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                    panic!("RTMDL_REQUIRE_GPU=1 but {err}");
                }
                eprintln!("skipping: no usable GPU: {err}");
                None
            }
        }
    }

    fn assert_close(a: &[rtmdl_engine::ArrayD<f32>], b: &[rtmdl_engine::ArrayD<f32>], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.shape(), y.shape());
            for (p, q) in x.iter().zip(y.iter()) {
                assert!((p - q).abs() <= tol, "{p} vs {q}");
            }
        }
    }

    #[test]
    fn without_a_gpu_select_cuda_is_a_clear_error_not_a_panic() {
        match select(EngineKind::Cuda) {
            Ok((engine, note)) => {
                eprintln!("a GPU is usable here: {note}");
                assert_eq!(engine.name(), "cuda");
                assert!(engine.version().starts_with("tract-cuda 0.23.9 on "));
            }
            Err(err) => {
                assert!(
                    matches!(err, EngineError::CudaUnavailable { .. }),
                    "{err:?}"
                );
                let msg = err.to_string();
                eprintln!("{msg}");
                assert!(msg.starts_with("CUDA engine unavailable: "), "{msg}");
                // The message names what was looked for. Without a driver: libcuda.
                if cuda_engine::probe_gpu().is_err() {
                    assert!(msg.contains("libcuda.so.1"), "{msg}");
                    assert!(msg.contains("LD_LIBRARY_PATH"), "{msg}");
                }
                // Asking again gives the same answer (the probe is cached, nothing broke).
                let again = select(EngineKind::Cuda).err().expect("still no GPU");
                assert_eq!(again.to_string(), msg);
            }
        }
    }

    #[test]
    fn auto_falls_back_and_says_why() {
        let (engine, note) = select(EngineKind::Auto).unwrap();
        eprintln!("{note}");
        assert!(note.starts_with("auto: "), "{note}");
        match CudaEngine::new() {
            Ok(_) => assert_eq!(engine.name(), "cuda"),
            Err(err) => {
                assert_ne!(engine.name(), "cuda");
                assert!(note.contains("cuda not usable"), "{note}");
                assert!(note.contains(&err.to_string()), "{note}");
            }
        }
    }

    #[test]
    fn probe_without_driver_names_libcuda() {
        match cuda_engine::probe_gpu() {
            Ok(gpu) => {
                eprintln!("GPU: {gpu:?}");
                assert!(gpu.device_count >= 1);
                assert!(gpu.driver_api >= cuda_engine::CUDA_API_VERSION);
            }
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.contains("libcuda"), "{msg}");
            }
        }
    }

    #[test]
    fn gpu_parity_with_tract_on_tiny_models() {
        let Some(gpu) = gpu_or_skip() else { return };
        let dir = test_dir("cuda-parity");
        let cnn = tiny_cnn_file(&dir, 10);
        let mlp = dir.join("mlp.onnx");
        testmodels::write_tiny_mlp(&mlp, 3, 32, 64, 5).unwrap();
        let specs = [
            ModelSpec::new(&cnn),
            ModelSpec::new(&cnn)
                .with_outputs([testmodels::TINY_CNN_FEATURES, testmodels::TINY_CNN_OUTPUT]),
            ModelSpec::new(&mlp),
        ];
        for spec in &specs {
            let mut cpu = TractEngine::new().session(spec).unwrap();
            let mut cuda = gpu.session(spec).unwrap();
            assert_eq!(cuda.input_shape(), cpu.input_shape());
            assert_eq!(cuda.output_names(), cpu.output_names());
            assert_eq!(cuda.output_shapes(), cpu.output_shapes());
            let x = ramp(cpu.input_shape());
            // cuDNN may use TF32 for FP32 convolutions on Ampere and later.
            assert_close(&cpu.run(&x).unwrap(), &cuda.run(&x).unwrap(), 1e-2);
            // A wrong shape is the usual error, not a GPU failure.
            let err = cuda.run(&ramp(&[1, 2, 3])).unwrap_err();
            assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
        }
    }

    #[test]
    fn gpu_sessions_run_on_their_own_threads() {
        let Some(gpu) = gpu_or_skip() else { return };
        let dir = test_dir("cuda-lanes");
        let cnn = tiny_cnn_file(&dir, 10);
        let spec = ModelSpec::new(&cnn);
        let x = ramp(&[1, 3, 16, 16]);
        let expected = TractEngine::new().session(&spec).unwrap().run(&x).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|lane| {
                    let (gpu, spec, x) = (&gpu, &spec, &x);
                    s.spawn(move || {
                        let mut session: Box<dyn Session> = gpu.session(spec).unwrap();
                        if lane == 0 {
                            // A driver-level workaround (tract-cuda has no priorities):
                            // report, but do not require, that the driver takes it.
                            let range = gpu.stream_priority_range().unwrap();
                            let set = gpu.set_thread_stream_priority(range.1);
                            eprintln!("priority range {range:?}; set to {:?}: {set:?}", range.1);
                        }
                        (0..20).map(|_| session.run(x).unwrap()).last().unwrap()
                    })
                })
                .collect();
            for h in handles {
                assert_close(&h.join().unwrap(), &expected, 1e-2);
            }
        });
        // A session loaded here can be moved to another thread between runs.
        let mut session = gpu.session(&spec).unwrap();
        let first = session.run(&x).unwrap();
        let moved = std::thread::spawn(move || session.run(&ramp(&[1, 3, 16, 16])).unwrap())
            .join()
            .unwrap();
        assert_close(&first, &moved, 1e-6);
    }

    #[test]
    fn gpu_lanes_spawn_sessions_of_one_loaded_model() {
        let Some(gpu) = gpu_or_skip() else { return };
        assert_eq!(gpu.kind(), EngineKind::Cuda);
        let dir = test_dir("cuda-shared");
        let cnn = tiny_cnn_file(&dir, 10);
        let spec = ModelSpec::new(&cnn);
        let x = ramp(&[1, 3, 16, 16]);
        let expected = TractEngine::new().session(&spec).unwrap().run(&x).unwrap();
        // Loaded (weights uploaded) once; each lane's thread spawns its own state.
        let model = gpu.load(&spec).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let (model, x) = (&model, &x);
                    s.spawn(move || {
                        let mut session = model.spawn().unwrap();
                        (0..20).map(|_| session.run(x).unwrap()).last().unwrap()
                    })
                })
                .collect();
            for h in handles {
                assert_close(&h.join().unwrap(), &expected, 1e-2);
            }
        });
    }

    #[test]
    fn gpu_errors_name_the_model() {
        let Some(gpu) = gpu_or_skip() else { return };
        let path = test_dir("cuda-missing").join("nope.onnx");
        let err = gpu.session(&ModelSpec::new(&path)).err().unwrap();
        assert!(matches!(err, EngineError::ModelNotFound { .. }), "{err:?}");
    }
}
