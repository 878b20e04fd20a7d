//! A legend drawn by hand, so that it can go in whichever corner of the plot covers the least data
//! (and so that point labels can keep out of it).
use super::placement::Rect;
use super::{text, Area, Backend, TICK_SIZE};
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

#[derive(Clone, Copy)]
pub(crate) enum Stroke {
    Solid,
    Dashed,
}

#[derive(Clone, Copy)]
pub(crate) enum Marker {
    Circle,
    Cross,
}

pub(crate) struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub stroke: Option<Stroke>,
    pub marker: Option<Marker>,
}

impl Entry {
    /// A line sample without a marker.
    pub fn line(label: impl Into<String>, color: RGBColor, stroke: Stroke) -> Self {
        Entry { label: label.into(), color, stroke: Some(stroke), marker: None }
    }
}

const ROW: i32 = 24;
const PAD: i32 = 10;
const SAMPLE: i32 = 40;

pub(crate) fn draw_marker<DB: Backend>(root: &Area<DB>, marker: Marker, at: (i32, i32), color: RGBColor) -> Result<()> {
    match marker {
        Marker::Circle => root.draw(&Circle::new(at, 5, color.filled()))?,
        Marker::Cross => root.draw(&Cross::new(at, 7, color.stroke_width(3)))?,
    }
    Ok(())
}

/// A horizontal line sample; dashes drawn by hand so they look the same in PNG and SVG.
fn draw_stroke<DB: Backend>(root: &Area<DB>, stroke: Stroke, from: (i32, i32), color: RGBColor) -> Result<()> {
    let style = color.stroke_width(3);
    match stroke {
        Stroke::Solid => root.draw(&PathElement::new(vec![from, (from.0 + SAMPLE, from.1)], style))?,
        Stroke::Dashed => {
            for x in (0..SAMPLE).step_by(13) {
                root.draw(&PathElement::new(
                    vec![(from.0 + x, from.1), (from.0 + (x + 8).min(SAMPLE), from.1)],
                    style,
                ))?;
            }
        }
    }
    Ok(())
}

/// Draws the legend inside `plot`, in the corner where it covers the fewest `obstacles`; returns its box.
pub(crate) fn draw_legend<DB: Backend>(
    root: &Area<DB>,
    entries: &[Entry],
    plot: Rect,
    obstacles: &[Rect],
) -> Result<Rect> {
    let style = text(TICK_SIZE);
    let mut text_width = 0;
    for entry in entries {
        text_width = text_width.max(root.estimate_text_size(&entry.label, &style)?.0 as i32);
    }
    let size = ((PAD * 3 + SAMPLE + text_width) as u32, (PAD * 2 + ROW * entries.len() as i32) as u32);
    let inset = 12;
    let corners = [
        (plot.x1 - inset - size.0 as i32, plot.y0 + inset),
        (plot.x0 + inset, plot.y0 + inset),
        (plot.x1 - inset - size.0 as i32, plot.y1 - inset - size.1 as i32),
        (plot.x0 + inset, plot.y1 - inset - size.1 as i32),
    ];
    let rect = corners
        .iter()
        .map(|&c| Rect::at(c, size))
        .min_by_key(|r| obstacles.iter().map(|o| o.overlap(r)).sum::<i64>())
        .expect("four corners");

    root.draw(&Rectangle::new([(rect.x0, rect.y0), (rect.x1, rect.y1)], WHITE.mix(0.92).filled()))?;
    root.draw(&Rectangle::new([(rect.x0, rect.y0), (rect.x1, rect.y1)], BLACK.mix(0.5).stroke_width(1)))?;
    let label_style = style.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, entry) in entries.iter().enumerate() {
        let y = rect.y0 + PAD + ROW * i as i32 + ROW / 2;
        let x = rect.x0 + PAD;
        if let Some(stroke) = entry.stroke {
            draw_stroke(root, stroke, (x, y), entry.color)?;
        }
        if let Some(marker) = entry.marker {
            draw_marker(root, marker, (x + SAMPLE / 2, y), entry.color)?;
        }
        root.draw_text(&entry.label, &label_style, (x + SAMPLE + PAD, y))?;
    }
    Ok(rect)
}
