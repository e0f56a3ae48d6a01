//! Shared by the fuzz targets.

/// Splits a fuzz input into its first byte (the mode) and the rest: an even mode
/// gives the rest as it is; an odd one gives `wrap(rest)`, a well-formed envelope
/// (gzip stream, checkpoint header) around fuzzed contents, so the fuzzer reaches
/// both the envelope's checks and what lies behind them.
pub fn as_is_or_wrapped(data: &[u8], wrap: impl Fn(&[u8]) -> Vec<u8>) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    Some(if mode % 2 == 0 { rest.to_vec() } else { wrap(rest) })
}
