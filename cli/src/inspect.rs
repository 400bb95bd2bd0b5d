//! `dump` and `verify`: segment files read as bytes, checked with tidelog's
//! batch codec (KAFKA.md §2) and an index reader of their own (KAFKA.md §3:
//! `.index` entries are relative offset u32 + position u32, `.timeindex`
//! entries timestamp i64 + relative offset u32, all big-endian). No lock is
//! taken and nothing is written.

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use tidelog::batch::{self, BatchHeader, Frame};

/// Bytes shown as text when they are UTF-8, else as hex.
pub fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// One batch found by a walk over a segment's bytes.
struct Found {
    position: usize,
    header: BatchHeader,
    /// The batch's bytes.
    bytes: Bytes,
    /// Why the batch is invalid, if it is.
    problem: Option<String>,
}

/// Walks the batches of `data` from position 0; stops at the first frame
/// that cannot be read (returned as the final problem with its position).
fn walk(data: &Bytes) -> (Vec<Found>, Option<(usize, String)>) {
    let mut found = Vec::new();
    let mut position = 0usize;
    while position < data.len() {
        let rest = data.slice(position..);
        match batch::read_header(&rest) {
            Ok(Frame::Batch(header)) => {
                let end = position + header.size();
                let bytes = data.slice(position..end);
                let problem = batch::validate_batch(&bytes).err().map(|e| e.to_string());
                found.push(Found {
                    position,
                    header,
                    bytes,
                    problem,
                });
                position = end;
            }
            Ok(Frame::Incomplete { needed, available }) => {
                // Zeros past the data are reserved space, not a batch.
                if rest.iter().all(|b| *b == 0) {
                    break;
                }
                return (
                    found,
                    Some((
                        position,
                        format!("incomplete batch: needs {needed} bytes, {available} remain"),
                    )),
                );
            }
            Err(e) => {
                if rest.iter().all(|b| *b == 0) {
                    break;
                }
                return (found, Some((position, e.to_string())));
            }
        }
    }
    (found, None)
}

/// Prints the batches (and records) of a segment's bytes; returns whether
/// anything was damaged.
pub fn dump(data: &[u8], records: bool, as_json: bool, out: &mut impl Write) -> std::io::Result<bool> {
    let data = Bytes::copy_from_slice(data);
    let (found, stop) = walk(&data);
    let mut damaged = stop.is_some();
    for f in &found {
        let h = &f.header;
        damaged |= f.problem.is_some();
        if as_json {
            let line = json!({
                "position": f.position,
                "base_offset": h.base_offset,
                "last_offset": h.last_offset(),
                "count": h.records_count,
                "size": h.size(),
                "compression": h.compression(),
                "base_timestamp": h.base_timestamp,
                "max_timestamp": h.max_timestamp,
                "crc": h.crc,
                "valid": f.problem.is_none(),
                "problem": f.problem,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "baseOffset {} lastOffset {} count {} position {} size {} compression {} maxTimestamp {} crc {:#010x} {}",
                h.base_offset,
                h.last_offset(),
                h.records_count,
                f.position,
                h.size(),
                h.compression(),
                h.max_timestamp,
                h.crc,
                f.problem.as_deref().map_or_else(|| "valid".to_owned(), |p| format!("INVALID: {p}"))
            )?;
        }
        if records && f.problem.is_none() {
            let mut decoded = Vec::new();
            if batch::decode_batch(&f.bytes, 0, &mut decoded).is_ok() {
                for r in &decoded {
                    let key = r.key.as_deref().map(text);
                    let value = r.value.as_deref().map(text);
                    let headers: Vec<(String, Option<String>)> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_deref().map(text)))
                        .collect();
                    if as_json {
                        let line = json!({
                            "offset": r.offset,
                            "timestamp": r.timestamp,
                            "key": key,
                            "value": value,
                            "headers": headers,
                        });
                        writeln!(out, "{line}")?;
                    } else {
                        writeln!(
                            out,
                            "| offset {} timestamp {} key {} value {} headers {:?}",
                            r.offset,
                            r.timestamp,
                            key.as_deref().unwrap_or("null"),
                            value.as_deref().unwrap_or("null"),
                            headers
                        )?;
                    }
                }
            }
        }
    }
    if let Some((position, problem)) = stop {
        if as_json {
            writeln!(
                out,
                "{}",
                json!({ "position": position, "valid": false, "problem": problem })
            )?;
        } else {
            writeln!(out, "position {position}: {problem}; nothing after it is read")?;
        }
    }
    Ok(damaged)
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub partitions: usize,
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    /// One line per problem, naming the file.
    pub problems: Vec<String>,
}

/// `<topic>-<digits>` directories of a log directory, sorted.
fn partition_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let is_partition = name
            .rsplit_once('-')
            .is_some_and(|(t, d)| !t.is_empty() && !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if is_partition && path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Segment base offsets of a partition directory, sorted.
fn segment_bases(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().into_string().unwrap_or_default();
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<u64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Fixed-size entries of an index file, up to the first all-zero entry past
/// the first (the reserved tail of an active index).
fn index_entries(path: &Path, entry: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, chunk) in data.chunks_exact(entry).enumerate() {
        if i > 0 && chunk.iter().all(|b| *b == 0) {
            break;
        }
        out.push(chunk.to_vec());
    }
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, |a| u64::from(u32::from_be_bytes(a)))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, i64::from_be_bytes)
}

/// Checks every partition of the log directory `dir`.
pub fn verify(dir: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    let partitions = partition_dirs(dir)?;
    let mut total = 0u64;
    for p in &partitions {
        for base in segment_bases(p)? {
            total += std::fs::metadata(p.join(format!("{base:020}.log")))?.len();
        }
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for p in &partitions {
        report.partitions += 1;
        bar.set_message(
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
        );
        let mut previous_last: Option<i64> = None;
        for base in segment_bases(p)? {
            report.segments += 1;
            let log_path = p.join(format!("{base:020}.log"));
            let data = Bytes::from(std::fs::read(&log_path)?);
            bar.inc(data.len() as u64);
            let (found, stop) = walk(&data);
            let name = log_path.display();
            let mut starts = std::collections::BTreeMap::new();
            for f in &found {
                report.batches += 1;
                report.records += u64::try_from(f.header.records_count).unwrap_or(0);
                if let Some(problem) = &f.problem {
                    report
                        .problems
                        .push(format!("{name}: batch at position {}: {problem}", f.position));
                }
                let (first, last) = (f.header.base_offset, f.header.last_offset());
                if first < base as i64 {
                    report.problems.push(format!(
                        "{name}: batch at position {} starts at offset {first}, below the segment's base {base}",
                        f.position
                    ));
                }
                if let Some(prev) = previous_last {
                    if first <= prev {
                        report.problems.push(format!(
                            "{name}: batch at position {} starts at offset {first}, not after {prev}",
                            f.position
                        ));
                    }
                }
                previous_last = Some(last);
                starts.insert(f.position as u64, (first, last));
            }
            if let Some((position, problem)) = stop {
                report
                    .problems
                    .push(format!("{name}: position {position}: {problem}"));
            }
            // Offset index: each entry names a batch start whose batch holds its offset.
            let index_path = p.join(format!("{base:020}.index"));
            let mut prior = None;
            for e in index_entries(&index_path, 8)? {
                let offset = base + be_u32(&e, 0);
                let position = be_u32(&e, 4);
                let holds = starts
                    .get(&position)
                    .is_some_and(|(first, last)| *first <= offset as i64 && offset as i64 <= *last);
                if !holds {
                    report.problems.push(format!(
                        "{}: entry (offset {offset}, position {position}) names no batch holding that offset",
                        index_path.display()
                    ));
                }
                if prior.is_some_and(|p| p >= offset) {
                    report.problems.push(format!(
                        "{}: offsets not rising at {offset}",
                        index_path.display()
                    ));
                }
                prior = Some(offset);
            }
            // Time index: timestamps never fall, offsets inside the segment.
            let time_path = p.join(format!("{base:020}.timeindex"));
            let mut prior_ts = i64::MIN;
            let end = previous_last.unwrap_or(base as i64);
            for e in index_entries(&time_path, 12)? {
                let ts = be_i64(&e, 0);
                let offset = base + be_u32(&e, 8);
                if ts < prior_ts {
                    report.problems.push(format!(
                        "{}: timestamp {ts} falls after {prior_ts}",
                        time_path.display()
                    ));
                }
                if offset as i64 > end {
                    report.problems.push(format!(
                        "{}: entry offset {offset} is past the segment's last offset {end}",
                        time_path.display()
                    ));
                }
                prior_ts = ts;
            }
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Removes the `.index` and `.timeindex` of every segment but each
/// partition's last (the active one, whose indexes recovery keeps); returns
/// how many files went.
pub fn remove_sealed_indexes(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for p in partition_dirs(dir)? {
        let bases = segment_bases(&p)?;
        for base in bases.iter().take(bases.len().saturating_sub(1)) {
            for suffix in ["index", "timeindex"] {
                let path = p.join(format!("{base:020}.{suffix}"));
                if path.exists() {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}
