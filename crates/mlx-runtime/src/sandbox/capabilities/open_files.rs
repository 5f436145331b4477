//! Open files: every file or directory a guest opens (`open-at`) is a host file descriptor,
//! held until the guest drops it and every stream made from it. Without a cap one invocation
//! could take every descriptor the worker has, and a neighbour's next invocation would fail
//! to open its grants. Each invocation may hold `limits.max_open_files`; opening one more ends
//! it with a trap the host classifies as `PluginTooManyOpenFiles` (an error code instead could
//! be swallowed and retried in a loop by the guest).
//!
//! wasmtime-wasi's `wasi:filesystem/types` is linked again over its own (shadowing it), with
//! `open-at` counted and every other function passed through unchanged. What is counted is the
//! host file itself (a weak reference to it), so a stream that outlives its descriptor still
//! counts, and a file is free again only once nothing of the guest's holds it.
//!
//! The same shadow charges writes to the call's disk quota ([`super::disk`]): there can be
//! only one implementation of an interface in a linker.

use std::sync::{Arc, Weak};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::{
    filesystem::{Descriptor, WasiFilesystemCtxView},
    p2::{
        DynInputStream, DynOutputStream, FsError, FsResult,
        bindings::filesystem::types::{self, HostDescriptor, HostDirectoryEntryStream},
    },
};

use super::{
    disk::{ChargedOutputStream, DIRECTORY_BYTES, DiskQuota},
    host_memory::{
        ChargedInputStream, DIRECTORY_ENTRY_BYTES, HostCharge, HostMemory, STREAM_BYTES,
    },
};

/// Default `limits.max_open_files`: far more than a data step keeps open at once, few enough
/// that dozens of invocations fit a worker's descriptor limit.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// The most a manifest may ask for; the worker's own budget may refuse less (see
/// `PluginHost`).
pub const MAX_OPEN_FILES_CEILING: usize = 4096;

/// The files one invocation has open.
#[derive(Debug)]
pub struct OpenFiles {
    limit: usize,
    open: Vec<Weak<std::fs::File>>,
    /// The guest tried to open one more than its limit.
    pub(crate) hit: bool,
}

impl OpenFiles {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Vec::new(),
            hit: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Files still open. At most `limit` entries to look at, once per `open-at`.
    fn live(&mut self) -> usize {
        self.open.retain(|file| file.strong_count() > 0);
        self.open.len()
    }
}

/// The trap that ends an invocation opening more files than its limit.
#[derive(Debug, thiserror::Error)]
#[error("plugin tried to open more than {limit} files at once (limits.max_open_files)")]
pub struct TooManyOpenFiles {
    pub limit: usize,
}

/// The store's filesystem state and its open-file count, borrowed together.
pub struct OpenFilesCtxView<'a> {
    pub fs: WasiFilesystemCtxView<'a>,
    pub files: &'a mut OpenFiles,
    pub disk: &'a DiskQuota,
    pub host: &'a HostMemory,
}

pub trait OpenFilesView: Send {
    fn open_files(&mut self) -> OpenFilesCtxView<'_>;
}

struct CountedFilesystem;

impl HasData for CountedFilesystem {
    type Data<'a> = OpenFilesCtxView<'a>;
}

/// Links the counted `wasi:filesystem/types` over wasmtime-wasi's: call it after
/// [`super::wasi::add_to_linker`].
pub fn add_to_linker<T: OpenFilesView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = types::add_to_linker::<T, CountedFilesystem>(linker, T::open_files);
    linker.allow_shadowing(false);
    linked
}

impl OpenFilesCtxView<'_> {
    fn charge(&self, bytes: u64) -> FsResult<()> {
        self.disk.charge(bytes).map_err(FsError::trap)
    }

    fn hold(&self, bytes: usize, what: &'static str) -> FsResult<HostCharge> {
        self.host.charge(bytes, what).map_err(FsError::trap)
    }

    /// Puts `stream` back in the table behind the quota's charge, holding the host memory its
    /// write buffer may take.
    fn charged(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let host = self.hold(STREAM_BYTES, "file streams")?;
        let inner = self.fs.table.delete(stream)?;
        let charged: DynOutputStream = Box::new(ChargedOutputStream {
            inner,
            quota: self.disk.clone(),
            _host: host,
        });
        Ok(self.fs.table.push(charged)?)
    }
}

/// Whether the guest may write through `fd`: a write to a read-only grant fails with the
/// denial it is, not a quota charge.
fn writable(fs: &WasiFilesystemCtxView<'_>, fd: &Resource<types::Descriptor>) -> FsResult<bool> {
    let perms = match fs.table.get(fd)? {
        Descriptor::File(file) => file.perms,
        Descriptor::Dir(dir) => dir.perms,
    };
    Ok(!perms.write_not_permitted())
}

impl types::Host for OpenFilesCtxView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<types::ErrorCode> {
        types::Host::convert_error_code(&mut self.fs, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<types::ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.fs, err)
    }
}

impl HostDescriptor for OpenFilesCtxView<'_> {
    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        if self.files.live() >= self.files.limit {
            self.files.hit = true;
            return Err(FsError::trap(TooManyOpenFiles {
                limit: self.files.limit,
            }));
        }
        let opened =
            HostDescriptor::open_at(&mut self.fs, fd, path_flags, path, oflags, flags).await?;
        let file = match self.fs.table.get(&opened)? {
            Descriptor::File(file) => Arc::downgrade(&file.file),
            Descriptor::Dir(dir) => Arc::downgrade(&dir.dir),
        };
        self.files.open.push(file);
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.fs, fd)
    }

    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.fs, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.fs, fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.fs, fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.fs, fd).await
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        if writable(&self.fs, &fd)? {
            let now = HostDescriptor::stat(&mut self.fs, Resource::new_borrow(fd.rep()))
                .await?
                .size;
            self.charge(size.saturating_sub(now))?;
        }
        HostDescriptor::set_size(&mut self.fs, fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.fs, fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.fs, fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        if writable(&self.fs, &fd)? {
            self.charge(buf.len() as u64)?;
        }
        HostDescriptor::write(&mut self.fs, fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        // wasmtime-wasi reads the whole listing into host memory: charge it, and keep it in a
        // listing of ours that holds the charge until the guest drops it.
        let listing = HostDescriptor::read_directory(&mut self.fs, fd).await?;
        let entries: Vec<_> = self.fs.table.delete(listing)?.into_iter().collect();
        let bytes = entries.iter().fold(0usize, |sum, entry| {
            let name = entry.as_ref().map_or(0, |e| e.name.len());
            sum.saturating_add(DIRECTORY_ENTRY_BYTES + name)
        });
        let listing = Listing {
            _charge: self.hold(bytes, "directory listings")?,
            entries: entries.into_iter(),
        };
        let ours = self.fs.table.push(listing)?;
        Ok(Resource::new_own(ours.rep()))
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.fs, fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        if writable(&self.fs, &fd)? {
            self.charge(DIRECTORY_BYTES)?;
        }
        HostDescriptor::create_directory_at(&mut self.fs, fd, path).await
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat(&mut self.fs, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat_at(&mut self.fs, fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times_at(&mut self.fs, fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        HostDescriptor::link_at(
            &mut self.fs,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        HostDescriptor::readlink_at(&mut self.fs, fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        HostDescriptor::remove_directory_at(&mut self.fs, fd, path).await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        HostDescriptor::rename_at(&mut self.fs, fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        HostDescriptor::symlink_at(&mut self.fs, fd, src_path, dest_path).await
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        HostDescriptor::unlink_file_at(&mut self.fs, fd, path).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let host = self.hold(STREAM_BYTES, "file streams")?;
        let stream = HostDescriptor::read_via_stream(&mut self.fs, fd, offset)?;
        let inner = self.fs.table.delete(stream)?;
        let charged: DynInputStream = Box::new(ChargedInputStream {
            inner,
            _charge: host,
        });
        Ok(self.fs.table.push(charged)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = HostDescriptor::write_via_stream(&mut self.fs, fd, offset)?;
        self.charged(stream)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = HostDescriptor::append_via_stream(&mut self.fs, fd)?;
        self.charged(stream)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.fs, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.fs, fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.fs, fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for OpenFilesCtxView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let listing = self.fs.table.get_mut(&Listing::handle(&stream))?;
        listing.entries.next().transpose()
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.fs.table.delete(Listing::handle(&stream))?;
        Ok(())
    }
}

/// A directory listing as the guest sees it (a `directory-entry-stream`), holding its charge
/// until dropped. wasmtime-wasi's own listing type cannot be made outside it, so the table
/// holds this one under the stream's handle: every function on the handle is in this shadow.
struct Listing {
    entries: std::vec::IntoIter<FsResult<types::DirectoryEntry>>,
    _charge: HostCharge,
}

impl Listing {
    fn handle(stream: &Resource<types::DirectoryEntryStream>) -> Resource<Listing> {
        if stream.owned() {
            Resource::new_own(stream.rep())
        } else {
            Resource::new_borrow(stream.rep())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counts_until_nothing_holds_it() {
        let mut files = OpenFiles::new(2);
        let held = Arc::new(tempfile::tempfile().unwrap());
        let stream_copy = held.clone();
        files.open.push(Arc::downgrade(&held));
        let dropped = Arc::new(tempfile::tempfile().unwrap());
        files.open.push(Arc::downgrade(&dropped));
        drop(dropped);
        assert_eq!(files.live(), 1);
        drop(held);
        assert_eq!(files.live(), 1, "a stream still holds it");
        drop(stream_copy);
        assert_eq!(files.live(), 0);
    }
}
