//! Writes a contact sheet of generated samples as a binary PPM, for eyeballing the data:
//! `cargo run -p rtmdl-scenes --example sheet -- signs out.ppm [n] [seed]`.
//! Boxes are outlined in magenta.

use rtmdl_scenes::{Kind, Split, generate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind: Kind = args.first().map_or("signs", String::as_str).parse()?;
    let out = args.get(1).map_or("sheet.ppm", String::as_str);
    let n: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let d = generate(kind, Split::Train, n, seed);
    let (h, w) = d.image_size();
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (sw, sh) = (cols * (w + 2), rows * (h + 2));
    let mut px = vec![255u8; sw * sh * 3];
    for i in 0..n {
        let (ox, oy) = ((i % cols) * (w + 2), (i / cols) * (h + 2));
        let f = d.frame(i);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    px[((oy + y) * sw + ox + x) * 3 + c] = f[[y, x, c]] as u8;
                }
            }
        }
        if let Some(b) = &d.boxes {
            let [bx, by, bw, bh] = b[i];
            let (x0, y0) = ((bx * w as f32) as usize, (by * h as f32) as usize);
            let x1 = (((bx + bw) * w as f32) as usize).min(w) - 1;
            let y1 = (((by + bh) * h as f32) as usize).min(h) - 1;
            let mut put = |x: usize, y: usize| {
                let o = ((oy + y) * sw + ox + x) * 3;
                px[o..o + 3].copy_from_slice(&[255, 0, 255]);
            };
            for x in x0..=x1 {
                put(x, y0);
                put(x, y1);
            }
            for y in y0..=y1 {
                put(x0, y);
                put(x1, y);
            }
        }
    }
    let mut bytes = format!("P6\n{sw} {sh}\n255\n").into_bytes();
    bytes.extend_from_slice(&px);
    std::fs::write(out, bytes)?;
    let names: Vec<&str> = d
        .labels
        .iter()
        .map(|&l| d.classes[l as usize].as_str())
        .collect();
    println!("{out}: {n} {kind} samples, row-major labels: {names:?}");
    Ok(())
}
