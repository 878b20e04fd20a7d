//! Captures the SK units' selection weights during a forward pass, for the attention analysis.
//! Like the MAC counter in layers.rs, recording is a scope on the current thread: the models take no
//! argument for it, and outside a scope an SK unit records nothing (one thread-local check per unit).
use std::cell::RefCell;
use tch::Tensor;

/// Selection weights of one SK unit for one batch, shape (N, M, C).
#[derive(Debug)]
pub struct UnitAttention {
    pub label: String,
    pub weights: Tensor,
}

impl UnitAttention {
    /// Another handle on the same weights (tensors are reference-counted, so nothing is copied).
    fn shallow_clone(&self) -> UnitAttention {
        UnitAttention { label: self.label.clone(), weights: self.weights.shallow_clone() }
    }
}

thread_local! {
    /// The records of the innermost active `record_attention` scope on this thread; None outside any.
    static RECORDS: RefCell<Option<Vec<UnitAttention>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns its result with the selection weights of every SK unit that ran in it on this
/// thread, in forward order. Scopes nest: an inner scope returns what ran inside it, and its enclosing
/// scope sees those records too. A panic in `f` closes the scope (its records are dropped).
pub fn record_attention<R>(f: impl FnOnce() -> R) -> (R, Vec<UnitAttention>) {
    let scope = Scope::open();
    let out = f();
    (out, scope.close())
}

/// Called by each SK unit with its (N, M, C, 1, 1) weights: kept, detached, if a scope is active.
pub(crate) fn record(label: &str, weights: &Tensor) {
    RECORDS.with(|records| {
        if let Some(records) = records.borrow_mut().as_mut() {
            let (n, m, c) = (weights.size()[0], weights.size()[1], weights.size()[2]);
            records.push(UnitAttention { label: label.to_string(), weights: weights.detach().reshape([n, m, c]) });
        }
    });
}

/// An active recording scope. Dropping it (also while unwinding) restores the enclosing scope, or none.
struct Scope {
    enclosing: Option<Vec<UnitAttention>>,
}

impl Scope {
    fn open() -> Scope {
        Scope { enclosing: RECORDS.with(|records| records.replace(Some(Vec::new()))) }
    }

    /// This scope's records; the enclosing scope, if any, keeps them too.
    fn close(mut self) -> Vec<UnitAttention> {
        let records = RECORDS.with(|records| records.borrow_mut().take()).unwrap_or_default();
        if let Some(enclosing) = self.enclosing.as_mut() {
            enclosing.extend(records.iter().map(UnitAttention::shallow_clone));
        }
        records
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let enclosing = self.enclosing.take();
        RECORDS.with(|records| *records.borrow_mut() = enclosing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: i64) -> Tensor {
        Tensor::ones([n, 2, 4, 1, 1], tch::kind::FLOAT_CPU) / 2.0
    }

    fn labels(records: &[UnitAttention]) -> Vec<&str> {
        records.iter().map(|r| r.label.as_str()).collect()
    }

    #[test]
    fn scopes_nest_and_nothing_is_recorded_outside_them() {
        record("SK_2_1", &weights(1));
        let (((), inner), outer) = record_attention(|| {
            record("SK_2_1", &weights(3));
            let inner = record_attention(|| record("SK_2_2", &weights(3)));
            record("SK_3_1", &weights(3));
            inner
        });
        assert_eq!(labels(&inner), ["SK_2_2"]);
        assert_eq!(labels(&outer), ["SK_2_1", "SK_2_2", "SK_3_1"]);
        assert_eq!(outer[0].weights.size(), [3, 2, 4]);
        let ((), after) = record_attention(|| ());
        assert!(after.is_empty(), "a closed scope leaked into the next one");
    }

    #[test]
    fn a_panic_inside_the_scope_closes_it() {
        let caught = std::panic::catch_unwind(|| {
            record_attention(|| {
                record("SK_2_1", &weights(1));
                panic!("forward failed");
            })
        });
        assert!(caught.is_err());
        assert!(RECORDS.with(|records| records.borrow().is_none()), "the scope stayed active after a panic");
    }
}
