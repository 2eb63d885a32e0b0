//! What decides that earlier work can be reused: a fast fingerprint of
//! in-memory data (FNV-1a) and sha256 of files.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::DataKey;
use super::manifest::io_err;
#[cfg(feature = "train")]
use super::{Manifest, SourceKey};
use crate::{Dataset, Result};

/// 64-bit FNV-1a: a fast, stable fingerprint (not a checksum against
/// tampering; files get [`sha256_file`]).
#[derive(Debug, Clone)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Fnv {
    /// The empty fingerprint.
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes, one at a time.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.word(x as u64);
        }
        self
    }

    /// Adds one 64-bit word in a single step.
    pub fn word(&mut self, x: u64) -> &mut Self {
        self.0 = (self.0 ^ x).wrapping_mul(0x0000_0100_0000_01b3);
        self
    }

    /// The fingerprint as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// sha256 of `bytes`, as 64 hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// sha256 of the file at `path`, as 64 hex digits.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reuse key of a data split: its size and a fingerprint of its images,
/// labels and boxes.
pub fn data_key(d: &Dataset) -> DataKey {
    let mut h = Fnv::new();
    for s in d.images.shape() {
        h.word(*s as u64);
    }
    for v in d.images.iter() {
        h.word(v.to_bits() as u64);
    }
    for l in &d.labels {
        h.word(*l as u64);
    }
    if let Some(b) = &d.boxes {
        for v in b.iter().flatten() {
            h.word(v.to_bits() as u64);
        }
    }
    DataKey {
        n: d.len(),
        hash: h.hex(),
    }
}

/// The saved manifest in `out_dir` when it was made from `key` and all its files
/// (parts and runnable ONNX) are there with the recorded sha256.
#[cfg(feature = "train")]
pub(super) fn try_reuse(out_dir: &Path, model: &str, key: &SourceKey) -> Option<Manifest> {
    let m = Manifest::load(Manifest::path_in(out_dir, model)).ok()?;
    if m.model != model || m.source != *key {
        return None;
    }
    m.verify_parts(out_dir).ok()?;
    let onnx_ok = m
        .rows()
        .all(|r| sha256_file(&out_dir.join(&r.file)).is_ok_and(|h| h == r.onnx_sha256));
    onnx_ok.then_some(m)
}
