#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What lenet-fs promises, on real files: whole replacements, refusals by name,
//! reads capped whatever the file system reports, stale temporaries cleared.

use std::io::Write;
use std::path::Path;

use lenet_fs::{read_capped, remove_stale_temps, write_atomic, AtomicFile, FsError};

fn only_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_write_replaces_the_whole_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_atomic(&path, b"old").unwrap();
    write_atomic(&path, b"the new bytes").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"the new bytes");
    assert_eq!(only_entries(dir.path()), ["model.safetensors"]);
}

#[test]
fn an_uncommitted_stream_leaves_the_old_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&path, b"old").unwrap();
    let mut file = AtomicFile::create(&path).unwrap();
    file.write_all(b"half of a download").unwrap();
    drop(file); // a failed checksum: no commit
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(only_entries(dir.path()), ["train-images-idx3-ubyte"]);
}

#[cfg(unix)]
#[test]
fn links_folders_and_fifos_are_refused_by_name_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    for (path, kind) in [
        (&link, "a symbolic link"),
        (&fifo, "a FIFO"),
        (&dir.path().to_path_buf(), "a directory"),
    ] {
        let err = write_atomic(path, b"x").unwrap_err();
        assert!(
            matches!(err, FsError::NotRegular { kind: k, what: "refusing to replace it", .. } if k == kind),
            "{err}"
        );
        assert!(err.to_string().contains(kind), "{err}");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    // reading follows links to regular files, and refuses the rest before opening
    assert_eq!(read_capped(&link, 100).unwrap(), b"precious");
    let err = read_capped(&fifo, 100).unwrap_err(); // would block forever if opened
    assert!(matches!(
        err,
        FsError::NotRegular {
            kind: "a FIFO",
            what: "refusing to read it",
            ..
        }
    ));
    let err = read_capped(Path::new("/dev/zero"), 100).unwrap_err(); // would never end
    assert!(
        matches!(err, FsError::NotRegular { kind: "a device", .. }),
        "{err}"
    );
}

#[test]
fn reads_stop_one_byte_past_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, vec![7u8; 1000]).unwrap();
    assert_eq!(read_capped(&path, 1000).unwrap().len(), 1000);
    let err = read_capped(&path, 999).unwrap_err();
    assert!(
        matches!(
            err,
            FsError::TooLarge {
                len: 1000,
                limit: 999,
                ..
            }
        ),
        "{err}"
    );
    let err = read_capped(&dir.path().join("missing"), 10).unwrap_err();
    assert!(
        matches!(err, FsError::Io { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[test]
fn stale_temporary_files_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    // what a writer killed mid-write leaves: `.NAME.tmp-PID-RANDOM`
    let dead = dir.path().join(".model.safetensors.tmp-999999999-a1b2c3"); // above any Linux pid_max
    let ours = dir
        .path()
        .join(format!(".metrics.csv.tmp-{}-d4e5f6", std::process::id()));
    let keep = dir.path().join("model.safetensors");
    for f in [&dead, &ours, &keep] {
        std::fs::write(f, b"partial").unwrap();
    }
    assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
    assert!(!dead.exists() && ours.exists() && keep.exists());

    // and the names write_atomic really uses are the ones it recognises
    let mut live = AtomicFile::create(&keep).unwrap();
    live.write_all(b"in flight").unwrap();
    let name = live
        .temp_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!(".model.safetensors.tmp-{}-", std::process::id())),
        "{name}"
    );
    assert_eq!(remove_stale_temps(dir.path()).unwrap(), 0); // ours, alive
}
