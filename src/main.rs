use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "sk-exp", version, about = "Reproduce and extend Selective Kernel Networks (Li et al., CVPR 2019)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every model of the paper with exact #params and multiply-adds beside the paper's figures.
    Models(cli::models::ModelsArgs),
    /// Evaluate a TorchScript file or a model with its weights (top-1/top-5 error), or dump logits of a tensor.
    Eval(cli::eval::EvalArgs),
    /// Write a model with its weights for PyTorch: safetensors (PyTorch key names) and TorchScript.
    Export(cli::export::ExportArgs),
    /// Train one model (a YAML run file and/or flags); resumable.
    Train(cli::train::TrainArgs),
    /// Run an experiment (experiments/*.yaml): a sweep of runs, resumable, summarised beside the paper.
    Run(cli::run::RunArgs),
    /// Benchmarks on random data (images/s); benchmarks/*.sh sets them beside PyTorch doing the same work.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Figures: Figure 2 (paper + your runs), training curves, an experiment's summary bars.
    Plot(cli::plot::PlotArgs),
    /// The attention analysis (Figures 3, 4): SK selection weights as the central object is enlarged.
    Attention(cli::attention::AttentionArgs),
    /// One rank of a multi-device run (started by `sk-exp train` itself).
    #[command(hide = true)]
    Rank(cli::train::RankArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Forward+backward images/s of a model on random data.
    FwdBwd(cli::bench::FwdBwdArgs),
    /// Eval-mode forward images/s of a TorchScript file or a model on random data.
    Eval(cli::bench::EvalBenchArgs),
    /// Training-step images/s (forward, backward, optimizer step) of a model on random data.
    Train(cli::bench::TrainBenchArgs),
}

fn main() {
    let cli = Cli::parse();
    cli::omp_wait::adapt_to_load();
    let result: Result<()> = match cli.command {
        Command::Models(args) => cli::models::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Rank(args) => cli::train::run_rank(args),
        Command::Run(args) => cli::run::run(args),
        Command::Bench(BenchCommand::FwdBwd(args)) => cli::bench::run_fwd_bwd(args),
        Command::Plot(args) => cli::plot::run(args),
        Command::Attention(args) => cli::attention::run(args),
        Command::Bench(BenchCommand::Train(args)) => cli::bench::run_train(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Bench(BenchCommand::Eval(args)) => cli::bench::run_eval(args),
    };
    if let Err(err) = result {
        // One line per cause, no backtrace: the chain names the file or field that was wrong.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
