//! Replace a file so that a reader never sees half of it, then read it back with
//! a byte budget; a symbolic link at the target is refused, not written through.
//!
//! ```sh
//! cargo run -p lenet-fs --example atomic_write
//! ```

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("weights.bin");

    lenet_fs::write_atomic(&path, b"version 1")?;
    lenet_fs::write_atomic(&path, b"version 2")?; // old file or new file, never a mix
    println!(
        "read back: {:?}",
        String::from_utf8(lenet_fs::read_capped(&path, 1024)?)?
    );

    // a stream whose bytes land only if it is committed (a download checked by hash)
    let mut file = lenet_fs::AtomicFile::create(&path)?;
    file.write_all(b"a download that fails its checksum")?;
    drop(file); // no commit: the old file stays
    println!(
        "after a dropped stream: {:?}",
        String::from_utf8(std::fs::read(&path)?)?
    );

    #[cfg(unix)]
    {
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link)?;
        match lenet_fs::write_atomic(&link, b"x") {
            Err(e) => println!("refused: {e}"),
            Ok(()) => return Err("a link was replaced".into()),
        }
    }
    Ok(())
}
