//! Results of a run, simulated or real, in one shape: the table people read
//! and the JSON tools read. Both drivers fill it from the same scheduler
//! counters, so a simulation and a real run compare line by line.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use crate::model::{Assignment, TaskSet, Time};
use crate::sched::{Decision, TaskCounters};

/// Response-time percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nanosecond samples (response times, release lateness, ...) kept in
/// memory that does not grow with the run: an HDR histogram with three
/// significant digits up to one hour (longer values count as one hour),
/// plus the exact largest value. A real run records every job into these,
/// so a ten-minute soak and a ten-hour one use the same memory.
#[derive(Clone, Debug)]
pub struct Samples {
    hist: Histogram<u64>,
    max: Time,
}

impl Default for Samples {
    fn default() -> Self {
        Samples::new()
    }
}

impl Samples {
    /// Lowest value told apart from zero, in ns.
    const LOW: Time = 1;
    /// Highest value recorded as itself, in ns.
    const HIGH: Time = 3_600_000_000_000;

    /// An empty set (its ~270 KB are allocated and written here, not when
    /// samples arrive).
    pub fn new() -> Self {
        Samples {
            hist: Histogram::new_with_bounds(Self::LOW, Self::HIGH, 3)
                .expect("constant histogram bounds are valid"),
            max: 0,
        }
    }

    pub fn record(&mut self, ns: Time) {
        self.hist.saturating_record(ns);
        self.max = self.max.max(ns);
    }

    /// Add every sample of `other` to these.
    pub fn merge(&mut self, other: &Samples) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.max = self.max.max(other.max);
    }

    /// How many samples were recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The exact largest sample (0 when empty).
    pub fn max(&self) -> Time {
        self.max
    }

    /// The value at quantile `q` in ns: the top of its histogram bin (so
    /// within 0.1 % above the exact order statistic), never above `max`.
    pub fn quantile(&self, q: f64) -> Time {
        if self.is_empty() {
            return 0;
        }
        self.hist.value_at_quantile(q).min(self.max)
    }

    /// p50, p99 and max, in ms.
    pub fn percentiles(&self) -> Percentiles {
        if self.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: self.quantile(0.5) as f64 / 1e6,
            p99: self.quantile(0.99) as f64 / 1e6,
            max: self.max as f64 / 1e6,
        }
    }

    /// Every recorded bin, ascending: (value in ns, the top of the bin but
    /// never above `max`; how many samples fell in it).
    pub fn bins(&self) -> impl Iterator<Item = (Time, u64)> + '_ {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to().min(self.max), v.count_at_value()))
    }
}

/// A measured distribution in a report: percentiles and coarse bins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (upper bound in ms, count) per power-of-two bin from 1 µs.
    pub bins: Vec<(f64, u64)>,
}

impl Samples {
    /// The samples as a report distribution.
    pub fn distribution(&self) -> Distribution {
        let p = self.percentiles();
        let mut bins = Vec::new();
        if !self.is_empty() {
            for v in self.hist.iter_log(1_000, 2.0) {
                let n = v.count_since_last_iteration();
                if n > 0 {
                    bins.push((v.value_iterated_to() as f64 / 1e6, n));
                }
            }
        }
        Distribution {
            count: self.len(),
            p50_ms: p.p50,
            p99_ms: p.p99,
            max_ms: p.max,
            bins,
        }
    }
}

/// What only a real run measures about the runtime itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeStats {
    /// Nominal release → the dispatcher released the job.
    pub release_lateness: Distribution,
    /// The core decided a start → the CPU worker / GPU lane began.
    pub dispatch_cpu: Distribution,
    pub dispatch_gpu: Distribution,
    /// The sub-task ended → the dispatcher told the core.
    pub back_cpu: Distribution,
    pub back_gpu: Distribution,
    /// Per task, per stage: the sub-task's time on its worker, in the run.
    #[serde(default)]
    pub stages: Vec<StageDistribution>,
}

/// How long one stage of one task took on its worker in a real run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageDistribution {
    pub task: String,
    pub stage: String,
    pub time: Distribution,
}

/// One task's line of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    pub variant: String,
    /// The fixed priority the policy ran the task at (1 = most urgent);
    /// none for policies without fixed priorities (EDF, FIFO).
    pub priority: Option<u32>,
    /// Jobs released.
    pub jobs: u64,
    /// Jobs completed on time.
    pub completed: u64,
    /// Jobs that missed their deadline (late or never finished).
    pub missed: u64,
    /// Jobs dropped by the skip rule (counted in the miss rate).
    pub dropped: u64,
    /// Jobs ended by a failing sub-task, a hang or quarantine (counted in
    /// the miss rate: a job that fails is not delivered on time).
    pub failed: u64,
    /// (missed + dropped + failed) / jobs: the share not delivered on time,
    /// which ζ bounds.
    pub miss_rate: f64,
    /// ζ, the tolerated miss rate.
    pub max_miss_rate: f64,
    pub accuracy: f64,
    pub response_ms: Percentiles,
    /// For a real run: what the simulator predicted for the same config,
    /// profile, policy and seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Predicted>,
    /// Share of the released frames answered correctly and on time, when
    /// the frames carry their ground truth (a `route` source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timely_accuracy: Option<f64>,
    /// The judged answers behind it: frames, on time, right, and the
    /// episodes (light phases, signs) answered correctly in time, missed
    /// and wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<crate::timely::TaskScore>,
    /// Its (m,k)-firm constraint, when it has one, and how the run kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_misses: Option<FirmReport>,
}

/// How a run kept a task's (m,k)-firm constraint: at most `misses` in any
/// `of` consecutive jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmReport {
    pub misses: u32,
    pub of: u32,
    /// The most misses seen in `of` consecutive jobs.
    pub worst: u32,
    /// Windows of `of` consecutive jobs with more than `misses` missed.
    pub violations: u64,
    /// Windows of `of` consecutive jobs judged.
    pub windows: u64,
}

/// (m,k)-firm accounting of one task: outcomes are put in job order (a
/// job's outcome can come before an earlier one's), then slid over in
/// windows of k. Memory: k outcomes plus the jobs in flight.
#[derive(Clone, Debug)]
struct FirmRecorder {
    report: FirmReport,
    next: u64,
    early: std::collections::BTreeMap<u64, bool>,
    last: VecDeque<bool>,
    missed: u32,
}

impl FirmRecorder {
    fn new(m: crate::model::MaxMisses) -> Self {
        FirmRecorder {
            report: FirmReport {
                misses: m.misses,
                of: m.of.max(1),
                ..Default::default()
            },
            next: 0,
            early: Default::default(),
            last: VecDeque::new(),
            missed: 0,
        }
    }

    /// Job `seq` ended, missed or not; its first outcome counts (a missed
    /// job that fails later is one miss).
    fn ended(&mut self, seq: u64, missed: bool) {
        if seq < self.next || self.early.contains_key(&seq) {
            return;
        }
        self.early.insert(seq, missed);
        while let Some(m) = self.early.remove(&self.next) {
            self.slide(m);
            self.next += 1;
        }
    }

    fn slide(&mut self, missed: bool) {
        let k = self.report.of as usize;
        self.last.push_back(missed);
        self.missed += missed as u32;
        if self.last.len() > k && self.last.pop_front() == Some(true) {
            self.missed -= 1;
        }
        let r = &mut self.report;
        r.worst = r.worst.max(self.missed);
        if self.last.len() == k {
            r.windows += 1;
            r.violations += (self.missed > r.misses) as u64;
        }
    }

    /// The report, the jobs still out of order (their predecessors never
    /// ended) taken in order.
    fn finish(&self) -> FirmReport {
        let mut f = self.clone();
        for (_, m) in std::mem::take(&mut f.early) {
            f.slide(m);
        }
        f.report
    }
}

/// A simulated prediction of one task, next to a measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    pub miss_rate: f64,
    pub response_ms: Percentiles,
    /// Predicted timely accuracy: the simulated share of jobs completed on
    /// time × the variant's accuracy (set where the real run judged its
    /// answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timely_accuracy: Option<f64>,
}

/// Busy fraction of the CPU workers and of the GPU lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisation {
    pub cpu: f64,
    pub gpu: f64,
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub policy: String,
    pub variants: String,
    /// Length of the release window.
    pub duration_s: f64,
    /// "simulate" or "run".
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub tasks: Vec<TaskReport>,
    /// Σ (missed + dropped + failed) / Σ jobs.
    pub miss_rate: f64,
    /// Highest per-task miss rate.
    pub worst_miss_rate: f64,
    /// Mean normalised accuracy loss over tasks.
    pub accuracy_loss: f64,
    pub utilisation: Utilisation,
    /// A real run's measured hand-offs and release lateness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    /// A real run's interference probe: what the machine did to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interference: Option<crate::interference::Interference>,
    /// Why the missed jobs missed, per task (when asked for: `--why`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<crate::why::WhyReport>,
    /// A real run's: the same split from its simulation, term by term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_predicted: Option<crate::why::WhyReport>,
    /// Miss rate and variant over time (with online switching, or when
    /// asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// Overall timely accuracy (frames weighted) over the tasks whose
    /// answers were judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timely_accuracy: Option<f64>,
    /// Red phases of a traffic light not answered correctly in time within
    /// the reaction window ([`crate::timely::REACTION`]), over the tasks
    /// that judge lights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub red_lights_run: Option<u64>,
    /// Extra facts from the driver (engine, real-time priorities, ...).
    #[serde(default, skip_serializing_if = "serde_json_map_is_empty")]
    pub notes: std::collections::BTreeMap<String, String>,
}

fn serde_json_map_is_empty(m: &std::collections::BTreeMap<String, String>) -> bool {
    m.is_empty()
}

/// Collects from the core's decisions, per task: response times, jobs
/// started per variant, and (when asked) a timeline.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub responses: Vec<Samples>,
    /// Per task, per variant of its model: jobs that started.
    pub variant_jobs: Vec<Vec<u64>>,
    pub timeline: Option<TimelineRecorder>,
    /// Per task with an (m,k)-firm constraint, its accounting.
    firm: Vec<Option<FirmRecorder>>,
}

impl Recorder {
    pub fn new(ts: &TaskSet) -> Self {
        let tasks = ts.tasks.len();
        Recorder {
            responses: (0..tasks).map(|_| Samples::new()).collect(),
            variant_jobs: vec![Vec::new(); tasks],
            timeline: None,
            firm: ts
                .tasks
                .iter()
                .map(|t| t.max_misses.map(FirmRecorder::new))
                .collect(),
        }
    }

    /// The same, also keeping a timeline in bins of `bin` ns, each task
    /// starting at its variant in `variants`.
    pub fn with_timeline(mut self, bin: Time, variants: Vec<usize>) -> Self {
        self.timeline = Some(TimelineRecorder {
            bin: bin.max(1),
            bins: vec![Vec::new(); variants.len()],
            variant: variants,
            switches: Vec::new(),
        });
        self
    }

    /// Take note of one decision.
    pub fn observe(&mut self, d: &Decision) {
        match *d {
            Decision::Complete {
                task, release, at, ..
            } => self.responses[task].record(at - release),
            Decision::Start {
                task,
                stage: 0,
                variant,
                ..
            } => {
                let v = &mut self.variant_jobs[task];
                if v.len() <= variant {
                    v.resize(variant + 1, 0);
                }
                v[variant] += 1;
            }
            _ => {}
        }
        let ended = match *d {
            Decision::Complete {
                task,
                seq,
                late: false,
                ..
            } => Some((task, seq, false)),
            Decision::Miss { task, seq, .. }
            | Decision::Drop { task, seq, .. }
            | Decision::Fail { task, seq, .. } => Some((task, seq, true)),
            _ => None,
        };
        if let Some((task, seq, missed)) = ended
            && let Some(Some(f)) = self.firm.get_mut(task)
        {
            f.ended(seq, missed);
        }
        if let Some(t) = self.timeline.as_mut() {
            t.observe(d);
        }
    }
}

/// A timeline as it is recorded: per task, per bin of time, jobs ended and
/// missed and the variant at the bin's end; and every switch.
#[derive(Clone, Debug, Default)]
pub struct TimelineRecorder {
    bin: Time,
    variant: Vec<usize>,
    /// Per task, per bin: (ended, missed, variant).
    bins: Vec<Vec<(u64, u64, usize)>>,
    /// (time, task, from, to).
    switches: Vec<(Time, usize, usize, usize)>,
}

impl TimelineRecorder {
    fn slot(&mut self, task: usize, at: Time) -> &mut (u64, u64, usize) {
        let i = (at / self.bin) as usize;
        let v = self.variant[task];
        let bins = &mut self.bins[task];
        while bins.len() <= i {
            bins.push((0, 0, v));
        }
        &mut bins[i]
    }

    fn observe(&mut self, d: &Decision) {
        match *d {
            // A late job was counted when its deadline passed.
            Decision::Complete {
                task,
                at,
                late: false,
                ..
            } => self.slot(task, at).0 += 1,
            Decision::Miss { task, at, .. }
            | Decision::Drop { task, at, .. }
            | Decision::Fail {
                task,
                at,
                after_miss: false,
                ..
            } => {
                let b = self.slot(task, at);
                b.0 += 1;
                b.1 += 1;
            }
            Decision::Switch { task, variant, at } => {
                self.switches.push((at, task, self.variant[task], variant));
                self.variant[task] = variant;
                self.slot(task, at).2 = variant;
            }
            _ => {}
        }
    }
}

/// A run over time: per task and bin, the miss rate and the variant in use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub bin_ms: f64,
    pub rows: Vec<TimelineRow>,
    pub switches: Vec<SwitchRow>,
}

impl Timeline {
    /// `task`'s miss rate over the bins that start in [from, to) ms (jobs
    /// weighted), and how many jobs ended there.
    pub fn miss_rate(&self, task: &str, from_ms: f64, to_ms: f64) -> (f64, u64) {
        let (mut missed, mut jobs) = (0.0, 0);
        for r in self.rows_in(task, from_ms, to_ms) {
            missed += r.miss_rate * r.jobs as f64;
            jobs += r.jobs;
        }
        (missed / jobs.max(1) as f64, jobs)
    }

    /// `task`'s bins that start in [from, to) ms.
    pub fn rows_in<'a>(
        &'a self,
        task: &'a str,
        from_ms: f64,
        to_ms: f64,
    ) -> impl Iterator<Item = &'a TimelineRow> + 'a {
        self.rows
            .iter()
            .filter(move |r| r.task == task && r.t_ms >= from_ms && r.t_ms < to_ms)
    }

    /// The switches, one line each ("no variant switch" when none).
    pub fn switch_table(&self) -> String {
        if self.switches.is_empty() {
            return "no variant switch\n".into();
        }
        let mut s = format!("{} variant switch(es):\n", self.switches.len());
        for w in &self.switches {
            s += &format!(
                "  {:>10.1} ms  {}: {} -> {}\n",
                w.t_ms, w.task, w.from, w.to
            );
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Start of the bin.
    pub t_ms: f64,
    pub task: String,
    /// Misses over jobs that ended in the bin (0 when none ended).
    pub miss_rate: f64,
    pub jobs: u64,
    /// The variant in use at the end of the bin, and its accuracy.
    pub variant: String,
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchRow {
    pub t_ms: f64,
    pub task: String,
    pub from: String,
    pub to: String,
}

impl TimelineRecorder {
    /// The timeline with names, for the report.
    pub fn timeline(&self, ts: &TaskSet) -> Timeline {
        let name = |t: usize, v: usize| ts.model_of(t).variants[v].name.clone();
        let mut rows = Vec::new();
        for (t, bins) in self.bins.iter().enumerate() {
            for (i, &(ended, missed, v)) in bins.iter().enumerate() {
                rows.push(TimelineRow {
                    t_ms: (i as u64 * self.bin) as f64 / 1e6,
                    task: ts.tasks[t].name.clone(),
                    miss_rate: if ended == 0 {
                        0.0
                    } else {
                        missed as f64 / ended as f64
                    },
                    jobs: ended,
                    variant: name(t, v),
                    accuracy: ts.model_of(t).variants[v].accuracy,
                });
            }
        }
        Timeline {
            bin_ms: self.bin as f64 / 1e6,
            rows,
            switches: self
                .switches
                .iter()
                .map(|&(at, t, from, to)| SwitchRow {
                    t_ms: at as f64 / 1e6,
                    task: ts.tasks[t].name.clone(),
                    from: name(t, from),
                    to: name(t, to),
                })
                .collect(),
        }
    }
}

/// With online switching on: the tasks that have no faster variant to
/// move to (one variant, or none above their floor), named once.
fn adapt_notes(ts: &TaskSet, assign: &[Assignment]) -> std::collections::BTreeMap<String, String> {
    let mut notes = std::collections::BTreeMap::new();
    if ts.adapt.is_none() {
        return notes;
    }
    let fixed: Vec<&str> = (0..ts.tasks.len())
        .filter(|&t| {
            crate::adapt::Monitor::new(ts, t, assign[t].variant)
                .ladder()
                .len()
                < 2
        })
        .map(|t| ts.tasks[t].name.as_str())
        .collect();
    if !fixed.is_empty() {
        notes.insert(
            "adapt".into(),
            format!(
                "no faster variant to switch to (switching is a no-op for them): {}",
                fixed.join(", ")
            ),
        );
    }
    notes
}

/// What the report builder needs beyond counters and responses.
pub struct RunInfo<'a> {
    pub policy: &'a str,
    pub variants: &'a str,
    pub mode: &'a str,
    pub duration: Time,
    pub seed: Option<u64>,
    pub utilisation: (f64, f64),
    /// The priority the policy gave each task ([`crate::Policy::priority`]).
    pub priorities: Vec<Option<u32>>,
}

/// The job-weighted accuracy of task `t` when its jobs ran more than one
/// variant (online switching).
fn used_accuracy(ts: &TaskSet, t: usize, jobs: &[u64]) -> Option<f64> {
    if jobs.iter().filter(|&&n| n > 0).count() < 2 {
        return None;
    }
    let variants = &ts.model_of(t).variants;
    let n: u64 = jobs.iter().sum();
    let sum: f64 = jobs
        .iter()
        .enumerate()
        .map(|(v, &k)| k as f64 * variants[v].accuracy)
        .sum();
    Some(sum / n as f64)
}

impl RunReport {
    /// Assemble a report.
    pub fn build(
        ts: &TaskSet,
        assign: &[Assignment],
        counters: &[TaskCounters],
        recorder: &Recorder,
        info: RunInfo<'_>,
    ) -> RunReport {
        let tasks: Vec<TaskReport> = ts
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let c = counters[i];
                let v = &ts.model_of(i).variants[assign[i].variant];
                TaskReport {
                    name: t.name.clone(),
                    variant: v.name.clone(),
                    priority: info.priorities.get(i).copied().flatten(),
                    jobs: c.released,
                    completed: c.completed,
                    missed: c.missed,
                    dropped: c.dropped,
                    failed: c.failed,
                    miss_rate: c.miss_rate(),
                    max_miss_rate: t.max_miss_rate,
                    accuracy: used_accuracy(ts, i, &recorder.variant_jobs[i]).unwrap_or(v.accuracy),
                    response_ms: recorder.responses[i].percentiles(),
                    predicted: None,
                    timely_accuracy: None,
                    answers: None,
                    max_misses: recorder.firm[i].as_ref().map(FirmRecorder::finish),
                }
            })
            .collect();
        let jobs: u64 = counters.iter().map(|c| c.released).sum();
        let misses: u64 = counters.iter().map(TaskCounters::not_on_time).sum();
        let switched =
            (0..ts.tasks.len()).any(|i| used_accuracy(ts, i, &recorder.variant_jobs[i]).is_some());
        RunReport {
            policy: info.policy.to_string(),
            variants: info.variants.to_string(),
            duration_s: info.duration as f64 / 1e9,
            mode: info.mode.to_string(),
            seed: info.seed,
            miss_rate: if jobs == 0 {
                0.0
            } else {
                misses as f64 / jobs as f64
            },
            worst_miss_rate: tasks.iter().map(|t| t.miss_rate).fold(0.0, f64::max),
            accuracy_loss: if switched {
                tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let max = ts.model_of(i).max_accuracy();
                        if max > 0.0 {
                            (max - t.accuracy) / max
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
                    / tasks.len().max(1) as f64
            } else {
                ts.accuracy_loss(assign)
            },
            utilisation: Utilisation {
                cpu: info.utilisation.0,
                gpu: info.utilisation.1,
            },
            tasks,
            runtime: None,
            interference: None,
            why: None,
            why_predicted: None,
            timeline: recorder.timeline.as_ref().map(|t| t.timeline(ts)),
            timely_accuracy: None,
            red_lights_run: None,
            notes: adapt_notes(ts, assign),
        }
    }

    /// Put the judged answers of the tasks that have them (`None`: the
    /// task's frames carry no ground truth) into the report: per task and
    /// overall timely accuracy, the predicted one beside it, and the red
    /// lights run.
    pub fn set_scores(&mut self, scores: Vec<Option<crate::timely::TaskScore>>) {
        let (mut right, mut frames) = (0u64, 0u64);
        let mut red: Option<u64> = None;
        for (t, s) in self.tasks.iter_mut().zip(scores) {
            let Some(s) = s else { continue };
            right += s.timely_correct;
            frames += s.frames;
            if let Some(c) = s.by_label.get("red") {
                *red.get_or_insert(0) += c.missed + c.wrong;
            }
            t.timely_accuracy = Some(s.timely_accuracy);
            let accuracy = t.accuracy;
            if let Some(p) = t.predicted.as_mut() {
                p.timely_accuracy = Some((1.0 - p.miss_rate).max(0.0) * accuracy);
            }
            t.answers = Some(s);
        }
        if frames > 0 {
            self.timely_accuracy = Some(right as f64 / frames as f64);
        }
        self.red_lights_run = red;
    }

    /// The overall timely accuracy its simulation predicted (jobs weighted),
    /// when every judged task carries one.
    pub fn predicted_timely_accuracy(&self) -> Option<f64> {
        let (mut sum, mut jobs) = (0.0, 0u64);
        for t in self.tasks.iter().filter(|t| t.answers.is_some()) {
            sum += t.predicted.as_ref()?.timely_accuracy? * t.jobs as f64;
            jobs += t.jobs;
        }
        (jobs > 0).then(|| sum / jobs as f64)
    }

    /// Put `sim`'s figures beside this (real) run's, task by task.
    pub fn set_predicted(&mut self, sim: &RunReport) {
        for (t, p) in self.tasks.iter_mut().zip(&sim.tasks) {
            t.predicted = Some(Predicted {
                miss_rate: p.miss_rate,
                response_ms: p.response_ms,
                timely_accuracy: None,
            });
        }
    }

    /// The overall miss rate its simulation predicted (jobs weighted), when
    /// every task carries the prediction (a real run's report).
    pub fn predicted_miss_rate(&self) -> Option<f64> {
        let (mut missed, mut jobs) = (0.0, 0u64);
        for t in &self.tasks {
            missed += t.predicted.as_ref()?.miss_rate * t.jobs as f64;
            jobs += t.jobs;
        }
        Some(missed / jobs.max(1) as f64)
    }

    /// Whether every task stays within its ζ (failed jobs count: see
    /// [`TaskCounters::miss_rate`]) and its (m,k)-firm bound.
    pub fn meets_tolerances(&self) -> bool {
        self.tolerance_failures().is_empty()
    }

    /// One line per broken tolerance: a task above its ζ (saying how many
    /// of its jobs failed, when any did), or an (m,k)-firm bound broken in
    /// some window. Empty when the run met every tolerance; `--check`
    /// turns a non-empty list into a non-zero exit.
    pub fn tolerance_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if t.miss_rate > t.max_miss_rate {
                let failed = if t.failed > 0 {
                    format!(" ({} of {} jobs failed)", t.failed, t.jobs)
                } else {
                    String::new()
                };
                out.push(format!(
                    "{}: {:.2} % of its jobs not on time > ζ {:.2} %{failed}",
                    t.name,
                    t.miss_rate * 100.0,
                    t.max_miss_rate * 100.0
                ));
            }
            if let Some(f) = &t.max_misses
                && f.violations > 0
            {
                out.push(format!(
                    "{}: more than {} misses in {} consecutive jobs in {} of {} windows",
                    t.name, f.misses, f.of, f.violations, f.windows
                ));
            }
        }
        out
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} · policy {} · variants {} · {:.1} s{}",
            self.mode,
            self.policy,
            self.variants,
            self.duration_s,
            self.seed
                .map(|x| format!(" · seed {x}"))
                .unwrap_or_default()
        );
        let w = crate::units::column_width(self.tasks.iter().map(|t| t.name.as_str()), 4);
        let vw = crate::units::column_width(self.tasks.iter().map(|t| t.variant.as_str()), 7);
        let _ = writeln!(
            s,
            "{:<w$}  {:<vw$}  {:>4}  {:>7}  {:>7}  {:>7}  {:>6}  {:>8}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}",
            "task",
            "variant",
            "prio",
            "jobs",
            "missed",
            "dropped",
            "failed",
            "miss %",
            "ζ %",
            "acc %",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        let predicted = self.tasks.iter().any(|t| t.predicted.is_some());
        if predicted {
            s.pop();
            s += "  pred miss %  pred p99 ms\n";
        }
        for t in &self.tasks {
            let flag = if t.miss_rate > t.max_miss_rate {
                " !"
            } else {
                ""
            };
            let _ = write!(
                s,
                "{:<w$}  {:<vw$}  {:>4}  {:>7}  {:>7}  {:>7}  {:>6}  {:>8.2}  {:>6.1}  {:>6.2}  {:>9.3}  {:>9.3}  {:>9.3}",
                t.name,
                t.variant,
                t.priority.map_or("-".to_string(), |p| p.to_string()),
                t.jobs,
                t.missed,
                t.dropped,
                t.failed,
                t.miss_rate * 100.0,
                t.max_miss_rate * 100.0,
                t.accuracy * 100.0,
                t.response_ms.p50,
                t.response_ms.p99,
                t.response_ms.max
            );
            if let Some(p) = t.predicted {
                let _ = write!(
                    s,
                    "  {:>11.2}  {:>11.3}",
                    p.miss_rate * 100.0,
                    p.response_ms.p99
                );
            }
            let _ = writeln!(s, "{flag}");
        }
        if predicted {
            s += "pred: simulated on the same config, profile, policy, length and seed\n";
        }
        let _ = writeln!(
            s,
            "overall miss {:.2} % (worst task {:.2} %) · accuracy loss {:.2} % · utilisation cpu {:.0} % gpu {:.0} %",
            self.miss_rate * 100.0,
            self.worst_miss_rate * 100.0,
            self.accuracy_loss * 100.0,
            self.utilisation.cpu * 100.0,
            self.utilisation.gpu * 100.0
        );
        for t in self.tasks.iter().filter(|t| t.failed > 0) {
            let _ = writeln!(
                s,
                "failed {:<w$}  {} of {} jobs failed (counted as not on time in miss %{})",
                t.name,
                t.failed,
                t.jobs,
                if self.notes.contains_key("failures") {
                    "; the first failure is under failures:"
                } else {
                    ""
                }
            );
        }
        s += &self.answer_lines(w);
        if let Some(w) = &self.why {
            s += &w.table(self.why_predicted.as_ref());
        }
        if let Some(i) = &self.interference {
            let _ = writeln!(s, "interference: {}", i.summary());
        }
        for (k, v) in &self.notes {
            let _ = writeln!(s, "{k}: {v}");
        }
        s
    }

    /// The table's lines on judged answers (timely accuracy, red lights)
    /// and (m,k)-firm bounds, task names padded to `w`.
    fn answer_lines(&self, w: usize) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for t in &self.tasks {
            let (Some(ta), Some(a)) = (t.timely_accuracy, &t.answers) else {
                continue;
            };
            let pred = t
                .predicted
                .and_then(|p| p.timely_accuracy)
                .map(|p| format!(" (pred {:.1} %)", p * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "timely {:<w$}  {:.1} %{pred}: {} of {} frames right and on time, {:.1} % of the on-time answers right · episodes in the first {} frame(s): {} right, {} missed, {} wrong",
                t.name,
                ta * 100.0,
                a.timely_correct,
                a.frames,
                a.answer_accuracy * 100.0,
                a.reaction_frames,
                a.episodes.correct,
                a.episodes.missed,
                a.episodes.wrong,
            );
        }
        for t in &self.tasks {
            let Some(f) = &t.max_misses else { continue };
            let _ = writeln!(
                s,
                "firm   {:<w$}  at most {} in {}: worst {} in {} · {} of {} windows over",
                t.name, f.misses, f.of, f.worst, f.of, f.violations, f.windows,
            );
        }
        if let Some(ta) = self.timely_accuracy {
            let red = self
                .red_lights_run
                .map(|n| format!(" · red lights run {n}"))
                .unwrap_or_default();
            let _ = writeln!(s, "timely accuracy {:.1} %{red}", ta * 100.0);
        }
        s
    }
}

#[cfg(test)]
mod samples_tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[Time], q: f64) -> Time {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    }

    #[test]
    fn one_value_is_reported_exactly() {
        let mut s = Samples::new();
        for _ in 0..10 {
            s.record(5_000_000);
        }
        assert_eq!(s.len(), 10);
        assert_eq!(
            s.percentiles(),
            Percentiles {
                p50: 5.0,
                p99: 5.0,
                max: 5.0
            }
        );
        assert_eq!(s.bins().collect::<Vec<_>>(), vec![(5_000_000, 10)]);
    }

    #[test]
    fn empty_and_out_of_range() {
        let s = Samples::new();
        assert!(s.is_empty());
        assert_eq!(s.percentiles(), Percentiles::default());
        let mut s = Samples::new();
        s.record(0);
        s.record(10 * Samples::HIGH);
        assert_eq!(s.max(), 10 * Samples::HIGH);
        assert_eq!(s.quantile(0.0), 0);
        assert!(s.quantile(1.0) <= s.max());
        assert_eq!(s.bins().map(|b| b.1).sum::<u64>(), 2);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_a_thousandth_above_the_exact_ones(
            mut v in prop::collection::vec(0u64..2_000_000_000, 1..400),
            q in 0.01f64..1.0,
        ) {
            let mut s = Samples::new();
            for &x in &v {
                s.record(x);
            }
            v.sort_unstable();
            let want = exact(&v, q);
            let got = s.quantile(q);
            prop_assert!(got >= want, "{got} < {want}");
            prop_assert!(got as f64 <= want as f64 * 1.001 + 1.0, "{got} vs {want}");
            prop_assert_eq!(s.max(), *v.last().unwrap());
            prop_assert_eq!(s.len(), v.len() as u64);
            prop_assert_eq!(s.bins().map(|b| b.1).sum::<u64>(), v.len() as u64);
        }
    }
}

#[cfg(test)]
mod firm_tests {
    use super::*;

    #[test]
    fn windows_of_k_jobs_are_judged_in_job_order() {
        let mut f = FirmRecorder::new(crate::model::MaxMisses { misses: 1, of: 3 });
        // Jobs 0..8, missed: 1, 2, 6. Job 2's miss comes before job 1's
        // and job 0's ends (out of order); job 1 also fails after missing
        // (counted once).
        f.ended(2, true);
        f.ended(1, true);
        f.ended(0, false);
        f.ended(1, true);
        for (seq, missed) in [(3, false), (4, false), (5, false), (6, true), (7, false)] {
            f.ended(seq, missed);
        }
        let r = f.finish();
        // Windows [0..3) … [5..8): six; over 1 miss: [0,1,2] and [1,2,3].
        assert_eq!(r.windows, 6);
        assert_eq!(r.violations, 2);
        assert_eq!(r.worst, 2);
        // Job 9 ended but 8 never did (in flight when the run ended): 9 is
        // still judged, after 7: [6, 7, 9] holds two misses.
        f.ended(9, true);
        let r = f.finish();
        assert_eq!((r.windows, r.violations, r.worst), (7, 3, 2));
    }
}
