//! Scheduling policies. Each is a small strategy object the scheduler core
//! consults: how jobs are dispatched (split queues or black box) and in
//! which order ready work is served. The core does everything else, so
//! every policy is driven by the same state machine in simulation and in
//! the real runtime.

use crate::model::{Assignment, Resource, TaskSet, Time, ranks};

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
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Rtmdl,
        PolicyKind::Dm,
        PolicyKind::Um,
        PolicyKind::Fifo,
        PolicyKind::Edf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Rtmdl => "rtmdl",
            PolicyKind::Dm => "dm",
            PolicyKind::Um => "um",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Edf => "edf",
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
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PolicyKind::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown policy `{s}`: expected rtmdl, dm, um, fifo or edf"))
    }
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
