//! The `disk` fault: one operator's disk full. With `disk` among the kinds, every operator's data
//! directory is a tmpfs of its own (mounted by the run, so the kind needs root); the fault fills
//! the victim's with a ballast file. The operator must stop loudly (exit code 2, "fatal" in its
//! log) and lose nothing: the heal frees the space and restarts it, and the checker reads its
//! storage back after the run.

use eyre::{bail, Result, WrapErr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each operator's tmpfs holds this much; the fault fills what is left of it.
const SIZE_MB: u64 = 1024;
const BALLAST: &str = "chaos-ballast";

/// The mounted data directories of a run; unmounted when dropped.
pub struct Disks {
    dirs: Vec<PathBuf>,
}

/// Unmounts `dir` if something is mounted there (a run that was cut short leaves its mounts).
pub fn unmount_stale(dir: &Path) {
    if is_mount(dir) {
        let _ = Command::new("umount").arg("-l").arg(dir).status();
    }
}

fn is_mount(dir: &Path) -> bool {
    let Ok(canon) = dir.canonicalize() else { return false };
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(&canon.to_string_lossy())))
        .unwrap_or(false)
}

impl Disks {
    /// Mounts a tmpfs at `run_dir/node{i}` for every operator.
    pub fn mount(run_dir: &Path, nodes: usize) -> Result<Self> {
        let mut disks = Disks { dirs: vec![] };
        for i in 0..nodes {
            let dir = run_dir.join(format!("node{i}"));
            std::fs::create_dir_all(&dir)?;
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={SIZE_MB}m,mode=0700"), "tmpfs"])
                .arg(&dir)
                .output()
                .wrap_err("running mount")?;
            if !out.status.success() {
                bail!(
                    "the disk fault mounts a {SIZE_MB} MiB tmpfs per operator and needs root (or leave `disk` out of --faults): mount {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            disks.dirs.push(dir);
        }
        Ok(disks)
    }

    /// Fills operator `i`'s disk to the last byte; returns the ballast's size.
    pub fn fill(&self, i: usize) -> Result<u64> {
        let path = self.dirs[i].join(BALLAST);
        let mut f = std::fs::File::create(&path)?;
        // Large writes until one fails, then smaller ones take what is left.
        for size in [1 << 20, 4096, 64] {
            let chunk = vec![0u8; size];
            while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        }
        Ok(std::fs::metadata(&path)?.len())
    }

    /// Frees operator `i`'s disk again.
    pub fn free(&self, i: usize) -> Result<()> {
        let path = self.dirs[i].join(BALLAST);
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = Command::new("umount").arg("-l").arg(d).status();
        }
    }
}
