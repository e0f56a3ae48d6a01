//! A run directory holds one run, written by one process at a time: a lock file
//! (`.lock`, holding the writer's process id, made with `O_EXCL`) keeps a second
//! `lenet train` out while the first is alive, and a directory that already
//! holds a run's files is only written into by `--resume` or `--overwrite`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const LOCK: &str = ".lock";

/// The files a run writes (besides its checkpoints, `checkpoint-epoch-N.bin`).
const RUN_FILES: [&str; 5] = [
    "config.json",
    "model.safetensors",
    "metrics.csv",
    "metrics.json",
    "error-rate.png",
];

/// The lock of a run directory; released (the file removed) when dropped.
pub struct RunLock(PathBuf);

impl RunLock {
    /// Takes `dir`'s lock. A lock whose process is alive is refused; one left by
    /// a process that is gone (killed, or the machine restarted) is taken over,
    /// and the message says so unless `quiet`. Also proves `dir` writable.
    pub fn take(dir: &Path, quiet: bool) -> Result<Self> {
        let path = dir.join(LOCK);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .with_context(|| format!("output directory {} is not writable", dir.display()))?;
                    return Ok(RunLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid = holder.trim().parse::<u32>().ok();
                    if let Some(pid) = pid.filter(|&p| alive(p)) {
                        bail!(
                            "{} is being written by a running lenet (process {pid}); wait for it to end or \
                             choose another --out",
                            dir.display()
                        );
                    }
                    if !quiet {
                        eprintln!(
                            "taking over {}'s lock, left by process {} which is no longer running",
                            dir.display(),
                            pid.map_or_else(|| "?".to_string(), |p| p.to_string())
                        );
                    }
                    std::fs::remove_file(&path)
                        .with_context(|| format!("removing the stale lock {}", path.display()))?;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("output directory {} is not writable", dir.display()))
                }
            }
        }
        bail!("{}: another process took the lock meanwhile", path.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Is process `pid` running? (Our own counts: a lock we hold is live.)
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        // signal 0 checks existence; EPERM means it exists under another user
        // SAFETY: kill with signal 0 sends nothing.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// The run files and checkpoints in `dir`.
fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = RUN_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("checkpoint-epoch-") && name.ends_with(".bin") {
            found.push(dir.join(name));
        }
    }
    Ok(found)
}

/// Refuses a directory that holds another run's files, or with `overwrite`
/// removes them (so no checkpoint of the old run is left beside the new one's).
pub fn claim_for_new_run(dir: &Path, overwrite: bool) -> Result<()> {
    let files = run_files(dir)?;
    if files.is_empty() {
        return Ok(());
    }
    if !overwrite {
        bail!(
            "{} holds another run ({} and {} more files); choose a new --out, continue it with --resume, \
             or replace it with --overwrite",
            dir.display(),
            files[0].file_name().unwrap_or_default().to_string_lossy(),
            files.len() - 1
        );
    }
    for f in files {
        std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
    }
    Ok(())
}
