//! rtmdl's config and plan files: TOML in, the core's task model out.
//!
//! Every error names the file, the line and column, and the field, and says
//! what was expected — both for malformed TOML (spans from `toml`) and for
//! values that parse but make no sense (a deadline of zero, a variant that
//! does not exist, ...).

mod raw;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use raw::{RawConfig, RawPlan};
use rtmdl_core::{Model, Overrun, Platform, Stage, Task, TaskSet, Variant};
use toml::Spanned;

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

/// What the real runtime needs about a stage beyond the task model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRuntime {
    /// Registered CPU function implementing the stage.
    pub function: Option<String>,
    pub params: toml::Table,
}

/// A loaded and validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub taskset: TaskSet,
    /// Per model (same order as `taskset.models`), per stage.
    pub stages: Vec<Vec<StageRuntime>>,
    /// Per task: the input source of its jobs, if given.
    pub sources: Vec<Option<toml::Table>>,
}

impl Config {
    /// Resolve a path written in the config relative to the config's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
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

struct Src<'a> {
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
fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
    build(&src, raw, path)
}

fn build(src: &Src, raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let platform = {
        let span = raw.platform.span();
        let p = raw.platform.into_inner();
        let workers = *p.cpu_workers.get_ref();
        if !(1..=1024).contains(&workers) {
            return Err(src.err(
                p.cpu_workers.span(),
                "platform.cpu_workers",
                format!("expected between 1 and 1024 CPU workers, got {workers}"),
            ));
        }
        let lanes = *p.gpu_lanes.get_ref();
        if !(1..=64).contains(&lanes) {
            let s = if p.gpu_lanes.span().is_empty() {
                span.clone()
            } else {
                p.gpu_lanes.span()
            };
            return Err(src.err(
                s,
                "platform.gpu_lanes",
                format!("expected between 1 and 64 GPU lanes, got {lanes}"),
            ));
        }
        let slowdown = match p.gpu_slowdown {
            None => vec![1.0; lanes as usize],
            Some(s) => {
                let v = s.get_ref().clone();
                if v.len() != lanes as usize {
                    return Err(src.err(
                        s.span(),
                        "platform.gpu_slowdown",
                        format!(
                            "expected one factor per GPU lane ({lanes}), got {}",
                            v.len()
                        ),
                    ));
                }
                if let Some(bad) = v
                    .iter()
                    .find(|f| !f.is_finite() || **f < 1.0 || **f > 1000.0)
                {
                    return Err(src.err(
                        s.span(),
                        "platform.gpu_slowdown",
                        format!("expected factors ≥ 1.0 (1.0 = no slowdown), got {bad}"),
                    ));
                }
                v
            }
        };
        Platform {
            cpu_workers: workers as usize,
            gpu_lanes: lanes as usize,
            gpu_slowdown: slowdown,
            storage_budget: p.storage_budget.map(|s| s.0),
        }
    };

    let mut models = Vec::new();
    let mut stages_rt = Vec::new();
    let mut model_index = BTreeMap::new();
    for (name, m) in raw.models {
        let m = m.into_inner();
        let field = format!("models.{name}");
        if m.stages.get_ref().is_empty() {
            return Err(src.err(
                m.stages.span(),
                format!("{field}.stages"),
                "a job's chain needs at least one sub-task",
            ));
        }
        let mut stages = Vec::new();
        let mut defaults = Vec::new();
        let mut rts = Vec::new();
        for st in m.stages.into_inner() {
            if stages.iter().any(|s: &Stage| s.name == *st.name.get_ref()) {
                return Err(src.err(
                    st.name.span(),
                    format!("{field}.stages"),
                    format!("stage `{}` appears twice", st.name.get_ref()),
                ));
            }
            stages.push(Stage::new(st.name.get_ref().clone(), st.on));
            defaults.push(st.time.map(|p| p.0));
            rts.push(StageRuntime {
                function: st.function,
                params: st.params.unwrap_or_default(),
            });
        }
        let shared_parts: Vec<(String, u64)> =
            m.shared.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        if m.variants.get_ref().is_empty() {
            return Err(src.err(
                m.variants.span(),
                format!("{field}.variants"),
                "a model needs at least one variant",
            ));
        }
        let mut variants: Vec<Variant> = Vec::new();
        for v in m.variants.into_inner() {
            let vspan = v.span();
            let v = v.into_inner();
            let vname = v.name.get_ref().clone();
            let vfield = format!("{field}.variants[{vname}]");
            if variants.iter().any(|x| x.name == vname) {
                return Err(src.err(
                    v.name.span(),
                    format!("{vfield}.name"),
                    format!("variant `{vname}` appears twice in model `{name}`"),
                ));
            }
            let acc = *v.accuracy.get_ref();
            if !(0.0..=1.0).contains(&acc) {
                return Err(src.err(
                    v.accuracy.span(),
                    format!("{vfield}.accuracy"),
                    format!("expected an accuracy between 0 and 1, got {acc}"),
                ));
            }
            if let Some(sw) = &v.shared_with
                && !m.shared.contains_key(sw.get_ref())
            {
                return Err(src.err(
                    sw.span(),
                    format!("{vfield}.shared_with"),
                    format!(
                        "no shared part `{}` in model `{name}` (declared: {})",
                        sw.get_ref(),
                        list(m.shared.keys())
                    ),
                ));
            }
            for (k, t) in &v.times {
                if !stages.iter().any(|s| s.name == *k) {
                    return Err(src.err(
                        t.span(),
                        format!("{vfield}.times.{k}"),
                        format!(
                            "no stage `{k}` in model `{name}` (stages: {})",
                            list(stages.iter().map(|s| &s.name))
                        ),
                    ));
                }
            }
            let mut times = Vec::new();
            for (i, st) in stages.iter().enumerate() {
                let t = v
                    .times
                    .get(&st.name)
                    .map(|t| t.get_ref().0.clone())
                    .or_else(|| defaults[i].clone());
                match t {
                    Some(t) => times.push(t),
                    None => {
                        return Err(src.err(
                            vspan.clone(),
                            format!("{vfield}.times.{}", st.name),
                            format!(
                                "no execution time for stage `{}`: give it in the variant's `times` or as the stage's `time`",
                                st.name
                            ),
                        ));
                    }
                }
            }
            variants.push(Variant {
                name: vname,
                accuracy: acc,
                shared_with: v.shared_with.map(|s| s.into_inner()),
                private_bytes: v.private.map_or(0, |s| s.0),
                times,
                file: v.file,
            });
        }
        model_index.insert(name.clone(), models.len());
        models.push(Model {
            name,
            stages,
            shared_parts,
            variants,
        });
        stages_rt.push(rts);
    }

    if raw.tasks.is_empty() {
        return Err(src.err(
            0..0,
            "tasks",
            "the task set is empty: add at least one [[tasks]] table",
        ));
    }
    let mut tasks: Vec<Task> = Vec::new();
    let mut sources = Vec::new();
    let mut priorities: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, t) in raw.tasks.into_iter().enumerate() {
        let t = t.into_inner();
        let name = t.name.get_ref().clone();
        let field = format!("tasks[{i}]");
        if tasks.iter().any(|x| x.name == name) {
            return Err(src.err(
                t.name.span(),
                format!("{field}.name"),
                format!("task `{name}` appears twice"),
            ));
        }
        let Some(&model) = model_index.get(t.model.get_ref()) else {
            return Err(src.err(
                t.model.span(),
                format!("{field}.model"),
                format!(
                    "no model `{}` (models: {})",
                    t.model.get_ref(),
                    list(model_index.keys())
                ),
            ));
        };
        let period = t.period.get_ref().0;
        if period < 10_000 {
            return Err(src.err(
                t.period.span(),
                format!("{field}.period"),
                format!("expected a period of at least 10 us, got {} ns", period),
            ));
        }
        let overrun = t.overrun.unwrap_or_default();
        let deadline = match &t.deadline {
            None => period,
            Some(d) => {
                let dl = d.get_ref().0;
                if dl == 0 {
                    return Err(src.err(
                        d.span(),
                        format!("{field}.deadline"),
                        "expected a deadline above 0",
                    ));
                }
                if dl > period && overrun == Overrun::Skip {
                    return Err(src.err(
                        d.span(),
                        format!("{field}.deadline"),
                        "a deadline longer than the period is not allowed with overrun = \"skip\" (a job is dropped while the previous one is pending); shorten it or use overrun = \"continue\"",
                    ));
                }
                dl
            }
        };
        let rate =
            |v: &Option<Spanned<f64>>, key: &str, default: f64| -> Result<f64, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(x) if (0.0..=1.0).contains(x.get_ref()) => Ok(*x.get_ref()),
                    Some(x) => Err(src.err(
                        x.span(),
                        format!("{field}.{key}"),
                        format!("expected a value between 0 and 1, got {}", x.get_ref()),
                    )),
                }
            };
        let max_miss_rate = rate(&t.max_miss_rate, "max_miss_rate", 0.0)?;
        let min_accuracy = rate(&t.min_accuracy, "min_accuracy", 0.0)?;
        let variant = match &t.variant {
            None => None,
            Some(v) => Some(models[model].variant(v.get_ref()).ok_or_else(|| {
                src.err(
                    v.span(),
                    format!("{field}.variant"),
                    format!(
                        "model `{}` has no variant `{}` (variants: {})",
                        models[model].name,
                        v.get_ref(),
                        list(models[model].variants.iter().map(|v| &v.name))
                    ),
                )
            })?),
        };
        let priority = match &t.priority {
            None => None,
            Some(p) => {
                let v = *p.get_ref();
                if !(1..=1_000_000).contains(&v) {
                    return Err(src.err(
                        p.span(),
                        format!("{field}.priority"),
                        format!("expected a priority ≥ 1 (1 = most urgent), got {v}"),
                    ));
                }
                if let Some((_, other)) = priorities.iter().find(|(q, _)| *q == v as u32) {
                    let (line, _) = line_col(src.text, other.start);
                    return Err(src.err(
                        p.span(),
                        format!("{field}.priority"),
                        format!("priority {v} is already used on line {line}: priorities must be distinct"),
                    ));
                }
                priorities.push((v as u32, p.span()));
                Some(v as u32)
            }
        };
        sources.push(t.source);
        tasks.push(Task {
            name,
            model,
            period,
            deadline,
            offset: t.offset.map_or(0, |o| o.0),
            max_miss_rate,
            min_accuracy,
            priority,
            variant,
            overrun,
        });
    }
    Ok(Config {
        path: path.to_path_buf(),
        taskset: TaskSet {
            platform,
            models,
            tasks,
        },
        stages: stages_rt,
        sources,
    })
}

fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
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
