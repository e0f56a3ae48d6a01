//! The IDX file format (LeCun's MNIST container), read with every field checked.
//!
//! Layout: a 4-byte magic `00 00 TT NN` (TT = element type, 0x08 = unsigned byte;
//! NN = number of dimensions), then NN big-endian `u32` sizes, then the elements.
//! Images are `0x00000803` (count x rows x cols), labels `0x00000801` (count).
//!
//! Files may be gzip-compressed; that is detected from the first two bytes
//! (`1f 8b`), never from the file name. Nothing is allocated for the payload
//! before the header has been checked against the file's real length.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{io_err, MnistError, Result};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// No IDX payload this crate reads may be larger (EMNIST, the largest
/// MNIST-style set, is about 0.55 GB). Guards against absurd headers and gzip bombs.
pub const MAX_PAYLOAD_BYTES: u64 = 2 << 30;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decoded image file: `count` images of `rows x cols` bytes, row-major, back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Height of each image.
    pub rows: usize,
    /// Width of each image.
    pub cols: usize,
    /// `count * rows * cols` bytes, 0 = background, 255 = ink.
    pub pixels: Vec<u8>,
}

/// Decoded label file (labels are not range-checked here; [`crate::Dataset`] does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxLabels {
    /// One byte per item.
    pub labels: Vec<u8>,
}

impl IdxImages {
    /// The IDX file's bytes (uncompressed): magic `0x00000803`, the three
    /// dimensions big-endian, then the pixels.
    ///
    /// ```
    /// use mnist_io::idx::{parse_images, IdxImages};
    /// let images = IdxImages { count: 2, rows: 3, cols: 3, pixels: (0..18).collect() };
    /// let bytes = images.to_bytes();
    /// assert_eq!(parse_images(&bytes, "x".as_ref()).unwrap(), images);
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [self.count, self.rows, self.cols] {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.pixels);
        out
    }
}

impl IdxLabels {
    /// The IDX file's bytes (uncompressed): magic `0x00000801`, the count
    /// big-endian, then the labels.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = LABELS_MAGIC.to_be_bytes().to_vec();
        out.extend_from_slice(&(self.labels.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.labels);
        out
    }
}

/// Gzip-compresses `bytes` (what the public mirrors serve).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = std::io::Write::write_all(&mut enc, bytes);
    enc.finish().unwrap_or_default()
}

/// Does this byte prefix start a gzip stream?
pub fn is_gzip(prefix: &[u8]) -> bool {
    prefix.starts_with(&GZIP_MAGIC)
}

/// Opens a file for reading its *decompressed* bytes: a gzip decoder when the file
/// starts with the gzip magic, the file itself otherwise. Also returns the raw
/// length when the file is not compressed (then it is the exact payload length).
pub fn open_decompressed(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    // checked before opening: opening a FIFO blocks, and a device never ends
    lenet_fs::ensure_regular(path)?;
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let (reader, gz) = gunzip_if_gzip(BufReader::with_capacity(1 << 16, file)).map_err(io_err(path))?;
    Ok((reader, if gz { None } else { Some(len) }))
}

/// Wraps a buffered stream in a gzip decoder when its first bytes are the gzip
/// magic; returns the stream and whether it was compressed.
pub fn gunzip_if_gzip<'a, R: BufRead + 'a>(mut reader: R) -> std::io::Result<(Box<dyn Read + 'a>, bool)> {
    let gz = is_gzip(reader.fill_buf()?);
    if gz {
        Ok((Box::new(MultiGzDecoder::new(reader)), true))
    } else {
        Ok((Box::new(reader), false))
    }
}

/// Reads an image file (raw or gzip).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (reader, raw_len) = open_decompressed(path)?;
    let (dims, pixels) = read_idx(reader, raw_len, path, Kind::Images)?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads a label file (raw or gzip).
pub fn read_labels(path: &Path) -> Result<IdxLabels> {
    let (reader, raw_len) = open_decompressed(path)?;
    let (_dims, labels) = read_idx(reader, raw_len, path, Kind::Labels)?;
    Ok(IdxLabels { labels })
}

/// Parses an image file already in memory (raw or gzip). `path` only names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = parse(bytes, path, Kind::Images)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Parses a label file already in memory (raw or gzip). `path` only names it in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<IdxLabels> {
    let (_dims, labels) = parse(bytes, path, Kind::Labels)?;
    Ok(IdxLabels { labels })
}

fn parse(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    if is_gzip(bytes) {
        read_idx(MultiGzDecoder::new(bytes), None, path, kind)
    } else {
        read_idx(bytes, Some(bytes.len() as u64), path, kind)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }
}

/// The one IDX reader: header, checks, then exactly the payload the header promises.
/// `raw_len` is the file's byte length when it is not compressed.
fn read_idx(
    mut reader: impl Read,
    raw_len: Option<u64>,
    path: &Path,
    kind: Kind,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let stream_err = |source: std::io::Error| match raw_len {
        None => MnistError::Gzip {
            path: path.to_path_buf(),
            source,
        },
        Some(_) => MnistError::Io {
            path: path.to_path_buf(),
            source,
        },
    };

    // --- magic -------------------------------------------------------------
    let mut magic_bytes = [0u8; 4];
    let got = read_full(&mut reader, &mut magic_bytes).map_err(stream_err)?;
    if got < 4 {
        return Err(MnistError::TruncatedHeader {
            path: path.into(),
            len: got,
            need: 4,
        });
    }
    let magic = u32::from_be_bytes(magic_bytes);
    if magic != kind.magic() {
        return Err(MnistError::BadMagic {
            path: path.into(),
            expected: kind.name(),
            expected_magic: kind.magic(),
            found: magic,
        });
    }
    let ndims = magic_bytes[3] as usize;

    // --- dimensions --------------------------------------------------------
    let header_len = 4 + 4 * ndims;
    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_full(&mut reader, &mut dim_bytes).map_err(stream_err)?;
    if got < dim_bytes.len() {
        return Err(MnistError::TruncatedHeader {
            path: path.into(),
            len: 4 + got,
            need: header_len,
        });
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    if let Kind::Images = kind {
        if dims[1] == 0 || dims[2] == 0 {
            return Err(MnistError::BadDimensions {
                path: path.into(),
                what: format!("images of {}x{} pixels", dims[1], dims[2]),
            });
        }
    }

    // --- payload size, checked before anything is allocated -----------------
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_PAYLOAD_BYTES)
        .ok_or_else(|| MnistError::TooLarge {
            path: path.into(),
            claimed: dims
                .iter()
                .map(|&d| d as u128)
                .product::<u128>()
                .min(u64::MAX as u128) as u64,
            limit: MAX_PAYLOAD_BYTES,
        })?;
    if let Some(len) = raw_len {
        let actual = len.saturating_sub(header_len as u64);
        if actual != payload {
            return Err(MnistError::SizeMismatch {
                path: path.into(),
                expected: payload,
                actual,
            });
        }
    }

    // --- payload -----------------------------------------------------------
    // For a raw file the size is now known to be right, so reserve it exactly.
    // For gzip, grow as bytes really arrive: a lying header allocates nothing.
    let mut data = Vec::with_capacity(if raw_len.is_some() { payload as usize } else { 0 });
    reader
        .take(payload + 1)
        .read_to_end(&mut data)
        .map_err(stream_err)?;
    if data.len() as u64 != payload {
        return Err(MnistError::SizeMismatch {
            path: path.into(),
            expected: payload,
            actual: data.len() as u64,
        });
    }
    Ok((dims, data))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gzip, idx_images, idx_labels};

    fn p() -> &'static Path {
        Path::new("test.idx")
    }

    #[test]
    fn reads_good_images_raw_and_gzip() {
        let bytes = idx_images(3, 2, 2, |i| i as u8);
        for b in [bytes.clone(), gzip(&bytes)] {
            let img = parse_images(&b, p()).unwrap();
            assert_eq!((img.count, img.rows, img.cols), (3, 2, 2));
            assert_eq!(img.pixels, (0..12).collect::<Vec<u8>>());
        }
    }

    #[test]
    fn reads_good_labels() {
        let bytes = idx_labels(&[5, 0, 4]);
        assert_eq!(parse_labels(&bytes, p()).unwrap().labels, vec![5, 0, 4]);
        assert_eq!(parse_labels(&gzip(&bytes), p()).unwrap().labels, vec![5, 0, 4]);
    }

    #[test]
    fn truncated_payload_is_a_size_mismatch() {
        let mut bytes = idx_images(3, 2, 2, |_| 1);
        bytes.pop();
        for b in [bytes.clone(), gzip(&bytes)] {
            match parse_images(&b, p()) {
                Err(MnistError::SizeMismatch {
                    expected: 12,
                    actual: 11,
                    ..
                }) => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn trailing_bytes_are_a_size_mismatch() {
        let mut bytes = idx_labels(&[1, 2]);
        bytes.push(3);
        for b in [bytes.clone(), gzip(&bytes)] {
            let err = parse_labels(&b, p()).unwrap_err();
            assert!(
                matches!(
                    err,
                    MnistError::SizeMismatch {
                        expected: 2,
                        actual: 3,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("trailing"));
        }
    }

    #[test]
    fn truncated_header() {
        let bytes = idx_images(1, 2, 2, |_| 0);
        for cut in [0, 3, 4, 9, 15] {
            let err = parse_images(&bytes[..cut], p()).unwrap_err();
            assert!(
                matches!(err, MnistError::TruncatedHeader { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn wrong_magic_names_the_file() {
        let bytes = idx_labels(&[1]);
        let err = parse_images(&bytes, Path::new("labels-given-as-images")).unwrap_err();
        assert!(matches!(err, MnistError::BadMagic { found: 0x801, .. }));
        assert!(err.to_string().contains("labels-given-as-images"));
        let mut bad = idx_labels(&[1]);
        bad[2] = 0x0d; // float elements
        assert!(matches!(
            parse_labels(&bad, p()),
            Err(MnistError::BadMagic { .. })
        ));
    }

    #[test]
    fn huge_claimed_size_fails_fast_without_allocating() {
        // A header that claims 2^31 images of 28x28, followed by nothing.
        let mut bytes = vec![0, 0, 8, 3];
        for d in [1u32 << 31, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        for b in [bytes.clone(), gzip(&bytes)] {
            assert!(matches!(parse_images(&b, p()), Err(MnistError::TooLarge { .. })));
        }
        // Under the limit but not matching the file: a size mismatch, found from the length.
        let mut bytes = vec![0, 0, 8, 3];
        for d in [1_000_000u32, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        assert!(matches!(
            parse_images(&bytes, p()),
            Err(MnistError::SizeMismatch { .. })
        ));
        // Through gzip the reader only holds what really arrives.
        assert!(matches!(
            parse_images(&gzip(&bytes), p()),
            Err(MnistError::SizeMismatch { actual: 0, .. })
        ));
    }

    #[test]
    fn zero_sized_images_are_refused() {
        let bytes = idx_images(2, 0, 28, |_| 0);
        assert!(matches!(
            parse_images(&bytes, p()),
            Err(MnistError::BadDimensions { .. })
        ));
    }

    #[test]
    fn bad_gzip_is_a_gzip_error() {
        let good = gzip(&idx_labels(&[1, 2, 3, 4]));
        // cut the compressed stream short
        let cut = &good[..good.len() - 10];
        assert!(matches!(
            parse_labels(cut, p()),
            Err(MnistError::Gzip { .. }) | Err(MnistError::SizeMismatch { .. })
        ));
        // corrupt the CRC in the trailer
        let mut crc = good.clone();
        let n = crc.len();
        crc[n - 8] ^= 0xff;
        assert!(matches!(parse_labels(&crc, p()), Err(MnistError::Gzip { .. })));
        // garbage after the gzip magic
        let garbage = [0x1f, 0x8b, 0x00, 0x01, 0x02];
        assert!(matches!(
            parse_labels(&garbage, p()),
            Err(MnistError::Gzip { .. }) | Err(MnistError::TruncatedHeader { .. })
        ));
    }

    #[test]
    fn file_readers_match_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_images(2, 3, 3, |i| (i * 7) as u8);
        let raw = dir.path().join("a");
        let gz = dir.path().join("b-no-gz-suffix");
        std::fs::write(&raw, &bytes).unwrap();
        std::fs::write(&gz, gzip(&bytes)).unwrap();
        assert_eq!(read_images(&raw).unwrap(), parse_images(&bytes, p()).unwrap());
        assert_eq!(read_images(&gz).unwrap(), parse_images(&bytes, p()).unwrap());
        let missing = dir.path().join("missing");
        assert!(matches!(read_images(&missing), Err(MnistError::Io { .. })));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(img) = parse_images(&bytes, p()) {
                proptest::prop_assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
            }
            if let Ok(l) = parse_labels(&bytes, p()) {
                proptest::prop_assert!(l.labels.len() <= bytes.len());
            }
        }

        #[test]
        fn mutated_headers_never_panic(
            count in 0u32..5, rows in 0u32..4, cols in 0u32..4,
            flip in 0usize..16, val in proptest::num::u8::ANY, gz in proptest::bool::ANY,
        ) {
            let mut bytes = idx_images(count as usize, rows as usize, cols as usize, |i| i as u8);
            if flip < bytes.len() { bytes[flip] = val; }
            let bytes = if gz { gzip(&bytes) } else { bytes };
            let _ = parse_images(&bytes, p());
        }
    }
}
