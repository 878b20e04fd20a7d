use anyhow::Result;
use clap::{Args, ValueEnum};
use sk_exp::models::complexity::{self, gmacs_text, Complexity};
use sk_exp::models::registry::{self, Entry};
use sk_exp::paper;
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

/// Which of the paper's figures our counts print as (#params in millions, GFLOPs under its convention).
fn rounds_text(params_m: f64, gflops: f64, paper_p: Option<f64>, paper_f: Option<f64>) -> String {
    let p = paper_p.is_some_and(|p| paper::rounds_to(params_m, p));
    let f = paper_f.is_some_and(|f| paper::rounds_to(gflops, f));
    match (p, f) {
        (true, true) => "#P GF",
        (true, false) => "#P",
        (false, true) => "GF",
        (false, false) => "-",
    }
    .to_string()
}

pub fn run(args: ModelsArgs) -> Result<()> {
    let entries: Vec<&Entry> = if args.names.is_empty() {
        registry::ENTRIES.iter().collect()
    } else {
        args.names.iter().map(|n| registry::entry(n)).collect::<Result<_>>()?
    };
    let mut csv_out = csv::Writer::from_writer(std::io::stdout());
    match args.format {
        Format::Csv => csv_out.write_record([
            "name",
            "params",
            "macs",
            "selection_macs",
            "input",
            "paper_params_m",
            "paper_gflops",
        ])?,
        Format::Table => {
            println!(
                "{:<24} {:>12} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6}  exact reference",
                "model", "params", "GMACs", "paper GM", "input", "paper #P", "dP", "paper GF", "dF", "rounds"
            );
            println!(
                "(GMACs: conv + linear; paper GM: plus the SK selection's M multiply-adds per output element, as \
                 the paper counts; dF compares paper GM; rounds: the paper figures ours print as)"
            );
        }
    }
    for entry in entries {
        let spec = (entry.spec)();
        let counts = complexity::measure(&spec)?;
        let side = spec.input_size();
        let input = format!("{side}x{side}");
        match args.format {
            Format::Csv => {
                csv_out.write_record([
                    entry.name,
                    &counts.params.to_string(),
                    &counts.macs.to_string(),
                    &counts.selection_macs.to_string(),
                    &input,
                    &opt(entry.paper_params_m()),
                    &opt(entry.paper_gflops()),
                ])?;
                csv_out.flush()?;
            }
            Format::Table => println!("{}", table_row(entry, &counts, &input)),
        }
    }
    Ok(())
}

fn table_row(entry: &Entry, counts: &Complexity, input: &str) -> String {
    let (paper_p, paper_f) = (entry.paper_params_m(), entry.paper_gflops());
    let exact = match entry.exact_params() {
        Some(e) if e == counts.params => "exact".to_string(),
        Some(e) => format!("MISMATCH: reference {e}"),
        None => String::new(),
    };
    let params_m = counts.params as f64 / 1e6;
    let paper_gmacs = counts.paper_macs() as f64 / 1e9;
    format!(
        "{:<24} {:>12} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6}  {}",
        entry.name,
        counts.params,
        gmacs_text(counts.macs),
        gmacs_text(counts.paper_macs()),
        input,
        paper_p.map_or("-".into(), |p| format!("{p:.2}M")),
        relative_difference(params_m, paper_p),
        paper_f.map_or("-".into(), |f| format!("{f}")),
        relative_difference(paper_gmacs, paper_f),
        rounds_text(params_m, paper_gmacs, paper_p, paper_f),
        exact
    )
}
