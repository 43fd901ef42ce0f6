//! Issue 12 ("hostile input"): every weight reader refuses a malformed file with a typed error that
//! names the tensor and the problem; none panics, and none allocates more than the file can back.
//!
//! Each hostile file is built here from bytes: ONNX protobuf encoded by hand, canonical
//! safetensors through the safetensors crate, and `.pth` checkpoints as `torch.save` lays them out
//! (a zip of `archive/data.pkl`, a protocol-2 pickle, and raw storages under `archive/data/`, see
//! `scripts/make_test_pth.py`). The valid builders also make the fuzz seeds:
//! `KOKORO_WRITE_FUZZ_SEEDS=1 cargo test -p kokoro-model --test hostile_weights seeds` rewrites
//! `fuzz/seeds/weights_*`.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::PathBuf;

use kokoro_model::LoadError;
use kokoro_model::weights::{QTensor, WeightSet, import_onnx_bytes, import_pth, import_pth_bytes, read_canonical_bytes};
use safetensors::tensor::{Dtype, TensorView};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// The reason of a `Corrupt` error; any other outcome fails the test with what happened instead.
fn corrupt_reason(result: Result<WeightSet, LoadError>) -> String {
    match result {
        Err(LoadError::Corrupt { reason, .. }) => reason,
        Err(other) => panic!("expected a Corrupt error, got {other}"),
        Ok(w) => panic!("expected a Corrupt error, got {} tensors: {:?}", w.tensors.len(), w.tensors.keys().collect::<Vec<_>>()),
    }
}

/// The text of a `Mismatch` error (weights that parse but cannot be Kokoro's).
fn mismatch_reason(result: Result<WeightSet, LoadError>) -> String {
    match result {
        Err(LoadError::Mismatch(reason)) => reason,
        Err(other) => panic!("expected a Mismatch error, got {other}"),
        Ok(w) => panic!("expected a Mismatch error, got {} tensors: {:?}", w.tensors.len(), w.tensors.keys().collect::<Vec<_>>()),
    }
}

fn assert_mentions(reason: &str, parts: &[&str]) {
    for part in parts {
        assert!(reason.contains(part), "{reason:?} does not mention {part:?}");
    }
}

/// What loading does after reading: every tensor dequantized (`WeightSet::into_model` without the
/// 82M-parameter module).
fn dequantize_all(w: &WeightSet) {
    for (name, t) in &w.tensors {
        let n: usize = t.shape().iter().product();
        assert_eq!(t.dequantize().len(), n, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// ONNX: the few protobuf fields the importer reads (onnx.proto field numbers).
// ---------------------------------------------------------------------------------------------

mod onnx {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3);
        varint(out, v);
    }

    fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;

    /// A TensorProto with its values in `raw_data`.
    pub fn tensor(name: &str, dims: &[i64], data_type: i32, raw: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            field_varint(&mut t, 1, d as u64); // negative int64s are 10-byte two's complement
        }
        field_varint(&mut t, 2, data_type as u64);
        field_bytes(&mut t, 8, name.as_bytes());
        field_bytes(&mut t, 9, raw);
        t
    }

    pub fn floats(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
        tensor(name, dims, FLOAT, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
    }

    /// A TensorProto with its values in `int32_data` (how small zero points may be stored).
    pub fn int32_data(name: &str, dims: &[i64], data_type: i32, values: &[i32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            field_varint(&mut t, 1, d as u64);
        }
        field_varint(&mut t, 2, data_type as u64);
        for &v in values {
            field_varint(&mut t, 5, v as i64 as u64);
        }
        field_bytes(&mut t, 8, name.as_bytes());
        t
    }

    pub fn node(name: &str, op: &str, inputs: &[&str]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            field_bytes(&mut n, 1, i.as_bytes());
        }
        field_bytes(&mut n, 3, name.as_bytes());
        field_bytes(&mut n, 4, op.as_bytes());
        n
    }

    pub fn model(initializers: &[Vec<u8>], nodes: &[Vec<u8>]) -> Vec<u8> {
        let mut g = Vec::new();
        for n in nodes {
            field_bytes(&mut g, 1, n);
        }
        for t in initializers {
            field_bytes(&mut g, 5, t);
        }
        let mut m = Vec::new();
        field_bytes(&mut m, 7, &g);
        m
    }
}

// Initializers of the int8 export, one per kind of row in data/onnx_mapping.tsv.
const GATHER: &str = "encoder.bert.embeddings.word_embeddings.weight_quantized";
const GATHER_SCALE: &str = "encoder.bert.embeddings.word_embeddings.weight_scale";
const LAYER_NORM: &str = "encoder.bert.embeddings.LayerNorm.weight";
/// A float MatMul weight, transposed on import ([9, 1] -> [1, 9]).
const MATMUL_F32: &str = "onnx::MatMul_6993";
const MATMUL_I8: &str = "decoder.decoder.generator.resblocks.4.adain2.2.fc.weight_quantized";
const MATMUL_I8_SCALE: &str = "decoder.decoder.generator.resblocks.4.adain2.2.fc.weight_scale";
const MATMUL_I8_NODE: &str = "/decoder/decoder/generator/resblocks.4/adain2.2/fc/Gemm_MatMul_quant";
const LSTM_W: &str = "onnx::LSTM_6930_quantized";
const LSTM_W_F32: &str = "onnx::LSTM_6930";
const LSTM_W_SCALE: &str = "onnx::LSTM_6930_scale";
const LSTM_B: &str = "onnx::LSTM_6929";
const CONV: &str = "encoder.predictor.N_proj.weight_quantized";
const CONV_SCALE: &str = "encoder.predictor.N_proj.weight_scale";
const CONV_ZERO_POINT: &str = "encoder.predictor.N_proj.weight_zero_point";
const CONV_NODE: &str = "/encoder/N_proj/Conv_quant";

fn onnx_error(initializers: &[Vec<u8>], nodes: &[Vec<u8>]) -> String {
    corrupt_reason(import_onnx_bytes(&onnx::model(initializers, nodes), "hostile.onnx"))
}

fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&b| b as u8).collect()
}

#[test]
fn onnx_float_transpose_checks_the_length_before_indexing() {
    // Issue 12: a [9, 1] weight with 2 values was transposed (indexed to 9) before its length was
    // checked.
    let e = onnx_error(&[onnx::floats(MATMUL_F32, &[9, 1], &[1.0, 2.0])], &[]);
    assert_mentions(&e, &[MATMUL_F32, "2 values", "[9, 1]"]);
}

#[test]
fn onnx_int8_matmul_checks_the_length_before_indexing() {
    // Issue 12: the int8 MatMul path transposed a [2, 3] weight holding one byte.
    let inits = [onnx::tensor(MATMUL_I8, &[2, 3], onnx::INT8, &[7]), onnx::floats(MATMUL_I8_SCALE, &[3], &[1.0; 3])];
    let e = onnx_error(&inits, &[onnx::node(MATMUL_I8_NODE, "MatMulInteger", &["x", MATMUL_I8])]);
    assert_mentions(&e, &[MATMUL_I8, "1 values", "[2, 3]"]);
}

#[test]
fn onnx_lstm_bias_checks_its_length() {
    // Issue 12: B [2, 16] holding 4 values was sliced per direction (to 32) unchecked.
    let e = onnx_error(&[onnx::floats(LSTM_B, &[2, 16], &[0.0; 4])], &[]);
    assert_mentions(&e, &[LSTM_B, "4 values", "[2, 16]"]);
}

#[test]
fn onnx_lstm_bias_width_must_hold_eight_gate_blocks() {
    // A width that is not 2 directions x 4 gates x hidden dropped values silently.
    let e = onnx_error(&[onnx::floats(LSTM_B, &[2, 6], &[0.0; 12])], &[]);
    assert_mentions(&e, &[LSTM_B, "[2, 6]"]);
}

#[test]
fn onnx_lstm_weight_checks_its_storage_length() {
    // Issue 12: the per-direction slices of W [2, 2, 4] were taken from 3 bytes (and 3 floats).
    let inits = [onnx::tensor(LSTM_W, &[2, 2, 4], onnx::INT8, &[1, 2, 3]), onnx::floats(LSTM_W_SCALE, &[2], &[1.0, 1.0])];
    assert_mentions(&onnx_error(&inits, &[]), &[LSTM_W, "3 values", "[2, 2, 4]"]);
    let e = onnx_error(&[onnx::floats(LSTM_W_F32, &[2, 2, 4], &[1.0, 2.0, 3.0])], &[]);
    assert_mentions(&e, &[LSTM_W, "3 values", "[2, 2, 4]"]);
}

#[test]
fn onnx_lstm_weight_needs_one_scale_per_direction() {
    // Issue 12: one scale for two directions was indexed at 1.
    let inits = [onnx::tensor(LSTM_W, &[2, 1, 4], onnx::INT8, &[1; 8]), onnx::floats(LSTM_W_SCALE, &[1], &[0.5])];
    assert_mentions(&onnx_error(&inits, &[]), &[LSTM_W, "1 scales", "2 directions"]);
}

#[test]
fn onnx_negative_dims_are_refused() {
    // Issue 12: -1 cast to usize is 2^64-1; [-1, -1] overflowed the element count (and wrapped to 1
    // in release, accepting one value for an absurd shape).
    let e = onnx_error(&[onnx::floats(LAYER_NORM, &[-1, -1], &[1.0])], &[]);
    assert_mentions(&e, &[LAYER_NORM, "negative dimension", "[-1, -1]"]);
}

#[test]
fn onnx_element_count_overflow_is_an_error() {
    let e = onnx_error(&[onnx::floats(LAYER_NORM, &[1 << 40, 1 << 40], &[1.0])], &[]);
    assert_mentions(&e, &["bert.embeddings.LayerNorm.weight", "[1099511627776, 1099511627776]"]);
}

#[test]
fn onnx_0d_int8_tensor_with_row_scales_is_an_error() {
    // Issue 12: per-row scales were checked against `shape[0]` of a 0-d tensor.
    let inits = [onnx::tensor(GATHER, &[], onnx::INT8, &[1]), onnx::floats(GATHER_SCALE, &[2], &[1.0, 2.0])];
    assert_mentions(&onnx_error(&inits, &[]), &["bert.embeddings.word_embeddings.weight", "2 scales", "[]"]);
}

#[test]
fn onnx_empty_scale_is_an_error() {
    // Issue 12: an empty tensor with no scales passed validation, then divided by zero on
    // dequantization.
    let inits = [onnx::tensor(GATHER, &[0, 4], onnx::INT8, &[]), onnx::floats(GATHER_SCALE, &[0], &[])];
    assert_mentions(&onnx_error(&inits, &[]), &["bert.embeddings.word_embeddings.weight", "0 scales"]);
}

#[test]
fn onnx_conv_zero_point_must_fit_uint8() {
    // A zero point of 300 in `int32_data` was truncated to 44 without a word.
    let inits = [
        onnx::tensor(CONV, &[1, 1, 1], onnx::UINT8, &[200]),
        onnx::floats(CONV_SCALE, &[], &[0.1]),
        onnx::int32_data(CONV_ZERO_POINT, &[], onnx::UINT8, &[300]),
    ];
    let nodes = [onnx::node(CONV_NODE, "ConvInteger", &["x", CONV, "", CONV_ZERO_POINT])];
    assert_mentions(&onnx_error(&inits, &nodes), &[CONV, "zero point 300"]);
}

/// One well-formed initializer of every kind of row (the fuzz seed).
fn onnx_valid_rows() -> Vec<u8> {
    let inits = [
        onnx::tensor(GATHER, &[2, 2], onnx::INT8, &i8_bytes(&[1, -1, 2, -2])),
        onnx::floats(GATHER_SCALE, &[], &[0.5]),
        onnx::floats(LAYER_NORM, &[2], &[1.0, 1.0]),
        onnx::floats(MATMUL_F32, &[3, 1], &[1.0, 2.0, 3.0]),
        onnx::tensor(MATMUL_I8, &[2, 3], onnx::INT8, &i8_bytes(&[1, 2, 3, 4, 5, 6])),
        onnx::floats(MATMUL_I8_SCALE, &[3], &[1.0, 0.5, 0.25]),
        onnx::tensor(LSTM_W, &[2, 1, 4], onnx::INT8, &i8_bytes(&[1, 2, 3, 4, 5, 6, 7, 8])),
        onnx::floats(LSTM_W_SCALE, &[2], &[1.0, 2.0]),
        onnx::floats(LSTM_B, &[2, 8], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0]),
        onnx::tensor(CONV, &[1, 2, 1], onnx::UINT8, &[200, 100]),
        onnx::floats(CONV_SCALE, &[], &[0.1]),
        onnx::int32_data(CONV_ZERO_POINT, &[], onnx::UINT8, &[100]),
        onnx::int32_data("unused_zero_point", &[], onnx::INT32, &[0]),
    ];
    let nodes = [
        onnx::node(MATMUL_I8_NODE, "MatMulInteger", &["x", MATMUL_I8]),
        onnx::node(CONV_NODE, "ConvInteger", &["x", CONV, "", CONV_ZERO_POINT]),
    ];
    onnx::model(&inits, &nodes)
}

#[test]
fn onnx_valid_rows_pass_and_only_missing_initializers_are_reported() {
    // Every row above is well formed, so the only complaint is the rest of the model.
    match import_onnx_bytes(&onnx_valid_rows(), "rows.onnx") {
        Err(LoadError::Mismatch(m)) => {
            assert!(m.contains("lacks"), "{m}");
            for present in [GATHER, LAYER_NORM, MATMUL_F32, MATMUL_I8, LSTM_W, LSTM_B, CONV] {
                assert!(!m.contains(&format!(" {present},")) && !m.ends_with(&format!(" {present}")), "{present} reported missing: {m}");
            }
        }
        other => panic!("expected only missing initializers, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical safetensors.
// ---------------------------------------------------------------------------------------------

/// A canonical file with the given tensors (name, dtype, shape, bytes) and valid metadata.
fn canonical(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let metadata = HashMap::from([
        ("format".to_string(), "kokoro-burn".to_string()),
        ("format_version".to_string(), "1".to_string()),
        ("model".to_string(), "kokoro-82m-v1.0".to_string()),
        ("precision".to_string(), "int8".to_string()),
        ("source".to_string(), "hostile_weights test".to_string()),
    ]);
    safetensors::serialize(views, Some(metadata)).unwrap()
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn canonical_0d_int8_tensor_with_row_scales_is_an_error() {
    // Issue 12: `shape[0]` of a 0-d tensor when its scales were not one.
    let bytes = canonical(&[("w", Dtype::I8, vec![], vec![3]), ("w:scale", Dtype::F32, vec![2], f32_le(&[1.0, 2.0]))]);
    assert_mentions(&corrupt_reason(read_canonical_bytes(&bytes, "x.safetensors")), &["w:", "2 scales", "[]"]);
}

#[test]
fn canonical_empty_scale_is_an_error() {
    // Issue 12: zero rows and zero scales passed validation, then divided by zero on load.
    let bytes = canonical(&[("w", Dtype::I8, vec![0], vec![]), ("w:scale", Dtype::F32, vec![0], vec![])]);
    assert_mentions(&corrupt_reason(read_canonical_bytes(&bytes, "x.safetensors")), &["w:", "0 scales"]);
}

#[test]
fn canonical_rows_of_nothing_dequantize_to_nothing() {
    // Issue 12: two rows of zero values made a zero-sized chunk, which panics in `chunks_exact`.
    let bytes = canonical(&[("w", Dtype::I8, vec![2, 0], vec![]), ("w:scale", Dtype::F32, vec![2], f32_le(&[1.0, 2.0]))]);
    let w = read_canonical_bytes(&bytes, "x.safetensors").unwrap();
    assert_eq!(w.tensors["w"].dequantize(), Vec::<f32>::new());
    dequantize_all(&w);
}

#[test]
fn canonical_zero_point_must_be_uint8() {
    let bytes = canonical(&[
        ("w", Dtype::U8, vec![1], vec![9]),
        ("w:scale", Dtype::F32, vec![1], f32_le(&[1.0])),
        ("w:zero_point", Dtype::I8, vec![1], vec![0xff]),
    ]);
    assert_mentions(&corrupt_reason(read_canonical_bytes(&bytes, "x.safetensors")), &["w:zero_point", "I8"]);
}

fn canonical_valid() -> Vec<u8> {
    canonical(&[
        ("a.weight", Dtype::F32, vec![2], f32_le(&[1.0, -2.0])),
        ("b.weight", Dtype::I8, vec![2, 1], vec![3, 0xfd]),
        ("b.weight:scale", Dtype::F32, vec![2], f32_le(&[0.5, 0.25])),
        ("c.weight", Dtype::U8, vec![1], vec![200]),
        ("c.weight:scale", Dtype::F32, vec![1], f32_le(&[0.1])),
        ("c.weight:zero_point", Dtype::U8, vec![1], vec![100]),
    ])
}

#[test]
fn canonical_valid_file_reads_and_dequantizes() {
    let w = read_canonical_bytes(&canonical_valid(), "x.safetensors").unwrap();
    assert_eq!(w.tensors["b.weight"], QTensor::I8 { shape: vec![2, 1], data: vec![3, -3], scale: vec![0.5, 0.25] });
    assert_eq!(w.tensors["b.weight"].dequantize(), vec![1.5, -0.75]);
    dequantize_all(&w);
}

// ---------------------------------------------------------------------------------------------
// `.pth`: a protocol-2 pickle of five state dicts, storages in a zip.
// ---------------------------------------------------------------------------------------------

/// One tensor of a checkpoint: `top` is the state dict, `key` its name there.
struct PthTensor<'a> {
    top: &'a str,
    key: &'a str,
    shape: &'a [i32],
    /// `None` for contiguous.
    stride: Option<&'a [i32]>,
    /// Index into the storages, and the element count the pickle declares for it.
    storage: usize,
    numel: i32,
}

fn pickle_str(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

fn pickle_int_tuple(p: &mut Vec<u8>, v: &[i32]) {
    p.push(b'(');
    for &x in v {
        p.push(b'J');
        p.extend_from_slice(&x.to_le_bytes());
    }
    p.push(b't');
}

/// `data.pkl` as `torch.save` writes it for `{top: {key: tensor}}`.
fn pth_pickle(tensors: &[PthTensor]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    let mut tops: Vec<&str> = tensors.iter().map(|t| t.top).collect();
    tops.dedup();
    for top in tops {
        pickle_str(&mut p, top);
        p.extend_from_slice(b"}(");
        for t in tensors.iter().filter(|t| t.top == top) {
            pickle_str(&mut p, t.key);
            p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            // The persistent id: ('storage', torch.FloatStorage, key, 'cpu', numel).
            p.push(b'(');
            pickle_str(&mut p, "storage");
            p.extend_from_slice(b"ctorch\nFloatStorage\n");
            pickle_str(&mut p, &t.storage.to_string());
            pickle_str(&mut p, "cpu");
            p.push(b'J');
            p.extend_from_slice(&t.numel.to_le_bytes());
            p.extend_from_slice(b"tQ");
            p.extend_from_slice(b"J\0\0\0\0"); // storage offset
            pickle_int_tuple(&mut p, t.shape);
            let contiguous: Vec<i32> =
                (0..t.shape.len()).map(|i| t.shape[i + 1..].iter().product()).collect();
            pickle_int_tuple(&mut p, t.stride.unwrap_or(&contiguous));
            p.push(0x89); // requires_grad = False
            p.extend_from_slice(b"ccollections\nOrderedDict\n)Rt");
            p.push(b'R');
        }
        p.push(b'u');
    }
    p.extend_from_slice(b"u.");
    p
}

/// The checkpoint's zip; `deflate` compresses every entry (`torch.save` stores them).
fn pth_zip(pickle: &[u8], storages: &[Vec<u8>], deflate: bool) -> Vec<u8> {
    let method = if deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
    let options = SimpleFileOptions::default().compression_method(method);
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut put = |name: &str, bytes: &[u8]| {
        z.start_file(name, options).unwrap();
        z.write_all(bytes).unwrap();
    };
    put("archive/data.pkl", pickle);
    put("archive/byteorder", b"little");
    put("archive/version", b"3\n");
    for (i, s) in storages.iter().enumerate() {
        put(&format!("archive/data/{i}"), s);
    }
    z.finish().unwrap().into_inner()
}

fn pth_read(tensors: &[PthTensor], storages: &[Vec<u8>]) -> Result<WeightSet, LoadError> {
    import_pth_bytes(&pth_zip(&pth_pickle(tensors), storages, false), "hostile.pth")
}

/// A weight-norm pair (`original0` magnitude, `original1` direction) of the given shapes.
fn weight_norm_pair<'a>(g: &'a [i32], v: &'a [i32]) -> [PthTensor<'a>; 2] {
    let numel = |s: &[i32]| s.iter().product();
    [
        PthTensor { top: "bert", key: "module.x.parametrizations.weight.original0", shape: g, stride: None, storage: 0, numel: numel(g) },
        PthTensor { top: "bert", key: "module.x.parametrizations.weight.original1", shape: v, stride: None, storage: 1, numel: numel(v) },
    ]
}

#[test]
fn pth_0d_weight_norm_is_an_error() {
    // Issue 12: the fold took `shape[0]` of a 0-d direction tensor.
    let e = mismatch_reason(pth_read(&weight_norm_pair(&[], &[]), &[f32_le(&[2.0]), f32_le(&[3.0])]));
    assert_mentions(&e, &["bert.x", "0-d"]);
}

#[test]
fn pth_weight_norm_without_rows_is_an_error() {
    // Issue 12: zero rows divided the direction's length by zero.
    let e = mismatch_reason(pth_read(&weight_norm_pair(&[0, 1], &[0, 3]), &[vec![], vec![]]));
    assert_mentions(&e, &["bert.x", "no rows", "[0, 3]"]);
}

#[test]
fn pth_expanded_tensor_is_bounded_by_the_file() {
    // Issue 12: a stride-0 view of one float declares 2^26 elements, which reading materialized
    // (256 MiB from a file of a few hundred bytes).
    let big = [PthTensor { top: "bert", key: "module.big", shape: &[1 << 26], stride: Some(&[0]), storage: 0, numel: 1 }];
    let e = corrupt_reason(pth_read(&big, &[f32_le(&[1.0])]));
    assert_mentions(&e, &["bert.module.big", "268435456 bytes"]);
}

#[test]
fn pth_deflated_storage_cannot_expand_past_the_cap() {
    // Issue 12: 16 MiB of zeros deflate to ~16 KiB; the entry's declared size is what the reader
    // would have inflated.
    let numel = 1 << 22;
    let t = [PthTensor { top: "bert", key: "module.zeros", shape: &[numel], stride: None, storage: 0, numel }];
    let bytes = pth_zip(&pth_pickle(&t), &[vec![0; 4 * numel as usize]], true);
    assert!(bytes.len() < 100_000, "{} bytes", bytes.len());
    let e = corrupt_reason(import_pth_bytes(&bytes, "bomb.pth"));
    assert_mentions(&e, &["archive/data/0", "16777216 bytes"]);
}

#[test]
fn pth_deflated_pickle_cannot_expand_past_the_cap() {
    // The reader's own ceiling for `data.pkl` is 100 MiB whatever the file's size.
    let bytes = pth_zip(&vec![b'N'; 20 << 20], &[], true);
    let e = corrupt_reason(import_pth_bytes(&bytes, "bomb.pth"));
    assert_mentions(&e, &["archive/data.pkl", "20971520 bytes"]);
}

/// A checkpoint with a folded pair, a plain tensor and an unused one (the fuzz seed).
fn pth_valid() -> Vec<u8> {
    let tensors = [
        PthTensor { top: "decoder", key: "module.c.weight_g", shape: &[2, 1], stride: None, storage: 0, numel: 2 },
        PthTensor { top: "decoder", key: "module.c.weight_v", shape: &[2, 2], stride: None, storage: 1, numel: 4 },
        PthTensor { top: "predictor", key: "module.b.bias", shape: &[3], stride: None, storage: 2, numel: 3 },
        PthTensor { top: "bert", key: "module.pooler.bias", shape: &[1], stride: None, storage: 3, numel: 1 },
    ];
    let storages = [f32_le(&[10.0, 1.0]), f32_le(&[3.0, 4.0, 0.0, 2.0]), f32_le(&[1.0, 2.0, 3.0]), f32_le(&[0.0])];
    pth_zip(&pth_pickle(&tensors), &storages, false)
}

/// The zip with every CRC zeroed, as `torch.save(..., _use_new_zipfile_serialization=True)` with
/// `compute_crc32=False` writes it: burn-store then skips the checksum, so a fuzzer's mutations of
/// the pickle and storages get past the zip.
fn without_crcs(mut zip: Vec<u8>) -> Vec<u8> {
    // (signature, offset of the CRC within the header): local file headers, central directory.
    for (signature, at) in [(b"PK\x03\x04", 14), (b"PK\x01\x02", 16)] {
        let starts: Vec<usize> = zip.windows(4).enumerate().filter(|(_, w)| w == signature).map(|(i, _)| i).collect();
        for i in starts {
            zip[i + at..i + at + 4].fill(0);
        }
    }
    zip
}

#[test]
fn pth_valid_checkpoint_reads_from_bytes_and_from_a_file() {
    let bytes = pth_valid();
    let w = import_pth_bytes(&bytes, "dir/tiny.pth").unwrap();
    // Row 0: v = [3, 4] (norm 5), g = 10 -> [6, 8]. Row 1: v = [0, 2] (norm 2), g = 1 -> [0, 1].
    assert_eq!(w.tensors["decoder.c.weight"], QTensor::F32 { shape: vec![2, 2], data: vec![6.0, 8.0, 0.0, 1.0] });
    assert_eq!(w.tensors["predictor.b.bias"], QTensor::F32 { shape: vec![3], data: vec![1.0, 2.0, 3.0] });
    assert_eq!(w.tensors.len(), 2, "{:?}", w.tensors.keys().collect::<Vec<_>>());
    assert_eq!(w.source, "tiny.pth (PyTorch)");
    assert_eq!(import_pth_bytes(&without_crcs(bytes.clone()), "tiny.pth").unwrap().tensors, w.tensors);

    let dir = std::env::temp_dir().join(format!("kokoro-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.pth");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = import_pth(&path).unwrap();
    assert_eq!(from_file.tensors, w.tensors);
    assert_eq!(from_file.source, w.source);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pth_hostile_file_is_refused_from_a_path_too() {
    let dir = std::env::temp_dir().join(format!("kokoro-hostile-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bomb.pth");
    std::fs::write(&path, pth_zip(&vec![b'N'; 20 << 20], &[], true)).unwrap();
    let e = corrupt_reason(import_pth(&path));
    assert_mentions(&e, &["archive/data.pkl", "20971520 bytes"]);
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Fuzz seeds.
// ---------------------------------------------------------------------------------------------

#[test]
fn seeds_are_valid_inputs() {
    let seeds = [
        ("weights_onnx", "rows.onnx", onnx_valid_rows()),
        ("weights_canonical", "tiny.safetensors", canonical_valid()),
        ("weights_pth", "tiny.pth", pth_valid()),
        ("weights_pth", "tiny-no-crc.pth", without_crcs(pth_valid())),
    ];
    // Each seed gets as far as its reader goes on a partial model.
    assert!(matches!(import_onnx_bytes(&seeds[0].2, "seed"), Err(LoadError::Mismatch(_))));
    dequantize_all(&read_canonical_bytes(&seeds[1].2, "seed").unwrap());
    dequantize_all(&import_pth_bytes(&seeds[2].2, "seed").unwrap());
    dequantize_all(&import_pth_bytes(&seeds[3].2, "seed").unwrap());
    if std::env::var_os("KOKORO_WRITE_FUZZ_SEEDS").is_some() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        for (target, name, bytes) in seeds {
            std::fs::create_dir_all(root.join(target)).unwrap();
            std::fs::write(root.join(target).join(name), bytes).unwrap();
        }
    }
}
