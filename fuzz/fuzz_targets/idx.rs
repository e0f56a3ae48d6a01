//! The IDX parser, raw and gzip: any bytes give a parsed file or a typed error.
//! First byte even: the rest is parsed as it is (so the gzip decoder itself is
//! fuzzed too); odd: the rest is gzip-compressed first, so the IDX parser behind a
//! working decompressor is reached.
#![no_main]

use std::io::Write;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = lenet5_fuzz::as_is_or_wrapped(data, |rest| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).unwrap();
        gz.finish().unwrap()
    }) else {
        return;
    };
    let path = Path::new("fuzz.idx");
    if let Ok(images) = mnist_io::idx::parse_images(&bytes, path) {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    let _ = mnist_io::idx::parse_labels(&bytes, path);
});
