//! Small services every layer uses: crash-safe file writes, CSV files with line-numbered errors, and the
//! statistics the reports share. Nothing here knows about models, data or runs.
pub mod csv_file;
pub mod fs;
pub mod stats;
