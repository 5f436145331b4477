//! What a project is made of, embedded in the binary: the templates (`host/scaffold/`), each
//! language's SDK and the WIT contract, as this worker was built with them.

use super::Lang;

/// One file of a project: where it goes (`NAME` in it becomes the plugin's name) and its
/// text. Templates have `{{name}}`, `{{crate}}` and `{{type}}` replaced; copies of an SDK or
/// of the contract are written as they are (but see [`adapt`]).
pub(super) struct File {
    pub path: &'static str,
    pub text: &'static str,
}

/// `source => destination` pairs, the sources relative to the host crate's directory.
macro_rules! embed {
    ($($src:literal => $dst:literal),* $(,)?) => {
        &[$(File {
            path: $dst,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $src)),
        }),*]
    };
}

/// The contract, with the WASI packages it resolves against.
pub(super) const WIT: &[File] = embed![
    "../wit/plugin.wit" => "wit/plugin.wit",
    "../wit/deps/README.md" => "wit/deps/README.md",
    "../wit/deps/cli.wit" => "wit/deps/cli.wit",
    "../wit/deps/clocks.wit" => "wit/deps/clocks.wit",
    "../wit/deps/filesystem.wit" => "wit/deps/filesystem.wit",
    "../wit/deps/http.wit" => "wit/deps/http.wit",
    "../wit/deps/io.wit" => "wit/deps/io.wit",
    "../wit/deps/random.wit" => "wit/deps/random.wit",
    "../wit/deps/sockets.wit" => "wit/deps/sockets.wit",
];

pub(super) const COMMON: &[File] = embed![
    "scaffold/common/NAME.toml" => "NAME.toml",
];

/// Appended to each language's README: trying, deploying and calling the plugin.
pub(super) const DEPLOY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scaffold/common/DEPLOY.md"
));

const PYTHON_TEMPLATES: &[File] = embed![
    "scaffold/python/README.md" => "README.md",
    "scaffold/python/Makefile" => "Makefile",
    "scaffold/python/gitignore" => ".gitignore",
    "scaffold/python/src/app.py" => "src/app.py",
    "scaffold/python/tests/test_app.py" => "tests/test_app.py",
];

const PYTHON_SDK: &[File] = embed![
    "../plugins/python/mlx_plugin/__init__.py" => "src/mlx_plugin/__init__.py",
    "../plugins/python/mlx_plugin/_wit.py" => "src/mlx_plugin/_wit.py",
    "../plugins/python/mlx_plugin/app.py" => "src/mlx_plugin/app.py",
    "../plugins/python/mlx_plugin/config.py" => "src/mlx_plugin/config.py",
    "../plugins/python/mlx_plugin/context.py" => "src/mlx_plugin/context.py",
    "../plugins/python/mlx_plugin/errors.py" => "src/mlx_plugin/errors.py",
    "../plugins/python/mlx_plugin/host.py" => "src/mlx_plugin/host.py",
    "../plugins/python/mlx_plugin/log.py" => "src/mlx_plugin/log.py",
    "../plugins/python/mlx_plugin/schema.py" => "src/mlx_plugin/schema.py",
    "../plugins/python/mlx_plugin/testing.py" => "src/mlx_plugin/testing.py",
];

// The template manifests are not named Cargo.toml, so that no Cargo tool takes them for
// packages of this repository.
const RUST_TEMPLATES: &[File] = embed![
    "scaffold/rust/README.md" => "README.md",
    "scaffold/rust/Makefile" => "Makefile",
    "scaffold/rust/gitignore" => ".gitignore",
    "scaffold/rust/Cargo.toml.template" => "Cargo.toml",
    "scaffold/rust/src/lib.rs" => "src/lib.rs",
    "scaffold/rust/sdk/Cargo.toml.template" => "sdk/Cargo.toml",
];

/// The SDK's sources, and the lock file of the workspace that tested them: a new project
/// builds with those versions (cargo drops the entries it does not need and adds the project).
const RUST_SDK: &[File] = embed![
    "../plugins/Cargo.lock" => "Cargo.lock",
    "../plugins/sdk/src/config.rs" => "sdk/src/config.rs",
    "../plugins/sdk/src/context.rs" => "sdk/src/context.rs",
    "../plugins/sdk/src/error.rs" => "sdk/src/error.rs",
    "../plugins/sdk/src/guest.rs" => "sdk/src/guest.rs",
    "../plugins/sdk/src/info.rs" => "sdk/src/info.rs",
    "../plugins/sdk/src/labels.rs" => "sdk/src/labels.rs",
    "../plugins/sdk/src/lib.rs" => "sdk/src/lib.rs",
    "../plugins/sdk/src/log.rs" => "sdk/src/log.rs",
    "../plugins/sdk/src/operation.rs" => "sdk/src/operation.rs",
    "../plugins/sdk/src/operation_tests.rs" => "sdk/src/operation_tests.rs",
    "../plugins/sdk/src/schema.rs" => "sdk/src/schema.rs",
    "../plugins/sdk/src/testing.rs" => "sdk/src/testing.rs",
    "../plugins/sdk/src/http/client.rs" => "sdk/src/http/client.rs",
    "../plugins/sdk/src/http/error.rs" => "sdk/src/http/error.rs",
    "../plugins/sdk/src/http/mod.rs" => "sdk/src/http/mod.rs",
    "../plugins/sdk/src/http/url.rs" => "sdk/src/http/url.rs",
];

const JS_TEMPLATES: &[File] = embed![
    "scaffold/js/README.md" => "README.md",
    "scaffold/js/Makefile" => "Makefile",
    "scaffold/js/gitignore" => ".gitignore",
    "scaffold/js/package.json" => "package.json",
    "scaffold/js/package-lock.json" => "package-lock.json",
    "scaffold/js/src/plugin.js" => "src/plugin.js",
    "scaffold/js/src/component.js" => "src/component.js",
    "scaffold/js/tests/plugin.test.js" => "tests/plugin.test.js",
];

/// The SDK, and the world componentize-js builds for (the contract's plus wasi:filesystem).
const JS_SDK: &[File] = embed![
    "../plugins/js/wit/world.wit" => "wit/js/world.wit",
    "../plugins/js/mlx_plugin/config.js" => "src/mlx_plugin/config.js",
    "../plugins/js/mlx_plugin/context.js" => "src/mlx_plugin/context.js",
    "../plugins/js/mlx_plugin/errors.js" => "src/mlx_plugin/errors.js",
    "../plugins/js/mlx_plugin/files.js" => "src/mlx_plugin/files.js",
    "../plugins/js/mlx_plugin/host.js" => "src/mlx_plugin/host.js",
    "../plugins/js/mlx_plugin/index.js" => "src/mlx_plugin/index.js",
    "../plugins/js/mlx_plugin/log.js" => "src/mlx_plugin/log.js",
    "../plugins/js/mlx_plugin/plugin.js" => "src/mlx_plugin/plugin.js",
    "../plugins/js/mlx_plugin/schema.js" => "src/mlx_plugin/schema.js",
    "../plugins/js/mlx_plugin/testing.js" => "src/mlx_plugin/testing.js",
    "../plugins/js/mlx_plugin/wit.js" => "src/mlx_plugin/wit.js",
];

/// In this repository the SDK's bindings read the contract two directories up (`wit/` at the
/// root); in a project it is one up, beside `sdk/`.
const GUEST_WIT_PATH: (&str, &str) = (r#"path: "../../wit","#, r#"path: "../wit","#);

impl Lang {
    /// The language's templates, and its copies of the SDK.
    pub(super) fn files(self) -> [&'static [File]; 2] {
        match self {
            Lang::Python => [PYTHON_TEMPLATES, PYTHON_SDK],
            Lang::Rust => [RUST_TEMPLATES, RUST_SDK],
            Lang::Js => [JS_TEMPLATES, JS_SDK],
        }
    }
}

/// A copied file as the project needs it.
pub(super) fn adapt(path: &str, text: &str) -> String {
    match path {
        "sdk/src/guest.rs" => text.replace(GUEST_WIT_PATH.0, GUEST_WIT_PATH.1),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The files under `dir` ending in `.extension`, recursively, relative to `dir`.
    fn sources(dir: &Path, extension: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let sub = path.file_name().unwrap();
                found.extend(
                    sources(&path, extension)
                        .into_iter()
                        .map(|p| Path::new(sub).join(p)),
                );
            } else if path.extension().and_then(|e| e.to_str()) == Some(extension) {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
        found
    }

    /// Every file of an embedded directory is embedded: an SDK module added later and not
    /// listed here would make scaffolded projects fail to build or import it.
    #[test]
    fn every_sdk_and_wit_file_is_embedded() {
        for (dir, extension, embedded) in [
            ("wit/deps", "wit", WIT),
            ("plugins/python/mlx_plugin", "py", PYTHON_SDK),
            ("plugins/sdk/src", "rs", RUST_SDK),
            ("plugins/js/mlx_plugin", "js", JS_SDK),
            ("plugins/js/wit", "wit", JS_SDK),
        ] {
            let sources = sources(&repo().join(dir), extension);
            assert!(!sources.is_empty(), "nothing found in {dir}");
            for relative in sources {
                let text = std::fs::read_to_string(repo().join(dir).join(&relative)).unwrap();
                let relative = relative.to_str().unwrap();
                let found = embedded
                    .iter()
                    .any(|f| f.text == text && f.path.ends_with(relative));
                assert!(
                    found,
                    "{dir}/{relative} is not embedded in the scaffold (files.rs)"
                );
            }
        }
    }

    /// The SDK's bindings name the contract's directory once, in the form [`adapt`] rewrites:
    /// otherwise a project's SDK would look for `wit/` outside the project.
    #[test]
    fn the_rust_sdk_reads_the_projects_wit() {
        let guest = RUST_SDK
            .iter()
            .find(|f| f.path == "sdk/src/guest.rs")
            .unwrap();
        assert_eq!(
            guest.text.matches(GUEST_WIT_PATH.0).count(),
            1,
            "{}",
            guest.text
        );
        let adapted = adapt(guest.path, guest.text);
        assert!(adapted.contains(GUEST_WIT_PATH.1), "{adapted}");
        assert!(!adapted.contains("../../"), "{adapted}");
        let other = RUST_SDK
            .iter()
            .find(|f| f.path == "sdk/src/lib.rs")
            .unwrap();
        assert_eq!(adapt(other.path, other.text), other.text);
    }

    /// The project's `sdk/Cargo.toml` asks for what the SDK's own manifest asks for, with the
    /// versions and features of this repository's plugin workspace spelled out.
    #[test]
    fn the_rust_sdk_manifest_matches_the_sdks() {
        let read = |path: &str| -> toml::Table {
            toml::from_str(&std::fs::read_to_string(repo().join(path)).unwrap()).unwrap()
        };
        let workspace = read("plugins/Cargo.toml")["workspace"]["dependencies"].clone();
        let sdk = read("plugins/sdk/Cargo.toml");
        let project: toml::Table = toml::from_str(
            RUST_TEMPLATES
                .iter()
                .find(|f| f.path == "sdk/Cargo.toml")
                .unwrap()
                .text,
        )
        .unwrap();
        let resolved = |deps: &toml::Value| -> toml::Table {
            let mut deps = deps.as_table().unwrap().clone();
            // `dep = "1"` is `dep = { version = "1" }`.
            let table = |spec: &toml::Value| match spec {
                toml::Value::String(version) => {
                    toml::Table::from_iter([("version".into(), version.as_str().into())])
                }
                other => other.as_table().unwrap().clone(),
            };
            for (name, spec) in deps.iter_mut() {
                let mut concrete = table(spec);
                if concrete.remove("workspace").is_some() {
                    let mut inherited = table(&workspace[name]);
                    inherited.extend(concrete);
                    concrete = inherited;
                }
                *spec = concrete.into();
            }
            deps
        };
        assert_eq!(
            resolved(&project["dependencies"]),
            resolved(&sdk["dependencies"])
        );
        let native = |manifest: &toml::Table| {
            resolved(&manifest["target"]["cfg(not(target_arch = \"wasm32\"))"]["dependencies"])
        };
        assert_eq!(native(&project), native(&sdk));
        assert_eq!(project["features"], sdk["features"]);
        assert_eq!(project["lib"], sdk["lib"]);
        assert_eq!(project["package"]["name"], sdk["package"]["name"]);
    }

    /// The project's npm packages are the toolchain `mk/js-tools` pins for this repository's
    /// JavaScript plugins (jco comes with componentize-js), at the same versions and hashes:
    /// `npm ci` then installs what this repository builds with.
    #[test]
    fn the_js_toolchain_is_the_repositorys() {
        let template = |path: &str| -> serde_json::Value {
            let file = JS_TEMPLATES.iter().find(|f| f.path == path).unwrap();
            serde_json::from_str(file.text).unwrap()
        };
        let read = |path: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(repo().join(path)).unwrap()).unwrap()
        };
        let (package, lock) = (template("package.json"), template("package-lock.json"));
        let tools = read("mk/js-tools/package.json");
        let mut pinned = tools["dependencies"].as_object().unwrap().clone();
        pinned.remove("@bytecodealliance/jco");
        assert_eq!(
            package["devDependencies"],
            serde_json::Value::Object(pinned)
        );
        assert_eq!(package["overrides"], tools["overrides"]);
        assert_eq!(
            lock["packages"][""]["devDependencies"],
            package["devDependencies"]
        );
        let tested = read("mk/js-tools/package-lock.json");
        let (ours, tested) = (
            lock["packages"].as_object().unwrap(),
            tested["packages"].as_object().unwrap(),
        );
        assert_eq!(ours.len(), tested.len());
        for (path, entry) in ours.iter().filter(|(path, _)| !path.is_empty()) {
            for key in ["version", "resolved", "integrity"] {
                assert_eq!(entry[key], tested[path][key], "{path} {key}");
            }
        }
    }
}
