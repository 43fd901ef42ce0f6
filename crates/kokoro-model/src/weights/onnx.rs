//! Importer for the Kokoro ONNX exports (int8 dynamic-quantized and float32).
//!
//! Names and transforms come from `data/onnx_mapping.tsv` (all 775 initializers of the int8
//! export, with the PyTorch tensor each one becomes); quantization parameters are read from the
//! graph itself. Zero points in particular are taken from the consuming `ConvInteger` /
//! `MatMulInteger` node's fourth input, because the export de-duplicates zero-point tensors by
//! value and shares them between unrelated layers.
//!
//! The float32 export carries the same initializer names without the `_quantized` suffix; the
//! importer accepts either, per tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost::Message;

use super::{LoadError, QTensor, WeightSet, io_err};

/// The name mapping, shipped inside the crate.
const MAPPING_TSV: &str = include_str!("../../data/onnx_mapping.tsv");

// The few ONNX protobuf messages and fields the importer reads (onnx.proto, field numbers as
// upstream). prost skips every other field.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    int32_data: Vec<i32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// ONNX LSTM gate blocks are i, o, f, c; PyTorch's are i, f, g(=c), o: PyTorch block `j` is ONNX
/// block `LSTM_GATE_ORDER[j]`.
const LSTM_GATE_ORDER: [usize; 4] = [0, 2, 3, 1];

struct Graph {
    inits: HashMap<String, TensorProto>,
    nodes: HashMap<String, NodeProto>,
}

/// One row of the mapping table that yields model tensors.
struct Row<'a> {
    onnx: &'a str,
    transform: &'a str,
    consumer_op: &'a str,
    consumer_node: &'a str,
    torch: &'a str,
}

/// Reads an ONNX export of Kokoro-82M v1.0 into a [`WeightSet`] (quantized tensors stay quantized).
pub fn import_onnx(path: &Path) -> Result<WeightSet, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    import_onnx_bytes(&bytes, &path.display().to_string())
}

/// Reads an ONNX export already in memory; `what` names it in errors, and its last path component
/// becomes the weight set's source.
pub fn import_onnx_bytes(bytes: &[u8], what: &str) -> Result<WeightSet, LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt { path: what.to_string(), format: "ONNX", reason };
    let model = ModelProto::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    let graph = model.graph.ok_or_else(|| corrupt("no graph".into()))?;
    if graph.initializer.is_empty() {
        return Err(corrupt("the graph has no initializers".into()));
    }
    let graph = Graph {
        inits: graph.initializer.into_iter().map(|t| (t.name.clone(), t)).collect(),
        nodes: graph.node.into_iter().map(|n| (n.name.clone(), n)).collect(),
    };
    let name = Path::new(what).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tensors = BTreeMap::new();
    let mut missing = Vec::new();
    for row in mapping_rows() {
        match import_row(&graph, &row) {
            Ok(list) => tensors.extend(list),
            Err(RowError::Missing(n)) => missing.push(n),
            Err(RowError::Bad(reason)) => return Err(corrupt(format!("{}: {reason}", row.onnx))),
        }
    }
    if !missing.is_empty() {
        return Err(LoadError::Mismatch(format!(
            "the ONNX graph lacks {} initializer(s) of Kokoro-82M v1.0: {}",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(WeightSet { tensors, source: format!("{name} (ONNX)") })
}

fn mapping_rows() -> impl Iterator<Item = Row<'static>> {
    MAPPING_TSV.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 || f[7] == "-" || f[0] == "(none)" {
            return None;
        }
        // The consumer column may carry a note: "node (+11 more: ALBERT layer shared x12)".
        let consumer_node = f[6].split(" (").next().unwrap_or(f[6]);
        Some(Row { onnx: f[0], transform: f[4], consumer_op: f[5], consumer_node, torch: f[7] })
    })
}

enum RowError {
    Missing(String),
    Bad(String),
}

fn import_row(g: &Graph, row: &Row) -> Result<Vec<(String, QTensor)>, RowError> {
    // The float export names the plain weight without `_quantized`.
    let quantized = g.inits.contains_key(row.onnx);
    let plain = row.onnx.strip_suffix("_quantized").unwrap_or(row.onnx);
    let init = g
        .inits
        .get(row.onnx)
        .or_else(|| g.inits.get(plain))
        .ok_or_else(|| RowError::Missing(row.onnx.to_string()))?;
    let torch = row.torch.replace(".parametrizations.weight.original{0,1}", ".weight");
    // Issue 12: a negative dimension cast to usize would be enormous.
    let dims: Vec<usize> = init
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| RowError::Bad(format!("negative dimension in shape {:?}", init.dims)))?;
    let is_quant = quantized && row.onnx.ends_with("_quantized");
    let scale = |g: &Graph| -> Result<Vec<f32>, RowError> {
        let name = format!("{plain}_scale");
        let t = g.inits.get(&name).ok_or_else(|| RowError::Bad(format!("no scale tensor {name}")))?;
        floats(t)
    };

    if row.consumer_op == "DynamicQuantizeLSTM" || row.consumer_op == "LSTM" {
        return lstm_tensors(g, init, &dims, &torch, row, is_quant, scale);
    }

    let tensor = if !is_quant {
        let data = floats(init)?;
        match row.transform {
            "transpose" | "transpose [in,out]->[out,in]" => {
                let (r, c) = matrix(&dims, data.len())?;
                QTensor::F32 { shape: vec![c, r], data: transpose(&data, r, c) }
            }
            _ => QTensor::F32 { shape: dims, data },
        }
    } else {
        match (init.data_type, row.consumer_op) {
            (INT8, "MatMulInteger") => {
                // [in, out] with one scale per output column -> [out, in] with one scale per row.
                let (r, c) = matrix(&dims, init.raw_data.len())?;
                // One zero point per output column, or one for all.
                let zp = consumer_zero_point(g, row, c.max(1))?;
                if zp.iter().any(|&z| z != 0) {
                    return Err(RowError::Bad("asymmetric int8 MatMul weights are not supported".into()));
                }
                let q: Vec<i8> = init.raw_data.iter().map(|&b| b as i8).collect();
                let scale = scale(g)?;
                if scale.len() != c {
                    return Err(RowError::Bad(format!("{} scales for {c} output columns", scale.len())));
                }
                QTensor::I8 { shape: vec![c, r], data: transpose(&q, r, c), scale }
            }
            (INT8, "Gather") => {
                let scale = scale(g)?;
                QTensor::I8 { shape: dims, data: init.raw_data.iter().map(|&b| b as i8).collect(), scale }
            }
            (UINT8, "ConvInteger") => {
                let zp = consumer_zero_point(g, row, 1)?;
                let [zero_point] = zp[..] else {
                    return Err(RowError::Bad(format!("expected one conv zero point, got {}", zp.len())));
                };
                let zero_point = u8::try_from(zero_point)
                    .map_err(|_| RowError::Bad(format!("conv zero point {zero_point} is outside uint8")))?;
                let scale = scale(g)?;
                let [scale] = scale[..] else {
                    return Err(RowError::Bad(format!("expected one conv scale, got {}", scale.len())));
                };
                QTensor::U8 { shape: dims, data: init.raw_data.clone(), scale, zero_point }
            }
            (t, op) => return Err(RowError::Bad(format!("unexpected element type {t} for a {op} weight"))),
        }
    };
    check_len(&tensor, &torch)?;
    Ok(vec![(torch, tensor)])
}

/// Splits one ONNX LSTM initializer into PyTorch's per-direction tensors.
fn lstm_tensors(
    g: &Graph,
    init: &TensorProto,
    dims: &[usize],
    torch: &str,
    row: &Row,
    is_quant: bool,
    scale: impl Fn(&Graph) -> Result<Vec<f32>, RowError>,
) -> Result<Vec<(String, QTensor)>, RowError> {
    let base = torch.split(".bias_{").next().unwrap_or(torch);
    let base = base.split(".weight_").next().unwrap_or(base);
    let mut out = Vec::new();
    if row.transform.starts_with("B[d") {
        // B [2, 8H] = [input bias | recurrent bias] per direction, each four gate blocks of H.
        // Issue 12: the width and the length are checked before the slicing below relies on them.
        let data = floats(init)?;
        let &[2, width] = dims else { return Err(RowError::Bad(format!("bias shape {dims:?}"))) };
        if !width.is_multiple_of(8) {
            return Err(RowError::Bad(format!("LSTM bias shape {dims:?} is not [2, 8 x hidden]")));
        }
        if Some(data.len()) != width.checked_mul(2) {
            return Err(RowError::Bad(format!("{} values for LSTM bias shape {dims:?}", data.len())));
        }
        let half = width / 2;
        for (d, suffix) in ["", "_reverse"].iter().enumerate() {
            let b = &data[d * width..(d + 1) * width];
            out.push((format!("{base}.bias_ih_l0{suffix}"), QTensor::F32 { shape: vec![half], data: reorder_gates(&b[..half], half / 4, 1) }));
            out.push((format!("{base}.bias_hh_l0{suffix}"), QTensor::F32 { shape: vec![half], data: reorder_gates(&b[half..], half / 4, 1) }));
        }
        return Ok(out);
    }
    // W [2, in, 4H] or R [2, H, 4H] -> per direction [4H, in] with PyTorch's gate order.
    // Issue 12: the shape, the length and the scales are checked before the slicing below.
    let &[2, rows, cols] = dims else { return Err(RowError::Bad(format!("LSTM weight shape {dims:?}"))) };
    if !cols.is_multiple_of(4) {
        return Err(RowError::Bad(format!("LSTM weight shape {dims:?} is not [2, n, 4 x hidden]")));
    }
    let kind = if row.transform.starts_with("W[") { "ih" } else { "hh" };
    if is_quant && init.data_type != INT8 {
        return Err(RowError::Bad(format!("expected int8, got element type {}", init.data_type)));
    }
    let floats = if is_quant { Vec::new() } else { floats(init)? };
    let len = if is_quant { init.raw_data.len() } else { floats.len() };
    let per = rows.checked_mul(cols).filter(|per| per.checked_mul(2) == Some(len));
    let Some(per) = per else { return Err(RowError::Bad(format!("{len} values for LSTM weight shape {dims:?}"))) };
    let scales = if is_quant { scale(g)? } else { vec![1.0, 1.0] };
    if scales.len() != 2 {
        return Err(RowError::Bad(format!("{} scales for 2 directions", scales.len())));
    }
    for (d, suffix) in ["", "_reverse"].iter().enumerate() {
        let name = format!("{base}.weight_{kind}_l0{suffix}");
        let shape = vec![cols, rows];
        let range = d * per..(d + 1) * per;
        let t = if is_quant {
            let q: Vec<i8> = init.raw_data[range].iter().map(|&b| b as i8).collect();
            QTensor::I8 { shape, data: reorder_gates(&transpose(&q, rows, cols), cols / 4, rows), scale: vec![scales[d]] }
        } else {
            QTensor::F32 { shape, data: reorder_gates(&transpose(&floats[range], rows, cols), cols / 4, rows) }
        };
        check_len(&t, &name)?;
        out.push((name, t));
    }
    Ok(out)
}

/// Reorders four gate blocks of `block` rows (of `width` values each) from ONNX to PyTorch order.
fn reorder_gates<T: Copy>(data: &[T], block: usize, width: usize) -> Vec<T> {
    let n = block * width;
    LSTM_GATE_ORDER.iter().flat_map(|&src| data[src * n..(src + 1) * n].iter().copied()).collect()
}

/// The zero point(s) from the consuming node's fourth input, at most `max` of them.
///
/// Issue 12: nodes name their zero points freely, so every row of a hostile file could name one
/// huge tensor; refusing more than the weight can use keeps each copy small.
fn consumer_zero_point(g: &Graph, row: &Row, max: usize) -> Result<Vec<i32>, RowError> {
    let node = g.nodes.get(row.consumer_node).ok_or_else(|| RowError::Bad(format!("no node {}", row.consumer_node)))?;
    let zp_name = node.input.get(3).filter(|n| !n.is_empty());
    let Some(zp_name) = zp_name else { return Ok(vec![0]) };
    let t = g.inits.get(zp_name).ok_or_else(|| RowError::Bad(format!("no zero point {zp_name}")))?;
    let count = if t.raw_data.is_empty() { t.int32_data.len() } else { t.raw_data.len() };
    if count > max {
        return Err(RowError::Bad(format!("zero point {zp_name} has {count} values, more than the {max} the weight uses")));
    }
    // Small integer tensors may be stored in `int32_data` instead of `raw_data`.
    if t.raw_data.is_empty() {
        return Ok(t.int32_data.clone());
    }
    Ok(match t.data_type {
        UINT8 => t.raw_data.iter().map(|&b| b as i32).collect(),
        INT8 => t.raw_data.iter().map(|&b| b as i8 as i32).collect(),
        other => return Err(RowError::Bad(format!("zero point {zp_name} has element type {other}"))),
    })
}

fn floats(t: &TensorProto) -> Result<Vec<f32>, RowError> {
    if t.data_location == 1 {
        return Err(RowError::Bad("external data is not supported; use a self-contained .onnx".into()));
    }
    if t.data_type != FLOAT {
        return Err(RowError::Bad(format!("expected float32, got element type {}", t.data_type)));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return Err(RowError::Bad("raw float data is not a multiple of 4 bytes".into()));
    }
    Ok(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// The rows and columns of a matrix holding `len` values. Issue 12: checked before `transpose`
/// indexes by them.
fn matrix(dims: &[usize], len: usize) -> Result<(usize, usize), RowError> {
    let &[r, c] = dims else { return Err(RowError::Bad(format!("expected a matrix, got shape {dims:?}"))) };
    if r.checked_mul(c) != Some(len) {
        return Err(RowError::Bad(format!("{len} values for shape {dims:?}")));
    }
    Ok((r, c))
}

fn transpose<T: Copy>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    for c in 0..cols {
        for r in 0..rows {
            out.push(data[r * cols + c]);
        }
    }
    out
}

fn check_len(t: &QTensor, name: &str) -> Result<(), RowError> {
    t.validate(name).map_err(RowError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_reorder_moves_output_gate_last() {
        // ONNX blocks [i, o, f, c] = [0, 1, 2, 3] -> PyTorch [i, f, g, o] = [0, 2, 3, 1].
        assert_eq!(reorder_gates(&[0, 1, 2, 3], 1, 1), vec![0, 2, 3, 1]);
    }

    #[test]
    fn mapping_covers_every_model_tensor_once() {
        let rows: Vec<_> = mapping_rows().collect();
        // 569 mapped rows minus 140 KModel defaults (InstanceNorm affine ones/zeros) and 2 pooler
        // rows without an initializer leave the initializers we read.
        assert!(rows.iter().all(|r| r.transform != "ones" && r.transform != "zeros"));
        assert!(rows.len() > 400, "{} rows", rows.len());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("kokoro-onnx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.onnx");
        std::fs::write(&p, b"this is not protobuf at all \xff\xff\xff").unwrap();
        let e = import_onnx(&p).unwrap_err().to_string();
        assert!(e.contains("not a valid ONNX file"), "{e}");
    }
}
