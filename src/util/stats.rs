//! Statistics shared by the analysis and the experiment summary.

/// Mean and sample standard deviation (None for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

/// The distinct items in order of first appearance.
pub fn first_appearance<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// The index of `name` in `names`, appended first if new (first-appearance order).
pub fn index_or_push(names: &mut Vec<String>, name: &str) -> usize {
    match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_string());
            names.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mean, 2.5);
        assert!((std.unwrap() - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, None));
    }

    #[test]
    fn first_appearance_keeps_order() {
        assert_eq!(first_appearance(["b", "a", "b", "c", "a"]), ["b", "a", "c"]);
        let mut names = vec!["x".to_string()];
        assert_eq!((index_or_push(&mut names, "y"), index_or_push(&mut names, "x")), (1, 0));
    }
}
