//! libFuzzer target: an initiator and a responder engine driven through
//! their states (handshakes, cookies, rekeys, deletes, hostile datagrams,
//! IPC replies out of order, timers) by the shared driver, every decision
//! read from the input, so coverage feedback steers which events happen.
//! A panic in the engine, or an engine refusing the first reply to its own
//! IPC request, is a crash. No corpus is needed: random inputs of 2 KiB
//! already establish IKE and Child SAs (tests/engine_fuzz.rs checks it),
//! and from an empty corpus this target found the COOKIE crash of issue
//! 10 in about a minute.
#![no_main]

use iked_ikev2::fuzzing::{run, Choices, Failure, Options, Stats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = Options {
        max_events: 4000,
        ..Options::default()
    };
    let mut stats = Stats::default();
    if let Err(Failure(why)) = run(&mut Choices::from_bytes(data), &options, &mut stats) {
        panic!("{why}");
    }
});
