//! PyTorch `.pt` voices (`torch.save(tensor)`): a zip holding `<name>/data.pkl`, a pickle that
//! rebuilds the tensor with `torch._utils._rebuild_tensor_v2` from a persistent storage id, and the
//! storage's raw bytes in `<name>/data/<key>`. A small pickle reader covers what `torch.save` writes
//! (protocols 2-4); no Python objects are ever constructed, so a hostile pickle can do nothing but
//! fail to parse.

use std::io::{Cursor, Read};

use crate::{VOICE_LEN, VoiceError};

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Persistent(Box<Value>),
    Reduce(Box<Value>, Box<Value>),
    Mark,
}

fn bad(what: &str, message: impl Into<String>) -> VoiceError {
    VoiceError::BadFile { what: what.to_string(), message: message.into() }
}

fn unpickle(data: &[u8], what: &str) -> Result<Value, VoiceError> {
    let mut at = 0usize;
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Value> = std::collections::HashMap::new();
    let err = |m: &str| bad(what, format!("data.pkl: {m}"));
    macro_rules! take {
        ($n:expr) => {{
            let n = $n;
            let s = data.get(at..at + n).ok_or_else(|| err("truncated"))?;
            at += n;
            s
        }};
    }
    let line = |at: &mut usize| -> Result<String, VoiceError> {
        let end = data[*at..].iter().position(|&b| b == b'\n').ok_or_else(|| err("unterminated line"))?;
        let s = String::from_utf8_lossy(&data[*at..*at + end]).into_owned();
        *at += end + 1;
        Ok(s)
    };
    let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>, VoiceError> {
        let m = stack.iter().rposition(|v| *v == Value::Mark).ok_or_else(|| err("missing MARK"))?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = *take!(1).first().unwrap();
        match op {
            0x80 => { take!(1); }                         // PROTO
            0x95 => { take!(8); }                         // FRAME
            b'.' => return stack.pop().ok_or_else(|| err("empty stack at STOP")),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'K' => { let b = take!(1); stack.push(Value::Int(b[0] as i64)) }
            b'M' => { let b = take!(2); stack.push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64)) }
            b'J' => { let b = take!(4); stack.push(Value::Int(i32::from_le_bytes(b.try_into().unwrap()) as i64)) }
            0x8a => {
                let n = take!(1)[0] as usize;
                let b = take!(n);
                if n > 8 { return Err(err("integer too large")); }
                let mut v: i64 = 0;
                for (i, byte) in b.iter().enumerate() { v |= (*byte as i64) << (8 * i); }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v -= 1i64 << (8 * n); }
                stack.push(Value::Int(v))
            }
            b'G' => { let b = take!(8); stack.push(Value::Float(f64::from_be_bytes(b.try_into().unwrap()))) }
            b'X' => { let b = take!(4); let n = u32::from_le_bytes(b.try_into().unwrap()) as usize; let s = take!(n); stack.push(Value::Str(String::from_utf8_lossy(s).into_owned())) }
            0x8c => { let n = take!(1)[0] as usize; let s = take!(n); stack.push(Value::Str(String::from_utf8_lossy(s).into_owned())) }
            b'c' => { let module = line(&mut at)?; let name = line(&mut at)?; stack.push(Value::Global(module, name)) }
            0x93 => {
                let name = stack.pop(); let module = stack.pop();
                match (module, name) {
                    (Some(Value::Str(m)), Some(Value::Str(n))) => stack.push(Value::Global(m, n)),
                    _ => return Err(err("STACK_GLOBAL needs two strings")),
                }
            }
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => { let items = pop_mark(&mut stack)?; stack.push(Value::Tuple(items)) }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n { return Err(err("stack underflow")); }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items))
            }
            b']' => stack.push(Value::List(Vec::new())),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b'a' | b'e' => {
                let items = if op == b'a' { vec![stack.pop().ok_or_else(|| err("stack underflow"))?] } else { pop_mark(&mut stack)? };
                match stack.last_mut() { Some(Value::List(l)) => l.extend(items), _ => return Err(err("APPEND to a non-list")) }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = stack.pop().ok_or_else(|| err("stack underflow"))?;
                    let k = stack.pop().ok_or_else(|| err("stack underflow"))?;
                    vec![k, v]
                } else { pop_mark(&mut stack)? };
                match stack.last_mut() {
                    Some(Value::Dict(d)) => { let mut it = items.into_iter(); while let (Some(k), Some(v)) = (it.next(), it.next()) { d.push((k, v)) } }
                    _ => return Err(err("SETITEM on a non-dict")),
                }
            }
            b'q' => { let i = take!(1)[0] as u32; memo.insert(i, stack.last().cloned().ok_or_else(|| err("empty stack"))?); }
            b'r' => { let b = take!(4); memo.insert(u32::from_le_bytes(b.try_into().unwrap()), stack.last().cloned().ok_or_else(|| err("empty stack"))?); }
            0x94 => { let i = memo.len() as u32; memo.insert(i, stack.last().cloned().ok_or_else(|| err("empty stack"))?); }
            b'h' => { let i = take!(1)[0] as u32; stack.push(memo.get(&i).cloned().ok_or_else(|| err("bad memo"))?) }
            b'j' => { let b = take!(4); stack.push(memo.get(&u32::from_le_bytes(b.try_into().unwrap())).cloned().ok_or_else(|| err("bad memo"))?) }
            b'Q' => { let pid = stack.pop().ok_or_else(|| err("stack underflow"))?; stack.push(Value::Persistent(Box::new(pid))) }
            b'R' => {
                let args = stack.pop().ok_or_else(|| err("stack underflow"))?;
                let func = stack.pop().ok_or_else(|| err("stack underflow"))?;
                stack.push(Value::Reduce(Box::new(func), Box::new(args)))
            }
            b'b' => { stack.pop().ok_or_else(|| err("stack underflow"))?; } // BUILD: state is irrelevant here
            other => return Err(err(&format!("unsupported pickle opcode 0x{other:02x}"))),
        }
        if stack.len() > 1 << 16 {
            return Err(err("pickle too deep"));
        }
    }
}

/// The voices in a `.pt` file: a tensor, or a dict of name -> tensor. A lone tensor gets `name`.
pub fn read_pt(bytes: &[u8], name: &str, what: &str) -> Result<Vec<(String, Vec<f32>)>, VoiceError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(what, format!("not a torch zip: {e}")))?;
    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.to_string())).collect();
    let pkl = names.iter().find(|n| n.ends_with("data.pkl")).ok_or_else(|| bad(what, "no data.pkl: not a torch.save file"))?.clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut read = |entry: &str| -> Result<Vec<u8>, VoiceError> {
        let mut f = zip.by_name(entry).map_err(|e| bad(what, format!("{entry}: {e}")))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).map_err(|e| bad(what, format!("{entry}: {e}")))?;
        Ok(out)
    };
    let root = unpickle(&read(&pkl)?, what)?;
    let mut tensor = |v: &Value, label: &str| -> Result<Vec<f32>, VoiceError> {
        let Value::Reduce(func, args) = v else { return Err(bad(what, format!("{label}: not a tensor"))) };
        let Value::Global(m, f) = &**func else { return Err(bad(what, format!("{label}: not a tensor"))) };
        if (m.as_str(), f.as_str()) != ("torch._utils", "_rebuild_tensor_v2") {
            return Err(bad(what, format!("{label}: {m}.{f} is not a tensor rebuild")));
        }
        let Value::Tuple(a) = &**args else { return Err(bad(what, format!("{label}: bad tensor arguments"))) };
        let (Some(Value::Persistent(pid)), Some(Value::Int(offset)), Some(Value::Tuple(size))) = (a.first(), a.get(1), a.get(2)) else {
            return Err(bad(what, format!("{label}: bad tensor arguments")));
        };
        let Value::Tuple(p) = &**pid else { return Err(bad(what, format!("{label}: bad storage id"))) };
        let (Some(Value::Global(_, class)), Some(Value::Str(key))) = (p.get(1), p.get(2)) else {
            return Err(bad(what, format!("{label}: bad storage id")));
        };
        if class != "FloatStorage" {
            return Err(bad(what, format!("{label}: {class} is not supported (voices are float32)")));
        }
        let dims: Vec<i64> = size.iter().map(|d| if let Value::Int(i) = d { *i } else { -1 }).collect();
        if dims.iter().product::<i64>() != VOICE_LEN as i64 {
            return Err(VoiceError::BadShape { what: format!("{what}: {label}"), message: format!("shape {dims:?} is not a voice (510, 1, 256)") });
        }
        let storage = read(&format!("{prefix}data/{key}"))?;
        let start = *offset as usize * 4;
        let bytes = storage.get(start..start + VOICE_LEN * 4).ok_or_else(|| bad(what, format!("{label}: storage too short")))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    match &root {
        Value::Dict(items) => items
            .iter()
            .map(|(k, v)| {
                let Value::Str(k) = k else { return Err(bad(what, "dict keys must be voice names")) };
                Ok((k.clone(), tensor(v, k)?))
            })
            .collect(),
        v => Ok(vec![(name.to_string(), tensor(v, name)?)]),
    }
}

/// What `torch.save` pickles for a contiguous float32 tensor of shape (510, 1, 256) in storage
/// `"0"` (protocol 2; the same bytes for every voice).
const VOICE_PICKLE: &[u8] = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00((X\x07\x00\x00\x00storageq\x01ctorch\nFloatStorage\nq\x02X\x01\x00\x00\x000q\x03X\x03\x00\x00\x00cpuq\x04J\x00\xfe\x01\x00tq\x05QK\x00M\xfe\x01K\x01M\x00\x01\x87q\x06M\x00\x01M\x00\x01K\x01\x87q\x07\x89ccollections\nOrderedDict\nq\x08)Rq\ttq\nRq\x0b.";

/// A voice as `torch.save(tensor)` writes it (loadable by `torch.load`).
pub fn write_pt(name: &str, voice: &crate::Voice) -> Result<Vec<u8>, VoiceError> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let io = |e: &dyn std::fmt::Display| bad(".pt", e.to_string());
    for (entry, bytes) in [
        (format!("{name}/data.pkl"), VOICE_PICKLE.to_vec()),
        (format!("{name}/data/0"), voice.to_bin_bytes()),
        (format!("{name}/version"), b"3\n".to_vec()),
    ] {
        zip.start_file(entry, options).map_err(|e| io(&e))?;
        zip.write_all(&bytes).map_err(|e| io(&e))?;
    }
    Ok(zip.finish().map_err(|e| io(&e))?.into_inner())
}
