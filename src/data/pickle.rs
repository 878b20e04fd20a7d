//! A small unpickler for the CIFAR Python files: a dict of byte strings, int lists and one uint8 numpy
//! array. It understands the binary opcodes of protocols 2-4 and exactly the globals those files use
//! (numpy's array reconstruction and Python 3's `_codecs.encode` for byte strings); anything else is an
//! error, so no pickle ever runs code here. [`parse_with`] takes another allow-list ([`Calls`]): what
//! `torch.save` state_dicts need (models::pth).
use anyhow::{anyhow, bail, Context, Result};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(DictItems),
    Global(Rc<str>),
    /// numpy.dtype(...): its type string ("u1", ...).
    Dtype(Rc<str>),
    /// An ndarray: empty until BUILD gives it its state.
    Array(Rc<RefCell<Option<NdArray>>>),
    /// An object a [`Calls`] made (a storage, a tensor); opaque to the unpickler.
    Object(Rc<dyn Any>),
}

/// Dropped without recursion: a crafted pickle of a few hundred kilobytes can nest containers a few hundred
/// thousand levels deep (before `parse` refuses it), and a recursive drop of that overflows the stack.
impl Drop for Value {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut value) = pending.pop() {
            value.take_children(&mut pending);
        }
    }
}

/// A dict's (key, value) pairs in pickle order, shared like Python objects (the memo may hold it too).
pub type DictItems = Rc<RefCell<Vec<(Value, Value)>>>;

#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Rc<[u8]>,
}

impl Value {
    /// Moves this container's items to `out` if this is its last owner (the Rc's only strong reference),
    /// leaving it shallow; a shared container keeps its items for its other owners.
    fn take_children(&mut self, out: &mut Vec<Value>) {
        match self {
            Value::Tuple(items) => {
                if let Some(items) = Rc::get_mut(items) {
                    out.extend(items.iter_mut().map(|v| std::mem::replace(v, Value::None)));
                }
            }
            Value::List(items) => {
                if let Some(items) = Rc::get_mut(items) {
                    out.append(items.get_mut());
                }
            }
            Value::Dict(items) => {
                if let Some(items) = Rc::get_mut(items) {
                    out.extend(items.get_mut().drain(..).flat_map(|(k, v)| [k, v]));
                }
            }
            _ => {}
        }
    }

    /// The containers directly inside this one, and its identity (for the nesting check), if it is one.
    fn items(&self) -> Option<(*const (), Vec<Value>)> {
        match self {
            Value::Tuple(items) => Some((Rc::as_ptr(items) as *const (), items.to_vec())),
            Value::List(items) => Some((Rc::as_ptr(items) as *const (), items.borrow().clone())),
            Value::Dict(items) => {
                let pairs = items.borrow().iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
                Some((Rc::as_ptr(items) as *const (), pairs))
            }
            _ => None,
        }
    }

    /// Text of a str or byte-string key (Python 2 files hold byte strings, Python 3 ones either).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Look up `key` in a dict, matching str and byte-string keys alike.
    pub fn get(&self, key: &str) -> Option<Value> {
        let Value::Dict(items) = self else { return None };
        items.borrow().iter().find(|(k, _)| k.as_text().as_deref() == Some(key)).map(|(_, v)| v.clone())
    }

    pub fn as_int_list(&self) -> Option<Vec<i64>> {
        let items: Vec<Value> = match self {
            Value::List(l) => l.borrow().clone(),
            Value::Tuple(t) => t.to_vec(),
            _ => return None,
        };
        items.iter().map(|v| if let Value::Int(i) = v { Some(*i) } else { None }).collect()
    }

    pub fn as_array(&self) -> Option<NdArray> {
        match self {
            Value::Array(a) => a.borrow().clone(),
            _ => None,
        }
    }
}

/// The deepest nesting of containers `parse` accepts; the CIFAR files nest three levels.
pub const MAX_DEPTH: usize = 100;

/// Parse one pickle. Errors name the byte offset; the caller adds the file name.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    parse_with(bytes, &mut CifarCalls).map(|(value, _)| value)
}

/// What a pickle may name and call: the allow-list of one kind of file. Everything a pickle does beyond
/// building plain values (None, numbers, strings, tuples, lists, dicts) goes through it, so a pickle runs
/// only what it allows.
pub trait Calls {
    /// The files this allow-list is for, for errors ("the CIFAR files").
    fn files(&self) -> &'static str;
    /// GLOBAL and STACK_GLOBAL naming `module.name`: an error refuses the pickle there.
    fn global(&mut self, _name: &str) -> Result<()> {
        Ok(())
    }
    /// REDUCE: `callable(*args)`.
    fn reduce(&mut self, callable: &Value, args: &Value) -> Result<Value>;
    /// BUILD: `target.__setstate__(state)`.
    fn build(&mut self, target: &Value, state: &Value) -> Result<()>;
    /// BINPERSID and PERSID: the object a persistent id stands for.
    fn persistent_load(&mut self, _pid: &Value) -> Result<Value> {
        bail!("persistent ids are not used by {}", self.files())
    }
}

/// Parse the pickle at the start of `bytes` with the allow-list `calls`; returns its value and the bytes
/// it took (a file may hold several pickles in a row). Errors name the byte offset.
pub fn parse_with(bytes: &[u8], calls: &mut dyn Calls) -> Result<(Value, usize)> {
    let (value, used) =
        Unpickler { input: bytes, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), calls }.run()?;
    check_depth(&value)?;
    Ok((value, used))
}

/// That `root` nests containers at most [`MAX_DEPTH`] levels deep (and holds none inside itself), so that
/// whatever walks it recursively (`Debug`, a caller) stays within the stack. Iterative, and linear in the
/// containers: a container shared by several others (through the memo) is measured once.
fn check_depth(root: &Value) -> Result<()> {
    struct Frame {
        id: *const (),
        items: Vec<Value>,
        next: usize,
        /// The deepest nesting among the items seen so far.
        deepest: usize,
    }
    let too_deep = || anyhow!("containers nested deeper than {MAX_DEPTH} levels");
    let Some((id, items)) = root.items() else { return Ok(()) };
    let mut depths: HashMap<*const (), usize> = HashMap::new();
    let mut path = vec![Frame { id, items, next: 0, deepest: 0 }];
    while let Some(top) = path.last_mut() {
        if let Some(item) = top.items.get(top.next) {
            top.next += 1;
            let Some((id, items)) = item.items() else { continue };
            if let Some(&depth) = depths.get(&id) {
                top.deepest = top.deepest.max(depth);
            } else if path.iter().any(|frame| frame.id == id) {
                bail!("a container holds itself");
            } else if path.len() >= MAX_DEPTH {
                return Err(too_deep());
            } else {
                path.push(Frame { id, items, next: 0, deepest: 0 });
            }
        } else {
            let done = path.pop().expect("the loop runs on a non-empty path");
            let depth = done.deepest + 1;
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            depths.insert(done.id, depth);
            if let Some(parent) = path.last_mut() {
                parent.deepest = parent.deepest.max(depth);
            }
        }
    }
    Ok(())
}

struct Unpickler<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack depths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    calls: &'a mut dyn Calls,
}

impl<'a> Unpickler<'a> {
    fn run(mut self) -> Result<(Value, usize)> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            self.step(op).with_context(|| format!("pickle opcode 0x{op:02x} at byte {at}"))?;
            if op == b'.' {
                return Ok((self.pop()?, self.pos));
            }
        }
    }

    /// One opcode. Each group below returns whether it knows `op`; an opcode no group knows is refused.
    fn step(&mut self, op: u8) -> Result<()> {
        let known = self.stack_or_memo_op(op)?
            || self.number_op(op)?
            || self.string_op(op)?
            || self.container_op(op)?
            || self.call_op(op)?;
        if !known {
            bail!("unsupported pickle opcode (not one {} use)", self.calls.files());
        }
        Ok(())
    }

    /// Protocol, framing, STOP, MARK, and storing to or loading from the memo.
    fn stack_or_memo_op(&mut self, op: u8) -> Result<bool> {
        match op {
            0x80 => {
                let version = self.byte()?;
                if version > 5 {
                    bail!("unsupported pickle protocol {version}");
                }
            }
            0x95 => {
                self.take(8)?; // FRAME: a length prefix only
            }
            b'.' => {} // STOP
            b'(' => self.marks.push(self.stack.len()),
            b'q' | b'r' | 0x94 => {
                // BINPUT, LONG_BINPUT, MEMOIZE (under the next free key)
                let key = match op {
                    b'q' => self.byte()? as u32,
                    b'r' => self.u32()?,
                    _ => self.memo.len() as u32,
                };
                self.put(key)?;
            }
            b'h' | b'j' => {
                let key = if op == b'h' { self.byte()? as u32 } else { self.u32()? };
                let value = self.memo.get(&key).cloned().ok_or_else(|| anyhow!("memo key {key} was never stored"))?;
                self.stack.push(value);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers of every width, and floats.
    fn number_op(&mut self, op: u8) -> Result<bool> {
        let value = match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'K' => Value::Int(self.byte()? as i64),
            b'M' => {
                let b = self.take(2)?;
                Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64)
            }
            b'J' => Value::Int(self.u32()? as i32 as i64),
            0x8a => {
                let n = self.byte()? as usize;
                Value::Int(long_from_le(self.take(n)?)?)
            }
            b'G' => Value::Float(f64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            _ => return Ok(false),
        };
        self.stack.push(value);
        Ok(true)
    }

    /// Byte strings and UTF-8 strings, each with a 1-, 4- or 8-byte length.
    fn string_op(&mut self, op: u8) -> Result<bool> {
        let n = match op {
            b'U' | b'C' | 0x8c => self.byte()? as usize,
            b'T' | b'B' | b'X' => self.u32()? as usize,
            0x8e | 0x8d => self.u64()?,
            _ => return Ok(false),
        };
        let bytes = self.take(n)?;
        let value = match op {
            0x8c | b'X' | 0x8d => Value::Str(std::str::from_utf8(bytes).context("string is not UTF-8")?.into()),
            _ => Value::Bytes(bytes.into()),
        };
        self.stack.push(value);
        Ok(true)
    }

    /// Building tuples, lists and dicts.
    fn container_op(&mut self, op: u8) -> Result<bool> {
        match op {
            b'}' => self.stack.push(Value::Dict(Default::default())),
            b']' => self.stack.push(Value::List(Default::default())),
            b')' => self.stack.push(Value::Tuple(Rc::new([]))),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items.into()));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(Rc::new(RefCell::new(items))));
            }
            0x85..=0x87 => {
                let items = self.pop_n((op - 0x84) as usize)?;
                self.stack.push(Value::Tuple(items.into()));
            }
            b'a' => {
                let item = self.pop()?;
                self.list_top()?.borrow_mut().push(item);
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.list_top()?.borrow_mut().extend(items);
            }
            b's' => {
                let pair = self.pop_n(2)?;
                let [key, value]: [Value; 2] = pair.try_into().map_err(|_| anyhow!("SETITEM needs two values"))?;
                self.dict_top()?.borrow_mut().push((key, value));
            }
            b'u' => {
                // SETITEMS: the key-value pairs above the last MARK into the dict below it.
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    bail!("SETITEMS with an odd number of values");
                }
                let dict = self.dict_top()?;
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.borrow_mut().push((k, v));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Naming globals, calling them (REDUCE, BUILD) and persistent ids: only what `self.calls` allows runs.
    fn call_op(&mut self, op: u8) -> Result<bool> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push_global(format!("{module}.{name}"))?;
            }
            0x93 => {
                let pair = self.pop_n(2)?;
                match (&pair[0], &pair[1]) {
                    (Value::Str(m), Value::Str(n)) => self.push_global(format!("{m}.{n}"))?,
                    _ => bail!("STACK_GLOBAL needs two strings"),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.calls.reduce(&callable, &args)?;
                self.stack.push(result);
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.stack.last().ok_or_else(|| anyhow!("BUILD on an empty stack"))?;
                self.calls.build(target, &state)?;
            }
            b'Q' | b'P' => {
                // BINPERSID (the id from the stack), PERSID (the id as a line of text).
                let pid = if op == b'Q' { self.pop()? } else { Value::Str(self.line()?.into()) };
                let object = self.calls.persistent_load(&pid)?;
                self.stack.push(object);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn push_global(&mut self, name: String) -> Result<()> {
        self.calls.global(&name)?;
        self.stack.push(Value::Global(name.into()));
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len()).ok_or_else(|| {
            anyhow!(
                "the pickle ends early: needed {n} bytes at byte {} of {} (truncated file?)",
                self.pos,
                self.input.len()
            )
        })?;
        let out = &self.input[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<usize> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().unwrap());
        usize::try_from(v).map_err(|_| anyhow!("length {v} too large"))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.input[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| anyhow!("the pickle ends inside a name"))?;
        let text = std::str::from_utf8(&rest[..len]).context("global name is not UTF-8")?.to_string();
        self.pos += len + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            bail!("stack underflow (below a MARK)");
        }
        self.stack.pop().ok_or_else(|| anyhow!("stack underflow"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            bail!("stack underflow: needed {n} values");
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().ok_or_else(|| anyhow!("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    fn put(&mut self, key: u32) -> Result<()> {
        let top = self.stack.last().ok_or_else(|| anyhow!("memo store from an empty stack"))?;
        self.memo.insert(key, top.clone());
        Ok(())
    }

    fn list_top(&self) -> Result<Rc<RefCell<Vec<Value>>>> {
        match self.stack.last() {
            Some(Value::List(l)) => Ok(l.clone()),
            _ => bail!("APPEND to something that is not a list"),
        }
    }

    fn dict_top(&self) -> Result<DictItems> {
        match self.stack.last() {
            Some(Value::Dict(d)) => Ok(d.clone()),
            _ => bail!("SETITEM on something that is not a dict"),
        }
    }
}

/// LONG1's little-endian two's-complement bytes as an i64 (at most 8 bytes).
fn long_from_le(bytes: &[u8]) -> Result<i64> {
    let n = bytes.len();
    if n > 8 {
        bail!("integer of {n} bytes is too large");
    }
    let fill = if bytes.last().is_some_and(|&x| x & 0x80 != 0) { 0xff } else { 0 };
    let mut le = [fill; 8];
    le[..n].copy_from_slice(bytes);
    Ok(i64::from_le_bytes(le))
}

/// The CIFAR files' allow-list: [`reduce`] and [`build`].
struct CifarCalls;

impl Calls for CifarCalls {
    fn files(&self) -> &'static str {
        "the CIFAR files"
    }
    fn reduce(&mut self, callable: &Value, args: &Value) -> Result<Value> {
        reduce(callable, args)
    }
    fn build(&mut self, target: &Value, state: &Value) -> Result<()> {
        build(target, state)
    }
}

/// The calls the CIFAR files make, and nothing else.
fn reduce(callable: &Value, args: &Value) -> Result<Value> {
    let Value::Global(name) = callable else { bail!("REDUCE of something that is not a global") };
    let Value::Tuple(args) = args else { bail!("REDUCE arguments are not a tuple") };
    match (&**name, &args[..]) {
        // Python 3's protocol-2 spelling of a byte string: _codecs.encode(text, "latin1").
        ("_codecs.encode", [Value::Str(text), Value::Str(encoding)]) if is_latin1(encoding) => {
            let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
            Ok(Value::Bytes(bytes.ok_or_else(|| anyhow!("latin1 text with a character above 255"))?.into()))
        }
        ("_codecs.encode", [Value::Bytes(_), ..]) => Ok(args[0].clone()),
        ("numpy.core.multiarray._reconstruct" | "numpy._core.multiarray._reconstruct", _) => {
            Ok(Value::Array(Rc::new(RefCell::new(None))))
        }
        ("numpy.dtype", [kind, ..]) => {
            let kind = kind.as_text().ok_or_else(|| anyhow!("numpy.dtype of a non-string"))?;
            Ok(Value::Dtype(kind.into()))
        }
        _ => bail!("unsupported call {name} in the pickle (not one the CIFAR files use)"),
    }
}

fn is_latin1(encoding: &str) -> bool {
    matches!(encoding.to_ascii_lowercase().as_str(), "latin1" | "latin-1" | "iso-8859-1")
}

/// ndarray.__setstate__((version, shape, dtype, fortran_order, raw bytes)); dtype state is ignored
/// (byte order does not matter for the one-byte types CIFAR uses, and the reader checks the type).
fn build(target: &Value, state: &Value) -> Result<()> {
    match target {
        Value::Dtype(_) => Ok(()),
        Value::Array(slot) => {
            let Value::Tuple(fields) = state else { bail!("array state is not a tuple") };
            let [_, shape, Value::Dtype(dtype), fortran, data] = &fields[..] else {
                bail!("array state is not (version, shape, dtype, fortran, data)")
            };
            if matches!(fortran, Value::Bool(true) | Value::Int(1)) {
                bail!("Fortran-ordered arrays are not supported");
            }
            let shape = shape.as_int_list().ok_or_else(|| anyhow!("array shape is not a tuple of ints"))?;
            let shape: Vec<usize> = shape.iter().map(|&d| usize::try_from(d)).collect::<Result<_, _>>()?;
            let Value::Bytes(data) = data else { bail!("array data is not a byte string") };
            *slot.borrow_mut() = Some(NdArray { dtype: dtype.to_string(), shape, data: data.clone() });
            Ok(())
        }
        _ => bail!("BUILD on an object this reader does not know"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pickle.dumps of {"labels": [1, 300, 70000, -5, 2**40], "name": "cat", "raw": b"\x00\xff",
    /// "pair": (True, None), "x": 1.5, "again": None, "same": <the labels list>} with protocol 2 (byte
    /// strings as _codecs.encode calls, BINPUT) and protocol 4 (FRAME, MEMOIZE, SHORT_BINBYTES).
    const PROTOCOL_2: &[u8] = b"\
        \x80\x02\x7d\x71\x00\x28\x58\x06\x00\x00\x00\x6c\x61\x62\x65\x6c\x73\x71\x01\x5d\x71\x02\x28\x4b\
        \x01\x4d\x2c\x01\x4a\x70\x11\x01\x00\x4a\xfb\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01\x65\x58\
        \x04\x00\x00\x00\x6e\x61\x6d\x65\x71\x03\x58\x03\x00\x00\x00\x63\x61\x74\x71\x04\x58\x03\x00\x00\
        \x00\x72\x61\x77\x71\x05\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x06\
        \x58\x03\x00\x00\x00\x00\xc3\xbf\x71\x07\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x08\x86\
        \x71\x09\x52\x71\x0a\x58\x04\x00\x00\x00\x70\x61\x69\x72\x71\x0b\x88\x4e\x86\x71\x0c\x58\x01\x00\
        \x00\x00\x78\x71\x0d\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x58\x05\x00\x00\x00\x61\x67\x61\x69\x6e\
        \x71\x0e\x4e\x58\x04\x00\x00\x00\x73\x61\x6d\x65\x71\x0f\x68\x02\x75\x2e";
    const PROTOCOL_4: &[u8] = b"\
        \x80\x04\x95\x6b\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x06\x6c\x61\x62\x65\x6c\x73\x94\x5d\
        \x94\x28\x4b\x01\x4d\x2c\x01\x4a\x70\x11\x01\x00\x4a\xfb\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\
        \x01\x65\x8c\x04\x6e\x61\x6d\x65\x94\x8c\x03\x63\x61\x74\x94\x8c\x03\x72\x61\x77\x94\x43\x02\x00\
        \xff\x94\x8c\x04\x70\x61\x69\x72\x94\x88\x4e\x86\x94\x8c\x01\x78\x94\x47\x3f\xf8\x00\x00\x00\x00\
        \x00\x00\x8c\x05\x61\x67\x61\x69\x6e\x94\x4e\x8c\x04\x73\x61\x6d\x65\x94\x68\x02\x75\x2e";
    /// pickle.dumps of an object whose __reduce__ is (os.system, ("true",)), protocol 4.
    const CALLS_OS_SYSTEM: &[u8] = b"\
        \x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x05\x70\x6f\x73\x69\x78\x94\x8c\x06\x73\x79\x73\
        \x74\x65\x6d\x94\x93\x94\x8c\x04\x74\x72\x75\x65\x94\x85\x94\x52\x94\x2e";

    #[test]
    fn reads_every_opcode_group_of_protocols_2_and_4() {
        for bytes in [PROTOCOL_2, PROTOCOL_4] {
            let dict = parse(bytes).unwrap();
            assert_eq!(dict.get("labels").unwrap().as_int_list().unwrap(), [1, 300, 70000, -5, 1 << 40]);
            assert_eq!(dict.get("same").unwrap().as_int_list().unwrap(), [1, 300, 70000, -5, 1 << 40]);
            assert_eq!(dict.get("name").unwrap().as_text().as_deref(), Some("cat"));
            assert!(matches!(dict.get("raw"), Some(Value::Bytes(ref b)) if **b == [0u8, 255]));
            assert!(matches!(dict.get("x"), Some(Value::Float(x)) if x == 1.5));
            assert!(matches!(dict.get("again"), Some(Value::None)));
            let Some(Value::Tuple(ref pair)) = dict.get("pair") else { panic!("pair is not a tuple") };
            assert!(matches!(pair[..], [Value::Bool(true), Value::None]));
        }
    }

    #[test]
    fn refuses_calls_and_opcodes_the_cifar_files_do_not_use() {
        let err = format!("{:#}", parse(CALLS_OS_SYSTEM).unwrap_err());
        assert!(err.contains("unsupported call posix.system"), "{err}");
        let err = format!("{:#}", parse(b"\x80\x02(i__builtin__\nobject\n.").unwrap_err());
        assert!(err.contains("opcode 0x69 at byte 3") && err.contains("unsupported pickle opcode"), "{err}");
        let err = format!("{:#}", parse(&PROTOCOL_4[..40]).unwrap_err());
        assert!(err.contains("the pickle ends early"), "{err}");
    }
}
