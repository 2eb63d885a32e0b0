//! Scheduling policies. Each is a small strategy object the scheduler core
//! consults: how jobs are dispatched (split queues or black box) and in
//! which order ready work is served. The core does everything else, so
//! every policy is driven by the same state machine in simulation and in
//! the real runtime.

use crate::model::{Assignment, Resource, TaskSet, Time, VariantChoice, ranks};

/// How jobs meet resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Every sub-task waits in its resource's queue on its own: a CPU worker
    /// runs another job's CPU sub-task while this job is on the GPU.
    Split,
    /// A job takes a CPU worker for its whole chain and holds it while its
    /// GPU sub-task runs (one thread runs the job start to end).
    BlackBox,
    /// Like `BlackBox`, but each task has its own worker thread (one thread
    /// per model, as in naive deployments): there are as many CPU slots as
    /// tasks, sharing the platform's cores.
    ThreadPerTask,
}

/// What a policy knows about a job when ordering it.
#[derive(Clone, Copy, Debug)]
pub struct JobView {
    pub task: usize,
    pub release: Time,
    pub deadline: Time,
    /// When the job entered the queue it is being ordered in.
    pub enqueued: Time,
    pub resource: Resource,
}

/// A scheduling policy: a strategy the scheduler core consults.
pub trait Policy: Send {
    /// Short name (`rtmdl`, `dm`, `um`, `fifo`, `edf`).
    fn name(&self) -> &'static str;
    fn dispatch(&self) -> Dispatch;
    /// GPU lanes this policy uses out of the platform's `k`.
    fn gpu_lanes(&self, k: usize) -> usize;
    /// Queue order: smaller keys are served first (ties: earlier release,
    /// then earlier enqueue).
    fn key(&self, job: &JobView) -> u64;
    /// The fixed priority (1 = most urgent) this policy gives `task`, if
    /// it orders by fixed priorities at all (EDF and FIFO do not).
    fn priority(&self, _task: usize) -> Option<u32> {
        None
    }
}

/// RT-mDL: fixed priorities from the plan, split CPU/GPU queues, up to K
/// GPU sub-tasks packed at once.
pub struct Rtmdl {
    pub priority: Vec<u32>,
}

/// rtmdl's split queues with fixed priorities but one GPU sub-task at a
/// time (no packing): a step of the ablation.
pub struct SplitSerial {
    pub priority: Vec<u32>,
}

impl Policy for SplitSerial {
    fn name(&self) -> &'static str {
        "dm-split-serial"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::Split
    }
    fn gpu_lanes(&self, _k: usize) -> usize {
        1
    }
    fn key(&self, job: &JobView) -> u64 {
        self.priority[job.task] as u64
    }
    fn priority(&self, task: usize) -> Option<u32> {
        self.priority.get(task).copied()
    }
}

impl Policy for Rtmdl {
    fn name(&self) -> &'static str {
        "rtmdl"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::Split
    }
    fn gpu_lanes(&self, k: usize) -> usize {
        k
    }
    fn key(&self, job: &JobView) -> u64 {
        self.priority[job.task] as u64
    }
    fn priority(&self, task: usize) -> Option<u32> {
        self.priority.get(task).copied()
    }
}

/// Earliest deadline first with split queues and packing.
pub struct Edf;

impl Policy for Edf {
    fn name(&self) -> &'static str {
        "edf"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::Split
    }
    fn gpu_lanes(&self, k: usize) -> usize {
        k
    }
    fn key(&self, job: &JobView) -> u64 {
        job.deadline
    }
}

/// Fixed-priority black-box scheduling: a job holds its CPU worker through
/// its chain; one GPU sub-task at a time. With deadline-monotonic ranks this
/// is the paper's DM baseline, with utilisation-monotonic ranks its UM one.
pub struct BlackBoxFixed {
    pub name: &'static str,
    pub priority: Vec<u32>,
}

impl BlackBoxFixed {
    /// Deadline-monotonic: shorter relative deadline, higher priority.
    pub fn dm(ts: &TaskSet) -> Self {
        BlackBoxFixed {
            name: "dm",
            priority: ts.deadline_monotonic(),
        }
    }

    /// Utilisation-monotonic: higher utilisation (of the variants in use),
    /// higher priority.
    pub fn um(ts: &TaskSet, assign: &[Assignment]) -> Self {
        let mut order: Vec<usize> = (0..ts.tasks.len()).collect();
        let u: Vec<f64> = (0..ts.tasks.len())
            .map(|t| ts.utilisation(t, assign[t].variant))
            .collect();
        order.sort_by(|&a, &b| u[b].total_cmp(&u[a]).then(a.cmp(&b)));
        BlackBoxFixed {
            name: "um",
            priority: ranks(&order),
        }
    }
}

impl Policy for BlackBoxFixed {
    fn name(&self) -> &'static str {
        self.name
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::BlackBox
    }
    fn gpu_lanes(&self, _k: usize) -> usize {
        1
    }
    fn key(&self, job: &JobView) -> u64 {
        self.priority[job.task] as u64
    }
    fn priority(&self, task: usize) -> Option<u32> {
        self.priority.get(task).copied()
    }
}

/// One thread per model, first come first served, one GPU sub-task at a
/// time: what people run today.
pub struct Fifo;

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::ThreadPerTask
    }
    fn gpu_lanes(&self, _k: usize) -> usize {
        1
    }
    fn key(&self, job: &JobView) -> u64 {
        job.enqueued
    }
}

/// The policies by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Rtmdl,
    Dm,
    Um,
    Fifo,
    Edf,
    /// rtmdl's dispatch (split CPU/GPU queues, GPU packing) with
    /// deadline-monotonic priorities: the fair baseline a competent
    /// engineer would build without a planner.
    DmSplit,
    /// The same with utilisation-monotonic priorities.
    UmSplit,
    /// Deadline-monotonic with split queues but one GPU sub-task at a time
    /// (the ablation's step between black-box DM and DM-split).
    DmSplitSerial,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 8] = [
        PolicyKind::Rtmdl,
        PolicyKind::Dm,
        PolicyKind::Um,
        PolicyKind::Fifo,
        PolicyKind::Edf,
        PolicyKind::DmSplit,
        PolicyKind::UmSplit,
        PolicyKind::DmSplitSerial,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Rtmdl => "rtmdl",
            PolicyKind::Dm => "dm",
            PolicyKind::Um => "um",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Edf => "edf",
            PolicyKind::DmSplit => "dm-split",
            PolicyKind::UmSplit => "um-split",
            PolicyKind::DmSplitSerial => "dm-split-serial",
        }
    }

    /// The priorities this policy runs with, where it has fixed ones: the
    /// plan's for rtmdl, deadline- or utilisation-monotonic for the split
    /// baselines (black-box DM and UM rank the same way).
    pub fn fixed_priorities(self, ts: &TaskSet, assign: &[Assignment]) -> Option<Vec<u32>> {
        match self {
            PolicyKind::Rtmdl => Some(assign.iter().map(|a| a.priority).collect()),
            PolicyKind::Dm | PolicyKind::DmSplit | PolicyKind::DmSplitSerial => {
                Some(BlackBoxFixed::dm(ts).priority)
            }
            PolicyKind::Um | PolicyKind::UmSplit => Some(BlackBoxFixed::um(ts, assign).priority),
            PolicyKind::Fifo | PolicyKind::Edf => None,
        }
    }

    /// Build the policy for a task set and its chosen variants/priorities.
    pub fn build(self, ts: &TaskSet, assign: &[Assignment]) -> Box<dyn Policy> {
        match self {
            PolicyKind::Rtmdl => Box::new(Rtmdl {
                priority: assign.iter().map(|a| a.priority).collect(),
            }),
            PolicyKind::Dm => Box::new(BlackBoxFixed::dm(ts)),
            PolicyKind::Um => Box::new(BlackBoxFixed::um(ts, assign)),
            PolicyKind::Fifo => Box::new(Fifo),
            PolicyKind::Edf => Box::new(Edf),
            PolicyKind::DmSplit | PolicyKind::UmSplit => Box::new(Rtmdl {
                priority: self.fixed_priorities(ts, assign).unwrap_or_default(),
            }),
            PolicyKind::DmSplitSerial => Box::new(SplitSerial {
                priority: self.fixed_priorities(ts, assign).unwrap_or_default(),
            }),
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PolicyKind::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown policy `{s}`: expected rtmdl, dm, um, fifo, edf, dm-split, um-split or dm-split-serial"))
    }
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of the ablation: what each part of rtmdl buys, from black-box
/// DM on the original models to rtmdl with its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AblationStep {
    pub label: &'static str,
    pub policy: PolicyKind,
    pub variants: VariantChoice,
    /// Run the original models under the plan's priorities (the step
    /// before the planned variants).
    pub planned_priorities_on_original: bool,
}

/// Black-box DM → split queues → packing → planned priorities → planned
/// variants, each step adding one part.
pub const ABLATION: [AblationStep; 5] = [
    AblationStep {
        label: "black-box DM, original models",
        policy: PolicyKind::Dm,
        variants: VariantChoice::Original,
        planned_priorities_on_original: false,
    },
    AblationStep {
        label: "+ split CPU/GPU queues",
        policy: PolicyKind::DmSplitSerial,
        variants: VariantChoice::Original,
        planned_priorities_on_original: false,
    },
    AblationStep {
        label: "+ GPU packing",
        policy: PolicyKind::DmSplit,
        variants: VariantChoice::Original,
        planned_priorities_on_original: false,
    },
    AblationStep {
        label: "+ planned priorities",
        policy: PolicyKind::Rtmdl,
        variants: VariantChoice::Plan,
        planned_priorities_on_original: true,
    },
    AblationStep {
        label: "+ planned variants (rtmdl+plan)",
        policy: PolicyKind::Rtmdl,
        variants: VariantChoice::Plan,
        planned_priorities_on_original: false,
    },
];

impl AblationStep {
    /// The task set this step runs: `planned` (a set carrying a plan), with
    /// the original variants under the plan's priorities where the step
    /// says so.
    pub fn taskset(&self, planned: &TaskSet) -> TaskSet {
        let mut ts = planned.clone();
        if self.planned_priorities_on_original {
            for t in 0..ts.tasks.len() {
                let original = ts.model_of(t).original();
                ts.tasks[t].variant = Some(original);
            }
        }
        ts
    }
}

/// The comparison rows of `rtmdl compare` (and the Python package's
/// `compare`): (label, policy, variants).
/// DM-NMC, DM-MC and UM-NMC are the paper's black-box reading; DM-split-NMC
/// and UM-split-NMC the fair baselines (rtmdl's split queues and packing,
/// monotonic priorities, original models).
pub const BASELINES: [(&str, PolicyKind, VariantChoice); 8] = [
    ("rtmdl+plan", PolicyKind::Rtmdl, VariantChoice::Plan),
    ("DM-NMC", PolicyKind::Dm, VariantChoice::Original),
    ("DM-MC", PolicyKind::Dm, VariantChoice::Compressed),
    ("UM-NMC", PolicyKind::Um, VariantChoice::Original),
    ("DM-split-NMC", PolicyKind::DmSplit, VariantChoice::Original),
    ("UM-split-NMC", PolicyKind::UmSplit, VariantChoice::Original),
    ("FIFO", PolicyKind::Fifo, VariantChoice::Original),
    ("EDF", PolicyKind::Edf, VariantChoice::Original),
];
