//! The control server on real UNIX sockets, without root: a server bound in
//! a scratch directory (its file access left as created), clients connected
//! to it from this process.

use super::*;
use iked_common::ipc::{self, ControlCommand, IPC_VERSION};
use nix::sys::socket::connect;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "iked-control-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch dir");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server open to this process: root, or our own group.
fn server(scratch: &Scratch) -> ControlServer {
    let group = ControlGroup {
        name: "ours".into(),
        gid: nix::unistd::getegid(),
    };
    ControlServer::listen_at(&scratch.0.join("iked.sock"), Some(group)).expect("listen")
}

fn connect_to(server: &ControlServer) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .expect("socket");
    connect(fd.as_raw_fd(), &UnixAddr::new(&server.path).unwrap()).expect("connect");
    fd
}

/// A request as the one record ikectl sends (IPC framing).
fn record(request: &ControlRequest) -> Vec<u8> {
    let mut frames = encode_frames(request).unwrap();
    assert_eq!(frames.len(), 1, "a control request fits one frame");
    frames.remove(0)
}

fn hello() -> Vec<u8> {
    record(&ControlRequest::Hello {
        version: IPC_VERSION,
    })
}

/// What a client finds on its socket now.
#[derive(Debug, PartialEq)]
enum Inbox {
    Reply(ControlReply),
    Nothing,
    Closed,
}

fn check(fd: &OwnedFd) -> Inbox {
    let mut buf = vec![0u8; ipc::MAX_MESSAGE];
    match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        Ok(0) => Inbox::Closed,
        Ok(n) => Inbox::Reply(decode_single_frame(&buf[..n]).expect("reply decodes")),
        Err(nix::Error::EAGAIN) => Inbox::Nothing,
        Err(nix::Error::ECONNRESET) => Inbox::Closed,
        Err(e) => panic!("recv: {e}"),
    }
}

/// Services until `done` holds, answering every request with `answer`
/// when given; panics after many rounds.
fn run_until(
    server: &mut ControlServer,
    answer: Option<&ControlReply>,
    mut done: impl FnMut(&ControlServer, usize) -> bool,
) -> usize {
    let mut served = 0;
    for _ in 0..100_000 {
        if done(server, served) {
            return served;
        }
        for (client, _) in server.service() {
            served += 1;
            if let Some(answer) = answer {
                server.reply(client, answer);
            }
        }
    }
    panic!("condition not reached; {served} requests served");
}

#[test]
fn a_client_that_sends_and_never_reads_is_dropped_while_others_are_served() {
    let scratch = Scratch::new("unread");
    let mut server = server(&scratch);
    let flooder = connect_to(&server);
    let polite = connect_to(&server);
    send(polite.as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
    let answer = ControlReply::Hello {
        version: IPC_VERSION,
    };
    let request = hello();
    let (mut sent, mut dropped, mut served) = (0usize, false, 0usize);
    for _ in 0..100_000 {
        // The flooder sends as fast as its socket takes it, never reading.
        while sent < 10_000 {
            match send(flooder.as_raw_fd(), &request, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => sent += 1,
                Err(nix::Error::EAGAIN) => break,
                Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => {
                    dropped = true;
                    break;
                }
                Err(e) => panic!("send: {e}"),
            }
        }
        if dropped || sent == 10_000 {
            break;
        }
        for (client, _) in server.service() {
            served += 1;
            server.reply(client, &answer);
        }
    }
    println!("flooder: {sent} requests sent, {served} served before it was dropped");
    assert!(dropped, "the flooder was never dropped ({sent} sent)");
    assert!(sent < 10_000);
    assert!(served > MAX_QUEUED_REPLIES);
    assert_eq!(server.client_count(), 1, "only the polite client is left");
    assert_eq!(check(&polite), Inbox::Reply(answer));
}

#[test]
fn a_client_is_not_read_while_it_has_the_most_unanswered_requests() {
    let scratch = Scratch::new("unanswered");
    let mut server = server(&scratch);
    let client = connect_to(&server);
    for _ in 0..10 {
        send(client.as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
    }
    let mut taken = Vec::new();
    for _ in 0..20 {
        taken.extend(server.service());
    }
    assert_eq!(taken.len(), MAX_UNANSWERED);
    // One answer makes room for one more request.
    server.reply(taken[0].0, &ControlReply::Done("ok".into()));
    let more: Vec<_> = (0..20).flat_map(|_| server.service()).collect();
    assert_eq!(more.len(), 1);
    assert_eq!(
        check(&client),
        Inbox::Reply(ControlReply::Done("ok".into()))
    );
}

#[test]
fn a_full_table_makes_room_by_closing_the_longest_idle_client() {
    let scratch = Scratch::new("evict");
    let mut server = server(&scratch);
    let mut clients = Vec::new();
    for _ in 0..MAX_CLIENTS {
        clients.push(connect_to(&server));
        // Accept in order, so "oldest" is well defined.
        run_until(&mut server, None, |s, _| s.client_count() == clients.len());
    }
    // The oldest client is busy: it asked and has had no answer.
    send(clients[0].as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
    run_until(&mut server, None, |_, served| served == 1);
    let newcomers = [connect_to(&server), connect_to(&server)];
    for _ in 0..10 {
        server.service();
    }
    assert_eq!(server.client_count(), MAX_CLIENTS);
    assert_eq!(check(&clients[0]), Inbox::Nothing, "busy: kept");
    for evicted in &clients[1..3] {
        match check(evicted) {
            Inbox::Reply(ControlReply::Failed(m)) => assert!(m.contains("idle the longest"), "{m}"),
            other => panic!("expected a closing message, got {other:?}"),
        }
        assert_eq!(check(evicted), Inbox::Closed);
    }
    assert_eq!(check(&clients[3]), Inbox::Nothing);
    for newcomer in &newcomers {
        assert_eq!(check(newcomer), Inbox::Nothing, "newcomers are served");
    }
}

#[test]
fn when_every_client_is_busy_a_new_one_is_told_and_closed() {
    let scratch = Scratch::new("busy");
    let mut server = server(&scratch);
    let mut clients = Vec::new();
    let mut served = 0;
    for _ in 0..MAX_CLIENTS {
        let client = connect_to(&server);
        send(client.as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
        clients.push(client);
        served += run_until(&mut server, None, |s, _| s.client_count() == clients.len());
    }
    served += run_until(&mut server, None, |_, n| served + n == MAX_CLIENTS);
    assert_eq!(served, MAX_CLIENTS);
    let late = connect_to(&server);
    for _ in 0..10 {
        server.service();
    }
    match check(&late) {
        Inbox::Reply(ControlReply::Failed(m)) => {
            assert!(m.contains("too many control clients"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(check(&late), Inbox::Closed);
    assert_eq!(server.client_count(), MAX_CLIENTS);
}

#[test]
fn oversized_malformed_and_descriptor_carrying_requests_close_the_connection_with_a_reason() {
    let scratch = Scratch::new("bad");
    let mut server = server(&scratch);
    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (
            vec![0u8; MAX_REQUEST + 1],
            false,
            "request of 65537 bytes exceeds the 65536-byte cap",
        ),
        (vec![0xff; 16], false, "bad request"),
        (hello(), true, "carries no descriptors"),
    ];
    for (bytes, with_descriptor, expected) in cases {
        let client = connect_to(&server);
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let raw = [devnull.as_raw_fd()];
        let rights = [nix::sys::socket::ControlMessage::ScmRights(&raw)];
        let cmsgs: &[nix::sys::socket::ControlMessage] =
            if with_descriptor { &rights } else { &[] };
        nix::sys::socket::sendmsg::<()>(
            client.as_raw_fd(),
            &[std::io::IoSlice::new(&bytes)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let served = (0..10).map(|_| server.service().len()).sum::<usize>();
        assert_eq!(served, 0, "{expected}: nothing reaches the daemon");
        match check(&client) {
            Inbox::Reply(ControlReply::Failed(m)) => assert!(m.contains(expected), "{m}"),
            other => panic!("{expected}: got {other:?}"),
        }
        assert_eq!(check(&client), Inbox::Closed, "{expected}");
        assert_eq!(server.client_count(), 0);
    }
}

#[test]
fn answers_of_ikev2_reach_the_client_that_asked_and_those_of_a_closed_one_are_forgotten() {
    let scratch = Scratch::new("forward");
    let mut server = server(&scratch);
    let asking = connect_to(&server);
    let leaving = connect_to(&server);
    let show = record(&ControlRequest::Ikev2(ControlCommand::ShowSa));
    send(asking.as_raw_fd(), &show, MsgFlags::empty()).unwrap();
    send(leaving.as_raw_fd(), &show, MsgFlags::empty()).unwrap();
    let mut taken = Vec::new();
    for _ in 0..100 {
        taken.extend(server.service());
    }
    assert_eq!(taken.len(), 2);
    // Forwarded as the daemon does; ids are given in accept order.
    let mut forwarded: Vec<(u64, u64)> = taken
        .iter()
        .map(|&(client, _)| (client, server.forwarding(client)))
        .collect();
    forwarded.sort();
    let [(_, asked), (_, left)] = forwarded[..] else {
        panic!("two requests expected");
    };
    assert_eq!(server.forwarded_count(), 2);
    drop(leaving);
    run_until(&mut server, None, |s, _| s.client_count() == 1);
    assert_eq!(
        server.forwarded_count(),
        1,
        "the closed client's request is forgotten"
    );
    server.answer(left, &ControlReply::Done("lost".into()));
    server.answer(
        asked,
        &ControlReply::SaList {
            sas: Vec::new(),
            total: 0,
        },
    );
    assert_eq!(
        check(&asking),
        Inbox::Reply(ControlReply::SaList {
            sas: Vec::new(),
            total: 0
        })
    );
    assert_eq!(check(&asking), Inbox::Nothing);
    assert_eq!(server.forwarded_count(), 0);
}

#[test]
fn root_and_members_of_the_control_group_are_allowed_and_no_one_else() {
    let group = ControlGroup {
        name: "ikeadm".into(),
        gid: Gid::from_raw(990),
    };
    let peer = |uid, gid| Peer { uid, gid, pid: 42 };
    assert!(authorize(&peer(0, 0), Some(&[]), None).is_ok());
    assert!(authorize(&peer(0, 5), None, Some(&group)).is_ok());
    let e = authorize(&peer(1000, 1000), Some(&[990]), None).unwrap_err();
    assert!(e.contains("uid 1000 is not root"), "{e}");
    assert!(authorize(&peer(1000, 990), Some(&[]), Some(&group)).is_ok());
    assert!(authorize(&peer(1000, 1000), Some(&[4, 990]), Some(&group)).is_ok());
    let e = authorize(&peer(1000, 1000), Some(&[4]), Some(&group)).unwrap_err();
    assert_eq!(e, "uid 1000 is neither root nor in group ikeadm");
    let e = authorize(&peer(1000, 1000), None, Some(&group)).unwrap_err();
    assert!(e.contains("supplementary groups unknown"), "{e}");
}

#[test]
fn rate_limit_lets_a_burst_a_second_through_and_counts_the_rest() {
    let mut limit = RateLimit::new(LOG_BURST, LOG_INTERVAL);
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    for _ in 0..LOG_BURST {
        assert_eq!(limit.allow(at(0)), Some(0));
    }
    assert_eq!(limit.allow(at(10)), None);
    assert_eq!(limit.allow(at(999)), None);
    assert_eq!(limit.allow(at(1000)), Some(2), "the held back are counted");
    assert_eq!(limit.allow(at(1001)), Some(0));
    for _ in 2..LOG_BURST {
        assert_eq!(limit.allow(at(1500)), Some(0));
    }
    assert_eq!(limit.allow(at(1999)), None);
    assert_eq!(limit.allow(at(2000)), Some(1));
}

#[test]
fn a_reply_larger_than_the_default_socket_buffer_goes_out_whole() {
    let scratch = Scratch::new("big");
    let mut server = server(&scratch);
    let client = connect_to(&server);
    send(client.as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
    let taken = run_until(&mut server, None, |_, served| served == 1);
    assert_eq!(taken, 1);
    // Well past the default 208 KiB send buffer, below the IPC cap.
    let big = ControlReply::Done("x".repeat(900_000));
    server.reply(LISTENER + 1, &big);
    // It goes out in frames; what the socket did not take is sent as the
    // client reads.
    let mut channel = ipc::Channel::new(client);
    let mut got = None;
    for _ in 0..10_000 {
        if let Some(received) = channel.try_recv::<ControlReply>().expect("framing") {
            got = Some(received.message);
            break;
        }
        server.service();
    }
    assert_eq!(got, Some(big));
    assert_eq!(server.client_count(), 1);
}

#[test]
fn a_monitor_that_does_not_read_loses_events_counted_and_stays_connected() {
    use crate::monitor::Monitors;
    use iked_common::stats::{EventKind, SaEvent, SaLevel};
    let scratch = Scratch::new("monitor");
    let mut server = server(&scratch);
    let mut monitors = Monitors::default();
    let client = connect_to(&server);
    send(client.as_raw_fd(), &hello(), MsgFlags::empty()).unwrap();
    send(
        client.as_raw_fd(),
        &record(&ControlRequest::Monitor),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut subscribed = 0;
    for _ in 0..1000 {
        for (id, request) in server.service() {
            let reply = match request {
                ControlRequest::Monitor => monitors.subscribe(id),
                _ => ControlReply::Hello {
                    version: IPC_VERSION,
                },
            };
            server.reply(id, &reply);
            subscribed += 1;
        }
        if subscribed == 2 {
            break;
        }
    }
    assert_eq!(subscribed, 2);
    assert_eq!(monitors.count(&server), 1);
    // Far more events than the socket buffer and the queue hold, unread.
    let event = |n: u32| SaEvent::new(EventKind::Up, SaLevel::Ike, &format!("p{n}"));
    for n in 0..20_000 {
        monitors.publish(&mut server, event(n));
    }
    assert!(monitors.dropped > 0, "nothing dropped");
    assert_eq!(server.client_count(), 1, "a slow monitor is not closed");
    assert_eq!(monitors.count(&server), 1);
    // It reads now: the hello, the subscription, then events in order.
    let mut events = Vec::new();
    let mut idle_rounds = 0;
    for _ in 0..100_000 {
        match check(&client) {
            Inbox::Reply(ControlReply::Event(e)) => {
                events.push(e.policy.clone());
                idle_rounds = 0;
            }
            Inbox::Reply(_) => {}
            Inbox::Nothing if idle_rounds < 3 => {
                // The queued rest goes out when the server sees room.
                server.service();
                idle_rounds += 1;
            }
            Inbox::Nothing => break,
            Inbox::Closed => panic!("closed"),
        }
    }
    let received = events.len() as u64;
    assert!(received > 0);
    assert_eq!(received + monitors.dropped, 20_000);
    let numbers: Vec<u32> = events.iter().map(|p| p[1..].parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    // The next event it gets says how many it missed.
    monitors.publish(&mut server, event(20_000));
    let Inbox::Reply(ControlReply::Event(next)) = check(&client) else {
        panic!("no event after reading up");
    };
    let dropped = monitors.dropped;
    assert_eq!(
        next.reason.as_deref(),
        Some(format!("{dropped} earlier event(s) dropped: monitor too slow").as_str())
    );
    // Gone: forgotten.
    drop(client);
    server.service();
    monitors.publish(&mut server, event(20_001));
    assert_eq!(monitors.count(&server), 0);
}
