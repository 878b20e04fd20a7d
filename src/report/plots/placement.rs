//! Where to put point labels so that they cover neither each other nor the markers and lines.
//! Greedy: each label tries spots around its point, nearest first, and keeps the least covered one.

/// A pixel rectangle; `x1` and `y1` are exclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn at(top_left: (i32, i32), size: (u32, u32)) -> Self {
        Rect { x0: top_left.0, y0: top_left.1, x1: top_left.0 + size.0 as i32, y1: top_left.1 + size.1 as i32 }
    }

    pub fn around(center: (i32, i32), half: i32) -> Self {
        Rect { x0: center.0 - half, y0: center.1 - half, x1: center.0 + half + 1, y1: center.1 + half + 1 }
    }

    fn area(&self) -> i64 {
        i64::from((self.x1 - self.x0).max(0)) * i64::from((self.y1 - self.y0).max(0))
    }

    pub fn overlap(&self, other: &Rect) -> i64 {
        Rect {
            x0: self.x0.max(other.x0),
            y0: self.y0.max(other.y0),
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
        }
        .area()
    }

    /// How much of `self` lies outside `bounds`.
    fn outside(&self, bounds: &Rect) -> i64 {
        self.area() - self.overlap(bounds)
    }

    /// The point of the rectangle nearest to `p` (where a leader line should end).
    pub fn nearest_point(&self, p: (i32, i32)) -> (i32, i32) {
        (p.0.clamp(self.x0, self.x1 - 1), p.1.clamp(self.y0, self.y1 - 1))
    }
}

/// Small squares along a polyline, so that labels keep off the lines.
pub(crate) fn polyline_obstacles(points: &[(i32, i32)]) -> Vec<Rect> {
    let mut rects = Vec::new();
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) / 3).max(1);
        for s in 0..=steps {
            let t = f64::from(s) / f64::from(steps);
            let p = (x0 + (f64::from(x1 - x0) * t).round() as i32, y0 + (f64::from(y1 - y0) * t).round() as i32);
            rects.push(Rect::around(p, 1));
        }
    }
    rects
}

/// A placed label: its box, and whether a leader line must tie it to its point (it sits far from it, or
/// nearer to another point).
pub(crate) struct Placed {
    pub rect: Rect,
    pub leader: bool,
}

fn distance(rect: &Rect, p: (i32, i32)) -> f64 {
    let q = rect.nearest_point(p);
    f64::from(q.0 - p.0).hypot(f64::from(q.1 - p.1))
}

/// Distances between a point and its label's box, nearest first.
const GAPS: [i32; 4] = [12, 20, 32, 48];

/// Where a label of size (w, h) may go around an anchor: left or right of it, level or shifted up and
/// down (so that a column of close points gets a column of labels), or centred above or below it.
fn spots((ax, ay): (i32, i32), (w, h): (i32, i32)) -> Vec<(i32, i32)> {
    let mut spots = Vec::new();
    for gap in GAPS {
        for shift in [0, -1, 1, -2, 2, -3, 3, -4, 4, -6, 6] {
            let y = ay - h / 2 + shift * h / 2;
            spots.push((ax + gap, y));
            spots.push((ax - gap - w, y));
        }
        spots.push((ax - w / 2, ay - gap - h));
        spots.push((ax - w / 2, ay + gap));
    }
    spots
}

/// Places labels of the given pixel sizes next to their anchors, inside `bounds`, avoiding `obstacles` and
/// each other, nearest spot first. Top to bottom, and labels one above the other keep the order of their
/// points, so that leader lines do not cross.
pub(crate) fn place_labels(
    anchors: &[(i32, i32)],
    sizes: &[(u32, u32)],
    obstacles: &[Rect],
    bounds: Rect,
) -> Vec<Placed> {
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by_key(|&i| (anchors[i].1, anchors[i].0));
    let mut rects: Vec<Option<Rect>> = vec![None; anchors.len()];
    for i in order {
        let (anchor, size) = (anchors[i], sizes[i]);
        let mut best: Option<(f64, Rect)> = None;
        for top_left in spots(anchor, (size.0 as i32, size.1 as i32)) {
            let rect = Rect::at(top_left, size);
            let mut covered = obstacles.iter().map(|o| o.overlap(&rect)).sum::<i64>() + rect.outside(&bounds) * 20;
            let mut inversions = 0;
            for (other, placed) in anchors.iter().zip(&rects) {
                let Some(placed) = placed else { continue };
                covered += placed.overlap(&rect) * 8;
                let same_column = rect.x0 < placed.x1 && placed.x0 < rect.x1;
                let points_order = (anchor.1 - other.1).signum();
                if same_column && points_order != 0 && points_order != (rect.y0 - placed.y0).signum() {
                    inversions += 1;
                }
            }
            let cost = covered as f64 * 10.0 + distance(&rect, anchor) * 15.0 + f64::from(inversions) * 3000.0;
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, rect));
            }
        }
        rects[i] = best.map(|(_, rect)| rect);
    }
    rects
        .into_iter()
        .zip(anchors)
        .map(|(rect, &anchor)| {
            let rect = rect.expect("every label is placed");
            let own = distance(&rect, anchor);
            let leader = own > f64::from(GAPS[1])
                || anchors.iter().any(|&other| other != anchor && distance(&rect, other) < own);
            Placed { rect, leader }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_labels_at_the_same_point_do_not_overlap() {
        let bounds = Rect { x0: 0, y0: 0, x1: 400, y1: 400 };
        let placed = place_labels(&[(200, 200), (200, 200)], &[(60, 14), (60, 14)], &[], bounds);
        assert_eq!(placed[0].rect.overlap(&placed[1].rect), 0);
    }

    #[test]
    fn labels_stay_inside_the_bounds() {
        let bounds = Rect { x0: 0, y0: 0, x1: 100, y1: 100 };
        let placed = place_labels(&[(95, 50)], &[(40, 14)], &[], bounds);
        assert_eq!(placed[0].rect.outside(&bounds), 0, "{:?}", placed[0].rect);
    }
}
