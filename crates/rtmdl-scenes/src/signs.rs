//! Traffic signs: 16 classes built from a shape, a border, a fill and a glyph, drawn
//! through a random affine + keystone transform.

use rand::Rng;

use crate::canvas::{Canvas, PixBox, Rgb, jitter, mix, random_rgb, scale};
use crate::clutter;

/// The sign classes, in label order.
pub const SIGN_CLASSES: [&str; 16] = [
    "stop",
    "no_entry",
    "speed_30",
    "speed_50",
    "speed_80",
    "no_stopping",
    "yield",
    "warning",
    "crossroads",
    "priority_road",
    "ahead_only",
    "turn_right",
    "turn_left",
    "parking",
    "end_of_limits",
    "keep_right",
];

#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Octagon,
    TriangleUp,
    TriangleDown,
    Diamond,
    Square,
}

#[derive(Clone, Copy)]
enum Glyph {
    None,
    Bar,
    /// A row of four letter-like blocks (the "STOP" lettering).
    Letters,
    Digits(u8, u8),
    Cross,
    Exclamation,
    Plus,
    Arrow(f32),
    Parking,
    Slash,
}

/// The jittered palette of one sample.
struct Palette {
    red: Rgb,
    blue: Rgb,
    yellow: Rgb,
    white: Rgb,
    black: Rgb,
    grey: Rgb,
}

impl Palette {
    fn random<R: Rng>(rng: &mut R) -> Self {
        // Faded signs: everything drifts towards a washed-out grey.
        let fade = rng.random_range(0.0..0.3f32);
        let g = [0.6, 0.6, 0.6];
        let f = |rng: &mut R, c: Rgb| mix(jitter(rng, c, 0.07), g, fade);
        Palette {
            red: f(rng, [0.78, 0.1, 0.12]),
            blue: f(rng, [0.1, 0.25, 0.68]),
            yellow: f(rng, [0.95, 0.78, 0.1]),
            white: f(rng, [0.92, 0.92, 0.9]),
            black: f(rng, [0.08, 0.08, 0.1]),
            grey: f(rng, [0.45, 0.45, 0.47]),
        }
    }
}

struct Spec {
    shape: Shape,
    fill: Rgb,
    border: Rgb,
    /// Border width in the shape's inner-distance units (0 = none).
    border_w: f32,
    glyph: Glyph,
    glyph_c: Rgb,
}

fn spec(class: u32, p: &Palette) -> Spec {
    use Glyph as G;
    use Shape as S;
    let s = |shape, fill, border, border_w, glyph, glyph_c| Spec {
        shape,
        fill,
        border,
        border_w,
        glyph,
        glyph_c,
    };
    match class {
        0 => s(S::Octagon, p.red, p.white, 0.06, G::Letters, p.white),
        1 => s(S::Circle, p.red, p.white, 0.04, G::Bar, p.white),
        2 => s(S::Circle, p.white, p.red, 0.16, G::Digits(3, 0), p.black),
        3 => s(S::Circle, p.white, p.red, 0.16, G::Digits(5, 0), p.black),
        4 => s(S::Circle, p.white, p.red, 0.16, G::Digits(8, 0), p.black),
        5 => s(S::Circle, p.blue, p.red, 0.18, G::Cross, p.red),
        6 => s(S::TriangleDown, p.white, p.red, 0.22, G::None, p.black),
        7 => s(S::TriangleUp, p.white, p.red, 0.2, G::Exclamation, p.black),
        8 => s(S::TriangleUp, p.white, p.red, 0.2, G::Plus, p.black),
        9 => s(S::Diamond, p.yellow, p.white, 0.14, G::None, p.black),
        10 => s(S::Circle, p.blue, p.white, 0.03, G::Arrow(0.0), p.white),
        11 => s(S::Circle, p.blue, p.white, 0.03, G::Arrow(90.0), p.white),
        12 => s(S::Circle, p.blue, p.white, 0.03, G::Arrow(-90.0), p.white),
        13 => s(S::Square, p.blue, p.white, 0.06, G::Parking, p.white),
        14 => s(S::Circle, p.white, p.grey, 0.05, G::Slash, p.grey),
        _ => s(S::Circle, p.blue, p.white, 0.03, G::Arrow(135.0), p.white),
    }
}

/// How far `(u, v)` lies inside the shape (positive inside), in local units; the
/// shapes span roughly `[-1, 1]²`.
fn inner_distance(shape: Shape, u: f32, v: f32) -> f32 {
    const SQRT2: f32 = std::f32::consts::SQRT_2;
    match shape {
        Shape::Circle => 1.0 - (u * u + v * v).sqrt(),
        Shape::Square => 0.9 - u.abs().max(v.abs()),
        Shape::Diamond => (1.0 - (u.abs() + v.abs())) / SQRT2,
        Shape::Octagon => 1.0 - u.abs().max(v.abs()).max((u.abs() + v.abs()) / SQRT2),
        Shape::TriangleUp => triangle(u, v),
        Shape::TriangleDown => triangle(u, -v),
    }
}

/// Point-up triangle with vertices (0,-1), (±1, 0.75).
fn triangle(u: f32, v: f32) -> f32 {
    (0.75 - v).min((1.0 - (1.75 * u.abs() - v)) / 2.0156)
}

fn in_box(u: f32, v: f32, x0: f32, y0: f32, x1: f32, y1: f32) -> bool {
    u >= x0 && u <= x1 && v >= y0 && v <= y1
}

/// Seven-segment digit in a box centred at `(cx, cy)`.
fn digit(d: u8, u: f32, v: f32, cx: f32, cy: f32) -> bool {
    let (hw, hh, t) = (0.21, 0.42, 0.13);
    let (x, y) = (u - cx, v - cy);
    // Segments a b c d e f g.
    let segs: [bool; 7] = match d {
        0 => [true, true, true, true, true, true, false],
        3 => [true, true, true, true, false, false, true],
        5 => [true, false, true, true, false, true, true],
        8 => [true; 7],
        _ => [false; 7],
    };
    let hit = [
        in_box(x, y, -hw, -hh, hw, -hh + t),
        in_box(x, y, hw - t, -hh, hw, 0.0),
        in_box(x, y, hw - t, 0.0, hw, hh),
        in_box(x, y, -hw, hh - t, hw, hh),
        in_box(x, y, -hw, 0.0, -hw + t, hh),
        in_box(x, y, -hw, -hh, -hw + t, 0.0),
        in_box(x, y, -hw, -t / 2.0, hw, t / 2.0),
    ];
    segs.iter().zip(hit).any(|(&s, h)| s && h)
}

/// Arrow pointing up (towards -v) of the glyph set.
fn arrow_up(u: f32, v: f32) -> bool {
    let shaft = u.abs() < 0.13 && v > -0.25 && v < 0.6;
    let head = (-0.65..=-0.12).contains(&v) && u.abs() <= (v + 0.65) * 0.85;
    shaft || head
}

fn glyph_hit(g: Glyph, u: f32, v: f32) -> bool {
    match g {
        Glyph::None => false,
        Glyph::Bar => v.abs() < 0.16 && u.abs() < 0.62,
        Glyph::Letters => v.abs() < 0.2 && u.abs() < 0.72 && ((u + 0.72) / 0.36).fract() < 0.72,
        Glyph::Digits(a, b) => digit(a, u, v, -0.26, 0.0) || digit(b, u, v, 0.26, 0.0),
        Glyph::Cross => (u - v).abs() < 0.2 || (u + v).abs() < 0.2,
        Glyph::Exclamation => {
            u.abs() < 0.08 && ((-0.42..0.18).contains(&v) || (0.28..0.42).contains(&v))
        }
        Glyph::Plus => {
            let v = v - 0.15;
            (u.abs() < 0.08 && v.abs() < 0.34) || (v.abs() < 0.08 && u.abs() < 0.34)
        }
        Glyph::Arrow(deg) => {
            let (s, c) = deg.to_radians().sin_cos();
            // Rotate the point by -deg so the glyph appears rotated by +deg (clockwise).
            arrow_up(c * u + s * v, -s * u + c * v)
        }
        Glyph::Parking => {
            let stem = (-0.32..-0.12).contains(&u) && v.abs() < 0.58;
            let (du, dv) = (u + 0.05, v + 0.2);
            let r = (du * du + dv * dv).sqrt();
            let bowl = u > -0.2 && (0.15..0.35).contains(&r);
            stem || bowl
        }
        Glyph::Slash => {
            let d = (u + v) / std::f32::consts::SQRT_2;
            d.abs() < 0.25 && ((d * 20.0).rem_euclid(1.0) < 0.6 || d.abs() < 0.05)
        }
    }
}

/// The colour of a sign at local coordinates, or `None` outside it.
fn sample(s: &Spec, u: f32, v: f32) -> Option<Rgb> {
    let d = inner_distance(s.shape, u, v);
    if d < 0.0 {
        return None;
    }
    if d < s.border_w {
        return Some(s.border);
    }
    // Glyphs sit lower in triangles (their centroid is below the origin).
    let gv = match s.shape {
        Shape::TriangleUp => v,
        Shape::TriangleDown => v + 0.25,
        _ => v,
    };
    if glyph_hit(s.glyph, u, gv) {
        Some(s.glyph_c)
    } else {
        Some(s.fill)
    }
}

/// Geometry of one placed sign: centre, radius in pixels, rotation, shear and keystone.
pub(crate) struct Placement {
    pub cx: f32,
    pub cy: f32,
    pub radius: f32,
    pub rot: f32,
    pub shear: f32,
    pub aspect: f32,
    pub key_u: f32,
    pub key_v: f32,
}

impl Placement {
    pub fn random<R: Rng>(rng: &mut R, cx: f32, cy: f32, radius: f32) -> Self {
        Placement {
            cx,
            cy,
            radius,
            rot: rng.random_range(-14.0f32..14.0).to_radians(),
            shear: rng.random_range(-0.2..0.2),
            aspect: rng.random_range(0.75..1.1),
            key_u: rng.random_range(-0.18..0.18),
            key_v: rng.random_range(-0.12..0.12),
        }
    }

    /// Pixel position to sign-local coordinates.
    fn local(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = ((x - self.cx) / self.radius, (y - self.cy) / self.radius);
        let (s, c) = self.rot.sin_cos();
        let (rx, ry) = (c * dx + s * dy, -s * dx + c * dy);
        let (mut u, v) = (rx / self.aspect - self.shear * ry, ry);
        // Keystone: a cheap stand-in for perspective (one side nearer than the other).
        u *= 1.0 + self.key_u * v;
        let v = v * (1.0 + self.key_v * u);
        (u, v)
    }
}

/// Draws sign `class` at `pl` with the palette drawn from `rng`; returns its tight
/// pixel box.
pub(crate) fn draw_sign<R: Rng>(
    canvas: &mut Canvas,
    rng: &mut R,
    class: u32,
    pl: &Placement,
) -> Option<PixBox> {
    let pal = Palette::random(rng);
    let sp = spec(class, &pal);
    // Thin dark rim (the sign plate's edge) shows the outline on pale backgrounds.
    let rim = scale(sp.border, 0.55);
    let r = pl.radius * 1.6;
    let bbox = [pl.cx - r, pl.cy - r, pl.cx + r, pl.cy + r];
    canvas.paint(bbox, 3, 1.0, |x, y| {
        let (u, v) = pl.local(x, y);
        sample(&sp, u, v).or_else(|| {
            let d = inner_distance(sp.shape, u, v);
            (d > -0.045).then_some(rim)
        })
    })
}

/// One 32×32-style crop of sign `class` (centred with jitter) over background clutter.
pub(crate) fn render_crop<R: Rng>(rng: &mut R, size: usize, class: u32) -> Canvas {
    let mut c = Canvas::new(size, size);
    clutter::background(&mut c, rng);
    let s = size as f32;
    let radius = s * rng.random_range(0.3..0.47);
    let cx = s / 2.0 + rng.random_range(-0.12..0.12) * s;
    let cy = s / 2.0 + rng.random_range(-0.12..0.12) * s;
    // A pole behind the sign, sometimes.
    if rng.random_bool(0.5) {
        let pw = radius * rng.random_range(0.12..0.22);
        c.rect([cx - pw, cy, cx + pw, s], random_rgb(rng, 0.3, 0.55), 1.0);
    }
    let pl = Placement::random(rng, cx, cy, radius);
    draw_sign(&mut c, rng, class, &pl);
    // Partial occlusion (a branch, another pole, a car roof).
    if rng.random_bool(0.3) {
        clutter::occluder(
            &mut c,
            rng,
            [cx - radius, cy - radius, cx + radius, cy + radius],
            0.45,
        );
    }
    clutter::degrade(&mut c, rng, 1.2);
    c
}

/// A larger street frame holding one sign of `class`; returns the frame and the
/// sign's tight pixel box.
pub(crate) fn render_scene<R: Rng>(rng: &mut R, size: usize, class: u32) -> (Canvas, PixBox) {
    let mut c = Canvas::new(size, size);
    clutter::street(&mut c, rng);
    let s = size as f32;
    let radius = s * rng.random_range(0.07..0.2);
    let margin = radius * 1.2;
    let cx = rng.random_range(margin..s - margin);
    let cy = rng.random_range(margin..(s * 0.75).max(margin + 1.0));
    let pw = (radius * 0.15).max(0.8);
    c.rect([cx - pw, cy, cx + pw, s], random_rgb(rng, 0.3, 0.55), 1.0);
    let pl = Placement::random(rng, cx, cy, radius);
    let bbox = draw_sign(&mut c, rng, class, &pl).unwrap_or([
        cx - radius,
        cy - radius,
        cx + radius,
        cy + radius,
    ]);
    if rng.random_bool(0.2) {
        clutter::occluder(&mut c, rng, bbox, 0.35);
    }
    clutter::degrade(&mut c, rng, 1.2);
    (c, bbox)
}
