//! Resource exhaustion and abrupt endings: none of these returns a normal result unless the
//! host lets a flood through, which is what its tests check.

use std::{fs::File, hint::black_box, io::Write};

use mlx_plugin_sdk::{Context, PluginError, log};
use serde::Deserialize;
use serde_json::{Value, json};

/// The input of operations without options: still checked, so a typo is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

fn mib(mb: usize, field: &str) -> Result<usize, PluginError> {
    mb.checked_mul(1 << 20).ok_or_else(|| {
        PluginError::invalid_input(
            "InvalidParameter",
            format!("{field} = {mb} exceeds this platform's address space"),
        )
    })
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryBomb {
    step_mb: usize,
}

impl Default for MemoryBomb {
    fn default() -> Self {
        Self { step_mb: 64 }
    }
}

/// Keeps every chunk alive and writes every byte (a zero fill could be left to fresh pages),
/// so only the host's memory limit ends it: the allocator then aborts.
pub fn memory_bomb(input: MemoryBomb) -> Result<Value, PluginError> {
    let step = mib(input.step_mb, "step_mb")?;
    if step == 0 {
        return Err(PluginError::invalid_input(
            "InvalidParameter",
            "step_mb = 0 would spin without allocating",
        ));
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(black_box(vec![0xA5u8; step]));
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatSpam {
    count: u64,
}

impl Default for HeartbeatSpam {
    fn default() -> Self {
        Self { count: 1_000_000 }
    }
}

/// Ignores cancellation on purpose: throttling the flood is the host's job.
pub fn heartbeat_spam(input: HeartbeatSpam, ctx: &Context) -> Value {
    for i in 0..input.count {
        ctx.heartbeat(&json!({ "i": i }));
    }
    json!({ "sent": input.count })
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFlood {
    lines: u64,
    line_bytes: usize,
}

impl Default for LogFlood {
    fn default() -> Self {
        Self {
            lines: 1_000_000,
            line_bytes: 1000,
        }
    }
}

/// Floods both channels a guest has: the log import and stdout.
pub fn log_flood(input: LogFlood) -> Value {
    let line = "L".repeat(input.line_bytes);
    for i in 0..input.lines {
        log::info(&line, &[("i", &i)]);
        println!("{line}");
    }
    json!({ "lines": input.lines })
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HugeOutput {
    mb: usize,
}

impl Default for HugeOutput {
    fn default() -> Self {
        Self { mb: 64 }
    }
}

pub fn huge_output(input: HugeOutput) -> Result<Value, PluginError> {
    Ok(Value::String("z".repeat(mib(input.mb, "mb")?)))
}

pub fn abort() -> ! {
    std::process::abort()
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exit {
    code: i32,
}

impl Default for Exit {
    fn default() -> Self {
        Self { code: 3 }
    }
}

/// Ends the component from inside an export, which the contract has no room for.
pub fn exit(input: Exit) -> ! {
    std::process::exit(input.code)
}

/// Looks alive (it keeps calling the host) yet never returns nor heeds cancellation: the host's
/// deadline must stop it all the same.
pub fn busy_with_host_calls(ctx: &Context) -> ! {
    loop {
        black_box(ctx.is_cancelled());
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepTree {
    dir: String,
    depth: u64,
}

impl Default for DeepTree {
    fn default() -> Self {
        Self {
            dir: "/scratch".into(),
            depth: 16_000,
        }
    }
}

/// Nests `depth` directories named `d` under the preopened `dir`, one level at a time through
/// descriptors (paths would hit PATH_MAX long before), holding one descriptor at a time. The
/// tree is left for the host to remove.
pub fn deep_tree(input: DeepTree) -> Result<Value, PluginError> {
    use wasi::filesystem::{
        preopens,
        types::{DescriptorFlags, OpenFlags, PathFlags},
    };
    let fail = |level: u64, e: wasi::filesystem::types::ErrorCode| {
        PluginError::permanent("TreeFailed", format!("at depth {level}: {e:?}"))
    };
    let mut dir = preopens::get_directories()
        .into_iter()
        .find_map(|(dir, path)| (path == input.dir).then_some(dir))
        .ok_or_else(|| {
            PluginError::invalid_input("NotGranted", format!("{} is not preopened", input.dir))
        })?;
    for level in 0..input.depth {
        dir.create_directory_at("d").map_err(|e| fail(level, e))?;
        dir = dir
            .open_at(
                PathFlags::empty(),
                "d",
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ,
            )
            .map_err(|e| fail(level, e))?;
    }
    Ok(json!({ "depth": input.depth }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskFill {
    path: String,
    mb: u64,
}

impl Default for DiskFill {
    fn default() -> Self {
        Self {
            path: "/artifacts/fill.bin".into(),
            mb: 2048,
        }
    }
}

/// Writes `mb` MiB to `path`: all of it reaches the host's disk unless the host bounds it.
pub fn disk_fill(input: DiskFill) -> Result<Value, PluginError> {
    let failed = |what: String, e: std::io::Error| {
        PluginError::permanent("WriteFailed", format!("{what} {}: {e}", input.path))
    };
    let mut file = File::create(&input.path).map_err(|e| failed("create".into(), e))?;
    // Not all zeroes, so no layer can store it as a hole.
    let chunk = vec![0xa5u8; 1 << 20];
    for written in 0..input.mb {
        file.write_all(&chunk)
            .map_err(|e| failed(format!("write after {written} MiB to"), e))?;
    }
    file.flush().map_err(|e| failed("flush".into(), e))?;
    Ok(json!({ "written_mb": input.mb }))
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenFiles {
    path: String,
    count: u64,
}

impl Default for OpenFiles {
    fn default() -> Self {
        Self {
            path: "/data/victim.csv".into(),
            count: 20_000,
        }
    }
}

/// Opens `path` `count` times and keeps every handle: each is a host file descriptor unless
/// the host caps them.
pub fn open_files(input: OpenFiles) -> Result<Value, PluginError> {
    let mut kept = Vec::new();
    for i in 0..input.count {
        match File::open(&input.path) {
            Ok(file) => kept.push(file),
            Err(e) => {
                return Err(PluginError::permanent(
                    "OpenFailed",
                    format!("open number {i} of {}: {e}", input.path),
                ));
            }
        }
    }
    Ok(json!({ "opened": kept.len() }))
}
