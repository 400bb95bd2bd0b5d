#![cfg(feature = "internals")]
//! tidelog's batches are Kafka's batches: an independent implementation, the
//! `kafka-protocol` crate (0.18), reads what tidelog writes and writes what tidelog reads,
//! record for record.
//!
//! Method: proptest generates random records; (a) tidelog encodes them (one batch, and
//! several batches back to back as in a `.log` file) and kafka-protocol decodes them;
//! (b) kafka-protocol encodes them and tidelog validates and decodes them; both sides must
//! agree on every offset, timestamp, key, value and header. (c) checks the comparison
//! itself: kafka-protocol re-encodes the golden records of KAFKA.md §11 to the golden bytes.
//!
//! kafka-protocol quirks handled here (KAFKA.md §11): its encoder starts a new batch
//! whenever `offset - sequence` changes, so inputs carry `sequence = offset - base - 1` to
//! get one batch with baseSequence -1; its decoder reports `sequence = baseSequence +
//! offsetDelta`; headers are an `IndexMap` (duplicate keys collapse), so header keys are
//! unique in this file; its encoder writes the minimum timestamp as baseTimestamp where
//! Kafka's producer writes the first record's.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::prelude::*;
use tidelog::batch::{decode_batch, encode_batch, validate_batch, BatchRecord};
use tidelog::Record;

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

/// One record as both sides see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plain {
    offset: u64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl From<&BatchRecord> for Plain {
    fn from(r: &BatchRecord) -> Plain {
        Plain {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        }
    }
}

impl From<&KRecord> for Plain {
    fn from(r: &KRecord) -> Plain {
        Plain {
            offset: u64::try_from(r.offset).unwrap(),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
        }
    }
}

fn to_tidelog(p: &Plain) -> Record {
    let mut record = match &p.value {
        Some(v) => Record::new(v.clone()),
        None => Record::default(),
    };
    if let Some(k) = &p.key {
        record = record.with_key(k.clone());
    }
    for (k, v) in &p.headers {
        record = match v {
            Some(v) => record.with_header(k.clone(), v.clone()),
            None => record.with_null_header(k.clone()),
        };
    }
    record.with_timestamp(p.timestamp)
}

/// A kafka-protocol record of a plain, non-idempotent producer batch at `base_offset`.
fn to_kafka(p: &Plain, base_offset: u64) -> KRecord {
    let headers: IndexMap<StrBytes, Option<Bytes>> = p
        .headers
        .iter()
        .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
        .collect();
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: p.offset as i64,
        // One batch with baseSequence -1 (see the module doc).
        sequence: (p.offset - base_offset) as i32 - 1,
        timestamp: p.timestamp,
        key: p.key.clone(),
        value: p.value.clone(),
        headers,
    }
}

fn kafka_encode(records: &[KRecord]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn golden_plain() -> Vec<Plain> {
    vec![
        Plain {
            offset: 0,
            timestamp: TS,
            key: Some(Bytes::from("k1")),
            value: Some(Bytes::from("v1")),
            headers: vec![("h1".to_owned(), Some(Bytes::from("x")))],
        },
        Plain {
            offset: 1,
            timestamp: TS + 5,
            key: Some(Bytes::from("k2")),
            value: None,
            headers: vec![],
        },
    ]
}

/// Random records at offsets `base..`, header keys unique per record.
fn plain_records(base: u64) -> impl Strategy<Value = Vec<Plain>> {
    let bytes = || prop_oneof![1 => Just(None), 4 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(|v| Some(Bytes::from(v)))];
    let headers = proptest::collection::btree_map("\\PC{0,5}", bytes(), 0..4)
        .prop_map(|m| m.into_iter().collect::<Vec<(String, Option<Bytes>)>>());
    // Kept well inside i64 so that neither side's timestamp arithmetic can overflow.
    let timestamp = prop_oneof![-(1i64 << 40)..(1i64 << 42), (TS - 10)..(TS + 10)];
    let record = (bytes(), bytes(), headers, timestamp);
    proptest::collection::vec(record, 1..16).prop_map(move |rs| {
        (base..)
            .zip(rs)
            .map(|(offset, (key, value, headers, timestamp))| Plain {
                offset,
                timestamp,
                key,
                value,
                headers,
            })
            .collect()
    })
}

fn tidelog_decode(buf: &Bytes) -> Vec<Plain> {
    let mut out = Vec::new();
    decode_batch(buf, 0, &mut out).unwrap();
    out.iter().map(Plain::from).collect()
}

// ---------------------------------------------------------------------------------------
// (a) tidelog writes, kafka-protocol reads.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kafka_protocol_decodes_tidelog_batches(
        (base, records) in (0u64..(1 << 40)).prop_flat_map(|base| (Just(base), plain_records(base))),
    ) {
        let input: Vec<Record> = records.iter().map(to_tidelog).collect();
        let mut out = Vec::new();
        let header = encode_batch(&mut out, base, &input, 0).unwrap();
        let mut buf = Bytes::from(out);
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        prop_assert!(buf.is_empty(), "kafka-protocol left {} bytes", buf.len());
        prop_assert_eq!(set.version, 2);
        prop_assert_eq!(set.compression, Compression::None);
        let decoded: Vec<Plain> = set.records.iter().map(Plain::from).collect();
        prop_assert_eq!(&decoded, &records);
        for (i, r) in set.records.iter().enumerate() {
            prop_assert_eq!(
                (r.partition_leader_epoch, r.producer_id, r.producer_epoch),
                (header.partition_leader_epoch, -1, -1)
            );
            prop_assert!(!r.transactional && !r.control && !r.delete_horizon);
            prop_assert_eq!(r.timestamp_type, TimestampType::Creation);
            // baseSequence -1, reported as baseSequence + offsetDelta.
            prop_assert_eq!(r.sequence, i as i32 - 1);
        }
    }

    #[test]
    fn kafka_protocol_decodes_a_file_of_tidelog_batches(
        batches in proptest::collection::vec(plain_records(0), 1..5),
        start in 0u64..1000,
    ) {
        // Consecutive batches, as appended to a segment.
        let mut file = Vec::new();
        let mut expected = Vec::new();
        let mut next = start;
        for batch in &batches {
            let records: Vec<Plain> = batch
                .iter()
                .enumerate()
                .map(|(i, p)| Plain { offset: next + i as u64, ..p.clone() })
                .collect();
            let input: Vec<Record> = records.iter().map(to_tidelog).collect();
            let header = encode_batch(&mut file, next, &input, 0).unwrap();
            next = header.next_offset() as u64;
            expected.push(records);
        }
        let mut buf = Bytes::from(file);
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        prop_assert_eq!(sets.len(), batches.len());
        for (set, want) in sets.iter().zip(&expected) {
            let got: Vec<Plain> = set.records.iter().map(Plain::from).collect();
            prop_assert_eq!(&got, want);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (b) kafka-protocol writes, tidelog reads.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tidelog_decodes_kafka_protocol_batches(
        (base, records) in (0u64..(1 << 40)).prop_flat_map(|base| (Just(base), plain_records(base))),
        epoch in prop_oneof![Just(-1i32), Just(0), 0i32..1000],
    ) {
        let input: Vec<KRecord> = records
            .iter()
            .map(|p| KRecord { partition_leader_epoch: epoch, ..to_kafka(p, base) })
            .collect();
        let buf = kafka_encode(&input);
        let header = validate_batch(&buf).unwrap();
        prop_assert_eq!(header.size(), buf.len(), "kafka-protocol wrote more than one batch");
        prop_assert_eq!(header.base_offset as u64, base);
        prop_assert_eq!(header.partition_leader_epoch, epoch);
        prop_assert_eq!(header.records_count as usize, records.len());
        prop_assert_eq!(header.last_offset_delta as usize, records.len() - 1);
        prop_assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (-1, -1, -1));
        prop_assert_eq!(header.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(tidelog_decode(&buf), records);
    }

    #[test]
    fn tidelog_decodes_kafka_protocol_idempotent_batches(
        (base, records) in (0u64..(1 << 40)).prop_flat_map(|base| (Just(base), plain_records(base))),
        producer_id in 0i64..(1 << 40),
        base_sequence in 0i32..1_000_000,
    ) {
        // What a Java producer with enable.idempotence=true (the default since 3.0) sends.
        let input: Vec<KRecord> = records
            .iter()
            .map(|p| KRecord {
                producer_id,
                producer_epoch: 0,
                sequence: base_sequence + (p.offset - base) as i32,
                ..to_kafka(p, base)
            })
            .collect();
        let buf = kafka_encode(&input);
        let header = validate_batch(&buf).unwrap();
        prop_assert_eq!(header.size(), buf.len());
        prop_assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (producer_id, 0, base_sequence));
        prop_assert_eq!(tidelog_decode(&buf), records);
    }
}

#[test]
fn kafka_protocol_writes_the_minimum_timestamp_as_base_timestamp() {
    // A documented divergence: tidelog (like Kafka's producer) writes the first record's
    // timestamp; kafka-protocol writes the minimum. Both decode to the same records.
    let records = vec![
        Plain {
            offset: 0,
            timestamp: TS + 100,
            key: None,
            value: Some(Bytes::from("a")),
            headers: vec![],
        },
        Plain {
            offset: 1,
            timestamp: TS,
            key: None,
            value: Some(Bytes::from("b")),
            headers: vec![],
        },
    ];
    let theirs = kafka_encode(&records.iter().map(|p| to_kafka(p, 0)).collect::<Vec<_>>());
    let mut ours = Vec::new();
    encode_batch(
        &mut ours,
        0,
        &records.iter().map(to_tidelog).collect::<Vec<_>>(),
        0,
    )
    .unwrap();
    assert_eq!(validate_batch(&theirs).unwrap().base_timestamp, TS);
    assert_eq!(validate_batch(&ours).unwrap().base_timestamp, TS + 100);
    assert_eq!(tidelog_decode(&theirs), records);
    assert_eq!(tidelog_decode(&Bytes::from(ours)), records);
}

// ---------------------------------------------------------------------------------------
// (c) The comparison itself.

#[test]
fn kafka_protocol_reencodes_the_golden_records_to_the_golden_bytes() {
    let golden = golden_plain();
    let ours = kafka_encode(&golden.iter().map(|p| to_kafka(p, 0)).collect::<Vec<_>>());
    assert_eq!(&ours[..], &hex(GOLDEN_86)[..]);
    let mut buf = Bytes::from(hex(GOLDEN_86));
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records.iter().map(Plain::from).collect::<Vec<_>>(), golden);

    let tombstone = Plain {
        offset: 2,
        timestamp: TS + 10,
        key: Some(Bytes::from("k1")),
        value: None,
        headers: vec![],
    };
    let theirs = kafka_encode(&[to_kafka(&tombstone, 2)]);
    assert_eq!(&theirs[..], &hex(GOLDEN_TOMBSTONE_70)[..]);
    assert_eq!(tidelog_decode(&theirs), vec![tombstone]);
}

#[test]
fn kafka_protocol_collapses_duplicate_header_keys() {
    // Why this file uses unique header keys: tidelog keeps both, kafka-protocol keeps one.
    let record = Record::new("v")
        .with_header("h", "1")
        .with_header("h", "2")
        .with_timestamp(TS);
    let mut out = Vec::new();
    encode_batch(&mut out, 0, &[record], 0).unwrap();
    let buf = Bytes::from(out);
    assert_eq!(tidelog_decode(&buf)[0].headers.len(), 2);
    let set = RecordBatchDecoder::decode(&mut buf.clone()).unwrap();
    assert_eq!(set.records[0].headers.len(), 1);
    // The later value wins, at the first key's place.
    assert_eq!(
        set.records[0].headers.get("h".as_bytes()),
        Some(&Some(Bytes::from("2")))
    );
}
