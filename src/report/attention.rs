//! The attention analysis' files: four CSVs and three figures from the statistics.
use super::plots::attention as plots;
use crate::analysis::attention::{AttentionStats, CHANNEL_HEADER, CLASS_HEADER, SHIFT_HEADER, UNIT_HEADER};
use crate::analysis::attention_pass::{default_unit, last_unit_of_each_stage, AttentionSpec, Zoom};
use crate::util::csv_file::write_csv;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Writes attention_units.csv, attention_shifts.csv (paired change from the first scale),
/// attention_classes.csv and attention_channels.csv (for `unit`, channels averaged in groups of `group`)
/// into `out_dir`; returns their paths.
pub fn write_csvs(stats: &AttentionStats, out_dir: &Path, unit: &str, group: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = |name: &str| out_dir.join(name);
    let written = [
        path("attention_units.csv"),
        path("attention_shifts.csv"),
        path("attention_classes.csv"),
        path("attention_channels.csv"),
    ];
    write_csv(&written[0], &UNIT_HEADER, &stats.unit_rows())?;
    write_csv(&written[1], &SHIFT_HEADER, &stats.shift_rows())?;
    write_csv(&written[2], &CLASS_HEADER, &stats.class_rows())?;
    write_csv(&written[3], &CHANNEL_HEADER, &stats.channel_rows(unit, group)?)?;
    Ok(written.to_vec())
}

/// Writes the CSVs and the three figures of `stats` into `out_dir`; `title` names the model in the
/// figures. Returns the files written.
pub fn write_attention(
    stats: &AttentionStats,
    spec: &AttentionSpec,
    out_dir: &Path,
    title: &str,
) -> Result<Vec<PathBuf>> {
    let title = match spec.zoom {
        Zoom::Resize => format!("{title}, centre crop + resize"),
        Zoom::Render => format!("{title}, scenes rendered zoomed"),
    };
    let unit = spec.unit.clone().unwrap_or_else(|| default_unit(stats));
    let mut written = write_csvs(stats, out_dir, &unit, spec.group)?;
    written.extend(plots::plot_unit_differences(&stats.unit_rows(), &title, &out_dir.join("attention_units"))?);
    written.extend(plots::plot_channel_weights(
        &stats.channel_rows(&unit, spec.group)?,
        spec.group,
        &title,
        &out_dir.join("attention_channels"),
    )?);
    // Figure 4 compares the original images with the 1.5x ones; here the first two scales.
    if let [first, second, ..] = stats.scales() {
        let units = last_unit_of_each_stage(stats.units());
        written.extend(plots::plot_class_scatter(
            &stats.class_rows(),
            &units,
            (first, second),
            &title,
            &out_dir.join("attention_classes"),
        )?);
    }
    Ok(written)
}

/// A figure title for a run: its model and seed.
pub fn run_title(model: &str, seed: u64) -> String {
    format!("{model} (seed {seed})")
}
