//! TensorBoard event files in the run folder, beside metrics.csv: every metrics.csv column per epoch
//! (`epoch/<column>`) and the training loss, top-1 error and learning rate every N optimizer steps
//! (`step/...`; the loss and error are the mean over the steps since the session's previous point). Every
//! scalar's step is the optimizer step (epoch k ends at step k x iterations per epoch), which the checkpoint
//! keeps, so a resumed run continues the same axis.
//!
//! Each training session appends a new file (`events.out.tfevents.<seconds>.sk-exp`; TensorBoard reads
//! every file in the folder in name order, and the seconds only grow); a resume first trims the earlier
//! files to the checkpoint's step ([`trim_after`]), as metrics.csv is trimmed to its epoch, so the events
//! of epochs a killed session never checkpointed are not shown twice.
//!
//! The format: TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data) of
//! `Event` protobufs. The handful of protobuf fields are encoded by hand: a protobuf crate would need the
//! message definitions mirrored or compiled from TensorFlow's .proto files for four fields.
//!
//! TensorBoard is a view of the run, not its record: a write that fails prints one warning and the run
//! trains on (metrics.csv and the checkpoints hold the results).
use super::metrics::EpochMetrics;
use crate::loss::ClassificationStats;
use crate::util::fs::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The run file's `tensorboard:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TensorBoardConfig {
    /// Write event files (on by default: a few hundred bytes per epoch).
    pub enabled: bool,
    /// Optimizer steps between two `step/...` points (`0`: per-epoch scalars only).
    pub every: u64,
}

impl Default for TensorBoardConfig {
    fn default() -> Self {
        // 20 steps: ~20 points per CIFAR epoch (391 steps), ~250 per ImageNet epoch, tens of bytes each.
        TensorBoardConfig { enabled: true, every: 20 }
    }
}

impl TensorBoardConfig {
    pub fn is_default(&self) -> bool {
        *self == TensorBoardConfig::default()
    }
}

/// The file name's prefix TensorBoard looks for and our suffix, which marks the files [`trim_after`] may change.
const PREFIX: &str = "events.out.tfevents.";
const SUFFIX: &str = ".sk-exp";

/// One training session's event file, opened on the first event; or nothing when disabled or failed.
pub struct EventLog {
    file: Option<(PathBuf, Option<std::fs::File>)>,
    every: u64,
    /// The steps since the last `step/...` point.
    window: ClassificationStats,
}

impl EventLog {
    /// The log of a session writing into `folder` (None: this process writes none, e.g. a rank other than 0).
    pub fn new(folder: Option<&Path>, config: &TensorBoardConfig) -> EventLog {
        let file = folder.filter(|_| config.enabled).map(|f| (next_file(f), None));
        EventLog { file, every: config.every, window: ClassificationStats::default() }
    }

    /// One optimizer step's training counts; every `every` steps their mean loss and error since the
    /// last point, and the step's learning rate.
    pub fn step(&mut self, step: u64, stats: ClassificationStats, lr: f64) {
        if self.file.is_none() || self.every == 0 {
            return;
        }
        self.window.add(stats);
        if step.is_multiple_of(self.every) {
            let w = std::mem::take(&mut self.window);
            self.write(step, &[("step/train_loss", w.loss()), ("step/train_top1_err", w.top1_err()), ("step/lr", lr)]);
        }
    }

    /// The epoch's metrics.csv row, at the step that ended the epoch.
    pub fn epoch(&mut self, step: u64, row: &EpochMetrics) {
        let scalars: Vec<(String, f64)> =
            row.columns().into_iter().filter_map(|(name, v)| v.map(|v| (format!("epoch/{name}"), v))).collect();
        let scalars: Vec<(&str, f64)> = scalars.iter().map(|(tag, v)| (tag.as_str(), *v)).collect();
        self.write(step, &scalars);
    }

    fn write(&mut self, step: u64, scalars: &[(&str, f64)]) {
        let Some((path, file)) = &mut self.file else { return };
        if let Err(err) = append_event(path, file, step, scalars) {
            eprintln!(
                "warning: TensorBoard events {}: {err:#}; no more events this session (metrics.csv goes on)",
                path.display()
            );
            self.file = None;
        }
    }
}

/// Opens the file on the first call (with the `file_version` record TensorBoard expects first), then
/// appends one event; written at once, so a live TensorBoard sees it.
fn append_event(path: &Path, file: &mut Option<std::fs::File>, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
    let mut bytes = Vec::new();
    if file.is_none() {
        let opened = std::fs::OpenOptions::new().create_new(true).append(true).open(path).context("creating")?;
        *file = Some(opened);
        bytes.extend(record(&event(0, Payload::FileVersion("brain.Event:2"))));
    }
    bytes.extend(record(&event(step, Payload::Scalars(scalars))));
    file.as_mut().expect("opened above").write_all(&bytes).context("writing")
}

/// A new file name in `folder` that sorts after every earlier session's (by name, as TensorBoard reads them),
/// even when the clock went back between sessions.
fn next_file(folder: &Path) -> PathBuf {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = our_files(folder).iter().filter_map(|p| file_seconds(p)).max();
    let seconds = last.map_or(now, |l| now.max(l + 1));
    folder.join(format!("{PREFIX}{seconds:010}{SUFFIX}"))
}

fn file_seconds(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
}

/// The event files sk-exp wrote in `folder`, in name order.
fn our_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| file_seconds(p).is_some()).collect();
    files.sort();
    files
}

/// Drops the events after `step` from the event files sk-exp wrote in `folder` (a resumed run continues
/// from its checkpoint's step), and any record cut short or corrupted by a crash; a file left with no
/// scalars is removed. A failure is a warning: the events are a view, the run must not stop for them.
pub fn trim_after(folder: &Path, step: u64) {
    for path in our_files(folder) {
        if let Err(err) = trim_file(&path, step) {
            eprintln!("warning: TensorBoard events {}: could not trim to step {step}: {err:#}", path.display());
        }
    }
}

fn trim_file(path: &Path, step: u64) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let records = read_records(&bytes);
    let kept: Vec<&[u8]> = records.iter().copied().filter(|(s, _)| *s <= step).map(|(_, r)| r).collect();
    // The first record is the file version (step 0); a file holding only it shows nothing.
    if kept.len() <= 1 {
        std::fs::remove_file(path)?;
    } else if kept.len() < records.len() || kept.iter().map(|r| r.len()).sum::<usize>() < bytes.len() {
        write_atomic(path, &kept.concat())?;
    }
    Ok(())
}

/// The whole, intact records of an event file with each one's event step, up to the first damaged one.
fn read_records(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 12) {
        let length = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let header_ok = masked_crc(&header[..8]) == u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
        let end = usize::try_from(length).ok().and_then(|l| (at + 12).checked_add(l)?.checked_add(4));
        let Some(end) = end.filter(|&e| header_ok && e <= bytes.len()) else { break };
        let data = &bytes[at + 12..end - 4];
        if masked_crc(data) != u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes")) {
            break;
        }
        records.push((event_step(data), &bytes[at..end]));
        at = end;
    }
    records
}

/// TFRecord framing of one record.
pub fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// TFRecord's masked CRC-32C (rotated and offset, so that a CRC stored inside the data does not look like one).
pub fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

enum Payload<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(&'a str, f64)]),
}

// Field numbers of tensorflow/core/util/event.proto and framework/summary.proto.
const EVENT_WALL_TIME: u64 = 1; // double
const EVENT_STEP: u64 = 2; // int64
const EVENT_FILE_VERSION: u64 = 3; // string
const EVENT_SUMMARY: u64 = 5; // Summary
const SUMMARY_VALUE: u64 = 1; // repeated Summary.Value
const VALUE_TAG: u64 = 1; // string
const VALUE_SIMPLE_VALUE: u64 = 2; // float
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

/// An `Event` protobuf stamped now.
fn event(step: u64, payload: Payload) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut out = Vec::new();
    key(&mut out, EVENT_WALL_TIME, FIXED64);
    out.extend_from_slice(&now.to_le_bytes());
    key(&mut out, EVENT_STEP, VARINT);
    varint(&mut out, step);
    match payload {
        Payload::FileVersion(version) => bytes_field(&mut out, EVENT_FILE_VERSION, version.as_bytes()),
        Payload::Scalars(scalars) => {
            let mut summary = Vec::new();
            for (tag, v) in scalars {
                let mut value = Vec::new();
                bytes_field(&mut value, VALUE_TAG, tag.as_bytes());
                key(&mut value, VALUE_SIMPLE_VALUE, FIXED32);
                value.extend_from_slice(&(*v as f32).to_le_bytes());
                bytes_field(&mut summary, SUMMARY_VALUE, &value);
            }
            bytes_field(&mut out, EVENT_SUMMARY, &summary);
        }
    }
    out
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, field << 3 | wire_type);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The `step` field of an encoded `Event` (0 when absent, as protobuf defaults it; also for a malformed one).
fn event_step(mut data: &[u8]) -> u64 {
    let mut step = 0;
    while let Some(k) = read_varint(&mut data) {
        let skip = match k & 7 {
            VARINT => match read_varint(&mut data) {
                Some(v) if k >> 3 == EVENT_STEP => {
                    step = v;
                    0
                }
                Some(_) => 0,
                None => return 0,
            },
            FIXED64 => 8,
            FIXED32 => 4,
            LENGTH_DELIMITED => read_varint(&mut data).map_or(usize::MAX, |l| l as usize),
            _ => return 0,
        };
        let Some(rest) = data.get(skip..) else { return 0 };
        data = rest;
    }
    step
}

fn read_varint(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, byte) in data.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_published_values() {
        // The CRC-32C check value (RFC 3720's polynomial; "123456789" -> 0xE3069283).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // TFRecord's mask of it, as TensorBoard's own masked_crc32c computes it.
        assert_eq!(masked_crc(b"123456789"), MASKED_CHECK);
    }

    /// tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789"), run in the venv.
    const MASKED_CHECK: u32 = 0xC78A_B0E5;

    #[test]
    fn a_record_frames_its_data_with_length_and_checksums() {
        let framed = record(b"abc");
        assert_eq!(&framed[..8], &3u64.to_le_bytes());
        assert_eq!(&framed[8..12], &masked_crc(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&framed[12..15], b"abc");
        assert_eq!(&framed[15..], &masked_crc(b"abc").to_le_bytes());
        assert_eq!(read_records(&framed).len(), 1);
        // A flipped data byte or a record cut short is not read.
        let mut flipped = framed.clone();
        flipped[13] ^= 1;
        assert!(read_records(&flipped).is_empty());
        assert!(read_records(&framed[..framed.len() - 1]).is_empty());
    }

    #[test]
    fn steps_read_back_from_encoded_events() {
        for step in [0, 1, 127, 128, 300_000, u64::from(u32::MAX) + 5] {
            assert_eq!(event_step(&event(step, Payload::Scalars(&[("a/b", 1.5), ("c", -2.0)]))), step);
            assert_eq!(event_step(&event(step, Payload::FileVersion("brain.Event:2"))), step);
        }
    }

    #[test]
    fn a_failed_write_turns_the_log_off_without_stopping_anything() {
        let folder = std::env::temp_dir().join(format!("sk-exp-tensorboard-missing-{}/no/such", std::process::id()));
        let mut log = EventLog::new(Some(&folder), &TensorBoardConfig { enabled: true, every: 1 });
        log.step(1, ClassificationStats::default(), 0.1);
        assert!(log.file.is_none(), "the log stays on after a failed write");
        log.step(2, ClassificationStats::default(), 0.1);
        assert!(!folder.exists());
    }

    #[test]
    fn trimming_keeps_the_events_up_to_the_step_and_drops_a_torn_tail() {
        let folder = std::env::temp_dir().join(format!("sk-exp-tensorboard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        let config = TensorBoardConfig { enabled: true, every: 2 };
        let mut log = EventLog::new(Some(&folder), &config);
        let stats = ClassificationStats { samples: 4, loss_sum: 4.0, ..Default::default() };
        for step in 1..=10 {
            log.step(step, stats, 0.1);
        }
        let path = log.file.as_ref().unwrap().0.clone();
        let steps = |path: &Path| read_records(&std::fs::read(path).unwrap()).iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(steps(&path), [0, 2, 4, 6, 8, 10]);
        let mut torn = std::fs::read(&path).unwrap();
        torn.truncate(torn.len() - 3);
        std::fs::write(&path, torn).unwrap();
        trim_after(&folder, 7);
        assert_eq!(steps(&path), [0, 2, 4, 6]);
        // A later session's file sorts after this one, and trimming to step 0 removes both.
        let mut next = EventLog::new(Some(&folder), &config);
        next.step(8, stats, 0.1);
        let later = next.file.as_ref().unwrap().0.clone();
        assert!(later > path, "{} sorts before {}", later.display(), path.display());
        trim_after(&folder, 0);
        assert!(our_files(&folder).is_empty());
        std::fs::remove_dir_all(folder).ok();
    }
}
