//! `kmeans`: smartcore's k-means, fitted in one call.
//!
//! smartcore runs its Lloyd iterations inside `fit` and takes no starting centroids, so
//! training cannot be cut into resumable iterations: the whole fit is one round.

use mlx_plugin_sdk::PluginError;
use smartcore::cluster::kmeans::{KMeans, KMeansParameters};

use super::dense::{Dense, Label};
use super::error::{fit_failed, predict_failed};
use super::spec::KmeansParams;

pub type Kmeans = KMeans<f64, Label, Dense, Vec<Label>>;

pub fn fit(p: &KmeansParams, x: &Dense, rows: usize) -> Result<Kmeans, PluginError> {
    if p.k > rows {
        return Err(PluginError::invalid_input(
            "InvalidParameter",
            format!("k is {}, but there are only {rows} rows to cluster", p.k),
        ));
    }
    let params = KMeansParameters {
        k: p.k,
        max_iter: p.max_iter,
        seed: Some(p.seed),
    };
    KMeans::fit(x, params).map_err(|e| fit_failed("kmeans", e))
}

/// The cluster of each row.
pub fn predict(model: &Kmeans, x: &Dense) -> Result<Vec<f64>, PluginError> {
    let clusters = model.predict(x).map_err(|e| predict_failed("kmeans", e))?;
    Ok(clusters.into_iter().map(f64::from).collect())
}
