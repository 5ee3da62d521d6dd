//! What zeroizing the IPC buffers (encode, frames, receive buffer,
//! reassembly) costs: round trips of a small message carrying keys (an
//! AddSa, as ikev2 sends pfkey per SA) and of a large one (a 1 MiB
//! configuration), timed and printed, never a pass/fail threshold.
//! `cargo test -p iked-common --release --test ipc_zeroize_cost -- --nocapture`

use std::time::{Duration, Instant};

use iked_common::ipc::{self, Channel, Ikev2ToPfkey};
use iked_common::kernel::{
    Encryption, IpsecMode, IpsecProtocol, Lifetime, SaId, SaParams, SecretBytes, Selector,
};

fn add_sa(n: u32) -> Ikev2ToPfkey {
    let ip = |s: &str| s.parse().unwrap();
    Ikev2ToPfkey::AddSa {
        id: u64::from(n),
        sa: SaParams {
            id: SaId {
                src: ip("192.0.2.1"),
                dst: ip("192.0.2.2"),
                protocol: IpsecProtocol::Esp,
                spi: 0x1000 + n,
            },
            mode: IpsecMode::Tunnel,
            reqid: 1,
            selector: Selector::between(ip("10.1.0.0"), 16, ip("10.2.0.0"), 16),
            encryption: Encryption::AesGcm16,
            encryption_key: SecretBytes::new(vec![7; 36]),
            integrity: None,
            integrity_key: SecretBytes::new(vec![]),
            lifetime: Lifetime::default(),
            replay_window: 64,
            esn: false,
            encap: None,
        },
    }
}

/// Sends `count` messages one at a time and reads each back; the time per
/// round trip.
fn round_trips<T>(count: u32, make: impl Fn(u32) -> T) -> Duration
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let (a, b) = ipc::seqpacket_pair().unwrap();
    let (mut a, mut b) = (Channel::new(a), Channel::new(b));
    let started = Instant::now();
    for n in 0..count {
        a.send(&make(n)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            a.flush().unwrap();
            if b.try_recv_message::<T>().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "message {n} did not arrive");
        }
    }
    started.elapsed() / count
}

#[test]
fn round_trip_times_with_zeroized_buffers() {
    let small = round_trips(20_000, add_sa);
    let text = "x".repeat(1 << 20);
    let large = round_trips(50, |_| ipc::ControlReply::Done(text.clone()));
    println!(
        "IPC round trip: AddSa with keys {:.2} us, 1 MiB message {:.2} ms",
        small.as_secs_f64() * 1e6,
        large.as_secs_f64() * 1e3
    );
    assert!(small > Duration::ZERO && large > Duration::ZERO);
}
