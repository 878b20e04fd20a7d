//! CIFAR-10 and CIFAR-100 top-1 error against #params, one panel each: the paper's Table 5 models
//! (ResNeXt-29 at three widths, SENet-29, SKNet-29) as in Figure 2, and the user's CIFAR runs as crosses.
use super::params_error::{paper_families, Family, ParamsError};
use super::{save, text, Area, Backend, Figure, Frame, AXIS_TITLE_SIZE, TITLE_SIZE};
use crate::report::measured::{self, data_set_reason, Measured, Place, Point};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The panels: caption and the data set's name in the paper's table and in results.csv's `data_kind`.
const PANELS: [(&str, &str); 2] = [("CIFAR-10", "cifar10"), ("CIFAR-100", "cifar100")];

/// The runs of every results.csv under `dir` on CIFAR-10 (panel 0) and CIFAR-100 (panel 1), and the count
/// of the others by data set.
pub fn measured_points(dir: &Path) -> Result<Measured> {
    measured::measured_points(dir, PANELS.len(), |data| {
        match data.and_then(|d| PANELS.iter().position(|(_, kind)| *kind == d.kind)) {
            Some(panel) => Place::Panel(panel),
            None => Place::LeftOut(data_set_reason(data)),
        }
    })
}

struct CifarFigure<'a> {
    /// Per panel: Table 5's families on its data set and the measured points.
    panels: Vec<(Vec<Family>, &'a [Point])>,
}

impl Figure for CifarFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1600, 760)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let measured = self.panels.iter().any(|(_, points)| !points.is_empty());
        let title =
            format!("CIFAR top-1 error vs #params (paper: Table 5){}", if measured { " and your runs" } else { "" });
        let area = root.titled(&title, text(TITLE_SIZE))?;
        let areas = area.margin(10, 0, 0, 10).split_evenly((1, PANELS.len()));
        for (((caption, _), (families, measured)), panel) in PANELS.iter().zip(&self.panels).zip(&areas) {
            let frame = Frame { caption: Some((caption, AXIS_TITLE_SIZE)), margin: 15, label_area: (60, 75) };
            ParamsError { families, measured }.draw(root, panel, &frame)?;
        }
        Ok(())
    }
}

/// Writes `STEM.png` and `STEM.svg`: Table 5's models on CIFAR-10 and CIFAR-100, with the measured points
/// of each (`measured[0]` CIFAR-10, `measured[1]` CIFAR-100; missing panels have none).
pub fn plot_cifar(measured: &[Vec<Point>], stem: &Path) -> Result<Vec<PathBuf>> {
    let panels = PANELS
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| (paper_families("5", kind), measured.get(i).map_or(&[][..], Vec::as_slice)))
        .collect();
    save(&CifarFigure { panels }, stem)
}
