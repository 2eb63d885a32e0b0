//! Traffic lights: a housing with three lamps (red, yellow, green) in a camera crop.

use rand::Rng;

use crate::canvas::{Canvas, PixBox, Rgb, jitter, mix, random_rgb, scale};
use crate::clutter;

/// The light states, in label order.
pub const LIGHT_CLASSES: [&str; 4] = ["red", "yellow", "green", "off"];

/// Lamp colours when lit, in slot order (red, yellow, green).
const LIT: [Rgb; 3] = [[1.0, 0.12, 0.08], [1.0, 0.68, 0.08], [0.2, 1.0, 0.62]];

/// One crop with a light in state `class` (0 red, 1 yellow, 2 green, 3 off); returns the
/// canvas and the housing's pixel box.
pub(crate) fn render<R: Rng>(rng: &mut R, size: usize, class: u32) -> (Canvas, PixBox) {
    let mut c = Canvas::new(size, size);
    let s = size as f32;
    let night = if rng.random_bool(0.6) {
        clutter::background(&mut c, rng);
        false
    } else {
        clutter::sky(&mut c, rng) == 3
    };
    let horizontal = rng.random_bool(0.2);
    // Housing geometry (long side along the lamps).
    let short = s * rng.random_range(0.15..0.3);
    let long = short * rng.random_range(2.5..2.9);
    let (hw, hh) = if horizontal {
        (long, short)
    } else {
        (short, long)
    };
    let x0 = rng.random_range(0.0..(s - hw).max(0.5));
    let y0 = rng.random_range(0.0..(s - hh).max(0.5));
    let housing = [x0, y0, x0 + hw, y0 + hh];

    // Distractor blobs anywhere (they may end up behind the housing).
    let blobs = rng.random_range(0..4);
    for _ in 0..blobs {
        clutter::light_blob(&mut c, rng, night);
    }
    if rng.random_bool(0.25) {
        let horizon = s * rng.random_range(0.6..1.0);
        clutter::car(&mut c, rng, horizon, night);
    }
    // Pole / mounting arm.
    if rng.random_bool(0.7) {
        let pw = short * rng.random_range(0.15..0.3);
        let col = random_rgb(rng, 0.15, 0.45);
        if horizontal {
            let cx = x0 + hw / 2.0;
            c.rect([cx - pw, 0.0, cx + pw, y0], col, 1.0);
        } else {
            let cx = x0 + hw / 2.0;
            c.rect([cx - pw, y0 + hh, cx + pw, s], col, 1.0);
        }
    }
    // Housing: dark grey/black, sometimes yellow-painted, with a lighter frame.
    let body = if rng.random_bool(0.2) {
        jitter(rng, [0.55, 0.45, 0.1], 0.08)
    } else {
        let g = rng.random_range(0.04..0.22);
        jitter(rng, [g, g, g], 0.02)
    };
    let frame = scale(body, rng.random_range(0.6..1.6));
    let r = short * 0.18;
    c.paint(housing, 2, 1.0, |x, y| {
        let inside = rounded(x, y, housing, r);
        inside.map(|d| if d < short * 0.07 { frame } else { body })
    });

    // Lamps.
    let lamp_r = short * rng.random_range(0.27..0.36);
    let intensity = rng.random_range(0.45..1.0f32);
    // Sunlight on unlit lenses (phantom) makes "off" and dim lamps look alike.
    let phantom = if night {
        0.0
    } else {
        rng.random_range(0.0..0.4f32)
    };
    for slot in 0..3 {
        let t = [0.19, 0.5, 0.81][slot];
        let (lx, ly) = if horizontal {
            (x0 + hw * t, y0 + hh / 2.0)
        } else {
            (x0 + hw / 2.0, y0 + hh * t)
        };
        let lit = slot as u32 == class;
        let hue = jitter(rng, LIT[slot], 0.08);
        let base = scale(hue, 0.12 + phantom * 0.5);
        let col = if lit {
            mix(base, hue, intensity)
        } else {
            mix(scale(body, 0.7), base, 0.7)
        };
        c.ellipse(lx, ly, lamp_r, lamp_r, col, 1.0);
        if lit {
            // Bright core (often saturated to white-ish) and a halo.
            let core = mix(hue, [1.0, 1.0, 0.95], rng.random_range(0.0..0.5));
            c.ellipse(
                lx,
                ly,
                lamp_r * 0.5,
                lamp_r * 0.5,
                scale(core, intensity),
                0.7,
            );
            let halo = if night { 0.7 } else { 0.25 };
            c.glow(
                lx,
                ly,
                lamp_r * rng.random_range(1.0..2.2),
                hue,
                halo * intensity,
            );
        } else if phantom > 0.25 && rng.random_bool(0.5) {
            // A specular glint on a dead lens.
            c.ellipse(
                lx - lamp_r * 0.3,
                ly - lamp_r * 0.3,
                lamp_r * 0.3,
                lamp_r * 0.3,
                [0.9; 3],
                0.5,
            );
        }
    }
    // Visor shadows above each lamp are implied by the frame; occlusion next.
    if rng.random_bool(0.25) {
        clutter::occluder(&mut c, rng, housing, 0.45);
    }
    clutter::degrade(&mut c, rng, 1.4);
    (c, housing)
}

/// Inside a rounded rectangle: the distance to the nearest edge, else `None`.
fn rounded(x: f32, y: f32, b: PixBox, r: f32) -> Option<f32> {
    if x < b[0] || x >= b[2] || y < b[1] || y >= b[3] {
        return None;
    }
    let dx = (x - b[0]).min(b[2] - x);
    let dy = (y - b[1]).min(b[3] - y);
    if dx < r && dy < r {
        let (ex, ey) = (r - dx, r - dy);
        let d = r - (ex * ex + ey * ey).sqrt();
        return (d >= 0.0).then_some(d);
    }
    Some(dx.min(dy))
}
