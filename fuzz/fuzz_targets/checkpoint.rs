//! The checkpoint loader, all the way to a model and a trainer: any bytes give a
//! usable checkpoint or a typed error. First byte even: the rest is the file as it
//! is; odd: the rest is a payload wrapped in a valid header (magic, version, length,
//! CRC), so the decoding and validation behind the checksum are reached.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lenet_optim::checkpoint;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = lenet5_fuzz::as_is_or_wrapped(data, |payload| {
        let mut b = b"LENET5CK".to_vec();
        b.extend_from_slice(&checkpoint::VERSION.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        b.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        b.extend_from_slice(payload);
        b
    }) else {
        return;
    };
    let path = Path::new("fuzz.bin");
    if let Ok(ck) = checkpoint::from_bytes(&bytes, path) {
        if let Ok(model) = ck.model(path) {
            let _ = ck.trainer(&model, path);
        }
    }
});
