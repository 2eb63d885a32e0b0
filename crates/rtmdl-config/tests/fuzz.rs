//! Arbitrary input to the config and plan parsers: an error or a config,
//! never a panic. Two generators: raw bytes, and mutations of a valid file
//! (which reach the validator far more often than random bytes do).
//! `PROPTEST_CASES=200000 cargo test -p rtmdl-config --release --test fuzz`
//! runs a longer campaign.

use std::path::Path;

use proptest::prelude::*;

const GOOD: &str = include_str!("../../../examples/heavy.toml");

fn check(text: &str) {
    match rtmdl_config::parse(text, Path::new("fuzz.toml")) {
        Ok(cfg) => {
            // A config that loads is usable by the rest of the pipeline.
            let ts = cfg.taskset;
            let _ = ts.assignments(rtmdl_core::VariantChoice::Original);
            let _ = ts.hyperperiod(1_000_000_000);
            let mut plan_ts = ts.clone();
            let _ = rtmdl_config::apply_plan_text(&mut plan_ts, text, Path::new("plan.toml"));
        }
        Err(e) => {
            assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_configs_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~]{0,12}"), 1..6)
    ) {
        let mut text = GOOD.to_string();
        for (at, op, s) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match op {
                0 => text.insert_str(i, &s),
                1 => {
                    let mut j = (i + s.len() + 1).min(text.len());
                    while !text.is_char_boundary(j) {
                        j -= 1;
                    }
                    text.replace_range(i..j, "");
                }
                2 => {
                    // Replace a number-like run with the fuzz string.
                    let j = text[i..].find(|c: char| !c.is_ascii_alphanumeric() && c != '.').map_or(text.len(), |k| i + k);
                    text.replace_range(i..j, &s);
                }
                _ => {
                    let line_start = text[..i].rfind('\n').map_or(0, |k| k + 1);
                    let line_end = text[i..].find('\n').map_or(text.len(), |k| i + k);
                    text.replace_range(line_start..line_end, "");
                }
            }
        }
        check(&text);
    }
}
