//! From the file's serde view ([`crate::raw`]) to the core's task model,
//! checking what serde cannot: ranges, names that must exist, distinct
//! priorities, one error per problem with its line, column and field.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use rtmdl_core::fault::FaultPolicy;
use rtmdl_core::{
    AdaptOptions, MaxMisses, Model, Overrun, Platform, Resource, Stage, Task, TaskSet, Time,
    Variant,
};
use rtmdl_ops::SourceSpec;
use toml::Spanned;

use crate::body::{self, Field, StageBody};
use crate::raw::{RawAdapt, RawConfig, RawModel, RawPlatform, RawTask, RawVariant};
use crate::{Config, ConfigError, Src, line_col, list};

pub(crate) fn build(src: &Src, raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let platform = platform(src, raw.platform)?;
    let mut models = Vec::new();
    let mut bodies = Vec::new();
    let mut model_index = BTreeMap::new();
    let mut unmeasured = Vec::new();
    let mut variant_bodies = Vec::new();
    for (name, m) in raw.models {
        let (model, rts, left, own) = model(src, &name, m.into_inner(), path)?;
        unmeasured.extend(left.into_iter().map(|(v, st)| (models.len(), v, st)));
        variant_bodies.extend(
            own.into_iter()
                .map(|((v, st), body)| ((models.len(), v, st), body)),
        );
        model_index.insert(name, models.len());
        models.push(model);
        bodies.push(rts);
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
        if tasks.iter().any(|x| x.name == *t.name.get_ref()) {
            return Err(src.err(
                t.name.span(),
                format!("tasks[{i}].name"),
                format!("task `{}` appears twice", t.name.get_ref()),
            ));
        }
        let ctx = TaskContext {
            models: &models,
            model_index: &model_index,
            path,
        };
        let (task, source) = task(src, i, t, &ctx, &mut priorities)?;
        tasks.push(task);
        sources.push(source);
    }
    Ok(Config {
        path: path.to_path_buf(),
        taskset: TaskSet {
            platform,
            models,
            tasks,
            adapt: None,
        },
        bodies,
        sources,
        unmeasured,
        variant_bodies,
        adapt: match raw.adapt {
            Some(a) => adapt(src, a)?,
            None => AdaptOptions::default(),
        },
        duration: raw
            .run
            .and_then(|r| r.duration)
            .map(|d| positive(src, d, "run.duration"))
            .transpose()?,
    })
}

/// A duration that must be above zero.
fn positive(src: &Src, d: Spanned<crate::raw::Dur>, field: &str) -> Result<Time, ConfigError> {
    match d.get_ref().0 {
        0 => Err(src.err(d.span(), field, "expected a duration above 0")),
        t => Ok(t),
    }
}

fn platform(src: &Src, raw: Spanned<RawPlatform>) -> Result<Platform, ConfigError> {
    let span = raw.span();
    let p = raw.into_inner();
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
    let gpu_slowdown = match p.gpu_slowdown {
        None => vec![1.0; lanes as usize],
        Some(s) => slowdown(src, s, lanes as usize)?,
    };
    let cores = match p.cores {
        None => None,
        Some(c) if (1..=4096).contains(c.get_ref()) => Some(*c.get_ref() as usize),
        Some(c) => {
            return Err(src.err(
                c.span(),
                "platform.cores",
                format!("expected between 1 and 4096 cores, got {}", c.get_ref()),
            ));
        }
    };
    let mut faults = FaultPolicy::default();
    if let Some(w) = p.watchdog {
        faults.watchdog = Some(positive(src, w, "platform.watchdog")?);
    }
    if let Some(m) = p.max_hangs {
        faults.max_hangs = u32::try_from(*m.get_ref()).map_err(|_| {
            src.err(
                m.span(),
                "platform.max_hangs",
                format!(
                    "expected a count ≥ 0 (0: never quarantine), got {}",
                    m.get_ref()
                ),
            )
        })?;
    }
    Ok(Platform {
        cpu_workers: workers as usize,
        gpu_lanes: lanes as usize,
        gpu_slowdown,
        storage_budget: p.storage_budget.map(|s| s.0),
        faults,
        cores,
        ..Default::default()
    })
}

fn slowdown(src: &Src, s: Spanned<Vec<f64>>, lanes: usize) -> Result<Vec<f64>, ConfigError> {
    let v = s.get_ref().clone();
    if v.len() != lanes {
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
    Ok(v)
}

fn model(src: &Src, name: &str, m: RawModel, path: &Path) -> Result<ModelParts, ConfigError> {
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
    // What a variant's own `params.STAGE` is built with.
    let mut raw_stages = Vec::new();
    for (i, st) in m.stages.into_inner().into_iter().enumerate() {
        if stages.iter().any(|s: &Stage| s.name == *st.name.get_ref()) {
            return Err(src.err(
                st.name.span(),
                format!("{field}.stages"),
                format!("stage `{}` appears twice", st.name.get_ref()),
            ));
        }
        let at = Field::default()
            .key("models")
            .key(name)
            .key("stages")
            .index(i);
        raw_stages.push((at.clone(), st.on, st.function.clone(), st.engine.clone()));
        let raw = body::RawBody {
            on: st.on,
            function: st.function,
            params: st.params,
            engine: st.engine,
        };
        let (body, fault) = body::stage_body(src, &at, &at.key("params"), raw, path)?;
        let mut stage = Stage::new(st.name.get_ref().clone(), st.on);
        stage.fault = fault;
        stages.push(stage);
        defaults.push(st.time.map(|p| p.0));
        rts.push(body);
    }
    if m.variants.get_ref().is_empty() {
        return Err(src.err(
            m.variants.span(),
            format!("{field}.variants"),
            "a model needs at least one variant",
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    let mut unmeasured = Vec::new();
    let mut own_bodies = Vec::new();
    for (vi, mut v) in m.variants.into_inner().into_iter().enumerate() {
        let vname = v.get_ref().name.get_ref().clone();
        for (sname, table) in std::mem::take(&mut v.get_mut().params) {
            let vfield = format!("models.{name}.variants[{vname}].params.{sname}");
            let Some(si) = stages.iter().position(|s| s.name == sname) else {
                return Err(src.err(
                    table.span(),
                    vfield,
                    format!(
                        "no stage `{sname}` in model `{name}` (stages: {})",
                        list(stages.iter().map(|s| &s.name))
                    ),
                ));
            };
            let (at, on, function, engine) = raw_stages[si].clone();
            if on == Resource::Cpu && function.is_none() {
                return Err(src.err(
                    table.span(),
                    vfield,
                    format!("stage `{sname}` runs no function, so it takes no parameters"),
                ));
            }
            let params_at = Field::default()
                .key("models")
                .key(name)
                .key("variants")
                .index(vi)
                .key("params")
                .key(&sname);
            let span = table.span();
            let raw = body::RawBody {
                on,
                function,
                params: Some(table),
                engine,
            };
            let (body, fault) = body::stage_body(src, &at, &params_at, raw, path)?;
            if fault.is_some() {
                return Err(src.err(
                    span,
                    vfield,
                    "fault injection belongs to the stage (every variant), not to one variant",
                ));
            }
            own_bodies.push(((vi, si), body));
        }
        let ctx = ModelContext {
            name,
            stages: &stages,
            defaults: &defaults,
            shared: &m.shared,
            bodies: &rts,
        };
        let v = variant(src, &ctx, v)?;
        unmeasured.extend(v.unmeasured.iter().map(|&st| (variants.len(), st)));
        if let Some(dup) = variants.iter().find(|x| x.name == v.variant.name) {
            return Err(src.err(
                v.name_span,
                format!("{field}.variants[{}].name", dup.name),
                format!("variant `{}` appears twice in model `{name}`", dup.name),
            ));
        }
        variants.push(v.variant);
    }
    let model = Model {
        name: name.to_string(),
        stages,
        shared_parts: m.shared.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
        variants,
    };
    Ok((model, rts, unmeasured, own_bodies))
}

/// A model, its stages' bodies, the (variant, stage) times it leaves to a
/// measurement, and the bodies variants set for themselves.
type ModelParts = (
    Model,
    Vec<StageBody>,
    Vec<(usize, usize)>,
    Vec<((usize, usize), StageBody)>,
);

/// What a variant is checked against.
struct ModelContext<'a> {
    name: &'a str,
    stages: &'a [Stage],
    defaults: &'a [Option<rtmdl_core::ExecProfile>],
    shared: &'a BTreeMap<String, crate::raw::Size>,
    /// What each stage runs: a stage that runs something real may leave its
    /// time to `rtmdl profile`.
    bodies: &'a [StageBody],
}

/// One variant as loaded.
struct Loaded {
    variant: Variant,
    /// Where its name is (for a duplicate).
    name_span: Range<usize>,
    /// The stages whose time it leaves to a measurement.
    unmeasured: Vec<usize>,
}

fn variant(src: &Src, m: &ModelContext, v: Spanned<RawVariant>) -> Result<Loaded, ConfigError> {
    let vspan = v.span();
    let v = v.into_inner();
    let name = m.name;
    let vname = v.name.get_ref().clone();
    let vfield = format!("models.{name}.variants[{vname}]");
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
        if !m.stages.iter().any(|s| s.name == *k) {
            return Err(src.err(
                t.span(),
                format!("{vfield}.times.{k}"),
                format!(
                    "no stage `{k}` in model `{name}` (stages: {})",
                    list(m.stages.iter().map(|s| &s.name))
                ),
            ));
        }
    }
    let mut times = Vec::new();
    let mut unmeasured = Vec::new();
    for (i, st) in m.stages.iter().enumerate() {
        let t = v
            .times
            .get(&st.name)
            .map(|t| t.get_ref().0.clone())
            .or_else(|| m.defaults[i].clone());
        // A stage that runs a function or a model file can be measured: its
        // time may come from `rtmdl profile` (checked by what needs it).
        let runs = match &m.bodies[i] {
            StageBody::Function(_) => true,
            StageBody::Inference(p) => p.file.is_some() || v.file.is_some(),
            StageBody::Emulated => false,
        };
        let t = match t {
            None if runs => {
                unmeasured.push(i);
                Some(rtmdl_core::ExecProfile::Fixed(0))
            }
            t => t,
        };
        let Some(t) = t else {
            return Err(src.err(
                vspan.clone(),
                format!("{vfield}.times.{}", st.name),
                format!(
                    "no execution time for stage `{}`: give it in the variant's `times` or as the stage's `time` (a stage that runs a function or a model file may leave it to `rtmdl profile`)",
                    st.name
                ),
            ));
        };
        times.push(t);
    }
    Ok(Loaded {
        name_span: v.name.span(),
        variant: Variant {
            name: vname,
            accuracy: acc,
            shared_with: v.shared_with.map(|s| s.into_inner()),
            private_bytes: v.private.map_or(0, |s| s.0),
            times,
            file: v.file,
        },
        unmeasured,
    })
}

/// What a task is checked against.
struct TaskContext<'a> {
    models: &'a [Model],
    model_index: &'a BTreeMap<String, usize>,
    path: &'a Path,
}

fn task(
    src: &Src,
    i: usize,
    t: RawTask,
    ctx: &TaskContext,
    priorities: &mut Vec<(u32, Range<usize>)>,
) -> Result<(Task, Option<SourceSpec>), ConfigError> {
    let field = format!("tasks[{i}]");
    let Some(&model) = ctx.model_index.get(t.model.get_ref()) else {
        return Err(src.err(
            t.model.span(),
            format!("{field}.model"),
            format!(
                "no model `{}` (models: {})",
                t.model.get_ref(),
                list(ctx.model_index.keys())
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
    // Without `overrun`, `skip`: a release that finds the previous job
    // pending is dropped, so an overloaded task drops frames instead of
    // queueing them without bound (what a camera pipeline expects). A
    // deadline past the period means jobs overlap by design: `continue`.
    let overrun = t.overrun.unwrap_or(match &t.deadline {
        Some(d) if d.get_ref().0 > period => Overrun::Continue,
        _ => Overrun::Skip,
    });
    let deadline = deadline(src, &field, &t, period, overrun)?;
    let rate = |v: &Option<Spanned<f64>>, key: &str| -> Result<f64, ConfigError> {
        match v {
            None => Ok(0.0),
            Some(x) if (0.0..=1.0).contains(x.get_ref()) => Ok(*x.get_ref()),
            Some(x) => Err(src.err(
                x.span(),
                format!("{field}.{key}"),
                format!("expected a value between 0 and 1, got {}", x.get_ref()),
            )),
        }
    };
    let m = &ctx.models[model];
    let variant = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<usize>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        m.variant(v.get_ref()).map(Some).ok_or_else(|| {
            src.err(
                v.span(),
                format!("{field}.{key}"),
                format!(
                    "model `{}` has no variant `{}` (variants: {})",
                    m.name,
                    v.get_ref(),
                    list(m.variants.iter().map(|v| &v.name))
                ),
            )
        })
    };
    let priority = priority(src, &field, &t, priorities)?;
    let at = Field::default().key("tasks").index(i);
    let source = match t.source {
        Some(s) => Some(body::source(src, &at, s, ctx.path, period)?),
        None => None,
    };
    let max_misses = t
        .max_misses
        .as_ref()
        .map(|m| {
            max_misses(m.get_ref())
                .map_err(|why| src.err(m.span(), format!("{field}.max_misses"), why))
        })
        .transpose()?;
    // ζ, when not given, is the one the constraint implies (m / k): the
    // planner's and the monitor's rate bound.
    let max_miss_rate = match (&t.max_miss_rate, max_misses) {
        (None, Some(m)) => m.misses as f64 / m.of as f64,
        _ => rate(&t.max_miss_rate, "max_miss_rate")?,
    };
    let task = Task {
        name: t.name.get_ref().clone(),
        model,
        period,
        deadline,
        offset: t.offset.map_or(0, |o| o.0),
        max_miss_rate,
        min_accuracy: rate(&t.min_accuracy, "min_accuracy")?,
        priority,
        variant: variant(&t.variant, "variant")?,
        overrun,
        floor: variant(&t.floor, "floor")?,
        stop: t
            .stop
            .map(|s| positive(src, s, &format!("{field}.stop")))
            .transpose()?,
        max_misses,
    };
    Ok((task, source))
}

/// `"m in k"`: at most m missed jobs in any k consecutive ones, m < k.
fn max_misses(text: &str) -> Result<MaxMisses, String> {
    let expected = || {
        format!(
            "expected \"M in K\" (at most M misses in any K consecutive jobs, M < K), got {text:?}"
        )
    };
    let (m, k) = text.split_once(" in ").ok_or_else(expected)?;
    let (m, k): (u32, u32) = match (m.trim().parse(), k.trim().parse()) {
        (Ok(m), Ok(k)) => (m, k),
        _ => return Err(expected()),
    };
    if k == 0 || m >= k {
        return Err(expected());
    }
    Ok(MaxMisses { misses: m, of: k })
}

fn deadline(
    src: &Src,
    field: &str,
    t: &RawTask,
    period: Time,
    overrun: Overrun,
) -> Result<Time, ConfigError> {
    let Some(d) = &t.deadline else {
        return Ok(period);
    };
    let dl = d.get_ref().0;
    if dl == 0 {
        return Err(src.err(
            d.span(),
            format!("{field}.deadline"),
            "expected a deadline above 0",
        ));
    }
    if dl > period && overrun != Overrun::Continue {
        return Err(src.err(
            d.span(),
            format!("{field}.deadline"),
            "a deadline longer than the period is not allowed with overrun = \"skip\" or \"firm\" (a job is dropped while the previous one is pending); shorten it or use overrun = \"continue\"",
        ));
    }
    Ok(dl)
}

fn priority(
    src: &Src,
    field: &str,
    t: &RawTask,
    priorities: &mut Vec<(u32, Range<usize>)>,
) -> Result<Option<u32>, ConfigError> {
    let Some(p) = &t.priority else {
        return Ok(None);
    };
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
    Ok(Some(v as u32))
}

fn adapt(src: &Src, raw: Spanned<RawAdapt>) -> Result<AdaptOptions, ConfigError> {
    let span = raw.span();
    let a = raw.into_inner();
    let mut o = AdaptOptions::default();
    if let Some(w) = &a.window {
        o.window = match u32::try_from(*w.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(src.err(
                    w.span(),
                    "adapt.window",
                    format!("expected a window of at least 1 job, got {}", w.get_ref()),
                ));
            }
        };
    }
    for (v, key) in [(&a.low, "low"), (&a.high, "high")] {
        if let Some(x) = v
            && !(-1.0..=1.0).contains(x.get_ref())
        {
            return Err(src.err(
                x.span(),
                format!("adapt.{key}"),
                format!(
                    "expected a slack margin between -1 and 1 (a share of the deadline), got {}",
                    x.get_ref()
                ),
            ));
        }
    }
    o.low = a.low.as_ref().map_or(o.low, |x| *x.get_ref());
    o.high = a.high.as_ref().map_or(o.high, |x| *x.get_ref());
    if o.low >= o.high {
        let at = a
            .high
            .as_ref()
            .or(a.low.as_ref())
            .map_or(span, |x| x.span());
        return Err(src.err(
            at,
            "adapt.high",
            format!(
                "the margin to step up ({}) must be above the one to step down ({}): margins out of order",
                o.high, o.low
            ),
        ));
    }
    if let Some(h) = a.hold {
        o.hold = h.0;
    }
    if let Some(b) = a.timeline {
        o.bin = positive(src, b, "adapt.timeline")?;
    }
    Ok(o)
}
