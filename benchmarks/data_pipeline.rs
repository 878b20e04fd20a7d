//! Data pipeline throughput (images/s): the training loader over CIFAR (pad-4 crop + flip + normalise) or an
//! image folder (JPEG decode + random-resized crop 224 + flip + normalise), batched into tensors.
//! benchmarks/data_pipeline.sh runs it against benchmarks/data_pipeline.py (torchvision + PIL) on the same files.
use anyhow::Result;
use clap::{Parser, ValueEnum};
use sk_exp::data::{batches, open, CifarSpec, DataSpec, FolderSpec, LoaderConfig};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Cifar,
    Folder,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    kind: Kind,
    /// A CIFAR batch directory, or a folder root holding train/ and val/.
    #[arg(long)]
    root: PathBuf,
    /// Decoding threads (0: the calling thread only, which is also one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1)]
    epochs: u64,
}

/// CPU seconds this process has used so far, all threads, user + system.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn main() -> Result<()> {
    let args = Args::parse();
    tch::set_num_threads(1);
    let spec = match args.kind {
        Kind::Cifar => DataSpec::Cifar(CifarSpec::new(&args.root)),
        Kind::Folder => DataSpec::Folder(FolderSpec::new(&args.root)),
    };
    let train = open(&spec, None)?.train;
    let mut seen = 0;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for epoch in 0..args.epochs {
        let config = LoaderConfig { drop_last: false, ..LoaderConfig::train(args.batch_size, 0, epoch, args.threads) };
        for batch in batches(train.clone(), config)? {
            seen += batch?.labels.size()[0] as usize;
        }
    }
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    println!(
        "ours {:.1} images/s, {:.1} images per CPU-second ({seen} images, {seconds:.2} s wall, {cpu:.2} s CPU, {} threads)",
        seen as f64 / seconds,
        seen as f64 / cpu,
        args.threads
    );
    Ok(())
}
