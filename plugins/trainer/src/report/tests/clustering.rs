use super::close;
use crate::report::{SILHOUETTE_MAX_ROWS, clustering_report, squared_distance};

fn rows(points: &[[f64; 2]]) -> Vec<Vec<f64>> {
    points.iter().map(|p| p.to_vec()).collect()
}

/// Two squares and a lone point (a singleton cluster scores 0).
const HAND: [[f64; 2]; 8] = [
    [0.0, 0.0],
    [0.0, 1.0],
    [1.0, 0.0],
    [1.0, 1.0],
    [5.0, 5.0],
    [5.0, 6.0],
    [6.0, 5.0],
    [20.0, 0.0],
];

#[test]
fn hand_made_clusters_match_sklearn() {
    let x = rows(&HAND);
    // KMeans(n_clusters=3, n_init=10, random_state=0).fit(x) labels these
    // [2, 2, 2, 2, 0, 0, 0, 1] with centers [[5.333.., 5.333..], [20, 0], [0.5, 0.5]] and
    // inertia_ 3.3333333333333335; silhouette_score(x, labels) 0.7298705377759083.
    let labels = [2, 2, 2, 2, 0, 0, 0, 1];
    let centers = vec![
        vec![16.0 / 3.0, 16.0 / 3.0],
        vec![20.0, 0.0],
        vec![0.5, 0.5],
    ];
    let r = clustering_report(&x, &labels, Some(&centers)).unwrap();
    close(r.inertia, 3.3333333333333335);
    close(r.silhouette.unwrap(), 0.7298705377759083);
    assert_eq!(r.cluster_sizes, [3, 1, 4]);
    assert_eq!((r.n_clusters, r.silhouette_rows, r.n), (3, 8, 8));
    // Without centers, the cluster means: the same here.
    let r = clustering_report(&x, &labels, None).unwrap();
    close(r.inertia, 3.3333333333333335);
}

/// Identical rows in two clusters: a = b = 0, which sklearn's nan_to_num makes 0
/// (silhouette_score([[1, 1]] * 4, [0, 0, 1, 1]) = 0.0).
#[test]
fn duplicate_rows_across_clusters_score_zero() {
    let x = vec![vec![1.0, 1.0]; 4];
    let r = clustering_report(&x, &[0, 0, 1, 1], None).unwrap();
    assert_eq!(r.silhouette, Some(0.0));
    assert_eq!(r.inertia, 0.0);
}

/// silhouette_score raises "Number of labels is 1. Valid values are 2 to n_samples - 1".
#[test]
fn silhouette_of_one_cluster_or_all_singletons_is_null() {
    let x = rows(&HAND[..4]);
    let one = clustering_report(&x, &[0, 0, 0, 0], None).unwrap();
    assert_eq!(one.silhouette, None);
    assert!(one.silhouette_undefined.unwrap().contains("there are 1"));
    let singletons = clustering_report(&x, &[0, 1, 2, 3], None).unwrap();
    assert_eq!(singletons.silhouette, None);
    assert!(serde_json::to_value(&singletons).unwrap()["silhouette"].is_null());
}

/// Three blobs: make_blobs(n_samples=30, centers=3, n_features=2, random_state=3,
/// cluster_std=1.5), clustered by KMeans(n_clusters=3, n_init=10, random_state=0).
#[test]
fn blobs_match_sklearn() {
    let x = rows(&BLOBS);
    let labels = [
        1, 2, 1, 1, 2, 1, 2, 0, 0, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 2, 2, 2, 1, 2, 2, 0, 1, 1,
    ];
    let centers = vec![
        vec![8.006509912392428, 7.829901777848744],
        vec![-5.014344591013728, -0.8503300540919021],
        vec![0.6384302074449987, 3.8164886772797746],
    ];
    let r = clustering_report(&x, &labels, Some(&centers)).unwrap();
    // KMeans(...).inertia_
    close(r.inertia, 143.74734627128245);
    // silhouette_score(x, labels); sklearn's Euclidean distances go through
    // |x|² - 2x·y + |y|², which rounds differently from the direct difference here.
    let s = r.silhouette.unwrap();
    assert!((s - 0.5933845626669583).abs() < 1e-9, "{s}");
}

#[test]
fn large_inputs_use_a_fixed_sample() {
    let n = SILHOUETTE_MAX_ROWS * 2 + 1;
    let x: Vec<Vec<f64>> = (0..n)
        .map(|i| vec![(i % 2) as f64 * 10.0, i as f64 * 1e-4])
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let r = clustering_report(&x, &labels, None).unwrap();
    assert_eq!(r.silhouette_rows, SILHOUETTE_MAX_ROWS as u64);
    assert_eq!(r.n, n as u64);
    // Interleaved clusters, which every-other-row sampling would reduce to one.
    assert!(r.silhouette.unwrap() > 0.9, "{:?}", r.silhouette);
    assert_eq!(r, clustering_report(&x, &labels, None).unwrap());
}

#[test]
fn invalid_input_is_an_error() {
    let x = rows(&HAND[..2]);
    assert!(clustering_report(&[], &[], None).is_err());
    assert!(clustering_report(&x, &[0], None).is_err());
    assert!(
        clustering_report(&x, &[0, 7], None).is_err(),
        "label beyond the rows"
    );
    let centers = vec![vec![0.0, 0.0]];
    assert!(
        clustering_report(&x, &[0, 1], Some(&centers)).is_err(),
        "label beyond the centers"
    );
    assert!(clustering_report(&[vec![1.0], vec![1.0, 2.0]], &[0, 1], None).is_err());
    assert!(clustering_report(&[vec![f64::NAN], vec![1.0]], &[0, 1], None).is_err());
}

const BLOBS: [[f64; 2]; 30] = [
    [-2.4959382833049104, 0.018680754751908946],
    [-0.76161173903875, 3.854481603228284],
    [-5.717582931630815, -0.8529376962148136],
    [-5.335159747219958, -0.12849397946364827],
    [1.0910085147567996, 3.5559403304607593],
    [-5.387554363605978, -3.412072655814744],
    [0.5998757477199106, 3.6308179834586154],
    [9.431160355322476, 9.92646850783249],
    [6.548115640309644, 7.9704325017102855],
    [3.2451805841033945, 4.518030853202464],
    [10.090253784941902, 6.248410752068214],
    [-3.2440377724968688, -0.024217940827125584],
    [0.19791813006221348, 1.843240478987643],
    [7.562817068215718, 10.587829325777662],
    [-6.048090215175018, -0.7230732628292935],
    [2.337935114802804, 6.727316047841518],
    [4.486552435588184, 7.5242189813996765],
    [9.127689197538865, 5.134527485255591],
    [6.9639646244267945, 7.042970209136397],
    [9.378714249782835, 9.205058540099985],
    [6.954611430942266, 5.054153713560039],
    [-3.0643208221330567, 3.180718278642714],
    [-0.954839078552514, 5.489890023111473],
    [0.8918458292678195, 3.2224554371263245],
    [-6.616833390493984, 1.1865652823585187],
    [2.4895092028787493, 2.511355007194882],
    [0.9502307980276168, 3.4471294068228415],
    [9.521220336855581, 9.604947761647098],
    [-5.567593254284796, -1.3192615373109962],
    [-4.71631136091123, -2.398159451476928],
];

/// Rows of no values are all at distance 0: like duplicates, a silhouette of 0, not a trap.
#[test]
fn rows_without_values_score_zero() {
    let x = vec![Vec::new(); 4];
    let r = clustering_report(&x, &[0, 0, 1, 1], None).unwrap();
    assert_eq!(r.silhouette, Some(0.0));
}

/// Each pair measured once and added to both rows gives the score of measuring every pair
/// from both sides, to the bit: the terms reach each row's sums in the same order.
#[test]
fn the_silhouette_equals_the_all_pairs_definition_exactly() {
    let mut state = 12345_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let x: Vec<Vec<f64>> = (0..300)
        .map(|_| (0..5).map(|_| next() * 10.0).collect())
        .collect();
    let labels: Vec<usize> = (0..300).map(|i| (i * 7 + i / 13) % 4).collect();
    let mut sizes = [0usize; 4];
    labels.iter().for_each(|&l| sizes[l] += 1);
    // The report's own distance: what is tested is the pairing, not the summation.
    let distance = |a: &[f64], b: &[f64]| squared_distance(a, b).sqrt();
    let mut total = 0.0;
    for i in 0..x.len() {
        let mut sums = [0.0; 4];
        for j in 0..x.len() {
            sums[labels[j]] += distance(&x[i], &x[j]);
        }
        let own = labels[i];
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..4)
            .filter(|&l| l != own)
            .map(|l| sums[l] / sizes[l] as f64)
            .fold(f64::INFINITY, f64::min);
        total += (b - a) / a.max(b);
    }
    let r = clustering_report(&x, &labels, None).unwrap();
    assert_eq!(r.silhouette, Some(total / x.len() as f64));
}

/// The four-sum distance is the plain one up to rounding, for every length (the tail beyond
/// the last whole group of four included), and exactly so on integer-valued rows.
#[test]
fn the_distance_in_four_sums_is_the_plain_sum_up_to_rounding() {
    for dim in 0..11 {
        let a: Vec<f64> = (0..dim).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
        let b: Vec<f64> = (0..dim).map(|i| (i as f64 * 1.91).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(u, v)| (u - v) * (u - v)).sum();
        let ours = squared_distance(&a, &b);
        assert!(
            (ours - plain).abs() <= 1e-13 * plain.max(1.0),
            "{dim}: {ours} vs {plain}"
        );
        let ints: Vec<f64> = (0..dim).map(|i| (i * i % 17) as f64).collect();
        let zeros = vec![0.0; dim];
        let exact: f64 = ints.iter().map(|v| v * v).sum();
        assert_eq!(squared_distance(&ints, &zeros), exact, "{dim}");
    }
}
