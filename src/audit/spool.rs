//! The local spool: chained events that could not reach the database, kept in order in an
//! append-only JSON Lines file (`<spool_dir>/<instance>.jsonl`), fsynced after every batch.
//! The writer replays it in order once the database answers and then empties it; because
//! (instance, seq) is unique and replays skip rows already present, a crash in the middle of
//! a replay only means the next replay skips what got in. A torn last line (a crash in the
//! middle of an append) is ignored with a warning. Blocking I/O: call from a blocking task.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::event::StoredEvent;

/// One instance's spool file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    pending: u64,
    last: Option<(i64, String)>,
}

impl Spool {
    /// Opens (creating `dir` and the file if needed) and counts what is waiting.
    pub fn open(dir: &Path, instance: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{instance}.jsonl"));
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut spool = Spool {
            path,
            file,
            pending: 0,
            last: None,
        };
        let mut offset = 0;
        loop {
            let (events, next) = spool.read_from(offset, 4096)?;
            if events.is_empty() {
                break;
            }
            spool.pending += events.len() as u64;
            if let Some(last) = events.last() {
                spool.last = Some((last.seq, last.hash.clone()));
            }
            offset = next;
        }
        // Cut a torn tail, so that later appends do not land behind an unreadable line.
        if spool.file.metadata()?.len() > offset {
            tracing::warn!(path = %spool.path.display(), "audit spool: cutting a torn last line");
            spool.file.set_len(offset)?;
            spool.file.sync_all()?;
        }
        Ok(spool)
    }

    /// Appends a batch and fsyncs before returning.
    pub fn append(&mut self, events: &[StoredEvent]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 512);
        for event in events {
            serde_json::to_writer(&mut buf, event)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.pending += events.len() as u64;
        if let Some(last) = events.last() {
            self.last = Some((last.seq, last.hash.clone()));
        }
        Ok(())
    }

    /// Up to `max` events starting at byte `offset`, and the offset after them. A line that
    /// does not parse (a torn write) ends the read.
    pub fn read_from(&self, offset: u64, max: usize) -> io::Result<(Vec<StoredEvent>, u64)> {
        let mut reader = BufReader::new(File::open(&self.path)?);
        reader.seek(SeekFrom::Start(offset))?;
        let mut events = Vec::new();
        let mut position = offset;
        let mut line = String::new();
        while events.len() < max {
            line.clear();
            let read = reader.read_line(&mut line)?;
            if read == 0 || !line.ends_with('\n') {
                break;
            }
            match serde_json::from_str::<StoredEvent>(line.trim_end()) {
                Ok(event) => events.push(event),
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "audit spool: unreadable line, ignoring the rest");
                    break;
                }
            }
            position += read as u64;
        }
        Ok((events, position))
    }

    /// Empties the file after a complete replay.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.pending = 0;
        Ok(())
    }

    /// Events waiting for the database.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// `(seq, hash)` of the last spooled event ever appended (survives [`Spool::clear`]
    /// only in memory): the chain head when the database cannot tell.
    pub fn last(&self) -> Option<(i64, String)> {
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::{AuditEvent, kind};

    fn events(chain: &mut Chain, n: usize) -> Vec<StoredEvent> {
        (0..n)
            .map(|_| chain.append(AuditEvent::new(kind::REQUEST, jiff::Timestamp::now())))
            .collect()
    }

    #[test]
    fn appends_reads_in_order_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::resume("i", None);
        let mut spool = Spool::open(dir.path(), "i").unwrap();
        let first = events(&mut chain, 3);
        let second = events(&mut chain, 2);
        spool.append(&first).unwrap();
        spool.append(&second).unwrap();
        assert_eq!(spool.pending(), 5);

        let (a, next) = spool.read_from(0, 4).unwrap();
        let (b, end) = spool.read_from(next, 4).unwrap();
        let seqs: Vec<i64> = a.iter().chain(&b).map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(a[0], first[0]);
        assert_eq!(spool.read_from(end, 4).unwrap().0.len(), 0);

        // Reopening counts what is waiting and knows the chain head.
        drop(spool);
        let mut spool = Spool::open(dir.path(), "i").unwrap();
        assert_eq!(spool.pending(), 5);
        assert_eq!(spool.last(), Some((5, second[1].hash.clone())));
        spool.clear().unwrap();
        assert_eq!(spool.pending(), 0);
        assert!(Spool::open(dir.path(), "i").unwrap().last().is_none());
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::resume("i", None);
        let mut spool = Spool::open(dir.path(), "i").unwrap();
        spool.append(&events(&mut chain, 2)).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("i.jsonl"))
            .unwrap();
        file.write_all(b"{\"instance\":\"i\",\"se").unwrap();
        let mut spool = Spool::open(dir.path(), "i").unwrap();
        assert_eq!(spool.pending(), 2);
        spool.append(&events(&mut chain, 1)).unwrap();
        let seqs: Vec<i64> = spool
            .read_from(0, 10)
            .unwrap()
            .0
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
}
