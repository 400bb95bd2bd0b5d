//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the test
//! that replays their corpora (`tests/fuzz_corpus.rs`).
