//! The per-step counts of a training epoch, kept on the device and read back every few steps: a GPU step
//! then never waits for the host to look at its loss, and the host still sees every step's counts (in
//! order, so a non-finite loss is reported with its iteration, and the epoch's sums are the same to the bit).
use crate::loss::{ClassificationStats, DeviceStats};
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// Steps between reads on a GPU (the progress bar's cadence there). On the CPU every step is read: its
/// work is done when the step returns, so a read costs nothing and the bar moves with each step.
const GPU_READ_EVERY: usize = 32;

pub struct StepCounts {
    /// One [`DeviceStats`] row per step since the last read (float64, on the device).
    rows: Tensor,
    filled: usize,
    /// The epoch's iteration of the first row.
    first_iter: usize,
}

impl StepCounts {
    pub fn new(device: Device) -> StepCounts {
        let capacity = if device == Device::Cpu { 1 } else { GPU_READ_EVERY };
        StepCounts {
            rows: Tensor::zeros([capacity as i64, DeviceStats::WIDTH], (Kind::Double, device)),
            filled: 0,
            first_iter: 0,
        }
    }

    /// Keeps the counts of the next step; true when the log is full and should be read.
    pub fn push(&mut self, stats: &DeviceStats) -> bool {
        tch::no_grad(|| self.rows.get(self.filled as i64).copy_(stats.packed()));
        self.filled += 1;
        self.filled == self.rows.size()[0] as usize
    }

    /// The steps kept since the last read, as (epoch iteration, counts) in step order: one transfer,
    /// which waits for the device to finish them.
    pub fn read(&mut self) -> Result<Vec<(usize, ClassificationStats)>> {
        if self.filled == 0 {
            return Ok(Vec::new());
        }
        let values: Vec<f64> =
            Vec::try_from(self.rows.narrow(0, 0, self.filled as i64).reshape(-1).to_device(Device::Cpu))?;
        let counts = values.chunks_exact(DeviceStats::WIDTH as usize).map(ClassificationStats::from_row);
        let read = counts.enumerate().map(|(i, c)| (self.first_iter + i, c)).collect();
        self.first_iter += self.filled;
        self.filled = 0;
        Ok(read)
    }
}
