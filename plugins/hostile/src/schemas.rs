use mlx_plugin_sdk::{OperationInfo, schema::object};
use serde_json::{Value, json};

fn string(default: &str) -> Value {
    json!({"type": "string", "default": default})
}

fn strings(default: &[&str]) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "default": default})
}

fn integer(default: u64) -> Value {
    json!({"type": "integer", "minimum": 0, "default": default})
}

/// What an attack returns when it got through; containment is a failure instead.
fn escaped() -> Value {
    object(
        json!({
            "escaped": {"const": true},
            "evidence": {
                "type": "array",
                "description": "The attempts that got through, with what they reached.",
                "items": object(
                    json!({"attempt": {"type": "string"}, "evidence": {}}),
                    &["attempt", "evidence"],
                ),
            },
        }),
        &["escaped", "evidence"],
    )
}

fn boolean(default: bool) -> Value {
    json!({"type": "boolean", "default": default})
}

/// `{"<key>": n}`: how far an attack got when the host let it finish.
fn count(key: &str) -> Value {
    object(json!({ key: {"type": "integer", "minimum": 0} }), &[key])
}

fn never_returns() -> Value {
    json!({"description": "Never returns.", "not": {}})
}

fn no_input() -> Value {
    object(json!({}), &[])
}

/// A filesystem or environment attack: input properties, and what it attempts.
fn attack(name: &str, attempts: &str, properties: Value) -> OperationInfo {
    OperationInfo::new(
        name,
        format!(
            "{attempts} Succeeds with {{\"escaped\": true, \"evidence\": [...]}} if anything \
             got through; fails with Permanent `CapabilityDenied` (message and details name \
             every attempt and the OS error) if all were contained."
        ),
        object(properties, &[]),
        escaped(),
    )
}

/// `HOSTILE_DECOY_OPERATIONS` (from the manifest's `[env]`) more operations in the
/// self-description: an oversized `describe()` the host must refuse at load.
pub fn decoys() -> Vec<OperationInfo> {
    let count = std::env::var("HOSTILE_DECOY_OPERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (0..count)
        .map(|i| {
            OperationInfo::new(
                format!("decoy_{i}"),
                "Does nothing; there to make the list long.",
                object(json!({}), &[]),
                object(json!({}), &[]),
            )
        })
        .collect()
}

pub fn operations() -> Vec<OperationInfo> {
    vec![
        attack(
            "dotdot_escape",
            "Reads base/target, a path climbing out of a grant with `..`.",
            json!({"base": string("/data"), "target": string("../../../etc/passwd")}),
        ),
        attack(
            "absolute_escape",
            "Reads an absolute path outside every grant.",
            json!({"path": string("/etc/passwd")}),
        ),
        attack(
            "symlink_escape",
            "Reads dir/link/passwd and lists dir/link, where the test planted a symlink \
             inside a grant pointing outside it.",
            json!({"dir": string("/data"), "link": string("escape")}),
        ),
        attack(
            "create_symlink_escape",
            "Creates symlinks to each target in a writable grant (dir/name, then \
             dir/name.1, ...), replacing earlier ones, then reads passwd and lists the \
             directory through each. Leaves the links in place.",
            json!({
                "dir": string("/artifacts"),
                "name": string("ln"),
                "targets": strings(&["/etc", "../../../../../../../../etc"]),
            }),
        ),
        attack(
            "trailing_slash_escape",
            "Lists each path (`..`, `.`, `//` and trailing-slash variants); a listing is an \
             escape when the path normalizes outside every one of `grants`.",
            json!({
                "path": {"type": "string", "description": "One path to try instead of `paths`."},
                "paths": strings(&["/data/..", "/data/../", "/data/./../", "//etc",
                                   "/data//../etc"]),
                "grants": strings(&["/data", "/artifacts"]),
            }),
        ),
        attack(
            "hardlink_escape",
            "Hard-links `from` (in a read-only grant) to `to` (in a writable grant), and \
             `outside_from` (outside every grant) to `outside_to`, replacing earlier links.",
            json!({
                "from": string("/data/breast_cancer.csv"),
                "to": string("/artifacts/stolen.csv"),
                "outside_from": string("/etc/passwd"),
                "outside_to": string("/artifacts/pw"),
            }),
        ),
        attack(
            "truncate_readonly",
            "Opens a file of a read-only grant for write+truncate, calls set_len(0) and write \
             on a read-only handle, and compares its length before and after. Destructive if \
             the sandbox fails: point it at a copy.",
            json!({"path": string("/data/breast_cancer.csv")}),
        ),
        attack(
            "write_readonly",
            "Creates and writes a file in a read-only grant.",
            json!({"path": string("/data/new.txt")}),
        ),
        attack(
            "read_env",
            "Reads the named environment variables (an escape if any is visible; the evidence \
             gives its length, not its value) and counts all visible ones.",
            json!({"names": strings(&["PATH", "HOME", "TEMPORAL_ADDRESS",
                                       "AWS_SECRET_ACCESS_KEY"])}),
        ),
        attack(
            "sockets",
            "Connects over TCP to `connect`, binds a UDP socket and resolves `lookup` with the \
             standard library, which imports wasi:sockets.",
            json!({"connect": string("127.0.0.1:9"), "lookup": string("localhost")}),
        ),
        OperationInfo::new(
            "memory_bomb",
            "Allocates and writes step_mb MiB chunks, keeping them all, until the host's \
             memory limit stops it.",
            object(
                json!({"step_mb": {"type": "integer", "minimum": 1, "default": 64}}),
                &[],
            ),
            never_returns(),
        ),
        OperationInfo::new(
            "heartbeat_spam",
            "Heartbeats {\"i\": i} count times in a tight loop, ignoring cancellation.",
            object(json!({"count": integer(1_000_000)}), &[]),
            object(
                json!({"sent": {"type": "integer", "minimum": 0}}),
                &["sent"],
            ),
        ),
        OperationInfo::new(
            "log_flood",
            "Emits `lines` log lines of line_bytes bytes through the log import, and as many \
             on stdout.",
            object(
                json!({"lines": integer(1_000_000), "line_bytes": integer(1000)}),
                &[],
            ),
            object(
                json!({"lines": {"type": "integer", "minimum": 0}}),
                &["lines"],
            ),
        ),
        OperationInfo::new(
            "huge_output",
            "Returns a JSON string of `mb` MiB.",
            object(json!({"mb": integer(64)}), &[]),
            json!({"type": "string"}),
        ),
        OperationInfo::new(
            "deep_tree",
            "Nests `depth` directories under the preopened `dir` (default /scratch) through \
             descriptors, one held at a time, and leaves the tree for the host to remove.",
            object(
                json!({"dir": string("/scratch"), "depth": integer(16_000)}),
                &[],
            ),
            object(
                json!({"depth": {"type": "integer", "minimum": 0}}),
                &["depth"],
            ),
        ),
        OperationInfo::new(
            "disk_fill",
            "Writes `mb` MiB to the file `path` (created or truncated), one MiB per write; \
             fails with Permanent `WriteFailed` when a write is refused.",
            object(
                json!({"path": string("/artifacts/fill.bin"), "mb": integer(2048)}),
                &[],
            ),
            object(
                json!({"written_mb": {"type": "integer", "minimum": 0}}),
                &["written_mb"],
            ),
        ),
        OperationInfo::new(
            "open_files",
            "Opens `path` `count` times, keeping every handle open; fails with Permanent \
             `OpenFailed` when an open is refused.",
            object(
                json!({"path": string("/data/victim.csv"), "count": integer(20_000)}),
                &[],
            ),
            object(
                json!({"opened": {"type": "integer", "minimum": 0}}),
                &["opened"],
            ),
        ),
        OperationInfo::new(
            "abort",
            "Calls std::process::abort (the instance traps).",
            no_input(),
            never_returns(),
        ),
        OperationInfo::new(
            "exit",
            "Calls std::process::exit(code) from inside the export.",
            object(json!({"code": {"type": "integer", "default": 3}}), &[]),
            never_returns(),
        ),
        OperationInfo::new(
            "busy_with_host_calls",
            "Calls the is-cancelled import in an endless loop, ignoring the answer: only the \
             host's deadline stops it.",
            no_input(),
            never_returns(),
        ),
    ]
    .into_iter()
    .chain(hoards())
    .collect()
}

/// Attacks on the worker's own memory: little guest memory buys much host memory.
fn hoards() -> Vec<OperationInfo> {
    vec![
        OperationInfo::new(
            "stream_hoard",
            "Needs /scratch. Writes the 1 MiB file /scratch/hoard, then opens `streams` streams \
             on it and keeps them all: input streams that each asked to read 64 KiB once (the \
             host reads into a buffer it keeps for the next read), or with `writes` output \
             streams that each wrote up to 64 KiB once. Fails with Permanent `HoardFailed` \
             when a stream call is refused.",
            object(
                json!({"streams": integer(100_000), "writes": boolean(false)}),
                &[],
            ),
            count("reached"),
        ),
        OperationInfo::new(
            "log_fields",
            "One call of the log import with `fields` empty fields (16 guest bytes each, \
             lowered by hand; a String pair each once lifted by the host).",
            object(json!({"fields": integer(8_000_000)}), &[]),
            count("fields"),
        ),
        OperationInfo::new(
            "poll_list",
            "One wasi:io/poll.poll of the same ready pollable `entries` times (4 guest bytes \
             each, lowered by hand); the ready list of every index comes back into guest \
             memory.",
            object(json!({"entries": integer(16_000_000)}), &[]),
            count("ready"),
        ),
        OperationInfo::new(
            "dir_hoard",
            "Needs /scratch. Creates `files` empty files in /scratch/d, then opens `listings` \
             directory-entry streams on it and keeps them all, unread. Fails with Permanent \
             `HoardFailed` when a call is refused.",
            object(
                json!({"files": integer(100_000), "listings": integer(1000)}),
                &[],
            ),
            count("listings"),
        ),
        OperationInfo::new(
            "random_bytes",
            "Asks wasi:random for `mb` MiB of random bytes `times` times, dropping each answer.",
            object(json!({"mb": integer(64), "times": integer(100)}), &[]),
            count("bytes"),
        ),
        OperationInfo::new(
            "heartbeat_arrays",
            "Heartbeats `count` times with the same JSON array of zeros of at most `kb` KiB, \
             built once and sent through the raw activity import.",
            object(json!({"kb": integer(256), "count": integer(10_000)}), &[]),
            count("sent"),
        ),
    ]
}
