use anyhow::Result;
use clap::{Args, ValueEnum};
use sk_exp::models::complexity::{self, Complexity};
use sk_exp::models::registry::{self, Entry};
use sk_exp::report::table::relative_difference;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
}

#[derive(Args)]
pub struct ModelsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Only these models (default: all).
    names: Vec<String>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

pub fn run(args: ModelsArgs) -> Result<()> {
    let entries: Vec<&Entry> = if args.names.is_empty() {
        registry::ENTRIES.iter().collect()
    } else {
        args.names.iter().map(|n| registry::entry(n)).collect::<Result<_>>()?
    };
    let mut csv_out = csv::Writer::from_writer(std::io::stdout());
    match args.format {
        Format::Csv => csv_out.write_record(["name", "params", "macs", "input", "paper_params_m", "paper_gflops"])?,
        Format::Table => println!(
            "{:<24} {:>12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  exact reference",
            "model", "params", "GMACs", "input", "paper #P", "dP", "paper GF", "dF"
        ),
    }
    for entry in entries {
        let spec = (entry.spec)();
        let Complexity { params, macs } = complexity::measure(&spec)?;
        let side = spec.input_size();
        let input = format!("{side}x{side}");
        let (paper_p, paper_f) = (entry.paper_params_m(), entry.paper_gflops());
        match args.format {
            Format::Csv => {
                csv_out.write_record([
                    entry.name,
                    &params.to_string(),
                    &macs.to_string(),
                    &input,
                    &opt(paper_p),
                    &opt(paper_f),
                ])?;
                csv_out.flush()?;
            }
            Format::Table => {
                let exact = match entry.exact_params() {
                    Some(e) if e == params => "exact".to_string(),
                    Some(e) => format!("MISMATCH: reference {e}"),
                    None => String::new(),
                };
                let gmacs = macs as f64 / 1e9;
                println!(
                    "{:<24} {:>12} {:>8.3} {:>8} {:>9} {:>8} {:>8} {:>8}  {}",
                    entry.name,
                    params,
                    gmacs,
                    input,
                    paper_p.map_or("-".into(), |p| format!("{p:.2}M")),
                    relative_difference(params as f64 / 1e6, paper_p),
                    paper_f.map_or("-".into(), |f| format!("{f}")),
                    relative_difference(gmacs, paper_f),
                    exact
                );
            }
        }
    }
    Ok(())
}
