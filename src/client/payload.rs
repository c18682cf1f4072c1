//! Payloads: reproducible from the run's seed, unique per client where a check needs to tell
//! clients apart.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The random source of one check: the run's seed mixed with the check's id, so a check's
/// payloads do not depend on which other checks ran before it.
pub fn check_rng(seed: u64, check_id: &str) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in check_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(seed ^ h)
}

/// A line of `len` bytes (newline included) of printable ASCII.
pub fn text_line(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    assert!(len >= 1);
    let mut v: Vec<u8> = (0..len - 1)
        .map(|_| b' ' + (rng.next_u32() % 95) as u8)
        .collect();
    v.push(b'\n');
    v
}

/// A line of `len` bytes (newline included) of arbitrary bytes other than newline, NUL among
/// them.
pub fn binary_line(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    assert!(len >= 2);
    let mut v: Vec<u8> = (0..len - 1)
        .map(|_| match (rng.next_u32() % 256) as u8 {
            b'\n' => 0,
            b => b,
        })
        .collect();
    v[0] = 0;
    v.push(b'\n');
    v
}

/// A line that names its client and carries a random tag, so a client that receives another
/// client's bytes is seen at once.
pub fn tagged_line(rng: &mut ChaCha8Rng, who: &str) -> Vec<u8> {
    format!("{who} {:016x}\n", rng.next_u64()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lines_have_one_newline_at_the_end(seed in any::<u64>(), len in 2usize..5000) {
            let mut r = check_rng(seed, "x");
            for line in [text_line(&mut r, len), binary_line(&mut r, len)] {
                prop_assert_eq!(line.len(), len);
                prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                prop_assert_eq!(*line.last().unwrap(), b'\n');
            }
        }
    }

    #[test]
    fn same_seed_same_payload_and_ids_differ() {
        let a = tagged_line(&mut check_rng(7, "race.connfd"), "c1");
        let b = tagged_line(&mut check_rng(7, "race.connfd"), "c1");
        let c = tagged_line(&mut check_rng(7, "echo.basic"), "c1");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
