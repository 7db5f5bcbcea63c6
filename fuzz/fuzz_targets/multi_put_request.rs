#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pegasus_proto::fuzzing::run("multi_put_request", data);
});
