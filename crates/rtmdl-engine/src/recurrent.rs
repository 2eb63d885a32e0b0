//! Recurrent models: inputs fed from an output of the previous run.
//!
//! Silero VAD, for one, takes `state` and returns `stateN`, to be passed as `state`
//! to the next call. [`RecurrentSession`] wraps any [`Session`] and does that: the
//! caller feeds only the other inputs and gets only the other outputs; the state starts
//! at each [`Feedback::initial`] value and lives in a [`SharedState`].
//!
//! A [`SharedState`] can be shared by several sessions of the same model (one per GPU
//! lane, say), so that consecutive runs see each other's state whichever session runs
//! them. [`RecurrentModel`] wraps a [`LoadedModel`] with its links and one state, and
//! spawns such sessions. A run reads the state when it starts and stores its new state when it ends,
//! holding the lock only for those two copies (never during inference): if two runs
//! overlap, both start from the same state and the one that ends last wins.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{check_inputs, describe_inputs};
use crate::{EngineError, InputInfo, InputValue, LoadedModel, Session, Tensor, TensorView};

/// One recurrent link: `input` of the next run is `output` of this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The output name (e.g. "stateN").
    pub output: String,
    /// The input name (e.g. "state").
    pub input: String,
    /// The value of `input` on the first run (and after [`SharedState::reset`]): a fill
    /// value (its shape, if given, must be the input's) or an exact tensor.
    pub initial: InputValue,
}

impl Feedback {
    /// A link whose state starts at zeros.
    pub fn new(output: impl Into<String>, input: impl Into<String>) -> Self {
        Feedback {
            output: output.into(),
            input: input.into(),
            initial: InputValue::scalar(0.0),
        }
    }
}

/// The state of a [`RecurrentSession`]: one tensor per [`Feedback`] link, `None` until
/// the first run (then the initial values are used). Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<Mutex<Option<Vec<Tensor>>>>);

impl SharedState {
    /// A fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the state: the next run starts from the initial values.
    pub fn reset(&self) {
        *self.lock() = None;
    }

    /// The current state, in [`Feedback`] order (`None` before the first run).
    pub fn get(&self) -> Option<Vec<Tensor>> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Vec<Tensor>>> {
        // A panic elsewhere cannot leave the slot half-written: it holds whole values.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where an input of the wrapped session comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The caller's tensor number k.
    Caller(usize),
    /// State slot j.
    State(usize),
}

/// A [`Session`] whose [`Feedback`] inputs are fed from its own outputs.
///
/// Its [`Session::inputs`] are the wrapped session's inputs without the fed-back ones
/// (same order); its outputs are the wrapped session's outputs without the ones fed
/// back.
pub struct RecurrentSession {
    inner: Box<dyn Session>,
    sources: Vec<Source>,
    inputs: Vec<InputInfo>,
    /// For each state slot, the wrapped session's output that updates it.
    updates: Vec<usize>,
    /// The wrapped session's outputs that are returned, in order.
    returned: Vec<usize>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    initial: Vec<Tensor>,
    state: SharedState,
}

impl std::fmt::Debug for RecurrentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecurrentSession")
            .field("path", &self.inner.path())
            .field("inputs", &self.inputs)
            .field("outputs", &self.output_names)
            .finish()
    }
}

/// The links of a recurrent model, checked against the wrapped model's inputs and
/// outputs: where each input comes from and which outputs are state or returned.
#[derive(Clone)]
struct Links {
    sources: Vec<Source>,
    inputs: Vec<InputInfo>,
    updates: Vec<usize>,
    returned: Vec<usize>,
    output_names: Vec<String>,
    output_shapes: Vec<Vec<usize>>,
    initial: Vec<Tensor>,
}

impl Links {
    /// Checks every link (names, shapes of output and input, initial value).
    fn new(
        path: &Path,
        inner_inputs: &[InputInfo],
        inner_outputs: &[String],
        inner_shapes: &[Vec<usize>],
        feedback: &[Feedback],
    ) -> Result<Self, EngineError> {
        let invalid = |reason: String| EngineError::InvalidSpec {
            path: path.to_path_buf(),
            reason,
        };
        let mut sources: Vec<Option<Source>> = vec![None; inner_inputs.len()];
        let mut updates = Vec::new();
        let mut initial = Vec::new();
        for (j, fb) in feedback.iter().enumerate() {
            let i = inner_inputs
                .iter()
                .position(|x| x.name == fb.input)
                .ok_or_else(|| EngineError::UnknownInput {
                    path: path.to_path_buf(),
                    what: format!("feedback from output {:?}", fb.output),
                    name: fb.input.clone(),
                    known: inner_inputs
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let o = inner_outputs
                .iter()
                .position(|x| *x == fb.output)
                .ok_or_else(|| {
                    invalid(format!(
                        "feedback to input {:?} names output {:?}, but the model's outputs are: {}",
                        fb.input,
                        fb.output,
                        inner_outputs.join(", ")
                    ))
                })?;
            if sources[i].is_some() {
                return Err(invalid(format!(
                    "input {:?} is fed back from two outputs",
                    fb.input
                )));
            }
            if updates.contains(&o) {
                return Err(invalid(format!(
                    "output {:?} is fed back to two inputs",
                    fb.output
                )));
            }
            let info = &inner_inputs[i];
            let out_shape = &inner_shapes[o];
            if *out_shape != info.shape {
                return Err(invalid(format!(
                    "feedback {:?} -> {:?}: the output has shape {out_shape:?}, the input {:?}",
                    fb.output, fb.input, info.shape
                )));
            }
            initial.push(initial_value(path, info, &fb.initial)?);
            sources[i] = Some(Source::State(j));
            updates.push(o);
        }
        let mut inputs = Vec::new();
        let sources: Vec<Source> = sources
            .into_iter()
            .zip(inner_inputs)
            .map(|(s, info)| {
                s.unwrap_or_else(|| {
                    inputs.push(info.clone());
                    Source::Caller(inputs.len() - 1)
                })
            })
            .collect();
        let returned: Vec<usize> = (0..inner_outputs.len())
            .filter(|o| !updates.contains(o))
            .collect();
        Ok(Links {
            sources,
            inputs,
            output_names: returned.iter().map(|&o| inner_outputs[o].clone()).collect(),
            output_shapes: returned.iter().map(|&o| inner_shapes[o].clone()).collect(),
            updates,
            returned,
            initial,
        })
    }
}

impl RecurrentSession {
    /// Wraps `inner`. Checks every link (names, types and shapes of output and input,
    /// initial value) with one run on the initial state and zeros (which leaves `state`
    /// untouched), so that a wrong link fails here and not on the first real run.
    pub fn new(
        inner: Box<dyn Session>,
        feedback: &[Feedback],
        state: SharedState,
    ) -> Result<Self, EngineError> {
        let links = Links::new(
            inner.path(),
            inner.inputs(),
            inner.output_names(),
            inner.output_shapes(),
            feedback,
        )?;
        Self::with_links(inner, links, feedback, state)
    }

    /// Wraps `inner` with links already checked against its model; one checking run.
    fn with_links(
        inner: Box<dyn Session>,
        links: Links,
        feedback: &[Feedback],
        state: SharedState,
    ) -> Result<Self, EngineError> {
        let path = inner.path().to_path_buf();
        let Links {
            sources,
            inputs,
            updates,
            returned,
            output_names,
            output_shapes,
            initial,
        } = links;
        let mut session = RecurrentSession {
            inner,
            sources,
            inputs,
            updates,
            returned,
            output_names,
            output_shapes,
            initial,
            state,
        };
        // One checking run on the initial state.
        let zeros: Vec<Tensor> = session
            .inputs
            .iter()
            .map(|i| Tensor::zeros(i.dtype, &i.shape))
            .collect();
        let views: Vec<TensorView<'_>> = zeros.iter().map(Tensor::view).collect();
        let state = session.initial.clone();
        let new_state = session.step(&views, &state)?.1;
        for ((fb, old), new) in feedback.iter().zip(&state).zip(&new_state) {
            if old.dtype() != new.dtype() || old.shape() != new.shape() {
                return Err(EngineError::InvalidSpec {
                    path: path.clone(),
                    reason: format!(
                        "feedback {:?} -> {:?}: the output is {} {:?}, the input {} {:?}",
                        fb.output,
                        fb.input,
                        new.dtype(),
                        new.shape(),
                        old.dtype(),
                        old.shape()
                    ),
                });
            }
        }
        Ok(session)
    }

    /// The state this session reads and writes.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// One run of the wrapped session: (returned outputs, new state).
    fn step<'a>(
        &mut self,
        inputs: &'a [TensorView<'_>],
        state: &'a [Tensor],
    ) -> Result<(Vec<Tensor>, Vec<Tensor>), EngineError> {
        let views: Vec<TensorView<'a>> = self
            .sources
            .iter()
            .map(|s| match *s {
                Source::Caller(k) => reborrow(&inputs[k]),
                Source::State(j) => state[j].view(),
            })
            .collect();
        let mut outputs: Vec<Option<Tensor>> =
            self.inner.run_many(&views)?.into_iter().map(Some).collect();
        let path = self.inner.path();
        let mut take = |o: usize| {
            outputs
                .get_mut(o)
                .and_then(Option::take)
                .ok_or_else(|| EngineError::Run {
                    engine: "recurrent",
                    path: path.to_path_buf(),
                    reason: format!("the model returned no output #{o}"),
                })
        };
        let new_state = self
            .updates
            .iter()
            .map(|&o| take(o))
            .collect::<Result<Vec<_>, _>>()?;
        let returned = self
            .returned
            .iter()
            .map(|&o| take(o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((returned, new_state))
    }
}

/// A view of a view, borrowing for as long as `v` is borrowed.
fn reborrow<'a>(v: &'a TensorView<'_>) -> TensorView<'a> {
    match v {
        TensorView::F32(a) => TensorView::F32(a.view()),
        TensorView::I64(a) => TensorView::I64(a.view()),
    }
}

/// The initial state tensor of one link.
fn initial_value(path: &Path, info: &InputInfo, value: &InputValue) -> Result<Tensor, EngineError> {
    let invalid = |reason: String| EngineError::InvalidSpec {
        path: path.to_path_buf(),
        reason: format!("initial value of fed-back input {:?}: {reason}", info.name),
    };
    match value {
        InputValue::Fill { value, shape } => {
            if let Some(s) = shape
                && *s != info.shape
            {
                return Err(invalid(format!(
                    "shape {s:?}, but the session's input has shape {:?}",
                    info.shape
                )));
            }
            Tensor::filled(info.dtype, &info.shape, *value).map_err(invalid)
        }
        InputValue::Tensor(t) => {
            if t.dtype() != info.dtype || t.shape() != info.shape {
                return Err(invalid(format!(
                    "a {} {:?} tensor, but the input is {} {:?}",
                    t.dtype(),
                    t.shape(),
                    info.dtype,
                    info.shape
                )));
            }
            Ok(t.clone())
        }
    }
}

impl Session for RecurrentSession {
    fn run_many(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        check_inputs(self.inner.path(), &self.inputs, inputs).map_err(|e| match e {
            EngineError::InputMismatch { path, reason } => EngineError::InputMismatch {
                path,
                reason: format!(
                    "{reason} (the fed-back inputs {} come from the session's state)",
                    describe_inputs(
                        &self
                            .inner
                            .inputs()
                            .iter()
                            .filter(|i| !self.inputs.contains(i))
                            .cloned()
                            .collect::<Vec<_>>()
                    )
                ),
            },
            other => other,
        })?;
        let state = self.state.get().unwrap_or_else(|| self.initial.clone());
        let (returned, new_state) = self.step(inputs, &state)?;
        *self.state.lock() = Some(new_state);
        Ok(returned)
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
        self.inner.path()
    }
}

/// A [`LoadedModel`] whose sessions are [`RecurrentSession`]s over one [`SharedState`]:
/// the wrapped model is loaded once and shared; the links are checked once, here; every
/// session spawned reads and writes the same state (one per task and stage, whichever
/// lane runs it).
pub struct RecurrentModel {
    inner: Arc<dyn LoadedModel>,
    feedback: Vec<Feedback>,
    links: Links,
    state: SharedState,
}

impl std::fmt::Debug for RecurrentModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecurrentModel")
            .field("path", &self.inner.path())
            .field("inputs", &self.links.inputs)
            .field("outputs", &self.links.output_names)
            .finish()
    }
}

impl RecurrentModel {
    /// Wraps `inner`, checking every link against its inputs and outputs (the types are
    /// checked by each spawned session's first run).
    pub fn new(
        inner: Arc<dyn LoadedModel>,
        feedback: &[Feedback],
        state: SharedState,
    ) -> Result<Self, EngineError> {
        let links = Links::new(
            inner.path(),
            inner.inputs(),
            inner.output_names(),
            inner.output_shapes(),
            feedback,
        )?;
        Ok(RecurrentModel {
            inner,
            feedback: feedback.to_vec(),
            links,
            state,
        })
    }

    /// The state its sessions read and write.
    pub fn state(&self) -> &SharedState {
        &self.state
    }
}

impl LoadedModel for RecurrentModel {
    fn spawn(&self) -> Result<Box<dyn Session>, EngineError> {
        Ok(Box::new(RecurrentSession::with_links(
            self.inner.spawn()?,
            self.links.clone(),
            &self.feedback,
            self.state.clone(),
        )?))
    }

    fn inputs(&self) -> &[InputInfo] {
        &self.links.inputs
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.links.output_shapes
    }

    fn output_names(&self) -> &[String] {
        &self.links.output_names
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}
