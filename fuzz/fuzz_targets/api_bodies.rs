#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caucus_tests::fuzzing::api_bodies(data));
