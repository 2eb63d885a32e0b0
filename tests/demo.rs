//! `rtmdl demo --quick` end to end: data, variants, profile, plan, real runs
//! of every policy at both loads, report.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn quick_demo_writes_a_report_with_every_policy_at_both_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("report:"), "{stdout}");
    assert!(stdout.contains("goal (measured)"), "{stdout}");
    assert!(stdout.contains("best original-model baseline"), "{stdout}");

    let text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    for load in ["light", "heavy"] {
        let runs = r[load]
            .as_array()
            .unwrap_or_else(|| panic!("no {load} runs"));
        let labels: Vec<&str> = runs
            .iter()
            .map(|run| run["label"].as_str().unwrap())
            .collect();
        assert_eq!(
            labels,
            [
                "rtmdl+plan",
                "DM-NMC",
                "DM-MC",
                "UM-NMC",
                "DM-split-NMC",
                "UM-split-NMC",
                "FIFO",
                "EDF"
            ],
            "{load}"
        );
        for run in runs {
            assert_eq!(run["load"], load);
            // Beside the label and load, the JSON of `rtmdl run --json`: policy,
            // variants, mode.
            assert_eq!(run["mode"], "run");
            assert!(run["policy"].is_string() && run["variants"].is_string());
            let tasks = run["tasks"].as_array().unwrap();
            assert!(tasks.len() >= 2);
            let mut cameras = 0;
            for t in tasks {
                let jobs = t["jobs"].as_u64().unwrap();
                let done = ["completed", "missed", "dropped", "failed"]
                    .iter()
                    .map(|k| t[*k].as_u64().unwrap())
                    .sum::<u64>();
                assert!(jobs > 0, "{load}: no job of {}", t["name"]);
                assert_eq!(jobs, done, "{load}: every job accounted for");
                // The cameras drive a route: every camera task's answers are
                // judged, timely accuracy next to the predicted one. The voice
                // task (present when scripts/fetch-models fetched Silero VAD)
                // hears synthetic audio with no ground truth: nothing judged.
                if t["name"] == "voice" {
                    assert!(t["timely_accuracy"].is_null(), "{t}");
                    assert!(t["answers"].is_null(), "{t}");
                    continue;
                }
                cameras += 1;
                let timely = t["timely_accuracy"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{t}"));
                assert!((0.0..=1.0).contains(&timely), "{t}");
                let a = &t["answers"];
                assert!(a["frames"].as_u64().unwrap() > 0, "{t}");
                assert!(t["predicted"]["timely_accuracy"].is_f64(), "{t}");
            }
            assert_eq!(cameras, 2, "{load}: both camera tasks judged");
            assert!(run["timely_accuracy"].is_f64(), "{run}");
            assert!(run["red_lights_run"].is_u64(), "{run}");
        }
    }
    // The committed families, not re-fitted: the full-width, full-depth
    // variant is the base model itself, measured on the committed evaluation set.
    assert!(!stderr.contains("re-fitting"), "{stderr}");
    let variants = r["variants"].as_array().unwrap();
    for model in ["lights", "signs"] {
        let rows: Vec<_> = variants.iter().filter(|v| v["model"] == model).collect();
        assert!(!rows.is_empty(), "no {model} variant kept");
        let full = rows.iter().find(|v| v["name"] == "w100-d2").unwrap();
        assert_eq!(full["refit"], false, "{model}");
        let committed =
            std::fs::read_to_string(format!("assets/variants/{model}.manifest.json")).unwrap();
        let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
        let committed_full = committed["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "w100-d2")
            .unwrap();
        assert_eq!(full["accuracy"], committed_full["accuracy"], "{model}");
        for v in rows {
            let acc = v["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc));
            let file = out.join("variants").join(v["file"].as_str().unwrap());
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
    assert!(r["storage_used"].as_u64().unwrap() <= r["storage_budget"].as_u64().unwrap());
    // The ablation: five steps at each load, from black-box DM to rtmdl+plan.
    let ablation = r["ablation"].as_array().expect("an ablation section");
    assert_eq!(ablation.len(), 10);
    assert_eq!(ablation[0]["step"], "black-box DM, original models");
    assert!(ablation.iter().all(|a| a["miss_rate"].is_f64()));
    // The plans were verified by real runs: predicted next to measured.
    let verify = r["verify"].as_array().expect("verify rounds");
    assert!(
        verify
            .iter()
            .any(|v| v["load"] == "heavy" && v["round"] == 1)
    );
    assert!(
        verify
            .iter()
            .all(|v| v["measured"].is_f64() && v["predicted"].is_f64())
    );
    // The load step without and with switching.
    let adaptation = &r["adaptation"];
    assert!(
        adaptation["with"].is_array() && adaptation["without"].is_array(),
        "{adaptation}"
    );
    assert!(out.join("adapt.svg").is_file());
    check_html_renders(&out.join("report.html"));
    // Timely accuracy is the page's first figure, with the route counters.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    let heading = page
        .find("Timely accuracy")
        .expect("a timely accuracy section");
    assert!(
        heading < page.find("<svg").unwrap(),
        "timely accuracy first"
    );
    assert!(page.contains("red lights run"));
    for f in [
        "report.md",
        "timely.svg",
        "miss-rate.svg",
        "response-light.svg",
        "response-heavy.svg",
        "variants.svg",
        "trace.json",
        "light.toml",
        "heavy.toml",
        "light.plan.toml",
        "heavy.plan.toml",
    ] {
        let p = out.join(f);
        assert!(p.is_file(), "{f} missing");
        if f.ends_with(".svg") {
            let svg = std::fs::read_to_string(&p).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{f}");
        }
    }
    // The written configs are ordinary configs: `rtmdl simulate` takes them.
    let o = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["simulate", "--duration", "1s"])
        .arg(out.join("heavy.toml"))
        .arg("--plan")
        .arg(out.join("heavy.plan.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A copy of the committed base models and variant families in `dir`.
fn copy_assets(dir: &Path) -> PathBuf {
    let assets = dir.join("assets");
    for sub in ["models", "variants"] {
        std::fs::create_dir_all(assets.join(sub)).unwrap();
        for e in std::fs::read_dir(Path::new("assets").join(sub)).unwrap() {
            let p = e.unwrap().path();
            let keep = p
                .extension()
                .is_some_and(|x| x == "onnx" || x == "json" || x == "safetensors");
            if keep && p.is_file() {
                std::fs::copy(&p, assets.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    assets
}

#[test]
fn a_corrupt_committed_variant_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let assets = copy_assets(dir.path());
    let bad = assets.join("variants/signs-w050-d1.private.safetensors");
    let mut bytes = std::fs::read(&bad).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&bad, bytes).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["demo", "--quick", "--assets"])
        .arg(&assets)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&bad.display().to_string()) && errors[0].contains("sha256"),
        "{stderr}"
    );
    // Neither re-fitted nor run on anything stale.
    assert!(
        !stderr.contains("re-fitting") && !stderr.contains("[3/"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_out_folder_that_cannot_be_written_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = file.join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("error: --out ") && stderr.contains(&out.display().to_string()),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The page renders in headless Chromium: a screenshot that is not blank
/// and no console error. Skipped (with a line) where Chromium is missing,
/// unless `RTMDL_REQUIRE_CHROMIUM` is set (CI installs it).
fn check_html_renders(html: &Path) {
    let page = std::fs::read_to_string(html).unwrap();
    assert!(
        page.contains("id=\"verdict\"") && page.contains("<svg"),
        "not the page"
    );
    assert!(
        !page.contains("src=\"") || !page.contains("http"),
        "not self-contained"
    );
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("RTMDL_REQUIRE_CHROMIUM").is_none(),
            "RTMDL_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("skipped: no chromium to render report.html");
        return;
    };
    let shot = html.with_file_name("report.png");
    let profile = html.with_file_name("chromium-profile");
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {log}");
    // Console messages are logged as CONSOLE(...) lines; errors as "Uncaught".
    assert!(
        !log.contains("Uncaught") && !log.contains(":ERROR:CONSOLE"),
        "{log}"
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    let first = img.get_pixel(0, 0);
    let differing = img.pixels().filter(|p| *p != first).count();
    assert!(
        differing > (img.width() * img.height() / 50) as usize,
        "the screenshot is blank ({differing} pixels differ from the first)"
    );
}
