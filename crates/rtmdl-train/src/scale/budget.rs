//! The storage bound across families: [`fit_budget`].

use std::fmt::Write as _;

use super::{Manifest, VariantRow, mark_pareto, sort_rows};
use crate::{Result, TrainError};

/// Value of keeping a row: a Pareto point (accuracy vs latency within its family) is
/// worth more than any number of dominated rows a family can have; among equals, the
/// more accurate row wins.
fn value(r: &VariantRow) -> i64 {
    let base = if r.pareto { 1_000_000 } else { 1_000 };
    base + (r.accuracy.clamp(0.0, 1.0) * 100.0).round() as i64
}

/// Keeps, across all `manifests` (one per model family), a subset of variants whose
/// storage fits `budget` bytes, and moves the others to each manifest's `dropped`.
///
/// Storage is counted as in [`Manifest::storage`]: a family that keeps any variant
/// pays its shared file once plus the private file of every kept variant. Rows already
/// in `dropped` are candidates again (so a larger budget restores them; this function
/// never deletes files).
///
/// The choice maximises the scheduler's options:
/// 1. every family with any variant keeps at least one (an error naming the shortfall
///    when even the cheapest variant of each family, plus the shared parts, exceeds
///    the budget);
/// 2. then as many accuracy–latency Pareto points as possible, then as many other
///    variants as possible, then the more accurate ones (an exact knapsack over the
///    private bytes, rounded up to at most 4096 size units, followed by a greedy pass
///    with exact bytes).
///
/// Each manifest's `pareto` flags are recomputed over all its rows.
pub fn fit_budget(manifests: &mut [Manifest], budget: u64) -> Result<()> {
    let original: Vec<(Vec<VariantRow>, Vec<VariantRow>)> = manifests
        .iter()
        .map(|m| (m.variants.clone(), m.dropped.clone()))
        .collect();
    // All candidate rows per family, in canonical order.
    let mut fams: Vec<Vec<VariantRow>> = Vec::new();
    for m in manifests.iter_mut() {
        let mut rows: Vec<VariantRow> = m.variants.drain(..).chain(m.dropped.drain(..)).collect();
        sort_rows(&mut rows);
        mark_pareto(&mut rows);
        fams.push(rows);
    }
    let active: Vec<usize> = (0..fams.len()).filter(|&f| !fams[f].is_empty()).collect();
    let shared: u64 = active.iter().map(|&f| manifests[f].shared_bytes).sum();
    let cheapest = |f: usize| {
        fams[f]
            .iter()
            .enumerate()
            .min_by_key(|(i, r)| (r.private_bytes, *i))
            .map(|(i, _)| i)
            .expect("active families have rows")
    };
    let need: u64 = shared
        + active
            .iter()
            .map(|&f| fams[f][cheapest(f)].private_bytes)
            .sum::<u64>();
    if need > budget {
        let mut s = format!(
            "storage budget {budget} B is {} B short: the cheapest variant of every model needs {need} B (",
            need - budget
        );
        for (k, &f) in active.iter().enumerate() {
            let r = &fams[f][cheapest(f)];
            let _ = write!(
                s,
                "{}{}: shared {} B + {} {} B",
                if k > 0 { "; " } else { "" },
                manifests[f].model,
                manifests[f].shared_bytes,
                r.name,
                r.private_bytes
            );
        }
        s.push(')');
        // Leave the manifests as they were given.
        for (m, (v, d)) in manifests.iter_mut().zip(original) {
            m.variants = v;
            m.dropped = d;
        }
        return Err(TrainError::Scale(s));
    }

    let total: u64 = shared + fams.iter().flatten().map(|r| r.private_bytes).sum::<u64>();
    let keep: Vec<Vec<bool>> = if total <= budget {
        fams.iter().map(|rows| vec![true; rows.len()]).collect()
    } else {
        choose(&fams, &active, budget - shared, cheapest)
    };
    for ((m, rows), keep) in manifests.iter_mut().zip(fams).zip(keep) {
        for (r, k) in rows.into_iter().zip(keep) {
            if k {
                m.variants.push(r);
            } else {
                m.dropped.push(r);
            }
        }
    }
    Ok(())
}

const NONE: i64 = i64::MIN / 4;

/// One family's knapsack: the best value with at least one row within k units,
/// with the item tables for backtracking.
struct Fam {
    best: Vec<i64>,
    /// `tables[i][k]`: the best with at least one of rows `0..i`, within k units.
    tables: Vec<Vec<i64>>,
}

impl Fam {
    fn new(rows: &[VariantRow], k_max: usize, cost: &dyn Fn(&VariantRow) -> usize) -> Fam {
        let mut t = vec![vec![NONE; k_max + 1]];
        for r in rows {
            let (c, v) = (cost(r), value(r));
            let prev = t.last().expect("one table");
            let mut next = prev.clone();
            for k in c..=k_max {
                // Take r: on top of a non-empty set, or as the first row.
                let with = if prev[k - c] > NONE {
                    prev[k - c] + v
                } else {
                    NONE
                };
                next[k] = next[k].max(with).max(v);
            }
            t.push(next);
        }
        Fam {
            best: t.last().expect("tables").clone(),
            tables: t,
        }
    }
}

/// Chooses the kept rows of every family within `cap` private bytes (the shared parts
/// already paid), at least one per active family.
fn choose(
    fams: &[Vec<VariantRow>],
    active: &[usize],
    cap: u64,
    cheapest: impl Fn(usize) -> usize,
) -> Vec<Vec<bool>> {
    const UNITS: u64 = 4096;
    let g = cap.div_ceil(UNITS).max(1);
    let k_max = (cap / g) as usize;
    let cost = |r: &VariantRow| r.private_bytes.div_ceil(g) as usize;
    let per_fam: Vec<Fam> = active
        .iter()
        .map(|&f| Fam::new(&fams[f], k_max, &cost))
        .collect();
    let (total, splits) = combine(&per_fam, k_max);
    let mut keep: Vec<Vec<bool>> = fams.iter().map(|r| vec![false; r.len()]).collect();
    if total[k_max] > NONE {
        backtrack(fams, active, &per_fam, &splits, k_max, &cost, &mut keep);
    } else {
        // Rounding made the exact minimum look infeasible: start from the cheapest
        // row of each family (it fits in exact bytes, checked by the caller).
        for &f in active {
            keep[f][cheapest(f)] = true;
        }
    }
    fill(fams, cap, &mut keep);
    keep
}

/// Combines the families: `total[k]`, the best over all of them within k units,
/// and per family the units it gets at every k.
fn combine(per_fam: &[Fam], k_max: usize) -> (Vec<i64>, Vec<Vec<usize>>) {
    let mut total = vec![0i64; k_max + 1];
    let mut splits: Vec<Vec<usize>> = Vec::new();
    for fam in per_fam {
        let mut next = vec![NONE; k_max + 1];
        let mut split = vec![0usize; k_max + 1];
        for k in 0..=k_max {
            for j in 0..=k {
                if fam.best[j] > NONE && total[k - j] > NONE {
                    let v = fam.best[j] + total[k - j];
                    if v > next[k] {
                        next[k] = v;
                        split[k] = j;
                    }
                }
            }
        }
        total = next;
        splits.push(split);
    }
    (total, splits)
}

/// Marks in `keep` the rows of the best combination: the families' splits, then
/// the rows within each.
fn backtrack(
    fams: &[Vec<VariantRow>],
    active: &[usize],
    per_fam: &[Fam],
    splits: &[Vec<usize>],
    k_max: usize,
    cost: &dyn Fn(&VariantRow) -> usize,
    keep: &mut [Vec<bool>],
) {
    let mut k = k_max;
    for (a, &f) in active.iter().enumerate().rev() {
        let mut j = splits[a][k];
        k -= j;
        let t = &per_fam[a].tables;
        let rows = &fams[f];
        for i in (0..rows.len()).rev() {
            let (c, v) = (cost(&rows[i]), value(&rows[i]));
            let cur = t[i + 1][j];
            if cur == t[i][j] {
                continue; // row i not needed
            }
            keep[f][i] = true;
            if j >= c && t[i][j - c] > NONE && t[i][j - c] + v == cur {
                j -= c;
            } else {
                // r was the first (only remaining) row.
                debug_assert_eq!(cur, v);
                break;
            }
        }
    }
}

/// Greedy fill with exact bytes: the most valuable rows that still fit in `cap`.
fn fill(fams: &[Vec<VariantRow>], cap: u64, keep: &mut [Vec<bool>]) {
    let used: u64 = keep
        .iter()
        .zip(fams)
        .flat_map(|(k, rows)| {
            k.iter()
                .zip(rows)
                .filter(|(k, _)| **k)
                .map(|(_, r)| r.private_bytes)
        })
        .sum();
    let mut left = cap.saturating_sub(used);
    let mut cand: Vec<(usize, usize)> = fams
        .iter()
        .enumerate()
        .flat_map(|(f, rows)| (0..rows.len()).map(move |i| (f, i)))
        .filter(|&(f, i)| !keep[f][i])
        .collect();
    cand.sort_by_key(|&(f, i)| {
        (
            std::cmp::Reverse(value(&fams[f][i])),
            fams[f][i].private_bytes,
        )
    });
    for (f, i) in cand {
        let b = fams[f][i].private_bytes;
        if b <= left {
            keep[f][i] = true;
            left -= b;
        }
    }
}
