//! The transcendental functions the trainer's own numerics use, from the pure-Rust `libm`.
//!
//! `f64::exp` and `f64::ln` call the platform's C library: glibc in the native build, wasi-libc
//! in the component. The two round some inputs to different last bits, and boosting compounds
//! those bits over its rounds (its log loss differed by 3.7e-4 relative between the builds).
//! `libm` is the same Rust code on every target, so the component and the native tests and
//! benchmarks train the same model. The crate's `clippy.toml` disallows the std methods, so a
//! new call has to come through here. (smartcore's own families still use std internally.)

/// e^x, the same bits on every target.
#[inline]
pub fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// Natural logarithm, the same bits on every target.
#[inline]
pub fn ln(x: f64) -> f64 {
    libm::log(x)
}

/// log₂ x, the same bits on every target.
#[inline]
pub fn log2(x: f64) -> f64 {
    libm::log2(x)
}

/// ln(1 + x), the same bits on every target.
#[inline]
pub fn ln_1p(x: f64) -> f64 {
    libm::log1p(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Inputs that glibc rounds to the neighbouring double: were these wrappers (or a caller)
    // back on std, the native test build would see the glibc bits and fail here. The expected
    // bits are libm's, which is also what the wasm32-wasip2 component computes.
    const EXP: [(f64, u64); 4] = [
        (-19.955895865968113, 0x3e2280e6d168186a),
        (-18.785357026831857, 0x3e3dd33e80f5b90a),
        (-6.604221747457682, 0x3f5631c26add32ba),
        (-0.17733175900896825, 0x3feaccd0c349c8d0),
    ];
    const LN: [(f64, u64); 4] = [
        (1.5767945945698947, 0x3fdd252d148af004),
        (5.336644333067634, 0x3ffacb2647a5200a),
        (9.230574445932595, 0x4001c7b93d172f1a),
        (6.3320010790664805, 0x3ffd87a4f86ddbf2),
    ];

    #[test]
    fn exp_gives_libm_bits() {
        for (x, bits) in EXP {
            assert_eq!(exp(x).to_bits(), bits, "exp({x})");
        }
    }

    #[test]
    fn ln_gives_libm_bits() {
        for (x, bits) in LN {
            assert_eq!(ln(x).to_bits(), bits, "ln({x})");
        }
    }

    #[test]
    fn the_shared_numerics_go_through_libm() {
        // Inputs where the glibc result rounds differently even after the arithmetic around
        // the call; a caller switched back to `f64::exp` or `f64::ln` fails here.
        let s = -14.951646629683387;
        let libm_bits = 0x3e958bb7e9d92bda;
        assert_eq!(super::super::loss::sigmoid(s).to_bits(), libm_bits);
        let mut scores = [s, 0.0];
        super::super::loss::softmax_in_place(&mut scores);
        assert_eq!(scores[0].to_bits(), libm_bits);
        let p = 0.3193933076116334;
        assert_eq!(
            super::super::loss::log_loss([&[p][..]], &[0]).to_bits(),
            0x3ff242e556e81f9c
        );
    }
}
