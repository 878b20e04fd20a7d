//! The batch loader: seeded shuffling, ordered delivery from parallel workers, bad samples.
use anyhow::{anyhow, Result};
use sk_exp::data::synthetic::{Subset, Synthetic, SyntheticSpec};
use sk_exp::data::{batches, BadSample, Batch, Dataset, LoaderConfig, Sample, Split};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

fn synthetic(train_size: usize) -> Arc<dyn Dataset> {
    let spec = SyntheticSpec { seed: 1, train_size, eval_size: 10, classes: 10, image_size: 32 };
    Arc::new(Synthetic::new(&spec, Subset::Train).unwrap())
}

fn collect(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Vec<Batch> {
    batches(dataset, config).unwrap().collect::<Result<Vec<_>>>().unwrap()
}

fn same(a: &[Batch], b: &[Batch]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.images.equal(&y.images) && x.labels.equal(&y.labels))
}

#[test]
fn worker_count_does_not_change_the_batches() {
    let data = synthetic(70);
    let config = |workers, prefetch| LoaderConfig { prefetch, ..LoaderConfig::train(16, 9, 2, workers) };
    let inline = collect(data.clone(), config(0, 1));
    assert_eq!(inline.len(), 4, "70 samples in batches of 16, last one dropped");
    assert_eq!(inline[0].images.size(), [16, 3, 32, 32]);
    assert!(same(&inline, &collect(data.clone(), config(1, 1))));
    assert!(same(&inline, &collect(data.clone(), config(3, 6))));
    assert!(same(&inline, &collect(data.clone(), config(3, 1))));
    // Another epoch or run seed shuffles and augments differently.
    let other_epoch = collect(data.clone(), LoaderConfig::train(16, 9, 3, 2));
    let other_seed = collect(data.clone(), LoaderConfig::train(16, 10, 2, 2));
    assert!(!same(&inline, &other_epoch) && !same(&inline, &other_seed));
}

/// Labels equal to their index, so the order of delivery is visible.
struct Numbered {
    len: usize,
    bad: Vec<usize>,
    skip: bool,
}

impl Dataset for Numbered {
    fn len(&self) -> usize {
        self.len
    }
    fn num_classes(&self) -> i64 {
        self.len as i64
    }
    fn image_size(&self) -> (i64, i64) {
        (1, 1)
    }
    fn sample(&self, index: usize, _: Split, seed: u64) -> Result<Sample> {
        if self.bad.contains(&index) {
            let path = format!("/data/img{index}.JPEG").into();
            return Err(anyhow!(BadSample { path, reason: "not a JPEG file".into() }));
        }
        Ok(Sample { pixels: vec![(seed % 1000) as f32; 3], label: index as i64 })
    }
    fn skips_bad_samples(&self) -> bool {
        self.skip
    }
}

fn labels(batches: &[Batch]) -> Vec<i64> {
    batches.iter().flat_map(|b| Vec::<i64>::try_from(&b.labels).unwrap()).collect()
}

#[test]
fn every_sample_once_in_a_permutation_of_the_epoch() {
    let data: Arc<dyn Dataset> = Arc::new(Numbered { len: 50, bad: vec![], skip: false });
    let eval = collect(data.clone(), LoaderConfig::eval(8, 2));
    assert_eq!(eval.len(), 7, "the last partial batch is kept in evaluation");
    assert_eq!(labels(&eval), (0..50).collect::<Vec<_>>());

    let epoch =
        |e| labels(&collect(data.clone(), LoaderConfig { drop_last: false, ..LoaderConfig::train(8, 4, e, 3) }));
    let (first, second) = (epoch(0), epoch(1));
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert_ne!(first, (0..50).collect::<Vec<_>>());
    assert_ne!(first, second);
    assert_eq!(first, epoch(0));
}

#[test]
fn a_bad_sample_stops_the_epoch_with_its_file_name() {
    let data: Arc<dyn Dataset> = Arc::new(Numbered { len: 40, bad: vec![21], skip: false });
    let mut it = batches(data, LoaderConfig::eval(8, 2)).unwrap();
    for _ in 0..2 {
        assert!(it.next().unwrap().is_ok());
    }
    let err = it.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("/data/img21.JPEG") && err.contains("not a JPEG"), "{err}");
    assert!(it.next().is_none(), "the loader stops after an error");
}

#[test]
fn bad_samples_are_skipped_and_counted_when_allowed() {
    // The same batches, count and examples (in sample order) whichever worker finishes first.
    for workers in [0, 1, 3] {
        let data: Arc<dyn Dataset> = Arc::new(Numbered { len: 20, bad: vec![3, 8, 9, 10, 11], skip: true });
        let mut it = batches(data, LoaderConfig::eval(4, workers)).unwrap();
        let got: Vec<Batch> = it.by_ref().collect::<Result<_>>().unwrap();
        // Batch [8..12) is all bad and disappears; batch [0..4) loses one sample.
        assert_eq!(got.iter().map(|b| b.labels.size()[0]).collect::<Vec<_>>(), [3, 4, 4, 4]);
        assert_eq!(labels(&got), [0, 1, 2, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19]);
        let skipped = it.skipped();
        assert_eq!(skipped.count, 5);
        let expected: Vec<String> =
            [3, 8, 9, 10, 11].iter().map(|i| format!("/data/img{i}.JPEG: not a JPEG file")).collect();
        assert_eq!(skipped.examples, expected, "{workers} workers");
    }
}

#[test]
fn dropping_the_loader_early_stops_its_workers() {
    let data = synthetic(500);
    let mut it = batches(data, LoaderConfig::train(10, 0, 0, 3)).unwrap();
    assert_eq!(it.num_batches(), 50);
    assert!(it.next().unwrap().is_ok());
    // Dropping joins the workers, so workers that do not stop make it block: it runs on a thread of its own
    // and the test fails when it has not returned in a minute (it takes milliseconds), instead of hanging.
    let (dropped, done) = mpsc::channel();
    let dropping = std::thread::spawn(move || {
        drop(it);
        let _ = dropped.send(());
    });
    let limit = Duration::from_secs(60);
    match done.recv_timeout(limit) {
        Ok(()) => dropping.join().unwrap(),
        Err(RecvTimeoutError::Timeout) => panic!(
            "dropping the loader after 1 of its 50 batches did not return within {} s: its workers did not stop",
            limit.as_secs()
        ),
        Err(RecvTimeoutError::Disconnected) => std::panic::resume_unwind(dropping.join().unwrap_err()),
    }
    assert!(batches(synthetic(5), LoaderConfig::train(0, 0, 0, 1)).is_err());
}
