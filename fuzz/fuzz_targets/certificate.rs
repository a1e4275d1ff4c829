#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| sshca_tests::fuzzing::certificate(body));
