//! smartcore's `Failed` as the plugin's classified errors.

use mlx_plugin_sdk::PluginError;
use smartcore::error::{Failed, FailedError};

/// A smartcore failure while fitting `family`.
///
/// smartcore refuses a fit for reasons that lie in the data or the hyperparameters (too few
/// rows for the features, a single class, a singular system from collinear or constant
/// features): retrying the same input cannot help, and the caller must change it, so these
/// are `InvalidInput`. Anything else is smartcore reporting a state it should never reach.
pub fn fit_failed(family: &str, e: Failed) -> PluginError {
    match e.error() {
        FailedError::FitFailed | FailedError::ParametersError => PluginError::invalid_input(
            "FitFailed",
            format!("{family} cannot be fitted to this data: {e}"),
        ),
        FailedError::DecompositionFailed | FailedError::SolutionFailed => {
            PluginError::invalid_input(
                "FitFailed",
                format!(
                    "{family} cannot be fitted to this data: {e} (the system is singular: \
                     collinear or constant features; a larger alpha or fewer features helps)"
                ),
            )
        }
        _ => internal(format!("{family}: smartcore failed while fitting: {e}")),
    }
}

/// A smartcore failure while predicting with a fitted model: the model is broken (for example
/// an edited model file), which no retry fixes.
pub fn predict_failed(family: &str, e: Failed) -> PluginError {
    PluginError::permanent("PredictFailed", format!("{family} failed to predict: {e}"))
}

/// A state this module should never reach.
pub fn internal(message: impl Into<String>) -> PluginError {
    PluginError::permanent("InternalError", message)
}

pub fn diverged(family: &str, round: u32, loss: f64) -> PluginError {
    PluginError::invalid_input(
        "TrainingDiverged",
        format!(
            "{family}: the training loss is {loss} after round {round}; lower the learning rate \
             or rescale the features"
        ),
    )
}
