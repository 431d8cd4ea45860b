//! channels_redis's consistent hash: CRC-32 of the UTF-8 bytes, keep 12 bits (0..4096), split
//! that ring evenly between the hosts.

/// The shard (host index) of `value` among `ring_size` hosts.
pub(crate) fn consistent_hash(value: &str, ring_size: usize) -> usize {
    if ring_size <= 1 {
        return 0;
    }
    let bigval = crc32fast::hash(value.as_bytes()) & 0xFFF;
    // Python: int(bigval / (4096 / float(ring_size))).
    let divisor = 4096.0 / ring_size as f64;
    ((f64::from(bigval) / divisor) as usize).min(ring_size - 1)
}

#[cfg(test)]
mod tests {
    use super::consistent_hash;

    #[test]
    fn matches_channels_redis() {
        // Python: channels_redis.utils._consistent_hash(v, n) for these values.
        let cases = [
            ("chat_lobby", 2, 1usize),
            ("chat_lobby", 3, 1),
            ("specific.abc!", 2, 1),
            ("specific.abc!", 5, 4),
            ("group-7", 4, 1),
        ];
        for (v, n, _) in cases {
            assert!(consistent_hash(v, n) < n);
        }
        assert_eq!(consistent_hash("anything", 1), 0);
        let got: Vec<usize> = cases
            .iter()
            .map(|(v, n, _)| consistent_hash(v, *n))
            .collect();
        let want: Vec<usize> = cases.iter().map(|c| c.2).collect();
        assert_eq!(got, want);
    }
}
