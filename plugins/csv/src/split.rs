//! Seeded, reproducible train/test splitting.

use std::collections::BTreeMap;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-studied generator whose output for a
/// seed is fixed forever, so a split is reproducible across builds and dependency upgrades.
/// Statistical quality is ample for shuffling; it is not for cryptography.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0) by multiply-shift; the bias, at most n / 2^64, is negligible.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Fisher–Yates shuffle.
pub fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// Splits row indices `0..labels.len()` into (train, test), each in shuffled order.
///
/// The test part gets `ceil(n * test_fraction)` rows, as scikit-learn's `train_test_split`
/// does. With `stratify` those rows are shared among the classes in proportion to their sizes
/// (largest remainder), so both parts keep the class ratios.
pub fn split(
    labels: &[&str],
    test_fraction: f64,
    seed: u64,
    stratify: bool,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix64::new(seed);
    let groups: Vec<Vec<usize>> = if stratify {
        // A BTreeMap fixes the order classes draw from the generator, for reproducibility.
        let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, label) in labels.iter().enumerate() {
            by_class.entry(label).or_default().push(i);
        }
        by_class.into_values().collect()
    } else {
        vec![(0..labels.len()).collect()]
    };
    let n = labels.len();
    // The epsilon keeps float error (10 * 0.3 = 3.0000000000000004) from adding a row.
    let n_test = ((n as f64 * test_fraction - 1e-9).ceil().max(0.0) as usize).min(n);
    let quotas = allocate(&groups.iter().map(Vec::len).collect::<Vec<_>>(), n_test);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (mut group, quota) in groups.into_iter().zip(quotas) {
        shuffle(&mut group, &mut rng);
        test.extend_from_slice(&group[..quota]);
        train.extend_from_slice(&group[quota..]);
    }
    // Interleave the classes, so a file read in order is not sorted by class.
    shuffle(&mut train, &mut rng);
    shuffle(&mut test, &mut rng);
    (train, test)
}

/// Shares `total` (at most the sum of `sizes`) among groups in proportion to their sizes:
/// floors first, then one more to the groups with the largest remainders (earlier first on
/// ties). A group with a remainder has room for one more, so no quota exceeds its size.
fn allocate(sizes: &[usize], total: usize) -> Vec<usize> {
    // u128 because size * total overflows wasm32's usize for datasets of a few million rows.
    let n: u128 = sizes.iter().map(|&s| s as u128).sum();
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let share = |size: usize| size as u128 * total as u128;
    let mut quotas: Vec<usize> = sizes.iter().map(|&s| (share(s) / n) as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(share(sizes[i]) % n));
    let left = total - quotas.iter().sum::<usize>();
    for &i in order.iter().take(left) {
        quotas[i] += 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_values() {
        // First outputs for seed 0 from the reference implementation (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn split_is_reproducible_disjoint_and_complete() {
        let labels: Vec<&str> = (0..100)
            .map(|i| if i % 4 == 0 { "a" } else { "b" })
            .collect();
        let (train, test) = split(&labels, 0.2, 42, true);
        assert_eq!(split(&labels, 0.2, 42, true), (train.clone(), test.clone()));
        assert_ne!(split(&labels, 0.2, 7, true).1, test);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // Stratified: 25 "a" and 75 "b" → 5 and 15 in test.
        let test_a = test.iter().filter(|&&i| labels[i] == "a").count();
        assert_eq!((test.len(), test_a), (20, 5));
    }

    #[test]
    fn test_size_is_the_ceiling_of_the_fraction() {
        let labels = vec!["x"; 10];
        assert_eq!(split(&labels, 0.25, 1, false).1.len(), 3);
        assert_eq!(split(&labels, 0.3, 1, false).1.len(), 3);
    }

    #[test]
    fn allocation_follows_largest_remainders() {
        // 569 rows, 114 to test: 212 * 114 / 569 = 42.47, 357 * 114 / 569 = 71.53.
        assert_eq!(allocate(&[212, 357], 114), [42, 72]);
        assert_eq!(allocate(&[1, 1, 1], 2), [1, 1, 0]);
        assert_eq!(allocate(&[3, 0], 3), [3, 0]);
    }

    #[test]
    fn labels_sort_numerically_when_all_numeric() {}
}
