//! `cargo run --release -p rtmdl-analysis --example validate -- N SEED`:
//! the validation line for N random sets (also `rtmdl analyze --validate`).
fn main() {
    let mut args = std::env::args().skip(1);
    let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let v = rtmdl_analysis::validate::validate(n, seed, threads);
    println!("{v}");
    eprintln!(
        "{} tasks with a bound, {} schedulable, {} sets refused",
        v.bounded_tasks, v.schedulable_tasks, v.refused
    );
    for x in &v.examples {
        eprintln!("{x:?}");
    }
}
