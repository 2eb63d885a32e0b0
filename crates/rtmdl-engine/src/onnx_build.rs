//! A small builder that writes ONNX models without Python.
//!
//! It fills the protobuf types tract-onnx exposes ([`tract_onnx::pb`]) and encodes them
//! with [`prost`]. Any ONNX op can be added with [`GraphBuilder::node`]; the ops used by
//! small CNNs (Conv, BatchNormalization, Relu, MaxPool, GlobalAveragePool, Flatten,
//! Gemm, Add, Softmax, Reshape) are known to load in both tract and onnxruntime.
//!
//! ```
//! use rtmdl_engine::onnx_build::{Attr, Dim, GraphBuilder};
//! let mut g = GraphBuilder::new("scale");
//! g.input("x", &[Dim::sym("N"), Dim::from(4)]);
//! g.initializer("w", &[4, 2], vec![0.5; 8]).unwrap();
//! g.node("Gemm", &["x", "w"], &["y"], &[("alpha", Attr::Float(2.0))]);
//! g.output("y", &[Dim::sym("N"), Dim::from(2)]);
//! let bytes: Vec<u8> = g.encode();
//! assert!(!bytes.is_empty());
//! ```

use std::path::Path;

use prost::Message;
pub use tract_onnx::pb;

/// The opset [`GraphBuilder::new`] uses.
pub const DEFAULT_OPSET: i64 = 13;
/// The IR version written (IR 8 covers opsets up to 18).
pub const IR_VERSION: i64 = 8;

/// One dimension of a declared input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic (dynamic) size, e.g. a batch named "N".
    Sym(String),
}

impl Dim {
    /// A symbolic dim.
    pub fn sym(name: impl Into<String>) -> Self {
        Dim::Sym(name.into())
    }
}

impl From<usize> for Dim {
    fn from(v: usize) -> Self {
        Dim::Fixed(v)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Sym(s.to_string())
    }
}

/// Turns a list of fixed sizes into dims.
pub fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// INT
    Int(i64),
    /// INTS
    Ints(Vec<i64>),
    /// FLOAT
    Float(f32),
    /// FLOATS
    Floats(Vec<f32>),
    /// STRING
    Str(String),
    /// GRAPH (e.g. the branches of `If`; build them with [`GraphBuilder::graph`]).
    Graph(Box<pb::GraphProto>),
}

/// An error in the data given to the builder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// An initializer's data length does not match its shape.
    #[error("initializer {name:?}: shape {shape:?} needs {expected} values, got {got}")]
    DataLength {
        /// Initializer name.
        name: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
}

/// Builds one ONNX graph (single default-domain opset).
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: pb::GraphProto,
    opset: i64,
    node_count: usize,
}

impl GraphBuilder {
    /// A new empty graph with opset [`DEFAULT_OPSET`].
    pub fn new(name: impl Into<String>) -> Self {
        GraphBuilder {
            graph: pb::GraphProto {
                name: name.into(),
                ..Default::default()
            },
            opset: DEFAULT_OPSET,
            node_count: 0,
        }
    }

    /// Sets the default-domain opset version.
    pub fn set_opset(&mut self, version: i64) -> &mut Self {
        self.opset = version;
        self
    }

    /// Adds an f32 constant tensor (weights).
    pub fn initializer(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<&mut Self, BuildError> {
        let name = name.into();
        check_len(&name, shape, data.len())?;
        self.graph.initializer.push(pb::TensorProto {
            name,
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(self)
    }

    /// Adds an i64 constant tensor (e.g. the shape input of Reshape).
    pub fn initializer_i64(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        data: Vec<i64>,
    ) -> Result<&mut Self, BuildError> {
        let name = name.into();
        check_len(&name, shape, data.len())?;
        self.graph.initializer.push(pb::TensorProto {
            name,
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(self)
    }

    /// Adds a node. Its name is derived from its first output. An empty input name
    /// stands for an omitted optional input.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[(&str, Attr)],
    ) -> &mut Self {
        self.node_count += 1;
        let name = match outputs.first() {
            Some(o) if !o.is_empty() => format!("{op_type}_{o}"),
            _ => format!("{op_type}_{}", self.node_count),
        };
        self.graph.node.push(pb::NodeProto {
            name,
            op_type: op_type.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
        self
    }

    /// Declares a graph input of element type f32.
    pub fn input(&mut self, name: impl Into<String>, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(value_info(name.into(), Some(dims)));
        self
    }

    /// Declares a graph input of element type i64 (`dims` empty for a scalar).
    pub fn input_i64(&mut self, name: impl Into<String>, dims: &[Dim]) -> &mut Self {
        self.input_typed(name, dims, pb::tensor_proto::DataType::Int64)
    }

    /// Declares a graph input of element type `ty`.
    pub fn input_typed(
        &mut self,
        name: impl Into<String>,
        dims: &[Dim],
        ty: pb::tensor_proto::DataType,
    ) -> &mut Self {
        let mut info = value_info(name.into(), Some(dims));
        if let Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(t)),
            ..
        }) = info.r#type.as_mut()
        {
            t.elem_type = ty as i32;
        }
        self.graph.input.push(info);
        self
    }

    /// Annotates an intermediate tensor's shape (`graph.value_info`), as
    /// exporters do, often with their own symbolic dims.
    pub fn annotate(&mut self, name: impl Into<String>, dims: &[Dim]) -> &mut Self {
        self.graph
            .value_info
            .push(value_info(name.into(), Some(dims)));
        self
    }

    /// Declares a graph output of element type f32 with a shape.
    pub fn output(&mut self, name: impl Into<String>, dims: &[Dim]) -> &mut Self {
        self.graph.output.push(value_info(name.into(), Some(dims)));
        self
    }

    /// Declares a graph output of element type f32 whose shape is left to inference.
    pub fn output_unshaped(&mut self, name: impl Into<String>) -> &mut Self {
        self.graph.output.push(value_info(name.into(), None));
        self
    }

    /// The graph alone (for a subgraph attribute, [`Attr::Graph`]).
    pub fn graph(&self) -> pb::GraphProto {
        self.graph.clone()
    }

    /// The model protobuf.
    pub fn to_model(&self) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "rtmdl-engine".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
    }

    /// The encoded `.onnx` bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.to_model().encode_to_vec()
    }

    /// Writes the encoded model to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.encode())
    }
}

fn check_len(name: &str, shape: &[usize], got: usize) -> Result<(), BuildError> {
    let expected: usize = shape.iter().product();
    if expected == got {
        Ok(())
    } else {
        Err(BuildError::DataLength {
            name: name.to_string(),
            shape: shape.to_vec(),
            expected,
            got,
        })
    }
}

fn attribute(name: &str, a: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType as T;
    let mut p = pb::AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match a {
        Attr::Int(v) => {
            p.r#type = T::Int as i32;
            p.i = *v;
        }
        Attr::Ints(v) => {
            p.r#type = T::Ints as i32;
            p.ints = v.clone();
        }
        Attr::Float(v) => {
            p.r#type = T::Float as i32;
            p.f = *v;
        }
        Attr::Floats(v) => {
            p.r#type = T::Floats as i32;
            p.floats = v.clone();
        }
        Attr::Str(v) => {
            p.r#type = T::String as i32;
            p.s = v.as_bytes().to_vec();
        }
        Attr::Graph(g) => {
            p.r#type = T::Graph as i32;
            p.g = Some((**g).clone());
        }
    }
    p
}

fn value_info(name: String, dims: Option<&[Dim]>) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let shape = dims.map(|dims| pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(v) => Value::DimValue(*v as i64),
                    Dim::Sym(s) => Value::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    });
    pb::ValueInfoProto {
        name,
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_decodes() {
        let mut g = GraphBuilder::new("t");
        g.input("x", &[Dim::sym("N"), 3.into()]);
        g.initializer("b", &[3], vec![1.0, 2.0, 3.0]).unwrap();
        g.node("Add", &["x", "b"], &["y"], &[]);
        g.output("y", &[Dim::sym("N"), 3.into()]);
        let m = pb::ModelProto::decode(g.encode().as_slice()).unwrap();
        let graph = m.graph.unwrap();
        assert_eq!(graph.node[0].op_type, "Add");
        assert_eq!(m.opset_import[0].version, 13);
        assert_eq!(graph.initializer[0].raw_data.len(), 12);
    }

    #[test]
    fn wrong_data_length_is_an_error() {
        let mut g = GraphBuilder::new("t");
        let err = g.initializer("w", &[2, 2], vec![0.0; 3]).unwrap_err();
        assert!(err.to_string().contains("needs 4 values, got 3"));
    }
}
