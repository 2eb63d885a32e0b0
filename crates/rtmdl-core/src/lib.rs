//! rtmdl's pure core: the task model, the scheduler state machine, the
//! scheduling policies and the discrete-event simulator that drives the
//! state machine on a virtual clock.
//!
//! Nothing here reads a clock, spawns a thread or touches a file: the
//! real-time runtime drives the very same [`sched::Scheduler`].

pub mod adapt;
pub mod blocking;
pub mod fault;
pub mod interference;
pub mod model;
pub mod names;
pub mod policy;
pub mod profile;
pub mod releases;
pub mod report;
pub mod rounds;
pub mod sched;
pub mod sim;
pub mod timely;
pub mod units;
pub mod why;

pub use adapt::AdaptOptions;
pub use fault::{FailReason, FaultMode, FaultPolicy, FaultSpec};
pub use model::{
    Assignment, ExecProfile, MaxMisses, Model, Overheads, Overrun, Platform, Resource, Stage, Task,
    TaskSet, Time, Variant, VariantChoice,
};
pub use policy::{ABLATION, AblationStep, Dispatch, Policy, PolicyKind};
pub use releases::Releases;
pub use report::{FirmReport, Predicted, RunReport, TaskReport};
pub use sched::{Decision, JobId, SchedTask, Scheduler, Slot, TaskCounters};
pub use sim::{Log, Observer, SimOptions, simulate, simulate_why, simulate_with};
