//! The consistent table that spreads flows over the collectors: slot →
//! collector, filled here and read by the relay's XDP program (a slot is
//! the inner flow's symmetric hash modulo [`TABLE_SIZE`]).
//!
//! Each slot goes to the collector with the highest weight for it
//! (rendezvous, or highest-random-weight, hashing). Maglev's fill balances
//! a little more evenly, but moves a few slots of other collectors when
//! one goes; with rendezvous a collector that leaves takes exactly its own
//! slots with it, spread over the others, and gets exactly them back when
//! it returns: no other flow changes collector.
//!
//! ```
//! use vxdecap::relay::table::{fill, TABLE_SIZE};
//! let keys = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
//! let all = fill(&keys, &[true, true, true]);
//! let without_b = fill(&keys, &[true, false, true]);
//! for (before, after) in all.iter().zip(&without_b) {
//!     assert!(before == after || *before == 1);
//! }
//! assert_eq!(all.len(), TABLE_SIZE);
//! ```

pub use crate::steer::relay::TABLE_SIZE;

/// FNV-1a, 64 bits: a collector's name as a number, the same on every run
/// and every machine (std's hasher promises neither).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The table for collectors named `keys` (their addresses, so that a
/// collector keeps its slots whatever the order of `--to`), of which those
/// with `up[i]` take part: slot → index into `keys`. Empty when none is
/// up.
pub fn fill<K: AsRef<str>>(keys: &[K], up: &[bool]) -> Vec<u32> {
    let ids: Vec<(u32, u64)> = keys
        .iter()
        .zip(up)
        .enumerate()
        .filter(|(_, (_, &up))| up)
        .map(|(i, (k, _))| (i as u32, fnv1a(k.as_ref())))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    (0..TABLE_SIZE as u64)
        .map(|slot| {
            ids.iter()
                .max_by_key(|&&(i, id)| (mix64(id ^ mix64(slot)), u32::MAX - i))
                .map_or(0, |&(i, _)| i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 5] = ["10.0.9.1", "10.0.9.2", "10.0.9.3", "192.0.2.77", "fd00::9"];

    fn shares(table: &[u32]) -> Vec<usize> {
        (0..KEYS.len() as u32)
            .map(|i| table.iter().filter(|&&c| c == i).count())
            .collect()
    }

    #[test]
    fn removing_a_collector_moves_only_its_own_slots() {
        let all = fill(&KEYS, &[true; 5]);
        for gone in 0..KEYS.len() {
            let mut up = [true; 5];
            up[gone] = false;
            let without = fill(&KEYS, &up);
            let mut moved = 0;
            for (slot, (&before, &after)) in all.iter().zip(&without).enumerate() {
                assert_ne!(
                    after, gone as u32,
                    "slot {slot} still on the removed collector"
                );
                if before == gone as u32 {
                    moved += 1;
                } else {
                    assert_eq!(before, after, "slot {slot} of collector {before} moved");
                }
            }
            assert_eq!(moved, shares(&all)[gone]);
            // Back up: exactly the table before.
            assert_eq!(fill(&KEYS, &[true; 5]), all);
        }
    }

    #[test]
    fn the_load_is_spread_evenly_and_the_order_of_to_does_not_matter() {
        let all = fill(&KEYS, &[true; 5]);
        let ideal = TABLE_SIZE / KEYS.len();
        for share in shares(&all) {
            // Binomial spread: 3 standard deviations of 4093 draws at 1/5 is about 77.
            assert!(share.abs_diff(ideal) < 100, "{:?}", shares(&all));
        }
        let reversed: Vec<&str> = KEYS.iter().rev().copied().collect();
        let table_rev = fill(&reversed, &[true; 5]);
        for (a, b) in all.iter().zip(&table_rev) {
            assert_eq!(KEYS[*a as usize], reversed[*b as usize]);
        }
    }

    #[test]
    fn no_collector_up_gives_no_table() {
        assert!(fill(&KEYS, &[false; 5]).is_empty());
        assert!(fill::<&str>(&[], &[]).is_empty());
        assert_eq!(fill(&KEYS[..1], &[true]), vec![0; TABLE_SIZE]);
    }
}
