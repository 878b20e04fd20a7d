//! `sk-exp run --dry-run`: every run with its #params and MACs beside the paper's row, nothing trained.
use super::load::Experiment;
use crate::models::complexity::{self, Complexity};
use crate::report::table::relative_difference;
use anyhow::{Context, Result};
use std::fmt::Write as _;

pub fn dry_run(exp: &Experiment) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "experiment {}: {} runs", exp.name, exp.runs.len())?;
    writeln!(
        out,
        "{:<34} {:<24} {:>12} {:>9} {:>9} {:>8} {:>9} {:>8}  data / epochs / devices",
        "run", "model", "params", "GMACs", "paper #P", "dP", "paper GF", "dF"
    )?;
    for planned in &exp.runs {
        let run = &planned.run;
        let Complexity { params, macs } =
            complexity::measure(&run.model.spec).with_context(|| format!("run {}", planned.run_id))?;
        let row = planned.paper_row();
        let (pp, pf) = (row.and_then(|r| r.params_m), row.and_then(|r| r.gflops));
        let gmacs = macs as f64 / 1e9;
        writeln!(
            out,
            "{:<34} {:<24} {:>12} {:>9.3} {:>9} {:>8} {:>9} {:>8}  {} / {} / {}",
            planned.run_id,
            run.model.name,
            params,
            gmacs,
            pp.map_or("-".into(), |p| format!("{p}M")),
            relative_difference(params as f64 / 1e6, pp),
            pf.map_or("-".into(), |f| f.to_string()),
            relative_difference(gmacs, pf),
            run.data,
            run.recipe.epochs,
            run.devices.join(","),
        )?;
    }
    Ok(out)
}
