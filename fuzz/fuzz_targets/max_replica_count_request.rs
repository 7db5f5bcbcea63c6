#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pegasus_proto::fuzzing::run("max_replica_count_request", data);
});
