use std::os::unix::fs::symlink;

use mlx_runtime::plugin::manifest::Access;
use serde_json::json;

use super::*;

fn source(step: &str) -> CacheSource {
    CacheSource {
        workflow_id: "wf-1".into(),
        run_id: Some("r".into()),
        step: step.into(),
    }
}

struct Dirs {
    _root: tempfile::TempDir,
    artifacts: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let artifacts = root.path().join("artifacts");
    let data = root.path().join("data");
    fs::create_dir_all(artifacts.join("run-1")).unwrap();
    fs::create_dir_all(&data).unwrap();
    Dirs {
        artifacts,
        data,
        _root: root,
    }
}

fn grant(data: &Path) -> Vec<DirGrant> {
    vec![DirGrant {
        host: data.to_path_buf(),
        guest: "/data".into(),
        access: Access::ReadOnly,
    }]
}

#[test]
fn the_key_follows_digest_operation_input_and_named_file_contents() {
    let d = dirs();
    let run = d.artifacts.join("run-1");
    let grants = grant(&d.data);
    fs::write(d.data.join("a.csv"), "x\n1\n").unwrap();
    let input = json!({"source": "/data/a.csv", "k": 1, "nested": {"b": 2, "a": 1}});
    let k = |digest: &str, op: &str, input: &Value| key(digest, &grants, op, input, &run).unwrap();
    let base = k("sha256:1", "op", &input);
    // Field order does not matter; everything else does.
    let reordered = json!({"nested": {"a": 1, "b": 2}, "k": 1, "source": "/data/a.csv"});
    assert_eq!(k("sha256:1", "op", &reordered), base);
    assert_ne!(k("sha256:2", "op", &input), base);
    assert_ne!(k("sha256:1", "other", &input), base);
    assert_ne!(
        k("sha256:1", "op", &json!({"source": "/data/a.csv", "k": 2})),
        base
    );
    fs::write(d.data.join("a.csv"), "x\n2\n").unwrap();
    assert_ne!(
        k("sha256:1", "op", &input),
        base,
        "one changed byte of a named file"
    );
    // A path that does not exist yet is part of the key as missing: creating it is a miss.
    let later = json!({"model": "/artifacts/model.json"});
    let before = k("sha256:1", "op", &later);
    fs::write(run.join("model.json"), "{}").unwrap();
    assert_ne!(k("sha256:1", "op", &later), before);
    // No way out of the run: `..` is not cacheable.
    let escape = json!({"f": "/artifacts/../run-2/x"});
    assert!(matches!(
        key("d", &grants, "op", &escape, &run),
        Err(CacheError::NotCacheable(_))
    ));
}

#[test]
fn a_hit_restores_the_named_files_and_an_altered_blob_is_a_miss() {
    let d = dirs();
    let cache = StepCache::new(&d.artifacts);
    let run1 = d.artifacts.join("run-1");
    fs::create_dir_all(run1.join("model/plots")).unwrap();
    fs::write(run1.join("model/model.json"), "weights").unwrap();
    fs::write(run1.join("model/plots/roc.svg"), "<svg/>").unwrap();
    let output = json!({"model": {"path": "/artifacts/model/model.json"},
                        "plots": "/artifacts/model/plots", "note": "/not/ours"});
    assert!(cache.get("k1", &run1).unwrap().is_none());
    cache.put("k1", &output, source("train"), &run1).unwrap();

    let run2 = d.artifacts.join("run-2");
    let hit = cache.get("k1", &run2).unwrap().expect("a hit");
    assert_eq!(hit.output, output);
    assert_eq!(hit.from, source("train"));
    assert_eq!(
        fs::read_to_string(run2.join("model/model.json")).unwrap(),
        "weights"
    );
    assert_eq!(
        fs::read_to_string(run2.join("model/plots/roc.svg")).unwrap(),
        "<svg/>"
    );

    // A blob changed behind the cache's back is never handed out.
    let blobs = d.artifacts.join(".step-cache/blobs");
    for blob in fs::read_dir(&blobs).unwrap() {
        fs::write(blob.unwrap().path(), "tampered").unwrap();
    }
    let run3 = d.artifacts.join("run-3");
    assert!(cache.get("k1", &run3).unwrap().is_none());
}

#[test]
fn the_cache_never_reads_or_writes_through_a_plugins_symbolic_link() {
    let d = dirs();
    let cache = StepCache::new(&d.artifacts);
    let secret = d.data.join("secret");
    fs::write(&secret, "host file").unwrap();
    let run1 = d.artifacts.join("run-1");
    // A plugin made a link out of its run and names a file through it.
    symlink(&d.data, run1.join("out")).unwrap();
    let output = json!({"stolen": "/artifacts/out/secret"});
    assert!(matches!(
        cache.put("k", &output, source("s"), &run1),
        Err(CacheError::NotCacheable(_))
    ));
    assert!(!d.artifacts.join(".step-cache/entries/k.json").exists());

    // A hit must not write through a link planted where a restored file goes.
    fs::create_dir_all(run1.join("model")).unwrap();
    fs::write(run1.join("model/model.json"), "weights").unwrap();
    let output = json!({"model": "/artifacts/model/model.json"});
    cache.put("k2", &output, source("train"), &run1).unwrap();
    let run2 = d.artifacts.join("run-2");
    fs::create_dir_all(&run2).unwrap();
    symlink(&d.data, run2.join("model")).unwrap();
    assert!(cache.get("k2", &run2).is_err());
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host file");
    // A file (not a link) already there is replaced.
    let run3 = d.artifacts.join("run-3");
    fs::create_dir_all(run3.join("model")).unwrap();
    fs::write(run3.join("model/model.json"), "stale").unwrap();
    cache.get("k2", &run3).unwrap().expect("a hit");
    assert_eq!(
        fs::read_to_string(run3.join("model/model.json")).unwrap(),
        "weights"
    );
}

#[test]
fn a_result_naming_more_bytes_than_an_entry_keeps_is_not_cached() {
    let d = dirs();
    let cache = StepCache::new(&d.artifacts).with_max_entry_bytes(10);
    let run = d.artifacts.join("run-1");
    fs::write(run.join("small"), "12345").unwrap();
    fs::write(run.join("big"), "0123456789ab").unwrap();
    cache
        .put(
            "small",
            &json!({"f": "/artifacts/small"}),
            source("s"),
            &run,
        )
        .unwrap();
    let err = cache
        .put("big", &json!({"f": "/artifacts/big"}), source("s"), &run)
        .unwrap_err();
    assert!(err.to_string().contains("12 bytes"), "{err}");
    assert!(!d.artifacts.join(".step-cache/entries/big.json").exists());
    assert!(cache.get("big", &run).unwrap().is_none());
}

/// Sets a file's modification time `secs` seconds ago.
fn age(path: &Path, secs: u64) {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[test]
fn eviction_drops_least_recently_used_entries_and_the_blobs_only_they_named() {
    let d = dirs();
    let cache = StepCache::new(&d.artifacts);
    let run = d.artifacts.join("run-1");
    fs::write(run.join("shared"), "s".repeat(1000)).unwrap();
    for (name, size) in [("a", 3000), ("b", 3000), ("c", 3000)] {
        fs::write(run.join(name), name.repeat(size)).unwrap();
        let output = json!({"own": format!("/artifacts/{name}"), "shared": "/artifacts/shared"});
        cache.put(name, &output, source(name), &run).unwrap();
    }
    let entries = d.artifacts.join(".step-cache/entries");
    // Stored a, b, c; then a was used again, so b is the least recently used.
    age(&entries.join("a.json"), 300);
    age(&entries.join("b.json"), 200);
    age(&entries.join("c.json"), 100);
    let run2 = d.artifacts.join("run-2");
    cache.get("a", &run2).unwrap().expect("a hit");

    let nothing = cache.evict(u64::MAX).unwrap();
    assert_eq!((nothing.entries, nothing.blobs), (0, 0));
    // Room for two entries and their blobs, not three.
    let freed = cache.evict(nothing.before - 2000).unwrap();
    assert_eq!((freed.entries, freed.blobs), (1, 1), "{freed:?}");
    assert!(!entries.join("b.json").exists());
    assert!(cache.get("b", &run2).unwrap().is_none());
    cache.get("a", &run2).unwrap().expect("a was used last");
    cache.get("c", &run2).unwrap().expect("c is newer than b");
    assert_eq!(
        fs::read_to_string(run2.join("shared")).unwrap(),
        "s".repeat(1000),
        "a blob another entry names stays"
    );
    // Too small for anything: everything goes, and later lookups are misses.
    let all = cache.evict(0).unwrap();
    assert_eq!((all.entries, all.blobs), (2, 3), "{all:?}");
    assert!(cache.get("c", &run2).unwrap().is_none());
}

#[test]
fn a_blob_no_entry_names_goes_only_when_it_is_old() {
    let d = dirs();
    let cache = StepCache::new(&d.artifacts);
    let blobs = d.artifacts.join(".step-cache/blobs");
    fs::create_dir_all(&blobs).unwrap();
    let young = blobs.join("a".repeat(64));
    let old = blobs.join("b".repeat(64));
    let temporary = blobs.join(".tmpXYZ");
    for file in [&young, &old, &temporary] {
        fs::write(file, "bytes").unwrap();
    }
    age(&old, evict::BLOB_GRACE.as_secs() + 60);
    age(&temporary, evict::BLOB_GRACE.as_secs() + 60);
    let freed = cache.evict(u64::MAX).unwrap();
    assert_eq!((freed.entries, freed.blobs), (0, 1));
    assert!(young.exists(), "its entry is probably being written");
    assert!(!old.exists());
    assert!(temporary.exists(), "another worker's store in progress");
}
