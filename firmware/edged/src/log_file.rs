//! A log file that cannot grow without bound: when the next line would take it past its
//! size, the file becomes `<name>.1` (replacing the one before) and a new file starts. At
//! most twice the size is ever on disk, which matters on the appliance's tmpfs.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

pub struct BoundedFile {
    path: PathBuf,
    max_bytes: u64,
    open: Mutex<(File, u64)>,
}

impl BoundedFile {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            open: Mutex::new((file, len)),
        })
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.1 > 0 && open.1 + buf.len() as u64 > self.max_bytes {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            *open = (
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
                0,
            );
        }
        // A single line longer than the whole file is cut, not allowed to break the bound.
        let keep = buf
            .len()
            .min(usize::try_from(self.max_bytes).unwrap_or(usize::MAX));
        open.0.write_all(&buf[..keep])?;
        open.1 += keep as u64;
        Ok(buf.len())
    }
}

/// One event's writer: tracing formats an event into one buffer and writes it at once.
pub struct LineWriter<'a>(&'a BoundedFile);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BoundedFile {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_at_its_size_and_keeps_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("edged.log");
        let log = BoundedFile::open(&path, 1_000).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..500 {
            let line = format!("line {i:04} of a flood of log lines\n");
            log.make_writer()
                .write_all(line.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let current = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let old = std::fs::read_to_string(dir.path().join("edged.log.1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(current.len() <= 1_000 && old.len() <= 1_000);
        assert!(current.ends_with("line 0499 of a flood of log lines\n"));
        assert!(old.lines().all(|l| l.starts_with("line 04")), "{old}");
        let files = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(files, 2);
    }

    #[test]
    fn an_existing_file_counts_toward_the_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("edged.log");
        std::fs::write(&path, vec![b'x'; 900]).unwrap_or_else(|e| panic!("{e}"));
        let log = BoundedFile::open(&path, 1_000).unwrap_or_else(|e| panic!("{e}"));
        log.make_writer()
            .write_all(&[b'y'; 200])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), 200);
    }
}
