use super::*;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

fn header(spi_i: [u8; 8], spi_r: [u8; 8], flags: u8, exchange: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&spi_i);
    h.extend_from_slice(&spi_r);
    h.extend_from_slice(&[33, 0x20, exchange, flags]);
    h.extend_from_slice(&[0, 0, 0, 1]);
    h.extend_from_slice(&40u32.to_be_bytes());
    h.extend_from_slice(&[0; 12]);
    h
}

#[test]
fn a_stamped_spi_names_its_worker_and_keeps_the_rest() {
    for count in 1..=MAX_WORKERS {
        for index in 0..count {
            let slot = WorkerSlot::new(index, count).unwrap();
            for first in [0u8, 1, 63, 127, 200, 254, 255] {
                let random = [first, 9, 8, 7, 6, 5, 4, 3];
                let spi = slot.stamp_spi(random);
                assert_eq!(
                    worker_of_own_spi(spi, count),
                    index,
                    "{first} {index}/{count}"
                );
                assert!(slot.owns_spi(spi));
                assert_eq!(spi[1..], random[1..]);
                assert!(u32::from(spi[0]).abs_diff(u32::from(first)) < u32::from(count));
            }
        }
    }
    assert!(WorkerSlot::new(2, 2).is_none());
    assert!(WorkerSlot::new(0, 0).is_none());
    assert!(WorkerSlot::new(0, MAX_WORKERS + 1).is_none());
}

#[test]
fn exactly_one_worker_owns_a_key() {
    for count in 1..=8u16 {
        for key in ["a", "gateway-to-berlin", "", "rw"] {
            let owners = (0..count)
                .filter(|&i| WorkerSlot::new(i, count).unwrap().owns_key(key.as_bytes()))
                .count();
            assert_eq!(owners, 1, "{key} among {count}");
        }
    }
}

#[test]
fn the_rule_reads_our_spi_from_the_initiator_flag() {
    let ours_r = WorkerSlot::new(2, 3).unwrap().stamp_spi([77; 8]);
    let ours_i = WorkerSlot::new(1, 3).unwrap().stamp_spi([91; 8]);
    // Peer is the original initiator: our SPI is the responder's.
    let h = header([5; 8], ours_r, 0x08, 35);
    assert_eq!(worker_of_datagram(&h, false, 3), Some(2));
    // We initiated: our SPI is the initiator's, whatever the peer's is.
    let h = header(ours_i, [200; 8], 0x20, 35);
    assert_eq!(worker_of_datagram(&h, false, 3), Some(1));
    // A new IKE_SA_INIT: the low word of the initiator SPI.
    let spi_i = [1, 2, 3, 4, 0, 0, 1, 0];
    let h = header(spi_i, [0; 8], 0x08, 34);
    assert_eq!(worker_of_datagram(&h, false, 3), Some((256 % 3) as u16));
    // Behind the non-ESP marker, and not without it.
    let mut marked = vec![0; 4];
    marked.extend_from_slice(&header([5; 8], ours_r, 0x08, 37));
    assert_eq!(worker_of_datagram(&marked, true, 3), Some(2));
    marked[0] = 1;
    assert_eq!(worker_of_datagram(&marked, true, 3), None);
    assert_eq!(worker_of_datagram(&[0xff], true, 3), None);
    assert_eq!(worker_of_datagram(&h[..27], false, 3), None);
}

fn reuseport_socket(port: u16) -> UdpSocket {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    enable_reuseport(fd.as_fd()).unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    let socket = UdpSocket::from(fd);
    socket
        .set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    socket
}

/// Which of `group` receives `payload`, within a bounded wait.
fn receiver(group: &[UdpSocket], client: &UdpSocket, payload: &[u8]) -> usize {
    let to = group[0].local_addr().unwrap();
    client.send_to(payload, to).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buffer = [0u8; 256];
    while Instant::now() < deadline {
        for (i, socket) in group.iter().enumerate() {
            if let Ok((n, _)) = socket.recv_from(&mut buffer) {
                assert_eq!(&buffer[..n], payload);
                return i;
            }
        }
    }
    panic!("no socket of the group received the datagram within 5 s");
}

/// The kernel follows worker_of_datagram: every kind of IKE datagram, on
/// a plain port and behind the non-ESP marker, reaches the socket the
/// rule names (loopback only; no privilege needed).
#[test]
fn the_kernel_program_picks_the_worker_the_rule_names() {
    for (marker, count) in [(false, 3u16), (true, 3), (false, 2), (true, 5)] {
        let first = reuseport_socket(0);
        let port = first.local_addr().unwrap().port();
        let mut group = vec![first];
        for _ in 1..count {
            group.push(reuseport_socket(port));
        }
        attach_worker_selector(group[0].as_fd(), marker, count).unwrap();
        let client = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let prefix: &[u8] = if marker { &[0, 0, 0, 0] } else { &[] };
        let mut sent = 0;
        for index in 0..count {
            let slot = WorkerSlot::new(index, count).unwrap();
            for seed in [0u8, 17, 130, 251] {
                let ours = slot.stamp_spi([seed, 1, 2, 3, 4, 5, 6, seed]);
                let theirs = [seed ^ 0x5a, 9, 9, 9, 9, 9, 9, 9];
                for h in [
                    header(theirs, ours, 0x08, 35),
                    header(ours, theirs, 0x20, 37),
                    header(ours, theirs, 0x00, 37),
                ] {
                    let payload = [prefix, &h].concat();
                    assert_eq!(
                        receiver(&group, &client, &payload),
                        usize::from(index),
                        "marker {marker}, {count} workers, header {h:02x?}"
                    );
                    sent += 1;
                }
            }
        }
        for low in [0u32, 1, 2, 3, 4, 1000, u32::MAX] {
            let mut spi_i = [7u8; 8];
            spi_i[4..].copy_from_slice(&low.to_be_bytes());
            let h = header(spi_i, [0; 8], 0x08, 34);
            let payload = [prefix, &h].concat();
            let expected = worker_of_datagram(&payload, marker, count).unwrap();
            assert_eq!(expected, (low % u32::from(count)) as u16);
            assert_eq!(receiver(&group, &client, &payload), usize::from(expected));
            sent += 1;
        }
        // What the rule leaves to the kernel still reaches some worker.
        receiver(&group, &client, &[0xff]);
        assert!(sent > 0);
    }
}
