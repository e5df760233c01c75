//! A size-limited tmpfs for tests of a full disk: mounted on a fresh temp
//! dir (root only), resized while mounted, unmounted when dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts `kib` KiB; `None` where this process may not mount (not
    /// root), which the caller reports as a skip.
    pub fn mount(kib: u64) -> Option<Tmpfs> {
        let path = std::env::temp_dir().join(format!("parley-tmpfs-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).expect("tmpfs mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&path);
            return None;
        }
        Some(Tmpfs { path })
    }

    /// Gives the filesystem `kib` KiB, as an operator freeing space does.
    pub fn resize(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remounting {}", self.path.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}
