//! Every family on the real datasets in data/, resumption, the model's serde form, the spec.

mod classification;
mod clustering;
mod data;
mod errors;
mod grow;
mod regression;
mod resume;
mod spec;
mod timing;
