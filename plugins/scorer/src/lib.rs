//! `scorer` plugin (work in progress).
