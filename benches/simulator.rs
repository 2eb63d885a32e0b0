//! Simulator throughput: simulated jobs per second on the five-task example.
//! Run with `cargo bench --bench simulator`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtmdl_core::{PolicyKind, SimOptions, VariantChoice, simulate};

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/heavy.toml");
    let ts = rtmdl_config::load(&path)
        .expect("examples/heavy.toml")
        .taskset;
    let opts = SimOptions {
        duration: 60_000_000_000,
        seed: 1,
        ..Default::default()
    };
    let mut group = c.benchmark_group("simulate heavy.toml 60 s");
    for policy in [PolicyKind::Rtmdl, PolicyKind::Dm, PolicyKind::Fifo] {
        let jobs: u64 = simulate(&ts, policy, VariantChoice::Original, opts)
            .tasks
            .iter()
            .map(|t| t.jobs)
            .sum();
        group.throughput(Throughput::Elements(jobs));
        group.bench_function(policy.name(), |b| {
            b.iter(|| simulate(&ts, policy, VariantChoice::Original, opts))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
