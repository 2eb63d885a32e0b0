//! The task model: what runs (models and their variants), where (the
//! platform) and how often (periodic tasks). All times are nanoseconds.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A point in time or a duration, in nanoseconds.
pub type Time = u64;

/// The device: CPU workers for CPU sub-tasks and GPU lanes for inference.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Platform {
    /// Threads (and cores) that run CPU sub-tasks.
    pub cpu_workers: usize,
    /// K: how many GPU sub-tasks may run at once (GPU packing).
    pub gpu_lanes: usize,
    /// `gpu_slowdown[n-1]`: how much slower every running GPU sub-task gets
    /// while n lanes are busy (1.0 = no interference). Length `gpu_lanes`.
    pub gpu_slowdown: Vec<f64>,
    /// Bytes all variants of all tasks may occupy together, if bounded.
    pub storage_budget: Option<u64>,
    /// Watchdog and quarantine rules: the core fails hung sub-tasks.
    pub faults: crate::fault::FaultPolicy,
    /// Physical cores the compute threads share: the CPU workers and, when
    /// `lanes_on_cpu`, the GPU lanes. When more of them compute at once,
    /// they share the cores equally. `None`: the CPU workers have a core
    /// each (and share `cpu_workers` cores under one thread per task).
    pub cores: Option<usize>,
    /// The GPU lanes run a CPU engine (no GPU here): their inferences
    /// compute on the same cores as the CPU workers, and `contention`
    /// replaces `gpu_slowdown`.
    pub lanes_on_cpu: bool,
    /// `contention[n-1]`: measured slowdown of every computing sub-task
    /// while n compute threads run at once, beyond sharing the cores
    /// (caches, memory bandwidth); the last value holds beyond the end.
    /// Empty: none.
    pub contention: Vec<f64>,
    /// The real runtime's own delays, which the simulator adds.
    pub overheads: Overheads,
}

/// Delays of the real runtime around the work (thread wake-ups and
/// hand-offs), measured by `rtmdl profile` or in a real run. Each is drawn
/// per event; `None` is no delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overheads {
    /// A job's nominal release → the dispatcher releases it.
    #[serde(default)]
    pub release: Option<ExecProfile>,
    /// The core decides a start → the worker begins ([CPU, GPU]): the slot
    /// is taken and idle meanwhile.
    #[serde(default)]
    pub dispatch: [Option<ExecProfile>; 2],
    /// The work ends → the core is told ([CPU, GPU]): the slot is still
    /// taken meanwhile, and the next stage waits.
    #[serde(default)]
    pub back: [Option<ExecProfile>; 2],
}

impl Platform {
    /// Contention factor while `n` compute threads run (1.0 when unknown).
    pub fn contention(&self, n: usize) -> f64 {
        factor(&self.contention, n).max(1.0)
    }

    /// Slowdown factor while `busy` lanes run (1.0 when idle or unknown).
    pub fn slowdown(&self, busy: usize) -> f64 {
        factor(&self.gpu_slowdown, busy)
    }
}

/// The factor for `n` (1-based) of a measured list, the last one beyond
/// its end; 1.0 for none (`n` = 0) or an empty list.
fn factor(measured: &[f64], n: usize) -> f64 {
    match n {
        0 => 1.0,
        n => measured
            .get(n - 1)
            .or(measured.last())
            .copied()
            .unwrap_or(1.0),
    }
}

/// Which resource a sub-task needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Gpu,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Cpu => "cpu",
            Resource::Gpu => "gpu",
        })
    }
}

/// One step of a job's chain, e.g. `pre` on the CPU or `infer` on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: String,
    pub on: Resource,
    /// Injected faults (config `function = "fault"` or `params.fault`), so
    /// the simulator fails, hangs and quarantines like a real run.
    pub fault: Option<crate::fault::FaultSpec>,
}

impl Stage {
    /// A stage without injected faults.
    pub fn new(name: impl Into<String>, on: Resource) -> Self {
        Stage {
            name: name.into(),
            on,
            fault: None,
        }
    }
}

/// Execution time of one sub-task: what the simulator samples from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ExecProfile {
    /// Always this long.
    Fixed(Time),
    /// Piecewise-linear inverse CDF through (0, min), (.5, p50), (.9, p90),
    /// (.99, p99), (1, max).
    Quantiles {
        min: Time,
        p50: Time,
        p90: Time,
        p99: Time,
        max: Time,
    },
    /// Measured samples, drawn uniformly.
    Samples(Vec<Time>),
}

impl ExecProfile {
    /// Every time multiplied by `f` (≥ 0).
    pub fn scaled(&self, f: f64) -> ExecProfile {
        let x = |t: Time| (t as f64 * f.max(0.0)).round() as Time;
        match self {
            ExecProfile::Fixed(t) => ExecProfile::Fixed(x(*t)),
            ExecProfile::Quantiles {
                min,
                p50,
                p90,
                p99,
                max,
            } => ExecProfile::Quantiles {
                min: x(*min),
                p50: x(*p50),
                p90: x(*p90),
                p99: x(*p99),
                max: x(*max),
            },
            ExecProfile::Samples(v) => ExecProfile::Samples(v.iter().map(|&t| x(t)).collect()),
        }
    }

    /// Draw one execution time.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Time {
        match self {
            ExecProfile::Fixed(t) => *t,
            ExecProfile::Samples(s) => s[rng.random_range(0..s.len())],
            ExecProfile::Quantiles { .. } => self.quantile(rng.random::<f64>()),
        }
    }

    /// The q-quantile (0 ≤ q ≤ 1).
    pub fn quantile(&self, q: f64) -> Time {
        match self {
            ExecProfile::Fixed(t) => *t,
            ExecProfile::Samples(s) => {
                let mut v = s.clone();
                v.sort_unstable();
                v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
            }
            ExecProfile::Quantiles {
                min,
                p50,
                p90,
                p99,
                max,
            } => {
                let pts = [
                    (0.0, *min),
                    (0.5, *p50),
                    (0.9, *p90),
                    (0.99, *p99),
                    (1.0, *max),
                ];
                let q = q.clamp(0.0, 1.0);
                for w in pts.windows(2) {
                    let ((q0, t0), (q1, t1)) = (w[0], w[1]);
                    if q <= q1 {
                        let f = (q - q0) / (q1 - q0);
                        return (t0 as f64 + f * (t1 as f64 - t0 as f64)).round() as Time;
                    }
                }
                *max
            }
        }
    }

    /// Mean execution time.
    pub fn mean(&self) -> f64 {
        match self {
            ExecProfile::Fixed(t) => *t as f64,
            ExecProfile::Samples(s) => s.iter().map(|&t| t as f64).sum::<f64>() / s.len() as f64,
            ExecProfile::Quantiles { .. } => {
                // Integrate the piecewise-linear inverse CDF.
                (0..1000)
                    .map(|i| self.quantile((i as f64 + 0.5) / 1000.0) as f64)
                    .sum::<f64>()
                    / 1000.0
            }
        }
    }

    /// Worst case the profile admits.
    pub fn max(&self) -> Time {
        match self {
            ExecProfile::Fixed(t) => *t,
            ExecProfile::Samples(s) => s.iter().copied().max().unwrap_or(0),
            ExecProfile::Quantiles { max, .. } => *max,
        }
    }
}

/// One scaled version of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub name: String,
    /// Measured top-1 accuracy on held-out data, 0..1.
    pub accuracy: f64,
    /// Name of the model's shared part this variant uses (stored once).
    pub shared_with: Option<String>,
    /// Bytes only this variant needs.
    pub private_bytes: u64,
    /// Execution time of each stage of the model's chain, same order.
    pub times: Vec<ExecProfile>,
    /// ONNX file of the variant, for the real runtime.
    pub file: Option<String>,
}

impl Variant {
    /// Mean time of the whole chain, all resources together.
    pub fn mean_total(&self) -> f64 {
        self.times.iter().map(ExecProfile::mean).sum()
    }
}

/// A model family: a sub-task chain and the variants that can run it.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub stages: Vec<Stage>,
    /// Shared parts (name, bytes); each is stored once however many
    /// variants use it.
    pub shared_parts: Vec<(String, u64)>,
    pub variants: Vec<Variant>,
}

impl Model {
    /// Index of a variant by name.
    pub fn variant(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }

    /// The original (uncompressed) variant: the most accurate one, ties
    /// broken by the longer chain.
    pub fn original(&self) -> usize {
        (0..self.variants.len())
            .max_by(|&a, &b| {
                let (va, vb) = (&self.variants[a], &self.variants[b]);
                va.accuracy
                    .total_cmp(&vb.accuracy)
                    .then(va.mean_total().total_cmp(&vb.mean_total()))
                    .then(b.cmp(&a))
            })
            .unwrap_or(0)
    }

    /// The compressed variant: the fastest chain, ties broken by accuracy.
    pub fn compressed(&self) -> usize {
        (0..self.variants.len())
            .min_by(|&a, &b| {
                let (va, vb) = (&self.variants[a], &self.variants[b]);
                va.mean_total()
                    .total_cmp(&vb.mean_total())
                    .then(vb.accuracy.total_cmp(&va.accuracy))
                    .then(a.cmp(&b))
            })
            .unwrap_or(0)
    }

    /// Highest accuracy among the variants.
    pub fn max_accuracy(&self) -> f64 {
        self.variants.iter().map(|v| v.accuracy).fold(0.0, f64::max)
    }

    /// Bytes needed to store the given variants: each shared part once,
    /// plus each variant's private bytes once.
    pub fn storage(&self, chosen: impl IntoIterator<Item = usize>) -> u64 {
        let mut chosen: Vec<usize> = chosen.into_iter().collect();
        chosen.sort_unstable();
        chosen.dedup();
        let mut parts: Vec<&str> = chosen
            .iter()
            .filter_map(|&v| self.variants[v].shared_with.as_deref())
            .collect();
        parts.sort_unstable();
        parts.dedup();
        let shared: u64 = parts
            .iter()
            .map(|p| {
                self.shared_parts
                    .iter()
                    .find(|(n, _)| n == p)
                    .map_or(0, |(_, b)| *b)
            })
            .sum();
        shared
            + chosen
                .iter()
                .map(|&v| self.variants[v].private_bytes)
                .sum::<u64>()
    }
}

/// What a task does with a job that overruns: one released while its
/// previous job is still pending, or one past its deadline.
///
/// Whatever the rule, a task's jobs run in order, as in the classical
/// periodic task model: with split queues a job's sub-task waits until the
/// task's previous job has finished that stage (so consecutive jobs may
/// pipeline across stages but never overtake), and a job that holds a
/// thread start to end (black box, one thread per task) waits for the
/// previous job to end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overrun {
    /// Queue the new job; late jobs still finish (and count as missed).
    #[default]
    Continue,
    /// Drop the new job; it counts as missed (and as dropped). A late job
    /// keeps running and keeps dropping the releases behind it.
    Skip,
    /// A late result is worthless (perception): a job still unfinished at
    /// its deadline is retired then (counted missed; a sub-task it is
    /// running ends, nothing after it starts) and no longer holds up the
    /// next release, so one overrun costs one miss. A job released while
    /// the previous one is pending and still on time is dropped, as with
    /// `skip`.
    Firm,
}

/// A periodic deep-learning task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub name: String,
    /// Index into [`TaskSet::models`].
    pub model: usize,
    pub period: Time,
    /// Relative deadline.
    pub deadline: Time,
    /// First release.
    pub offset: Time,
    /// ζ: tolerated deadline-miss rate, 0..1.
    pub max_miss_rate: f64,
    pub min_accuracy: f64,
    /// Fixed priority from a plan; 1 is the most urgent.
    pub priority: Option<u32>,
    /// Variant from a plan (index into the model's variants).
    pub variant: Option<usize>,
    pub overrun: Overrun,
    /// The slowest variant online switching may go down to (besides
    /// `min_accuracy`); `None`: any that meets `min_accuracy`.
    pub floor: Option<usize>,
    /// No release at or after this time (a task that stops mid-run).
    pub stop: Option<Time>,
    /// An (m,k)-firm constraint beside ζ: never more than `misses` missed
    /// jobs in any `of` consecutive ones (`max_misses = "2 in 10"`).
    pub max_misses: Option<MaxMisses>,
}

/// (m,k)-firm: at most `misses` (m) missed jobs in any `of` (k)
/// consecutive jobs of a task; a dropped or failed job counts as missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxMisses {
    pub misses: u32,
    pub of: u32,
}

/// Everything one config file describes.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSet {
    pub platform: Platform,
    pub models: Vec<Model>,
    pub tasks: Vec<Task>,
    /// Online variant switching, when on (`--adapt`).
    pub adapt: Option<crate::adapt::AdaptOptions>,
}

/// Per task: which variant and which priority (1 = most urgent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    pub variant: usize,
    pub priority: u32,
}

/// How variants are chosen for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantChoice {
    /// The most accurate variant of every model (NMC baselines).
    Original,
    /// The fastest variant of every model (MC baselines).
    Compressed,
    /// Variants and priorities from a plan.
    Plan,
}

impl std::fmt::Display for VariantChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VariantChoice::Original => "original",
            VariantChoice::Compressed => "compressed",
            VariantChoice::Plan => "plan",
        })
    }
}

impl std::str::FromStr for VariantChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            VariantChoice::Original,
            VariantChoice::Compressed,
            VariantChoice::Plan,
        ]
        .into_iter()
        .find(|v| v.to_string() == s)
        .ok_or_else(|| format!("unknown variants `{s}`: expected original, compressed or plan"))
    }
}

impl TaskSet {
    /// This task set with every task's variant and priority taken from
    /// `assign` (one entry per task, in task order), as a plan file does.
    pub fn with_assignments(&self, assign: &[Assignment]) -> TaskSet {
        let mut ts = self.clone();
        for (t, a) in ts.tasks.iter_mut().zip(assign) {
            t.variant = Some(a.variant);
            t.priority = Some(a.priority);
        }
        ts
    }

    /// The model of task `t`.
    pub fn model_of(&self, t: usize) -> &Model {
        &self.models[self.tasks[t].model]
    }

    /// Deadline-monotonic priorities (1 = shortest deadline; ties by period,
    /// then by config order).
    pub fn deadline_monotonic(&self) -> Vec<u32> {
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        order.sort_by_key(|&t| (self.tasks[t].deadline, self.tasks[t].period, t));
        ranks(&order)
    }

    /// Utilisation of task `t` running variant `v`: mean chain time / period.
    pub fn utilisation(&self, t: usize, v: usize) -> f64 {
        self.model_of(t).variants[v].mean_total() / self.tasks[t].period as f64
    }

    /// Resolve variants and priorities for every task.
    ///
    /// `Plan` takes them from the tasks' `variant`/`priority` fields (which
    /// a plan file overrides); a task without a variant gets the original,
    /// and priorities missing anywhere fall back to deadline-monotonic.
    pub fn assignments(&self, choice: VariantChoice) -> Vec<Assignment> {
        let dm = self.deadline_monotonic();
        let all_prio = self.tasks.iter().all(|t| t.priority.is_some());
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let m = self.model_of(i);
                let variant = match choice {
                    VariantChoice::Original => m.original(),
                    VariantChoice::Compressed => m.compressed(),
                    VariantChoice::Plan => t.variant.unwrap_or_else(|| m.original()),
                };
                let priority = match (choice, all_prio) {
                    (VariantChoice::Plan, true) => t.priority.unwrap_or(dm[i]),
                    _ => dm[i],
                };
                Assignment { variant, priority }
            })
            .collect()
    }

    /// Whether every task carries a variant and a priority (a full plan).
    pub fn has_plan(&self) -> bool {
        self.tasks
            .iter()
            .all(|t| t.priority.is_some() && t.variant.is_some())
    }

    /// Storage of the chosen variants, all models together.
    pub fn storage(&self, assign: &[Assignment]) -> u64 {
        (0..self.models.len())
            .map(|m| {
                self.models[m].storage(
                    self.tasks
                        .iter()
                        .zip(assign)
                        .filter(|(t, _)| t.model == m)
                        .map(|(_, a)| a.variant),
                )
            })
            .sum()
    }

    /// Mean normalised accuracy loss: Σ (acc_max − acc)/acc_max ÷ tasks.
    pub fn accuracy_loss(&self, assign: &[Assignment]) -> f64 {
        if self.tasks.is_empty() {
            return 0.0;
        }
        let total: f64 = assign
            .iter()
            .enumerate()
            .map(|(t, a)| {
                let m = self.model_of(t);
                let max = m.max_accuracy();
                if max > 0.0 {
                    (max - m.variants[a.variant].accuracy) / max
                } else {
                    0.0
                }
            })
            .sum();
        total / self.tasks.len() as f64
    }

    /// The same set with the release rates of the tasks in `which` (all
    /// when `None`) multiplied by `factor`: periods, deadlines and offsets
    /// divided by it.
    pub fn scale_rates(&self, factor: f64, which: Option<&[usize]>) -> TaskSet {
        let mut t = self.clone();
        for (i, task) in t.tasks.iter_mut().enumerate() {
            if which.is_some_and(|w| !w.contains(&i)) {
                continue;
            }
            let s = |x: Time| ((x as f64 / factor).round() as Time).max(1);
            task.period = s(task.period);
            task.deadline = s(task.deadline);
            task.offset = (task.offset as f64 / factor).round() as Time;
        }
        t
    }

    /// Least common multiple of the periods, capped at `cap`.
    pub fn hyperperiod(&self, cap: Time) -> Time {
        fn gcd(a: Time, b: Time) -> Time {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        let mut h: Time = 1;
        for t in &self.tasks {
            let p = t.period.max(1);
            h = (h / gcd(h, p)).saturating_mul(p);
            if h >= cap {
                return cap;
            }
        }
        h
    }
}

/// Turn an order (most urgent first) into 1-based priority numbers per item.
pub fn ranks(order: &[usize]) -> Vec<u32> {
    let mut r = vec![0; order.len()];
    for (rank, &i) in order.iter().enumerate() {
        r[i] = rank as u32 + 1;
    }
    r
}
