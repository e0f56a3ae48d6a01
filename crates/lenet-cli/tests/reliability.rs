//! The guarantees a user relies on, tested on real training runs of the `lenet`
//! binary: a run killed at any moment leaves only whole files and resumes to the
//! same model; a full disk and a diverging run stop cleanly and keep the last good
//! checkpoint; the same seed gives the same bytes, whatever the thread count; memory
//! stays flat across epochs. (docs/reliability.md lists them all.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test stops at the first surprise

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{data_dir, text};

/// A short real run: 3 epochs of 1,200 images.
fn run_args(data: &Path, out: &Path, threads: &str) -> Vec<String> {
    [
        "train",
        "--epochs",
        "3",
        "--limit",
        "1200",
        "--batch-size",
        "16",
        "--seed",
        "5",
        "--threads",
        threads,
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_ok(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Every file of a run directory that is not a temporary file is whole and valid.
fn assert_all_files_valid(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if is_temp(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let ok = if name == ".lock" {
            // a killed run's lock: its process id, or empty if killed as it made it
            let text = String::from_utf8(bytes).unwrap();
            if text.is_empty() || text.trim().parse::<u32>().is_ok() {
                Ok(())
            } else {
                Err(format!("lock holds {text:?}"))
            }
        } else if name.ends_with(".bin") {
            lenet_optim::checkpoint::load(&path)
                .map(drop)
                .map_err(|e| e.to_string())
        } else if name.ends_with(".safetensors") {
            lenet_layers::model_file::load(&path)
                .map(drop)
                .map_err(|e| e.to_string())
        } else if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        } else if name.ends_with(".csv") {
            let text = String::from_utf8(bytes).unwrap();
            let columns = |l: &str| l.split(',').count();
            let header = text.lines().next().map(columns).unwrap_or(0);
            if text.ends_with('\n') && text.lines().all(|l| columns(l) == header) {
                Ok(())
            } else {
                Err("ragged or unterminated CSV".to_string())
            }
        } else if name.ends_with(".png") {
            image::load_from_memory(&bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            Err("unexpected file".to_string())
        };
        if let Err(e) = ok {
            panic!("{} is not whole: {e}", path.display());
        }
    }
}

fn temps_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| is_temp(n))
        .collect()
}

/// The checkpoint a user would resume from: the one of the latest epoch.
fn newest_checkpoint(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let epoch: usize = name
                .strip_prefix("checkpoint-epoch-")?
                .strip_suffix(".bin")?
                .parse()
                .ok()?;
            Some((epoch, p))
        })
        .max()
        .map(|(_, p)| p)
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    let _ = child.wait();
}

/// Kills a run at several moments (early, mid-run, and the instant a checkpoint's
/// temporary file appears, i.e. during the write), checks that every file left is
/// whole, resumes from the newest checkpoint (or starts again in the same directory
/// when there is none) and checks the final model equals an uninterrupted run's.
#[test]
fn sigkill_at_any_moment_leaves_whole_files_and_resume_finishes_identically() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    run_ok(&run_args(&data, &straight, "2"));
    let want = std::fs::read(straight.join("model.safetensors")).unwrap();

    let mut caught_mid_write = 0;
    for (i, moment) in ["0.2", "1.0", "2.0", "write", "write", "write"]
        .iter()
        .enumerate()
    {
        let out = tmp.path().join(format!("killed-{i}"));
        let mut child = spawn(&run_args(&data, &out, "2"));
        if *moment == "write" {
            // poll for a checkpoint's temporary file and kill at once
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if out.exists() && temps_in(&out).iter().any(|n| n.contains("checkpoint")) {
                    sigkill(&mut child);
                    caught_mid_write += 1;
                    break;
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        } else {
            std::thread::sleep(Duration::from_secs_f64(moment.parse().unwrap()));
            sigkill(&mut child);
        }
        let _ = child.wait();
        if !out.exists() {
            continue; // killed before it made its directory
        }
        assert_all_files_valid(&out);
        let resume_args = match newest_checkpoint(&out) {
            Some(ck) => vec![
                "train".to_string(),
                "--resume".into(),
                ck.display().to_string(),
                "--data-dir".into(),
                data.display().to_string(),
                "--quiet".into(),
            ],
            // killed before its first checkpoint: start the run again over what it left
            None => {
                let mut args = run_args(&data, &out, "2");
                args.push("--overwrite".into());
                args
            }
        };
        run_ok(&resume_args);
        assert_all_files_valid(&out);
        assert!(
            temps_in(&out).is_empty(),
            "temporary files left: {:?}",
            temps_in(&out)
        );
        assert!(
            std::fs::read(out.join("model.safetensors")).unwrap() == want,
            "run {i} (killed at {moment}) resumed to a different model"
        );
    }
    eprintln!("killed during a checkpoint write {caught_mid_write} of 3 times");
}

#[test]
fn same_seed_gives_identical_model_files_whatever_the_thread_count() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let model = |threads: &str, name: &str| {
        let out = tmp.path().join(name);
        run_ok(&run_args(&data, &out, threads));
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let a = model("2", "a");
    assert!(
        a == model("2", "b"),
        "same seed and threads, different model files"
    );
    assert!(
        a == model("1", "c"),
        "1 thread and 2 threads gave different models"
    );
    assert!(
        a == model("3", "d"),
        "3 threads and 2 threads gave different models"
    );
}

#[test]
fn divergence_stops_within_the_epoch_and_keeps_the_last_good_checkpoint() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    // epoch 1 at the default rate, epoch 2 at 1000 times it
    let mut args = run_args(&data, &out_dir, "2");
    args.extend(["--schedule".to_string(), "1=5e-4,2=0.5".to_string()]);
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(&args)
        .output()
        .unwrap();
    common::assert_clean_failure(&out, "diverged in epoch 2");
    let stderr = text(&out).1;
    assert!(
        stderr.contains("batch") && stderr.contains("last finite batch loss"),
        "{stderr}"
    );
    assert!(lenet_optim::checkpoint::load(&out_dir.join("checkpoint-epoch-1.bin")).is_ok());
    assert!(!out_dir.join("checkpoint-epoch-2.bin").exists());
    assert!(!out_dir.join("model.safetensors").exists());
    assert_all_files_valid(&out_dir);
}

/// A tmpfs big enough for the first checkpoint but not the second: the run fails
/// with the system's message, leaving the first checkpoint whole and no temporary
/// file. Needs root (mount).
#[test]
#[ignore = "needs root: mounts a small tmpfs"]
fn a_full_disk_stops_cleanly_and_keeps_the_last_checkpoint() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1100k", "tmpfs", mnt.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs here: run as root");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let out_dir = mnt.join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(run_args(&data, &out_dir, "2"))
        .output()
        .unwrap();
    common::assert_clean_failure(&out, "no space left on device");
    assert!(lenet_optim::checkpoint::load(&out_dir.join("checkpoint-epoch-1.bin")).is_ok());
    assert_all_files_valid(&out_dir);
    assert!(temps_in(&out_dir).is_empty(), "{:?}", temps_in(&out_dir));
}

/// Peak resident memory of a child run, from `wait4`'s resource usage (kB).
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which Child cannot see
fn peak_rss_kb(args: &[String]) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain FFI call with valid pointers to locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "run failed"
    );
    usage.ru_maxrss
}

#[cfg(target_os = "linux")]
#[test]
fn memory_stays_flat_across_epochs() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let args = |epochs: &str, name: &str| {
        let mut a = run_args(&data, &tmp.path().join(name), "2");
        a[2] = epochs.to_string(); // --epochs
        a[4] = "300".to_string(); // --limit
        a
    };
    let two = peak_rss_kb(&args("2", "two"));
    let twenty = peak_rss_kb(&args("20", "twenty"));
    eprintln!("peak RSS: 2 epochs {two} kB, 20 epochs {twenty} kB");
    assert!(
        (twenty as f64) < 1.1 * two as f64,
        "20 epochs peaked at {twenty} kB, 2 epochs at {two} kB"
    );
}
