//! Which partition a conversation or a user lives in.
//!
//! `partition = jump(xxh3_64(key), n)`, where `key` is the canonical text
//! of the id (`"d:3:9"`, `"g:42"`, `"u:7"`) and `jump` is Lamping and
//! Veach's jump consistent hash. xxh3 is fixed by its spec (seed 0), and
//! jump hashing moves only `1/n` of the keys when `n` grows, so adding
//! partitions re-homes the fewest users. The tests pin known values: if
//! they change, every stored record would be looked for in the wrong place.

use xxhash_rust::xxh3::xxh3_64;

use crate::ids::{ConversationId, UserId};

/// The partition of the log that holds a conversation's messages.
pub fn conversation_partition(c: &ConversationId, partitions: u32) -> u32 {
    jump(xxh3_64(c.to_string().as_bytes()), partitions)
}

/// The partition that holds a user's inbox and notifications.
pub fn user_partition(u: UserId, partitions: u32) -> u32 {
    jump(xxh3_64(format!("u:{u}").as_bytes()), partitions)
}

/// Jump consistent hash (arXiv:1406.2294). `buckets == 0` is treated as 1.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b.wrapping_add(1) as f64) * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GroupId;

    #[test]
    fn pinned_values_never_change() {
        let d = ConversationId::direct(UserId(1), UserId(2));
        let g = ConversationId::group(GroupId(42));
        let got = [
            conversation_partition(&d, 16),
            conversation_partition(&d, 1024),
            conversation_partition(&g, 16),
            conversation_partition(&g, 1024),
            user_partition(UserId(1), 16),
            user_partition(UserId(1), 1024),
            user_partition(UserId(123_456_789), 64),
            jump(0, 1000),
            jump(u64::MAX, 1000),
        ];
        assert_eq!(
            got, PINNED,
            "partitioning changed: stored data would be misrouted"
        );
    }

    // Written down once from the implementation above; never edit.
    const PINNED: [u32; 9] = [4, 292, 10, 201, 1, 995, 56, 0, 313];

    #[test]
    fn xxh3_is_the_specified_function() {
        // The published test vector of XXH3_64bits for empty input.
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn spreads_evenly_and_moves_few_keys_on_growth() {
        let mut counts = [0u32; 16];
        let mut moved = 0;
        for u in 0..64_000u64 {
            let p16 = user_partition(UserId(u), 16);
            counts[p16 as usize] += 1;
            if user_partition(UserId(u), 17) != p16 {
                moved += 1;
            }
        }
        for c in counts {
            assert!((3_600..4_400).contains(&c), "uneven: {counts:?}");
        }
        // Ideal is 1/17 of keys (3,765).
        assert!((3_300..4_300).contains(&moved), "moved {moved}");
        assert_eq!(jump(123, 0), 0);
        assert_eq!(jump(123, 1), 0);
    }
}
