#![cfg(all(
    feature = "internals",
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
//! Kafka's compression codecs, checked against an independent implementation
//! (the `kafka-protocol` crate, 0.18, with its own gzip, snappy, lz4 and zstd
//! code): for every codec, (a) kafka-protocol decodes the compressed batches
//! tidelog writes, (b) tidelog validates and decodes the compressed batches
//! kafka-protocol writes, record for record; (c) through the public API, a
//! topic with `compression` stores batches with the codec's bits, and
//! `fetch`, `fetch_each` and a reopen give back exactly what was sent.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use tidelog::batch::{compress_batch, decode_batch, encode_batch, validate_batch};
use tidelog::{Compression, Log, LogConfig, Record, TopicConfig};

const CODECS: [(Compression, KCompression); 4] = [
    (Compression::Gzip, KCompression::Gzip),
    (Compression::Snappy, KCompression::Snappy),
    (Compression::Lz4, KCompression::Lz4),
    (Compression::Zstd, KCompression::Zstd),
];

/// (offset, timestamp, key, value, headers) as both sides see a record.
type Plain = (
    u64,
    i64,
    Option<Bytes>,
    Option<Bytes>,
    Vec<(String, Option<Bytes>)>,
);

fn records() -> impl Strategy<Value = Vec<Plain>> {
    let bytes = || {
        prop_oneof![
            1 => Just(None),
            4 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(|v| Some(Bytes::from(v))),
            // Repetitive values, which every codec actually shrinks.
            2 => (0u8..4, 0usize..3000).prop_map(|(b, n)| Some(Bytes::from(vec![b; n]))),
        ]
    };
    let headers = proptest::collection::btree_map("[a-z]{1,4}", bytes(), 0..3)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    proptest::collection::vec((bytes(), bytes(), headers), 1..40).prop_map(|rs| {
        (0u64..)
            .zip(rs)
            .map(|(offset, (key, value, headers))| {
                (offset, 1_700_000_000_000 + offset as i64, key, value, headers)
            })
            .collect()
    })
}

fn to_tidelog(p: &Plain) -> Record {
    let mut r = match &p.3 {
        Some(v) => Record::new(v.clone()),
        None => Record::default(),
    };
    if let Some(k) = &p.2 {
        r = r.with_key(k.clone());
    }
    for (k, v) in &p.4 {
        r = match v {
            Some(v) => r.with_header(k.clone(), v.clone()),
            None => r.with_null_header(k.clone()),
        };
    }
    r.with_timestamp(p.1)
}

fn to_kafka(p: &Plain) -> KRecord {
    let headers: IndexMap<StrBytes, Option<Bytes>> =
        p.4.iter()
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
        offset: p.0 as i64,
        // One batch with baseSequence -1 (kafka_interop_codec.rs explains).
        sequence: p.0 as i32 - 1,
        timestamp: p.1,
        key: p.2.clone(),
        value: p.3.clone(),
        headers,
    }
}

fn from_kafka(r: &KRecord) -> Plain {
    (
        r.offset as u64,
        r.timestamp,
        r.key.clone(),
        r.value.clone(),
        r.headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn each_side_decodes_the_other_sides_compressed_batches(input in records()) {
        for (ours, theirs) in CODECS {
            // (a) tidelog writes, kafka-protocol reads.
            let records: Vec<Record> = input.iter().map(to_tidelog).collect();
            let mut out = Vec::new();
            let header = encode_batch(&mut out, 0, &records, 0).unwrap();
            let header = compress_batch(&mut out, 0, header, ours).unwrap();
            prop_assert_eq!(header.compression(), ours.codec());
            prop_assert_eq!(header.size(), out.len());
            let mut buf = Bytes::from(out.clone());
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            let decoded: Vec<Plain> = set.records.iter().map(from_kafka).collect();
            prop_assert_eq!(&decoded, &input, "kafka-protocol reading tidelog's {:?}", ours);
            // tidelog reads its own.
            prop_assert!(validate_batch(&out).is_ok());

            // (b) kafka-protocol writes, tidelog reads.
            let krecords: Vec<KRecord> = input.iter().map(to_kafka).collect();
            let mut kbuf = BytesMut::new();
            RecordBatchEncoder::encode(&mut kbuf, &krecords, &RecordEncodeOptions { version: 2, compression: theirs }).unwrap();
            let kbytes = kbuf.freeze();
            let h = validate_batch(&kbytes).unwrap();
            prop_assert_eq!(h.compression(), ours.codec());
            let mut mine = Vec::new();
            decode_batch(&kbytes, 0, &mut mine).unwrap();
            let mine: Vec<Plain> = mine
                .iter()
                .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone(), r.headers.clone()))
                .collect();
            prop_assert_eq!(&mine, &input, "tidelog reading kafka-protocol's {:?}", theirs);
        }
    }
}

/// (file and position, codec bits, records count) of every batch stored in
/// the `.log` files of partition directory `dir`, read from the bytes.
fn stored_batches(dir: &std::path::Path) -> Vec<(String, u8, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            let mut at = 0;
            while at + 61 <= bytes.len() {
                let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize + 12;
                let attributes = i16::from_be_bytes(bytes[at + 21..at + 23].try_into().unwrap());
                let count = i32::from_be_bytes(bytes[at + 57..at + 61].try_into().unwrap());
                out.push((format!("{}:{at}", path.display()), (attributes & 7) as u8, count));
                at += len;
            }
        }
    }
    out
}

#[test]
fn a_compressed_topic_stores_compressed_batches_and_reads_them_back() {
    for (codec, _) in CODECS {
        let tmp = tempfile::tempdir().unwrap();
        let config = || LogConfig::default().maintenance_interval(None);
        let want: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("event {i} {}", "x".repeat((i % 50) as usize)).into_bytes())
            .collect();
        {
            let log = Log::open(tmp.path(), config()).unwrap();
            log.create_topic("t", TopicConfig::default().compression(codec).segment_bytes(4096))
                .unwrap();
            let p = log.producer();
            for chunk in want.chunks(25) {
                p.send_batch("t", chunk.iter().map(|v| Record::new(v.clone())).collect())
                    .unwrap();
            }
            log.close().unwrap();
        }
        // Every stored batch carries the codec, and is smaller than its records.
        let dir = tmp.path().join("t-0");
        let batches = stored_batches(&dir);
        for (at, codec_bits, _) in &batches {
            assert_eq!(*codec_bits, codec.codec(), "{codec:?} batch at {at}");
        }
        let stored = batches.len();
        assert_eq!(stored, 12, "{codec:?}: one batch per send_batch");
        let log = Log::open(tmp.path(), config()).unwrap();
        assert_eq!(
            log.describe("t").unwrap().config,
            TopicConfig::default().compression(codec).segment_bytes(4096),
            "the setting survives reopen"
        );
        let fetched: Vec<Vec<u8>> = log
            .fetch("t", 0, 0, 1000)
            .unwrap()
            .iter()
            .map(|r| r.value().unwrap().to_vec())
            .collect();
        assert_eq!(fetched, want, "{codec:?} fetch");
        let mut visited = Vec::new();
        let mut from = 0;
        while from < 300 {
            let f = log
                .fetch_each("t", 0, from, 7, |r| visited.push(r.value().unwrap().to_vec()))
                .unwrap();
            from = f.next_offset;
        }
        assert_eq!(visited, want, "{codec:?} fetch_each");
        // A read from the middle of a compressed batch starts at that offset.
        let mid = log.fetch("t", 0, 37, 3).unwrap();
        assert_eq!(mid.first().map(|r| r.offset()), Some(37));
        log.close().unwrap();
    }
}

/// Compaction of a compressed topic: superseded records go, the latest of
/// every key stays, and the rewritten batches are compressed with the same
/// codec.
#[test]
fn compressed_batches_are_compacted_and_stay_compressed() {
    for (codec, _) in CODECS {
        let tmp = tempfile::tempdir().unwrap();
        let log = Log::open(tmp.path(), LogConfig::default().maintenance_interval(None)).unwrap();
        log.create_topic(
            "c",
            TopicConfig::default()
                .cleanup(tidelog::Cleanup::Compact)
                .compression(codec)
                .segment_bytes(2048)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
        let p = log.producer();
        for round in 0..20 {
            let batch = (0..10)
                .map(|k| {
                    Record::new(format!("round {round} of key {k} {}", "y".repeat(40)))
                        .with_key(format!("k{k}"))
                })
                .collect();
            p.send_batch("c", batch).unwrap();
        }
        let before = log.describe("c").unwrap().partitions[0].size_bytes;
        let report = log.run_maintenance().unwrap();
        assert!(report.segments_compacted > 0, "{codec:?}: {report:?}");
        let after = log.describe("c").unwrap().partitions[0].size_bytes;
        assert!(after < before, "{codec:?}: {after} >= {before}");
        let mut table = log.table("c").unwrap();
        for k in 0..10 {
            let v = table.get(format!("k{k}").as_bytes()).unwrap().unwrap();
            assert!(
                v.starts_with(format!("round 19 of key {k} ").as_bytes()),
                "{codec:?}"
            );
        }
        // Every batch with records in the partition still carries the codec.
        let dir = tmp.path().join("c-0");
        for (at, codec_bits, count) in stored_batches(&dir) {
            if count > 0 {
                assert_eq!(codec_bits, codec.codec(), "{codec:?} at {at}");
            }
        }
        drop(table);
        log.close().unwrap();
    }
}
