//! Counts of things alive right now, for the worker's gauges: a soak that sees memory grow
//! must be able to tell "more sandboxes or plugin versions are alive" from "the heap grows
//! while nothing more is alive" (issue 18).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// How many [`Live`] tokens taken from it are alive.
#[derive(Clone, Debug, Default)]
pub struct LiveCount(Arc<AtomicUsize>);

impl LiveCount {
    /// Counts one more until the token is dropped, however its owner ends (a future dropped
    /// mid-call, a replaced plugin's last invocation finishing).
    pub fn enter(&self) -> Live {
        self.0.fetch_add(1, Ordering::SeqCst);
        Live(self.0.clone())
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_follows_its_tokens_however_they_are_dropped() {
        let count = LiveCount::default();
        let a = count.enter();
        let b = count.clone().enter();
        assert_eq!(count.get(), 2);
        drop(a);
        assert_eq!(count.get(), 1);
        let held = std::panic::catch_unwind(move || {
            let _b = b;
            panic!("a caller that panics still releases its token");
        });
        assert!(held.is_err());
        assert_eq!(count.get(), 0);
    }
}
