//! Host memory a guest makes the worker spend: each operation costs the guest a handle or a few
//! bytes per list element, and the host far more (a pinned read buffer, a lifted `Vec` of
//! `String`s, a directory listing held in full, a heartbeat parsed into a JSON tree). None of
//! it is the guest's linear memory, so `limits.memory_mb` alone does not bound it; the host's
//! tests check that a per-invocation host byte budget does.
//!
//! Two lists are lowered by hand (`log_fields`, `poll_list`) instead of through the generated
//! bindings, which would first build a Rust `Vec` of the elements and then copy it into a
//! lowered one: by hand, the guest pays only the canonical ABI's bytes per element, so the same
//! `memory_mb` reaches several times as many elements on the host.

use mlx_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};
use wasi::filesystem::{
    preopens,
    types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags},
};

/// The bytes one stream asks for: what makes wasmtime-wasi start a background read of that
/// size, whose buffer it keeps until the next read.
const STREAM_CHUNK: u64 = 64 << 10;

/// The preopened directory mounted at `path`.
fn preopen(path: &str) -> Result<Descriptor, PluginError> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, guest)| (guest == path).then_some(dir))
        .ok_or_else(|| PluginError::invalid_input("NotGranted", format!("{path} is not preopened")))
}

fn fs_failed(what: impl std::fmt::Display, e: impl std::fmt::Debug) -> PluginError {
    PluginError::permanent("HoardFailed", format!("{what}: {e:?}"))
}

/// `count * unit` (elements or bytes), refused if it does not fit this platform's address
/// space.
fn scaled(count: u64, unit: u64, field: &str) -> Result<usize, PluginError> {
    count
        .checked_mul(unit)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            PluginError::invalid_input(
                "InvalidParameter",
                format!("{field} = {count} exceeds this platform's address space"),
            )
        })
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamHoard {
    streams: u64,
    writes: bool,
}

impl Default for StreamHoard {
    fn default() -> Self {
        Self {
            streams: 100_000,
            writes: false,
        }
    }
}

/// Opens `streams` streams on one file of `/scratch` and keeps them all, each having asked for
/// 64 KiB once: a read makes the host start a background read into a buffer it pins until the
/// next read (which never comes), a write hands the host 64 KiB to write in the background.
pub fn stream_hoard(input: StreamHoard) -> Result<Value, PluginError> {
    let scratch = preopen("/scratch")?;
    std::fs::write("/scratch/hoard", vec![0xa5u8; 1 << 20])
        .map_err(|e| fs_failed("writing /scratch/hoard", e))?;
    let fd = scratch
        .open_at(
            PathFlags::empty(),
            "hoard",
            OpenFlags::empty(),
            DescriptorFlags::READ | DescriptorFlags::WRITE,
        )
        .map_err(|e| fs_failed("opening /scratch/hoard", e))?;
    let reached = if input.writes {
        let zeros = vec![0u8; STREAM_CHUNK as usize];
        let mut kept = Vec::new();
        for i in 0..input.streams {
            let s = fd
                .write_via_stream(0)
                .map_err(|e| fs_failed(format!("write stream {i}"), e))?;
            let permitted = s
                .check_write()
                .map_err(|e| fs_failed(format!("check-write on stream {i}"), e))?;
            s.write(&zeros[..permitted.min(STREAM_CHUNK) as usize])
                .map_err(|e| fs_failed(format!("write on stream {i}"), e))?;
            kept.push(s);
        }
        kept.len()
    } else {
        let mut kept = Vec::new();
        for i in 0..input.streams {
            let s = fd
                .read_via_stream(0)
                .map_err(|e| fs_failed(format!("read stream {i}"), e))?;
            s.read(STREAM_CHUNK)
                .map_err(|e| fs_failed(format!("read on stream {i}"), e))?;
            kept.push(s);
        }
        kept.len()
    };
    Ok(json!({ "reached": reached }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFields {
    fields: u64,
}

impl Default for LogFields {
    fn default() -> Self {
        Self { fields: 8_000_000 }
    }
}

// The `mlx:plugin/log` import, declared as wit-bindgen declares it for the SDK. Off wasm
// (native unit tests) there is no host to call.
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "mlx:plugin/log@0.1.0")]
unsafe extern "C" {
    /// Level, message, and `list<field>` as a pointer to 16-byte records (key and value, each
    /// a pointer and a length) and their count.
    #[link_name = "log"]
    fn log_import(
        level: i32,
        message: *const u8,
        message_len: usize,
        fields: *const u32,
        len: usize,
    );
}

#[cfg(not(target_arch = "wasm32"))]
unsafe extern "C" fn log_import(_: i32, _: *const u8, _: usize, _: *const u32, _: usize) {
    unreachable!("log_fields needs a host")
}

/// `info` in the WIT enum `level { trace, debug, info, warn, error }`.
const LEVEL_INFO: i32 = 2;

/// One log call with `fields` empty fields: 16 guest bytes each (zeroed records: empty strings),
/// which the host lifts into a `Vec` of two empty `String`s each (48 bytes on a 64-bit host)
/// before its log capability sees the call.
pub fn log_fields(input: LogFields) -> Result<Value, PluginError> {
    let records = vec![0u32; scaled(input.fields, 16, "fields")? / 4];
    let message = "fields";
    // SAFETY: the signature is the import's canonical lowering, and `records` holds
    // `input.fields` records of four u32 (pointer 0, length 0: an empty string, twice).
    unsafe {
        log_import(
            LEVEL_INFO,
            message.as_ptr(),
            message.len(),
            records.as_ptr(),
            records.len() / 4,
        );
    }
    Ok(json!({ "fields": input.fields }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollList {
    entries: u64,
}

impl Default for PollList {
    fn default() -> Self {
        Self {
            entries: 16_000_000,
        }
    }
}

// `wasi:io/poll.poll`, declared as the `wasi` crate (wasip2 1.0.4, WASI 0.2.12) declares it.
// The version must be the crate's, or the component does not link.
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasi:io/poll@0.2.12")]
unsafe extern "C" {
    /// A list of pollable handles (4 bytes each) and a return area for the `list<u32>` of
    /// ready indices (pointer, length).
    #[link_name = "poll"]
    fn poll_import(handles: *const u32, len: usize, ret: *mut usize);
}

#[cfg(not(target_arch = "wasm32"))]
unsafe extern "C" fn poll_import(_: *const u32, _: usize, _: *mut usize) {
    unreachable!("poll_list needs a host")
}

/// One `poll` of the same ready pollable `entries` times: 4 guest bytes an entry, while the
/// host lifts every handle, gathers the entries per pollable and returns every index. The ready
/// list comes back into guest memory (4 bytes an entry), which may be where the guest's own
/// limit stops it, after the host has spent its share.
pub fn poll_list(input: PollList) -> Result<Value, PluginError> {
    let entries = scaled(input.entries, 4, "entries")? / 4;
    let pollable = wasi::clocks::monotonic_clock::subscribe_duration(0);
    let handles = vec![pollable.handle(); entries];
    let mut ret = [0usize; 2];
    // SAFETY: the signature is the import's canonical lowering; every handle is a borrow of
    // `pollable`, alive across the call; the host writes the ready list's pointer and length to
    // `ret`, a list allocated with the guest's realloc, for us to own as a `Vec<u32>`.
    let ready = unsafe {
        poll_import(handles.as_ptr(), handles.len(), ret.as_mut_ptr());
        Vec::<u32>::from_raw_parts(ret[0] as *mut u32, ret[1], ret[1])
    };
    Ok(json!({ "ready": ready.len() }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirHoard {
    files: u64,
    listings: u64,
}

impl Default for DirHoard {
    fn default() -> Self {
        Self {
            files: 100_000,
            listings: 1000,
        }
    }
}

/// Fills `/scratch/d` with `files` empty files, then lists it `listings` times without reading
/// a single entry: the host reads each whole listing (a name and a type per file) when the
/// stream is opened, and keeps it as long as the stream lives.
pub fn dir_hoard(input: DirHoard) -> Result<Value, PluginError> {
    std::fs::create_dir_all("/scratch/d").map_err(|e| fs_failed("creating /scratch/d", e))?;
    for i in 0..input.files {
        std::fs::File::create(format!("/scratch/d/{i}"))
            .map_err(|e| fs_failed(format!("creating /scratch/d/{i}"), e))?;
    }
    let dir = preopen("/scratch")?
        .open_at(
            PathFlags::empty(),
            "d",
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ,
        )
        .map_err(|e| fs_failed("opening /scratch/d", e))?;
    let mut kept = Vec::new();
    for i in 0..input.listings {
        kept.push(
            dir.read_directory()
                .map_err(|e| fs_failed(format!("listing {i}"), e))?,
        );
    }
    Ok(json!({ "listings": kept.len() }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomBytes {
    mb: u64,
    times: u64,
}

impl Default for RandomBytes {
    fn default() -> Self {
        Self { mb: 64, times: 100 }
    }
}

/// Asks for `mb` MiB of random bytes `times` times, dropping each: the host builds each answer
/// in its own memory before copying it into the guest's.
pub fn random_bytes(input: RandomBytes) -> Result<Value, PluginError> {
    let size = scaled(input.mb, 1 << 20, "mb")? as u64;
    let mut total: u64 = 0;
    for _ in 0..input.times {
        let got = wasi::random::random::get_random_bytes(size);
        total += got.len() as u64;
    }
    Ok(json!({ "bytes": total }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatArrays {
    kb: u64,
    count: u64,
}

impl Default for HeartbeatArrays {
    fn default() -> Self {
        Self {
            kb: 256,
            count: 10_000,
        }
    }
}

/// `[0,0,...,0]` of at most `bytes` bytes (and at least `[]`): two bytes of text per element,
/// each of which a JSON parser makes a whole value.
fn zeros_array(bytes: usize) -> String {
    let n = bytes.saturating_sub(1) / 2;
    let mut text = String::with_capacity(2 * n + 2);
    text.push('[');
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        text.push('0');
    }
    text.push(']');
    text
}

/// Heartbeats `count` times with the same array of zeros of about `kb` KiB (under the default
/// heartbeat limit at the default size), built once and sent through the raw import so the
/// guest does no per-heartbeat work: the host parses every one into a JSON tree.
pub fn heartbeat_arrays(input: HeartbeatArrays) -> Result<Value, PluginError> {
    let text = zeros_array(scaled(input.kb, 1 << 10, "kb")?);
    for _ in 0..input.count {
        mlx_plugin_sdk::__private::bindings::mlx::plugin::activity::heartbeat(&text);
    }
    Ok(json!({ "sent": input.count }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_array_fits_its_size() {
        assert_eq!(zeros_array(0), "[]");
        assert_eq!(zeros_array(2), "[]");
        assert_eq!(zeros_array(3), "[0]");
        assert_eq!(zeros_array(6), "[0,0]");
        let text = zeros_array(256 << 10);
        assert!(text.len() <= 256 << 10 && text.len() > (256 << 10) - 2);
        let parsed: Vec<u8> = serde_json::from_str(&text).unwrap();
        assert!(parsed.iter().all(|&z| z == 0));
    }

    #[test]
    fn sizes_beyond_the_address_space_are_refused() {
        let err = random_bytes(RandomBytes {
            mb: u64::MAX,
            times: 1,
        })
        .unwrap_err();
        assert_eq!(err.type_name, "InvalidParameter");
    }
}
