//! Framework-free named weights and their file format (safetensors, F32 only).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::{Arch, Result, TrainError};

/// Named f32 tensors: name → (shape, row-major data). The names are documented in the
/// crate docs.
///
/// Files are [safetensors](https://github.com/huggingface/safetensors) (an 8-byte
/// little-endian header length, a JSON header of names, dtypes, shapes and byte
/// offsets, then the raw little-endian data), readable by Python's `safetensors` and by
/// candle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// name → (shape, data); `data.len()` is the product of the shape.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    /// The tensor `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<(&[usize], &[f32])> {
        self.tensors
            .get(name)
            .map(|(s, d)| (s.as_slice(), d.as_slice()))
            .ok_or_else(|| TrainError::Weights(format!("missing tensor {name}")))
    }

    /// Inserts (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.tensors.insert(name.into(), (shape, data));
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.tensors.values().map(|(_, d)| d.len()).sum()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Writes a safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), self, &BTreeMap::new())
    }

    /// Reads a safetensors file (F32 tensors only).
    pub fn load(path: impl AsRef<Path>) -> Result<Weights> {
        read_file(path.as_ref()).map(|(w, _)| w)
    }
}

/// Writes the weights with the architecture in the file's metadata (`"arch"`, JSON).
pub fn save_model(path: impl AsRef<Path>, arch: &Arch, w: &Weights) -> Result<()> {
    arch.check(w)?;
    let mut meta = BTreeMap::new();
    meta.insert(
        "arch".to_string(),
        serde_json::to_string(arch).expect("arch serialises"),
    );
    write_file(path.as_ref(), w, &meta)
}

/// Reads a file written by [`save_model`]: the architecture and its checked weights.
pub fn load_model(path: impl AsRef<Path>) -> Result<(Arch, Weights)> {
    let path = path.as_ref();
    let (w, meta) = read_file(path)?;
    let arch_json = meta.get("arch").ok_or_else(|| {
        TrainError::Weights(format!("{}: no \"arch\" in the metadata", path.display()))
    })?;
    let arch: Arch = serde_json::from_str(arch_json)
        .map_err(|e| TrainError::Weights(format!("{}: bad arch metadata: {e}", path.display())))?;
    arch.check(&w)?;
    Ok((arch, w))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_file(path: &Path, w: &Weights, meta: &BTreeMap<String, String>) -> Result<()> {
    let mut header = serde_json::Map::new();
    if !meta.is_empty() {
        header.insert("__metadata__".into(), json!(meta));
    }
    let mut offset = 0usize;
    for (name, (shape, data)) in &w.tensors {
        let end = offset + 4 * data.len();
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).expect("header serialises");
    // Pad the header with spaces so the data starts 8-byte aligned.
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut buf = Vec::with_capacity(8 + h.len() + offset);
    buf.extend_from_slice(&(h.len() as u64).to_le_bytes());
    buf.extend_from_slice(&h);
    for (_, data) in w.tensors.values() {
        for v in data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::write(path, buf).map_err(io_err(path))
}

pub(crate) fn read_file(path: &Path) -> Result<(Weights, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = |why: String| TrainError::Weights(format!("{}: {why}", path.display()));
    if bytes.len() < 8 {
        return Err(bad("too short for a safetensors file".into()));
    }
    let hlen = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    if hlen > bytes.len() - 8 {
        return Err(bad(format!("header length {hlen} exceeds the file")));
    }
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + hlen])
        .map_err(|e| bad(format!("bad safetensors header: {e}")))?;
    let data = &bytes[8 + hlen..];
    let mut w = Weights::default();
    let mut meta = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            if let Value::Object(m) = v {
                for (k, v) in m {
                    if let Value::String(s) = v {
                        meta.insert(k, s);
                    }
                }
            }
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap_or("?");
        if dtype != "F32" {
            return Err(bad(format!(
                "tensor {name} has dtype {dtype}, only F32 is read"
            )));
        }
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("tensor {name}: bad shape")))?;
        let offs: Vec<usize> = v["data_offsets"]
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .filter(|o: &Vec<usize>| o.len() == 2)
            .ok_or_else(|| bad(format!("tensor {name}: bad data_offsets")))?;
        let (b, e) = (offs[0], offs[1]);
        let n: usize = shape.iter().product();
        if e < b || e > data.len() || e - b != 4 * n {
            return Err(bad(format!(
                "tensor {name}: offsets {b}..{e} do not hold {n} f32 values"
            )));
        }
        let vals = data[b..e]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        w.tensors.insert(name, (shape, vals));
    }
    Ok((w, meta))
}
