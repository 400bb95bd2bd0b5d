#![cfg(feature = "internals")]
//! tidelog's segment files are Kafka's: every `.log` file a partition writes
//! decodes with an independent Kafka implementation (the `kafka-protocol`
//! crate) to the same offsets, timestamps, keys, values and headers; and
//! batches built by that implementation append to and read back from tidelog.
//!
//! Header keys are unique per record here: kafka-protocol keeps headers in a
//! map, so duplicate keys (legal in Kafka, kept by tidelog) would collapse.

mod common;
use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use tidelog::Record;

fn varied(n: u64) -> Record {
    let mut r = match n % 5 {
        0 => Record::default(), // null value
        _ => Record::new(format!("v{n}").repeat((n % 9) as usize + 1)),
    };
    match n % 4 {
        0 => {}                            // null key
        1 => r = r.with_key(Bytes::new()), // empty key
        _ => r = r.with_key(format!("k{}", n % 17)),
    }
    for h in 0..(n % 3) {
        r = if h == 1 {
            r.with_null_header(format!("h{h}"))
        } else {
            r.with_header(format!("h{h}"), format!("x{n}"))
        };
    }
    // Timestamps out of order within and across batches.
    r.with_timestamp(T0 + (n as i64 * 37) % 1000 - 300)
}

#[test]
fn segments_written_by_tidelog_decode_with_kafka_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(tmp.path(), small_config());
    let mut written = Vec::new();
    let mut n = 0u64;
    for batch_len in [1usize, 3, 1, 7, 2, 1, 5, 1, 1, 4, 6, 1, 2, 3, 9, 1] {
        let batch: Vec<Record> = (0..batch_len).map(|i| varied(n + i as u64)).collect();
        let a = log.append_records(&batch).unwrap();
        assert_eq!(a.base_offset, n);
        n += batch_len as u64;
        written.extend(batch);
    }
    log.close().unwrap();

    let files = log_files(tmp.path());
    assert!(files.len() > 2, "several segments");
    let mut decoded = Vec::new();
    for f in &files {
        let mut buf = Bytes::from(std::fs::read(f).unwrap());
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            decoded.extend(set.records);
        }
    }
    assert_eq!(decoded.len(), written.len());
    for (i, (k, w)) in decoded.iter().zip(&written).enumerate() {
        assert_eq!(k.offset, i as i64);
        assert_eq!(k.timestamp, w.timestamp().unwrap());
        assert_eq!(k.key.as_ref(), w.key());
        assert_eq!(k.value.as_ref(), w.value());
        assert_eq!(k.producer_id, -1);
        assert_eq!(k.partition_leader_epoch, 0);
        assert!(matches!(k.timestamp_type, TimestampType::Creation));
        let kh: Vec<(String, Option<Bytes>)> = k
            .headers
            .iter()
            .map(|(key, v)| (key.to_string(), v.clone()))
            .collect();
        assert_eq!(kh, w.headers());
    }
}

fn kafka_batch(base_offset: i64, records: &[(i64, Option<&str>, Option<&str>)]) -> BytesMut {
    let krecords: Vec<KRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (ts, k, v))| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: 4242,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i as i64,
            sequence: 10 + i as i32,
            timestamp: *ts,
            key: k.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            value: v.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            headers: [(
                StrBytes::from_static_str("origin"),
                Some(Bytes::from_static(b"kafka")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        krecords.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}

#[test]
fn batches_built_by_kafka_protocol_append_and_read_in_tidelog() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = open(tmp.path(), small_config());
    let inputs = [
        vec![
            (T0, Some("a"), Some("1")),
            (T0 + 5, Some("b"), None),
            (T0 - 3, None, Some("3")),
        ],
        vec![(T0 + 9, Some("c"), Some("4"))],
    ];
    let mut offset = 0u64;
    for input in &inputs {
        // A producer's batch at base offset 0: tidelog assigns the offsets.
        let mut batch = kafka_batch(0, input).to_vec();
        let a = log.append_batch(&mut batch).unwrap();
        assert_eq!(a.base_offset, offset);
        offset += input.len() as u64;
    }
    assert_eq!(log.end_offset(), 4);
    log.close().unwrap();
    let (log, report) = open(tmp.path(), small_config());
    assert_eq!(log.end_offset(), 4, "{report:?}");
    let got = read_all(&log, 0);
    let want: Vec<_> = inputs.iter().flatten().collect();
    assert_eq!(got.len(), want.len());
    for (i, (r, (ts, k, v))) in got.iter().zip(want).enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.timestamp, *ts);
        assert_eq!(r.key.as_deref(), k.map(str::as_bytes));
        assert_eq!(r.value.as_deref(), v.map(str::as_bytes));
        assert_eq!(
            r.headers,
            vec![("origin".to_string(), Some(Bytes::from_static(b"kafka")))]
        );
    }
    // A Kafka-written segment file (producer ids, epochs) reads as it is.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut file = kafka_batch(0, &inputs[0]).to_vec();
    file.extend_from_slice(&kafka_batch(3, &inputs[1]));
    std::fs::write(tmp2.path().join("00000000000000000000.log"), &file).unwrap();
    let (log2, report) = open(tmp2.path(), small_config());
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log2.end_offset(), 4);
    assert_eq!(read_all(&log2, 0).len(), 4);
    // A corrupt batch is refused on append, with nothing written.
    let mut bad = kafka_batch(0, &inputs[1]).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        log2.append_batch(&mut bad),
        Err(tidelog::Error::InvalidRecord { .. })
    ));
    assert_eq!(log2.end_offset(), 4);
}
