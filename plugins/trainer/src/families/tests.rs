//! Every family on the real datasets in data/, resumption, and the model's serde form.
