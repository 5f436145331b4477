//! `mlx-worker plugin new NAME --lang rust|python|js`: a plugin project that builds into a
//! loadable component with one command and has a passing test.
//!
//! Everything the project needs is written into it from this binary: the templates
//! (`host/scaffold/`), the SDK of its language and the WIT contract with its WASI
//! dependencies. The project needs no checkout of this repository, and what it gets is
//! exactly the SDK and contract this worker was built with.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// One file of a project: where it goes (`NAME` in it becomes the plugin's name) and its
/// text (`{{name}}` and `{{crate}}` in it are replaced).
struct File {
    path: &'static str,
    text: &'static str,
}

/// `source => destination` pairs, the sources relative to this crate's directory.
macro_rules! embed {
    ($($src:literal => $dst:literal),* $(,)?) => {
        &[$(File {
            path: $dst,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $src)),
        }),*]
    };
}

/// The contract, with the WASI packages it resolves against.
const WIT: &[File] = embed![
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

const COMMON: &[File] = embed![
    "scaffold/common/NAME.toml" => "NAME.toml",
];

/// Appended to each language's README: trying, deploying and calling the plugin.
const DEPLOY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scaffold/common/DEPLOY.md"
));

const PYTHON: &[File] = embed![
    "scaffold/python/README.md" => "README.md",
    "scaffold/python/Makefile" => "Makefile",
    "scaffold/python/gitignore" => ".gitignore",
    "scaffold/python/src/app.py" => "src/app.py",
    "scaffold/python/tests/test_app.py" => "tests/test_app.py",
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

impl Lang {
    fn files(self) -> &'static [File] {
        match self {
            Lang::Python => PYTHON,
            Lang::Rust | Lang::Js => &[],
        }
    }

    /// What to type next, shown after the project is written.
    fn next_steps(self) -> &'static str {
        match self {
            Lang::Python => "make        # builds NAME.wasm\n  make test   # runs the tests",
            Lang::Rust | Lang::Js => "",
        }
    }
}

/// Why a project was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "plugin name {0:?} must be 1-64 characters of a-z, 0-9, '_' and '-', starting with a \
         letter (workflows address the plugin by it)"
    )]
    InvalidName(String),
    #[error("{} already exists and is not empty: choose another --dir or remove it", .0.display())]
    NotEmpty(PathBuf),
    #[error("{lang:?} plugins cannot be scaffolded yet")]
    Unsupported { lang: Lang },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Writes the project for `name` into `dir` (default: `./NAME`), which must not exist or be
/// empty. Returns the directory written.
pub fn scaffold(name: &str, lang: Lang, dir: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.into()));
    }
    if lang.files().is_empty() {
        return Err(ScaffoldError::Unsupported { lang });
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(ScaffoldError::NotEmpty(dir));
    }
    let crate_name = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
    };
    let write = |path: &str, text: String| {
        let path = dir.join(path.replace("NAME", name));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        written.map_err(|source| ScaffoldError::Write { path, source })
    };
    for file in WIT.iter().chain(COMMON).chain(lang.files()) {
        let mut text = fill(file.text);
        if file.path == "README.md" {
            text.push_str(&fill(DEPLOY));
        }
        write(file.path, text)?;
    }
    Ok(dir)
}

/// The command: writes the project and says what to type next.
pub fn run(name: &str, lang: Lang, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = scaffold(name, lang, dir)?;
    println!(
        "created {} ({lang:?} plugin {name:?}). Next:\n  cd {}\n  {}",
        dir.display(),
        dir.display(),
        lang.next_steps().replace("NAME", name)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of an embedded directory is embedded: an SDK module added later and not
    /// listed here would make scaffolded projects fail to import it.
    #[test]
    fn every_sdk_and_wit_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, extension, lang_files) in [
            ("wit/deps", "wit", WIT),
            ("plugins/python/mlx_plugin", "py", PYTHON),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) != Some(extension) {
                    continue;
                }
                let source = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
                let embedded = lang_files.iter().any(|f| {
                    f.text == std::fs::read_to_string(&path).unwrap()
                        && f.path
                            .ends_with(path.file_name().unwrap().to_str().unwrap())
                });
                assert!(
                    embedded,
                    "{source} is not embedded in the scaffold (scaffold.rs)"
                );
            }
        }
    }

    #[test]
    fn writes_a_project_with_the_name_filled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        scaffold("word-count", Lang::Python, Some(&dir)).unwrap();
        let app = std::fs::read_to_string(dir.join("src/app.py")).unwrap();
        assert!(app.contains(r#"App("word-count""#), "{app}");
        assert!(!app.contains("{{"), "{app}");
        assert!(dir.join("word-count.toml").is_file());
        assert!(dir.join("wit/deps/io.wit").is_file());
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains(r#""plugin": "word-count""#), "{readme}");
    }

    #[test]
    fn refuses_a_bad_name_or_a_directory_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "Hello", "9lives", "a b", "a.b", &"x".repeat(65)] {
            let err = scaffold(bad, Lang::Python, Some(tmp.path())).unwrap_err();
            assert!(
                matches!(err, ScaffoldError::InvalidName(_)),
                "{bad:?}: {err}"
            );
        }
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = scaffold("ok", Lang::Python, Some(tmp.path())).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
            "mine"
        );
    }
}
