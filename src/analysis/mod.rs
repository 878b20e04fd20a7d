//! Analyses of trained models: the SK attention study of Figures 3, 4 and S1.
pub mod attention;
pub mod attention_report;
