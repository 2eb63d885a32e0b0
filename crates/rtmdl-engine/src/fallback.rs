//! `--engine auto` per model: the engine `auto` picked, and when it cannot
//! load a model, the next engine this machine has that can (for that model
//! only), with one line saying why.

use std::sync::{Arc, Mutex};

use crate::{Engine, EngineError, EngineKind, LoadedModel, ModelSpec, OrtEngine, TractEngine};

/// Engines tried in order for each model; it reports as the first.
pub struct Fallback {
    engines: Vec<Arc<dyn Engine>>,
    notes: Mutex<Vec<String>>,
}

impl Fallback {
    /// `primary`, then onnxruntime (when found) and tract, each unless it
    /// is the primary.
    pub fn after(primary: Arc<dyn Engine>) -> Fallback {
        let mut engines = vec![primary.clone()];
        if primary.kind() != EngineKind::Ort
            && let Ok(ort) = OrtEngine::new()
        {
            engines.push(Arc::new(ort));
        }
        if primary.kind() != EngineKind::Tract {
            engines.push(Arc::new(TractEngine::new()));
        }
        Fallback::of(engines)
    }

    /// Exactly these engines, in this order (at least one).
    pub fn of(engines: Vec<Arc<dyn Engine>>) -> Fallback {
        assert!(!engines.is_empty(), "a fallback needs an engine");
        Fallback {
            engines,
            notes: Mutex::new(Vec::new()),
        }
    }
}

impl Engine for Fallback {
    fn name(&self) -> &'static str {
        self.engines[0].name()
    }

    fn kind(&self) -> EngineKind {
        self.engines[0].kind()
    }

    fn version(&self) -> String {
        self.engines[0].version()
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
        let first = match self.engines[0].load(spec) {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        for e in &self.engines[1..] {
            if let Ok(m) = e.load(spec) {
                let note = format!(
                    "{}: {} cannot load it, {} runs it ({first})",
                    spec.path.display(),
                    self.engines[0].name(),
                    e.name()
                );
                eprintln!("engine: {note}");
                self.notes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(note);
                return Ok(m);
            }
        }
        Err(first)
    }

    fn fallbacks(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmodels;

    /// An engine that loads nothing.
    struct Refuses;

    impl Engine for Refuses {
        fn name(&self) -> &'static str {
            "ort"
        }
        fn kind(&self) -> EngineKind {
            EngineKind::Ort
        }
        fn version(&self) -> String {
            "refuses 0".into()
        }
        fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
            Err(EngineError::UnsupportedModel {
                path: spec.path.clone(),
                reason: "no op of that name".into(),
            })
        }
    }

    #[test]
    fn a_model_the_first_engine_cannot_load_goes_to_the_next_with_a_line() {
        let dir = std::env::temp_dir().join(format!("rtmdl-fallback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        std::fs::write(&path, testmodels::typed_inputs()).unwrap();
        let f = Fallback::of(vec![Arc::new(Refuses), Arc::new(TractEngine::new())]);
        assert_eq!((f.name(), f.version()), ("ort", "refuses 0".to_string()));
        let m = f.load(&ModelSpec::new(&path)).unwrap();
        assert_eq!(m.inputs().len(), 7);
        let notes = f.fallbacks();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("m.onnx: ort cannot load it, tract runs it")
                && notes[0].contains("no op of that name"),
            "{notes:?}"
        );
        // Nothing loads it: the first engine's error.
        let none = Fallback::of(vec![Arc::new(Refuses), Arc::new(Refuses)]);
        let err = none.load(&ModelSpec::new(&path)).err().unwrap();
        assert!(err.to_string().contains("no op of that name"), "{err}");
        assert!(none.fallbacks().is_empty());
    }
}
