//! The crate is pure, like the core: no clock, no file, no environment, no
//! process, no network; threads only in `validate` (simulating many sets at
//! once). This test reads the sources and fails on any use of those APIs.
// This test reads the sources it checks: files are allowed here, not in the
// crate (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[test]
fn the_analysis_reads_no_clock_and_touches_no_file() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "std::fs",
        "std::time",
        "Instant",
        "SystemTime",
        "std::env",
        "std::io",
        "std::net",
        "std::process",
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for f in forbidden {
            assert!(!text.contains(f), "{name} uses {f}");
        }
        if name != "validate.rs" {
            assert!(!text.contains("thread::"), "{name} uses threads");
        }
        files += 1;
    }
    assert!(files >= 5);
}
