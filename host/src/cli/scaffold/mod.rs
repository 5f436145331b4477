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

mod files;

use files::{COMMON, DEPLOY, WIT};

impl Lang {
    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// What to type next, shown after the project is written: the same in every language.
const NEXT_STEPS: &str = "make        # builds NAME.wasm\n  make test   # runs the tests";

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
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A plugin name the worker accepts, starting with a letter: the project's crate and
/// package names are made from it, and those cannot start with a digit or a sign.
fn valid_name(name: &str) -> bool {
    mlx_runtime::contract::valid_plugin_name(name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The Rust type `plugin!` declares for `word-count`: `WordCountPlugin`. The suffix keeps it
/// apart from the operations' types (a plugin named `greet` has an operation `Greet`).
fn type_name(name: &str) -> String {
    let words = name.split(['-', '_']).flat_map(|word| {
        let mut chars = word.chars();
        chars
            .next()
            .map(|first| first.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
    });
    words.chain("Plugin".chars()).collect()
}

/// Writes the project for `name` into `dir` (default: `./NAME`), which must not exist or be
/// empty. Returns the directory written.
pub fn scaffold(name: &str, lang: Lang, dir: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.into()));
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(ScaffoldError::NotEmpty(dir));
    }
    let crate_name = name.replace('-', "_");
    let type_name = type_name(name);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{type}}", &type_name)
    };
    let write = |path: &str, text: String| {
        let path = dir.join(path.replace("NAME", name));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        written.map_err(|source| ScaffoldError::Write { path, source })
    };
    let [templates, copies] = lang.files();
    for file in COMMON.iter().chain(templates) {
        let mut text = fill(file.text);
        if file.path == "README.md" {
            text.push_str(&fill(DEPLOY));
        }
        write(file.path, text)?;
    }
    for file in WIT.iter().chain(copies) {
        write(file.path, files::adapt(file.path, file.text))?;
    }
    Ok(dir)
}

/// The command: writes the project and says what to type next.
pub fn run(name: &str, lang: Lang, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = scaffold(name, lang, dir)?;
    println!(
        "created {} ({} plugin {name:?}). Next:\n  cd {}\n  {}",
        dir.display(),
        lang.label(),
        dir.display(),
        NEXT_STEPS.replace("NAME", name)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every template of every language has its placeholders filled in, and each project is
    /// complete: manifest, contract, README with the deploy steps, build and test.
    #[test]
    fn every_language_writes_a_filled_in_project() {
        use clap::ValueEnum;
        for &lang in Lang::value_variants() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p");
            scaffold("word-count_2", lang, Some(&dir)).unwrap();
            let [templates, _] = lang.files();
            for file in templates {
                let text = std::fs::read_to_string(dir.join(file.path)).unwrap();
                assert!(!text.contains("{{"), "{lang:?} {}: {text}", file.path);
            }
            for path in [
                "word-count_2.toml",
                "wit/plugin.wit",
                "wit/deps/io.wit",
                "Makefile",
            ] {
                assert!(dir.join(path).is_file(), "{lang:?}: no {path}");
            }
            let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
            assert!(
                readme.contains("mlx-worker plugin inspect word-count_2.wasm"),
                "{readme}"
            );
        }
        assert_eq!(type_name("word-count_2"), "WordCount2Plugin");
        assert_eq!(type_name("a--b"), "ABPlugin");
    }

    #[test]
    fn the_rust_project_names_its_crate_and_plugin() {
        let tmp = tempfile::tempdir().unwrap();
        scaffold("word-count", Lang::Rust, Some(tmp.path())).unwrap();
        let lib = std::fs::read_to_string(tmp.path().join("src/lib.rs")).unwrap();
        assert!(lib.contains("plugin!(WordCountPlugin {"), "{lib}");
        assert!(lib.contains(r#"name: "word-count","#), "{lib}");
        let makefile = std::fs::read_to_string(tmp.path().join("Makefile")).unwrap();
        assert!(makefile.contains("CRATE := word_count"), "{makefile}");
        let guest = std::fs::read_to_string(tmp.path().join("sdk/src/guest.rs")).unwrap();
        assert!(guest.contains(r#"path: "../wit","#), "{guest}");
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
