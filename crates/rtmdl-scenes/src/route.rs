//! A drive: a seeded sequence of scenes in which traffic lights change
//! phase and signs appear and disappear at known times, so a real run can
//! count what a driver cares about (lights and signs answered correctly and
//! in time, red lights run).
//!
//! A route is a cycle of `length` nanoseconds cut into [`Episode`]s. Each
//! episode shows one thing for its whole span: a traffic light in one phase
//! (the light camera sees a light at all times: an intersection is green,
//! yellow, then red, and the next intersection follows), or a sign of one
//! class, or — for the sign camera only — no sign (the gap between two
//! signs, ground truth `None`). The drive is compressed: phases last about
//! a second and signs stay in view for about a second, so an 8 s run holds
//! several of each (a real light cycle is tens of seconds).
//!
//! Every episode is drawn [`VARIATIONS`] times with the same generators as
//! the datasets ([`crate::generate`]), each with its own random stream
//! (camera jitter, light, noise); frame `i` of an episode shows variation
//! `i mod VARIATIONS`. The crops are drawn when the route is made, so
//! producing a frame is a copy.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::canvas::Canvas;
use crate::{Kind, clutter, lights, signs, splitmix};

/// Mixed into the seed so a route never shares a stream with a dataset.
const ROUTE_TAG: u64 = 0x0072_6f75_7465;

/// Drawings kept per episode.
pub const VARIATIONS: usize = 8;

/// What the camera of a route looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Camera {
    /// A traffic light, always in view, cycling green → yellow → red.
    Lights,
    /// Signs of the 16 [`crate::SIGN_CLASSES`], with gaps between them.
    Signs,
}

impl Camera {
    /// The dataset kind whose crops the camera shows (and whose model reads them).
    pub fn kind(self) -> Kind {
        match self {
            Camera::Lights => Kind::Lights,
            Camera::Signs => Kind::Signs,
        }
    }

    /// `"lights"` or `"signs"`.
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// The camera of that name.
    pub fn parse(s: &str) -> Option<Camera> {
        match s {
            "lights" => Some(Camera::Lights),
            "signs" => Some(Camera::Signs),
            _ => None,
        }
    }
}

/// One span of the route with one thing in view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// Start within the cycle, ns.
    pub start: u64,
    /// End within the cycle (exclusive), ns.
    pub end: u64,
    /// The class in view (index into the camera's classes); `None` when
    /// nothing is (a gap between signs).
    pub class: Option<u32>,
}

/// Where a moment of the drive falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Index of the episode in the cycle.
    pub episode: usize,
    /// Which pass of the cycle (0 for the first `length` ns).
    pub lap: u64,
}

/// A seeded drive for one camera.
#[derive(Debug, Clone)]
pub struct Route {
    camera: Camera,
    length: u64,
    episodes: Vec<Episode>,
    /// Per episode, [`VARIATIONS`] crops as `[H, W, 3]` RGB bytes.
    crops: Vec<Vec<Vec<u8>>>,
}

/// Seconds to nanoseconds.
fn ns(s: f64) -> u64 {
    (s * 1e9).round() as u64
}

/// Light classes by name ([`crate::LIGHT_CLASSES`]).
const RED: u32 = 0;
const YELLOW: u32 = 1;
const GREEN: u32 = 2;

impl Route {
    /// The drive of `camera` from `seed`, one cycle `length` ns long (at
    /// least one episode). Deterministic in `(camera, seed, length)`.
    pub fn new(camera: Camera, seed: u64, length: u64) -> Route {
        let base = splitmix(splitmix(seed ^ ROUTE_TAG) ^ camera.kind().tag());
        let mut rng = ChaCha8Rng::seed_from_u64(base);
        let length = length.max(1);
        let mut episodes = Vec::new();
        let mut t = 0u64;
        let mut push = |t: &mut u64, d: u64, class: Option<u32>| {
            let end = (*t + d.max(1)).min(length);
            episodes.push(Episode {
                start: *t,
                end,
                class,
            });
            *t = end;
        };
        match camera {
            Camera::Lights => {
                // Start anywhere in the cycle of the first intersection.
                let mut phase = rng.random_range(0..3u32);
                while t < length {
                    let (class, d) = match phase {
                        0 => (GREEN, rng.random_range(1.0..2.0)),
                        1 => (YELLOW, 0.6),
                        _ => (RED, rng.random_range(1.0..2.0)),
                    };
                    push(&mut t, ns(d), Some(class));
                    phase = (phase + 1) % 3;
                }
            }
            Camera::Signs => {
                let classes = crate::SIGN_CLASSES.len() as u32;
                let mut last = u32::MAX;
                while t < length {
                    let mut class = rng.random_range(0..classes);
                    if class == last {
                        class = (class + 1) % classes;
                    }
                    last = class;
                    push(&mut t, ns(rng.random_range(0.8..1.6)), Some(class));
                    if t < length {
                        push(&mut t, ns(rng.random_range(0.3..0.8)), None);
                    }
                }
            }
        }
        let crops = episodes
            .iter()
            .enumerate()
            .map(|(e, ep)| {
                (0..VARIATIONS)
                    .map(|k| {
                        let stream = splitmix(base ^ splitmix(((e as u64) << 8) | k as u64));
                        draw(camera, ep.class, &mut ChaCha8Rng::seed_from_u64(stream))
                    })
                    .collect()
            })
            .collect();
        Route {
            camera,
            length,
            episodes,
            crops,
        }
    }

    /// The camera.
    pub fn camera(&self) -> Camera {
        self.camera
    }

    /// Length of one cycle, ns.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The episodes of one cycle, in time order, covering `[0, length)`.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// `(height, width)` of a crop.
    pub fn crop_size(&self) -> (usize, usize) {
        self.camera.kind().image_size()
    }

    /// Where time `t` (ns since the start of the drive) falls.
    pub fn place(&self, t: u64) -> Place {
        let lap = t / self.length;
        let tc = t % self.length;
        let episode = self.episodes.partition_point(|e| e.end <= tc);
        Place {
            episode: episode.min(self.episodes.len() - 1),
            lap,
        }
    }

    /// Crop `k mod VARIATIONS` of an episode as `[H, W, 3]` RGB bytes.
    pub fn crop(&self, episode: usize, k: usize) -> &[u8] {
        &self.crops[episode][k % VARIATIONS]
    }

    /// The name of a class of this camera (`"red"`, `"stop"`, …).
    pub fn label(&self, class: u32) -> &'static str {
        self.camera.kind().classes()[class as usize]
    }
}

/// One crop of `class` (or of nothing) as `[H, W, 3]` bytes.
fn draw(camera: Camera, class: Option<u32>, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let (h, w) = camera.kind().image_size();
    let canvas = match (camera, class) {
        (Camera::Lights, Some(c)) => lights::render(rng, w, c).0,
        (Camera::Signs, Some(c)) => signs::render_crop(rng, w, c),
        (_, None) => {
            let mut c = Canvas::new(w, h);
            clutter::background(&mut c, rng);
            clutter::degrade(&mut c, rng, 1.0);
            c
        }
    };
    canvas.to_hwc_u8()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    #[test]
    fn a_route_is_seeded_and_covers_its_cycle() {
        for camera in [Camera::Lights, Camera::Signs] {
            let a = Route::new(camera, 7, MIN / 2);
            let b = Route::new(camera, 7, MIN / 2);
            let c = Route::new(camera, 8, MIN / 2);
            assert_eq!(a.episodes(), b.episodes());
            assert_eq!(a.crops, b.crops);
            assert_ne!(a.episodes(), c.episodes());
            let eps = a.episodes();
            assert_eq!(eps[0].start, 0);
            assert_eq!(eps.last().unwrap().end, a.length());
            assert!(eps.windows(2).all(|w| w[0].end == w[1].start));
            assert!(eps.len() >= 10, "{} episodes in 30 s", eps.len());
        }
    }

    #[test]
    fn lights_cycle_green_yellow_red_and_signs_leave_gaps() {
        let r = Route::new(Camera::Lights, 1, MIN);
        for w in r.episodes().windows(2) {
            let (a, b) = (w[0].class.unwrap(), w[1].class.unwrap());
            let next = match a {
                GREEN => YELLOW,
                YELLOW => RED,
                _ => GREEN,
            };
            assert_eq!(b, next, "{} then {}", r.label(a), r.label(b));
        }
        let s = Route::new(Camera::Signs, 1, MIN);
        let (shown, gaps): (Vec<&Episode>, Vec<&Episode>) =
            s.episodes().iter().partition(|e| e.class.is_some());
        assert!(!gaps.is_empty());
        assert!(shown.len() >= gaps.len());
        let kinds: std::collections::BTreeSet<_> = shown.iter().map(|e| e.class).collect();
        assert!(kinds.len() >= 8, "{} sign classes in a minute", kinds.len());
    }

    #[test]
    fn places_follow_the_episodes_and_wrap() {
        let r = Route::new(Camera::Signs, 3, MIN / 4);
        for (i, e) in r.episodes().iter().enumerate() {
            assert_eq!(r.place(e.start).episode, i);
            assert_eq!(r.place(e.end - 1).episode, i);
            let p = r.place(r.length() * 2 + e.start);
            assert_eq!((p.episode, p.lap), (i, 2));
        }
    }

    /// The ground truth matches the frames: each crop of a class is the
    /// dataset generator's sample of that class (the one the models were
    /// trained and measured on) from the crop's own stream.
    #[test]
    fn crops_are_dataset_samples_of_their_class() {
        for camera in [Camera::Lights, Camera::Signs] {
            let kind = camera.kind();
            let (h, w) = kind.image_size();
            let r = Route::new(camera, 5, MIN / 6);
            let base = splitmix(splitmix(5 ^ ROUTE_TAG) ^ kind.tag());
            for (e, ep) in r.episodes().iter().enumerate().take(6) {
                let Some(class) = ep.class else { continue };
                for k in 0..VARIATIONS {
                    let stream = splitmix(base ^ splitmix(((e as u64) << 8) | k as u64));
                    let mut chw = vec![0u8; 3 * h * w];
                    crate::render_one(
                        kind,
                        &mut ChaCha8Rng::seed_from_u64(stream),
                        class,
                        &mut chw,
                    );
                    let crop = r.crop(e, k);
                    for i in 0..h * w {
                        for c in 0..3 {
                            assert_eq!(crop[3 * i + c], chw[c * h * w + i]);
                        }
                    }
                }
                // Variations differ (camera jitter), the class stays.
                assert_ne!(r.crop(e, 0), r.crop(e, 1));
            }
        }
    }
}
