//! The safetensors model loader: wrong names, shapes, dtypes, sizes, headers. Any
//! bytes give a model that runs or a typed error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lenet_layers::{model_file, INPUT_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut model) = model_file::from_bytes(data, Path::new("fuzz.safetensors")) {
        // a loaded model must be usable
        let out = model.predictions(&[0.0; INPUT_LEN]);
        assert_eq!(out.len(), 1);
    }
});
