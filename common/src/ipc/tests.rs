use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::MsgFlags;

use super::*;

fn hello() -> ParentToChild {
    ParentToChild::Hello {
        version: IPC_VERSION,
        verbosity: Verbosity::Verbose,
        chroot_dir: "/var/empty".into(),
        uid: 1000,
        gid: 1000,
    }
}

#[test]
fn every_message_round_trips_through_postcard() {
    let messages = vec![
        hello(),
        ParentToChild::Descriptor(DescriptorPurpose::IkeUdp {
            port: 4500,
            ipv6: true,
        }),
        ParentToChild::Descriptor(DescriptorPurpose::KernelEvents(KernelSocketKind::Xfrm)),
        ParentToChild::DropPrivileges {
            on_violation: crate::privileges::sandbox::ViolationAction::Log,
        },
        ParentToChild::Config(ChildConfig::Ikev2 {
            generation: 7,
            mode: InitiationMode::Passive,
            policies: crate::config::parse_str(
                "t",
                "ikev2 \"p\" from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk \"k\"",
                &[],
            )
            .unwrap()
            .policies,
            dpd_check_interval: 30,
            fragmentation: crate::config::FragmentationSettings {
                enabled: false,
                max_datagram: 576,
            },
            mobike: true,
            engine: crate::config::EngineTunables::default(),
        }),
        ParentToChild::Config(ChildConfig::Ca {
            generation: 7,
            psks: vec![("p".into(), crate::config::PreSharedKey::new(b"k".to_vec()))],
            pubkey_policies: vec![CaPolicy {
                name: "c".into(),
                auth: crate::config::SignatureAuth::Rfc7427,
                srcid: None,
                dstid: Some(crate::config::IdentitySpec::Fqdn("b.example".into())),
            }],
            store: Box::new(CertStoreFiles {
                dir: "/etc/iked".into(),
                ca_certs: vec![StoreFile {
                    path: "ca/ca.crt".into(),
                    bytes: b"-----BEGIN".to_vec(),
                }],
                private_key: Some(SecretStoreFile {
                    path: "private/local.key".into(),
                    bytes: b"k".to_vec(),
                }),
                ..CertStoreFiles::default()
            }),
            eap_policies: Vec::new(),
            users: Vec::new(),
        }),
        ParentToChild::Control {
            id: 3,
            command: ControlCommand::Terminate { policy: "p".into() },
        },
        ParentToChild::SetVerbosity(Verbosity::Brief),
        ParentToChild::Shutdown,
    ];
    for m in messages {
        assert_eq!(decode::<ParentToChild>(&encode(&m).unwrap()).unwrap(), m);
    }
    let reply = ChildToParent::KernelEntryAdded(KernelEntry::Sa(crate::kernel::SaId {
        src: "198.18.0.1".parse().unwrap(),
        dst: "198.18.0.2".parse().unwrap(),
        protocol: crate::kernel::IpsecProtocol::Esp,
        spi: 0xc0ffee,
    }));
    assert_eq!(
        decode::<ChildToParent>(&encode(&reply).unwrap()).unwrap(),
        reply
    );
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    // Variant index far past the end of the enum.
    assert!(matches!(
        decode::<ParentToChild>(&[0x7f]),
        Err(IpcError::Malformed { .. })
    ));
    // Empty input.
    assert!(matches!(
        decode::<ChildToParent>(&[]),
        Err(IpcError::Malformed { .. })
    ));
    // A valid message cut short.
    let bytes = encode(&hello()).unwrap();
    for cut in 1..bytes.len() {
        assert!(
            decode::<ParentToChild>(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // A string length claiming far more bytes than there are.
    let mut lying = vec![0u8]; // Hello
    lying.push(1); // version
    lying.push(0); // verbosity
    lying.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]); // chroot_dir length ~ 4 GiB
    assert!(decode::<ParentToChild>(&lying).is_err());
}

#[test]
fn trailing_bytes_make_a_datagram_malformed() {
    let mut bytes = encode(&ParentToChild::Shutdown).unwrap();
    bytes.push(0);
    let e = decode::<ParentToChild>(&bytes).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
}

#[test]
fn oversized_messages_are_refused_on_encode_and_decode() {
    let huge = ControlReply::Done("x".repeat(MAX_MESSAGE + 10));
    assert!(matches!(encode(&huge), Err(IpcError::Oversized(_))));
    let bytes = vec![0u8; MAX_MESSAGE + 1];
    assert!(matches!(
        decode::<ControlReply>(&bytes),
        Err(IpcError::Oversized(_))
    ));
}

#[test]
fn messages_and_descriptors_cross_a_socketpair() {
    let (a, b) = seqpacket_pair().unwrap();
    let (extra, _keep) = seqpacket_pair().unwrap();
    send(
        a.as_fd(),
        &ParentToChild::Descriptor(DescriptorPurpose::Sibling(Role::Ca)),
        &[extra.as_fd()],
    )
    .unwrap();
    send(a.as_fd(), &hello(), &[]).unwrap();
    let got = recv::<ParentToChild>(b.as_fd()).unwrap();
    let (message, fds) = got.expect_descriptors(1).unwrap();
    assert_eq!(
        message,
        ParentToChild::Descriptor(DescriptorPurpose::Sibling(Role::Ca))
    );
    // The received descriptor is a live socket distinct from the one sent.
    assert_ne!(fds[0].as_raw_fd(), extra.as_raw_fd());
    send(fds[0].as_fd(), &ParentToChild::Shutdown, &[]).unwrap();
    assert_eq!(
        recv::<ParentToChild>(_keep.as_fd()).unwrap().message,
        ParentToChild::Shutdown
    );
    // Messages keep their boundaries: the second one arrives whole.
    let second = recv::<ParentToChild>(b.as_fd()).unwrap();
    assert_eq!(second.message, hello());
    assert!(second.expect_descriptors(1).is_err());
}

#[test]
fn an_oversized_record_on_the_wire_is_refused() {
    let (a, b) = seqpacket_pair().unwrap();
    // Larger than any frame: a sender that does not frame with us.
    let raw = vec![0u8; FRAME_SIZE + 100];
    nix::sys::socket::send(a.as_raw_fd(), &raw, MsgFlags::empty()).unwrap();
    let e = recv::<ParentToChild>(b.as_fd()).unwrap_err();
    assert!(matches!(e, IpcError::Malformed { .. }), "{e}");
}

#[test]
fn garbage_datagram_is_malformed_and_closed_peer_is_closed() {
    let (a, b) = seqpacket_pair().unwrap();
    nix::sys::socket::send(a.as_raw_fd(), &[0xff, 0xff, 0xff], MsgFlags::empty()).unwrap();
    assert!(matches!(
        recv::<ChildToParent>(b.as_fd()),
        Err(IpcError::Malformed { .. })
    ));
    drop(a);
    assert!(matches!(
        recv::<ChildToParent>(b.as_fd()),
        Err(IpcError::Closed)
    ));
}

#[test]
fn role_names_round_trip() {
    for role in [Role::Parent, Role::Ikev2, Role::Pfkey, Role::Ca] {
        assert_eq!(Role::from_name(role.name()), Some(role));
    }
    assert_eq!(Role::from_name("root"), None);
}

#[test]
fn a_configuration_of_ten_thousand_policies_fits_one_message() {
    let mut text = String::new();
    for i in 0..10_000 {
        let (hi, lo) = (i / 256, i % 256);
        text += &format!(
            "ikev2 \"gateway-{i}\" active esp from 10.{hi}.{lo}.0/24 to 172.16.{lo}.0/24 \
             local 198.18.0.1 peer 198.19.{hi}.{lo} psk \"secret-{i}\"\n"
        );
    }
    let config = crate::config::parse_str("iked.conf", &text, &[]).unwrap();
    let message = ParentToChild::Config(ChildConfig::Ikev2 {
        generation: 1,
        mode: InitiationMode::Active,
        policies: config.policies,
        dpd_check_interval: 0,
        fragmentation: config.fragmentation,
        mobike: true,
        engine: config.engine,
    });
    let size = encode(&message).unwrap().len();
    println!("10,000 policies: {size} bytes");
    assert!(size > 1 << 20, "larger than the former 1 MiB cap");
    assert!(size < MAX_MESSAGE);
}

#[test]
fn route_settings_and_source_lookups_round_trip_through_postcard() {
    let parent = [
        ParentToChild::Descriptor(DescriptorPurpose::RouteNetlink),
        ParentToChild::Config(ChildConfig::Pfkey {
            generation: 2,
            flows: Vec::new(),
            routing: crate::routing::RouteSettings {
                enabled: false,
                table: 70_000,
            },
        }),
    ];
    for m in parent {
        assert_eq!(decode::<ParentToChild>(&encode(&m).unwrap()).unwrap(), m);
    }
    let ask = Ikev2ToPfkey::LookupSource {
        id: 9,
        peer: "2001:db8::2".parse().unwrap(),
    };
    assert_eq!(decode::<Ikev2ToPfkey>(&encode(&ask).unwrap()).unwrap(), ask);
    let answer = PfkeyToIkev2::SourceAddress {
        id: 9,
        source: "2001:db8::1".parse().unwrap(),
    };
    assert_eq!(
        decode::<PfkeyToIkev2>(&encode(&answer).unwrap()).unwrap(),
        answer
    );
}

#[test]
fn certificate_store_control_messages_round_trip_through_postcard() {
    let to_ca = ParentToChild::CaControl {
        id: 9,
        command: CaCommand::StoreStatus,
    };
    assert_eq!(
        decode::<ParentToChild>(&encode(&to_ca).unwrap()).unwrap(),
        to_ca
    );
    let refused = ChildToParent::StoreRefused {
        generation: 4,
        reason: "/etc/iked/ca/x.crt: not a PEM certificate".into(),
    };
    assert_eq!(
        decode::<ChildToParent>(&encode(&refused).unwrap()).unwrap(),
        refused
    );
    let shown = ControlReply::CertStore(Box::new(CertStoreInfo {
        dir: "/etc/iked".into(),
        generation: 4,
        cas: vec![CertificateInfo {
            subject: "C=XX, CN=root".into(),
            sans: vec!["DNS:gw.example".into()],
            ..CertificateInfo::default()
        }],
        crls: vec![CrlInfo {
            revoked: 3,
            next_update: None,
            ..CrlInfo::default()
        }],
        raw_keys: vec![(
            "b.example".into(),
            "Ed25519".into(),
            "pubkeys/fqdn/b.example".into(),
        )],
        ..CertStoreInfo::default()
    }));
    assert_eq!(
        decode::<ControlReply>(&encode(&shown).unwrap()).unwrap(),
        shown
    );
    for request in [ControlRequest::ShowCertStore, ControlRequest::ResetCa] {
        assert_eq!(
            decode::<ControlRequest>(&encode(&request).unwrap()).unwrap(),
            request
        );
    }
}

#[test]
fn the_messages_of_a_two_phase_reload_round_trip() {
    let to_child = [
        ParentToChild::PrepareConfig(ChildConfig::Pfkey {
            generation: 5,
            flows: vec![],
            routing: Default::default(),
        }),
        ParentToChild::CommitConfig { generation: 5 },
        ParentToChild::AbortConfig { generation: 6 },
    ];
    for message in to_child {
        assert_eq!(
            decode::<ParentToChild>(&encode(&message).unwrap()).unwrap(),
            message
        );
    }
    let to_parent = [
        ChildToParent::ConfigPrepared { generation: 5 },
        ChildToParent::ConfigRefused {
            generation: 5,
            reason: "/etc/iked/private/local.key: not a private key".into(),
        },
    ];
    for message in to_parent {
        assert_eq!(
            decode::<ChildToParent>(&encode(&message).unwrap()).unwrap(),
            message
        );
    }
}
