//! The searches: NSGA-II over (variants, priority order), and an exact
//! search for small sets.

use std::cmp::Ordering;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtmdl_core::Assignment;
use rtmdl_core::model::ranks;

use crate::problem::{Evaluation, Problem};

/// One candidate: a variant per task and an order (most urgent first).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Genome {
    pub variants: Vec<usize>,
    pub order: Vec<usize>,
}

impl Genome {
    pub fn assignments(&self) -> Vec<Assignment> {
        let prio = ranks(&self.order);
        self.variants
            .iter()
            .zip(prio)
            .map(|(&variant, priority)| Assignment { variant, priority })
            .collect()
    }
}

/// A candidate with its predicted outcome.
#[derive(Clone, Debug)]
pub struct Scored {
    pub genome: Genome,
    pub eval: Evaluation,
}

/// NSGA-II settings.
#[derive(Clone, Debug)]
pub struct MoeaOptions {
    pub population: usize,
    pub generations: usize,
    pub seed: u64,
    /// Threads evaluating candidates.
    pub threads: usize,
    /// Stop after this many generations without a better feasible plan.
    pub patience: usize,
}

impl Default for MoeaOptions {
    fn default() -> Self {
        MoeaOptions {
            population: 48,
            generations: 60,
            seed: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            patience: 15,
        }
    }
}

fn evaluate_all(p: &Problem, genomes: Vec<Genome>, threads: usize) -> Vec<Scored> {
    let threads = threads.clamp(1, genomes.len().max(1));
    if threads == 1 {
        return genomes
            .into_iter()
            .map(|g| {
                let eval = p.evaluate(&g.assignments());
                Scored { genome: g, eval }
            })
            .collect();
    }
    let chunk = genomes.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = genomes
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|g| Scored {
                            eval: p.evaluate(&g.assignments()),
                            genome: g.clone(),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// a dominates b on (loss, violation), both minimised.
fn dominates(a: &Evaluation, b: &Evaluation) -> bool {
    let (av, bv) = (a.violation.max(0.0), b.violation.max(0.0));
    a.loss <= b.loss && av <= bv && (a.loss < b.loss || av < bv)
}

/// Fast non-dominated sort: the front index of each member.
fn fronts(pop: &[Scored]) -> Vec<Vec<usize>> {
    let n = pop.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(&pop[i].eval, &pop[j].eval) {
                dominates_list[i].push(j);
            } else if i != j && dominates(&pop[j].eval, &pop[i].eval) {
                dominated_by[i] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        out.push(current);
        current = next;
    }
    out
}

fn crowding(pop: &[Scored], front: &[usize]) -> Vec<f64> {
    let mut d = vec![0.0; front.len()];
    let objectives: [fn(&Evaluation) -> f64; 2] = [|e| e.loss, |e| e.violation.max(0.0)];
    for f in objectives {
        let mut idx: Vec<usize> = (0..front.len()).collect();
        idx.sort_by(|&a, &b| f(&pop[front[a]].eval).total_cmp(&f(&pop[front[b]].eval)));
        let (lo, hi) = (
            f(&pop[front[idx[0]]].eval),
            f(&pop[front[*idx.last().unwrap_or(&0)]].eval),
        );
        if let (Some(&first), Some(&last)) = (idx.first(), idx.last()) {
            d[first] = f64::INFINITY;
            d[last] = f64::INFINITY;
        }
        if hi > lo {
            for w in 1..idx.len().saturating_sub(1) {
                d[idx[w]] +=
                    (f(&pop[front[idx[w + 1]]].eval) - f(&pop[front[idx[w - 1]]].eval)) / (hi - lo);
            }
        }
    }
    d
}

/// Better plan first: feasible before infeasible, then lower loss (or
/// lower violation), then lower worst miss rate.
pub fn better(a: &Evaluation, b: &Evaluation) -> Ordering {
    match (a.feasible(), b.feasible()) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (true, true) => a
            .loss
            .total_cmp(&b.loss)
            .then(worst(a).total_cmp(&worst(b))),
        (false, false) => a
            .violation
            .total_cmp(&b.violation)
            .then(a.loss.total_cmp(&b.loss)),
    }
}

fn worst(e: &Evaluation) -> f64 {
    e.dmr.iter().copied().fold(0.0, f64::max)
}

/// Starting points: deadline-monotonic priorities with the original, the
/// compressed and the most accurate floor-meeting variants.
pub fn seeds(p: &Problem) -> Vec<Genome> {
    let ts = p.ts;
    let n = ts.tasks.len();
    let dm = ts.deadline_monotonic();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&t| dm[t]);
    let pick = |f: &dyn Fn(usize) -> usize| Genome {
        variants: (0..n).map(f).collect(),
        order: order.clone(),
    };
    vec![
        pick(&|t| ts.model_of(t).original()),
        pick(&|t| ts.model_of(t).compressed()),
        // The fastest variant that still meets the accuracy floor.
        pick(&|t| {
            let m = ts.model_of(t);
            (0..m.variants.len())
                .filter(|&v| m.variants[v].accuracy >= ts.tasks[t].min_accuracy)
                .min_by(|&a, &b| {
                    m.variants[a]
                        .mean_total()
                        .total_cmp(&m.variants[b].mean_total())
                })
                .unwrap_or_else(|| m.original())
        }),
    ]
}

fn random_genome(p: &Problem, rng: &mut ChaCha8Rng) -> Genome {
    let n = p.ts.tasks.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Genome {
        variants: (0..n)
            .map(|t| rng.random_range(0..p.ts.model_of(t).variants.len()))
            .collect(),
        order,
    }
}

/// Order crossover (OX1) of two permutations.
fn order_crossover(a: &[usize], b: &[usize], rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = a.len();
    if n < 2 {
        return a.to_vec();
    }
    let (mut i, mut j) = (rng.random_range(0..n), rng.random_range(0..n));
    if i > j {
        std::mem::swap(&mut i, &mut j);
    }
    let mut child = vec![usize::MAX; n];
    child[i..=j].copy_from_slice(&a[i..=j]);
    let mut fill = b.iter().filter(|x| !a[i..=j].contains(x));
    for c in child.iter_mut() {
        if *c == usize::MAX {
            *c = *fill.next().unwrap_or(&0);
        }
    }
    child
}

fn offspring(p: &Problem, x: &Genome, y: &Genome, rng: &mut ChaCha8Rng) -> Genome {
    let n = x.variants.len();
    let mut g = if rng.random_bool(0.9) {
        Genome {
            variants: (0..n)
                .map(|t| {
                    if rng.random_bool(0.5) {
                        x.variants[t]
                    } else {
                        y.variants[t]
                    }
                })
                .collect(),
            order: order_crossover(&x.order, &y.order, rng),
        }
    } else {
        x.clone()
    };
    for t in 0..n {
        if rng.random_bool((1.0 / n as f64).max(0.1)) {
            g.variants[t] = rng.random_range(0..p.ts.model_of(t).variants.len());
        }
    }
    if n > 1 && rng.random_bool(0.4) {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        g.order.swap(a, b);
    }
    g
}

/// What a search found.
pub struct SearchResult {
    /// The best plan (feasible if any was found, else the closest).
    pub best: Scored,
    /// Non-dominated plans on (accuracy loss, violation).
    pub front: Vec<Scored>,
    pub evaluations: usize,
}

/// NSGA-II. `progress(generation, generations)` is called per generation.
pub fn moea(
    p: &Problem,
    opts: &MoeaOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> SearchResult {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let size = opts.population.max(4);
    let mut genomes = seeds(p);
    while genomes.len() < size {
        genomes.push(random_genome(p, &mut rng));
    }
    let mut pop = evaluate_all(p, genomes, opts.threads);
    let mut evaluations = pop.len();
    // The first tournaments already prefer the better fronts.
    let (mut rank, mut crowd) = (vec![0usize; pop.len()], vec![0.0f64; pop.len()]);
    for (r, front) in fronts(&pop).iter().enumerate() {
        for (&i, c) in front.iter().zip(crowding(&pop, front)) {
            (rank[i], crowd[i]) = (r, c);
        }
    }
    let tournament = |rng: &mut ChaCha8Rng, rank: &[usize], crowd: &[f64]| {
        let (a, b) = (
            rng.random_range(0..rank.len()),
            rng.random_range(0..rank.len()),
        );
        if rank[a] < rank[b] || (rank[a] == rank[b] && crowd[a] > crowd[b]) {
            a
        } else {
            b
        }
    };
    let best_of = |pop: &[Scored]| {
        pop.iter()
            .filter(|s| s.eval.feasible())
            .map(|s| s.eval.loss)
            .fold(f64::INFINITY, f64::min)
    };
    // While nothing is feasible, progress is a falling violation.
    let least_violation = |pop: &[Scored]| {
        pop.iter()
            .map(|s| s.eval.violation)
            .fold(f64::INFINITY, f64::min)
    };
    let (mut best_loss, mut best_violation, mut stale) = (best_of(&pop), least_violation(&pop), 0);
    for generation in 0..opts.generations {
        // Every original variant has loss 0, so a feasible plan of loss 0
        // is optimal: stop.
        if best_loss <= 1e-12 || stale >= opts.patience.max(1) {
            progress(opts.generations, opts.generations);
            break;
        }
        let children: Vec<Genome> = (0..size)
            .map(|_| {
                let (a, b) = (
                    tournament(&mut rng, &rank, &crowd),
                    tournament(&mut rng, &rank, &crowd),
                );
                offspring(p, &pop[a].genome, &pop[b].genome, &mut rng)
            })
            .collect();
        evaluations += children.len();
        pop.extend(evaluate_all(p, children, opts.threads));
        // Drop duplicates so the population keeps its diversity.
        let mut seen = std::collections::HashSet::new();
        pop.retain(|s| seen.insert(s.genome.clone()));
        let fs = fronts(&pop);
        let mut next = Vec::with_capacity(size);
        let (mut nrank, mut ncrowd) = (Vec::new(), Vec::new());
        for (r, front) in fs.iter().enumerate() {
            let d = crowding(&pop, front);
            let mut members: Vec<(usize, f64)> = front.iter().copied().zip(d).collect();
            if next.len() + members.len() > size {
                members.sort_by(|a, b| b.1.total_cmp(&a.1));
                members.truncate(size - next.len());
            }
            for (i, c) in members {
                next.push(pop[i].clone());
                nrank.push(r);
                ncrowd.push(c);
            }
            if next.len() >= size {
                break;
            }
        }
        pop = next;
        rank = nrank;
        crowd = ncrowd;
        let (b, v) = (best_of(&pop), least_violation(&pop));
        if b < best_loss - 1e-12 {
            (best_loss, stale) = (b, 0);
        } else if best_loss.is_infinite() && v < best_violation - 1e-12 {
            (best_violation, stale) = (v, 0);
        } else {
            stale += 1;
        }
        progress(generation + 1, opts.generations);
    }
    let mut best = pop
        .iter()
        .min_by(|a, b| better(&a.eval, &b.eval))
        .cloned()
        .expect("non-empty population");
    // Polish: try each task's lower-loss variants under the best order.
    evaluations += polish(p, &mut best);
    let front = fronts(&pop)
        .first()
        .map(|f| f.iter().map(|&i| pop[i].clone()).collect())
        .unwrap_or_default();
    SearchResult {
        best,
        front,
        evaluations,
    }
}

/// Greedy improvement of a plan: lower a task's loss while it stays feasible.
fn polish(p: &Problem, best: &mut Scored) -> usize {
    let mut evals = 0;
    let mut improved = true;
    while improved && best.eval.feasible() {
        improved = false;
        for t in 0..best.genome.variants.len() {
            let m = p.ts.model_of(t);
            let cur = m.variants[best.genome.variants[t]].accuracy;
            let mut cands: Vec<usize> = (0..m.variants.len())
                .filter(|&v| m.variants[v].accuracy > cur)
                .collect();
            cands.sort_by(|&a, &b| m.variants[b].accuracy.total_cmp(&m.variants[a].accuracy));
            for v in cands {
                let mut g = best.genome.clone();
                g.variants[t] = v;
                let eval = p.evaluate(&g.assignments());
                evals += 1;
                if eval.feasible() && eval.loss < best.eval.loss {
                    *best = Scored { genome: g, eval };
                    improved = true;
                    break;
                }
            }
        }
    }
    evals
}

/// Why exact search was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct TooLarge {
    pub candidates: f64,
    pub limit: f64,
}

/// Exact search: variant choices in order of increasing loss, each tried
/// with every priority order (deadline-monotonic first) until one is
/// feasible. The objective depends only on the variants, so the first
/// feasible choice is optimal. Choices are pruned by accuracy floors,
/// storage and a necessary utilisation test.
pub fn exact(
    p: &Problem,
    limit: f64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SearchResult, TooLarge> {
    let ts = p.ts;
    let n = ts.tasks.len();
    let combos: f64 = (0..n)
        .map(|t| ts.model_of(t).variants.len() as f64)
        .product();
    let orders: f64 = (1..=n).map(|k| k as f64).product();
    if combos * orders > limit {
        return Err(TooLarge {
            candidates: combos * orders,
            limit,
        });
    }
    // Every variant choice, by loss.
    let mut choices: Vec<Vec<usize>> = vec![vec![]];
    for t in 0..n {
        let k = ts.model_of(t).variants.len();
        choices = choices
            .into_iter()
            .flat_map(|c| {
                (0..k).map(move |v| {
                    let mut c = c.clone();
                    c.push(v);
                    c
                })
            })
            .collect();
    }
    choices.sort_by(|a, b| p.loss(a).total_cmp(&p.loss(b)));
    let dm_order = seeds(p)[0].order.clone();
    let mut closest: Option<Scored> = None;
    let mut evaluations = 0;
    let total = choices.len();
    for (i, variants) in choices.into_iter().enumerate() {
        progress(i + 1, total);
        if p.static_violation(&variants) > 0.0 || !p.may_fit(&variants) {
            continue;
        }
        // Deadline-monotonic first, then every other order.
        let mut orders = vec![dm_order.clone()];
        let mut perm: Vec<usize> = (0..n).collect();
        loop {
            if perm != dm_order {
                orders.push(perm.clone());
            }
            if !next_permutation(&mut perm) {
                break;
            }
        }
        for order in orders {
            let g = Genome {
                variants: variants.clone(),
                order,
            };
            let eval = p.evaluate(&g.assignments());
            evaluations += 1;
            let s = Scored { genome: g, eval };
            if s.eval.feasible() {
                return Ok(SearchResult {
                    front: vec![s.clone()],
                    best: s,
                    evaluations,
                });
            }
            if closest
                .as_ref()
                .is_none_or(|c| better(&s.eval, &c.eval) == Ordering::Less)
            {
                closest = Some(s);
            }
        }
    }
    // Nothing feasible: the closest plan seen, or the DM/original one.
    let best = closest.unwrap_or_else(|| {
        let g = seeds(p).remove(0);
        let eval = p.evaluate(&g.assignments());
        Scored { genome: g, eval }
    });
    Ok(SearchResult {
        front: vec![best.clone()],
        best,
        evaluations,
    })
}

/// Lexicographic next permutation; false after the last one.
fn next_permutation(v: &mut [usize]) -> bool {
    let n = v.len();
    if n < 2 {
        return false;
    }
    let mut i = n - 1;
    while i > 0 && v[i - 1] >= v[i] {
        i -= 1;
    }
    if i == 0 {
        return false;
    }
    let mut j = n - 1;
    while v[j] <= v[i - 1] {
        j -= 1;
    }
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}
