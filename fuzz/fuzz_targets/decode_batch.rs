#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidelog::fuzzing::decode_batch(data));
