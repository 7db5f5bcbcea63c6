#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pegasus_replica::fuzzing::replica_events(data);
});
