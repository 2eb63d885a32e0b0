//! Job input sources.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::imgops::{Resampler, whole};
use crate::params::{bad, nearest, parse};
use crate::{Data, OpError, Source, Truth};

type Builder = fn(&toml::Table) -> Result<Box<dyn Source>, OpError>;
/// Checks a kind's parameters without building (no file is read).
type Check = fn(&toml::Table) -> Result<(), OpError>;

/// (kind, one-line description incl. params, check, build).
type Row = (&'static str, &'static str, Check, Builder);

const REGISTRY: &[Row] = &[
    (
        "synthetic_frames",
        "camera-like frames [height,width,3] (0..255 RGB): gradient background, moving rectangles/ellipses, noise; deterministic per (seed, seq); params: width, height, seed=0, shapes=4, noise=8.0",
        SyntheticFrames::check,
        SyntheticFrames::build,
    ),
    (
        "synthetic_audio",
        "mono audio [samples] in -1..1: noise plus 1-3 tones, deterministic per (seed, seq); params: samples=16000, seed=0, sample_rate=16000",
        SyntheticAudio::check,
        SyntheticAudio::build,
    ),
    (
        "tensor",
        "a uniform random tensor of the given shape, deterministic per (seed, seq); params: shape=[...], seed=0, low=0.0, high=1.0",
        TensorSource::check,
        TensorSource::build,
    ),
    (
        "route",
        "a drive for one camera, frames [H*scale,W*scale,3] (0..255 RGB) with their ground truth: camera = \"lights\" (a traffic light cycling green, yellow, red) or \"signs\" (16 sign classes appearing and disappearing); frame seq is the scene at seq × period; params: camera, seed=0, period (the task's period unless given), length=\"30 s\" (the cycle), scale=2",
        RouteSource::check,
        RouteSource::build,
    ),
    (
        "folder",
        "PNG/JPEG images of a folder as frames [H,W,3], cycled in file-name order by seq, loaded at start; params: path, width?, height? (resize both or neither)",
        Folder::check,
        Folder::build,
    ),
];

pub(crate) const KINDS: &[(&str, &str)] = &{
    let mut out = [("", ""); REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        out[i] = (REGISTRY[i].0, REGISTRY[i].1);
        i += 1;
    }
    out
};

/// The registry row of `params`' kind, and the parameters without `kind`.
fn kind_of(params: &toml::Table) -> Result<(&'static Row, toml::Table), OpError> {
    let known: Vec<&str> = REGISTRY.iter().map(|r| r.0).collect();
    let kind = match params.get("kind") {
        Some(toml::Value::String(k)) => k.as_str(),
        other => {
            return Err(bad(
                "source",
                "kind",
                format!(
                    "a string, one of: {}{}",
                    known.join(", "),
                    if other.is_some() { "" } else { " (missing)" }
                ),
            ));
        }
    };
    let mut rest = params.clone();
    rest.remove("kind");
    match REGISTRY.iter().find(|r| r.0 == kind) {
        Some(row) => Ok((row, rest)),
        None => Err(OpError::UnknownSource {
            kind: kind.to_string(),
            suggestion: nearest(kind, &known),
            known: known.into_iter().map(String::from).collect(),
        }),
    }
}

pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
    let (row, rest) = kind_of(params)?;
    (row.3)(&rest)
}

/// Checks the kind and its parameters as [`build`] does, without reading
/// any file.
pub(crate) fn check(params: &toml::Table) -> Result<(), OpError> {
    let (row, rest) = kind_of(params)?;
    (row.2)(&rest)
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The RNG for release `seq` of a source seeded with `seed`.
fn rng_for(seed: u64, seq: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(seed) ^ seq))
}

// ---------------------------------------------------------------- synthetic_frames

fn d_shapes() -> usize {
    4
}
fn d_noise() -> f32 {
    8.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FramesParams {
    width: usize,
    height: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "d_shapes")]
    shapes: usize,
    #[serde(default = "d_noise")]
    noise: f32,
}

struct Shape {
    ellipse: bool,
    rgb: [f32; 3],
    /// Size in pixels.
    w: f32,
    h: f32,
    /// Position of the top-left corner at seq 0, and velocity per seq.
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

/// `synthetic_frames`: the background gradient and the shapes' looks and
/// paths depend on the seed only (so consecutive frames look like video);
/// positions depend on `seq`; the noise on `(seed, seq)`.
struct SyntheticFrames {
    w: usize,
    h: usize,
    seed: u64,
    noise: f32,
    background: Vec<f32>,
    shapes: Vec<Shape>,
}

impl SyntheticFrames {
    const NAME: &'static str = "synthetic_frames";

    fn check(params: &toml::Table) -> Result<(), OpError> {
        Self::params(params).map(drop)
    }

    fn params(params: &toml::Table) -> Result<FramesParams, OpError> {
        let p: FramesParams = parse(Self::NAME, params)?;
        const MAX: usize = 1 << 14;
        if !(1..=MAX).contains(&p.width) {
            return Err(bad(Self::NAME, "width", format!("an integer in 1..={MAX}")));
        }
        if !(1..=MAX).contains(&p.height) {
            return Err(bad(
                Self::NAME,
                "height",
                format!("an integer in 1..={MAX}"),
            ));
        }
        if p.shapes > 1000 {
            return Err(bad(Self::NAME, "shapes", "an integer in 0..=1000"));
        }
        if !(p.noise.is_finite() && (0.0..=255.0).contains(&p.noise)) {
            return Err(bad(Self::NAME, "noise", "a noise amplitude in 0..=255"));
        }
        Ok(p)
    }

    fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
        let p = Self::params(params)?;
        let (w, h) = (p.width, p.height);
        let mut rng = ChaCha8Rng::seed_from_u64(mix(p.seed));
        let colour = |rng: &mut ChaCha8Rng| [0; 3].map(|_: i32| rng.random_range(0.0..255.0f32));
        let (c0, c1) = (colour(&mut rng), colour(&mut rng));
        let mut background = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let t = 0.5 * (x as f32 / w as f32 + y as f32 / h as f32);
                background.extend((0..3).map(|c| c0[c] + (c1[c] - c0[c]) * t));
            }
        }
        let (wf, hf) = (w as f32, h as f32);
        let shapes = (0..p.shapes)
            .map(|_| Shape {
                ellipse: rng.random(),
                rgb: colour(&mut rng),
                w: rng.random_range(0.1..0.4) * wf,
                h: rng.random_range(0.1..0.4) * hf,
                x: rng.random_range(0.0..wf),
                y: rng.random_range(0.0..hf),
                vx: rng.random_range(-0.01..0.01) * wf,
                vy: rng.random_range(-0.01..0.01) * hf,
            })
            .collect();
        Ok(Box::new(Self {
            w,
            h,
            seed: p.seed,
            noise: p.noise,
            background,
            shapes,
        }))
    }

    fn draw(&self, img: &mut [f32], s: &Shape, seq: u64) {
        let (wf, hf) = (self.w as f32, self.h as f32);
        // Wrap around a torus slightly larger than the frame so shapes
        // leave on one side and come back on the other.
        let t = (seq % (1 << 24)) as f32;
        let x0 = (s.x + s.vx * t).rem_euclid(wf + s.w) - s.w;
        let y0 = (s.y + s.vy * t).rem_euclid(hf + s.h) - s.h;
        let xa = x0.max(0.0) as usize;
        let xb = ((x0 + s.w).min(wf)).max(0.0) as usize;
        let ya = y0.max(0.0) as usize;
        let yb = ((y0 + s.h).min(hf)).max(0.0) as usize;
        let (cx, cy, rx, ry) = (x0 + s.w / 2.0, y0 + s.h / 2.0, s.w / 2.0, s.h / 2.0);
        for y in ya..yb {
            let row = &mut img[y * self.w * 3..(y + 1) * self.w * 3];
            let dy = (y as f32 + 0.5 - cy) / ry;
            for x in xa..xb {
                if s.ellipse {
                    let dx = (x as f32 + 0.5 - cx) / rx;
                    if dx * dx + dy * dy > 1.0 {
                        continue;
                    }
                }
                row[x * 3..x * 3 + 3].copy_from_slice(&s.rgb);
            }
        }
    }
}

impl Source for SyntheticFrames {
    fn next(&mut self, seq: u64) -> Result<Data, OpError> {
        let mut img = self.background.clone();
        for s in &self.shapes {
            self.draw(&mut img, s, seq);
        }
        if self.noise > 0.0 {
            // A fast xorshift for the per-pixel noise, seeded per (seed, seq).
            let mut state = mix(mix(self.seed) ^ seq ^ 0x006e_6f69_7365) | 1;
            let scale = 2.0 * self.noise / 65535.0;
            for chunk in img.chunks_mut(4) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                for (i, v) in chunk.iter_mut().enumerate() {
                    let r = ((state >> (16 * i)) & 0xffff) as f32;
                    *v = (*v + r * scale - self.noise).clamp(0.0, 255.0);
                }
            }
        }
        Ok(vec![
            ArrayD::from_shape_vec(IxDyn(&[self.h, self.w, 3]), img).expect("shape matches length"),
        ])
    }
}

// ---------------------------------------------------------------- synthetic_audio

fn d_samples() -> usize {
    16000
}
fn d_rate() -> u32 {
    16000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioParams {
    #[serde(default = "d_samples")]
    samples: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "d_rate")]
    sample_rate: u32,
}

/// `synthetic_audio`: per `(seed, seq)`, 1–3 tones (100 Hz up to 0.4 ×
/// sample rate, amplitude 0.1–0.3) plus uniform noise (amplitude
/// 0.005–0.05), clamped to `-1..=1`.
struct SyntheticAudio {
    samples: usize,
    seed: u64,
    rate: f32,
}

impl SyntheticAudio {
    const NAME: &'static str = "synthetic_audio";

    fn check(params: &toml::Table) -> Result<(), OpError> {
        Self::params(params).map(drop)
    }

    fn params(params: &toml::Table) -> Result<AudioParams, OpError> {
        let p: AudioParams = parse(Self::NAME, params)?;
        if !(1..=1 << 26).contains(&p.samples) {
            return Err(bad(Self::NAME, "samples", "an integer in 1..=2^26"));
        }
        if p.sample_rate < 1000 {
            return Err(bad(Self::NAME, "sample_rate", "a rate of at least 1000 Hz"));
        }
        Ok(p)
    }

    fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
        let p = Self::params(params)?;
        Ok(Box::new(Self {
            samples: p.samples,
            seed: p.seed,
            rate: p.sample_rate as f32,
        }))
    }
}

impl Source for SyntheticAudio {
    fn next(&mut self, seq: u64) -> Result<Data, OpError> {
        let mut rng = rng_for(self.seed, seq);
        let tones: Vec<(f32, f32, f32)> = (0..rng.random_range(1..=3))
            .map(|_| {
                (
                    std::f32::consts::TAU * rng.random_range(100.0..0.4 * self.rate) / self.rate,
                    rng.random_range(0.1..0.3f32),
                    rng.random_range(0.0..std::f32::consts::TAU),
                )
            })
            .collect();
        let noise = rng.random_range(0.005..0.05f32);
        let v: Vec<f32> = (0..self.samples)
            .map(|i| {
                let i = i as f32;
                let s: f32 = tones.iter().map(|(w, a, ph)| a * (w * i + ph).sin()).sum();
                (s + noise * rng.random_range(-1.0..1.0f32)).clamp(-1.0, 1.0)
            })
            .collect();
        Ok(vec![
            ArrayD::from_shape_vec(IxDyn(&[self.samples]), v).expect("shape matches length"),
        ])
    }
}

// ---------------------------------------------------------------- tensor

fn d_high() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorParams {
    shape: Vec<usize>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    low: f32,
    #[serde(default = "d_high")]
    high: f32,
}

/// `tensor`: uniform values in `low..high`, deterministic per `(seed, seq)`.
struct TensorSource {
    shape: Vec<usize>,
    seed: u64,
    low: f32,
    high: f32,
}

impl TensorSource {
    const NAME: &'static str = "tensor";

    fn check(params: &toml::Table) -> Result<(), OpError> {
        Self::params(params).map(drop)
    }

    fn params(params: &toml::Table) -> Result<TensorParams, OpError> {
        let p: TensorParams = parse(Self::NAME, params)?;
        let len = p.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        if p.shape.is_empty() || p.shape.contains(&0) || len.is_none_or(|l| l > 1 << 28) {
            return Err(bad(
                Self::NAME,
                "shape",
                format!(
                    "a non-empty list of positive dimensions, at most 2^28 elements, got {:?}",
                    p.shape
                ),
            ));
        }
        if !(p.low.is_finite() && p.high.is_finite() && p.low < p.high) {
            return Err(bad(
                Self::NAME,
                "high",
                format!("a finite number above low = {}", p.low),
            ));
        }
        Ok(p)
    }

    fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
        let p = Self::params(params)?;
        Ok(Box::new(Self {
            shape: p.shape,
            seed: p.seed,
            low: p.low,
            high: p.high,
        }))
    }
}

impl Source for TensorSource {
    fn next(&mut self, seq: u64) -> Result<Data, OpError> {
        let mut rng = rng_for(self.seed, seq);
        let n = self.shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| rng.random_range(self.low..self.high))
            .collect();
        Ok(vec![
            ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("shape matches length"),
        ])
    }
}

// ---------------------------------------------------------------- route

fn d_length() -> String {
    "30 s".into()
}
fn d_scale() -> usize {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteParams {
    camera: String,
    #[serde(default)]
    seed: u64,
    period: Option<String>,
    #[serde(default = "d_length")]
    length: String,
    #[serde(default = "d_scale")]
    scale: usize,
}

/// A checked `route`: durations in ns.
struct RouteSpec {
    camera: rtmdl_scenes::Camera,
    seed: u64,
    period: u64,
    length: u64,
    scale: usize,
}

/// `route`: the frames of a [`rtmdl_scenes::Route`], each crop scaled up
/// `scale` times (nearest neighbour, as a camera's region of interest
/// would be larger than the model's input), drawn when the source is
/// built; frame `seq` shows the scene at `seq × period` and carries its
/// ground truth ([`Source::truth`]).
struct RouteSource {
    route: rtmdl_scenes::Route,
    period: u64,
    /// Per episode, per variation: the frame.
    frames: Vec<Vec<ArrayD<f32>>>,
}

impl RouteSource {
    const NAME: &'static str = "route";

    fn check(params: &toml::Table) -> Result<(), OpError> {
        Self::params(params).map(drop)
    }

    fn params(params: &toml::Table) -> Result<RouteSpec, OpError> {
        let p: RouteParams = parse(Self::NAME, params)?;
        let camera = rtmdl_scenes::Camera::parse(&p.camera).ok_or_else(|| {
            bad(
                Self::NAME,
                "camera",
                format!("\"lights\" or \"signs\", got {:?}", p.camera),
            )
        })?;
        let duration = |key: &str, v: &str| {
            rtmdl_core::units::parse_duration(v).map_err(|e| bad(Self::NAME, key, e))
        };
        let period = match &p.period {
            Some(v) => duration("period", v)?,
            None => {
                return Err(bad(
                    Self::NAME,
                    "period",
                    "the time between two frames, like \"33 ms\" (a task's source gets its period)",
                ));
            }
        };
        if period == 0 {
            return Err(bad(Self::NAME, "period", "a positive duration"));
        }
        let length = duration("length", &p.length)?;
        if !(1_000_000_000..=3_600_000_000_000).contains(&length) {
            return Err(bad(Self::NAME, "length", "a cycle between 1 s and 1 h"));
        }
        if !(1..=8).contains(&p.scale) {
            return Err(bad(Self::NAME, "scale", "an integer in 1..=8"));
        }
        Ok(RouteSpec {
            camera,
            seed: p.seed,
            period,
            length,
            scale: p.scale,
        })
    }

    fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
        let RouteSpec {
            camera,
            seed,
            period,
            length,
            scale,
        } = Self::params(params)?;
        let route = rtmdl_scenes::Route::new(camera, seed, length);
        let (h, w) = route.crop_size();
        let frames = (0..route.episodes().len())
            .map(|e| {
                (0..rtmdl_scenes::route::VARIATIONS)
                    .map(|k| upscale(route.crop(e, k), h, w, scale))
                    .collect()
            })
            .collect();
        Ok(Box::new(RouteSource {
            route,
            period,
            frames,
        }))
    }
}

/// An `[h, w, 3]` byte crop as an `[h·s, w·s, 3]` frame, nearest neighbour.
fn upscale(crop: &[u8], h: usize, w: usize, s: usize) -> ArrayD<f32> {
    let (oh, ow) = (h * s, w * s);
    let mut v = Vec::with_capacity(oh * ow * 3);
    for y in 0..oh {
        let row = &crop[(y / s) * w * 3..(y / s + 1) * w * 3];
        for x in 0..ow {
            v.extend(row[(x / s) * 3..(x / s) * 3 + 3].iter().map(|&b| b as f32));
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[oh, ow, 3]), v).expect("shape matches length")
}

impl Source for RouteSource {
    fn next(&mut self, seq: u64) -> Result<Data, OpError> {
        let at = self.route.place(seq.saturating_mul(self.period));
        let k = (seq as usize) % rtmdl_scenes::route::VARIATIONS;
        Ok(vec![self.frames[at.episode][k].clone()])
    }

    fn truth(&self, seq: u64) -> Option<Truth> {
        let at = self.route.place(seq.saturating_mul(self.period));
        let class = self.route.episodes()[at.episode].class?;
        Some(Truth {
            class,
            episode: at.lap * self.route.episodes().len() as u64 + at.episode as u64,
            label: self.route.label(class),
        })
    }

    fn judged(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------- folder

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderParams {
    path: PathBuf,
    width: Option<usize>,
    height: Option<usize>,
}

/// `folder`: every `.png`, `.jpg` and `.jpeg` file (case-insensitive) of the
/// folder (not recursive), sorted by file name, decoded to RGB frames at
/// construction; `next(seq)` returns image `seq % count`. With `width` and
/// `height`, every image is resized (bilinear) to that size at load. A
/// relative path is relative to the process's working directory.
struct Folder {
    frames: Vec<ArrayD<f32>>,
}

impl Folder {
    const NAME: &'static str = "folder";

    fn check(params: &toml::Table) -> Result<(), OpError> {
        Self::params(params).map(drop)
    }

    /// The folder and the size to resize to, if any.
    fn params(params: &toml::Table) -> Result<(PathBuf, Option<(usize, usize)>), OpError> {
        let p: FolderParams = parse(Self::NAME, params)?;
        let size = match (p.width, p.height) {
            (None, None) => None,
            (Some(w), Some(h)) if w > 0 && h > 0 => Some((h, w)),
            (_, None) => {
                return Err(bad(
                    Self::NAME,
                    "height",
                    "a positive integer (set with width)",
                ));
            }
            (None, _) => {
                return Err(bad(
                    Self::NAME,
                    "width",
                    "a positive integer (set with height)",
                ));
            }
            _ => return Err(bad(Self::NAME, "width", "positive width and height")),
        };
        Ok((p.path, size))
    }

    fn build(params: &toml::Table) -> Result<Box<dyn Source>, OpError> {
        let (path, size) = Self::params(params)?;
        let frames = load_folder(&path, size)?;
        Ok(Box::new(Self { frames }))
    }
}

/// Loads the images of `dir` as frames, optionally resized to `(h, w)`.
/// A PNG or JPEG file's pixels as 8-bit RGB, row-major, with its width and
/// height: the `png` and `zune-jpeg` decoders (what the `image` crate
/// uses, without its colour-management stack: a camera frame is taken as
/// it is stored). Grey, grey + alpha, palette and RGBA are made RGB (alpha
/// dropped), 16-bit PNG samples are cut to 8.
fn decode_rgb8(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    if bytes.starts_with(b"\x89PNG") {
        let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
        d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut r = d.read_info().map_err(|e| e.to_string())?;
        let mut buf = vec![0; r.output_buffer_size().ok_or("the image is too large")?];
        let info = r.next_frame(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(info.buffer_size());
        let (w, h) = (info.width as usize, info.height as usize);
        let channels = match info.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => {
                return Err("a palette PNG the decoder did not expand".into());
            }
        };
        let rgb = match channels {
            3 => buf,
            c => buf
                .chunks_exact(c)
                .flat_map(|p| if c < 3 { [p[0]; 3] } else { [p[0], p[1], p[2]] })
                .collect(),
        };
        Ok((rgb, w, h))
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        use zune_core::colorspace::ColorSpace;
        use zune_core::options::DecoderOptions;
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(
            zune_core::bytestream::ZCursor::new(bytes),
            options,
        );
        let rgb = d.decode().map_err(|e| format!("{e:?}"))?;
        let (w, h) = d.dimensions().ok_or("no dimensions after decoding")?;
        Ok((rgb, w, h))
    } else {
        Err("neither a PNG nor a JPEG file (by its first bytes)".into())
    }
}

pub(crate) fn load_folder(
    dir: &Path,
    size: Option<(usize, usize)>,
) -> Result<Vec<ArrayD<f32>>, OpError> {
    let io = |source| OpError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(bad(
            Folder::NAME,
            "path",
            format!(
                "a folder holding .png/.jpg/.jpeg images, but `{}` has none",
                dir.display()
            ),
        ));
    }
    files.sort();
    let mut resampler = Resampler::default();
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|source| OpError::Io {
                path: path.clone(),
                source,
            })?;
            let (rgb, w, h) = decode_rgb8(&bytes).map_err(|reason| OpError::Decode {
                path: path.clone(),
                reason,
            })?;
            let src: Vec<f32> = rgb.into_iter().map(f32::from).collect();
            let (data, (oh, ow)) = match size {
                Some((oh, ow)) if (oh, ow) != (h, w) => {
                    let mut out = Vec::with_capacity(oh * ow * 3);
                    resampler.resample(&src, (h, w), whole(h, w), (oh, ow), |_, _, px| {
                        out.extend(px)
                    });
                    (out, (oh, ow))
                }
                _ => (src, (h, w)),
            };
            Ok(ArrayD::from_shape_vec(IxDyn(&[oh, ow, 3]), data).expect("shape matches length"))
        })
        .collect()
}

impl Source for Folder {
    fn next(&mut self, seq: u64) -> Result<Data, OpError> {
        let i = (seq % self.frames.len() as u64) as usize;
        Ok(vec![self.frames[i].clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source;

    fn src(s: &str) -> Box<dyn Source> {
        source(&s.parse().unwrap()).unwrap()
    }

    fn src_err(s: &str) -> OpError {
        source(&s.parse().unwrap()).err().unwrap()
    }

    #[test]
    fn kind_is_required_and_checked() {
        assert!(
            matches!(src_err("width = 3"), OpError::BadParam { ref param, .. } if param == "kind")
        );
        match src_err("kind = \"synthetic_frame\"") {
            OpError::UnknownSource {
                suggestion, known, ..
            } => {
                assert_eq!(suggestion.as_deref(), Some("synthetic_frames"));
                assert_eq!(known.len(), 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(crate::sources().len(), 5);
    }

    #[test]
    fn synthetic_frames_are_deterministic_and_camera_like() {
        let mut a = src("kind = \"synthetic_frames\"\nwidth = 64\nheight = 48\nseed = 7");
        let mut b = src("kind = \"synthetic_frames\"\nwidth = 64\nheight = 48\nseed = 7");
        let f0 = a.next(0).unwrap();
        assert_eq!(f0.len(), 1);
        assert_eq!(f0[0].shape(), &[48, 64, 3]);
        assert_eq!(f0, b.next(0).unwrap());
        assert_eq!(a.next(5).unwrap(), b.next(5).unwrap());
        // Out of order calls give the same frames.
        assert_eq!(a.next(0).unwrap(), f0);
        assert_ne!(a.next(1).unwrap(), f0);
        let mut c = src("kind = \"synthetic_frames\"\nwidth = 64\nheight = 48\nseed = 8");
        assert_ne!(c.next(0).unwrap(), f0);
        let v = &f0[0];
        assert!(v.iter().all(|x| (0.0..=255.0).contains(x)));
        // Not flat: a real spread of values.
        let (lo, hi) = v
            .iter()
            .fold((255f32, 0f32), |(l, h), x| (l.min(*x), h.max(*x)));
        assert!(hi - lo > 50.0, "{lo}..{hi}");
        // Noise-free frames are piecewise smooth: neighbours mostly close.
        let mut q = src("kind = \"synthetic_frames\"\nwidth = 64\nheight = 48\nnoise = 0");
        let f = q.next(3).unwrap().remove(0);
        let close = (0..47)
            .filter(|y| (f[[*y, 10, 0]] - f[[*y + 1, 10, 0]]).abs() < 5.0)
            .count();
        assert!(close > 40, "{close}");
    }

    #[test]
    fn synthetic_audio_is_deterministic_and_in_range() {
        let mut a = src("kind = \"synthetic_audio\"\nsamples = 1000\nseed = 1");
        let x = a.next(4).unwrap();
        assert_eq!(x[0].shape(), &[1000]);
        assert_eq!(x, a.next(4).unwrap());
        assert_ne!(x, a.next(5).unwrap());
        assert!(x[0].iter().all(|v| (-1.0..=1.0).contains(v)));
        let rms = (x[0].iter().map(|v| v * v).sum::<f32>() / 1000.0).sqrt();
        assert!(rms > 0.05, "{rms}");
        let d = src("kind = \"synthetic_audio\"").next(0).unwrap();
        assert_eq!(d[0].shape(), &[16000]);
    }

    #[test]
    fn tensor_source_has_shape_and_range() {
        let mut t = src("kind = \"tensor\"\nshape = [1, 3, 4, 5]\nseed = 2\nlow = -2\nhigh = 2");
        let x = t.next(0).unwrap();
        assert_eq!(x[0].shape(), &[1, 3, 4, 5]);
        assert!(x[0].iter().all(|v| (-2.0..2.0).contains(v)));
        assert_eq!(x, t.next(0).unwrap());
        assert_ne!(x, t.next(1).unwrap());
        for p in [
            "shape = []",
            "shape = [2, 0]",
            "shape = [2]\nlow = 1\nhigh = 1",
            "shape = [1]\nsize = 3",
        ] {
            assert!(
                matches!(
                    src_err(&format!("kind = \"tensor\"\n{p}")),
                    OpError::BadParam { .. }
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn a_route_gives_frames_with_their_ground_truth() {
        let spec = "kind = \"route\"\ncamera = \"lights\"\nseed = 4\nperiod = \"50 ms\"\nlength = \"10 s\"";
        let mut a = src(spec);
        let mut b = src(spec);
        assert!(a.judged());
        let f = a.next(3).unwrap();
        assert_eq!(f[0].shape(), &[96, 96, 3]);
        assert!(
            f[0].iter()
                .all(|v| (0.0..=255.0).contains(v) && v.fract() == 0.0)
        );
        assert_eq!(f, b.next(3).unwrap());
        // The truth follows the route: frame seq is the scene at seq × 50 ms;
        // the light is always in view, and the episode changes with the class.
        let route = rtmdl_scenes::Route::new(rtmdl_scenes::Camera::Lights, 4, 10_000_000_000);
        let mut episodes = std::collections::BTreeSet::new();
        for seq in 0..400u64 {
            let t = a.truth(seq).expect("a light is always in view");
            let at = route.place(seq * 50_000_000);
            assert_eq!(Some(t.class), route.episodes()[at.episode].class);
            assert_eq!(t.label, route.label(t.class));
            episodes.insert(t.episode);
        }
        // 20 s over a 10 s cycle: the second lap numbers its episodes on.
        assert_eq!(episodes.len(), 2 * route.episodes().len());
        // Signs leave gaps with nothing to answer.
        let s = src("kind = \"route\"\ncamera = \"signs\"\nperiod = \"10 ms\"\nscale = 1");
        assert!((0..3000).any(|q| s.truth(q).is_none()));
        assert!((0..3000).any(|q| s.truth(q).is_some()));
        for p in [
            "camera = \"radar\"\nperiod = \"1 ms\"",
            "camera = \"signs\"",
            "camera = \"signs\"\nperiod = \"1 parsec\"",
            "camera = \"signs\"\nperiod = \"1 ms\"\nscale = 0",
            "camera = \"signs\"\nperiod = \"1 ms\"\nlength = \"1 ms\"",
        ] {
            assert!(
                matches!(
                    src_err(&format!("kind = \"route\"\n{p}")),
                    OpError::BadParam { .. }
                ),
                "{p}"
            );
        }
    }

    fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    /// Grey, grey + alpha, RGBA and 16-bit PNGs and a grey JPEG all come
    /// out as 8-bit RGB; a file that is neither is one error.
    #[test]
    fn png_and_jpeg_kinds_decode_to_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        image::GrayImage::from_pixel(2, 2, image::Luma([90]))
            .save(p("g.png"))
            .unwrap();
        image::GrayAlphaImage::from_pixel(2, 2, image::LumaA([40, 7]))
            .save(p("ga.png"))
            .unwrap();
        image::RgbaImage::from_pixel(2, 2, image::Rgba([1, 2, 3, 4]))
            .save(p("rgba.png"))
            .unwrap();
        image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_pixel(
            2,
            2,
            image::Rgb([65535, 0, 32896]),
        )
        .save(p("rgb16.png"))
        .unwrap();
        image::GrayImage::from_pixel(8, 8, image::Luma([128]))
            .save(p("g.jpg"))
            .unwrap();
        for (file, want) in [
            ("g.png", [90, 90, 90]),
            ("ga.png", [40, 40, 40]),
            ("rgba.png", [1, 2, 3]),
            ("rgb16.png", [255, 0, 128]),
        ] {
            let (rgb, w, h) = decode_rgb8(&std::fs::read(p(file)).unwrap()).unwrap();
            assert_eq!((w, h, rgb.len()), (2, 2, 12), "{file}");
            assert_eq!(&rgb[..3], &want, "{file}");
        }
        let (rgb, w, h) = decode_rgb8(&std::fs::read(p("g.jpg")).unwrap()).unwrap();
        assert_eq!((w, h, rgb.len()), (8, 8, 192));
        assert!(
            rgb.iter().all(|&v| (v as i32 - 128).abs() < 6),
            "{:?}",
            &rgb[..6]
        );
        let err = decode_rgb8(b"GIF89a....").unwrap_err();
        assert!(err.contains("neither a PNG nor a JPEG"), "{err}");
        assert!(decode_rgb8(b"\x89PNG\r\n\x1a\nbroken").is_err());
    }

    #[test]
    fn folder_cycles_sorted_images() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("b.png"), 4, 2, [0, 255, 0]);
        write_png(&dir.path().join("a.PNG"), 3, 5, [255, 0, 0]);
        image::RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 200]))
            .save(dir.path().join("c.jpg"))
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
        let mut s = src(&format!("kind = \"folder\"\npath = {:?}", dir.path()));
        let a = s.next(0).unwrap();
        assert_eq!(a[0].shape(), &[5, 3, 3]);
        assert_eq!(&a[0].as_slice().unwrap()[..3], &[255.0, 0.0, 0.0]);
        assert_eq!(s.next(1).unwrap()[0].shape(), &[2, 4, 3]);
        let c = s.next(2).unwrap();
        assert_eq!(c[0].shape(), &[8, 8, 3]);
        // JPEG is lossy: close to the colour.
        assert!(
            c[0].iter()
                .skip(2)
                .step_by(3)
                .all(|v| (v - 200.0).abs() < 8.0)
        );
        assert_eq!(s.next(3).unwrap(), a);

        let mut r = src(&format!(
            "kind = \"folder\"\npath = {:?}\nwidth = 6\nheight = 6",
            dir.path()
        ));
        for seq in 0..3 {
            assert_eq!(r.next(seq).unwrap()[0].shape(), &[6, 6, 3]);
        }
        assert_eq!(
            &r.next(1).unwrap()[0].as_slice().unwrap()[..3],
            &[0.0, 255.0, 0.0]
        );
    }

    #[test]
    fn folder_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = src_err(&format!("kind = \"folder\"\npath = {missing:?}"));
        assert!(
            matches!(err, OpError::Io { ref path, .. } if *path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("nope"), "{err}");
        let err = src_err(&format!("kind = \"folder\"\npath = {:?}", dir.path()));
        assert!(matches!(err, OpError::BadParam { ref param, .. } if param == "path"));
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        std::fs::write(dir.path().join("bad.png"), "garbage").unwrap();
        let err = src_err(&format!("kind = \"folder\"\npath = {:?}", dir.path()));
        assert!(matches!(err, OpError::Decode { .. }), "{err:?}");
        let err = src_err(&format!(
            "kind = \"folder\"\npath = {:?}\nwidth = 3",
            dir.path()
        ));
        assert!(matches!(err, OpError::BadParam { ref param, .. } if param == "height"));
    }
}
