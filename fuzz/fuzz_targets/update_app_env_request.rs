#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pegasus_proto::fuzzing::run("update_app_env_request", data);
});
