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
    /// Benchmarks (forward+backward images/s); benchmarks/*.sh sets them beside PyTorch.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Forward+backward images/s of a model on random data.
    FwdBwd(cli::bench::BenchArgs),
    /// Eval-mode forward images/s of a TorchScript file or a model on random data.
    Eval(cli::bench::EvalBenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Models(args) => cli::models::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Bench(BenchCommand::FwdBwd(args)) => cli::bench::run(args),
        Command::Bench(BenchCommand::Eval(args)) => cli::bench::run_eval(args),
    };
    if let Err(err) = result {
        // One line per cause, no backtrace: the chain names the file or field that was wrong.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
