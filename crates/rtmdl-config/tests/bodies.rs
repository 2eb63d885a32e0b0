//! Stage bodies and sources are typed and checked when the config loads: a
//! bad parameter is an error with the line and column of the value at fault
//! and the full field path, like every other config error.

use std::path::{Path, PathBuf};

use rtmdl_config::{ConfigError, InputInit, StageBody};
use rtmdl_core::{FaultMode, FaultSpec};

/// Line numbers matter: the tests name them.
const BASE: &str = r#"[platform]
cpu_workers = 1

[models.m]
stages = [
  { name = "pre", on = "cpu", function = "resize_normalize", params = { width = 8, height = 6 }, time = "1 ms" },
  { name = "infer", on = "gpu", params = { input_shape = [1, 3, 6, 8], outputs = ["y"], inputs = { sr = 16000, h = "zeros", c = { fill = 0.5, shape = [2, 1, 4] } }, feedback = { hn = "h" } } },
  { name = "post", on = "cpu", function = "softmax_top1", params = { threshold = 0.5 }, time = "1 ms" },
  { name = "spin", on = "cpu", time = "1 ms" },
]

[[models.m.variants]]
name = "v"
accuracy = 0.9
file = "m.onnx"
times.infer = "2 ms"

[[tasks]]
name = "t"
model = "m"
period = "10 ms"
source = { kind = "folder", path = "frames", width = 8, height = 6 }
"#;

fn load(text: &str) -> Result<rtmdl_config::Config, ConfigError> {
    rtmdl_config::parse(text, Path::new("/cfgs/run.toml"))
}

/// The config with one edit applied (which must apply).
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "edit {from:?} does not apply");
    BASE.replacen(from, to, 1)
}

fn err(text: &str) -> ConfigError {
    load(text).expect_err("should be rejected")
}

/// The 1-based column of `needle` on `line` of `text`.
fn col(text: &str, line: usize, needle: &str) -> usize {
    let l = text.lines().nth(line - 1).unwrap();
    l[..l.find(needle).unwrap()].chars().count() + 1
}

#[test]
fn bodies_are_typed() {
    let cfg = load(BASE).unwrap();
    let bodies = &cfg.bodies[0];
    let StageBody::Function(pre) = &bodies[0] else {
        panic!("{:?}", bodies[0]);
    };
    assert_eq!(pre.name(), "resize_normalize");
    // rtmdl-ops knows what the function hands on.
    assert_eq!(pre.output_shape(), Some(vec![1, 3, 6, 8]));
    let StageBody::Inference(p) = &bodies[1] else {
        panic!("{:?}", bodies[1]);
    };
    assert_eq!(p.file, None);
    assert_eq!(p.input_shape, Some(vec![1, 3, 6, 8]));
    assert_eq!(p.outputs, Some(vec!["y".to_string()]));
    assert_eq!(
        p.inputs["sr"],
        InputInit {
            fill: 16000.0,
            shape: None
        }
    );
    assert_eq!(p.inputs["h"], InputInit::default());
    assert_eq!(
        p.inputs["c"],
        InputInit {
            fill: 0.5,
            shape: Some(vec![2, 1, 4])
        }
    );
    assert_eq!(p.feedback["hn"], "h");
    assert_eq!(p.fault, None);
    assert!(matches!(&bodies[2], StageBody::Function(f) if f.name() == "softmax_top1"));
    assert_eq!(bodies[3], StageBody::Emulated);
    // A source's path is relative to the config (not yet read: the folder
    // does not exist).
    let src = cfg.sources[0].as_ref().unwrap();
    assert_eq!(src.kind(), "folder");
    let e = src.build().err().unwrap().to_string();
    assert!(e.contains("/cfgs/frames"), "{e}");
}

#[test]
fn an_inference_file_is_relative_to_the_config() {
    let cfg = load(&with(
        "input_shape = [1, 3, 6, 8],",
        "file = \"other.onnx\",",
    ))
    .unwrap();
    let StageBody::Inference(p) = &cfg.bodies[0][1] else {
        panic!();
    };
    assert_eq!(p.file, Some(PathBuf::from("/cfgs/other.onnx")));
}

#[test]
fn faults_are_on_the_core_stage() {
    let text = with(
        "feedback = { hn = \"h\" } }",
        "feedback = { hn = \"h\" }, fault = { mode = \"hang\", skip = 2, every = 3, times = 1, hang_ms = 1.5 } }",
    );
    let cfg = load(&text).unwrap();
    let want = FaultSpec {
        mode: FaultMode::Hang,
        skip: 2,
        every: 3,
        times: Some(1),
        hang: 1_500_000,
    };
    assert_eq!(cfg.taskset.models[0].stages[1].fault, Some(want));
    let StageBody::Inference(p) = &cfg.bodies[0][1] else {
        panic!();
    };
    assert_eq!(p.fault, Some(want));
    // The `fault` CPU function too, with its defaults.
    let text = with(
        "function = \"softmax_top1\", params = { threshold = 0.5 }",
        "function = \"fault\", params = { mode = \"panic\" }",
    );
    let cfg = load(&text).unwrap();
    let f = cfg.taskset.models[0].stages[2].fault.unwrap();
    assert_eq!(
        (f.mode, f.skip, f.every, f.times),
        (FaultMode::Panic, 0, 1, None)
    );
    assert_eq!(f.hang, 3_600_000_000_000);
    assert_eq!(cfg.taskset.models[0].stages[0].fault, None);
}

#[test]
fn a_bad_function_parameter_is_reported_at_its_value() {
    let text = with("threshold = 0.5", "treshold = 0.5");
    let e = err(&text);
    assert_eq!(e.field, "models.m.stages[2].params.treshold");
    assert_eq!((e.line, e.column), (8, col(&text, 8, "0.5 }")));
    assert!(e.message.contains("`softmax_top1`"), "{e}");
    assert!(e.to_string().starts_with("/cfgs/run.toml:8:"), "{e}");
    // A value out of range.
    let text = with(
        "width = 8, height = 6 }, time",
        "width = 0, height = 6 }, time",
    );
    let e = err(&text);
    assert_eq!(e.field, "models.m.stages[0].params.width");
    assert_eq!((e.line, e.column), (6, col(&text, 6, "0, height")));
    // A missing parameter: at the parameters' table.
    let text = with("width = 8, height = 6 }, time", "width = 8 }, time");
    let e = err(&text);
    assert_eq!(e.field, "models.m.stages[0].params.height");
    assert_eq!((e.line, e.column), (6, col(&text, 6, "{ width")));
    // An unknown function: at its name.
    let text = with("\"softmax_top1\"", "\"softmax_top\"");
    let e = err(&text);
    assert_eq!(e.field, "models.m.stages[2].function");
    assert_eq!((e.line, e.column), (8, col(&text, 8, "\"softmax_top\"")));
    assert!(e.message.contains("did you mean `softmax_top1`?"), "{e}");
}

#[test]
fn a_bad_inference_parameter_is_reported_at_its_value() {
    // (edit from, edit to, field, text at the reported column, message contains)
    let cases = [
        (
            "outputs = [\"y\"]",
            "outputz = [\"y\"]",
            "models.m.stages[1].params.outputz",
            "outputz",
            "did you mean `outputs`?",
        ),
        (
            "sr = 16000",
            "sr = \"loud\"",
            "models.m.stages[1].params.inputs.sr",
            "\"loud\"",
            "a number, \"zeros\" or { fill = number, shape = [..] }",
        ),
        (
            "fill = 0.5",
            "fil = 0.5",
            "models.m.stages[1].params.inputs.c.fil",
            "fil =",
            "did you mean `fill`?",
        ),
        (
            "shape = [2, 1, 4]",
            "shape = [2, -1, 4]",
            "models.m.stages[1].params.inputs.c.shape",
            "[2, -1, 4]",
            "positive integers",
        ),
        (
            "input_shape = [1, 3, 6, 8]",
            "input_shape = 4",
            "models.m.stages[1].params.input_shape",
            "4,",
            "positive integers",
        ),
        (
            "feedback = { hn = \"h\" } }",
            "feedback = { hn = \"h\" }, fault = { mode = \"explode\" } }",
            "models.m.stages[1].params.fault.mode",
            "\"explode\"",
            "\"error\", \"panic\" or \"hang\"",
        ),
    ];
    for (from, to, field, at, message) in cases {
        let text = with(from, to);
        let e = err(&text);
        assert_eq!(e.field, field, "{to}: {e}");
        assert_eq!((e.line, e.column), (7, col(&text, 7, at)), "{to}: {e}");
        assert!(e.message.contains(message), "{to}: {e}");
    }
}

#[test]
fn a_params_table_not_written_inline_is_located_too() {
    let text = r#"[platform]
cpu_workers = 1

[[models.m.stages]]
name = "post"
on = "cpu"
function = "softmax_top1"
time = "1 ms"

[models.m.stages.params]
threshold = "high"

[[models.m.variants]]
name = "v"
accuracy = 0.9

[[tasks]]
name = "t"
model = "m"
period = "10 ms"
"#;
    let e = err(text);
    assert_eq!(e.field, "models.m.stages[0].params.threshold");
    assert_eq!((e.line, e.column), (11, 13));
}

#[test]
fn a_bad_source_is_reported_at_its_value() {
    let text = with("kind = \"folder\"", "kind = \"foldr\"");
    let e = err(&text);
    assert_eq!(e.field, "tasks[0].source.kind");
    assert_eq!((e.line, e.column), (22, col(&text, 22, "\"foldr\"")));
    assert!(e.message.contains("did you mean `folder`?"), "{e}");
    let text = with("width = 8, height = 6 }\n", "width = 8 }\n");
    let e = err(&text);
    assert_eq!(e.field, "tasks[0].source.height");
    assert_eq!(e.line, 22);
}

#[test]
fn a_variant_runs_a_stage_with_its_own_params() {
    let text = with(
        "times.infer = \"2 ms\"\n",
        "times.infer = \"2 ms\"\n\n[[models.m.variants]]\nname = \"small\"\naccuracy = 0.8\nfile = \"m.onnx\"\ntimes.infer = \"1 ms\"\nparams.pre = { width = 4, height = 3 }\nparams.infer = { input_shape = [1, 3, 3, 4], threads = 2 }\n",
    );
    let cfg = load(&text).unwrap();
    // The first variant runs the stage's parameters, the second its own.
    let (StageBody::Function(a), StageBody::Function(b)) = (cfg.body(0, 0, 0), cfg.body(0, 1, 0))
    else {
        panic!("pre is a function");
    };
    assert_eq!(a.output_shape(), Some(vec![1, 3, 6, 8]));
    assert_eq!(b.output_shape(), Some(vec![1, 3, 3, 4]));
    let StageBody::Inference(small) = cfg.body(0, 1, 1) else {
        panic!("infer is an inference");
    };
    assert_eq!(small.input_shape, Some(vec![1, 3, 3, 4]));
    assert_eq!(small.threads, Some(2));
    // What the variant does not set is the stage's.
    assert_eq!(cfg.body(0, 1, 2), &cfg.bodies[0][2]);
    assert_eq!(cfg.body(0, 0, 1), &cfg.bodies[0][1]);
}

#[test]
fn a_stage_that_runs_something_may_leave_its_time_to_a_profile() {
    // `post` runs a function: its time may be measured. `spin` runs nothing.
    let text = with(
        "function = \"softmax_top1\", params = { threshold = 0.5 }, time = \"1 ms\" }",
        "function = \"softmax_top1\", params = { threshold = 0.5 } }",
    );
    let cfg = load(&text).unwrap();
    assert_eq!(cfg.unmeasured, vec![(0, 0, 2)]);
    assert_eq!(
        cfg.unmeasured_in(&cfg.taskset),
        vec!["m/v/post".to_string()]
    );
    let mut measured = cfg.taskset.clone();
    measured.models[0].variants[0].times[2] = rtmdl_core::ExecProfile::Samples(vec![5]);
    assert!(cfg.unmeasured_in(&measured).is_empty());
    let e = err(&with(
        "{ name = \"spin\", on = \"cpu\", time = \"1 ms\" }",
        "{ name = \"spin\", on = \"cpu\" }",
    ));
    assert!(
        e.message.contains("no execution time for stage `spin`"),
        "{e}"
    );
}

#[test]
fn without_overrun_a_task_skips_unless_its_deadline_passes_its_period() {
    let cfg = load(BASE).unwrap();
    assert_eq!(cfg.taskset.tasks[0].overrun, rtmdl_core::Overrun::Skip);
    let cfg = load(&with(
        "period = \"10 ms\"\n",
        "period = \"10 ms\"\ndeadline = \"25 ms\"\n",
    ))
    .unwrap();
    assert_eq!(cfg.taskset.tasks[0].overrun, rtmdl_core::Overrun::Continue);
    let cfg = load(&with(
        "period = \"10 ms\"\n",
        "period = \"10 ms\"\noverrun = \"continue\"\n",
    ))
    .unwrap();
    assert_eq!(cfg.taskset.tasks[0].overrun, rtmdl_core::Overrun::Continue);
}
