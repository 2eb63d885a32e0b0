//! Backgrounds, distractors, occluders and the camera degradation shared by all scenes.

use rand::Rng;

use crate::canvas::{Canvas, PixBox, Rgb, jitter, random_rgb};

/// Sky palettes: (top, bottom), for day, overcast, dusk and night.
const SKIES: [(Rgb, Rgb); 4] = [
    ([0.35, 0.55, 0.85], [0.7, 0.8, 0.92]),
    ([0.6, 0.62, 0.66], [0.78, 0.78, 0.8]),
    ([0.35, 0.25, 0.45], [0.95, 0.55, 0.3]),
    ([0.03, 0.04, 0.1], [0.12, 0.1, 0.14]),
];

/// Returns a random sky index (night ~20 %).
pub fn sky<R: Rng>(c: &mut Canvas, rng: &mut R) -> usize {
    let i = rng.random_range(0..SKIES.len());
    let (t, b) = SKIES[i];
    c.vertical_gradient(jitter(rng, t, 0.06), jitter(rng, b, 0.06));
    i
}

/// Generic clutter for a close-up crop: sky or wall, then blocks, blobs and lines.
pub fn background<R: Rng>(c: &mut Canvas, rng: &mut R) {
    if rng.random_bool(0.5) {
        sky(c, rng);
    } else {
        let a = random_rgb(rng, 0.1, 0.8);
        c.vertical_gradient(a, jitter(rng, a, 0.2));
    }
    let (w, h) = (c.w as f32, c.h as f32);
    for _ in 0..rng.random_range(0..5) {
        let x = rng.random_range(-0.2..1.0) * w;
        let y = rng.random_range(-0.2..1.0) * h;
        let bw = rng.random_range(0.1..0.6) * w;
        let bh = rng.random_range(0.1..0.6) * h;
        let col = random_rgb(rng, 0.05, 0.9);
        if rng.random_bool(0.5) {
            c.rect([x, y, x + bw, y + bh], col, rng.random_range(0.4..1.0));
        } else {
            c.ellipse(
                x + bw / 2.0,
                y + bh / 2.0,
                bw / 2.0,
                bh / 2.0,
                col,
                rng.random_range(0.4..1.0),
            );
        }
    }
    for _ in 0..rng.random_range(0..3) {
        line(c, rng);
    }
}

/// A thin straight line (wire, branch, edge) across the canvas.
pub fn line<R: Rng>(c: &mut Canvas, rng: &mut R) {
    let (w, h) = (c.w as f32, c.h as f32);
    let (x0, y0) = (rng.random_range(0.0..w), rng.random_range(0.0..h));
    let ang: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let (dx, dy) = (ang.cos(), ang.sin());
    let half = rng.random_range(0.3..1.2f32);
    let col = random_rgb(rng, 0.0, 0.6);
    c.paint([0.0, 0.0, w, h], 2, 0.9, |x, y| {
        let d = ((x - x0) * dy - (y - y0) * dx).abs();
        (d < half).then_some(col)
    });
}

/// A street frame: sky, buildings, road, trees and some cars.
pub fn street<R: Rng>(c: &mut Canvas, rng: &mut R) -> usize {
    let sky_i = sky(c, rng);
    let night = sky_i == 3;
    let (w, h) = (c.w as f32, c.h as f32);
    let horizon = h * rng.random_range(0.5..0.75);
    // Buildings.
    let mut x = -rng.random_range(0.0..0.2) * w;
    while x < w {
        let bw = rng.random_range(0.12..0.35) * w;
        let top = horizon - rng.random_range(0.1..0.5) * h;
        let base = if night { 0.12 } else { 0.55 };
        let col = jitter(rng, [base * 0.9, base * 0.85, base * 0.8], 0.15);
        c.rect([x, top, x + bw, horizon], col, 1.0);
        x += bw + rng.random_range(0.0..0.1) * w;
    }
    // Road.
    let road = if night { 0.08 } else { 0.38 };
    c.rect([0.0, horizon, w, h], jitter(rng, [road; 3], 0.05), 1.0);
    // Trees.
    for _ in 0..rng.random_range(0..3) {
        let tx = rng.random_range(0.0..w);
        let r = rng.random_range(0.06..0.16) * w;
        let g = if night { 0.08 } else { 0.4 };
        c.ellipse(
            tx,
            horizon - r * 0.8,
            r,
            r * 1.2,
            jitter(rng, [g * 0.5, g, g * 0.4], 0.08),
            1.0,
        );
    }
    // Cars with tail lights.
    for _ in 0..rng.random_range(0..3) {
        car(c, rng, horizon, night);
    }
    sky_i
}

/// A car body near `horizon` with two red tail lights (with glow at night).
pub fn car<R: Rng>(c: &mut Canvas, rng: &mut R, horizon: f32, night: bool) {
    let w = c.w as f32;
    let cw = rng.random_range(0.15..0.35) * w;
    let ch = cw * rng.random_range(0.4..0.6);
    let x = rng.random_range(-0.1..0.9) * w;
    let y = horizon + rng.random_range(-0.3..0.5) * ch;
    c.rect([x, y - ch, x + cw, y], random_rgb(rng, 0.05, 0.7), 1.0);
    let lr = cw * 0.07;
    let red: Rgb = [1.0, rng.random_range(0.05..0.3), 0.1];
    for lx in [x + cw * 0.12, x + cw * 0.88] {
        let ly = y - ch * 0.45;
        c.ellipse(lx, ly, lr * 1.4, lr, red, 1.0);
        if night {
            c.glow(lx, ly, lr * 2.5, red, 0.5);
        }
    }
}

/// A coloured light blob (other lamps, reflections, tail lights) with a halo.
pub fn light_blob<R: Rng>(c: &mut Canvas, rng: &mut R, night: bool) {
    const COLS: [Rgb; 5] = [
        [1.0, 0.15, 0.1],
        [1.0, 0.55, 0.1],
        [0.25, 1.0, 0.55],
        [1.0, 0.85, 0.3],
        [0.95, 0.95, 0.9],
    ];
    let (w, h) = (c.w as f32, c.h as f32);
    let base = COLS[rng.random_range(0..COLS.len())];
    let col = jitter(rng, base, 0.08);
    let (x, y) = (rng.random_range(0.0..w), rng.random_range(0.0..h));
    let r = rng.random_range(0.6..3.5f32);
    c.ellipse(x, y, r, r * rng.random_range(0.6..1.4), col, 1.0);
    let g = if night { 0.6 } else { 0.2 };
    c.glow(x, y, r * 2.0, col, rng.random_range(0.0..g));
}

/// Covers part of `target` with an opaque shape (leaf, pole, sign edge, car roof):
/// at most about `max_frac` of its area.
pub fn occluder<R: Rng>(c: &mut Canvas, rng: &mut R, target: PixBox, max_frac: f32) {
    let (tw, th) = (target[2] - target[0], target[3] - target[1]);
    let col = match rng.random_range(0..4) {
        0 => jitter(rng, [0.2, 0.38, 0.12], 0.08),
        1 => jitter(rng, [0.45, 0.45, 0.45], 0.1),
        2 => jitter(rng, [0.08, 0.08, 0.08], 0.04),
        _ => random_rgb(rng, 0.1, 0.9),
    };
    let frac = rng.random_range(0.1..max_frac).sqrt();
    let (ow, oh) = if rng.random_bool(0.5) {
        // A strip across one side.
        if rng.random_bool(0.5) {
            (tw * 1.2, th * frac * frac)
        } else {
            (tw * frac * frac, th * 1.2)
        }
    } else {
        (tw * frac, th * frac)
    };
    // Anchored at a random edge/corner region of the target.
    let x = target[0] - 0.1 * tw + rng.random_range(0.0..1.0) * (tw * 1.2 - ow).max(0.0);
    let y = target[1] - 0.1 * th + rng.random_range(0.0..1.0) * (th * 1.2 - oh).max(0.0);
    if rng.random_bool(0.5) {
        c.rect([x, y, x + ow, y + oh], col, 1.0);
    } else {
        c.ellipse(x + ow / 2.0, y + oh / 2.0, ow / 2.0, oh / 2.0, col, 1.0);
    }
}

/// The camera: lighting, haze, blur and sensor noise.
pub fn degrade<R: Rng>(c: &mut Canvas, rng: &mut R, max_blur: f32) {
    let gain = rng.random_range(0.45..1.35);
    let contrast = rng.random_range(0.6..1.15);
    let cast = jitter(rng, [1.0; 3], 0.1);
    c.light(gain, contrast, cast, rng.random_range(-0.05..0.05));
    if rng.random_bool(0.2) {
        let g = rng.random_range(0.5..0.9);
        c.haze([g, g, g], rng.random_range(0.1..0.45));
    }
    if rng.random_bool(0.15) {
        let len = rng.random_range(2..5);
        c.motion_blur(len, rng.random_bool(0.7));
    }
    if rng.random_bool(0.75) {
        c.gaussian_blur(rng.random_range(0.0..max_blur));
    }
    let sigma = rng.random_range(0.01..0.07);
    c.noise(rng, sigma);
}
