//! The range of every count a flag or a checkpoint gives: one place per kind,
//! checked when the flag is parsed, before anything is allocated.

/// Most images per batch (training or evaluation): the trainer's own bound
/// (a batch's inputs take 4 KB per image, so at most 256 MB).
pub const MAX_BATCH: usize = lenet_optim::TrainConfig::MAX_BATCH;
/// Most threads of the pool (`--threads`) or request workers (`--workers`).
pub const MAX_THREADS: usize = 256;
/// Most passes over the training set: the trainer's own bound.
pub const MAX_EPOCHS: usize = lenet_optim::TrainConfig::MAX_EPOCHS;
/// Largest distortion strength (1 = the default ranges; 4 already moves a digit
/// by 8 pixels of 28).
pub const MAX_DISTORT_STRENGTH: f32 = 4.0;

/// Parses a whole number in `min..=max`, naming the range in its refusal.
fn in_range(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number from {min} to {max}"))?;
    check(n, min, max)
}

fn check(n: usize, min: usize, max: usize) -> Result<usize, String> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range: from {min} to {max}"))
    }
}

/// The same bounds for settings that do not come through the flag parser (a
/// checkpoint's, on `--resume`): batch size, epochs, distortion strength.
pub fn check_run(batch_size: usize, epochs: usize, strength: f32) -> Result<(), String> {
    check(batch_size, 1, MAX_BATCH).map_err(|e| format!("batch size {e}"))?;
    check(epochs, 1, MAX_EPOCHS).map_err(|e| format!("epochs {e}"))?;
    check_strength(strength).map_err(|e| format!("distortion strength {e}"))?;
    Ok(())
}

/// `--batch-size`: 1 to [`MAX_BATCH`].
pub fn batch_size(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_BATCH)
}

/// `--threads`, `--workers`: 1 to [`MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_THREADS)
}

/// `--epochs`: 1 to [`MAX_EPOCHS`].
pub fn epochs(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_EPOCHS)
}

/// `--distort-strength`: a finite number from 0 to [`MAX_DISTORT_STRENGTH`].
pub fn distort_strength(s: &str) -> Result<f32, String> {
    check_strength(s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?)
}

fn check_strength(v: f32) -> Result<f32, String> {
    if v.is_finite() && (0.0..=MAX_DISTORT_STRENGTH).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range: from 0 to {MAX_DISTORT_STRENGTH}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_refusals_name_the_range() {
        assert_eq!(batch_size("1"), Ok(1));
        assert_eq!(batch_size("65536"), Ok(65_536));
        for bad in [
            "0",
            "65537",
            "18446744073709551615",
            "99999999999999999999",
            "-1",
            "x",
        ] {
            let e = batch_size(bad).unwrap_err();
            assert!(e.contains("from 1 to 65536"), "{bad}: {e}");
        }
        assert_eq!(threads("256"), Ok(256));
        assert!(threads("100000").is_err());
        assert!(epochs("0").is_err() && epochs("10001").is_err());
        assert_eq!(distort_strength("0"), Ok(0.0));
        for bad in ["1e9", "NaN", "inf", "-0.5"] {
            assert!(distort_strength(bad).is_err(), "{bad}");
        }
    }
}
