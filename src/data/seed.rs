//! Seeds for every random choice in the data path. A seed is a hash of the integers that identify the
//! choice (run seed, epoch, sample index, ...), so any worker can compute it without shared state.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The RNG every data-path draw uses (ChaCha8: portable, fast, a stable stream for a given seed).
pub type DataRng = ChaCha8Rng;

/// One 64-bit seed from an ordered list of integers (SplitMix64 finaliser over a running state).
pub fn derive(parts: &[u64]) -> u64 {
    let mut state = 0x243F_6A88_85A3_08D3u64; // pi's digits: a fixed, non-zero start
    for &part in parts {
        state = mix(state ^ mix(part.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    state
}

/// The seed of sample `index` in `epoch` of a run seeded with `run_seed`.
pub fn sample_seed(run_seed: u64, epoch: u64, index: u64) -> u64 {
    derive(&[run_seed, epoch, index])
}

pub fn rng(seed: u64) -> DataRng {
    DataRng::seed_from_u64(seed)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_values_matter() {
        assert_ne!(derive(&[1, 2]), derive(&[2, 1]));
        assert_ne!(derive(&[0]), derive(&[0, 0]));
        assert_ne!(sample_seed(0, 0, 1), sample_seed(0, 1, 0));
        assert_eq!(sample_seed(7, 3, 11), sample_seed(7, 3, 11));
    }
}
