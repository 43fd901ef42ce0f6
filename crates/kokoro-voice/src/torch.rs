//! PyTorch `.pt` voices (`torch.save(tensor)`): a zip holding `<name>/data.pkl`, a pickle that
//! rebuilds the tensor with `torch._utils._rebuild_tensor_v2` from a persistent storage id, and the
//! storage's raw bytes in `<name>/data/<key>`. A small pickle reader covers what `torch.save` writes
//! (protocols 2-4); no Python objects are ever constructed, so a hostile pickle can do nothing but
//! fail to parse.

use std::collections::HashMap;
use std::io::Cursor;

use crate::format::{Budget, MAX_ENTRY_BYTES, bad, is_voice_shape, open_zip, read_entry};
use crate::{VOICE_BIN_BYTES, VoiceError};

/// Most bytes a `data.pkl` may have: one voice's pickle is about 300 bytes, a dict of a thousand
/// voices about 100 KB.
const MAX_PICKLE_BYTES: u64 = 1 << 20;
/// Most values the pickle stack may hold at once.
const MAX_STACK: usize = 1 << 16;

/// Where a value lives in the unpickled arena. Containers, the stack and the memo hold these, so a
/// memo fetch shares its value as Python's memo does. Issue 12: values were owned trees and the
/// memo handed out deep copies, so a few hundred bytes of BINGET/TUPLE2/MEMOIZE rounds doubled a
/// value per round; a million nested tuples also overflowed the stack when the tree was dropped.
/// Nothing here recurses over values, and a value may even contain itself.
type Id = usize;

#[derive(Debug)]
enum Value {
    /// None, booleans and floats: nothing a voice needs.
    Other,
    Int(i64),
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(String, String),
    Persistent(Id),
    Reduce(Id, Id),
}

/// An unpickled value: its root and every value it refers to.
struct Pickle {
    values: Vec<Value>,
    root: Id,
}

/// Parses a pickle. Every opcode is charged to `budget` as one value's memory (it creates at most
/// one value, memo entry or container slot), so the arena stays proportional to the file's size.
fn unpickle(data: &[u8], what: &str, budget: &mut Budget) -> Result<Pickle, VoiceError> {
    let mut at = 0usize;
    let mut values: Vec<Value> = Vec::new();
    // `None` is a MARK.
    let mut stack: Vec<Option<Id>> = Vec::new();
    let mut memo: HashMap<u32, Id> = HashMap::new();
    let err = |m: &str| bad(what, format!("data.pkl: {m}"));
    macro_rules! take {
        ($n:expr) => {{
            let n: usize = $n;
            let s = at.checked_add(n).and_then(|end| data.get(at..end)).ok_or_else(|| err("truncated"))?;
            at += n;
            s
        }};
    }
    macro_rules! array {
        ($n:literal) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(take!($n));
            a
        }};
    }
    let line = |at: &mut usize| -> Result<String, VoiceError> {
        let rest = data.get(*at..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| err("unterminated line"))?;
        *at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let pop = |stack: &mut Vec<Option<Id>>| -> Result<Id, VoiceError> {
        match stack.pop() {
            Some(Some(id)) => Ok(id),
            Some(None) => Err(err("a MARK where a value belongs")),
            None => Err(err("stack underflow")),
        }
    };
    let top = |stack: &[Option<Id>]| -> Result<Id, VoiceError> {
        match stack.last() {
            Some(Some(id)) => Ok(*id),
            Some(None) => Err(err("a MARK where a value belongs")),
            None => Err(err("empty stack")),
        }
    };
    let pop_mark = |stack: &mut Vec<Option<Id>>| -> Result<Vec<Id>, VoiceError> {
        let m = stack.iter().rposition(Option::is_none).ok_or_else(|| err("missing MARK"))?;
        // Nothing above the last MARK is a MARK.
        let items = stack.split_off(m + 1).into_iter().flatten().collect();
        stack.pop();
        Ok(items)
    };
    let string = |bytes: &[u8]| Value::Str(String::from_utf8_lossy(bytes).into_owned());
    loop {
        budget.spend(size_of::<Value>() as u64, what).map_err(|_| err("more values than the file's size allows: a pickle bomb?"))?;
        let op = take!(1)[0];
        let new = match op {
            0x80 => { take!(1); None }                    // PROTO
            0x95 => { take!(8); None }                    // FRAME
            b'.' => return Ok(Pickle { root: pop(&mut stack)?, values }),
            b'(' => { stack.push(None); None }
            b'N' | 0x88 | 0x89 => Some(Value::Other),     // None, True, False
            b'K' => Some(Value::Int(take!(1)[0] as i64)),
            b'M' => Some(Value::Int(u16::from_le_bytes(array!(2)) as i64)),
            b'J' => Some(Value::Int(i32::from_le_bytes(array!(4)) as i64)),
            0x8a => {
                let n = take!(1)[0] as usize;
                let b = take!(n);
                if n > 8 { return Err(err("integer too large")); }
                let mut v: i64 = 0;
                for (i, byte) in b.iter().enumerate() { v |= (*byte as i64) << (8 * i); }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v -= 1i64 << (8 * n); }
                Some(Value::Int(v))
            }
            b'G' => { take!(8); Some(Value::Other) }
            b'X' => { let n = u32::from_le_bytes(array!(4)) as usize; Some(string(take!(n))) }
            0x8c => { let n = take!(1)[0] as usize; Some(string(take!(n))) }
            b'c' => { let module = line(&mut at)?; let name = line(&mut at)?; Some(Value::Global(module, name)) }
            0x93 => {
                let name = pop(&mut stack)?; let module = pop(&mut stack)?;
                match (&values[module], &values[name]) {
                    (Value::Str(m), Value::Str(n)) => Some(Value::Global(m.clone(), n.clone())),
                    _ => return Err(err("STACK_GLOBAL needs two strings")),
                }
            }
            b')' => Some(Value::Tuple(Vec::new())),
            b't' => Some(Value::Tuple(pop_mark(&mut stack)?)),
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let at = stack.len().checked_sub(n).ok_or_else(|| err("stack underflow"))?;
                let items: Option<Vec<Id>> = stack.split_off(at).into_iter().collect();
                Some(Value::Tuple(items.ok_or_else(|| err("a MARK where a value belongs"))?))
            }
            b']' => Some(Value::List(Vec::new())),
            b'}' => Some(Value::Dict(Vec::new())),
            b'a' | b'e' => {
                let items = if op == b'a' { vec![pop(&mut stack)?] } else { pop_mark(&mut stack)? };
                match &mut values[top(&stack)?] { Value::List(l) => l.extend(items), _ => return Err(err("APPEND to a non-list")) }
                None
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else { pop_mark(&mut stack)? };
                match &mut values[top(&stack)?] {
                    Value::Dict(d) => d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1]))),
                    _ => return Err(err("SETITEM on a non-dict")),
                }
                None
            }
            b'q' => { memo.insert(take!(1)[0] as u32, top(&stack)?); None }
            b'r' => { memo.insert(u32::from_le_bytes(array!(4)), top(&stack)?); None }
            0x94 => { memo.insert(memo.len() as u32, top(&stack)?); None }
            b'h' | b'j' => {
                let key = if op == b'h' { take!(1)[0] as u32 } else { u32::from_le_bytes(array!(4)) };
                stack.push(Some(*memo.get(&key).ok_or_else(|| err("bad memo"))?));
                None
            }
            b'Q' => Some(Value::Persistent(pop(&mut stack)?)),
            b'R' => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                Some(Value::Reduce(func, args))
            }
            b'b' => { pop(&mut stack)?; None } // BUILD: state is irrelevant here
            other => return Err(err(&format!("unsupported pickle opcode 0x{other:02x}"))),
        };
        if let Some(value) = new {
            values.push(value);
            stack.push(Some(values.len() - 1));
        }
        if stack.len() > MAX_STACK {
            return Err(err("pickle too deep"));
        }
    }
}

/// The voices in a `.pt` file: a tensor, or a dict of name -> tensor. A lone tensor gets `name`.
pub fn read_pt(bytes: &[u8], name: &str, what: &str) -> Result<Vec<(String, Vec<f32>)>, VoiceError> {
    let mut zip = open_zip(bytes, "torch zip", what)?;
    let mut budget = Budget::for_file(bytes);
    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.to_string())).collect();
    let pkl = names.iter().find(|n| n.ends_with("data.pkl")).ok_or_else(|| bad(what, "no data.pkl: not a torch.save file"))?.clone();
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or_default().to_string();
    let mut read = |entry: &str, cap: u64, budget: &mut Budget| -> Result<Vec<u8>, VoiceError> {
        let mut f = zip.by_name(entry).map_err(|e| bad(what, format!("{entry}: {e}")))?;
        read_entry(&mut f, entry, cap, budget, what)
    };
    let pickle = unpickle(&read(&pkl, MAX_PICKLE_BYTES, &mut budget)?, what, &mut budget)?;
    let values = &pickle.values;
    let mut tensor = |id: Id, label: &str| -> Result<Vec<f32>, VoiceError> {
        let Value::Reduce(func, args) = &values[id] else { return Err(bad(what, format!("{label}: not a tensor"))) };
        let Value::Global(m, f) = &values[*func] else { return Err(bad(what, format!("{label}: not a tensor"))) };
        if (m.as_str(), f.as_str()) != ("torch._utils", "_rebuild_tensor_v2") {
            return Err(bad(what, format!("{label}: {m}.{f} is not a tensor rebuild")));
        }
        let Value::Tuple(a) = &values[*args] else { return Err(bad(what, format!("{label}: bad tensor arguments"))) };
        let [pid, offset, size, ..] = a.as_slice() else { return Err(bad(what, format!("{label}: bad tensor arguments"))) };
        let (Value::Persistent(pid), Value::Int(offset), Value::Tuple(size)) = (&values[*pid], &values[*offset], &values[*size]) else {
            return Err(bad(what, format!("{label}: bad tensor arguments")));
        };
        let Value::Tuple(p) = &values[*pid] else { return Err(bad(what, format!("{label}: bad storage id"))) };
        let (Some(Value::Global(_, class)), Some(Value::Str(key))) = (p.get(1).map(|&i| &values[i]), p.get(2).map(|&i| &values[i])) else {
            return Err(bad(what, format!("{label}: bad storage id")));
        };
        if class != "FloatStorage" {
            return Err(bad(what, format!("{label}: {class} is not supported (voices are float32)")));
        }
        // Sizes are checked before any use: negative or huge ones are not a voice (Issue 12).
        let dims: Vec<Option<i64>> = size.iter().map(|&d| if let Value::Int(i) = values[d] { Some(i) } else { None }).collect();
        let shape: Option<Vec<usize>> = dims.iter().map(|d| d.and_then(|d| usize::try_from(d).ok())).collect();
        if !shape.is_some_and(|s| is_voice_shape(&s)) {
            return Err(VoiceError::BadShape { what: format!("{what}: {label}"), message: format!("shape {dims:?} is not a voice (510, 1, 256)") });
        }
        let start = usize::try_from(*offset).ok().and_then(|o| o.checked_mul(4));
        let Some(range) = start.and_then(|s| Some(s..s.checked_add(VOICE_BIN_BYTES)?)) else {
            return Err(bad(what, format!("{label}: storage offset {offset} is not a voice's")));
        };
        let storage = read(&format!("{prefix}data/{key}"), MAX_ENTRY_BYTES, &mut budget)?;
        let bytes = storage.get(range).ok_or_else(|| bad(what, format!("{label}: storage offset {offset} leaves less than one voice")))?;
        budget.spend(VOICE_BIN_BYTES as u64, what)?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let voices = match &values[pickle.root] {
        Value::Dict(items) => items
            .iter()
            .map(|&(k, v)| {
                let Value::Str(k) = &values[k] else { return Err(bad(what, "dict keys must be voice names")) };
                Ok((k.clone(), tensor(v, k)?))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![(name.to_string(), tensor(pickle.root, name)?)],
    };
    if voices.is_empty() {
        return Err(bad(what, "the .pt file holds an empty dict, no tensors"));
    }
    Ok(voices)
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
