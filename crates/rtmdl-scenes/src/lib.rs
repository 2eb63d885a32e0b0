//! Seeded synthetic datasets for rtmdl's vision tasks: no downloads, deterministic,
//! fast (10 000 crops take a few seconds in a release build on two cores).
//!
//! * [`Kind::Lights`]: 48×48 camera crops around a traffic light whose state is
//!   red / yellow / green / off ([`LIGHT_CLASSES`]), with the housing's box. Vertical and
//!   horizontal housings of varied size and position, sky / clutter backgrounds, coloured
//!   distractor lights (tail lights, other lamps), sunlit dead lenses, night halos,
//!   partial occlusion.
//! * [`Kind::Signs`]: 32×32 crops of one of 16 sign classes ([`SIGN_CLASSES`]: shapes
//!   circle / triangle / octagon / diamond / square, colours red / blue / yellow / white,
//!   glyphs bars, digits, arrows, crosses, …) with rotation, shear, keystone, scale,
//!   fading, occlusion and background clutter. Confusable groups on purpose: the three
//!   speed limits, stop vs no-entry, the four blue arrows, warning vs crossroads.
//! * [`Kind::SignScenes`]: 96×96 street frames holding one sign (same classes) with its
//!   box, for a crop-then-classify pipeline.
//!
//! All kinds share the camera model: brightness / contrast / colour cast, haze, motion
//! and Gaussian blur, sensor noise, then 8-bit quantisation (so [`Dataset::save`] /
//! [`Dataset::load`] round-trip exactly).
//!
//! # Conventions
//!
//! * [`Dataset::images`] is `[N, 3, H, W]`, RGB, values `k / 255` for `k` in `0..=255`.
//!   [`Dataset::frame`] gives one image as rtmdl's `[H, W, 3]` frame in `0..=255`.
//! * Boxes are normalised `[x, y, w, h]`: the top-left corner and the size, as fractions
//!   of the image width / height, clipped to the image.
//! * Labels are balanced: each class appears `n / classes` or one more times, in a seeded
//!   shuffled order.
//! * Determinism: the same `(kind, split, n, seed)` gives the same bytes on every run and
//!   thread count (every sample has its own RNG stream). Splits use disjoint streams, so
//!   `train`, `val` and `test` of one seed never share a sample.

#![warn(missing_docs)]

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{Array3, Array4, ArrayView3, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

mod canvas;
mod clutter;
mod lights;
pub mod route;
mod signs;

pub use lights::LIGHT_CLASSES;
pub use route::{Camera, Episode, Route};
pub use signs::SIGN_CLASSES;

/// Side of a [`Kind::Lights`] crop.
pub const LIGHT_SIZE: usize = 48;
/// Side of a [`Kind::Signs`] crop.
pub const SIGN_SIZE: usize = 32;
/// Side of a [`Kind::SignScenes`] frame.
pub const SCENE_SIZE: usize = 96;
/// Bumped whenever the generators change what they draw; part of the cache key and the
/// file header, so stale caches are never reused.
pub const GENERATOR_VERSION: u32 = 1;

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Traffic-light crops: state (4 classes) + housing box.
    Lights,
    /// Traffic-sign crops: 16 classes, no boxes.
    Signs,
    /// Street frames with one sign: class + sign box.
    SignScenes,
}

impl Kind {
    /// `(height, width)` of the images.
    pub fn image_size(self) -> (usize, usize) {
        let s = match self {
            Kind::Lights => LIGHT_SIZE,
            Kind::Signs => SIGN_SIZE,
            Kind::SignScenes => SCENE_SIZE,
        };
        (s, s)
    }

    /// The class names, in label order.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Kind::Lights => &LIGHT_CLASSES,
            Kind::Signs | Kind::SignScenes => &SIGN_CLASSES,
        }
    }

    /// Whether samples carry a box.
    pub fn has_boxes(self) -> bool {
        !matches!(self, Kind::Signs)
    }

    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lights => "lights",
            Kind::Signs => "signs",
            Kind::SignScenes => "sign_scenes",
        }
    }

    fn tag(self) -> u64 {
        match self {
            Kind::Lights => 1,
            Kind::Signs => 2,
            Kind::SignScenes => 3,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ScenesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lights" => Ok(Kind::Lights),
            "signs" => Ok(Kind::Signs),
            "sign_scenes" | "sign-scenes" => Ok(Kind::SignScenes),
            _ => Err(ScenesError::Parse(format!(
                "unknown dataset kind {s:?} (lights, signs, sign_scenes)"
            ))),
        }
    }
}

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data (model selection).
    Val,
    /// Held-out test data (reported numbers).
    Test,
}

impl Split {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x7261,
            Split::Val => 0x7661,
            Split::Test => 0x7465,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ScenesError {
    /// Reading or writing a cache file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A cache file is not a dataset of this format / version, or is truncated.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name did not parse.
    #[error("{0}")]
    Parse(String),
}

/// A generated dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// What it holds.
    pub kind: Kind,
    /// `[N, 3, H, W]` RGB in `0..=1` (multiples of 1/255).
    pub images: Array4<f32>,
    /// Class index per sample (into [`Dataset::classes`]).
    pub labels: Vec<u32>,
    /// Normalised `[x, y, w, h]` (top-left corner and size) per sample, for kinds that
    /// have boxes.
    pub boxes: Option<Vec<[f32; 4]>>,
    /// Class names.
    pub classes: Vec<String>,
}

/// The file header of a saved dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    format: String,
    generator_version: u32,
    kind: Kind,
    n: usize,
    height: usize,
    width: usize,
    classes: Vec<String>,
    has_boxes: bool,
}

const FORMAT: &str = "rtmdl-scenes-v1";
const HEADER_FILE: &str = "header.json";
const DATA_FILE: &str = "data.bin";

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates `n` samples of `kind` for `split` from `seed`. Deterministic; uses all
/// available cores.
pub fn generate(kind: Kind, split: Split, n: usize, seed: u64) -> Dataset {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    generate_with_threads(kind, split, n, seed, threads)
}

/// [`generate`] with an explicit number of worker threads (the result does not depend
/// on it).
pub fn generate_with_threads(
    kind: Kind,
    split: Split,
    n: usize,
    seed: u64,
    threads: usize,
) -> Dataset {
    let base = splitmix(splitmix(seed ^ (kind.tag() << 56)) ^ split.tag());
    let classes = kind.classes();
    let k = classes.len();
    let mut labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
    labels.shuffle(&mut ChaCha8Rng::seed_from_u64(base));

    let (h, w) = kind.image_size();
    let per = 3 * h * w;
    let mut bytes = vec![0u8; n * per];
    let mut boxes = vec![[0.0f32; 4]; n];
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for ((ci, img_chunk), box_chunk) in bytes
            .chunks_mut(chunk * per)
            .enumerate()
            .zip(boxes.chunks_mut(chunk))
        {
            let labels = &labels;
            scope.spawn(move || {
                for (j, (out, bx)) in img_chunk.chunks_mut(per).zip(box_chunk).enumerate() {
                    let i = ci * chunk + j;
                    let mut rng = ChaCha8Rng::seed_from_u64(splitmix(base ^ splitmix(i as u64)));
                    *bx = render_one(kind, &mut rng, labels[i], out);
                }
            });
        }
    });
    let images = Array4::from_shape_vec(
        (n, 3, h, w),
        bytes.iter().map(|&b| b as f32 / 255.0).collect(),
    )
    .expect("shape matches the buffer");
    Dataset {
        kind,
        images,
        labels,
        boxes: kind.has_boxes().then_some(boxes),
        classes: classes.iter().map(|s| s.to_string()).collect(),
    }
}

/// Draws one sample of `class` into `out` (CHW bytes); returns its normalised box.
fn render_one(kind: Kind, rng: &mut ChaCha8Rng, class: u32, out: &mut [u8]) -> [f32; 4] {
    let (h, w) = kind.image_size();
    let (canvas, pix) = match kind {
        Kind::Lights => lights::render(rng, w, class),
        Kind::Signs => (
            signs::render_crop(rng, w, class),
            [0.0, 0.0, w as f32, h as f32],
        ),
        Kind::SignScenes => signs::render_scene(rng, w, class),
    };
    canvas.write_chw_u8(out);
    let (fw, fh) = (w as f32, h as f32);
    let x0 = pix[0].clamp(0.0, fw) / fw;
    let y0 = pix[1].clamp(0.0, fh) / fh;
    let x1 = pix[2].clamp(0.0, fw) / fw;
    let y1 = pix[3].clamp(0.0, fh) / fh;
    [x0, y0, x1 - x0, y1 - y0]
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(height, width)` of the images.
    pub fn image_size(&self) -> (usize, usize) {
        let s = self.images.shape();
        (s[2], s[3])
    }

    /// Image `i` as `[3, H, W]` in `0..=1`.
    pub fn image(&self, i: usize) -> ArrayView3<'_, f32> {
        self.images.index_axis(Axis(0), i)
    }

    /// Image `i` as an rtmdl frame: `[H, W, 3]`, RGB, `0..=255`.
    pub fn frame(&self, i: usize) -> Array3<f32> {
        self.image(i)
            .permuted_axes([1, 2, 0])
            .mapv(|v| v * 255.0)
            .as_standard_layout()
            .to_owned()
    }

    /// Samples per class (index = label).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Writes `dir/header.json` and `dir/data.bin` (images as bytes, CHW per sample,
    /// then labels as u32 LE, then boxes as 4 × f32 LE per sample when present).
    /// Creates `dir`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), ScenesError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ScenesError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (h, w) = self.image_size();
        let header = Header {
            format: FORMAT.into(),
            generator_version: GENERATOR_VERSION,
            kind: self.kind,
            n: self.len(),
            height: h,
            width: w,
            classes: self.classes.clone(),
            has_boxes: self.boxes.is_some(),
        };
        let mut buf: Vec<u8> = self.images.iter().map(|&v| canvas::quantise(v)).collect();
        buf.reserve(self.len() * 20);
        for l in &self.labels {
            buf.extend_from_slice(&l.to_le_bytes());
        }
        if let Some(b) = &self.boxes {
            for v in b.iter().flatten() {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        // Data first, header last: a dataset with a header is complete.
        let data = dir.join(DATA_FILE);
        std::fs::File::create(&data)
            .and_then(|mut f| f.write_all(&buf))
            .map_err(io(&data))?;
        let hp = dir.join(HEADER_FILE);
        let json = serde_json::to_vec_pretty(&header).expect("header serialises");
        std::fs::write(&hp, json).map_err(io(&hp))?;
        Ok(())
    }

    /// Reads a dataset written by [`Dataset::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Dataset, ScenesError> {
        let dir = dir.as_ref();
        let hp = dir.join(HEADER_FILE);
        let bad = |path: &Path, reason: String| ScenesError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read(&hp).map_err(|source| ScenesError::Io {
            path: hp.clone(),
            source,
        })?;
        let header: Header = serde_json::from_slice(&text)
            .map_err(|e| bad(&hp, format!("not a dataset header: {e}")))?;
        if header.format != FORMAT || header.generator_version != GENERATOR_VERSION {
            return Err(bad(
                &hp,
                format!(
                    "format {} generator {} (this build reads {FORMAT} generator {GENERATOR_VERSION})",
                    header.format, header.generator_version
                ),
            ));
        }
        let dp = dir.join(DATA_FILE);
        let mut buf = Vec::new();
        std::fs::File::open(&dp)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|source| ScenesError::Io {
                path: dp.clone(),
                source,
            })?;
        let n = header.n;
        let img_len = n * 3 * header.height * header.width;
        let want = img_len + 4 * n + if header.has_boxes { 16 * n } else { 0 };
        if buf.len() != want {
            return Err(bad(&dp, format!("{} bytes, expected {want}", buf.len())));
        }
        let images = Array4::from_shape_vec(
            (n, 3, header.height, header.width),
            buf[..img_len].iter().map(|&b| b as f32 / 255.0).collect(),
        )
        .expect("length checked");
        let f32_at = |o: usize| f32::from_le_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
        let labels: Vec<u32> = (0..n)
            .map(|i| {
                let o = img_len + 4 * i;
                u32::from_le_bytes(buf[o..o + 4].try_into().expect("4 bytes"))
            })
            .collect();
        if let Some(l) = labels.iter().find(|&&l| l as usize >= header.classes.len()) {
            return Err(bad(&dp, format!("label {l} out of range")));
        }
        let boxes = header.has_boxes.then(|| {
            let o = img_len + 4 * n;
            (0..n)
                .map(|i| std::array::from_fn(|k| f32_at(o + 16 * i + 4 * k)))
                .collect()
        });
        Ok(Dataset {
            kind: header.kind,
            images,
            labels,
            boxes,
            classes: header.classes,
        })
    }

    /// The samples at `indices`, in that order, as a new dataset.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            kind: self.kind,
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            boxes: self
                .boxes
                .as_ref()
                .map(|b| indices.iter().map(|&i| b[i]).collect()),
            classes: self.classes.clone(),
        }
    }
}

/// The cache directory name for a dataset: `{kind}-{split}-n{n}-s{seed}-g{version}`.
pub fn cache_name(kind: Kind, split: Split, n: usize, seed: u64) -> String {
    format!("{kind}-{split}-n{n}-s{seed}-g{GENERATOR_VERSION}")
}

/// Loads `root/{cache_name}` when it holds a valid dataset, else generates it and
/// saves it there. Returns the dataset and whether it came from the cache.
pub fn cached(
    kind: Kind,
    split: Split,
    n: usize,
    seed: u64,
    root: impl AsRef<Path>,
) -> Result<(Dataset, bool), ScenesError> {
    let dir = root.as_ref().join(cache_name(kind, split, n, seed));
    if dir.join(HEADER_FILE).exists()
        && let Ok(d) = Dataset::load(&dir)
        && d.kind == kind
        && d.len() == n
    {
        return Ok((d, true));
    }
    let d = generate(kind, split, n, seed);
    d.save(&dir)?;
    Ok((d, false))
}

#[cfg(test)]
mod tests;
