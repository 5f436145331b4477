//! Checkpoints of a training run, as a journal in the output directory: a header line naming
//! the training (spec, task, data digest, format), then one line per round with what the
//! round added (a tree, a boosting round's trees) and its loss.
//!
//! Appending keeps the bytes written linear in the rounds (rewriting a whole forest every few
//! trees is quadratic, and every byte counts against the invocation's disk quota). The
//! journal is its own proof: a retried attempt resumes from the longest prefix of whole lines
//! that belongs to this training, so it never depends on which heartbeat reached the server
//! (Temporal throttles them) and a line torn by a kill is dropped, not trusted. The header
//! pins the data by digest and training is deterministic for a given seed, so resuming any
//! matching journal gives the model an uninterrupted run would.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::families::Header;
use crate::files;

/// Heartbeat details: progress for people, and how far the journal on disk goes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Progress {
    pub round: u32,
    pub of: u32,
    pub loss: Option<f64>,
    /// The journal, once a round is in it.
    pub checkpoint: Option<FileRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    /// Rounds the journal holds.
    pub rounds: u32,
}

/// One round of the journal.
#[derive(Serialize, Deserialize)]
pub struct Round {
    pub round: u32,
    pub loss: Option<f64>,
    pub record: Value,
}

/// What a previous attempt left: its header and its whole rounds, in order.
pub struct Previous {
    pub header: Header,
    pub rounds: Vec<Round>,
    /// Bytes up to the end of the last whole round: the journal continues from there.
    valid_len: u64,
}

pub fn path(output_dir: &str) -> PathBuf {
    Path::new(output_dir).join("checkpoint.jsonl")
}

fn failed(path: &Path, e: impl std::fmt::Display) -> PluginError {
    PluginError::permanent(
        "CheckpointFailed",
        format!("checkpoint journal {}: {e}", path.display()),
    )
}

/// The journal a previous attempt left in `output_dir`, if any. Lines after the first that is
/// torn, unreadable or out of sequence are dropped; any reason not to resume at all is logged
/// and means starting afresh, never a failure.
pub fn previous(output_dir: &str) -> Option<Previous> {
    let path = path(output_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            log::warn(
                "checkpoint journal unreadable; training from the start",
                &[("path", &path.display()), ("error", &e)],
            );
            return None;
        }
    };
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let header_line = lines.next().filter(|l| l.ends_with(b"\n"))?;
    let header: Header = match serde_json::from_slice(header_line) {
        Ok(h) => h,
        Err(e) => {
            log::warn(
                "checkpoint journal not readable by this build; training from the start",
                &[("path", &path.display()), ("error", &e)],
            );
            return None;
        }
    };
    let mut valid_len = header_line.len();
    let mut rounds = Vec::new();
    for line in lines {
        let expected = rounds.len() as u32 + 1;
        let round = line
            .ends_with(b"\n")
            .then(|| serde_json::from_slice::<Round>(line).ok())
            .flatten()
            .filter(|r| r.round == expected);
        let Some(round) = round else {
            log::warn(
                "checkpoint journal ends in a torn or stray line; resuming before it",
                &[("path", &path.display()), ("round", &expected)],
            );
            break;
        };
        valid_len += line.len();
        rounds.push(round);
    }
    Some(Previous {
        header,
        rounds,
        valid_len: valid_len as u64,
    })
}

/// The journal this attempt appends to.
pub struct Journal {
    path: PathBuf,
    file: File,
    rounds: u32,
}

impl Journal {
    /// A new journal (replacing any other) that begins with `header`.
    pub fn create(output_dir: &str, header: &Header) -> Result<Journal, PluginError> {
        let path = path(output_dir);
        fs::create_dir_all(output_dir).map_err(|e| files::write_error(Path::new(output_dir), e))?;
        let mut line = serde_json::to_vec(header).map_err(|e| failed(&path, e))?;
        line.push(b'\n');
        let mut file = File::create(&path).map_err(|e| files::write_error(&path, e))?;
        file.write_all(&line)
            .map_err(|e| files::write_error(&path, e))?;
        Ok(Journal {
            path,
            file,
            rounds: 0,
        })
    }

    /// The previous attempt's journal, cut back to its whole rounds, to go on appending to.
    pub fn continue_from(output_dir: &str, previous: &Previous) -> Result<Journal, PluginError> {
        let path = path(output_dir);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| files::write_error(&path, e))?;
        file.set_len(previous.valid_len)
            .map_err(|e| files::write_error(&path, e))?;
        let mut journal = Journal {
            path,
            file,
            rounds: previous.rounds.len() as u32,
        };
        // Appends go after the whole rounds, wherever a torn tail left the cursor.
        use std::io::Seek;
        journal
            .file
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| files::write_error(&journal.path, e))?;
        Ok(journal)
    }

    /// Appends `rounds` (the next ones, in order) in one write, so a kill tears at most the
    /// last line.
    pub fn append(&mut self, rounds: &[Round]) -> Result<FileRef, PluginError> {
        let mut bytes = Vec::new();
        for r in rounds {
            if r.round != self.rounds + 1 {
                return Err(failed(
                    &self.path,
                    format!("round {} after round {}", r.round, self.rounds),
                ));
            }
            serde_json::to_writer(&mut bytes, r).map_err(|e| failed(&self.path, e))?;
            bytes.push(b'\n');
            self.rounds = r.round;
        }
        self.file
            .write_all(&bytes)
            .map_err(|e| files::write_error(&self.path, e))?;
        Ok(FileRef {
            path: self.path.display().to_string(),
            rounds: self.rounds,
        })
    }
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::{Fit, Matrix, ModelSpec, Target, Task};

    fn forest() -> Fit {
        let x = Matrix::from_rows(&(0..20).map(|i| vec![i as f64]).collect::<Vec<_>>()).unwrap();
        let y = Target::Classes((0..20).map(|i| usize::from(i >= 10)).collect());
        let spec: ModelSpec = serde_json::from_value(serde_json::json!({
            "family": "random_forest", "hyperparameters": {"n_estimators": 10, "seed": 1}
        }))
        .unwrap();
        Fit::start(&spec, Task::Classification { classes: 2 }, &x, &y).unwrap()
    }

    fn rounds(fit: &mut Fit, n: u32) -> Vec<Round> {
        (0..n)
            .map(|_| {
                let report = fit.step().unwrap();
                Round {
                    round: report.round,
                    loss: report.loss,
                    record: fit.record(report.round).unwrap(),
                }
            })
            .collect()
    }

    fn dir(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("mlx-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.display().to_string()
    }

    #[test]
    fn a_journal_resumes_from_its_whole_rounds_and_drops_a_torn_tail() {
        let dir = dir("torn");
        let mut fit = forest();
        let mut journal = Journal::create(&dir, &fit.header()).unwrap();
        journal.append(&rounds(&mut fit, 2)).unwrap();
        let file = journal.append(&rounds(&mut fit, 1)).unwrap();
        assert_eq!(file.rounds, 3);
        assert_eq!(previous(&dir).unwrap().rounds.len(), 3);

        // A kill mid-append leaves half a line.
        let mut torn = fs::read(path(&dir)).unwrap();
        torn.extend_from_slice(br#"{"round":4,"loss":null,"rec"#);
        fs::write(path(&dir), &torn).unwrap();
        let previous_run = previous(&dir).unwrap();
        assert_eq!(previous_run.rounds.len(), 3);

        // The next attempt cuts the torn line off and appends after the whole rounds.
        let mut journal = Journal::continue_from(&dir, &previous_run).unwrap();
        let next = rounds(&mut fit, 1);
        assert_eq!(next[0].round, 4);
        journal.append(&next).unwrap();
        let again = previous(&dir).unwrap();
        assert_eq!(
            again.rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(fs::read(path(&dir)).unwrap().ends_with(b"}\n"));
        // Out of sequence: a round that does not follow is refused by the journal ...
        assert!(journal.append(&rounds(&mut fit, 2)[1..]).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_after_a_stray_one_are_dropped_and_a_bad_header_means_no_journal() {
        let dir = dir("stray");
        let mut fit = forest();
        let mut journal = Journal::create(&dir, &fit.header()).unwrap();
        let mut made = rounds(&mut fit, 3);
        made[1].round = 7;
        let mut bytes = fs::read(path(&dir)).unwrap();
        for r in &made {
            serde_json::to_writer(&mut bytes, r).unwrap();
            bytes.push(b'\n');
        }
        fs::write(path(&dir), &bytes).unwrap();
        assert_eq!(previous(&dir).unwrap().rounds.len(), 1);
        drop(journal.append(&[]));

        fs::write(path(&dir), b"{\"version\": 2}\n").unwrap();
        assert!(previous(&dir).is_none());
        fs::write(path(&dir), b"{\"version\": 2").unwrap();
        assert!(previous(&dir).is_none());
        assert!(previous(&format!("{dir}/none")).is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
