//! The channel on real socketpairs at the kernel's default buffer sizes.

use super::*;
use crate::ipc::{seqpacket_pair, ControlReply, ParentToChild};
use std::os::fd::AsFd;

/// The kernel's default send buffer of a fresh socketpair: what every test
/// here runs at (nothing raises it).
fn default_send_buffer(fd: BorrowedFd<'_>) -> usize {
    nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SndBuf).unwrap()
}

fn pair() -> (Channel, Channel) {
    let (a, b) = seqpacket_pair().unwrap();
    (Channel::new(a), Channel::new(b))
}

fn numbered(side: &str, n: usize) -> ControlReply {
    // ~200 bytes each: 5,000 of them are several send buffers' worth.
    ControlReply::Done(format!("{side} {n:06} {}", "m".repeat(180)))
}

/// Sends raw bytes as one record, bypassing the framing.
fn send_raw(fd: BorrowedFd<'_>, bytes: &[u8], descriptors: &[RawFd]) {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(descriptors)];
    let cmsgs: &[ControlMessage] = if descriptors.is_empty() { &[] } else { &rights };
    sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).unwrap();
}

/// The string length at which `ControlReply::Done` encodes to exactly
/// MAX_MESSAGE bytes: one byte of variant, the length as a varint, the text.
fn string_filling_the_cap() -> usize {
    (1..=5)
        .map(|varint| MAX_MESSAGE - 1 - varint)
        .find(|&n| encode(&ControlReply::Done("x".repeat(n))).is_ok_and(|b| b.len() == MAX_MESSAGE))
        .expect("a length that fills the cap")
}

fn header(flags: u8, total: u32) -> Vec<u8> {
    let mut h = vec![flags];
    h.extend_from_slice(&total.to_be_bytes());
    h
}

#[test]
fn both_ends_send_five_thousand_before_reading_and_all_arrive_in_order() {
    const COUNT: usize = 5_000;
    let (mut a, mut b) = pair();
    let buffer = default_send_buffer(a.fd());
    assert!(
        buffer < COUNT * 200,
        "the default send buffer ({buffer}) must be smaller than what is sent"
    );
    let mut poller = Poller::new().unwrap();
    a.register(&poller, 0).unwrap();
    b.register(&poller, 1).unwrap();
    // Every message is sent before anything is read, on both ends: with
    // blocking sends this is the ikev2 <-> pfkey deadlock.
    for n in 0..COUNT {
        a.send(&numbered("a", n)).unwrap();
        b.send(&numbered("b", n)).unwrap();
        // A few multi-frame messages among them.
        if n % 1000 == 0 {
            a.send(&ControlReply::Done("A".repeat(300_000))).unwrap();
            b.send(&ControlReply::Done("B".repeat(300_000))).unwrap();
        }
    }
    assert!(a.has_queued() && b.has_queued(), "the sockets filled up");
    a.update_interest(&poller).unwrap();
    b.update_interest(&poller).unwrap();
    let mut got: [Vec<ControlReply>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = COUNT + COUNT / 1000;
    let mut wakeups = 0;
    while got[0].len() < expected || got[1].len() < expected {
        assert!(
            Instant::now() < deadline,
            "stalled: {} and {}",
            got[0].len(),
            got[1].len()
        );
        for token in poller.wait(Some(Duration::from_secs(1))).unwrap() {
            wakeups += 1;
            let channel = if token == 0 { &mut a } else { &mut b };
            channel.flush().unwrap();
            while let Some(r) = channel.try_recv::<ControlReply>().unwrap() {
                got[token as usize].push(r.message);
            }
            channel.update_interest(&poller).unwrap();
        }
    }
    assert!(!a.has_queued() && !b.has_queued());
    for (side, list) in [("b", &got[0]), ("a", &got[1])] {
        let small: Vec<&ControlReply> = list
            .iter()
            .filter(|m| matches!(m, ControlReply::Done(s) if s.len() < 1000))
            .collect();
        assert_eq!(small.len(), COUNT);
        for (n, m) in small.iter().enumerate() {
            assert_eq!(**m, numbered(side, n), "out of order at {n}");
        }
        assert_eq!(list.len() - small.len(), COUNT / 1000);
    }
    println!("default send buffer {buffer} bytes; {wakeups} wakeups for 2 x {expected} messages");
}

#[test]
fn a_message_of_exactly_the_cap_crosses_and_one_byte_more_is_refused() {
    let length = string_filling_the_cap();
    let largest = ControlReply::Done("x".repeat(length));
    assert_eq!(encode(&largest).unwrap().len(), MAX_MESSAGE);
    let (mut a, mut b) = pair();
    a.send(&largest).unwrap();
    assert!(
        a.has_queued(),
        "1 MiB does not fit the default buffer at once"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        assert!(Instant::now() < deadline);
        a.flush().unwrap();
        if let Some(r) = b.try_recv::<ControlReply>().unwrap() {
            break r.message;
        }
    };
    assert_eq!(received, largest);

    // Over the cap: refused when sending, and when announced by a sender
    // that does not frame with us.
    let over = ControlReply::Done("x".repeat(length + 1));
    assert!(matches!(a.send(&over), Err(IpcError::Oversized(n)) if n == MAX_MESSAGE + 1));
    let mut frame = header(FIRST, (MAX_MESSAGE + 1) as u32);
    frame.extend_from_slice(&[0; 100]);
    send_raw(a.fd(), &frame, &[]);
    assert!(matches!(
        b.try_recv::<ControlReply>(),
        Err(IpcError::Oversized(n)) if n == MAX_MESSAGE + 1
    ));
}

#[test]
fn bad_framing_is_an_error_never_a_panic() {
    let payload = [0x01u8, 0x00];
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("shorter than a header", vec![vec![FIRST | LAST, 0, 0]]),
        (
            "empty record with a header only",
            vec![header(FIRST | LAST, 2)],
        ),
        (
            "unknown flags",
            vec![[header(0x80 | FIRST | LAST, 2), payload.to_vec()].concat()],
        ),
        (
            "continuation first",
            vec![[header(LAST, 2), payload.to_vec()].concat()],
        ),
        (
            "first inside first",
            vec![
                [header(FIRST, 4), payload.to_vec()].concat(),
                [header(FIRST | LAST, 2), payload.to_vec()].concat(),
            ],
        ),
        (
            "totals differ",
            vec![
                [header(FIRST, 4), payload.to_vec()].concat(),
                [header(LAST, 5), payload.to_vec()].concat(),
            ],
        ),
        (
            "last too early",
            vec![[header(FIRST | LAST, 4), payload.to_vec()].concat()],
        ),
        (
            "complete without last",
            vec![[header(FIRST, 2), payload.to_vec()].concat()],
        ),
        (
            "more than announced",
            vec![
                [header(FIRST, 3), payload.to_vec()].concat(),
                [header(LAST, 3), payload.to_vec()].concat(),
            ],
        ),
        (
            "record over the frame size",
            vec![vec![FIRST | LAST; FRAME_SIZE + 1]],
        ),
        ("garbage", vec![vec![0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa]]),
    ];
    for (what, records) in cases {
        let (a, b) = seqpacket_pair().unwrap();
        let mut channel = Channel::new(b);
        for record in &records {
            send_raw(a.as_fd(), record, &[]);
        }
        let mut result = Ok(None);
        for _ in 0..records.len() {
            result = channel
                .try_recv::<ParentToChild>()
                .map(|r| r.map(|r| r.message));
            if result.is_err() {
                break;
            }
        }
        match result {
            Err(IpcError::Malformed { reason, .. }) => println!("{what}: {reason}"),
            other => panic!("{what}: expected a framing error, got {other:?}"),
        }
        // The blocking receiver refuses the same.
        for record in &records {
            send_raw(a.as_fd(), record, &[]);
        }
        assert!(
            matches!(
                recv_blocking::<ParentToChild>(channel.fd()),
                Err(IpcError::Malformed { .. })
            ),
            "{what} (blocking)"
        );
    }

    // Descriptors on a continuation frame.
    let (a, b) = seqpacket_pair().unwrap();
    let (extra, _keep) = seqpacket_pair().unwrap();
    let mut channel = Channel::new(b);
    send_raw(
        a.as_fd(),
        &[header(FIRST, 4), payload.to_vec()].concat(),
        &[],
    );
    send_raw(
        a.as_fd(),
        &[header(LAST, 4), payload.to_vec()].concat(),
        &[extra.as_raw_fd()],
    );
    assert!(matches!(
        channel.try_recv::<ParentToChild>(),
        Err(IpcError::Malformed { reason, .. }) if reason.contains("descriptors")
    ));
}

#[test]
fn descriptors_ride_on_the_first_frame_of_a_large_message() {
    let (mut a, mut b) = pair();
    let (extra, keep) = seqpacket_pair().unwrap();
    let big = ControlReply::Done("d".repeat(3 * FRAME_SIZE));
    a.send_with_descriptors(&big, vec![extra]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let received = loop {
        assert!(Instant::now() < deadline);
        a.flush().unwrap();
        if let Some(r) = b.try_recv::<ControlReply>().unwrap() {
            break r;
        }
    };
    let (message, fds) = received.expect_descriptors(1).unwrap();
    assert_eq!(message, big);
    // The descriptor is the live socket that was sent.
    send_blocking(fds[0].as_fd(), &ParentToChild::Shutdown, &[]).unwrap();
    assert_eq!(
        recv_blocking::<ParentToChild>(keep.as_fd())
            .unwrap()
            .message,
        ParentToChild::Shutdown
    );
}

#[test]
fn a_peer_that_never_reads_makes_the_queue_bound_fail_clearly() {
    let (a, _b) = seqpacket_pair().unwrap();
    let limit = 1 << 20;
    let mut channel = Channel::with_queue_limit(a, limit);
    let mut sent = 0;
    let error = loop {
        match channel.send(&numbered("a", sent)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the bound never hit");
    };
    assert!(
        matches!(error, IpcError::QueueFull { queued, limit: l } if l == limit && queued <= limit),
        "{error}"
    );
    assert!(error.to_string().contains("peer not reading"), "{error}");
    // Nothing half-queued: the refused message is not in the queue.
    assert!(channel.queued_bytes() <= limit);
    // flush_within gives up at its deadline instead of waiting forever.
    let started = Instant::now();
    assert!(channel.flush_within(Duration::from_millis(100)).is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_closed_peer_is_closed_for_sending_and_receiving() {
    let (mut a, b) = pair();
    drop(b);
    assert!(matches!(
        a.try_recv::<ControlReply>(),
        Err(IpcError::Closed)
    ));
    assert!(matches!(
        a.send(&ControlReply::Done("x".into())),
        Err(IpcError::Closed)
    ));
}

#[test]
fn blocking_helpers_carry_a_large_message_between_threads() {
    // ikectl and the handshake use these: a 1 MiB reply at default buffers.
    let (a, b) = seqpacket_pair().unwrap();
    let largest = ControlReply::Done("y".repeat(string_filling_the_cap()));
    let expected = largest.clone();
    let reader = std::thread::spawn(move || recv_blocking::<ControlReply>(b.as_fd()).unwrap());
    send_blocking(a.as_fd(), &largest, &[]).unwrap();
    assert_eq!(reader.join().unwrap().message, expected);
}

#[test]
fn recv_within_waits_for_the_answer_and_times_out() {
    let (mut a, b) = pair();
    let started = Instant::now();
    assert!(a
        .recv_within::<ControlReply>(Duration::from_millis(100))
        .is_err());
    assert!(started.elapsed() >= Duration::from_millis(100));
    send_blocking(b.fd(), &ControlReply::Done("hi".into()), &[]).unwrap();
    let got = a
        .recv_within::<ControlReply>(Duration::from_secs(2))
        .unwrap();
    assert_eq!(got.message, ControlReply::Done("hi".into()));
}

#[test]
fn frames_for_a_server_with_its_own_queue_match_the_channel() {
    // The control socket keeps datagrams in its own queue: the records it
    // gets are what a Channel or the blocking receiver reassembles.
    let (a, b) = seqpacket_pair().unwrap();
    let reply = ControlReply::Done("r".repeat(100_000));
    let frames = encode_frames(&reply).unwrap();
    assert_eq!(
        frames.len(),
        100_000usize.div_ceil(FRAME_SIZE - FRAME_HEADER)
    );
    let reader = std::thread::spawn(move || recv_blocking::<ControlReply>(b.as_fd()).unwrap());
    for frame in &frames {
        send_raw(a.as_fd(), frame, &[]);
    }
    assert_eq!(reader.join().unwrap().message, reply);

    let request = ParentToChild::Shutdown;
    let single = encode_frames(&request).unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(
        decode_single_frame::<ParentToChild>(&single[0]).unwrap(),
        request
    );
    // The first of several frames is not a whole message; garbage is not
    // either: errors, never a panic.
    assert!(matches!(
        decode_single_frame::<ControlReply>(&frames[0]),
        Err(IpcError::Malformed { .. })
    ));
    assert!(decode_single_frame::<ParentToChild>(&[0xff, 0, 0]).is_err());
}
