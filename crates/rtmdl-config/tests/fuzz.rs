//! Arbitrary input to the config and plan parsers: an error or a config,
//! never a panic. Two generators: raw bytes, and mutations of a valid file
//! (which reach the validator far more often than random bytes do).
//! Each campaign prints its executions and what the inputs came to
//! (`--nocapture` shows it). CI runs 2000 cases per campaign;
//! `PROPTEST_CASES=200000 cargo test -p rtmdl-config --release --test fuzz -- --nocapture`
//! runs a longer one (`PROPTEST_RNG_SEED=N` repeats one).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner, contextualize_config};

const GOOD: &str = include_str!("../../../examples/heavy.toml");

/// What one input came to: `None` when it loaded, else the kind of error.
fn check(text: &str) -> Option<String> {
    match rtmdl_config::parse(text, Path::new("fuzz.toml")) {
        Ok(cfg) => {
            // A config that loads is usable by the rest of the pipeline.
            let ts = cfg.taskset;
            let _ = ts.assignments(rtmdl_core::VariantChoice::Original);
            let _ = ts.hyperperiod(1_000_000_000);
            let mut plan_ts = ts.clone();
            let _ = rtmdl_config::apply_plan_text(&mut plan_ts, text, Path::new("plan.toml"));
            None
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml:"), "{msg}");
            assert!(!e.message.is_empty(), "{msg}");
            Some(kind(&e))
        }
    }
}

/// The kind of an error, without place or value: the field with its
/// indices blanked (`tasks[_].period`) and the message's first clause.
fn kind(e: &rtmdl_config::ConfigError) -> String {
    let mut field = String::new();
    let mut in_index = false;
    for c in e.field.chars() {
        match c {
            '[' => {
                in_index = true;
                field.push_str("[_]");
            }
            ']' => in_index = false,
            _ if !in_index => field.push(c),
            _ => {}
        }
    }
    let first = e.message.lines().next().unwrap_or("");
    let clause: String = first
        .split([',', '(', '"', '`'])
        .next()
        .unwrap_or("")
        .chars()
        .take(44)
        .collect();
    let clause = clause.trim();
    // A bare key is whatever the input named (`I`, `xq`): only paths into the
    // schema (`tasks[_].period`) tell kinds apart.
    if !field.contains(['.', '[']) {
        clause.to_string()
    } else {
        format!("{field}: {clause}")
    }
}

/// Runs `cases` inputs from `strategy` (PROPTEST_CASES overrides), prints
/// executions, rate and the outcome table; fails (after shrinking) on the
/// first input that panics.
fn campaign<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    to_text: impl Fn(&S::Value) -> String,
) {
    let mut config = contextualize_config(Config::with_cases(cases));
    // Failing inputs are kept beside this file (fuzz.proptest-regressions)
    // and replayed first on every later run.
    config.source_file = Some(file!());
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    let mut runner = TestRunner::new(config.clone());
    let outcomes: RefCell<BTreeMap<String, u64>> = RefCell::new(BTreeMap::new());
    let started = Instant::now();
    let result = runner.run(&strategy, |v| {
        let key = check(&to_text(&v)).unwrap_or_else(|| "(loaded)".into());
        *outcomes.borrow_mut().entry(key).or_default() += 1;
        Ok(())
    });
    let secs = started.elapsed().as_secs_f64();
    let outcomes = outcomes.into_inner();
    let runs: u64 = outcomes.values().sum();
    let mut by_count: Vec<_> = outcomes.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    eprintln!(
        "fuzz {name}: {runs} executions in {secs:.1} s ({:.0}/s), {} kinds of outcome, findings: {}",
        runs as f64 / secs.max(1e-9),
        outcomes.len(),
        if result.is_ok() { "none" } else { "1 (below)" }
    );
    for (k, n) in by_count.iter().take(12) {
        eprintln!("  {n:>9}  {k}");
    }
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    // Persisted failures are replayed on top of the new cases.
    assert!(runs >= u64::from(config.cases), "every case ran");
}

#[test]
fn arbitrary_bytes_never_panic() {
    campaign(
        "arbitrary bytes",
        2000,
        prop::collection::vec(any::<u8>(), 0..512),
        |bytes| String::from_utf8_lossy(bytes).into_owned(),
    );
}

#[test]
fn mutated_configs_never_panic() {
    campaign(
        "mutated heavy.toml",
        2000,
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~]{0,12}"), 1..6),
        |edits| mutate(edits),
    );
}

fn mutate(edits: &[(prop::sample::Index, u8, String)]) -> String {
    let mut text = GOOD.to_string();
    for (at, op, s) in edits {
        let s = s.as_str();
        let mut i = at.index(text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        match op {
            0 => text.insert_str(i, s),
            1 => {
                let mut j = (i + s.len() + 1).min(text.len());
                while !text.is_char_boundary(j) {
                    j -= 1;
                }
                text.replace_range(i..j, "");
            }
            2 => {
                // Replace a number-like run with the fuzz string.
                let j = text[i..]
                    .find(|c: char| !c.is_ascii_alphanumeric() && c != '.')
                    .map_or(text.len(), |k| i + k);
                text.replace_range(i..j, s);
            }
            _ => {
                let line_start = text[..i].rfind('\n').map_or(0, |k| k + 1);
                let line_end = text[i..].find('\n').map_or(text.len(), |k| i + k);
                text.replace_range(line_start..line_end, "");
            }
        }
    }
    text
}
