//! Captures the SK units' selection weights during a forward pass, for the attention analysis.
//! Off by default: an idle probe costs one uncontended lock per SK unit per forward.
use std::sync::{Arc, Mutex};
use tch::Tensor;

/// Selection weights of one SK unit for one batch, shape (N, M, C).
#[derive(Debug)]
pub struct UnitAttention {
    pub label: String,
    pub weights: Tensor,
}

#[derive(Clone, Debug, Default)]
pub struct AttentionProbe(Arc<Mutex<Option<Vec<UnitAttention>>>>);

impl AttentionProbe {
    /// Starts recording; earlier records are dropped.
    pub fn start(&self) {
        *self.0.lock().unwrap() = Some(Vec::new());
    }

    /// Stops recording and returns what was recorded, in forward order.
    pub fn finish(&self) -> Vec<UnitAttention> {
        self.0.lock().unwrap().take().unwrap_or_default()
    }

    pub fn record(&self, label: &str, weights: &Tensor) {
        if let Some(records) = self.0.lock().unwrap().as_mut() {
            let (n, m, c) = (weights.size()[0], weights.size()[1], weights.size()[2]);
            records.push(UnitAttention { label: label.to_string(), weights: weights.detach().reshape([n, m, c]) });
        }
    }
}
