//! The image path of `lenet predict` and `lenet serve`: any bytes give 28x28
//! pixels or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = mnist_io::digit::decode_digit(data) {
        assert_eq!(pixels.len(), 28 * 28);
    }
});
