//! Figure 2 of the paper: ImageNet top-1 error against #params for the models of Table S2, one line per
//! family, plus the user's measured runs on ImageNet-like data (an image folder at the paper's 224 crop)
//! as crosses.
use super::params_error::{self, Family, ParamsError};
use super::{save, Area, Backend, Figure, Frame};
use crate::report::measured::{self, data_set_reason, Measured, Place, Point};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Table S2's models grouped by family, in the order the table lists them; points sorted by #params.
pub fn paper_families() -> Vec<Family> {
    params_error::paper_families("S2", "imagenet")
}

/// The runs of every results.csv under `dir` that Figure 2's axes can show (ImageNet-like data): one
/// panel of points, and the count of the others by data set.
pub fn measured_points(dir: &Path) -> Result<Measured> {
    measured::measured_points(dir, 1, |data| match data {
        Some(d) if d.is_imagenet_like() => Place::Panel(0),
        other => Place::LeftOut(data_set_reason(other)),
    })
}

struct Figure2<'a> {
    families: Vec<Family>,
    measured: &'a [Point],
}

impl Figure for Figure2<'_> {
    fn size(&self) -> (u32, u32) {
        (1280, 860)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let title = if self.measured.is_empty() {
            "ImageNet top-1 error vs #params (paper: Table S2, Figure 2)"
        } else {
            "ImageNet top-1 error vs #params (paper: Table S2, Figure 2) and your runs"
        };
        let chart = ParamsError { families: &self.families, measured: self.measured };
        chart.draw(root, root, &Frame::figure(title, (60, 75)))
    }
}

/// Writes `STEM.png` and `STEM.svg`: the paper's Table S2 models, with `measured` points added.
pub fn plot_figure2(measured: &[Point], stem: &Path) -> Result<Vec<PathBuf>> {
    save(&Figure2 { families: paper_families(), measured }, stem)
}
