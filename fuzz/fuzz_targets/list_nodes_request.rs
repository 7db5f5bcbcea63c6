#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pegasus_proto::fuzzing::run("list_nodes_request", data);
});
