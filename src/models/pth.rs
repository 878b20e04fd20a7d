//! Weights files that `torch.save` writes (`.pth`, `.pt`, `pytorch_model.bin`): a state_dict, or a checkpoint
//! holding one, pickled, with its tensors' storages beside the pickle. Two layouts: PyTorch's zip archive
//! (`<archive>/data.pkl`, `<archive>/data/<key>`, the default since PyTorch 1.6) and the legacy stream before
//! it (a magic number, three small pickles, the object's pickle, a pickle of storage keys, then each storage's
//! element count and bytes). The pickle is read with an allow-list of the few globals a state_dict needs
//! ([`ALLOWED`]): no code from the file runs, and any other global is refused by name.
use crate::data::pickle::{self, Calls, Value};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use tch::{Kind, Tensor};

/// A zip archive's first bytes (a local file header).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// The legacy format's first pickle: its magic number 0x1950a86a20f9469cfc6c, as pickle protocol 2 (what
/// `torch.save` uses) writes it.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
/// The legacy format's version, its second pickle.
const LEGACY_VERSION: i64 = 1001;

/// The globals a state_dict's pickle may name. Storage types (`torch.FloatStorage`, ...) are allowed too,
/// as the first field of a persistent id: see [`storage_kind`].
pub const ALLOWED: &[&str] =
    &["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"];

/// Keys under which checkpoints commonly keep their model's state_dict, tried in this order.
pub const NESTED_KEYS: &[&str] = &["state_dict", "model_state_dict", "model", "module"];

/// A state_dict read from a `torch.save` file, in the file's order and dtypes, and what was done to find it
/// (a nested checkpoint, a DDP prefix), one line each.
pub struct StateDict {
    pub tensors: Vec<(String, Tensor)>,
    pub notes: Vec<String>,
}

/// Whether a file starting with `head` (its first 16 bytes or fewer) is in one of `torch.save`'s formats.
pub fn is_torch_save(head: &[u8]) -> bool {
    head.starts_with(ZIP_MAGIC) || head.starts_with(LEGACY_MAGIC)
}

/// The state_dict of a `torch.save` file. Errors are one line and name the file.
pub fn read(path: &Path) -> Result<StateDict> {
    read_any(path).with_context(|| format!("weights file {}", path.display()))
}

fn read_any(path: &Path) -> Result<StateDict> {
    let mut file = std::fs::File::open(path).map_err(|e| anyhow!("cannot open it: {e}"))?;
    let mut head = Vec::new();
    (&mut file).take(ZIP_MAGIC.len() as u64).read_to_end(&mut head)?;
    if head.starts_with(ZIP_MAGIC) {
        read_zip(file)
    } else {
        let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read it: {e}"))?;
        if !bytes.starts_with(LEGACY_MAGIC) {
            bail!("not a torch.save file (neither a zip archive nor the legacy format)");
        }
        read_legacy(&bytes)
    }
}

fn read_zip(file: std::fs::File) -> Result<StateDict> {
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut archive = zip::ZipArchive::new(file).map_err(|e| anyhow!("cannot read it as a zip archive: {e}"))?;
    let names: Vec<String> = archive.file_names().map(String::from).collect();
    // torch.save names every entry `<archive>/...`, the archive named after the file it first wrote.
    let pickles: Vec<&String> =
        names.iter().filter(|n| n.strip_suffix("data.pkl").is_some_and(is_top_folder)).collect();
    let pickle_name = match pickles[..] {
        [one] => one.clone(),
        [] if names.iter().any(|n| n.ends_with("/constants.pkl") || n.contains("/code/")) => {
            bail!("a TorchScript archive, not a torch.save state_dict (give it with --torchscript)")
        }
        [] => bail!("a zip archive without a data.pkl: not written by torch.save"),
        _ => bail!("a zip archive with {} data.pkl files: not written by torch.save", pickles.len()),
    };
    let prefix = pickle_name.strip_suffix("data.pkl").expect("filtered above").to_string();
    let mut read_entry = |name: &str, expected: Option<usize>| entry_bytes(&mut archive, name, expected, file_len);
    if let Ok(order) = read_entry(&format!("{prefix}byteorder"), None) {
        if order != b"little" {
            bail!(
                "its tensors are stored {}-endian; only little-endian files are read",
                String::from_utf8_lossy(&order)
            );
        }
    }
    let pickled = read_entry(&pickle_name, None)?;
    let mut calls = TorchCalls::default();
    let (value, _) = pickle::parse_with(&pickled, &mut calls).with_context(|| pickle_name.clone())?;
    let found = find_state_dict(&value)?;
    build(found, |storage| {
        let bytes = read_entry(&format!("{prefix}data/{}", storage.key), Some(storage.bytes()?))?;
        storage.tensor(&bytes)
    })
}

/// `dir` is empty or one folder name followed by `/`.
fn is_top_folder(dir: &str) -> bool {
    dir.is_empty() || dir.find('/') == Some(dir.len() - 1)
}

/// The bytes of the entry `name` of an archive of `file_len` bytes; with `expected`, an entry of another size
/// is an error. Sizes are checked before anything is allocated.
fn entry_bytes(
    archive: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
    expected: Option<usize>,
    file_len: u64,
) -> Result<Vec<u8>> {
    let mut entry = archive.by_name(name).map_err(|e| anyhow!("entry {name}: {e}"))?;
    if entry.size() > file_len {
        bail!("entry {name} claims {} bytes, more than the file holds (corrupt archive?)", entry.size());
    }
    let size = usize::try_from(entry.size()).map_err(|_| anyhow!("entry {name} is too large"))?;
    if expected.is_some_and(|n| n != size) {
        bail!("entry {name} holds {size} bytes, its tensors need {}", expected.unwrap_or(0));
    }
    let mut bytes = Vec::with_capacity(size);
    entry.read_to_end(&mut bytes).map_err(|e| anyhow!("entry {name}: {e}"))?;
    if bytes.len() != size {
        bail!("entry {name}: read {} bytes of {size}", bytes.len());
    }
    Ok(bytes)
}

fn read_legacy(bytes: &[u8]) -> Result<StateDict> {
    let mut calls = TorchCalls::default();
    let mut pos = LEGACY_MAGIC.len();
    let mut next = |what: &str, calls: &mut TorchCalls| -> Result<Value> {
        let (value, used) = pickle::parse_with(&bytes[pos..], calls).with_context(|| format!("its {what}"))?;
        pos += used;
        Ok(value)
    };
    let version = next("version", &mut calls)?;
    if !matches!(version, Value::Int(LEGACY_VERSION)) {
        bail!("legacy format version {version:?}, expected {LEGACY_VERSION}");
    }
    let info = next("system information", &mut calls)?;
    if !matches!(info.get("little_endian"), Some(Value::Bool(true))) {
        bail!("written on a big-endian machine; only little-endian files are read");
    }
    let value = next("object", &mut calls)?;
    let keys = next("storage keys", &mut calls)?;
    let Value::List(keys) = &keys else { bail!("its storage keys are not a list") };
    let keys: Vec<String> = keys
        .borrow()
        .iter()
        .map(|k| k.as_text().ok_or_else(|| anyhow!("a storage key is not text")))
        .collect::<Result<_>>()?;

    // Each storage in turn: its element count (int64) and its bytes.
    let mut offsets = HashMap::new();
    for key in keys {
        let storage = calls.storages.get(&key).ok_or_else(|| anyhow!("storage {key} is stored but never used"))?;
        let count = bytes.get(pos..pos + 8).ok_or_else(|| anyhow!("the file ends before storage {key}"))?;
        let count = i64::from_le_bytes(count.try_into().expect("8 bytes"));
        if count != storage.numel {
            bail!("storage {key} holds {count} elements, its persistent id says {}", storage.numel);
        }
        let start = pos + 8;
        let end = start.checked_add(storage.bytes()?).filter(|&end| end <= bytes.len());
        let end = end.ok_or_else(|| anyhow!("the file ends inside storage {key} (truncated?)"))?;
        offsets.insert(key, start..end);
        pos = end;
    }
    let found = find_state_dict(&value)?;
    build(found, |storage| {
        let range = offsets.get(&storage.key).ok_or_else(|| anyhow!("storage {} is not in the file", storage.key))?;
        storage.tensor(&bytes[range.clone()])
    })
}

/// A storage a persistent id names: `("storage", torch.FloatStorage, key, location, numel)`.
#[derive(Debug)]
struct StorageRef {
    key: String,
    kind: Kind,
    numel: i64,
}

impl StorageRef {
    fn bytes(&self) -> Result<usize> {
        usize::try_from(self.numel)
            .ok()
            .and_then(|n| n.checked_mul(self.kind.elt_size_in_bytes()))
            .ok_or_else(|| anyhow!("storage {}: {} elements is not a size", self.key, self.numel))
    }

    /// The storage as a flat tensor of its kind, copied from `bytes` (little-endian).
    fn tensor(&self, bytes: &[u8]) -> Result<Tensor> {
        Tensor::f_from_data_size(bytes, &[self.numel], self.kind)
            .map_err(|e| anyhow!("storage {}: {}", self.key, first_line(&e)))
    }
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`: a view of a storage.
#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

impl TensorRef {
    /// That the view lies inside its storage (libtorch would abort on one that does not).
    fn check(&self) -> Result<()> {
        if self.size.len() != self.stride.len() {
            bail!("size {:?} and stride {:?} differ in length", self.size, self.stride);
        }
        if self.offset < 0 || self.size.iter().chain(&self.stride).any(|&d| d < 0) {
            bail!(
                "a negative offset, size or stride (offset {}, size {:?}, stride {:?})",
                self.offset,
                self.size,
                self.stride
            );
        }
        if self.size.contains(&0) {
            return Ok(());
        }
        let last = self
            .size
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |end, (&n, &s)| end.checked_add((n - 1).checked_mul(s)?));
        if last.is_none_or(|last| last >= self.storage.numel) {
            bail!(
                "offset {}, size {:?} and stride {:?} reach past its storage of {} elements",
                self.offset,
                self.size,
                self.stride,
                self.storage.numel
            );
        }
        Ok(())
    }
}

/// The storage type a global names, and its element kind.
fn storage_kind(global: &str) -> Option<Kind> {
    Some(match global.strip_prefix("torch.")? {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// The allow-list of a state_dict's pickle: OrderedDicts, tensors rebuilt from storages, parameters.
#[derive(Default)]
struct TorchCalls {
    /// Every storage the pickle named, by key.
    storages: HashMap<String, Rc<StorageRef>>,
}

impl Calls for TorchCalls {
    fn files(&self) -> &'static str {
        "torch.save state_dicts"
    }

    fn global(&mut self, name: &str) -> Result<()> {
        if ALLOWED.contains(&name) || storage_kind(name).is_some() {
            return Ok(());
        }
        bail!(
            "the pickle names {name}, which a state_dict does not need: refused, nothing from the file was run \
             (allowed: {}, torch.*Storage)",
            ALLOWED.join(", ")
        )
    }

    fn reduce(&mut self, callable: &Value, args: &Value) -> Result<Value> {
        let Value::Global(name) = callable else { bail!("REDUCE of something that is not a global") };
        let Value::Tuple(args) = args else { bail!("REDUCE arguments are not a tuple") };
        match &**name {
            "collections.OrderedDict" if args.is_empty() => Ok(Value::Dict(Default::default())),
            "torch._utils._rebuild_tensor_v2" => {
                let [Value::Object(storage), Value::Int(offset), size, stride, ..] = &args[..] else {
                    bail!("_rebuild_tensor_v2 without (storage, offset, size, stride, ...)")
                };
                let storage = storage
                    .clone()
                    .downcast::<StorageRef>()
                    .map_err(|_| anyhow!("_rebuild_tensor_v2 of a non-storage"))?;
                let dims = |v: &Value, what: &str| {
                    v.as_int_list().ok_or_else(|| anyhow!("tensor {what} is not a tuple of ints"))
                };
                let tensor =
                    TensorRef { storage, offset: *offset, size: dims(size, "size")?, stride: dims(stride, "stride")? };
                Ok(Value::Object(Rc::new(tensor)))
            }
            "torch._utils._rebuild_parameter" => match &args[..] {
                [tensor @ Value::Object(object), ..] if object.is::<TensorRef>() => Ok(tensor.clone()),
                _ => bail!("_rebuild_parameter of something that is not a tensor"),
            },
            other => bail!("a call of {other} with these arguments is not in a state_dict"),
        }
    }

    fn build(&mut self, target: &Value, state: &Value) -> Result<()> {
        match (target, state) {
            // A state_dict's `_metadata` attribute (module versions): not needed for its tensors.
            (Value::Dict(_), Value::Dict(_)) => Ok(()),
            _ => bail!("setting the state of an object that is not a dict (not in a state_dict)"),
        }
    }

    fn persistent_load(&mut self, pid: &Value) -> Result<Value> {
        let Value::Tuple(fields) = pid else { bail!("a persistent id that is not a tuple") };
        let [Value::Str(tag), Value::Global(kind), key, _location, Value::Int(numel), rest @ ..] = &fields[..] else {
            bail!("a persistent id that is not (\"storage\", type, key, location, numel)")
        };
        if &**tag != "storage" {
            bail!("a persistent id of type {tag:?}, not a storage");
        }
        if !matches!(rest, [] | [Value::None]) {
            bail!("a view of a storage (legacy storage views are not supported)");
        }
        let kind = storage_kind(kind).ok_or_else(|| anyhow!("unsupported storage type {kind}"))?;
        let key = key.as_text().ok_or_else(|| anyhow!("a storage key that is not text"))?;
        let storage = Rc::new(StorageRef { key: key.clone(), kind, numel: *numel });
        storage.bytes()?;
        let storage = match self.storages.get(&key) {
            Some(seen) if seen.kind != kind || seen.numel != *numel => {
                bail!("storage {key} is named with two types or sizes")
            }
            Some(seen) => seen.clone(),
            None => {
                self.storages.insert(key, storage.clone());
                storage
            }
        };
        Ok(Value::Object(storage))
    }
}

/// The state_dict's entries (name, tensor view) and the notes on where it was found.
struct Found {
    entries: Vec<(String, Rc<TensorRef>)>,
    notes: Vec<String>,
}

/// The entries of `value` if it is a state_dict: a dict of text keys and tensors only.
fn as_state_dict(value: &Value) -> Option<Vec<(String, Rc<TensorRef>)>> {
    let Value::Dict(items) = value else { return None };
    let items = items.borrow();
    items
        .iter()
        .map(|(key, value)| match (key, value) {
            (Value::Str(name), Value::Object(object)) => Some((name.to_string(), object.clone().downcast().ok()?)),
            _ => None,
        })
        .collect()
}

/// The state_dict in a file's object: the object itself, or a checkpoint's entry under one of
/// [`NESTED_KEYS`]; keys all prefixed `module.` (DistributedDataParallel's wrapper) lose the prefix.
fn find_state_dict(value: &Value) -> Result<Found> {
    let mut notes = Vec::new();
    let mut entries = match as_state_dict(value) {
        Some(entries) => entries,
        None => {
            let Value::Dict(items) = value else {
                bail!("it holds a {}, not a state_dict (a dict of tensors)", type_name(value))
            };
            let keys: Vec<String> =
                items.borrow().iter().map(|(k, _)| k.as_text().unwrap_or_else(|| format!("{k:?}"))).collect();
            let nested = NESTED_KEYS.iter().find_map(|key| Some((key, as_state_dict(&value.get(key)?)?)));
            let Some((key, entries)) = nested else {
                bail!(
                    "no state_dict in it: a dict of {} whose entries under {} are not dicts of tensors either",
                    list(&keys),
                    NESTED_KEYS.join(", ")
                )
            };
            let others: Vec<String> = keys.iter().filter(|k| k != key).cloned().collect();
            notes.push(format!("a checkpoint: its state_dict is the entry \"{key}\" (others: {})", list(&others)));
            entries
        }
    };
    const DDP_PREFIX: &str = "module.";
    if !entries.is_empty() && entries.iter().all(|(name, _)| name.starts_with(DDP_PREFIX)) {
        for (name, _) in &mut entries {
            name.drain(..DDP_PREFIX.len());
        }
        notes.push(format!("every key starts with \"{DDP_PREFIX}\" (DistributedDataParallel): the prefix is dropped"));
    }
    Ok(Found { entries, notes })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Object(object) if object.is::<TensorRef>() => "tensor",
        _ => "object",
    }
}

/// The first line of a libtorch error (the rest is a C++ backtrace).
fn first_line(err: &tch::TchError) -> String {
    err.to_string().lines().next().unwrap_or_default().to_string()
}

/// Up to eight names, then a count of the rest.
fn list(names: &[String]) -> String {
    let shown = names.iter().take(8).map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    match names.len() {
        0 => "nothing else".into(),
        n if n > 8 => format!("{shown} and {} more", n - 8),
        _ => shown,
    }
}

/// The tensors of `found`, each storage read once by `storage_tensor` (only those the state_dict uses).
fn build(found: Found, mut storage_tensor: impl FnMut(&StorageRef) -> Result<Tensor>) -> Result<StateDict> {
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut tensors = Vec::with_capacity(found.entries.len());
    for (name, view) in found.entries {
        view.check().with_context(|| format!("tensor {name}"))?;
        let key = &view.storage.key;
        if !storages.contains_key(key) {
            storages.insert(key.clone(), storage_tensor(&view.storage)?);
        }
        let flat = &storages[key];
        let tensor = flat
            .f_as_strided(&view.size, &view.stride, Some(view.offset))
            .and_then(|t| t.f_contiguous())
            .map_err(|e| anyhow!("tensor {name}: {}", first_line(&e)))?;
        tensors.push((name, tensor));
    }
    Ok(StateDict { tensors, notes: found.notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: i64, size: &[i64], stride: &[i64]) -> Result<()> {
        let storage = Rc::new(StorageRef { key: "0".into(), kind: Kind::Float, numel: 6 });
        TensorRef { storage, offset, size: size.to_vec(), stride: stride.to_vec() }.check()
    }

    #[test]
    fn views_must_lie_inside_their_storage() {
        view(0, &[2, 3], &[3, 1]).unwrap();
        view(0, &[3, 2], &[1, 3]).unwrap();
        view(5, &[], &[]).unwrap();
        view(100, &[0, 4], &[1 << 40, 1]).unwrap();
        let err = |offset, size: &[i64], stride: &[i64]| view(offset, size, stride).unwrap_err().to_string();
        assert!(err(1, &[2, 3], &[3, 1]).contains("reach past its storage of 6 elements"));
        assert!(err(0, &[2, 3], &[4, 1]).contains("reach past"));
        assert!(err(6, &[], &[]).contains("reach past"));
        assert!(err(0, &[2, i64::MAX], &[1, i64::MAX]).contains("reach past"));
        assert!(err(0, &[2, 3], &[-3, 1]).contains("negative"));
        assert!(err(0, &[2, 3], &[3]).contains("differ in length"));
    }

    #[test]
    fn storage_types_map_to_their_kinds_and_nothing_else_is_a_storage() {
        assert_eq!(storage_kind("torch.BFloat16Storage"), Some(Kind::BFloat16));
        assert_eq!(storage_kind("torch.HalfStorage"), Some(Kind::Half));
        assert_eq!(storage_kind("torch.LongStorage"), Some(Kind::Int64));
        assert_eq!(storage_kind("torch.UntypedStorage"), None);
        assert_eq!(storage_kind("os.FloatStorage"), None);
        let mut calls = TorchCalls::default();
        assert!(calls.global("torch.FloatStorage").is_ok() && calls.global("collections.OrderedDict").is_ok());
        assert!(calls.global("builtins.eval").unwrap_err().to_string().contains("names builtins.eval"));
    }
}
