//! Bad input never panics (issue #8): every command, fed a bad config,
//! model, profile or plan, exits non-zero with one `error:` line on stderr
//! that names the file (with line, column and field for a config problem,
//! stage parameters and sources included) and what was expected.
//!
//! One row per case. The config of a row is [`BASE`] with the row's edits
//! applied, written to `cfg.toml` in a fresh temporary folder next to a copy
//! of `assets/models/signs.onnx` (input 1x3x32x32). In arguments, edits and
//! expected fragments, `{dir}` stands for that folder and `{cfg}` for the
//! config's path.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};

/// A small working config: one task running the project's sign classifier.
/// Line numbers matter: the expected fragments name them.
const BASE: &str = r#"[platform]
cpu_workers = 1
gpu_lanes = 1

[models.signs]
stages = [
  { name = "pre", on = "cpu", function = "resize_normalize", params = { width = 32, height = 32 }, time = "0.2 ms" },
  { name = "infer", on = "gpu" },
  { name = "post", on = "cpu", function = "softmax_top1", params = { threshold = 0.5 }, time = "0.02 ms" },
]

[[models.signs.variants]]
name = "base"
accuracy = 0.955
file = "{dir}/signs.onnx"
times.infer = "1 ms"

[[tasks]]
name = "traffic_sign"
model = "signs"
period = "50 ms"
max_miss_rate = 0.05
overrun = "skip"
source = { kind = "synthetic_frames", width = 64, height = 48, seed = 2 }
"#;

/// A profile measured for another config (a model this config lacks).
const OTHER_PROFILE: &str = r#"{
  "config": "examples/tiny-real.toml",
  "engine": "tract",
  "runs": 2,
  "gpu_slowdown": [1.0],
  "models": [
    { "name": "lights", "variants": [
      { "name": "w1.00", "stages": [
        { "name": "infer", "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0, "samples_ns": [1000000] }
      ] }
    ] }
  ]
}
"#;

/// A plan made for another config (a task this config lacks).
const OTHER_PLAN: &str =
    "# rtmdl plan\n\n[[task]]\nname = \"traffic_light\"\nvariant = \"w1.00\"\npriority = 1\n";

/// Extra files of a case, in the case's folder.
#[derive(Clone, Copy)]
enum File {
    Text(&'static str),
    /// The first half of signs.onnx.
    Truncated,
    /// Random bytes.
    Random,
}

struct Case {
    what: &'static str,
    args: &'static [&'static str],
    /// (replace this, with this) in `BASE`, each must apply.
    edits: &'static [(&'static str, &'static str)],
    files: &'static [(&'static str, File)],
    /// All of these must be in the one `error:` line.
    expect: &'static [&'static str],
}

const SIMULATE: &[&str] = &["simulate", "{cfg}", "--duration", "1s"];
const COMPARE: &[&str] = &["compare", "{cfg}", "--duration", "1s"];
const PLAN: &[&str] = &["plan", "{cfg}", "-o", "{dir}/plan-out.toml"];
const RUN: &[&str] = &[
    "run",
    "{cfg}",
    "--rt",
    "off",
    "--duration",
    "1s",
    "--engine",
    "tract",
];
const PROFILE: &[&str] = &[
    "profile",
    "{cfg}",
    "--engine",
    "tract",
    "--runs",
    "2",
    "-o",
    "{dir}/profile-out.json",
];

const PERIOD: &str = "period = \"50 ms\"";
const ZETA: &str = "max_miss_rate = 0.05";
const FILE: &str = "file = \"{dir}/signs.onnx\"";

const CASES: &[Case] = &[
    // ---------------------------------------------------------------- TOML
    Case {
        what: "malformed TOML (unterminated string)",
        args: SIMULATE,
        edits: &[(PERIOD, "period = \"50 ms")],
        files: &[],
        expect: &["{cfg}:21:", "period", "string"],
    },
    Case {
        what: "malformed TOML (no value)",
        args: RUN,
        edits: &[("cpu_workers = 1", "cpu_workers = = 1")],
        files: &[],
        expect: &["{cfg}:2:", "cpu_workers", "expected"],
    },
    Case {
        what: "unknown key in a task",
        args: SIMULATE,
        edits: &[(PERIOD, "perod = \"50 ms\"")],
        files: &[],
        expect: &["{cfg}:21:", "perod", "did you mean `period`?"],
    },
    Case {
        what: "unknown key in the platform",
        args: COMPARE,
        edits: &[("cpu_workers = 1", "cpu_worker = 1")],
        files: &[],
        expect: &["{cfg}:2:", "cpu_worker", "did you mean `cpu_workers`?"],
    },
    Case {
        what: "unknown key in a variant",
        args: PLAN,
        edits: &[("accuracy = 0.955", "acuracy = 0.955")],
        files: &[],
        expect: &["{cfg}:14:", "acuracy", "did you mean `accuracy`?"],
    },
    // --------------------------------------------------------------- units
    Case {
        what: "wrong unit",
        args: SIMULATE,
        edits: &[(PERIOD, "period = \"33 parsecs\"")],
        files: &[],
        expect: &[
            "{cfg}:21:",
            "period",
            "parsecs",
            "units: ns, us, ms, s, min",
        ],
    },
    Case {
        what: "no unit",
        args: PLAN,
        edits: &[(PERIOD, "period = 33")],
        files: &[],
        expect: &["{cfg}:21:", "period", "no unit", "\"33 ms\""],
    },
    // ----------------------------------------------------------- periods
    Case {
        what: "zero period",
        args: SIMULATE,
        edits: &[(PERIOD, "period = \"0 ms\"")],
        files: &[],
        expect: &["{cfg}:21:", "tasks[0].period", "at least 10 us"],
    },
    Case {
        what: "negative period",
        args: COMPARE,
        edits: &[(PERIOD, "period = \"-5 ms\"")],
        files: &[],
        expect: &["{cfg}:21:", "period", "non-negative"],
    },
    Case {
        what: "absurd period",
        args: PLAN,
        edits: &[(PERIOD, "period = \"1e30 s\"")],
        files: &[],
        expect: &["{cfg}:21:", "period", "1e30 s", "over a year"],
    },
    Case {
        what: "absurd period (run)",
        args: RUN,
        edits: &[(PERIOD, "period = \"9000000 min\"")],
        files: &[],
        expect: &["{cfg}:21:", "period", "over a year"],
    },
    // --------------------------------------------------------- deadlines
    Case {
        what: "zero deadline",
        args: SIMULATE,
        edits: &[(PERIOD, "period = \"50 ms\"\ndeadline = \"0 ms\"")],
        files: &[],
        expect: &["{cfg}:22:", "tasks[0].deadline", "above 0"],
    },
    Case {
        what: "negative deadline",
        args: SIMULATE,
        edits: &[(PERIOD, "period = \"50 ms\"\ndeadline = \"-1 ms\"")],
        files: &[],
        expect: &["{cfg}:22:", "deadline", "non-negative"],
    },
    Case {
        what: "absurd deadline",
        args: COMPARE,
        edits: &[(PERIOD, "period = \"50 ms\"\ndeadline = \"1e30 s\"")],
        files: &[],
        expect: &["{cfg}:22:", "deadline", "over a year"],
    },
    // A deadline past the period is allowed with overrun = "continue"
    // (the default); with "skip" it is not.
    Case {
        what: "deadline over the period with overrun = skip",
        args: PLAN,
        edits: &[(PERIOD, "period = \"50 ms\"\ndeadline = \"80 ms\"")],
        files: &[],
        expect: &[
            "{cfg}:22:",
            "tasks[0].deadline",
            "longer than the period",
            "overrun = \"continue\"",
        ],
    },
    // ----------------------------------------------------------------- ζ
    Case {
        what: "zeta above 1",
        args: SIMULATE,
        edits: &[(ZETA, "max_miss_rate = 1.5")],
        files: &[],
        expect: &[
            "{cfg}:22:",
            "tasks[0].max_miss_rate",
            "between 0 and 1, got 1.5",
        ],
    },
    Case {
        what: "zeta below 0",
        args: RUN,
        edits: &[(ZETA, "max_miss_rate = -0.1")],
        files: &[],
        expect: &[
            "{cfg}:22:",
            "tasks[0].max_miss_rate",
            "between 0 and 1, got -0.1",
        ],
    },
    // ------------------------------------------------- names that miss
    Case {
        what: "unknown variant",
        args: SIMULATE,
        edits: &[(ZETA, "max_miss_rate = 0.05\nvariant = \"tiny\"")],
        files: &[],
        expect: &[
            "{cfg}:23:",
            "tasks[0].variant",
            "no variant `tiny`",
            "variants: `base`",
        ],
    },
    Case {
        what: "unknown model",
        args: COMPARE,
        edits: &[("model = \"signs\"", "model = \"sings\"")],
        files: &[],
        expect: &[
            "{cfg}:20:",
            "tasks[0].model",
            "no model `sings`",
            "models: `signs`",
        ],
    },
    Case {
        what: "unknown overrun rule",
        args: SIMULATE,
        edits: &[("overrun = \"skip\"", "overrun = \"skipp\"")],
        files: &[],
        expect: &[
            "{cfg}:23:",
            "overrun",
            "unknown variant `skipp`",
            "did you mean `skip`?",
        ],
    },
    Case {
        what: "unknown resource",
        args: PLAN,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpuu\" }",
        )],
        files: &[],
        expect: &[
            "{cfg}:8:",
            "on",
            "unknown variant `gpuu`",
            "did you mean `gpu`?",
        ],
    },
    // Stage bodies and sources are checked when the config loads, so every
    // command reports them, at the line and column of the value at fault.
    Case {
        what: "unknown CPU function",
        args: RUN,
        edits: &[("function = \"softmax_top1\"", "function = \"softmax_top\"")],
        files: &[],
        expect: &[
            "{cfg}:9:43: models.signs.stages[2].function",
            "unknown CPU function `softmax_top`",
            "did you mean `softmax_top1`?",
        ],
    },
    Case {
        what: "unknown CPU function (simulate)",
        args: SIMULATE,
        edits: &[("function = \"softmax_top1\"", "function = \"softmax_top\"")],
        files: &[],
        expect: &["{cfg}:9:43:", "did you mean `softmax_top1`?"],
    },
    Case {
        what: "unknown parameter of a CPU function",
        args: PROFILE,
        edits: &[(
            "params = { threshold = 0.5 }",
            "params = { treshold = 0.5 }",
        )],
        files: &[],
        expect: &[
            "{cfg}:9:81: models.signs.stages[2].params.treshold",
            "`softmax_top1`: bad parameter `treshold`",
        ],
    },
    Case {
        what: "bad parameter value of a CPU function",
        args: PLAN,
        edits: &[("width = 32, height = 32", "width = 32, height = \"tall\"")],
        files: &[],
        expect: &[
            "{cfg}:7:",
            "models.signs.stages[0].params.height",
            "`resize_normalize`: bad parameter `height`",
        ],
    },
    Case {
        what: "bad fault injected into an inference",
        args: RUN,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpu\", params = { fault = { mode = \"explode\" } } }",
        )],
        files: &[],
        expect: &[
            "{cfg}:8:",
            "models.signs.stages[1].params.fault.mode",
            "\"error\", \"panic\" or \"hang\"",
            "explode",
        ],
    },
    Case {
        what: "unknown parameter of an inference",
        args: SIMULATE,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpu\", params = { input_shapes = [1, 3, 32, 32] } }",
        )],
        files: &[],
        expect: &[
            "{cfg}:8:",
            "models.signs.stages[1].params.input_shapes",
            "did you mean `input_shape`?",
        ],
    },
    Case {
        what: "bad input value of an inference",
        args: RUN,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpu\", params = { inputs = { sr = \"loud\" } } }",
        )],
        files: &[],
        expect: &[
            "{cfg}:8:",
            "models.signs.stages[1].params.inputs.sr",
            "a number, \"zeros\" or { fill = number, shape = [..] }",
        ],
    },
    Case {
        what: "unknown source kind",
        args: RUN,
        edits: &[("kind = \"synthetic_frames\"", "kind = \"synthetic_frame\"")],
        files: &[],
        expect: &[
            "{cfg}:24:19: tasks[0].source.kind",
            "did you mean `synthetic_frames`?",
        ],
    },
    Case {
        what: "bad source parameter",
        args: COMPARE,
        edits: &[("width = 64, height = 48", "width = 0, height = 48")],
        files: &[],
        expect: &[
            "{cfg}:24:",
            "tasks[0].source.width",
            "`synthetic_frames`: bad parameter `width`",
        ],
    },
    Case {
        what: "a route with an unknown camera",
        args: RUN,
        edits: &[(
            "kind = \"synthetic_frames\", width = 64, height = 48, seed = 2",
            "kind = \"route\", camera = \"radar\"",
        )],
        files: &[],
        expect: &[
            "{cfg}:24:",
            "tasks[0].source.camera",
            "`route`: bad parameter `camera`",
            "\"lights\" or \"signs\"",
        ],
    },
    Case {
        what: "an inference stage naming an unknown engine",
        args: RUN,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpu\", engine = \"tensorrt\" }",
        )],
        files: &[],
        expect: &[
            "{cfg}:8:",
            "models.signs.stages[1].engine",
            "expected \"tract\", \"ort\" or \"cuda\", got \"tensorrt\"",
        ],
    },
    Case {
        what: "a CPU stage naming an engine",
        args: SIMULATE,
        edits: &[(
            "function = \"softmax_top1\",",
            "function = \"softmax_top1\", engine = \"ort\",",
        )],
        files: &[],
        expect: &[
            "{cfg}:9:",
            "models.signs.stages[2].engine",
            "only an inference stage",
        ],
    },
    // ----------------------------------------------------------- shapes
    Case {
        what: "empty task set",
        args: SIMULATE,
        edits: &[(
            "[[tasks]]\nname = \"traffic_sign\"\nmodel = \"signs\"\nperiod = \"50 ms\"\nmax_miss_rate = 0.05\noverrun = \"skip\"\nsource = { kind = \"synthetic_frames\", width = 64, height = 48, seed = 2 }\n",
            "",
        )],
        files: &[],
        expect: &["{cfg}:", "tasks", "task set is empty", "[[tasks]]"],
    },
    Case {
        what: "empty task set (run)",
        args: RUN,
        edits: &[(
            "[[tasks]]\nname = \"traffic_sign\"\nmodel = \"signs\"\nperiod = \"50 ms\"\nmax_miss_rate = 0.05\noverrun = \"skip\"\nsource = { kind = \"synthetic_frames\", width = 64, height = 48, seed = 2 }\n",
            "",
        )],
        files: &[],
        expect: &["{cfg}:", "task set is empty"],
    },
    Case {
        what: "config that does not exist",
        args: &["simulate", "{dir}/nope.toml"],
        edits: &[],
        files: &[],
        expect: &["{dir}/nope.toml: cannot read the config", "No such file"],
    },
    Case {
        what: "config that does not exist (profile)",
        args: &["profile", "{dir}/nope.toml", "-o", "{dir}/p.json"],
        edits: &[],
        files: &[],
        expect: &["{dir}/nope.toml", "cannot read the config"],
    },
    // ----------------------------------------------------------- models
    Case {
        what: "missing ONNX file (run)",
        args: RUN,
        edits: &[(FILE, "file = \"{dir}/missing.onnx\"")],
        files: &[],
        expect: &[
            "task `traffic_sign`",
            "stage `infer`",
            "{dir}/missing.onnx",
            "file not found",
        ],
    },
    Case {
        what: "missing ONNX file (profile)",
        args: PROFILE,
        edits: &[(FILE, "file = \"{dir}/missing.onnx\"")],
        files: &[],
        expect: &["stage `infer`", "{dir}/missing.onnx", "file not found"],
    },
    Case {
        what: "truncated ONNX file (run)",
        args: RUN,
        edits: &[(FILE, "file = \"{dir}/half.onnx\"")],
        files: &[("half.onnx", File::Truncated)],
        expect: &[
            "task `traffic_sign`",
            "stage `infer`",
            "{dir}/half.onnx",
            "not a valid ONNX",
        ],
    },
    Case {
        what: "truncated ONNX file (profile)",
        args: PROFILE,
        edits: &[(FILE, "file = \"{dir}/half.onnx\"")],
        files: &[("half.onnx", File::Truncated)],
        expect: &["stage `infer`", "{dir}/half.onnx", "not a valid ONNX"],
    },
    Case {
        what: "corrupt ONNX file (run)",
        args: RUN,
        edits: &[(FILE, "file = \"{dir}/noise.onnx\"")],
        files: &[("noise.onnx", File::Random)],
        expect: &[
            "task `traffic_sign`",
            "stage `infer`",
            "{dir}/noise.onnx",
            "not a valid ONNX",
        ],
    },
    Case {
        what: "corrupt ONNX file (profile)",
        args: PROFILE,
        edits: &[(FILE, "file = \"{dir}/noise.onnx\"")],
        files: &[("noise.onnx", File::Random)],
        expect: &["stage `infer`", "{dir}/noise.onnx", "not a valid ONNX"],
    },
    Case {
        what: "input shape does not match the producing sub-task (run)",
        args: RUN,
        edits: &[("width = 32, height = 32", "width = 20, height = 20")],
        files: &[],
        expect: &[
            "task `traffic_sign`",
            "stage `infer`",
            "{dir}/signs.onnx",
            "[1, 3, 20, 20]",
            "[1, 3, 32, 32]",
            "stage `pre`",
        ],
    },
    Case {
        what: "input shape does not match the producing sub-task (profile)",
        args: PROFILE,
        edits: &[("width = 32, height = 32", "width = 20, height = 20")],
        files: &[],
        expect: &[
            "task `traffic_sign`",
            "stage `infer`",
            "{dir}/signs.onnx",
            "[1, 3, 20, 20]",
            "[1, 3, 32, 32]",
        ],
    },
    // ------------------------------------------------- profiles and plans
    Case {
        what: "profile from another config",
        args: &["simulate", "{cfg}", "--profile", "{dir}/other.json"],
        edits: &[],
        files: &[("other.json", File::Text(OTHER_PROFILE))],
        expect: &["{dir}/other.json", "no model `lights`", "another config"],
    },
    Case {
        what: "profile that is not JSON",
        args: &["plan", "{cfg}", "--profile", "{dir}/notes.json"],
        edits: &[],
        files: &[("notes.json", File::Text("period = \"50 ms\"\n"))],
        expect: &[
            "{dir}/notes.json",
            "not a profile written by `rtmdl profile`",
            "line 1",
        ],
    },
    Case {
        what: "profile that does not exist",
        args: &["compare", "{cfg}", "--profile", "{dir}/none.json"],
        edits: &[],
        files: &[],
        expect: &["{dir}/none.json", "No such file"],
    },
    Case {
        what: "plan from another config",
        args: &["simulate", "{cfg}", "--plan", "{dir}/other-plan.toml"],
        edits: &[],
        files: &[("other-plan.toml", File::Text(OTHER_PLAN))],
        expect: &[
            "{dir}/other-plan.toml:4:",
            "task[0].name",
            "no task `traffic_light`",
            "another config",
        ],
    },
    Case {
        what: "plan from another config (run)",
        args: &[
            "run",
            "{cfg}",
            "--plan",
            "{dir}/other-plan.toml",
            "--rt",
            "off",
            "--duration",
            "1s",
            "--engine",
            "tract",
        ],
        edits: &[],
        files: &[("other-plan.toml", File::Text(OTHER_PLAN))],
        expect: &["{dir}/other-plan.toml:4:", "another config"],
    },
    Case {
        what: "plan that is not a plan",
        args: &["compare", "{cfg}", "--plan", "{dir}/junk.toml"],
        edits: &[],
        files: &[("junk.toml", File::Text("{ not toml"))],
        expect: &["{dir}/junk.toml:1:"],
    },
    // ------------------------------------------------- rounds and the probe
    Case {
        what: "zero rounds",
        args: &["fidelity", "{cfg}", "--rounds", "0"],
        edits: &[],
        files: &[],
        expect: &["--rounds", "at least 1 round"],
    },
    Case {
        what: "rounds that are not a number",
        args: &["fidelity", "{cfg}", "--rounds", "five"],
        edits: &[],
        files: &[],
        expect: &["--rounds", "\"five\" is not a whole number"],
    },
    Case {
        what: "a stall threshold that is not a duration",
        args: &[
            "run",
            "{cfg}",
            "--rt",
            "off",
            "--duration",
            "1s",
            "--stall",
            "often",
        ],
        edits: &[],
        files: &[],
        expect: &["--stall", "often"],
    },
    Case {
        what: "a probe switch that is neither on nor off",
        args: &[
            "run",
            "{cfg}",
            "--rt",
            "off",
            "--duration",
            "1s",
            "--probe",
            "yes",
        ],
        edits: &[],
        files: &[],
        expect: &["--probe", "yes"],
    },
    // ------------------------------------------- bringing your own models
    Case {
        what: "a variant's params for a stage the model lacks",
        args: SIMULATE,
        edits: &[(
            FILE,
            "file = \"{dir}/signs.onnx\"\nparams.nope = { width = 8 }",
        )],
        files: &[],
        expect: &[
            "{cfg}:16:",
            "params.nope",
            "no stage `nope`",
            "stages: `pre`, `infer`, `post`",
        ],
    },
    Case {
        what: "a variant's bad params for a stage",
        args: RUN,
        edits: &[(
            FILE,
            "file = \"{dir}/signs.onnx\"\nparams.pre = { width = 0, height = 32 }",
        )],
        files: &[],
        expect: &["{cfg}:16:", "params.pre", "width"],
    },
    Case {
        what: "zero intra-op threads for a model",
        args: SIMULATE,
        edits: &[(
            "{ name = \"infer\", on = \"gpu\" }",
            "{ name = \"infer\", on = \"gpu\", params = { threads = 0 } }",
        )],
        files: &[],
        expect: &["{cfg}:8:", "params.threads", "between 1 and 256"],
    },
    Case {
        what: "a stage time left to a profile, simulated without one",
        args: SIMULATE,
        edits: &[(", time = \"0.2 ms\" }", " }")],
        files: &[],
        expect: &[
            "{cfg}: no time for signs/base/pre",
            "rtmdl profile {cfg}",
            "--profile",
        ],
    },
    Case {
        what: "results to a folder that does not exist",
        args: &[
            "run",
            "{cfg}",
            "--rt",
            "off",
            "--duration",
            "1s",
            "--results",
            "{dir}/no/such/folder/r.jsonl",
        ],
        edits: &[],
        files: &[],
        expect: &["--results {dir}/no/such/folder/r.jsonl", "No such file"],
    },
    Case {
        what: "inspect at shapes no engine can run",
        args: &[
            "inspect",
            "{dir}/signs.onnx",
            "--shape",
            "1,3,8,8",
            "--runs",
            "1",
        ],
        edits: &[],
        files: &[],
        expect: &["no engine ran {dir}/signs.onnx at the tried shapes"],
    },
    Case {
        what: "explain a name that is nothing",
        args: &["explain", "nmss"],
        edits: &[],
        files: &[],
        expect: &["`nmss`", "did you mean `nms`?"],
    },
    Case {
        what: "variants of a model that does not exist",
        args: &["variants", "{dir}/nope.onnx"],
        edits: &[],
        files: &[],
        expect: &["{dir}/nope.onnx"],
    },
    Case {
        what: "variants at a size of zero",
        args: &["variants", "{dir}/signs.onnx", "--sizes", "32,0"],
        edits: &[],
        files: &[],
        expect: &["--sizes", "positive"],
    },
    Case {
        what: "variants at zero threads",
        args: &["variants", "{dir}/signs.onnx", "--threads", "1,0"],
        edits: &[],
        files: &[],
        expect: &["--threads", "between 1 and 256"],
    },
];

/// Writes the case's files into `dir`; returns the config path.
fn prepare(case: &Case, dir: &Path) -> String {
    let d = dir.display().to_string();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/signs.onnx");
    std::fs::copy(&model, dir.join("signs.onnx")).expect("copy signs.onnx");
    let mut text = BASE.to_string();
    for (from, to) in case.edits {
        assert!(
            text.contains(from),
            "{}: edit {from:?} does not apply",
            case.what
        );
        text = text.replacen(from, to, 1);
    }
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, text.replace("{dir}", &d)).unwrap();
    for (name, f) in case.files {
        let bytes = match f {
            File::Text(t) => t.replace("{dir}", &d).into_bytes(),
            File::Truncated => {
                let b = std::fs::read(&model).unwrap();
                b[..b.len() / 2].to_vec()
            }
            File::Random => {
                let mut b = vec![0u8; 4096];
                rand_chacha::ChaCha8Rng::seed_from_u64(8).fill_bytes(&mut b);
                b
            }
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    cfg.display().to_string()
}

/// Runs the binary with a time limit; (exit status, stderr). `None` if it
/// had to be killed.
fn rtmdl(args: &[String], dir: &Path) -> (Option<std::process::ExitStatus>, String) {
    let err_path = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run rtmdl");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// What is wrong with a case's outcome, if anything.
fn check(case: &Case) -> Result<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = prepare(case, dir);
    let d = dir.display().to_string();
    let subst = |s: &str| s.replace("{cfg}", &cfg).replace("{dir}", &d);
    let args: Vec<String> = case.args.iter().map(|a| subst(a)).collect();
    let (status, stderr) = rtmdl(&args, dir);
    let fail = |why: String| Err(format!("{}: {why}\n  stderr: {stderr}", case.what));
    match status {
        None => return fail("did not finish within 60 s".into()),
        Some(s) if s.success() => return fail("exited 0".into()),
        Some(s) if s.code().is_none() => return fail(format!("killed by a signal ({s})")),
        Some(_) => {}
    }
    for bad in ["panicked", "RUST_BACKTRACE", ":0:0"] {
        if stderr.contains(bad) {
            return fail(format!("stderr contains {bad:?}"));
        }
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    let [line] = errors[..] else {
        return fail(format!("expected one `error:` line, got {}", errors.len()));
    };
    for want in case.expect {
        let want = subst(want);
        if !line.contains(&want) {
            return fail(format!("the error does not contain {want:?}"));
        }
    }
    Ok(line.replace(&d, "{dir}"))
}

#[test]
fn every_bad_input_is_one_clear_error() {
    let mut failures = Vec::new();
    for case in CASES {
        match check(case) {
            Ok(line) => eprintln!("{:<60} {line}", case.what),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The base config itself is good, so each case fails for its own reason.
#[test]
fn the_base_config_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let case = Case {
        what: "base",
        args: &[],
        edits: &[],
        files: &[],
        expect: &[],
    };
    let cfg = prepare(&case, tmp.path());
    for args in [SIMULATE, RUN] {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{cfg}", &cfg)
                    .replace("{dir}", &tmp.path().display().to_string())
            })
            .collect();
        let (status, stderr) = rtmdl(&args, tmp.path());
        assert!(status.is_some_and(|s| s.success()), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}
