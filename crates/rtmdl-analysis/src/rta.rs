//! The bound itself: for every segment a bound on its wait for a worker or
//! lane, chained along each task holistically (see the crate documentation
//! for the argument behind each step).

use response_time_analysis::arrival::{ArrivalBound, Sporadic};
use response_time_analysis::demand::RBF;
use response_time_analysis::fixed_priority::fully_nonpreemptive::{
    TaskUnderAnalysis, dedicated_uniproc_rta,
};
use response_time_analysis::time::{Duration, Service};
use response_time_analysis::wcet::Scalar;
use rtmdl_core::{Overrun, Resource, Time};

use crate::input::{Machine, TaskModel, side};

/// The largest bound the analysis computes (about 4.9 hours): beyond it, a
/// task has no bound.
const CAP_LIMIT: Time = 1 << 44;
/// Rounds of the fixed point within one priority level before giving up.
const MAX_ROUNDS: usize = 1000;
/// Steps of one waiting-time iteration before giving up.
const MAX_STEPS: usize = 100_000;

/// Who a share of a segment's wait is owed to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cause {
    /// Lower-priority work (or the task's own other stages, on one slot)
    /// that started before the segment arrived.
    Blocking(usize),
    /// Work of a task of higher or equal priority, packing-admission idling
    /// it causes included.
    Interference(usize),
}

/// A task's chain as far as the analysis got.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chain {
    /// Earliest and latest arrival of stage s in its queue, after the
    /// job's nominal release; index `n` is the job's end.
    pub amin: Vec<Time>,
    pub amax: Vec<Time>,
    /// Bound on the time from stage s's arrival to its start.
    pub wait: Vec<Time>,
    /// Who the wait of stage s is owed to (ns, summing to about `wait[s]`).
    pub causes: Vec<Vec<(Cause, f64)>>,
    /// Who the waits are owed to by the job-level bound, where it is below
    /// the sum of the stages' bounds (and so is the task's bound).
    pub job_causes: Option<Vec<(Cause, f64)>>,
}

/// Why a task has no bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NoBound {
    /// No fixed point below the cap.
    Diverged,
    /// `continue`: a job may still be running when the next is released.
    Overlap,
    /// `firm`: a late job may be retired while its sub-task runs on.
    Retired,
    /// A task of higher or equal priority on a shared resource has none.
    DependsOn(usize),
}

/// What the analysis found.
pub(crate) struct Solution {
    pub chains: Vec<Chain>,
    pub verdict: Vec<Result<Time, NoBound>>,
}

/// A periodic stream of one segment's jobs, as seen by others: each job
/// arrives within `jitter` after its reference point `k·period + amin` and
/// ends within `span` of it, holding a slot at most `occ`.
#[derive(Clone, Copy, Debug)]
struct Stream {
    occ: Time,
    jitter: Time,
    span: Time,
    period: Time,
}

impl Stream {
    /// Bertogna & Cirinei's bound on the slot time the stream takes in any
    /// window of `len`: its jobs run within `span` of their reference
    /// points; the densest case has a carry-in job end as late as it can and
    /// the others start at their reference points.
    fn workload(&self, len: Time) -> Time {
        let c = self.occ.min(self.span);
        let x = len.saturating_add(self.span) - c;
        let n = x / self.period;
        n.saturating_mul(c).saturating_add(c.min(x % self.period))
    }

    /// Jobs that arrive in a window of `len` (jitter included).
    fn arrivals(&self) -> Sporadic {
        Sporadic::new(Duration::from(self.period), Duration::from(self.jitter))
    }
}

/// The stream of stage `s` of task `t`.
fn stream(t: &TaskModel, c: &Chain, s: usize) -> Stream {
    Stream {
        occ: t.segs[s].occ,
        jitter: c.amax[s] - c.amin[s],
        span: c.amax[s + 1] - c.amin[s],
        period: t.period,
    }
}

/// The streams of task `t`'s segments on resource side `r`, except `skip`.
fn streams(t: &TaskModel, c: &Chain, r: usize, skip: Option<usize>) -> Vec<Stream> {
    (0..t.segs.len())
        .filter(|&s| side(t.segs[s].res) == r && Some(s) != skip)
        .map(|s| stream(t, c, s))
        .collect()
}

/// Scale contributions to sum to `wait`.
fn attribute(wait: Time, parts: Vec<(Cause, f64)>) -> Vec<(Cause, f64)> {
    let total: f64 = parts.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let k = wait as f64 / total;
    parts
        .into_iter()
        .filter(|p| p.1 > 0.0)
        .map(|(c, v)| (c, v * k))
        .collect()
}

/// A `len` (about the least) with `slots · len > Σ_b min(occ_b, len) +
/// Σ_j min(W_j(len), len) + (K−1) · min(len, Σ_h min(W_h(len), len))`: the
/// segment starts within `len − 1` of its arrival, since had it not, every
/// slot would have been held all that time (global non-preemptive fixed
/// priority, with the GPU's packing-admission idling bounded by the
/// holders `h`).
fn global_wait(
    slots: usize,
    blocking: &[(usize, Time)],
    hp: &[(usize, Vec<Stream>)],
    holders: &[(usize, Vec<Stream>)],
    cap: Time,
) -> Option<(Time, Vec<(Cause, f64)>)> {
    // Each lower-priority sub-task holds one slot, for at most its occupancy.
    let b = |len: Time| -> u128 { blocking.iter().map(|x| x.1.min(len) as u128).sum() };
    let per_task = |set: &[(usize, Vec<Stream>)], len: Time| -> Vec<(usize, Time)> {
        set.iter()
            .map(|(j, st)| {
                let w: Time = st
                    .iter()
                    .map(|s| s.workload(len))
                    .fold(0, Time::saturating_add);
                (*j, w.min(len))
            })
            .collect()
    };
    let hold_k = if holders.is_empty() { 0 } else { slots - 1 } as Time;
    let sum = |set: &[(usize, Vec<Stream>)], len: Time| -> u128 {
        set.iter()
            .map(|(_, st)| {
                let w = st
                    .iter()
                    .map(|s| s.workload(len))
                    .fold(0, Time::saturating_add);
                w.min(len) as u128
            })
            .sum()
    };
    let demand = |len: Time| -> u128 {
        b(len) + sum(hp, len) + hold_k as u128 * sum(holders, len).min(len as u128)
    };
    // While `slots` blocking entries are longer than `len` they hold every
    // slot: nothing short of the shortest of them can do.
    let mut longest: Vec<Time> = blocking.iter().map(|x| x.1).collect();
    longest.sort_unstable_by(|a, b| b.cmp(a));
    let held_until = longest.get(slots - 1).copied().unwrap_or(0);
    let ok = |len: Time| slots as u128 * len as u128 > demand(len);
    let (mut len, mut below): (Time, Time) = (1, 0);
    for _ in 0..MAX_STEPS {
        let n = demand(len);
        if slots as u128 * len as u128 > n {
            // Any `len` that satisfies the condition is a bound, not only
            // the least: close in on one from the last `len` that did not.
            while len - below > 1 {
                let mid = below + (len - below) / 2;
                if ok(mid) {
                    len = mid;
                } else {
                    below = mid;
                }
            }
            let wait = len - 1;
            let mut parts: Vec<(Cause, f64)> = blocking
                .iter()
                .map(|&(j, o)| (Cause::Blocking(j), o.min(len) as f64))
                .collect();
            parts.extend(
                per_task(hp, len)
                    .into_iter()
                    .map(|(j, w)| (Cause::Interference(j), w as f64)),
            );
            let held = per_task(holders, len);
            let h: f64 = held.iter().map(|x| x.1 as f64).sum();
            let idle = hold_k as f64 * h.min(len as f64);
            if h > 0.0 {
                parts.extend(
                    held.into_iter()
                        .map(|(j, w)| (Cause::Interference(j), idle * w as f64 / h)),
                );
            }
            return Some((wait, attribute(wait, parts)));
        }
        // No `len` below `n / slots + 1` can satisfy the condition; a step
        // of at least len/512 keeps the search short where several terms
        // grow as fast as `len` (the bisection above takes back the
        // overshoot).
        let fit = (n / slots as u128 + 1).max(held_until as u128 + 1);
        let next = fit.max(len as u128 + (len as u128 >> 9));
        if next > cap as u128 {
            return None;
        }
        below = (fit - 1) as Time;
        len = next as Time;
    }
    None
}

/// One slot: the MPI-SWS crate's fully non-preemptive fixed-priority RTA
/// for a dedicated uniprocessor (Bozhko & Brandenburg, ECRTS 2020), with
/// each segment stream a sporadic task with release jitter.
fn uni_wait(
    me: Stream,
    blocking: Option<(usize, Time)>,
    hp: &[(usize, Vec<Stream>)],
    cap: Time,
) -> Option<(Time, Vec<(Cause, f64)>)> {
    // At a load of 1 or more the busy window need not end.
    let load: f64 = std::iter::once(&me)
        .chain(hp.iter().flat_map(|(_, s)| s))
        .map(|s| s.occ as f64 / s.period as f64)
        .sum();
    if load >= 1.0 {
        return None;
    }
    let rbfs: Vec<RBF<Sporadic, Scalar>> = hp
        .iter()
        .flat_map(|(_, s)| s)
        .map(|s| RBF::new(s.arrivals(), Scalar::new(Service::from(s.occ))))
        .collect();
    let arrivals = me.arrivals();
    let tua = TaskUnderAnalysis {
        wcet: Scalar::new(Service::from(me.occ)),
        arrivals: &arrivals,
        blocking_bound: Service::from(blocking.map_or(0, |b| b.1)),
    };
    let r: Time = dedicated_uniproc_rta(&tua, &rbfs, Duration::from(cap))
        .ok()?
        .into();
    let wait = r.saturating_sub(me.occ);
    let mut parts: Vec<(Cause, f64)> = blocking
        .map(|(j, b)| (Cause::Blocking(j), b as f64))
        .into_iter()
        .collect();
    for (j, st) in hp {
        let w: f64 = st
            .iter()
            .map(|s| s.arrivals().number_arrivals(Duration::from(r)) as f64 * s.occ as f64)
            .sum();
        parts.push((Cause::Interference(*j), w));
    }
    Some((wait, attribute(wait, parts)))
}

/// Slot time of each task's streams in a window of `len`.
fn workloads(set: &[(usize, Vec<Stream>)], len: Time) -> Vec<(usize, Time)> {
    set.iter()
        .map(|(j, st)| {
            let w = st
                .iter()
                .map(|s| s.workload(len))
                .fold(0, Time::saturating_add);
            (*j, w)
        })
        .collect()
}

/// Job level: the largest total time `X` a job can wait in one resource's
/// queue over a lifetime of `len`. While it waits every slot is held (on
/// the GPU: or a holder's lane is), by lower-priority work running when one
/// of its stages arrived or by work of higher or equal priority in the
/// window, each task on one slot at a time: `slots·X ≤ Σ_b min(occ_b, X) +
/// Σ_j min(W_j(len), X) + (K−1)·min(X, Σ_h min(W_h(len), X))`. The right side is concave in
/// `X` and at least the left at 0, so the `X` that satisfy it form an
/// interval `[0, X*]`, found by bisection; the result is above `X*`.
fn job_wait(
    slots: usize,
    blocking: &[(usize, Time)],
    hp: &[(usize, Vec<Stream>)],
    holders: &[(usize, Vec<Stream>)],
    len: Time,
) -> (Time, Vec<(Cause, f64)>) {
    // Each blocking sub-task holds one slot during one stage's wait (≤ X).
    let b = |x: Time| -> u128 { blocking.iter().map(|j| j.1.min(x) as u128).sum() };
    let (w, h) = (workloads(hp, len), workloads(holders, len));
    let hk = if holders.is_empty() {
        0
    } else {
        slots as u128 - 1
    };
    let f = |x: Time| -> u128 {
        let own: u128 = w.iter().map(|j| j.1.min(x) as u128).sum();
        let held: u128 = h.iter().map(|j| j.1.min(x) as u128).sum();
        b(x) + own + hk * held.min(x as u128)
    };
    let top = b(Time::MAX)
        + w.iter().map(|j| j.1 as u128).sum::<u128>()
        + hk * h.iter().map(|j| j.1 as u128).sum::<u128>();
    let (mut lo, mut hi) = (
        0 as Time,
        (top / slots as u128 + 1).min(Time::MAX as u128 / 4) as Time,
    );
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if slots as u128 * mid as u128 <= f(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let x = hi;
    let mut parts: Vec<(Cause, f64)> = blocking
        .iter()
        .map(|&(j, o)| (Cause::Blocking(j), o.min(x) as f64))
        .collect();
    parts.extend(
        w.iter()
            .map(|&(j, v)| (Cause::Interference(j), v.min(x) as f64)),
    );
    let held: f64 = h.iter().map(|j| j.1.min(x) as f64).sum();
    let idle = hk as f64 * held.min(x as f64);
    if held > 0.0 {
        parts.extend(
            h.iter()
                .map(|&(j, v)| (Cause::Interference(j), idle * v.min(x) as f64 / held)),
        );
    }
    (x, attribute(x, parts))
}

/// The analysis of one task set.
pub(crate) struct Rta<'a> {
    pub tasks: &'a [TaskModel],
    pub machine: &'a Machine,
    pub cap: Time,
}

impl Rta<'_> {
    /// Whether another task shares task `i`'s priority.
    fn has_peer(&self, i: usize) -> bool {
        let p = self.tasks[i].prio;
        self.tasks
            .iter()
            .enumerate()
            .any(|(j, t)| j != i && t.prio == p)
    }

    /// Lower-priority work that may hold slots of side `r` when a segment of
    /// task `i` arrives, one entry per sub-task that may run at once.
    fn blocking_candidates(&self, i: usize, r: usize) -> Vec<(usize, Time)> {
        let me = self.tasks[i].prio;
        let mut out = Vec::new();
        for (j, t) in self.tasks.iter().enumerate() {
            if t.prio <= me {
                continue;
            }
            let occs = t.segs.iter().filter(|s| side(s.res) == r).map(|s| s.occ);
            match t.overrun {
                // One job at a time, one sub-task at a time.
                Overrun::Skip => out.extend(occs.max().map(|o| (j, o))),
                // Jobs in order: each stage at most once at a time.
                Overrun::Continue => out.extend(occs.map(|o| (j, o))),
                // A retired job's sub-task runs on beside the next job's.
                Overrun::Firm => {
                    for o in occs {
                        out.extend(std::iter::repeat_n((j, o), self.machine.slots[r]));
                    }
                }
            }
        }
        out
    }

    /// The lower-priority work blocking one arrival on side `r`: the
    /// longest entry on one slot, the `slots` longest on several.
    fn blocking(&self, i: usize, r: usize) -> Vec<(usize, Time)> {
        let mut b = self.blocking_candidates(i, r);
        b.sort_by_key(|x| std::cmp::Reverse(x.1));
        b.truncate(self.machine.slots[r]);
        b
    }

    /// The streams of the other tasks of higher or equal priority on side `r`.
    fn interfering(&self, i: usize, r: usize, chains: &[Chain]) -> Vec<(usize, Vec<Stream>)> {
        let me = self.tasks[i].prio;
        (0..self.tasks.len())
            .filter(|&j| j != i && self.tasks[j].prio <= me && self.tasks[j].uses(r))
            .map(|j| (j, streams(&self.tasks[j], &chains[j], r, None)))
            .collect()
    }

    /// GPU streams of more urgent tasks whose packing admission may hold a
    /// lane idle: those whose latest start plus C·S passes their deadline.
    fn holders(&self, i: usize, chains: &[Chain]) -> Vec<(usize, Vec<Stream>)> {
        if !self.machine.holds {
            return Vec::new();
        }
        let me = self.tasks[i].prio;
        let s_max = self.machine.pack_max;
        let mut out = Vec::new();
        for (h, t) in self.tasks.iter().enumerate() {
            if t.prio >= me {
                continue;
            }
            let c = &chains[h];
            let st: Vec<Stream> = (0..t.segs.len())
                .filter(|&s| t.segs[s].res == Resource::Gpu)
                .filter(|&s| {
                    let start = (c.amax[s] + c.wait[s]).min(c.amax[s + 1] - t.segs[s].bcet);
                    start as f64 + t.segs[s].wcet as f64 * s_max > t.deadline as f64
                })
                .map(|s| stream(t, c, s))
                .collect();
            if !st.is_empty() {
                out.push((h, st));
            }
        }
        out
    }

    /// Bound on the wait of stage `s` of task `i`, whose arrival jitter is
    /// `jitter`.
    fn stage_wait(
        &self,
        i: usize,
        s: usize,
        jitter: Time,
        chains: &[Chain],
    ) -> Option<(Time, Vec<(Cause, f64)>)> {
        let me = &self.tasks[i];
        let seg = &me.segs[s];
        let r = side(seg.res);
        let mut hp = self.interfering(i, r, chains);
        if self.machine.slots[r] > 1 {
            let holders = if seg.res == Resource::Gpu {
                self.holders(i, chains)
            } else {
                Vec::new()
            };
            let blocking = self.blocking(i, r);
            return global_wait(self.machine.slots[r], &blocking, &hp, &holders, self.cap);
        }
        // One slot. The task's own other stages (of an earlier job) can only
        // start at an instant when nothing of this level is pending, and so
        // act as blocking, through the backlog of more urgent work they
        // cause; with a peer of equal priority they may run ahead of it.
        let mut blocking = self.blocking(i, r);
        let own = streams(me, &chains[i], r, Some(s));
        if self.has_peer(i) {
            if !own.is_empty() {
                hp.push((i, own));
            }
        } else if !hp.is_empty() {
            blocking.extend(own.iter().map(|o| (i, o.occ)));
        }
        let me_stream = Stream {
            occ: seg.occ,
            jitter,
            span: jitter + seg.occ,
            period: me.period,
        };
        let b = blocking.into_iter().max_by_key(|b| b.1);
        uni_wait(me_stream, b, &hp, self.cap)
    }

    /// The job-level bound on task `i`'s response, if it converges below
    /// `limit`: lateness + Σ occupancy + the largest waits on each resource
    /// over the job's whole lifetime (each job of another task counted once,
    /// however many of our stages it delays).
    fn job_bound(
        &self,
        i: usize,
        limit: Time,
        chains: &[Chain],
    ) -> Option<(Time, Vec<(Cause, f64)>)> {
        let me = &self.tasks[i];
        let base = me
            .segs
            .iter()
            .fold(me.release_max, |a, s| a.saturating_add(s.occ));
        let sides: Vec<_> = (0..2)
            .filter(|&r| me.uses(r))
            .map(|r| {
                let stages = me.segs.iter().filter(|s| side(s.res) == r).count();
                let one = self.blocking(i, r);
                let blocking: Vec<(usize, Time)> = one
                    .iter()
                    .flat_map(|&b| std::iter::repeat_n(b, stages))
                    .collect();
                let holders = if r == 1 {
                    self.holders(i, chains)
                } else {
                    Vec::new()
                };
                (r, blocking, self.interfering(i, r, chains), holders)
            })
            .collect();
        let end = |len: Time| -> (Time, Vec<(Cause, f64)>) {
            let mut next = base;
            let mut causes = Vec::new();
            for (r, blocking, hp, holders) in &sides {
                let (x, c) = job_wait(self.machine.slots[*r], blocking, hp, holders, len);
                next = next.saturating_add(x);
                causes.extend(c);
            }
            (next, causes)
        };
        let (mut len, mut below) = (base, 0);
        for _ in 0..200 {
            let (next, causes) = end(len);
            if next <= len {
                // Any `len` with `next ≤ len` is a bound: close in on one
                // from the last that was not.
                let mut found = (len, causes);
                while found.0 - below > 1 {
                    let mid = below + (found.0 - below) / 2;
                    let (n, c) = end(mid);
                    if n <= mid {
                        found = (mid, c);
                    } else {
                        below = mid;
                    }
                }
                return Some(found);
            }
            if next >= limit {
                return None;
            }
            // Nothing below `next` is a bound (`next` grows with `len`); step
            // at least len/512 (the bisection takes back the overshoot).
            below = next - 1;
            len = next.max(len + (len >> 9));
        }
        None
    }

    /// Task `i`'s chain given the others' current chains; `None` if a bound
    /// passes the cap.
    fn chain(&self, i: usize, chains: &[Chain]) -> Option<Chain> {
        let me = &self.tasks[i];
        let n = me.segs.len();
        let mut c = Self::initial(me);
        // Stage by stage (holistic); it may find no bound where the job
        // level does (e.g. a task alone above a load of 1 under `skip`).
        let mut staged = true;
        for s in 0..n {
            let Some((wait, causes)) = self.stage_wait(i, s, c.amax[s] - c.amin[s], chains) else {
                staged = false;
                break;
            };
            c.wait[s] = wait;
            c.causes[s] = causes;
            c.amax[s + 1] = c.amax[s]
                .saturating_add(wait)
                .saturating_add(me.segs[s].occ);
            if c.amax[s + 1] > self.cap {
                staged = false;
                break;
            }
        }
        let limit = if staged { c.amax[n] } else { self.cap };
        let Some((r, causes)) = self.job_bound(i, limit, chains) else {
            return staged.then_some(c);
        };
        // The tighter of the two bounds; every stage's latest arrival is at
        // most the job's end minus the least time the rest takes, and it
        // starts at the latest that least time before its end.
        c.amax[n] = r;
        for s in (0..n).rev() {
            let start = c.amax[s + 1] - me.segs[s].bcet;
            if s > 0 {
                let latest = if staged { c.amax[s].min(start) } else { start };
                c.amax[s] = latest.max(c.amin[s]);
            }
            if !staged {
                c.wait[s] = start.saturating_sub(c.amax[s]);
                c.causes[s].clear();
            }
        }
        c.job_causes = Some(causes);
        Some(c)
    }

    /// The chain with every wait zero: where the fixed point starts.
    fn initial(t: &TaskModel) -> Chain {
        let n = t.segs.len();
        let mut c = Chain {
            amin: vec![t.release_min; n + 1],
            amax: vec![t.release_max; n + 1],
            wait: vec![0; n],
            causes: vec![Vec::new(); n],
            job_causes: None,
        };
        for s in 0..n {
            c.amax[s + 1] = c.amax[s].saturating_add(t.segs[s].occ);
            c.amin[s + 1] = c.amin[s].saturating_add(t.segs[s].bcet).min(c.amax[s + 1]);
        }
        c
    }

    /// Whether tasks `a` and `b` have a segment on the same resource.
    fn share(&self, a: usize, b: usize) -> bool {
        (0..2).any(|r| self.tasks[a].uses(r) && self.tasks[b].uses(r))
    }

    /// The verdict of task `i` from its converged chain: the bound holds
    /// only where the task's jobs never overlap.
    fn own_verdict(&self, i: usize, c: &Chain) -> Result<Time, NoBound> {
        let t = &self.tasks[i];
        let r = c.amax[t.segs.len()];
        match t.overrun {
            Overrun::Continue if r > t.period.saturating_add(t.release_min) => {
                Err(NoBound::Overlap)
            }
            Overrun::Firm if r > t.deadline => Err(NoBound::Retired),
            _ => Ok(r),
        }
    }

    /// Iterate one priority level's tasks (`live`) to their least fixed
    /// point; which ones diverged, or `None` if the rounds ran out.
    fn settle(&self, live: &[usize], chains: &mut [Chain]) -> Option<Vec<bool>> {
        let mut diverged = vec![false; self.tasks.len()];
        for _ in 0..MAX_ROUNDS {
            let mut changed = false;
            for &i in live {
                if diverged[i] {
                    continue;
                }
                match self.chain(i, chains) {
                    Some(c) if c == chains[i] => {}
                    Some(c) => {
                        chains[i] = c;
                        changed = true;
                    }
                    None => diverged[i] = true,
                }
            }
            if !changed {
                return Some(diverged);
            }
        }
        None
    }

    /// Solve priority level by priority level, most urgent first: a level
    /// depends only on itself and the levels above it.
    pub fn solve(&self) -> Solution {
        let n = self.tasks.len();
        let mut chains: Vec<Chain> = self.tasks.iter().map(Self::initial).collect();
        let mut verdict: Vec<Result<Time, NoBound>> = vec![Err(NoBound::Diverged); n];
        let mut levels: Vec<u32> = self.tasks.iter().map(|t| t.prio).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels {
            let mut live = Vec::new();
            for i in (0..n).filter(|&i| self.tasks[i].prio == level) {
                let above = (0..n).find(|&j| {
                    self.tasks[j].prio < level && verdict[j].is_err() && self.share(i, j)
                });
                match above {
                    Some(j) => verdict[i] = Err(NoBound::DependsOn(j)),
                    None => live.push(i),
                }
            }
            let diverged = self.settle(&live, &mut chains);
            for &i in &live {
                verdict[i] = match &diverged {
                    Some(d) if !d[i] => self.own_verdict(i, &chains[i]),
                    _ => Err(NoBound::Diverged),
                };
            }
            // Peers of equal priority depend on each other.
            while let Some((i, j)) = live.iter().copied().find_map(|i| {
                let j = live
                    .iter()
                    .copied()
                    .find(|&j| j != i && verdict[j].is_err() && self.share(i, j))?;
                verdict[i].is_ok().then_some((i, j))
            }) {
                verdict[i] = Err(NoBound::DependsOn(j));
            }
        }
        Solution { chains, verdict }
    }
}

/// The cap on bounds for a task set: 64 times its longest period or
/// deadline, at most [`CAP_LIMIT`].
pub(crate) fn cap_for(tasks: &[TaskModel]) -> Time {
    tasks
        .iter()
        .map(|t| t.period.max(t.deadline))
        .max()
        .unwrap_or(1)
        .saturating_mul(64)
        .min(CAP_LIMIT)
}
