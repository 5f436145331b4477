//! Clustering metrics: inertia (scikit-learn's `KMeans.inertia_`) and the mean silhouette
//! coefficient (`silhouette_score(x, labels)`, Euclidean).

use mlx_plugin_sdk::JsonSchema;
use serde::Serialize;

use super::{ReportError, invalid};

/// Rows the silhouette is computed on: it compares every pair of rows, so its cost is
/// quadratic (2000 rows: 4 million distances, well under a second in the guest). Beyond,
/// it is computed on a sample of this many rows, drawn like scikit-learn's `sample_size`
/// does but from a fixed seed, so that a report is reproducible.
pub const SILHOUETTE_MAX_ROWS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClusteringReport {
    /// Clusters with at least one row.
    pub n_clusters: u64,
    /// Rows per cluster, indexed by cluster label.
    pub cluster_sizes: Vec<u64>,
    /// Sum of squared Euclidean distances from each row to its cluster's center.
    pub inertia: f64,
    /// Mean silhouette coefficient in [-1, 1]; null (with silhouette_undefined saying why)
    /// unless there are between 2 and rows - 1 clusters.
    pub silhouette: Option<f64>,
    pub silhouette_undefined: Option<String>,
    /// Rows the silhouette was computed on: all of them, or a fixed sample of
    /// SILHOUETTE_MAX_ROWS.
    pub silhouette_rows: u64,
    /// Rows evaluated.
    pub n: u64,
}

/// Metrics of the cluster assignment `labels` of the rows `x`. `centers[label]` is the
/// center the inertia is measured from; without centers, each cluster's mean.
pub fn clustering_report(
    x: &[Vec<f64>],
    labels: &[usize],
    centers: Option<&[Vec<f64>]>,
) -> Result<ClusteringReport, ReportError> {
    validate(x, labels, centers)?;
    let n_labels = centers
        .map_or(0, <[_]>::len)
        .max(labels.iter().max().map_or(0, |m| m + 1));
    let mut cluster_sizes = vec![0u64; n_labels];
    for &l in labels {
        cluster_sizes[l] += 1;
    }
    let means;
    let centers = match centers {
        Some(c) => c,
        None => {
            means = cluster_means(x, labels, &cluster_sizes);
            &means
        }
    };
    let inertia = x
        .iter()
        .zip(labels)
        .map(|(row, &l)| squared_distance(row, &centers[l]))
        .sum();
    let rows = sample(x.len(), SILHOUETTE_MAX_ROWS);
    let (silhouette, silhouette_undefined) = match silhouette(x, labels, &rows, n_labels) {
        Ok(s) => (Some(s), None),
        Err(reason) => (None, Some(reason)),
    };
    Ok(ClusteringReport {
        n_clusters: cluster_sizes.iter().filter(|&&s| s > 0).count() as u64,
        cluster_sizes,
        inertia,
        silhouette,
        silhouette_undefined,
        silhouette_rows: rows.len() as u64,
        n: x.len() as u64,
    })
}

fn validate(
    x: &[Vec<f64>],
    labels: &[usize],
    centers: Option<&[Vec<f64>]>,
) -> Result<(), ReportError> {
    if x.len() != labels.len() {
        return Err(invalid(format!(
            "{} rows but {} labels",
            x.len(),
            labels.len()
        )));
    }
    let Some(first) = x.first() else {
        return Err(invalid("no rows to evaluate"));
    };
    let dim = first.len();
    let all_rows = x.iter().chain(centers.into_iter().flatten());
    for (i, row) in all_rows.enumerate() {
        if row.len() != dim {
            return Err(invalid(format!(
                "row {i} has {} values, row 0 has {dim}",
                row.len()
            )));
        }
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(invalid(format!("row {i}: value {v} is not finite")));
        }
    }
    // Without centers a label is bounded by the rows: n rows form at most n clusters, and
    // an absurd label must not size the per-cluster vectors.
    let bound = centers.map_or(x.len(), <[_]>::len);
    if let Some(l) = labels.iter().find(|&&l| l >= bound) {
        return Err(invalid(match centers {
            Some(_) => format!("label {l} but {bound} centers"),
            None => format!("label {l} but {bound} rows"),
        }));
    }
    Ok(())
}

/// `max` of the indices `0..n` (all when n <= max), in increasing order, drawn without
/// replacement by a partial Fisher-Yates shuffle from a fixed seed. Not every k-th row:
/// rows sorted or interleaved by cluster would alias with the stride and leave clusters
/// out of the sample.
fn sample(n: usize, max: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    if n <= max {
        return all;
    }
    let mut state = 0x5EED_u64;
    for i in 0..max {
        let j = i + (splitmix64(&mut state) % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(max);
    all.sort_unstable();
    all
}

/// SplitMix64 (Steele, Lea and Flood 2014): a few lines, statistically sound for sampling,
/// and the same sequence on every platform.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The squared Euclidean distance, summed in four running sums (lane `l` takes the terms
/// `l, l + 4, l + 8, ...`) added pairwise at the end.
///
/// Why not one sum: one sum is a single chain of dependent additions, which is all the
/// silhouette's pair loop waits on, natively and in Wasm alike, and Cranelift's loop spends
/// more instructions around each addition than LLVM's. Four independent sums run as two
/// two-lane vectors (SSE2 natively, simd128 in Wasm, both `f64x2`), the same arithmetic on
/// both targets, so a report is the same to the bit on both. The order of additions differs
/// from the plain sum's in the last bits, within the tolerance of scikit-learn parity.
pub(crate) fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 4;
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut sums = [0.0; LANES];
    for (u, v) in a_chunks.iter().zip(b_chunks) {
        for l in 0..LANES {
            let d = u[l] - v[l];
            sums[l] += d * d;
        }
    }
    for (l, (u, v)) in a_tail.iter().zip(b_tail).enumerate() {
        let d = u - v;
        sums[l] += d * d;
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3])
}

fn cluster_means(x: &[Vec<f64>], labels: &[usize], sizes: &[u64]) -> Vec<Vec<f64>> {
    let dim = x.first().map_or(0, Vec::len);
    let mut sums = vec![vec![0.0; dim]; sizes.len()];
    for (row, &l) in x.iter().zip(labels) {
        for (s, v) in sums[l].iter_mut().zip(row) {
            *s += v;
        }
    }
    for (sum, &size) in sums.iter_mut().zip(sizes) {
        sum.iter_mut().for_each(|s| *s /= size.max(1) as f64);
    }
    sums
}

/// Mean silhouette coefficient over `rows`, or why it is undefined.
fn silhouette(
    x: &[Vec<f64>],
    labels: &[usize],
    rows: &[usize],
    n_labels: usize,
) -> Result<f64, String> {
    let mut sizes = vec![0usize; n_labels];
    for &i in rows {
        sizes[labels[i]] += 1;
    }
    let clusters = sizes.iter().filter(|&&s| s > 0).count();
    if !(2..rows.len()).contains(&clusters) {
        return Err(format!(
            "the silhouette needs 2 to {} clusters (rows - 1); there are {clusters}",
            rows.len().saturating_sub(1)
        ));
    }
    // Rows of no values (all at distance 0) pack to nothing; 1 keeps chunks_exact defined.
    let dim = x[rows[0]].len().max(1);
    // The rows packed side by side: the pair loop reads each of them n times, and contiguous
    // slices spare it a pointer chase per read.
    let packed: Vec<f64> = rows.iter().flat_map(|&i| x[i].iter().copied()).collect();
    let label: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    let n = rows.len();
    // sums[i * n_labels + l]: the distances from row i to the rows of cluster l. Each pair is
    // measured once and added to both rows (half the distances of measuring it from each
    // side). Row i still receives its terms in increasing j (those of j < i while the outer
    // loop was at j), so every sum, and the score, is the same to the bit.
    let mut sums = vec![0.0; n * n_labels];
    for (i, a) in packed.chunks_exact(dim).enumerate() {
        for (j, b) in packed.chunks_exact(dim).enumerate().skip(i + 1) {
            let d = squared_distance(a, b).sqrt();
            sums[i * n_labels + label[j]] += d;
            sums[j * n_labels + label[i]] += d;
        }
    }
    let mut total = 0.0;
    for (i, sums) in sums.chunks_exact(n_labels).enumerate() {
        let own = label[i];
        // A row alone in its cluster scores 0 (scikit-learn's 0/0 turned to 0).
        if sizes[own] == 1 {
            continue;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..n_labels)
            .filter(|&l| l != own && sizes[l] > 0)
            .map(|l| sums[l] / sizes[l] as f64)
            .fold(f64::INFINITY, f64::min);
        let denominator = a.max(b);
        // Duplicate rows split across clusters give a = b = 0: scikit-learn's nan_to_num
        // makes that 0 too.
        if denominator > 0.0 {
            total += (b - a) / denominator;
        }
    }
    Ok(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn the_sample_is_fixed_distinct_and_sorted() {
        assert_eq!(sample(5, 10), [0, 1, 2, 3, 4]);
        let s = sample(1000, 100);
        assert_eq!(s, sample(1000, 100));
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[99] < 1000);
        let odd = s.iter().filter(|&&i| i % 2 == 1).count();
        assert!((30..70).contains(&odd), "{odd} odd of 100");
    }
}
