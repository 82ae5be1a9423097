#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickforge_tests::fuzz::seek_header(data));
