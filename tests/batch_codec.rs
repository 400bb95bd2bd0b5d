#![cfg(feature = "internals")]
//! The RecordBatch v2 codec reads and writes Kafka's bytes exactly, and no damaged or
//! hostile input makes it panic or hand out a record it should not.
//!
//! Method: the golden vectors of KAFKA.md §11 (written by kafka-python, re-encoded by
//! kafka-protocol) are decoded field by field and re-encoded byte for byte; proptest
//! round-trips random batches through `encode_batch`, `validate_batch` and `decode_batch`;
//! exhaustive truncation and single-bit-flip sweeps over small batches check that every
//! damaged batch is rejected (or, for the fields outside the CRC, decodes to exactly what
//! the flip implies); hand-built batches with a correct CRC (so only the structural checks
//! can catch them) cover each malformed-record rule.

use bytes::Bytes;
use proptest::prelude::*;
use tidelog::batch::{
    crc32c, decode_batch, encode_batch, read_header, set_base_offset, validate_batch, BatchHeader,
    BatchRecord, DecodeError, Frame,
};
use tidelog::{CorruptReason, Record};

const GOLDEN_86: &str = "00000000000000000000004a0000000002c28bbde80000000000010000018bcfe568000000018bcfe56805\
                         ffffffffffffffffffffffffffff000000021e000000046b3104763102046831027810000a02046b320100";
const GOLDEN_TOMBSTONE_70: &str =
    "00000000000000020000003a00000000027826ff7a0000000000000000018bcfe5680a0000018b\
                                   cfe5680affffffffffffffffffffffffffff0000000110000000046b310100";
const TS: i64 = 1_700_000_000_000;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn golden_records() -> Vec<Record> {
    vec![
        Record::new("v1")
            .with_key("k1")
            .with_header("h1", "x")
            .with_timestamp(TS),
        Record::tombstone("k2").with_timestamp(TS + 5),
    ]
}

fn decode_all(buf: &Bytes, min_offset: u64) -> Result<Vec<BatchRecord>, DecodeError> {
    let mut out = Vec::new();
    decode_batch(buf, min_offset, &mut out).map(|_| out)
}

fn encode(base_offset: u64, records: &[Record], default_timestamp: i64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&mut out, base_offset, records, default_timestamp).unwrap();
    out
}

fn reason(result: Result<impl std::fmt::Debug, DecodeError>) -> CorruptReason {
    result.unwrap_err().reason
}

/// Zigzag varint, written independently of the codec.
fn varint(n: i64) -> Vec<u8> {
    let mut u = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while u >= 0x80 {
        out.push((u as u8 & 0x7F) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
    out
}

/// A record: its length varint then `body`.
fn raw_record(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as i64);
    out.extend_from_slice(body);
    out
}

/// A record body from parts: attributes 0, then the given varints and bytes.
fn body(
    ts_delta: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[u8],
) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend(varint(ts_delta));
    out.extend(varint(offset_delta));
    for field in [key, value] {
        match field {
            Some(b) => {
                out.extend(varint(b.len() as i64));
                out.extend_from_slice(b);
            }
            None => out.extend(varint(-1)),
        }
    }
    out.extend_from_slice(headers);
    out
}

/// A batch with a valid CRC around arbitrary record bytes.
fn raw_batch(base_offset: i64, records_count: i32, last_offset_delta: i32, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(base_offset.to_be_bytes());
    b.extend(((49 + records.len()) as i32).to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]);
    b.extend(0i16.to_be_bytes());
    b.extend(last_offset_delta.to_be_bytes());
    b.extend(TS.to_be_bytes());
    b.extend(TS.to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(records_count.to_be_bytes());
    b.extend_from_slice(records);
    fix_crc(&mut b);
    b
}

fn fix_crc(b: &mut [u8]) {
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Both validate and decode reject `batch` with `expected` at `position`, and decode
/// leaves its output untouched.
fn assert_rejected(batch: &[u8], expected: CorruptReason, position: u64) {
    let want = DecodeError {
        position,
        reason: expected,
    };
    assert_eq!(validate_batch(batch), Err(want.clone()), "validate_batch");
    let sentinel = BatchRecord {
        offset: 99,
        timestamp: 0,
        key: None,
        value: None,
        headers: Vec::new(),
    };
    let mut out = vec![sentinel.clone()];
    assert_eq!(
        decode_batch(&Bytes::copy_from_slice(batch), 0, &mut out),
        Err(want),
        "decode_batch"
    );
    assert_eq!(out, vec![sentinel], "decode_batch must leave out as it was");
}

// ---------------------------------------------------------------------------------------
// Golden vectors.

#[test]
fn golden_86_byte_batch_decodes_field_by_field() {
    let bytes = hex(GOLDEN_86);
    assert_eq!(bytes.len(), 86);
    let expected = BatchHeader {
        base_offset: 0,
        batch_length: 74,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0xC28B_BDE8,
        attributes: 0,
        last_offset_delta: 1,
        base_timestamp: TS,
        max_timestamp: TS + 5,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: 2,
    };
    assert_eq!(read_header(&bytes), Ok(Frame::Batch(expected)));
    assert_eq!(validate_batch(&bytes), Ok(expected));
    assert_eq!(
        (
            expected.size(),
            expected.last_offset(),
            expected.next_offset(),
            expected.compression()
        ),
        (86, 1, 2, 0)
    );
    assert!(!expected.is_log_append_time() && !expected.is_control() && !expected.is_transactional());

    let buf = Bytes::from(bytes);
    let records = decode_all(&buf, 0).unwrap();
    assert_eq!(
        records,
        vec![
            BatchRecord {
                offset: 0,
                timestamp: TS,
                key: Some(Bytes::from("k1")),
                value: Some(Bytes::from("v1")),
                headers: vec![("h1".to_owned(), Some(Bytes::from("x")))],
            },
            BatchRecord {
                offset: 1,
                timestamp: TS + 5,
                key: Some(Bytes::from("k2")),
                value: None,
                headers: vec![],
            },
        ]
    );
    // Zero-copy: the key is a slice of the input, at byte 66.
    assert_eq!(records[0].key.as_ref().unwrap().as_ptr(), buf[66..].as_ptr());
    // min_offset drops the first record.
    assert_eq!(decode_all(&buf, 1).unwrap(), records[1..].to_vec());
    assert_eq!(decode_all(&buf, 2).unwrap(), vec![]);
}

#[test]
fn golden_86_byte_batch_is_reproduced_by_encode_batch() {
    let mut out = Vec::new();
    let header = encode_batch(&mut out, 0, &golden_records(), 0).unwrap();
    assert_eq!(out, hex(GOLDEN_86));
    assert_eq!(read_header(&out), Ok(Frame::Batch(header)));
    // A default timestamp fills in records without one.
    let untimed: Vec<Record> = vec![
        Record::new("v1").with_key("k1").with_header("h1", "x"),
        Record::tombstone("k2").with_timestamp(TS + 5),
    ];
    assert_eq!(encode(0, &untimed, TS), hex(GOLDEN_86));
}

#[test]
fn golden_70_byte_tombstone_batch_round_trips() {
    let bytes = hex(GOLDEN_TOMBSTONE_70);
    assert_eq!(bytes.len(), 70);
    let header = validate_batch(&bytes).unwrap();
    assert_eq!(
        header,
        BatchHeader {
            base_offset: 2,
            batch_length: 58,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0x7826_FF7A,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: TS + 10,
            max_timestamp: TS + 10,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        }
    );
    assert_eq!(
        decode_all(&Bytes::from(bytes.clone()), 0).unwrap(),
        vec![BatchRecord {
            offset: 2,
            timestamp: TS + 10,
            key: Some(Bytes::from("k1")),
            value: None,
            headers: vec![],
        }]
    );
    assert_eq!(
        encode(2, &[Record::tombstone("k1").with_timestamp(TS + 10)], 0),
        bytes
    );
}

#[test]
fn golden_batches_concatenated_decode_one_after_the_other() {
    let mut file = hex(GOLDEN_86);
    file.extend(hex(GOLDEN_TOMBSTONE_70));
    let file = Bytes::from(file);
    let mut position = 0;
    let mut offsets = Vec::new();
    while position < file.len() {
        let rest = file.slice(position..);
        let header = validate_batch(&rest).unwrap();
        offsets.extend(decode_all(&rest, 0).unwrap().iter().map(|r| r.offset));
        position += header.size();
    }
    assert_eq!(offsets, [0, 1, 2]);
}

// ---------------------------------------------------------------------------------------
// Round trips.

#[derive(Debug, Clone)]
struct Input {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

fn input() -> impl Strategy<Value = Input> {
    let bytes =
        || prop_oneof![1 => Just(None), 4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some)];
    // A small key alphabet, so duplicate header keys are common; some non-ASCII.
    let header_key = prop_oneof![Just(String::new()), "[ab]", "[a-c]{1,3}", "\\PC{0,6}"];
    let header = (header_key, bytes());
    let timestamp = prop_oneof![
        1 => Just(None),
        4 => (-(1i64 << 61)..(1i64 << 61)).prop_map(Some),
        1 => (-5i64..5).prop_map(Some),
    ];
    (
        bytes(),
        bytes(),
        proptest::collection::vec(header, 0..5),
        timestamp,
    )
        .prop_map(|(key, value, headers, timestamp)| Input {
            key,
            value,
            headers,
            timestamp,
        })
}

fn to_record(input: &Input) -> Record {
    let mut record = match &input.value {
        Some(v) => Record::new(v.clone()),
        None => Record::default(),
    };
    if let Some(k) = &input.key {
        record = record.with_key(k.clone());
    }
    for (k, v) in &input.headers {
        record = match v {
            Some(v) => record.with_header(k.clone(), v.clone()),
            None => record.with_null_header(k.clone()),
        };
    }
    if let Some(ts) = input.timestamp {
        record = record.with_timestamp(ts);
    }
    record
}

fn expected(base_offset: u64, inputs: &[Input], default_timestamp: i64) -> Vec<BatchRecord> {
    (0u64..)
        .zip(inputs)
        .map(|(i, input)| BatchRecord {
            offset: base_offset + i,
            timestamp: input.timestamp.unwrap_or(default_timestamp),
            key: input.key.clone().map(Bytes::from),
            value: input.value.clone().map(Bytes::from),
            headers: input
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect()
}

proptest! {
    #[test]
    fn random_batches_round_trip(
        inputs in proptest::collection::vec(input(), 1..20),
        base_offset in prop_oneof![0u64..1000, 0u64..(1u64 << 62)],
        default_timestamp in -(1i64 << 60)..(1i64 << 60),
        prefix in proptest::collection::vec(any::<u8>(), 0..4),
        suffix in proptest::collection::vec(any::<u8>(), 0..100),
        min_back in 0u64..25,
    ) {
        let records: Vec<Record> = inputs.iter().map(to_record).collect();
        let mut out = prefix.clone();
        let header = encode_batch(&mut out, base_offset, &records, default_timestamp).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let mut batch = out[prefix.len()..].to_vec();
        prop_assert_eq!(header.size(), batch.len());

        let want = expected(base_offset, &inputs, default_timestamp);
        let timestamps: Vec<i64> = want.iter().map(|r| r.timestamp).collect();
        prop_assert_eq!(header.base_offset as u64, base_offset);
        prop_assert_eq!(header.records_count as usize, inputs.len());
        prop_assert_eq!(header.last_offset_delta as usize, inputs.len() - 1);
        prop_assert_eq!(header.base_timestamp, timestamps[0]);
        prop_assert_eq!(header.max_timestamp, *timestamps.iter().max().unwrap());
        prop_assert_eq!(
            (header.magic, header.partition_leader_epoch, header.attributes),
            (2, 0, 0)
        );
        prop_assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (-1, -1, -1));

        // The batch may be followed by anything (the next batch, or garbage).
        batch.extend_from_slice(&suffix);
        let buf = Bytes::from(batch);
        prop_assert_eq!(read_header(&buf), Ok(Frame::Batch(header)));
        prop_assert_eq!(validate_batch(&buf), Ok(header));
        prop_assert_eq!(decode_all(&buf, 0), Ok(want.clone()));

        // Records below min_offset are skipped; earlier contents of `out` are kept.
        let min_offset = (base_offset + inputs.len() as u64).saturating_sub(min_back);
        let mut got = want[..1].to_vec();
        prop_assert_eq!(decode_batch(&buf, min_offset, &mut got), Ok(header));
        let kept: Vec<BatchRecord> = want.iter().filter(|r| r.offset >= min_offset).cloned().collect();
        prop_assert_eq!(&got[..1], &want[..1]);
        prop_assert_eq!(&got[1..], &kept[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_header(&bytes);
        let _ = validate_batch(&bytes);
        let _ = decode_all(&Bytes::from(bytes), 0);
    }

    /// Random records bytes behind a well-formed header with a correct CRC: only the
    /// structural checks stand between them and a decoded record. Never a panic, and
    /// whatever decodes re-encodes to a batch that validates.
    #[test]
    fn random_records_behind_a_valid_crc_never_panic(
        count in 0i32..6,
        records in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let batch = raw_batch(0, count, count.max(1) - 1 + 3, &records);
        let v = validate_batch(&batch);
        let d = decode_all(&Bytes::from(batch), 0);
        prop_assert_eq!(v.is_ok(), d.is_ok());
        if let Ok(decoded) = d {
            prop_assert_eq!(decoded.len() as i32, count);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Damage: truncation, bit flips, zeros.

fn small_batch() -> (Vec<u8>, Vec<BatchRecord>) {
    let records = vec![
        Record::new("value-0")
            .with_key("key-0")
            .with_header("h", "1")
            .with_timestamp(TS),
        Record::default().with_null_header("n").with_timestamp(TS - 7),
        Record::tombstone("").with_timestamp(TS + 3),
    ];
    let bytes = encode(5, &records, 0);
    let decoded = decode_all(&Bytes::from(bytes.clone()), 0).unwrap();
    assert_eq!(decoded.len(), 3);
    (bytes, decoded)
}

#[test]
fn every_truncation_is_incomplete_and_yields_no_record() {
    let (bytes, _) = small_batch();
    for n in 0..bytes.len() {
        let cut = &bytes[..n];
        let needed = if n < 17 { 17 } else { bytes.len() as u64 };
        assert_eq!(
            read_header(cut),
            Ok(Frame::Incomplete {
                needed,
                available: n as u64
            }),
            "cut at {n}"
        );
        assert_rejected(
            cut,
            CorruptReason::BatchTruncated {
                needed,
                available: n as u64,
            },
            0,
        );
    }
    assert!(validate_batch(&bytes).is_ok());
}

#[test]
fn every_single_bit_flip_is_caught_or_harmless() {
    let (bytes, original) = small_batch();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            let _ = read_header(&flipped);
            let validated = validate_batch(&flipped);
            let decoded = decode_all(&Bytes::from(flipped.clone()), 0);
            match i {
                // baseOffset: outside the CRC. The records decode, shifted; a negative
                // base offset is refused (the segment layer checks continuity).
                0..=7 => {
                    let base = i64::from_be_bytes(flipped[..8].try_into().unwrap());
                    assert_eq!(validated.map(|h| h.base_offset), Ok(base), "byte {i} bit {bit}");
                    if base < 0 {
                        assert!(
                            matches!(
                                decoded,
                                Err(DecodeError {
                                    position: 0,
                                    reason: CorruptReason::OffsetOutOfOrder { .. }
                                })
                            ),
                            "byte {i} bit {bit}: {decoded:?}"
                        );
                    } else {
                        let shifted: Vec<BatchRecord> = original
                            .iter()
                            .map(|r| BatchRecord {
                                offset: r.offset - 5 + base as u64,
                                ..r.clone()
                            })
                            .collect();
                        assert_eq!(decoded, Ok(shifted), "byte {i} bit {bit}");
                    }
                }
                // partitionLeaderEpoch: outside the CRC; any epoch >= -1 is legal.
                12..=15 => {
                    let epoch = i32::from_be_bytes(flipped[12..16].try_into().unwrap());
                    if epoch >= -1 {
                        assert_eq!(decoded.as_ref(), Ok(&original), "byte {i} bit {bit}");
                        assert!(validated.is_ok());
                    } else {
                        assert_eq!(reason(validated), CorruptReason::BadLeaderEpoch { epoch });
                        assert!(decoded.is_err());
                    }
                }
                // Length, magic, CRC and every CRC-covered byte.
                _ => {
                    assert!(validated.is_err(), "byte {i} bit {bit} accepted");
                    assert!(decoded.is_err(), "byte {i} bit {bit} decoded: {decoded:?}");
                }
            }
        }
    }
}

#[test]
fn zeros_are_never_a_batch() {
    for len in [17, 61, 4096] {
        let zeros = vec![0u8; len];
        let want = DecodeError {
            position: 8,
            reason: CorruptReason::BatchLengthTooSmall { length: 0 },
        };
        assert_eq!(read_header(&zeros), Err(want.clone()));
        assert_rejected(&zeros, want.reason, 8);
    }
    // Fewer than 17 zero bytes are just the end of the data, as in Kafka.
    assert_eq!(
        read_header(&[0u8; 16]),
        Ok(Frame::Incomplete {
            needed: 17,
            available: 16
        })
    );
}

#[test]
fn header_fields_outside_the_crc_are_checked_structurally() {
    let (bytes, _) = small_batch();
    let set = |at: usize, value: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + value.len()].copy_from_slice(value);
        b
    };
    assert_rejected(
        &set(8, &48i32.to_be_bytes()),
        CorruptReason::BatchLengthTooSmall { length: 48 },
        8,
    );
    assert_rejected(
        &set(8, &(-1i32).to_be_bytes()),
        CorruptReason::BatchLengthTooSmall { length: -1 },
        8,
    );
    assert_rejected(
        &set(8, &i32::MAX.to_be_bytes()),
        CorruptReason::BatchLengthTooLarge {
            length: i32::MAX,
            max: 64 * 1024 * 1024,
        },
        8,
    );
    assert_rejected(&set(16, &[1]), CorruptReason::BadMagic { found: 1 }, 16);
    assert_rejected(&set(16, &[0xFF]), CorruptReason::BadMagic { found: -1 }, 16);
    assert_rejected(
        &set(12, &(-2i32).to_be_bytes()),
        CorruptReason::BadLeaderEpoch { epoch: -2 },
        12,
    );
    // A real broker epoch is fine.
    assert!(validate_batch(&set(12, &17i32.to_be_bytes())).is_ok());
    assert!(validate_batch(&set(12, &(-1i32).to_be_bytes())).is_ok());
    // A base offset whose batch would pass i64::MAX.
    assert_rejected(
        &set(0, &(i64::MAX - 1).to_be_bytes()),
        CorruptReason::OffsetOverflow {
            base_offset: i64::MAX - 1,
            last_offset_delta: 2,
        },
        0,
    );
    // set_base_offset refuses that too, and rewrites nothing else.
    let mut moved = bytes.clone();
    assert!(!set_base_offset(&mut moved, i64::MAX as u64 - 1));
    assert_eq!(moved, bytes);
    assert!(set_base_offset(&mut moved, 1234));
    assert_eq!(&moved[8..], &bytes[8..]);
    assert_eq!(validate_batch(&moved).unwrap().base_offset, 1234);
}

#[test]
fn crc_mismatch_names_both_crcs() {
    let (mut bytes, _) = small_batch();
    let stored = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    *bytes.last_mut().unwrap() ^= 0x40;
    let computed = crc32c(&bytes[21..]);
    assert_rejected(&bytes, CorruptReason::CrcMismatch { stored, computed }, 17);
}

// ---------------------------------------------------------------------------------------
// Attributes: compression, timestamp type, control.

#[test]
fn compressed_batches_are_decompressed_and_checked() {
    let (bytes, _) = small_batch();
    for codec in 1u8..=7 {
        // Uncompressed records under a codec's bits are not that codec's
        // stream: refused by validation and decoding alike, never walked as
        // records (an unknown codec is named at the attributes, byte 21).
        let mut b = bytes.clone();
        b[22] |= codec;
        fix_crc(&mut b);
        let err = validate_batch(&b).unwrap_err();
        assert_eq!(
            decode_all(&Bytes::from(b.clone()), 0).unwrap_err(),
            err,
            "codec {codec}"
        );
        let available =
            tidelog::Compression::from_codec(codec).is_some_and(tidelog::Compression::is_available);
        if available {
            assert_eq!(err.position, 61, "codec {codec}: {err:?}");
        } else {
            assert_eq!(
                err,
                DecodeError {
                    position: 21,
                    reason: CorruptReason::UnsupportedCompression { codec }
                }
            );
        }
    }
}

#[test]
fn log_append_time_gives_every_record_the_max_timestamp() {
    let (mut bytes, original) = small_batch();
    bytes[22] |= 0x08;
    let append_time = TS + 1_000;
    bytes[35..43].copy_from_slice(&append_time.to_be_bytes());
    fix_crc(&mut bytes);
    let header = validate_batch(&bytes).unwrap();
    assert!(header.is_log_append_time());
    let decoded = decode_all(&Bytes::from(bytes), 0).unwrap();
    assert_eq!(decoded.len(), original.len());
    for (d, o) in decoded.iter().zip(&original) {
        assert_eq!(d.timestamp, append_time);
        assert_eq!(
            (&d.key, &d.value, &d.headers, d.offset),
            (&o.key, &o.value, &o.headers, o.offset)
        );
    }
}

#[test]
fn control_batches_are_validated_but_yield_no_records() {
    // A commit marker: key = (version 0, type 1), value = version 0 + coordinator epoch.
    let marker = raw_record(&body(
        0,
        0,
        Some(&[0, 0, 0, 1]),
        Some(&[0, 0, 0, 0, 0, 0]),
        &varint(0),
    ));
    let mut batch = raw_batch(40, 1, 0, &marker);
    batch[22] |= 0x30; // control + transactional
    batch[43..51].copy_from_slice(&77i64.to_be_bytes());
    fix_crc(&mut batch);
    let header = validate_batch(&batch).unwrap();
    assert!(header.is_control() && header.is_transactional());
    assert_eq!(decode_all(&Bytes::from(batch.clone()), 0), Ok(vec![]));
    // A damaged control batch is still an error.
    let mut bad = batch.clone();
    bad.push(0);
    bad[8..12].copy_from_slice(&(i32::from_be_bytes(batch[8..12].try_into().unwrap()) + 1).to_be_bytes());
    fix_crc(&mut bad);
    assert!(matches!(
        reason(decode_all(&Bytes::from(bad), 0)),
        CorruptReason::TrailingBytes {
            what: "batch",
            count: 1
        }
    ));
}

// ---------------------------------------------------------------------------------------
// What Kafka writes and compaction leaves.

#[test]
fn empty_and_compacted_batches_are_accepted() {
    // A cleaner-made empty batch: 0 records, lastOffsetDelta kept.
    let empty = raw_batch(10, 0, 4, &[]);
    let header = validate_batch(&empty).unwrap();
    assert_eq!((header.records_count, header.next_offset()), (0, 15));
    assert_eq!(decode_all(&Bytes::from(empty), 0), Ok(vec![]));

    // Offset gaps left by compaction: deltas 0, 2, 5 of lastOffsetDelta 5.
    let mut records = Vec::new();
    for (i, delta) in [0i64, 2, 5].into_iter().enumerate() {
        records.extend(raw_record(&body(
            i as i64,
            delta,
            Some(b"k"),
            Some(b"v"),
            &varint(0),
        )));
    }
    let batch = Bytes::from(raw_batch(100, 3, 5, &records));
    let decoded = decode_all(&batch, 0).unwrap();
    assert_eq!(
        decoded.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [100, 102, 105]
    );
    assert_eq!(
        decoded.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        [TS, TS + 1, TS + 2]
    );
    assert_eq!(decode_all(&batch, 101).unwrap().len(), 2);
}

#[test]
fn idempotent_producer_batches_are_accepted() {
    let (mut bytes, original) = small_batch();
    bytes[43..51].copy_from_slice(&4242i64.to_be_bytes());
    bytes[51..53].copy_from_slice(&3i16.to_be_bytes());
    bytes[53..57].copy_from_slice(&100i32.to_be_bytes());
    fix_crc(&mut bytes);
    let header = validate_batch(&bytes).unwrap();
    assert_eq!(
        (header.producer_id, header.producer_epoch, header.base_sequence),
        (4242, 3, 100)
    );
    assert_eq!(decode_all(&Bytes::from(bytes), 0), Ok(original));
}

// ---------------------------------------------------------------------------------------
// Malformed records behind a valid CRC. Record 0 starts at byte 61; its body at 62.

#[test]
fn header_with_null_key_is_an_error() {
    let mut headers = varint(1);
    headers.extend(varint(-1)); // null header key
    headers.extend(varint(-1));
    let record = raw_record(&body(0, 0, None, None, &headers));
    // Body: attributes 62, ts 63, offset 64, key 65, value 66, count 67, header key 68.
    assert_rejected(
        &raw_batch(0, 1, 0, &record),
        CorruptReason::BadLength {
            field: "header key",
            length: -1,
            remaining: 1,
        },
        68,
    );
}

#[test]
fn header_key_must_be_utf8_and_header_value_may_be_null() {
    let header = |key: &[u8], value: i64| {
        let mut h = varint(1);
        h.extend(varint(key.len() as i64));
        h.extend_from_slice(key);
        h.extend(varint(value));
        h
    };
    let bad = raw_record(&body(0, 0, None, None, &header(&[0xC3, 0x28], -1)));
    assert_rejected(&raw_batch(0, 1, 0, &bad), CorruptReason::HeaderKeyNotUtf8, 69);
    let null_value = raw_record(&body(0, 0, None, None, &header("é".as_bytes(), -1)));
    let decoded = decode_all(&Bytes::from(raw_batch(0, 1, 0, &null_value)), 0).unwrap();
    assert_eq!(decoded[0].headers, vec![("é".to_owned(), None)]);
    let negative_value = raw_record(&body(0, 0, None, None, &header(b"h", -2)));
    assert_rejected(
        &raw_batch(0, 1, 0, &negative_value),
        CorruptReason::BadLength {
            field: "header value",
            length: -2,
            remaining: 0,
        },
        70,
    );
}

#[test]
fn records_count_larger_than_the_records_present_is_an_error() {
    let (bytes, _) = small_batch();
    // Claim 4 records (lastOffsetDelta 3 to match): the bytes run out in record 4.
    let mut b = bytes.clone();
    b[23..27].copy_from_slice(&3i32.to_be_bytes());
    b[57..61].copy_from_slice(&4i32.to_be_bytes());
    fix_crc(&mut b);
    assert_rejected(
        &b,
        CorruptReason::BadVarint {
            field: "record length",
        },
        b.len() as u64,
    );
    // A count that cannot fit in the bytes is refused before any record is read.
    let mut b = bytes.clone();
    b[23..27].copy_from_slice(&999i32.to_be_bytes());
    b[57..61].copy_from_slice(&1000i32.to_be_bytes());
    fix_crc(&mut b);
    assert_rejected(&b, CorruptReason::BadRecordCount { count: 1000 }, 57);
    // A count above lastOffsetDelta + 1.
    let mut b = bytes.clone();
    b[57..61].copy_from_slice(&4i32.to_be_bytes());
    fix_crc(&mut b);
    assert_rejected(
        &b,
        CorruptReason::BadLastOffsetDelta {
            last_offset_delta: 2,
            records_count: 4,
        },
        23,
    );
    // Fewer records than claimed present, more bytes than records: trailing bytes.
    let mut b = bytes.clone();
    b[57..61].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(
        reason(validate_batch(&b)),
        CorruptReason::TrailingBytes { what: "batch", .. }
    ));
}

#[test]
fn absurd_counts_are_errors() {
    for count in [i32::MAX, i32::MIN, -1, 64 * 1024 * 1024 / 7 + 1] {
        assert_rejected(
            &raw_batch(0, count, i32::MAX, &[]),
            CorruptReason::BadRecordCount { count },
            57,
        );
    }
    for delta in [-1, i32::MIN] {
        assert_rejected(
            &raw_batch(0, 0, delta, &[]),
            CorruptReason::BadLastOffsetDelta {
                last_offset_delta: delta,
                records_count: 0,
            },
            23,
        );
    }
    // i32::MAX headers on a record of a few bytes.
    let record = raw_record(&body(0, 0, None, None, &varint(i64::from(i32::MAX))));
    assert_rejected(
        &raw_batch(0, 1, 0, &record),
        CorruptReason::BadLength {
            field: "headers count",
            length: i64::from(i32::MAX),
            remaining: 0,
        },
        67,
    );
    // More headers than bytes left, and a negative count.
    for count in [-1i64, 2] {
        let mut headers = varint(count);
        headers.extend([0u8]);
        let record = raw_record(&body(0, 0, None, None, &headers));
        assert_rejected(
            &raw_batch(0, 1, 0, &record),
            CorruptReason::BadLength {
                field: "headers count",
                length: count,
                remaining: 1,
            },
            67,
        );
    }
}

#[test]
fn trailing_bytes_are_errors() {
    // Inside a record: its length covers one byte past the headers count.
    let mut inner = body(0, 0, None, None, &varint(0));
    inner.push(0);
    assert_rejected(
        &raw_batch(0, 1, 0, &raw_record(&inner)),
        CorruptReason::TrailingBytes {
            what: "record",
            count: 1,
        },
        68,
    );
    // After the last record, inside the batch.
    let mut records = raw_record(&body(0, 0, None, None, &varint(0)));
    records.extend([0u8, 0]);
    assert_rejected(
        &raw_batch(0, 1, 0, &records),
        CorruptReason::TrailingBytes {
            what: "batch",
            count: 2,
        },
        68,
    );
    // After the batch, outside it: not this batch's business.
    let mut followed = raw_batch(0, 1, 0, &raw_record(&body(0, 0, None, None, &varint(0))));
    followed.extend([0xAB; 9]);
    assert!(validate_batch(&followed).is_ok());
}

#[test]
fn lengths_past_the_end_are_errors() {
    // Record length beyond the batch.
    let mut records = varint(100);
    records.extend(body(0, 0, None, None, &varint(0)));
    assert_rejected(
        &raw_batch(0, 1, 0, &records),
        CorruptReason::BadLength {
            field: "record",
            length: 100,
            remaining: 6,
        },
        61,
    );
    // Negative record length, and one too short to hold the fixed fields.
    for length in [-1i64, 5] {
        let mut records = varint(length);
        records.extend([0u8; 6]);
        assert_rejected(
            &raw_batch(0, 1, 0, &records),
            CorruptReason::BadLength {
                field: "record",
                length,
                remaining: 6,
            },
            61,
        );
    }
    // Key length beyond its record (though not beyond the batch).
    let mut inner = vec![0u8, 0, 0];
    inner.extend(varint(50));
    inner.extend([0u8; 3]);
    let mut records = raw_record(&inner);
    records.extend(raw_record(&body(0, 1, None, None, &varint(0))));
    records.extend([0u8; 60]);
    assert_rejected(
        &raw_batch(0, 2, 1, &records),
        CorruptReason::BadLength {
            field: "key",
            length: 50,
            remaining: 3,
        },
        65,
    );
    // Value length below -1.
    let mut inner = vec![0u8, 0, 0];
    inner.extend(varint(-1));
    inner.extend(varint(-7));
    inner.extend(varint(0));
    assert_rejected(
        &raw_batch(0, 1, 0, &raw_record(&inner)),
        CorruptReason::BadLength {
            field: "value",
            length: -7,
            remaining: 1,
        },
        66,
    );
    // A varint running off the end of its record.
    let inner = [0u8, 0, 0, 0x80, 0x80, 0x80];
    assert_rejected(
        &raw_batch(0, 1, 0, &raw_record(&inner)),
        CorruptReason::BadVarint { field: "key length" },
        65,
    );
}

#[test]
fn bad_varints_and_offset_deltas_are_errors() {
    // A six-byte varint for the offset delta.
    let mut inner = vec![0u8, 0];
    inner.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    inner.extend([1, 1, 0]);
    assert_rejected(
        &raw_batch(0, 1, 0, &raw_record(&inner)),
        CorruptReason::BadVarint {
            field: "offset delta",
        },
        64,
    );
    // An eleven-byte varlong for the timestamp delta.
    let mut inner = vec![0u8];
    inner.extend([0xFF; 10]);
    inner.extend([0x01, 0, 1, 1, 0]);
    assert_rejected(
        &raw_batch(0, 1, 0, &raw_record(&inner)),
        CorruptReason::BadVarint {
            field: "timestamp delta",
        },
        63,
    );
    // Offset deltas must rise strictly, start at >= 0 and stay <= lastOffsetDelta.
    let rec = |delta: i64| raw_record(&body(0, delta, None, None, &varint(0)));
    let second_at = 61 + rec(0).len() as u64 + 3;
    let cases: [(Vec<u8>, i32, u32, i64, u64); 4] = [
        ([rec(0), rec(0)].concat(), 1, 1, 0, second_at),
        ([rec(1), rec(0)].concat(), 1, 1, 0, second_at),
        ([rec(-1)].concat(), 0, 0, -1, 64),
        ([rec(0), rec(2)].concat(), 1, 1, 2, second_at),
    ];
    for (records, last_offset_delta, record, delta, position) in cases {
        let count = if records.len() > 7 { 2 } else { 1 };
        assert_rejected(
            &raw_batch(0, count, last_offset_delta, &records),
            CorruptReason::BadOffsetDelta { record, delta },
            position,
        );
    }
}

#[test]
fn timestamp_overflow_is_an_error() {
    let record = raw_record(&body(i64::MAX, 0, None, None, &varint(0)));
    assert_rejected(&raw_batch(0, 1, 0, &record), CorruptReason::TimestampOverflow, 63);
    // Negative deltas (out-of-order timestamps) are fine.
    let record = raw_record(&body(-TS - 1, 0, None, None, &varint(0)));
    let decoded = decode_all(&Bytes::from(raw_batch(0, 1, 0, &record)), 0).unwrap();
    assert_eq!(decoded[0].timestamp, -1);
}

#[test]
fn negative_base_offset_validates_but_does_not_decode() {
    let record = raw_record(&body(0, 0, None, None, &varint(0)));
    let batch = raw_batch(-3, 1, 0, &record);
    assert_eq!(validate_batch(&batch).map(|h| h.base_offset), Ok(-3));
    assert_eq!(
        decode_all(&Bytes::from(batch), 0),
        Err(DecodeError {
            position: 0,
            reason: CorruptReason::OffsetOutOfOrder {
                base_offset: -3,
                expected_at_least: 0
            }
        })
    );
}
