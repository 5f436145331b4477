//! The per-invocation scratch directory behind `/scratch`: made empty for each invocation and
//! removed after it, off the async threads.
//!
//! What is inside is the guest's: a tree of any depth and width, symlinks pointing anywhere.
//! So removal ([`remove_tree`]) keeps its walk on the heap (a recursive walk of a 16,000-level
//! tree overflowed a tokio worker's stack and aborted the worker), works relative to directory
//! descriptors (no path it builds can outgrow PATH_MAX), never follows a link (a symlink is
//! unlinked, whatever it points to), holds a constant number of descriptors (it climbs back
//! through `..`, checked against the directory it came from) and reads each directory once.

use std::{
    ffi::{CStr, CString},
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use rustix::{
    fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags},
    io::Errno,
};

/// A fresh directory for one invocation, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// An empty directory under `root`, with a name no other invocation has.
    pub fn create(root: &Path) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mlx-scratch-")
            .tempdir_in(root)?;
        Ok(Self { path: dir.keep() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    /// A big tree takes a while to remove: on a runtime that goes to its blocking pool, so the
    /// invocation's result is not held up by it (the runtime lets it finish before it shuts
    /// down); without one it is done here.
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || remove_logged(&path))),
            Err(_) => remove_logged(&path),
        }
    }
}

/// A directory left behind costs disk, not correctness: say where it is and go on.
fn remove_logged(path: &Path) {
    if let Err(error) = remove_tree(path) {
        tracing::warn!(
            path = %path.display(),
            %error,
            "could not remove a scratch directory; remove it by hand"
        );
    }
}

/// Directories are opened for reading, never through a symlink, and not inherited by children.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How often a directory found not empty when it should be is read again before giving up:
/// a host call the guest started may still finish after the store is gone.
const MAX_REREADS: usize = 64;

/// Removes `path` and everything under it without following symlinks (a symlink at `path` is
/// itself removed, not what it points to); see the module documentation.
///
/// Directories the worker may not write or read are made so (owner `rwx`) as removal needs:
/// a guest cannot change modes through WASI, so only the host could have set them.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path ending in a name"))?;
    let name = CString::new(name.as_bytes())?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = rustix::fs::openat(CWD, parent, DIR_FLAGS, Mode::empty())?;
    let top = match open_dir(&parent, &name) {
        Ok(top) => top,
        Err(Errno::NOENT) => return Ok(()),
        // A symlink or file where the directory was: that entry is all there is to remove.
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return Ok(rustix::fs::unlinkat(&parent, &name, AtFlags::empty())?);
        }
        Err(e) => return Err(e.into()),
    };
    empty_tree(top)?;
    let mut made_writable = false;
    remove_at(&parent, &name, AtFlags::REMOVEDIR, &mut made_writable)?;
    Ok(())
}

/// One directory on the way down from the top.
struct Level {
    /// Its name in its parent.
    name: CString,
    /// (device, inode): where `..` must lead back to from a child.
    id: (u64, u64),
    /// Its subdirectories that were not empty when it was read.
    pending: Vec<CString>,
}

/// Empties the directory open as `top`, leaving it in place.
fn empty_tree(top: OwnedFd) -> io::Result<()> {
    let mut current = top;
    let mut stack = vec![Level {
        name: CString::default(),
        id: id_of(&current)?,
        pending: read_and_prune(&current)?,
    }];
    let mut rereads = 0;
    while let Some(level) = stack.last_mut() {
        if let Some(child) = level.pending.pop() {
            match open_dir(&current, &child) {
                Ok(fd) => {
                    let pending = read_and_prune(&fd)?;
                    stack.push(Level {
                        name: child,
                        id: id_of(&fd)?,
                        pending,
                    });
                    current = fd;
                }
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    rustix::fs::unlinkat(&current, &child, AtFlags::empty())?;
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        // Everything below `current` is gone, so it is empty: climb to its parent and remove it.
        let done = stack.pop().expect("the loop holds a last level");
        let Some(parent) = stack.last_mut() else {
            break;
        };
        let up = rustix::fs::openat(&current, c"..", DIR_FLAGS, Mode::empty())?;
        if id_of(&up)? != parent.id {
            return Err(io::Error::other(
                "a directory was moved while its tree was being removed",
            ));
        }
        current = up;
        let mut made_writable = false;
        match remove_at(&current, &done.name, AtFlags::REMOVEDIR, &mut made_writable) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY | Errno::EXIST) if rereads < MAX_REREADS => {
                rereads += 1;
                parent.pending.push(done.name);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads `dir` once, removing every entry but its non-empty subdirectories, which it returns.
fn read_and_prune(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let mut pending = Vec::new();
    let mut made_writable = false;
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            // Some filesystems do not say: ask, without following a link.
            FileType::Unknown => {
                let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(stat.st_mode) == FileType::Directory
            }
            _ => false,
        };
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match remove_at(dir, name, flags, &mut made_writable) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY | Errno::EXIST) if is_dir => pending.push(name.to_owned()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pending)
}

/// `unlinkat`, making `dir` writable (once) if it refuses for want of permission.
fn remove_at(
    dir: &OwnedFd,
    name: &CStr,
    flags: AtFlags,
    made_writable: &mut bool,
) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Err(Errno::ACCESS | Errno::PERM) if !*made_writable => {
            *made_writable = true;
            rustix::fs::fchmod(dir, Mode::RWXU)?;
            rustix::fs::unlinkat(dir, name, flags)
        }
        other => other,
    }
}

/// Opens the directory `name` in `dir` for reading, never through a symlink. One the worker
/// may not read is made readable first, through a descriptor that cannot be a link.
fn open_dir(dir: &OwnedFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::ACCESS) => {
            let path_only = OFlags::PATH
                .union(OFlags::DIRECTORY)
                .union(OFlags::NOFOLLOW)
                .union(OFlags::CLOEXEC);
            let handle = rustix::fs::openat(dir, name, path_only, Mode::empty())?;
            // fchmod refuses O_PATH descriptors; its /proc link names the directory itself.
            let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
            rustix::fs::chmod(link.as_str(), Mode::RWXU)?;
            rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
        }
        other => other,
    }
}

fn id_of(dir: &OwnedFd) -> rustix::io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(dir)?;
    Ok((stat.st_dev, stat.st_ino))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// Runs `f` on a thread with a small stack: removal must not need more for deeper trees.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(f)
            .expect("spawning a thread")
            .join()
            .expect("the thread panicked")
    }

    /// Nests `depth` directories named `d` under `root`, through descriptors (the path would
    /// outgrow PATH_MAX), returning the deepest.
    fn nest(root: &Path, depth: usize) -> OwnedFd {
        let mut dir = rustix::fs::openat(CWD, root, DIR_FLAGS, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, c"d", Mode::RWXU).unwrap();
            dir = rustix::fs::openat(&dir, c"d", DIR_FLAGS, Mode::empty()).unwrap();
        }
        dir
    }

    #[test]
    fn a_deep_tree_is_removed_on_a_small_stack() {
        let root = tempfile::tempdir().unwrap();
        let scratch = root.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let deepest = nest(&scratch, 20_000);
        let file = rustix::fs::openat(
            &deepest,
            c"f",
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        drop((file, deepest));
        let path = scratch.clone();
        on_small_stack(move || remove_tree(&path)).unwrap();
        assert!(!scratch.exists());
    }

    #[test]
    fn symlinks_are_removed_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("keep.txt"), "keep").unwrap();
        let scratch = root.path().join("scratch");
        std::fs::create_dir_all(scratch.join("a")).unwrap();
        symlink(&outside, scratch.join("a/link")).unwrap();
        symlink(&outside, scratch.join("link")).unwrap();
        symlink(outside.join("keep.txt"), scratch.join("file-link")).unwrap();
        remove_tree(&scratch).unwrap();
        assert!(!scratch.exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "keep"
        );
        assert!(outside.join("sub").is_dir());

        // A symlink in place of the directory itself: only the link goes.
        let link = root.path().join("scratch-link");
        symlink(&outside, &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(outside.join("keep.txt").is_file());
    }

    #[test]
    fn a_wide_directory_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let scratch = root.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        for i in 0..10_000 {
            if i % 10 == 0 {
                std::fs::create_dir_all(scratch.join(format!("dir{i}/inner"))).unwrap();
            } else {
                std::fs::write(scratch.join(format!("file{i}")), "x").unwrap();
            }
        }
        let path = scratch.clone();
        on_small_stack(move || remove_tree(&path)).unwrap();
        assert!(!scratch.exists());
    }

    /// As root (in CI containers) permissions do not stop removal anyway; as another user the
    /// modes are changed as needed.
    #[test]
    fn directories_without_write_or_read_permission_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let scratch = root.path().join("scratch");
        std::fs::create_dir_all(scratch.join("ro/deeper")).unwrap();
        std::fs::write(scratch.join("ro/file"), "x").unwrap();
        std::fs::write(scratch.join("ro/deeper/file"), "x").unwrap();
        std::fs::create_dir_all(scratch.join("closed/inside")).unwrap();
        let mode = |path: &str, bits| {
            std::fs::set_permissions(scratch.join(path), std::fs::Permissions::from_mode(bits))
                .unwrap()
        };
        mode("ro/deeper", 0o500);
        mode("ro", 0o500);
        mode("closed", 0o000);
        remove_tree(&scratch).unwrap();
        assert!(!scratch.exists());
    }

    #[test]
    fn a_missing_directory_is_not_an_error() {
        let root = tempfile::tempdir().unwrap();
        remove_tree(&root.path().join("never-made")).unwrap();
    }

    #[tokio::test]
    async fn dropping_removes_the_directory_in_the_background() {
        let root = tempfile::tempdir().unwrap();
        let scratch = ScratchDir::create(root.path()).unwrap();
        let path = scratch.path().to_path_buf();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(scratch);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while path.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} left behind",
                path.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
