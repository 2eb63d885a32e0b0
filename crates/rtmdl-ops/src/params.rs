//! Parameter parsing and small shared helpers.

use serde::de::DeserializeOwned;

use crate::OpError;

/// Deserializes `params` into `T` (which should be
/// `#[serde(deny_unknown_fields)]`), naming the failing parameter.
pub(crate) fn parse<T: DeserializeOwned>(
    function: &str,
    params: &toml::Table,
) -> Result<T, OpError> {
    let value = toml::Value::Table(params.clone());
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let msg = err.inner().to_string();
        let msg = msg.trim();
        let (param, expected) = describe(&path, msg);
        OpError::BadParam {
            function: function.to_string(),
            param,
            expected,
        }
    })
}

/// Turns a serde error (path + message) into `(param, expected)`.
fn describe(path: &str, msg: &str) -> (String, String) {
    let quoted = |prefix: &str| -> Option<String> {
        let rest = &msg[msg.find(prefix)? + prefix.len()..];
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    };
    if let Some(name) = quoted("unknown field `") {
        let expected = match msg.find("expected ") {
            Some(i) => format!("{} (`{name}` is not a parameter)", &msg[i + 9..]),
            None => format!("no parameter named `{name}`"),
        };
        return (name, expected);
    }
    if let Some(name) = quoted("missing field `") {
        let name = if path.is_empty() || path == "." {
            name
        } else {
            format!("{path}.{name}")
        };
        return (name, "a value (this parameter is required)".to_string());
    }
    let param = if path.is_empty() || path == "." {
        "?".to_string()
    } else {
        path.to_string()
    };
    let expected = match msg.rfind(", expected ") {
        Some(i) => format!("{} (got {})", &msg[i + 11..], &msg[..i]),
        None => msg.to_string(),
    };
    (param, expected)
}

/// A `BadParam` for a value that deserialized but is out of range.
pub(crate) fn bad(function: &str, param: &str, expected: impl Into<String>) -> OpError {
    OpError::BadParam {
        function: function.to_string(),
        param: param.to_string(),
        expected: expected.into(),
    }
}

/// A `BadInput`.
pub(crate) fn bad_input(function: &str, reason: impl Into<String>) -> OpError {
    OpError::BadInput {
        function: function.to_string(),
        reason: reason.into(),
    }
}

/// The known name nearest to `name`, if it is close enough to be a typo.
pub(crate) fn nearest(name: &str, known: &[&str]) -> Option<String> {
    rtmdl_core::names::nearest(name, known.iter().copied()).map(String::from)
}

/// The first tensor of `input`, or a `BadInput` naming what was expected.
pub(crate) fn first(
    function: &str,
    input: &[ndarray::ArrayD<f32>],
    what: &str,
) -> Result<(), OpError> {
    if input.is_empty() {
        Err(bad_input(
            function,
            format!("expected {what} as the first tensor, got no tensors"),
        ))
    } else {
        Ok(())
    }
}

/// Checks that a frame tensor is `[H, W, 3]` with `H, W > 0`.
pub(crate) fn frame_dims(
    function: &str,
    frame: &ndarray::ArrayD<f32>,
) -> Result<(usize, usize), OpError> {
    match frame.shape() {
        [h, w, 3] if *h > 0 && *w > 0 => Ok((*h, *w)),
        s => Err(bad_input(
            function,
            format!("expected a frame [H, W, 3] with H, W > 0, got shape {s:?}"),
        )),
    }
}

/// Whether the tensor looks like a frame `[H, W, 3]`.
pub(crate) fn is_frame(t: &ndarray::ArrayD<f32>) -> bool {
    matches!(t.shape(), [h, w, 3] if *h > 0 && *w > 0)
}

/// Whether the tensor looks like a box list `[N, 6]`.
pub(crate) fn is_boxes(t: &ndarray::ArrayD<f32>) -> bool {
    matches!(t.shape(), [_, 6])
}

/// Returns `shape` as a string for messages.
pub(crate) fn shape_str(t: &ndarray::ArrayD<f32>) -> String {
    format!("{:?}", t.shape())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        width: usize,
        #[serde(default)]
        mean: [f32; 3],
        #[serde(default)]
        flag: bool,
    }

    fn err(src: &str) -> (String, String, String) {
        match parse::<P>("f", &src.parse().unwrap()).unwrap_err() {
            OpError::BadParam {
                function,
                param,
                expected,
            } => (function, param, expected),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_and_converts_integers_to_floats() {
        let p: P = parse("f", &"width = 3\nmean = [1, 2.5, 3]".parse().unwrap()).unwrap();
        assert_eq!(p.width, 3);
        assert_eq!(p.mean, [1.0, 2.5, 3.0]);
    }

    #[test]
    fn names_the_bad_parameter() {
        let (f, p, e) = err("width = \"big\"");
        assert_eq!((f.as_str(), p.as_str()), ("f", "width"));
        assert!(e.contains("usize"), "{e}");
        let (_, p, e) = err("width = 2\nflag = 3");
        assert_eq!(p, "flag");
        assert!(e.contains("bool"), "{e}");
        let (_, p, _) = err("width = -1");
        assert_eq!(p, "width");
        let (_, p, e) = err("width = 2\nmean = [1, 2]");
        assert_eq!(p, "mean");
        assert!(e.contains('3'), "{e}");
    }

    #[test]
    fn names_unknown_and_missing_parameters() {
        let (_, p, e) = err("width = 1\nwidht = 2");
        assert_eq!(p, "widht");
        assert!(e.contains("width") && e.contains("not a parameter"), "{e}");
        let (_, p, e) = err("");
        assert_eq!(p, "width");
        assert!(e.contains("required"), "{e}");
    }
}
