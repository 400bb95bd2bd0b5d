#![cfg(feature = "internals")]
//! Rewriting a batch as compaction does (KAFKA.md §7): the surviving records keep
//! their offsets and timestamps, the batch keeps its offset range, producer
//! fields and leader epoch; maxTimestamp follows the survivors; a delete horizon
//! sets attribute bit 6 with baseTimestamp = the horizon; an emptied batch is
//! Kafka's 61-byte empty batch. Checked with tidelog's decoder and with the
//! independent kafka-protocol decoder.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tidelog::batch::{
    decode_batch, encode_batch, encode_rewritten, validate_batch, BatchRecord, EncodeError,
};
use tidelog::Record;

const T0: i64 = 1_700_000_000_000;

fn original() -> (tidelog::batch::BatchHeader, Vec<BatchRecord>) {
    let records: Vec<Record> = (0..6)
        .map(|i| {
            let r = Record::new(format!("v{i}"))
                .with_key(format!("k{}", i % 3))
                .with_timestamp(T0 + 10 * i);
            if i == 4 {
                Record::tombstone("k1").with_timestamp(T0 + 40)
            } else {
                r
            }
        })
        .collect();
    let mut buf = Vec::new();
    let header = encode_batch(&mut buf, 100, &records, T0).unwrap();
    let mut out = Vec::new();
    decode_batch(&Bytes::from(buf), 0, &mut out).unwrap();
    (header, out)
}

#[test]
fn survivors_keep_offsets_timestamps_and_the_batch_range() {
    let (header, all) = original();
    let survivors: Vec<BatchRecord> = all
        .iter()
        .filter(|r| r.offset != 101 && r.offset != 105)
        .cloned()
        .collect();
    let mut buf = Vec::new();
    let h = encode_rewritten(&mut buf, &header, &survivors, None).unwrap();
    assert_eq!(validate_batch(&buf).unwrap(), h);
    assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 5, 4));
    assert_eq!(h.max_timestamp, T0 + 40, "recomputed from the survivors");
    assert_eq!(h.base_timestamp, T0);
    assert_eq!(h.delete_horizon(), None);
    let mut back = Vec::new();
    decode_batch(&Bytes::from(buf.clone()), 0, &mut back).unwrap();
    assert_eq!(back, survivors);
    // The independent decoder agrees on offsets (with the gap) and contents.
    let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(buf)).unwrap();
    let k: Vec<(i64, i64, Option<Bytes>)> = sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| (r.offset, r.timestamp, r.value.clone()))
        .collect();
    let want: Vec<(i64, i64, Option<Bytes>)> = survivors
        .iter()
        .map(|r| (r.offset as i64, r.timestamp, r.value.clone()))
        .collect();
    assert_eq!(k, want);
}

#[test]
fn delete_horizon_sets_bit_6_and_keeps_record_timestamps() {
    let (header, all) = original();
    let horizon = T0 + 86_400_000;
    let mut buf = Vec::new();
    let h = encode_rewritten(&mut buf, &header, &all, Some(horizon)).unwrap();
    assert_eq!(h.delete_horizon(), Some(horizon));
    assert_eq!(h.attributes & 0x40, 0x40);
    assert_eq!(validate_batch(&buf).unwrap().delete_horizon(), Some(horizon));
    let mut back = Vec::new();
    decode_batch(&Bytes::from(buf.clone()), 0, &mut back).unwrap();
    assert_eq!(back, all, "timestamps re-based, unchanged");
    // Rewriting again without a horizon clears the bit.
    let mut again = Vec::new();
    let h2 = encode_rewritten(&mut again, &h, &back, None).unwrap();
    assert_eq!(h2.delete_horizon(), None);
}

#[test]
fn an_emptied_batch_keeps_its_offset_range() {
    let (header, _) = original();
    let mut buf = Vec::new();
    let h = encode_rewritten(&mut buf, &header, &[], None).unwrap();
    assert_eq!(buf.len(), 61);
    assert_eq!(
        (h.records_count, h.base_offset, h.last_offset(), h.base_timestamp),
        (0, 100, 105, -1)
    );
    assert_eq!(h.max_timestamp, header.max_timestamp);
    assert_eq!(validate_batch(&buf).unwrap(), h);
    let mut back = Vec::new();
    decode_batch(&Bytes::from(buf), 0, &mut back).unwrap();
    assert!(back.is_empty());
}

#[test]
fn records_outside_the_batch_or_out_of_order_are_refused() {
    let (header, all) = original();
    let mut outside = all[0].clone();
    outside.offset = 106;
    let mut buf = vec![1, 2, 3];
    assert_eq!(
        encode_rewritten(&mut buf, &header, &[outside], None),
        Err(EncodeError::NotInBatch { offset: 106 })
    );
    let reversed: Vec<BatchRecord> = all.iter().rev().take(2).cloned().collect();
    assert!(matches!(
        encode_rewritten(&mut buf, &header, &reversed, None),
        Err(EncodeError::NotInBatch { .. })
    ));
    assert_eq!(buf, vec![1, 2, 3], "nothing appended on error");
}
