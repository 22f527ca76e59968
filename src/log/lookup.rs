//! Reading one event by its sequence number, for answers that live only in the log (the proofs
//! of imported commitments, [`crate::events::Event::CommitmentImported`]).
//!
//! The segment is found by its name (the greatest first sequence number not above `seq`); inside
//! it, record frames are skipped by their length field until the record holding `seq`, which is
//! read whole and CRC-checked. The chains are not re-verified here: the whole log was verified when
//! the projection that named `seq` was folded from it. Cost: one `pread` of a frame head per record
//! skipped; imported events are written in large batches, so that is a few hundred per segment at
//! most.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::{io_at, Corruption, LogError};
use super::record::{self, FrameError, RecordType, COUNT_OFFSET, FIRST_SEQ_OFFSET, PAYLOAD_OFFSET};
use super::segment::{segment_name, HEADER_LEN};
use super::Reader;

impl Reader {
    /// The event with sequence number `seq`, or `None` when the log does not hold it (yet).
    pub fn read_event(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        let segments = self.segments()?;
        let Some(&first) = segments.iter().rev().find(|&&s| s <= seq) else {
            return Ok(None);
        };
        let path = self.dir().join(segment_name(first));
        let file = File::open(&path).map_err(io_at("open", &path))?;
        event_in_segment(&file, &path, seq)
    }
}

fn event_in_segment(file: &File, path: &Path, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
    let size = file.metadata().map_err(io_at("stat", path))?.len();
    let mut pos = HEADER_LEN as u64;
    let mut head = [0u8; PAYLOAD_OFFSET];
    while pos + PAYLOAD_OFFSET as u64 <= size {
        file.read_exact_at(&mut head, pos)
            .map_err(io_at("read", path))?;
        let len = match record::frame_len(&head) {
            Ok(len) => len,
            Err(FrameError::End) => return Ok(None),
            Err(_) => return Err(LogError::corrupt(path, pos, Corruption::BadLength)),
        };
        let first_seq = record::read_u64(&head, FIRST_SEQ_OFFSET);
        let count = u64::from(record::read_u32(&head, COUNT_OFFSET));
        if first_seq > seq {
            return Ok(None);
        }
        if seq < first_seq + count {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, pos)
                .map_err(|_| LogError::corrupt(path, pos, Corruption::Truncated))?;
            let rec = record::parse(&buf)
                .map_err(|_| LogError::corrupt(path, pos, Corruption::BadCrc))?;
            if rec.record_type != RecordType::Batch {
                return Ok(None);
            }
            let events = record::events(rec.payload, rec.count)
                .ok_or_else(|| LogError::corrupt(path, pos, Corruption::BadLength))?;
            return Ok(events.get((seq - first_seq) as usize).map(|e| e.to_vec()));
        }
        pos += len as u64;
    }
    Ok(None)
}
