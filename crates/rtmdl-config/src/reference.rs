//! The config reference: every section and field a config file takes, the
//! inference stages' parameters, and the CPU functions and sources from the
//! registries the code builds them from (`rtmdl_ops::functions`,
//! `rtmdl_ops::sources`), so the reference cannot drift from the code.
//! `rtmdl explain` prints it; `docs/reference.md` is [`markdown`]'s output,
//! kept equal by a test.

/// `(field, meaning incl. default)` of one config section.
pub type Fields = &'static [(&'static str, &'static str)];

/// The sections of a config, in file order, with their fields.
pub const SECTIONS: &[(&str, &str, Fields)] = &[
    (
        "platform",
        "`[platform]`: the device.",
        &[
            (
                "cpu_workers",
                "CPU worker threads for the CPU sub-tasks (required).",
            ),
            (
                "gpu_lanes",
                "inference lanes: on a GPU, concurrent inference streams; without one, CPU-engine threads of their own. Default 1.",
            ),
            (
                "gpu_slowdown",
                "per number of busy lanes, how much slower each inference runs, e.g. `[1.0, 1.3]`: two at once each run 1.3× slower. One entry per lane; default all 1.0. `rtmdl profile` measures it.",
            ),
            (
                "storage_budget",
                "the bytes the chosen variants may take together (shared parts counted once), e.g. `\"16 MiB\"`; the planner's bound. Default: none.",
            ),
            (
                "cores",
                "physical cores the workers and CPU-engine lanes share (the simulator and the analysis charge their contention). Default: as many as threads.",
            ),
            (
                "watchdog",
                "a sub-task running longer than this (e.g. `\"200 ms\"`) is hung: its job fails and its thread is replaced. Default: none.",
            ),
            (
                "max_hangs",
                "hung sub-tasks after which a task is quarantined (its jobs fail at once without running); 0: never. Default 3.",
            ),
        ],
    ),
    (
        "models.NAME",
        "`[models.NAME]`: one network, its chain of stages and its variants.",
        &[
            (
                "stages",
                "the chain, in order: `{ name, on = \"cpu\" | \"gpu\", time?, function?, params?, engine? }`. A `cpu` stage runs the registered `function` (see CPU functions below) with its `params`, or busy-waits its `time` without one; a `gpu` stage runs the variant's ONNX model (see Inference stage parameters), on `engine` (`tract`, `ort`, `cuda`) instead of the run's when given. `time` is a duration (`\"4 ms\"`) or percentiles `{ p50, p90, p99, max }`: the simulator's and planner's times until a profile replaces them; a stage that runs a function or a model file may leave it out, and then every command that predicts asks for `--profile` (from `rtmdl profile`).",
            ),
            (
                "shared",
                "named parts shared by several variants and stored once, e.g. `{ backbone = \"3.2 MiB\" }`.",
            ),
            (
                "variants",
                "`[[models.NAME.variants]]`: `name`, `accuracy` (0..1, measured on held-out data), `file` (the ONNX model, relative to the config), `times.STAGE` (the stage's time for this variant), `shared_with` (a part of `shared`), `private` (the variant's own bytes), `params.STAGE` (the parameters this variant runs a stage with instead of the stage's, e.g. `params.pre = { width = 256, height = 256 }` and `params.infer = { input_shape = [1, 3, 256, 256] }` for a 256 px variant of a model with dynamic input).",
            ),
        ],
    ),
    (
        "tasks",
        "`[[tasks]]`: one periodic task.",
        &[
            ("name", "the task's name (required)."),
            ("model", "a `[models.NAME]` (required)."),
            (
                "period",
                "release period, `\"33 ms\"`, or a rate, `\"30 Hz\"` (required).",
            ),
            ("deadline", "relative deadline. Default: the period."),
            ("offset", "the first release. Default 0."),
            (
                "max_miss_rate",
                "ζ, the share of jobs that may be not on time: missed, dropped or failed (a failed job is a job not delivered on time). Default 0 (with `max_misses`: m / k).",
            ),
            (
                "max_misses",
                "an (m,k)-firm bound beside ζ, `\"2 in 10\"`: never more than m of any k consecutive jobs not on time.",
            ),
            (
                "min_accuracy",
                "the accuracy floor for the variant the planner or the switching monitor may choose. Default 0.",
            ),
            (
                "priority",
                "fixed priority, 1 the most urgent (normally from a plan).",
            ),
            (
                "variant",
                "the variant to run (normally from a plan). Default: the first.",
            ),
            (
                "overrun",
                "what a release does while the task's previous job is still pending. `skip` (the default while the deadline is at most the period): the new job is dropped (counted as dropped and not on time), so a backlog never builds up. `firm`: like `skip`, and a job still unfinished at its deadline is retired then (a late result is worthless), so one overrun costs one miss. `continue` (the default when the deadline is longer than the period): the new job queues behind it and late jobs still finish; an overloaded task's backlog, and with it its response times, then grow for as long as the run lasts. The simulator and the runtime apply the same rule (the scheduler core decides it).",
            ),
            (
                "source",
                "where a real run's jobs come from: `{ kind = \"...\", ... }` (see Sources below). Needed by `run`, `profile`, `fidelity` for a model whose first stage takes data.",
            ),
            (
                "floor",
                "the slowest variant online switching may go down to. Default: any that meets `min_accuracy`.",
            ),
            (
                "stop",
                "no release at or after this time (a task that stops mid-run).",
            ),
        ],
    ),
    (
        "adapt",
        "`[adapt]`: online variant switching (`--adapt`).",
        &[
            (
                "window",
                "jobs per task in the monitor's sliding window. Default 20.",
            ),
            (
                "low",
                "step down when the window's mean slack (a share of the deadline) falls below this. Default 0.05.",
            ),
            (
                "high",
                "step up only when every job of the window kept this much slack. Default 0.15.",
            ),
            (
                "hold",
                "at least this long between a switch and the next step up. Default `\"1 s\"`.",
            ),
            (
                "timeline",
                "the reports' timeline bins. Default `\"250 ms\"`.",
            ),
        ],
    ),
    (
        "run",
        "`[run]`: how the scenario runs.",
        &[(
            "duration",
            "the length of `rtmdl run` without `--duration`.",
        )],
    ),
];

/// `params` of an inference (`on = "gpu"`) stage, all optional.
pub const INFERENCE_PARAMS: Fields = &[
    (
        "file",
        "the model, instead of the variant's `file` (relative to the config).",
    ),
    (
        "input_shape",
        "the shape of the model's first input that `inputs` does not fix, fixing its dynamic dims, e.g. `[1, 3, 320, 320]`.",
    ),
    ("outputs", "an output cut: `[\"name\", ...]`."),
    (
        "inputs",
        "the model's other inputs, `{ NAME = VALUE }`: a number (every element, converted to the input's type, e.g. `sr = 16000`), `\"zeros\"`, or `{ fill = 0.0, shape = [2, 1, 128] }` (`shape` for inputs with dynamic dims). A constant fixed at load unless `feedback` feeds it.",
    ),
    (
        "feedback",
        "recurrent state, `{ OUTPUT = \"INPUT\" }`: the input gets the output of the job before (one state per task and stage); fed-back outputs are not passed on.",
    ),
    (
        "threads",
        "intra-op threads of this model's sessions, instead of the run's `--threads` (1..256).",
    ),
    (
        "fault",
        "fault injection into the inference: the `fault` function's parameters (below).",
    ),
];

/// The model inputs `inputs` does not name take the job's first tensors.
const INFERENCE_NOTE: &str = "The model inputs that `inputs` does not name take the job's first tensors, in the model's input order (each must be f32); the tensors after them travel on, after the model's outputs.";

/// The data conventions between stages.
const DATA_NOTE: &str = "Data between the stages of a job is a list of f32 tensors: a frame is `[H, W, 3]` RGB 0..255, a model input NCHW `[1, 3, h, w]`, boxes `[N, 6]` rows `(x1, y1, x2, y2, score, class)` in frame pixels, a classification `[2]` (class, confidence; class -1 below the threshold), audio mono `[N]` in -1..1. A stage reads the first tensor, puts its result first and passes every further tensor on unchanged (that is how the frame reaches a later stage).";

/// A registry description `"what; params: a, b=1"` split into its two parts.
fn split_params(desc: &str) -> (&str, &str) {
    match desc.rsplit_once("; params: ") {
        Some((what, params)) => (what, params),
        None => match desc.rsplit_once("; no params") {
            Some((what, _)) => (what, "none"),
            None => (desc, "none"),
        },
    }
}

/// The whole reference as Markdown (`docs/reference.md`).
pub fn markdown() -> String {
    let mut s = String::from(
        "# Config reference\n\n\
         Generated by `rtmdl explain --markdown` from the tables the code uses; \
         a test keeps this file equal to its output. `rtmdl explain NAME` prints one entry.\n",
    );
    for (name, what, fields) in SECTIONS {
        s += &format!("\n## `{name}`\n\n{what}\n\n| field | meaning |\n|---|---|\n");
        for (f, m) in *fields {
            s += &format!("| `{f}` | {} |\n", m.replace('|', "\\|"));
        }
    }
    s += "\n## Inference stage parameters\n\n`params` of a stage `on = \"gpu\"`, all optional.\n\n| parameter | meaning |\n|---|---|\n";
    for (f, m) in INFERENCE_PARAMS {
        s += &format!("| `{f}` | {} |\n", m.replace('|', "\\|"));
    }
    s += &format!("\n{INFERENCE_NOTE}\n");
    s += &format!(
        "\n## CPU functions\n\n`function = \"NAME\"` of a stage `on = \"cpu\"`, with `params = {{ ... }}`.\n\n{DATA_NOTE}\n\n| function | what it does | parameters (`=default`) |\n|---|---|---|\n"
    );
    for (f, d) in rtmdl_ops::functions() {
        let (what, params) = split_params(d);
        s += &format!(
            "| `{f}` | {} | {} |\n",
            what.replace('|', "\\|"),
            params.replace('|', "\\|")
        );
    }
    s += "\n## Sources\n\n`source = { kind = \"KIND\", ... }` of a task.\n\n| kind | what it gives | parameters (`=default`) |\n|---|---|---|\n";
    for (k, d) in rtmdl_ops::sources() {
        let (what, params) = split_params(d);
        s += &format!(
            "| `{k}` | {} | {} |\n",
            what.replace('|', "\\|"),
            params.replace('|', "\\|")
        );
    }
    s
}

/// The topics `rtmdl explain` takes besides a single name.
pub const TOPICS: &[&str] = &["sections", "inference", "functions", "sources"];

/// Plain text for `rtmdl explain [TOPIC]`: no topic, a list of everything;
/// a topic of [`TOPICS`], its table; a section, field, parameter, function
/// or source name (`tasks.overrun`, `overrun`, `nms`), its entry. `Err`
/// names the nearest known name.
pub fn text(topic: Option<&str>) -> Result<String, String> {
    let entry = |name: &str, what: &str| {
        let (what, params) = split_params(what);
        format!("{name}\n  {what}\n  params: {params}\n")
    };
    let functions = || {
        rtmdl_ops::functions()
            .iter()
            .map(|(n, d)| entry(n, d))
            .collect::<String>()
    };
    let sources = || {
        rtmdl_ops::sources()
            .iter()
            .map(|(n, d)| entry(n, d))
            .collect::<String>()
    };
    let inference = || {
        INFERENCE_PARAMS
            .iter()
            .map(|(n, d)| format!("{n}\n  {d}\n"))
            .collect::<String>()
            + &format!("\n{INFERENCE_NOTE}\n")
    };
    let sections = || {
        SECTIONS
            .iter()
            .map(|(n, what, fields)| {
                let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
                format!("{n}: {what}\n  fields: {}\n", names.join(", "))
            })
            .collect::<String>()
    };
    let Some(topic) = topic else {
        return Ok(format!(
            "config sections\n{}\ninference stage params (`on = \"gpu\"`): {}\n\nCPU functions: {}\n\nsources: {}\n\n`rtmdl explain TOPIC` for a table ({}), `rtmdl explain NAME` for one entry (e.g. `overrun`, `nms`, `folder`), `--markdown` for the whole reference.\n",
            sections(),
            INFERENCE_PARAMS
                .iter()
                .map(|f| f.0)
                .collect::<Vec<_>>()
                .join(", "),
            rtmdl_ops::functions()
                .iter()
                .map(|f| f.0)
                .collect::<Vec<_>>()
                .join(", "),
            rtmdl_ops::sources()
                .iter()
                .map(|f| f.0)
                .collect::<Vec<_>>()
                .join(", "),
            TOPICS.join(", ")
        ));
    };
    match topic {
        "sections" => return Ok(sections()),
        "inference" => return Ok(inference()),
        "functions" => return Ok(format!("{DATA_NOTE}\n\n{}", functions())),
        "sources" => return Ok(sources()),
        _ => {}
    }
    let mut found = Vec::new();
    let mut known: Vec<String> = TOPICS.iter().map(|t| t.to_string()).collect();
    for (section, what, fields) in SECTIONS {
        known.push(section.to_string());
        if topic == *section {
            found.push(format!(
                "{section}: {what}\n{}",
                fields
                    .iter()
                    .map(|(f, m)| format!("  {f}: {m}\n"))
                    .collect::<String>()
            ));
        }
        for (f, m) in *fields {
            let full = format!("{section}.{f}");
            if topic == *f || topic == full {
                found.push(format!("{full}\n  {m}\n"));
            }
            known.push(full);
        }
    }
    for (f, m) in INFERENCE_PARAMS {
        known.push(f.to_string());
        if topic == *f {
            found.push(format!("inference param {f}\n  {m}\n"));
        }
    }
    for (n, d) in rtmdl_ops::functions() {
        known.push(n.to_string());
        if topic == *n {
            found.push(format!("CPU function {}", entry(n, d)));
        }
    }
    for (n, d) in rtmdl_ops::sources() {
        known.push(n.to_string());
        if topic == *n {
            found.push(format!("source {}", entry(n, d)));
        }
    }
    if found.is_empty() {
        let hint = rtmdl_core::names::nearest(topic, known.iter().map(String::as_str))
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "`{topic}` is no config field, inference parameter, CPU function or source{hint}; `rtmdl explain` lists them"
        ));
    }
    Ok(found.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_page_is_the_generated_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reference.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == markdown(),
            "docs/reference.md is out of date: run `cargo run -- explain --markdown > docs/reference.md`"
        );
    }

    #[test]
    fn every_function_and_source_is_in_the_reference() {
        let md = markdown();
        for (n, _) in rtmdl_ops::functions().iter().chain(rtmdl_ops::sources()) {
            assert!(md.contains(&format!("| `{n}` |")), "{n}");
            let one = text(Some(n)).unwrap();
            assert!(one.contains(n), "{one}");
        }
        for (_, _, fields) in SECTIONS {
            for (f, _) in *fields {
                assert!(md.contains(&format!("| `{f}` |")), "{f}");
            }
        }
    }

    #[test]
    fn one_entry_by_name_and_a_typo_gets_a_suggestion() {
        let o = text(Some("overrun")).unwrap();
        assert!(o.starts_with("tasks.overrun"), "{o}");
        assert!(o.contains("skip"), "{o}");
        let n = text(Some("nms")).unwrap();
        assert!(n.contains("iou_threshold=0.45"), "{n}");
        let e = text(Some("decode_yolo8")).unwrap_err();
        assert!(e.contains("did you mean `decode_yolov8`"), "{e}");
        assert!(text(None).unwrap().contains("synthetic_frames"));
    }

    #[test]
    fn params_split_from_their_description() {
        assert_eq!(
            split_params("a thing; params: x=1, y"),
            ("a thing", "x=1, y")
        );
        assert_eq!(
            split_params("passes the data through unchanged; no params"),
            ("passes the data through unchanged", "none")
        );
    }
}
