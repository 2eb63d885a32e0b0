//! Writes the tiny ONNX CNNs that `examples/tiny-real.toml` runs, so the
//! real runtime can be tried with nothing but cargo:
//!
//!     cargo run --example make_tiny_models
//!
//! The models are seeded (same bytes every time) and a few KiB each; they
//! are committed under `examples/models/`.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models");
    std::fs::create_dir_all(&dir)?;
    // (file, seed, input side, classes)
    for (name, seed, side, classes) in [
        ("tiny_lights_w100.onnx", 1, 64, 4),
        ("tiny_lights_w050.onnx", 2, 32, 4),
        ("tiny_signs_w100.onnx", 3, 48, 12),
        ("tiny_signs_w050.onnx", 4, 24, 12),
    ] {
        let path = dir.join(name);
        rtmdl_engine::testmodels::write_tiny_cnn(&path, seed, 3, side, side, classes)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
