//! The `data:` spec and the built-in synthetic data set.
use sk_exp::data::synthetic::{Subset, Synthetic, SyntheticSpec, CLASS_NAMES};
use sk_exp::data::{open, DataSpec, Dataset, Split};

fn spec(size: usize) -> SyntheticSpec {
    SyntheticSpec { seed: 5, train_size: 200, eval_size: 100, classes: 10, image_size: size }
}

#[test]
fn data_spec_reads_every_kind_and_rejects_unknown_fields() {
    let synthetic: DataSpec = yaml_serde::from_str("kind: synthetic\nseed: 3\ntrain_size: 64").unwrap();
    let DataSpec::Synthetic(s) = &synthetic else { panic!("expected synthetic, got {synthetic:?}") };
    assert_eq!((s.seed, s.train_size, s.eval_size, s.classes, s.image_size), (3, 64, 1000, 10, 32));

    let cifar: DataSpec = yaml_serde::from_str("kind: cifar\nroot: cifar-100-python\nlabel: coarse").unwrap();
    assert!(matches!(cifar, DataSpec::Cifar(ref c) if c.label == sk_exp::data::CifarLabel::Coarse));

    let folder: DataSpec = yaml_serde::from_str("kind: folder\nroot: /data/imagenet\neval_crop: 320").unwrap();
    let DataSpec::Folder(f) = &folder else { panic!("expected folder") };
    assert_eq!((f.crop, f.eval_crop, f.eval_resize(), f.skip_bad_images), (224, 320, 366, false));

    let err = yaml_serde::from_str::<DataSpec>("kind: synthetic\nsede: 3").unwrap_err().to_string();
    assert!(err.contains("sede"), "{err}");
    let err = yaml_serde::from_str::<DataSpec>("kind: cifar\nroot: x\nlabels: fine").unwrap_err().to_string();
    assert!(err.contains("labels"), "{err}");
    assert!(yaml_serde::from_str::<DataSpec>("kind: mnist").is_err());
}

#[test]
fn synthetic_images_are_a_function_of_seed_subset_and_index() {
    let a = Synthetic::new(&spec(32), Subset::Train).unwrap();
    let b = Synthetic::new(&spec(32), Subset::Train).unwrap();
    let eval = Synthetic::new(&spec(32), Subset::Eval).unwrap();
    let other_seed = Synthetic::new(&SyntheticSpec { seed: 6, ..spec(32) }, Subset::Train).unwrap();
    let first = a.render(7, 1.0).unwrap();
    assert_eq!(first, b.render(7, 1.0).unwrap());
    assert_ne!(first, a.render(17, 1.0).unwrap());
    assert_ne!(first, eval.render(7, 1.0).unwrap());
    assert_ne!(first, other_seed.render(7, 1.0).unwrap());
    // No eval image repeats a train image.
    let train: std::collections::HashSet<_> = (0..200).map(|i| a.render(i, 1.0).unwrap().pixels).collect();
    assert!((0..100).all(|i| !train.contains(&eval.render(i, 1.0).unwrap().pixels)));
    assert!(a.render(200, 1.0).is_err());
    assert!(a.render(0, 0.0).is_err());
}

#[test]
fn zoom_equals_centre_crop_of_a_finer_render() {
    // Scale 2 at 32 pixels samples the scene exactly where the centre 32x32 of a 64-pixel render does.
    let small = Synthetic::new(&spec(32), Subset::Eval).unwrap();
    let large = Synthetic::new(&spec(64), Subset::Eval).unwrap();
    for index in [0, 13, 42] {
        let zoomed = small.render(index, 2.0).unwrap();
        let full = large.render(index, 1.0).unwrap();
        let mut max_diff = 0;
        for y in 0..32 {
            for x in 0..32 {
                for c in 0..3 {
                    let a = zoomed.pixels[(y * 32 + x) * 3 + c] as i32;
                    let b = full.pixels[((y + 16) * 64 + x + 16) * 3 + c] as i32;
                    max_diff = max_diff.max((a - b).abs());
                }
            }
        }
        assert!(max_diff <= 1, "image {index}: zoom differs from the crop by {max_diff}");
        assert_ne!(zoomed, small.render(index, 1.0).unwrap());
        // The analysis input at scale 1 is exactly the evaluation sample.
        assert_eq!(
            small.zoomed_sample(index, 1.0).unwrap().pixels,
            small.sample(index, Split::Eval, 9).unwrap().pixels
        );
    }
}

#[test]
fn samples_are_normalised_labelled_and_augmented_from_their_seed() {
    let splits = open(&DataSpec::Synthetic(spec(32)), None).unwrap();
    let (train, eval) = (splits.train, splits.eval);
    assert_eq!((train.len(), eval.len(), train.num_classes(), train.image_size()), (200, 100, 10, (32, 32)));

    let mut counts = [0usize; CLASS_NAMES.len()];
    let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0f64);
    for i in 0..eval.len() {
        let s = eval.sample(i, Split::Eval, 0).unwrap();
        assert_eq!(s.pixels.len(), 3 * 32 * 32);
        counts[s.label as usize] += 1;
        for &p in &s.pixels {
            sum += p as f64;
            sum_sq += (p as f64).powi(2);
            n += 1.0;
        }
    }
    assert_eq!(counts, [10; 10]);
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).sqrt();
    assert!(mean.abs() < 0.15 && (0.85..1.15).contains(&std), "normalised mean {mean:.3}, std {std:.3}");

    // Eval ignores the seed; train augmentation depends on it and only on it.
    assert_eq!(eval.sample(3, Split::Eval, 1).unwrap().pixels, eval.sample(3, Split::Eval, 2).unwrap().pixels);
    let t1 = train.sample(3, Split::Train, 11).unwrap();
    assert_eq!(t1.pixels, train.sample(3, Split::Train, 11).unwrap().pixels);
    let differs = (12..20).any(|s| train.sample(3, Split::Train, s).unwrap().pixels != t1.pixels);
    assert!(differs, "augmentation ignores its seed");
}

#[test]
fn bad_synthetic_specs_are_errors() {
    let err = |s: SyntheticSpec| Synthetic::new(&s, Subset::Train).unwrap_err().to_string();
    assert!(err(SyntheticSpec { classes: 11, ..spec(32) }).contains("data.classes"));
    assert!(err(SyntheticSpec { classes: 1, ..spec(32) }).contains("data.classes"));
    assert!(err(SyntheticSpec { image_size: 4, ..spec(32) }).contains("data.image_size"));
    assert!(err(SyntheticSpec { train_size: 0, ..spec(32) }).contains("data.train_size"));
}
