//! `.npy` files of float tensors, for scripted comparisons with NumPy/PyTorch. tch's own reader copies
//! as many bytes as the header's shape promises without checking the file holds them, so a truncated file
//! would be read past its end; this one checks every field and the length.
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// A float32 or float64 array (C order, little-endian) as a float32 tensor of the same shape.
pub fn read_f32(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).map_err(|e| anyhow!("{}: not a usable .npy file: {e}", path.display()))
}

/// Writes `tensor` as a float32 array, or as int64 if it holds integers (labels); version 1.0, C order,
/// little-endian.
pub fn write(path: &Path, tensor: &Tensor) -> Result<()> {
    let integer = matches!(tensor.kind(), Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8);
    let (kind, descr) = if integer { (Kind::Int64, "<i8") } else { (Kind::Float, "<f4") };
    let tensor = tensor.to_kind(kind).to_device(tch::Device::Cpu).contiguous();
    let shape = tensor.size();
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let dims = if shape.len() == 1 { dims.trim_end_matches(' ') } else { dims.trim_end_matches(", ") };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // The header (with magic, version and length) ends in a newline at a multiple of 64 bytes.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let numel = tensor.numel();
    let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
    tensor.f_copy_data_u8(&mut data, numel).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;

    let mut out = Vec::with_capacity(header.len() + 10 + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    // Native order is little-endian on every platform libtorch ships for.
    out.extend_from_slice(&data);
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn parse(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("it does not start with the .npy magic string");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("format version {v} is not supported (expected 1, 2 or 3)"),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| anyhow!("the header is cut short"))?;
    let header = std::str::from_utf8(header).map_err(|_| anyhow!("the header is not text"))?;
    let descr = field(header, "descr")?.trim_matches(|c| c == '\'' || c == '"');
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => bail!("dtype '{other}': expected float32 ('<f4') or float64 ('<f8')"),
    };
    if field(header, "fortran_order")? != "False" {
        bail!("the array is in Fortran order; save a C-ordered array (numpy.ascontiguousarray)");
    }
    let shape = parse_shape(field(header, "shape")?)?;
    let data = &bytes[start + header_len..];
    // Checked: a shape like (2^32, 2^32) must not wrap around to a small byte count that the file matches.
    let needed = shape
        .iter()
        .try_fold(width, |bytes: usize, &d| bytes.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| anyhow!("shape {shape:?} is too large (its byte count overflows)"))?;
    if data.len() != needed {
        bail!("shape {shape:?} needs {needed} bytes of data, the file holds {}", data.len());
    }
    let values: Vec<f32> = if width == 4 {
        data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
    };
    Ok(Tensor::from_slice(&values).reshape(&shape))
}

/// The raw text of `key`'s value in the header's Python dict literal.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let at = quoted
        .iter()
        .find_map(|q| header.find(q.as_str()).map(|i| i + q.len()))
        .ok_or_else(|| anyhow!("the header has no '{key}'"))?;
    let rest =
        header[at..].trim_start().strip_prefix(':').ok_or_else(|| anyhow!("the header's '{key}' has no value"))?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') { rest.find(')').map(|i| i + 1) } else { rest.find([',', '}']) };
    Ok(rest[..end.unwrap_or(rest.len())].trim())
}

fn parse_shape(text: &str) -> Result<Vec<i64>> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| anyhow!("shape '{text}' is not a tuple"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<i64>().ok().filter(|&d| d >= 0).ok_or_else(|| anyhow!("shape '{text}': bad dimension '{d}'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("sk-exp-npy-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trips_shapes_and_values() {
        for shape in [vec![2i64, 3, 4, 5], vec![7], vec![]] {
            let path = temp("round.npy");
            let t = Tensor::randn(&shape, (Kind::Float, tch::Device::Cpu));
            write(&path, &t).unwrap();
            let back = read_f32(&path).unwrap();
            assert_eq!(back.size(), shape);
            assert!(back.equal(&t));
            let _ = std::fs::remove_file(&path);
        }
    }

    /// `bytes` with the first occurrence of `from` replaced by `to` (of the same length).
    fn replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn integers_are_written_as_int64() {
        let path = temp("labels.npy");
        write(&path, &Tensor::from_slice(&[3i64, 1, 4])).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let data_start = bytes.len() - 24;
        assert_eq!(data_start % 64, 0, "the data should start 64-byte aligned");
        assert!(String::from_utf8_lossy(&bytes[..data_start]).contains("'descr': '<i8'"));
        assert_eq!(&bytes[data_start..], [3i64, 1, 4].map(i64::to_le_bytes).concat());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let path = temp("bad.npy");
        let message = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            format!("{:#}", read_f32(&path).unwrap_err())
        };
        assert!(message(b"hello").contains("magic string"));
        let t = Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu));
        write(&path, &t).unwrap();
        let good = std::fs::read(&path).unwrap();
        assert!(message(&good[..good.len() - 4]).contains("needs 24 bytes of data, the file holds 20"));
        assert!(message(&replaced(&good, b"<f4", b"<i4")).contains("dtype '<i4'"));
        assert!(message(&replaced(&good, b"False", b"True ")).contains("Fortran order"));
        let _ = std::fs::remove_file(&path);
        assert!(format!("{:#}", read_f32(&path).unwrap_err()).contains("reading"));
    }
}
