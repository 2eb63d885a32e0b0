//! Typed tensors for models with several inputs or non-f32 inputs.
//!
//! A model input may be of any [`DType`]: f32, f16, f64, i64, i32, i8, u8 or
//! bool. The data handed to a session is carried as `f32` or `i64` (a
//! [`Tensor`] owns it, a [`TensorView`] borrows it: what
//! [`Session::run_many`](crate::Session::run_many) takes, so a caller's arrays
//! are not copied to be passed in); each engine casts it to the input's
//! declared type at the boundary ([`DType::accepts`] says which carriers an
//! input takes). Outputs come back as `f32`, or `i64` for int64 outputs.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// The element types a model input may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (ONNX `FLOAT`).
    F32,
    /// 16-bit float (ONNX `FLOAT16`).
    F16,
    /// 64-bit float (ONNX `DOUBLE`).
    F64,
    /// 64-bit signed integer (ONNX `INT64`).
    I64,
    /// 32-bit signed integer (ONNX `INT32`).
    I32,
    /// 8-bit signed integer (ONNX `INT8`).
    I8,
    /// 8-bit unsigned integer (ONNX `UINT8`).
    U8,
    /// Boolean (ONNX `BOOL`), carried as 0 / 1.
    Bool,
}

impl DType {
    /// Every supported type.
    pub const ALL: [DType; 8] = [
        DType::F32,
        DType::F16,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];

    /// The ONNX name: "FLOAT", "INT64", ...
    pub fn onnx_name(self) -> &'static str {
        match self {
            DType::F32 => "FLOAT",
            DType::F16 => "FLOAT16",
            DType::F64 => "DOUBLE",
            DType::I64 => "INT64",
            DType::I32 => "INT32",
            DType::I8 => "INT8",
            DType::U8 => "UINT8",
            DType::Bool => "BOOL",
        }
    }

    /// The type of an ONNX `TensorProto.DataType` code, if supported (0,
    /// undeclared, is taken as f32).
    pub fn from_onnx(code: i32) -> Option<DType> {
        use tract_onnx::pb::tensor_proto::DataType as D;
        if code == 0 {
            return Some(DType::F32);
        }
        Some(match D::try_from(code).ok()? {
            D::Float => DType::F32,
            D::Float16 => DType::F16,
            D::Double => DType::F64,
            D::Int64 => DType::I64,
            D::Int32 => DType::I32,
            D::Int8 => DType::I8,
            D::Uint8 => DType::U8,
            D::Bool => DType::Bool,
            _ => return None,
        })
    }

    /// Whether the type holds whole numbers (integers and bool).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool
        )
    }

    /// The carrier its data travels in: `i64` for integer types, else `f32`.
    pub fn carrier(self) -> DType {
        if self.is_integer() {
            DType::I64
        } else {
            DType::F32
        }
    }

    /// Whether an input of this type takes a tensor of type `given`: its
    /// own type, or a carrier cast at the engine's boundary (`f32` for any
    /// input — integer types convert with Rust's `as`, toward zero and
    /// saturating; `i64` for integer inputs).
    pub fn accepts(self, given: DType) -> bool {
        given == self || given == DType::F32 || (given == DType::I64 && self.is_integer())
    }

    /// The whole-number range of an integer type.
    fn range(self) -> Option<(f64, f64)> {
        match self {
            DType::I64 => Some((i64::MIN as f64, i64::MAX as f64)),
            DType::I32 => Some((i32::MIN as f64, i32::MAX as f64)),
            DType::I8 => Some((-128.0, 127.0)),
            DType::U8 => Some((0.0, 255.0)),
            DType::Bool => Some((0.0, 1.0)),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        })
    }
}

/// An owned tensor of one of the supported element types.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    /// `f32` data.
    F32(ArrayD<f32>),
    /// `i64` data.
    I64(ArrayD<i64>),
}

impl Tensor {
    /// A tensor of zeros, in `dtype`'s carrier.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Self {
        match dtype.carrier() {
            DType::I64 => Tensor::I64(ArrayD::zeros(IxDyn(shape))),
            _ => Tensor::F32(ArrayD::zeros(IxDyn(shape))),
        }
    }

    /// A tensor with every element equal to `value`, for an input of type
    /// `dtype` (in its carrier). For an integer type the value must be a
    /// whole number in the type's range (0 or 1 for bool); for a float type
    /// it must be finite in it. The error says what is wrong with the value.
    pub fn filled(dtype: DType, shape: &[usize], value: f64) -> Result<Self, String> {
        if let Some((lo, hi)) = dtype.range() {
            // i64::MAX as f64 rounds up to 2^63, which is out of range.
            let top_ok = if dtype == DType::I64 {
                value < hi
            } else {
                value <= hi
            };
            return if value.fract() == 0.0 && value >= lo && top_ok {
                Ok(Tensor::I64(ArrayD::from_elem(IxDyn(shape), value as i64)))
            } else {
                Err(format!(
                    "{value} is not a whole number in the {dtype} range"
                ))
            };
        }
        let max = match dtype {
            DType::F16 => 65504.0,
            DType::F64 => f64::MAX,
            _ => f32::MAX as f64,
        };
        if value.is_finite() && value.abs() <= max {
            Ok(Tensor::F32(ArrayD::from_elem(IxDyn(shape), value as f32)))
        } else {
            Err(format!("{value} is not a finite {dtype}"))
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::I64(_) => DType::I64,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_> {
        match self {
            Tensor::F32(a) => TensorView::F32(a.view()),
            Tensor::I64(a) => TensorView::I64(a.view()),
        }
    }

    /// The data as `f32` (`i64` values are converted with `as`, exact up to 2^24).
    pub fn into_f32(self) -> ArrayD<f32> {
        match self {
            Tensor::F32(a) => a,
            Tensor::I64(a) => a.mapv(|v| v as f32),
        }
    }

    /// The `f32` data, if this is an `f32` tensor.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            Tensor::I64(_) => None,
        }
    }

    /// The `i64` data, if this is an `i64` tensor.
    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            Tensor::F32(_) => None,
        }
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(a: ArrayD<f32>) -> Self {
        Tensor::F32(a)
    }
}

impl From<ArrayD<i64>> for Tensor {
    fn from(a: ArrayD<i64>) -> Self {
        Tensor::I64(a)
    }
}

/// A borrowed tensor of one of the supported element types.
#[derive(Debug, Clone)]
pub enum TensorView<'a> {
    /// `f32` data.
    F32(ArrayViewD<'a, f32>),
    /// `i64` data.
    I64(ArrayViewD<'a, i64>),
}

impl TensorView<'_> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorView::F32(_) => DType::F32,
            TensorView::I64(_) => DType::I64,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            TensorView::F32(a) => a.shape(),
            TensorView::I64(a) => a.shape(),
        }
    }
}

impl<'a> From<&'a ArrayD<f32>> for TensorView<'a> {
    fn from(a: &'a ArrayD<f32>) -> Self {
        TensorView::F32(a.view())
    }
}

impl<'a> From<&'a ArrayD<i64>> for TensorView<'a> {
    fn from(a: &'a ArrayD<i64>) -> Self {
        TensorView::I64(a.view())
    }
}

impl<'a> From<ArrayViewD<'a, f32>> for TensorView<'a> {
    fn from(a: ArrayViewD<'a, f32>) -> Self {
        TensorView::F32(a)
    }
}

impl<'a> From<ArrayViewD<'a, i64>> for TensorView<'a> {
    fn from(a: ArrayViewD<'a, i64>) -> Self {
        TensorView::I64(a)
    }
}

impl<'a> From<&'a Tensor> for TensorView<'a> {
    fn from(t: &'a Tensor) -> Self {
        t.view()
    }
}

/// One input of a loaded model: name, element type and the concrete shape the session
/// was prepared for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputInfo {
    /// The graph input name.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The fixed shape.
    pub shape: Vec<usize>,
}

/// A value for a model input that is fixed when the model is loaded
/// ([`ModelSpec::constants`](crate::ModelSpec::constants)).
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    /// Every element equals `value`, converted to the input's declared element type
    /// (for an integer input it must be a whole number). The shape is `shape`, or the
    /// model's declared shape when `None` (which must then be fully known; a scalar
    /// input declares `[]`).
    Fill {
        /// The value.
        value: f64,
        /// The shape, when the model's is dynamic or to be checked.
        shape: Option<Vec<usize>>,
    },
    /// An exact tensor; its element type and shape must agree with the declaration.
    Tensor(Tensor),
}

impl InputValue {
    /// A `Fill` with the model's declared shape.
    pub fn scalar(value: f64) -> Self {
        InputValue::Fill { value, shape: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_converts_and_checks() {
        let t = Tensor::filled(DType::I64, &[], 16000.0).unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(
            t.as_i64().unwrap().iter().copied().collect::<Vec<_>>(),
            [16000]
        );
        assert!(Tensor::filled(DType::I64, &[1], 0.5).is_err());
        assert!(Tensor::filled(DType::I64, &[1], 1e30).is_err());
        assert!(Tensor::filled(DType::F32, &[1], f64::NAN).is_err());
        assert!(Tensor::filled(DType::F32, &[1], 1e300).is_err());
        let t = Tensor::filled(DType::F32, &[2, 3], -1.5).unwrap();
        assert_eq!(t.dtype(), DType::F32);
        assert!(t.as_f32().unwrap().iter().all(|v| *v == -1.5));
    }

    #[test]
    fn into_f32_converts_integers() {
        let t = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![3, -4]).unwrap());
        assert_eq!(
            t.into_f32().iter().copied().collect::<Vec<_>>(),
            [3.0, -4.0]
        );
    }
}
