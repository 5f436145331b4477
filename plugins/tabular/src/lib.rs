//! Tables for plugins (work in progress).
