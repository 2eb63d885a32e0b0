//! rtmdl's config and plan files: TOML in, the core's task model out.
//!
//! Every error names the file, the line and column, and the field, and says
//! what was expected — both for malformed TOML (spans from `toml`) and for
//! values that parse but make no sense (a deadline of zero, a variant that
//! does not exist, a parameter a CPU function does not take, ...). What the
//! real runtime runs for a stage ([`StageBody`]) and where a task's jobs come
//! from (`rtmdl_ops::SourceSpec`) are typed and checked here too, so the
//! runtime executes what the config describes and never reads TOML.

mod body;
mod build;
mod raw;
pub mod reference;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use body::{InferenceParams, InputInit, StageBody, StageEngine};
use raw::{RawConfig, RawPlan};
use rtmdl_core::TaskSet;
use rtmdl_ops::SourceSpec;

/// A config or plan file that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{file}{at}: {field}{sep}{message}",
    at = if *line == 0 { String::new() } else { format!(":{line}:{column}") },
    sep = if field.is_empty() { "" } else { ": " }
)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error is about the whole file (it cannot be read).
    pub line: usize,
    pub column: usize,
    /// The key at fault (`tasks[1].period`), when known.
    pub field: String,
    pub message: String,
}

/// A loaded and validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub taskset: TaskSet,
    /// Per model (same order as `taskset.models`), per stage: what the real
    /// runtime runs.
    pub bodies: Vec<Vec<StageBody>>,
    /// Per task: the input source of its jobs, if given (a `path` in it is
    /// resolved against the config's folder).
    pub sources: Vec<Option<SourceSpec>>,
    /// How online switching decides (`[adapt]`, or the defaults); the task
    /// set switches only when a command turns it on (`--adapt`).
    pub adapt: rtmdl_core::AdaptOptions,
    /// The scenario's own length (`[run] duration`).
    pub duration: Option<rtmdl_core::Time>,
    /// (model, variant, stage) whose time the config leaves to `rtmdl
    /// profile` (a stage that runs a function or a model file and gives no
    /// `time`): 0 in the task set until a profile fills it.
    pub unmeasured: Vec<(usize, usize, usize)>,
    /// ((model, variant, stage), body) where a variant runs a stage with
    /// parameters of its own (`params.STAGE` on the variant).
    pub variant_bodies: Vec<((usize, usize, usize), StageBody)>,
}

impl Config {
    /// What variant `variant` of model `model` runs for `stage`: its own
    /// parameters where it gives them, else the stage's.
    pub fn body(&self, model: usize, variant: usize, stage: usize) -> &StageBody {
        self.variant_bodies
            .iter()
            .find(|(k, _)| *k == (model, variant, stage))
            .map_or(&self.bodies[model][stage], |(_, b)| b)
    }

    /// The stage times left to a measurement that `ts` (this config's task
    /// set, after a profile if one was applied) still lacks, as
    /// `model/variant/stage`. A profile writes samples over the placeholder.
    pub fn unmeasured_in(&self, ts: &TaskSet) -> Vec<String> {
        self.unmeasured
            .iter()
            .filter(|&&(m, v, s)| {
                matches!(
                    ts.models[m].variants[v].times[s],
                    rtmdl_core::ExecProfile::Fixed(0)
                )
            })
            .map(|&(m, v, s)| {
                let model = &ts.models[m];
                format!(
                    "{}/{}/{}",
                    model.name, model.variants[v].name, model.stages[s].name
                )
            })
            .collect()
    }

    /// Resolve a path written in the config relative to the config's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        body::resolve(&self.path, p)
    }

    /// The inference stages that name their engine: (model, stage, the
    /// stage's parameters, the engine).
    pub fn named_engines(&self) -> Vec<(usize, usize, &InferenceParams, StageEngine)> {
        let mut v = Vec::new();
        for (m, bodies) in self.bodies.iter().enumerate() {
            for (s, body) in bodies.iter().enumerate() {
                if let StageBody::Inference(p) = body
                    && let Some(e) = p.engine
                {
                    v.push((m, s, p, e));
                }
            }
        }
        v
    }
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the config: {e}"),
    })?;
    parse(&text, path)
}

pub(crate) struct Src<'a> {
    file: String,
    text: &'a str,
}

impl Src<'_> {
    fn err(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    fn toml_err(&self, e: toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let (line, column) = line_col(self.text, span.start);
        // The key just before the error on its line, when there is one.
        let field = self
            .text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| {
                let at = l
                    .char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.len(), |(i, _)| i);
                match l[..at].rfind('=') {
                    Some(eq) => Some(l[..eq].trim_end()),
                    // The error is on a key itself: take that key.
                    None => l.split_once('=').map(|(k, _)| k.trim_end()),
                }
            })
            .map(|k| {
                // Start after the last character that cannot be in a key.
                let start = k
                    .char_indices()
                    .rfind(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
                    .map_or(0, |(i, c)| i + c.len_utf8());
                k[start..].to_string()
            })
            .unwrap_or_default();
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            field,
            message: with_suggestion(e.message().trim()),
        }
    }
}

/// serde's "unknown field `perod`, expected one of `name`, `period`, ..."
/// (and "unknown variant ..."), with the nearest expected name when it is
/// close enough to be a typo: "... (did you mean `period`?)".
fn with_suggestion(message: &str) -> String {
    let nearest = || {
        let rest = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("unknown variant `"))?;
        let (bad, rest) = rest.split_once('`')?;
        let (_, expected) = rest.split_once("expected")?;
        rtmdl_core::names::nearest(bad, expected.split('`').skip(1).step_by(2))
    };
    match nearest() {
        Some(best) => format!("{message} (did you mean `{best}`?)"),
        None => message.to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parse and validate config text; `path` is used for messages and to
/// resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let src = Src {
        file: path.display().to_string(),
        text,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml_err(e))?;
    build::build(&src, raw, path)
}

pub(crate) fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let v: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Read a plan file and apply it to the task set: every task gets the
/// plan's variant and priority.
pub fn apply_plan(ts: &mut TaskSet, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the plan: {e}"),
    })?;
    apply_plan_text(ts, &text, path)
}

/// [`apply_plan`] on text already read.
pub fn apply_plan_text(ts: &mut TaskSet, text: &str, path: &Path) -> Result<(), ConfigError> {
    let src = Src {
        file: path.display().to_string(),
        text,
    };
    let raw: RawPlan = toml::from_str(text).map_err(|e| src.toml_err(e))?;
    let mut seen = HashSet::new();
    let mut prios = HashSet::new();
    let mut updates = Vec::new();
    for (i, pt) in raw.tasks.iter().enumerate() {
        let pt = pt.get_ref();
        let field = format!("task[{i}]");
        let Some(t) = ts.tasks.iter().position(|t| t.name == *pt.name.get_ref()) else {
            return Err(src.err(
                pt.name.span(),
                format!("{field}.name"),
                format!(
                    "the config has no task `{}` (tasks: {}): was this plan made for another config?",
                    pt.name.get_ref(),
                    list(ts.tasks.iter().map(|t| &t.name))
                ),
            ));
        };
        if !seen.insert(t) {
            return Err(src.err(pt.name.span(), format!("{field}.name"), "task listed twice"));
        }
        let m = ts.model_of(t);
        let Some(v) = m.variant(pt.variant.get_ref()) else {
            return Err(src.err(
                pt.variant.span(),
                format!("{field}.variant"),
                format!(
                    "model `{}` has no variant `{}` (variants: {}): was this plan made for another config?",
                    m.name,
                    pt.variant.get_ref(),
                    list(m.variants.iter().map(|v| &v.name))
                ),
            ));
        };
        let p = *pt.priority.get_ref();
        if !(1..=1_000_000).contains(&p) || !prios.insert(p) {
            return Err(src.err(
                pt.priority.span(),
                format!("{field}.priority"),
                format!("expected a distinct priority ≥ 1, got {p}"),
            ));
        }
        updates.push((t, v, p as u32));
    }
    if let Some(missing) = (0..ts.tasks.len()).find(|t| !seen.contains(t)) {
        return Err(src.err(
            0..0,
            "task",
            format!(
                "the plan has no entry for task `{}`",
                ts.tasks[missing].name
            ),
        ));
    }
    for (t, v, p) in updates {
        ts.tasks[t].variant = Some(v);
        ts.tasks[t].priority = Some(p);
    }
    Ok(())
}

/// A plan file's text for the given assignments (TOML written by `toml`,
/// so any task or variant name reads back as itself).
pub fn plan_text(ts: &TaskSet, assign: &[rtmdl_core::Assignment], config: Option<&Path>) -> String {
    #[derive(serde::Serialize)]
    struct PlanFile<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        config: Option<String>,
        task: Vec<PlanTask<'a>>,
    }
    #[derive(serde::Serialize)]
    struct PlanTask<'a> {
        name: &'a str,
        variant: &'a str,
        priority: u32,
    }
    let file = PlanFile {
        config: config.map(|c| c.display().to_string()),
        task: ts
            .tasks
            .iter()
            .zip(assign)
            .map(|(t, a)| PlanTask {
                name: &t.name,
                variant: &ts.models[t.model].variants[a.variant].name,
                priority: a.priority,
            })
            .collect(),
    };
    let body = toml::to_string(&file).expect("a plan of strings and integers serialises");
    format!("# rtmdl plan: a variant and a priority (1 = most urgent) per task\n{body}")
}
