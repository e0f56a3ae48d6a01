//! Builders of small IDX files for tests (public so integration tests and other
//! crates' tests can make bad input without shipping binary fixtures).

use std::io::Write;

/// IDX bytes of `count` images of `rows x cols`, pixel `i` (over the whole file) = `f(i)`.
pub fn idx_images(count: usize, rows: usize, cols: usize, f: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend((0..count * rows * cols).map(f));
    out
}

/// IDX bytes of a label file.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}
