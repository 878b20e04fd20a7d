//! The bounds every model spec field is checked against, far above any model of the paper, so that a bad
//! value is one error naming its field instead of a division by zero, a libtorch abort or a huge allocation.
use anyhow::{bail, Result};

/// Channels of any conv, and every width, group count or reduction.
pub const MAX_CHANNELS: i64 = 1 << 16;
/// Blocks (or dense layers) in one stage.
pub const MAX_BLOCKS: i64 = 1024;
/// Stages of a network (each halves the resolution).
pub const MAX_STAGES: usize = 8;
pub const MAX_CLASSES: i64 = 1_000_000;
/// The native input side: the data's image_size bound.
pub const MAX_INPUT_SIZE: i64 = 4096;
/// An SK path's kernel size and dilation.
pub const MAX_KERNEL: i64 = 31;

/// `value` within `min..=max`, else "`field`: expected at least/at most ..., got `value`".
pub fn check(field: &str, value: i64, min: i64, max: i64) -> Result<()> {
    if value < min {
        bail!("{field}: expected at least {min}, got {value}");
    }
    if value > max {
        bail!("{field}: expected at most {max}, got {value}");
    }
    Ok(())
}

/// [`check`] for every entry, naming the first bad one `field[i]`.
pub fn check_each(field: &str, values: &[i64], min: i64, max: i64) -> Result<()> {
    values.iter().enumerate().try_for_each(|(i, &v)| check(&format!("{field}[{i}]"), v, min, max))
}

/// A channel count: at least 1, at most [`MAX_CHANNELS`].
pub fn channels(field: &str, value: i64) -> Result<()> {
    check(field, value, 1, MAX_CHANNELS)
}

/// Between 1 and [`MAX_STAGES`] stages, their blocks each 1 to [`MAX_BLOCKS`].
pub fn stages(field: &str, blocks: &[i64]) -> Result<()> {
    if blocks.is_empty() || blocks.len() > MAX_STAGES {
        bail!("{field}: expected 1 to {MAX_STAGES} stages, got {}", blocks.len());
    }
    check_each(field, blocks, 1, MAX_BLOCKS)
}

/// The class count and the native input side (at least `min_input`, which is at least 2).
pub fn classes_and_input(num_classes: i64, input_size: i64, min_input: i64) -> Result<()> {
    check("model.num_classes", num_classes, 1, MAX_CLASSES)?;
    check("model.input_size", input_size, 2, MAX_INPUT_SIZE)?;
    if input_size < min_input {
        bail!("model.input_size: expected at least {min_input} for this network, got {input_size}");
    }
    Ok(())
}
