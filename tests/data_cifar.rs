//! CIFAR-10/100 in the binary and pickled Python versions, from small files written in the real formats
//! by tests/support/write_cifar.py; the expected pixels and labels are what Python's unpickler reads back.
mod common;

use sk_exp::data::cifar::{self, Cifar};
use sk_exp::data::image::Image;
use sk_exp::data::transforms::{CIFAR100_NORM, CIFAR10_NORM};
use sk_exp::data::{open, CifarLabel, CifarSpec, DataSpec, Dataset, Split};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The files, written once per test binary.
fn files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::fresh_dir("data_cifar");
        common::run_python("tests/support/write_cifar.py", [&dir]);
        dir
    })
}

fn expected(stem: &str, what: &str) -> Vec<u8> {
    std::fs::read(files().join("expected").join(format!("{stem}.{what}"))).unwrap()
}

/// The spec of `root` (under the files) with `label` and the standard augmentation.
fn spec(root: impl AsRef<Path>, label: CifarLabel) -> CifarSpec {
    CifarSpec { label, ..CifarSpec::new(files().join(root)) }
}

fn check(set: &Cifar, stem: &str, labels: &str) {
    let (images, labels) = (expected(stem, "images"), expected(stem, labels));
    assert_eq!(set.len(), labels.len(), "{stem}");
    for i in 0..set.len() {
        assert_eq!(set.image(i), Image::from_planar(32, 32, &images[i * 3072..(i + 1) * 3072]), "{stem} image {i}");
        assert_eq!(set.label(i), labels[i] as i64, "{stem} label {i}");
    }
}

#[test]
fn cifar10_reads_alike_from_python2_python3_and_binary_files() {
    for dir in ["py2/cifar-10-batches-py", "py3/cifar-10-batches-py", "bin/cifar-10-batches-bin"] {
        let (train, test) = cifar::open(&files().join(dir), &spec(dir, CifarLabel::Fine)).unwrap();
        assert_eq!(train.len(), 1003 + 4 + 2 + 5 + 3, "{dir}");
        assert_eq!(train.num_classes(), 10);
        check(&train, "c10_train", "labels");
        check(&test, "c10_test", "labels");
    }
}

#[test]
fn cifar100_reads_fine_or_coarse_labels() {
    for dir in ["py2/cifar-100-python", "py3/cifar-100-python", "bin/cifar-100-binary"] {
        let (train, test) = cifar::open(&files().join(dir), &spec(dir, CifarLabel::Fine)).unwrap();
        assert_eq!(train.num_classes(), 100);
        check(&train, "c100_train", "labels");
        check(&test, "c100_test", "labels");
        let (train, test) = cifar::open(&files().join(dir), &spec(dir, CifarLabel::Coarse)).unwrap();
        assert_eq!(train.num_classes(), 20);
        check(&train, "c100_train", "coarse");
        check(&test, "c100_test", "coarse");
    }
}

#[test]
fn spec_finds_the_directory_and_normalises_samples() {
    let splits = open(&DataSpec::Cifar(CifarSpec::new("bin/cifar-10-batches-bin")), Some(files())).unwrap();
    assert_eq!((splits.train.len(), splits.eval.len(), splits.eval.image_size()), (1017, 4, (32, 32)));
    let images = expected("c10_test", "images");
    let sample = splits.eval.sample(2, Split::Eval, 0).unwrap();
    // Pixel (0, 5) of each channel, normalised with the CIFAR-10 statistics.
    for c in 0..3 {
        let raw = images[2 * 3072 + c * 1024 + 5] as f32 / 255.0;
        let want = (raw - CIFAR10_NORM.mean[c]) / CIFAR10_NORM.std[c];
        assert!((sample.pixels[c * 1024 + 5] - want).abs() < 1e-5);
    }
    // Training samples are augmented from their seed.
    let a = splits.train.sample(7, Split::Train, 1).unwrap().pixels;
    assert_eq!(a, splits.train.sample(7, Split::Train, 1).unwrap().pixels);
    assert!((2..10).any(|s| splits.train.sample(7, Split::Train, s).unwrap().pixels != a));

    let err = open(&DataSpec::Cifar(spec("py3", CifarLabel::Coarse)), None).err().unwrap().to_string();
    assert!(err.contains("several CIFAR versions") && err.contains("cifar-100-python"), "{err}");
    let splits = open(&DataSpec::Cifar(spec("py3/cifar-100-python", CifarLabel::Coarse)), None).unwrap();
    assert_eq!(splits.train.num_classes(), 20);
    let s = splits.eval.sample(0, Split::Eval, 0).unwrap();
    let raw = expected("c100_test", "images")[0] as f32 / 255.0;
    assert!((s.pixels[0] - (raw - CIFAR100_NORM.mean[0]) / CIFAR100_NORM.std[0]).abs() < 1e-5);
}

/// A copy of one batch directory in a fresh place (at `name/inner`), so a test can damage it.
fn copy_at(dir: &str, name: &str, inner: &str) -> PathBuf {
    let top = common::fresh_dir(&format!("data_cifar_{name}"));
    let to = top.join(inner);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(files().join(dir)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

fn copy_of(dir: &str, name: &str) -> PathBuf {
    copy_at(dir, name, "")
}

#[test]
fn the_official_directory_is_found_inside_the_root() {
    let inner = copy_at("py2/cifar-100-python", "parent", "cifar-100-python");
    let (dir, layout) = cifar::detect(inner.parent().unwrap()).unwrap();
    assert_eq!((dir, layout), (inner, cifar::Layout::Cifar100Python));
}

fn truncate(path: &Path, remove: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() - remove]).unwrap();
}

fn open_err(root: &Path, label: CifarLabel) -> String {
    format!("{:#}", cifar::open(root, &spec(root, label)).expect_err("expected an error"))
}

#[test]
fn bad_cifar_files_are_errors_that_name_the_file() {
    let dir = copy_of("bin/cifar-10-batches-bin", "truncated_bin");
    truncate(&dir.join("data_batch_2.bin"), 100);
    let err = open_err(&dir, CifarLabel::Fine);
    assert!(err.contains("data_batch_2.bin") && err.contains("truncated"), "{err}");

    for style in ["py2", "py3"] {
        let dir = copy_of(&format!("{style}/cifar-10-batches-py"), &format!("truncated_{style}"));
        truncate(&dir.join("test_batch"), 3000);
        let err = open_err(&dir, CifarLabel::Fine);
        assert!(err.contains("test_batch") && err.contains("truncated"), "{err}");
    }

    let dir = copy_of("py2/cifar-10-batches-py", "missing_batch");
    std::fs::remove_file(dir.join("data_batch_3")).unwrap();
    let err = open_err(&dir, CifarLabel::Fine);
    assert!(err.contains("data_batch_3"), "{err}");

    let dir = copy_of("py2/cifar-10-batches-py", "not_a_pickle");
    std::fs::write(dir.join("data_batch_1"), b"\x80\x02cos\nsystem\n(U\x02lstR.").unwrap();
    let err = open_err(&dir, CifarLabel::Fine);
    assert!(err.contains("data_batch_1") && err.contains("os.system"), "{err}");

    let err = open_err(&files().join("bin/cifar-10-batches-bin"), CifarLabel::Coarse);
    assert!(err.contains("coarse labels exist only in CIFAR-100"), "{err}");
    let err = open_err(&files().join("no-such-dir"), CifarLabel::Fine);
    assert!(err.contains("no-such-dir") && err.contains("does not exist"), "{err}");
    let err = open_err(&files().join("expected"), CifarLabel::Fine);
    assert!(err.contains("no CIFAR files"), "{err}");
}
