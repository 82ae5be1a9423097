//! Codec behaviour: every message round-trips; golden bytes pin the wire format; malformed
//! input of every kind gives a typed error, never a panic or a stack overflow (these tests run
//! in debug builds, where rmp-serde's own depth default would overflow the stack).

#[allow(dead_code)]
mod samples;

use proptest::prelude::*;
use samples::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tickforge_protocol::*;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let bytes = encode(value).expect("every protocol value should encode");
    let back: T = decode_with(&bytes, DecodeLimits::TRUSTED).expect("encoded bytes should decode");
    assert_eq!(
        &back, value,
        "a value should survive encode then decode unchanged"
    );
}

#[test]
fn every_message_round_trips() {
    for (_, m) in client_messages() {
        round_trip(&m);
    }
    for (_, m) in server_messages() {
        round_trip(&m);
    }
    for (_, m) in spectator_messages() {
        round_trip(&m);
    }
    for c in all_components() {
        round_trip(&c);
    }
    for name in ["arena", "drift"] {
        round_trip(&GameConfig::default_for(name).expect("known game"));
    }
    round_trip(&RejectedCommand {
        tick: Tick(3),
        player: PlayerId(2),
        id: CommandId(9),
        command: Command::Fire {
            entity: EntityId(4),
            dx: 0,
            dy: 0,
        },
        rule: Rule::InvalidInput,
        detail: "fire needs a non-zero direction".into(),
    });
    round_trip(&SimSnapshot {
        match_id: MatchId(1),
        tick: Tick(600),
        seq: Seq(1234),
        next_entity: EntityId(77),
        rng_words: 4096,
        entities: vec![EntityState {
            id: EntityId(0),
            components: all_components(),
        }],
    });
}

#[test]
fn every_event_kind_and_component_has_a_sample() {
    assert_eq!(
        all_event_kinds()
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>(),
        EventKind::NAMES,
        "the samples should cover every event kind, in declaration order"
    );
}

#[test]
fn client_messages_fit_the_client_frame_limit() {
    for (name, m) in client_messages() {
        let bytes = encode(&m).expect("encodes");
        assert!(
            bytes.len() < 64,
            "{name} should be small, got {} bytes",
            bytes.len()
        );
        let back: ClientMessage =
            decode(&bytes).expect("a client message should decode within client limits");
        assert_eq!(back, m);
    }
}

fn hex_of<T: Serialize>(value: &T) -> String {
    hex::encode(encode(value).expect("encodes"))
}

/// Golden bytes. A change here is a wire-format change: bump PROTOCOL_VERSION, keep old
/// clients in mind, and update docs/PROTOCOL.md.
#[test]
fn golden_bytes_pin_the_wire_format() {
    let golden: &[(&str, &str)] = &[
        ("client/hello", "81a568656c6c6f9202a464656d6f"),
        ("client/join", "81a46a6f696e9207a3616e61"),
        ("client/quick_join", "81a46a6f696e92c0a2626f"),
        (
            "client/cmd_join",
            "81a7636f6d6d616e64920181a46a6f696e91a3616e61",
        ),
        ("client/cmd_leave", "81a7636f6d6d616e649202a56c65617665"),
        (
            "client/cmd_move",
            "81a7636f6d6d616e64920381a46d6f7665930232ec",
        ),
        (
            "client/cmd_fire",
            "81a7636f6d6d616e64920481a46669726593020100",
        ),
        (
            "client/cmd_drift",
            "81a7636f6d6d616e6492ce0001117081a5647269667493cd012cd1fc18cd03e8",
        ),
        ("client/resume", "81a6726573756d6593a3746f6b7863"),
        ("client/ping", "81a470696e6791cfffffffffffffffff"),
        ("client/leave", "a56c65617665"),
        (
            "server/welcome",
            "81a777656c636f6d659202a97469636b666f726765",
        ),
        (
            "server/joined",
            "81a66a6f696e6564990701023ca3746f6ba5647269667481a564726966749408ce000186a0ce000186a0cd03e893a6706c61796572a3706f73a5696e7075749378279192029c81a6706c617965729201a3616e6181a3706f7392ffcd9c4081a376656c9264d09c81a26870924bc081a268709200ccf081a573636f726592030181a8636f6f6c646f776e91cc8781aa70726f6a656374696c65930279ccd381a67069636b7570911981a5696e707574911181a56d6174636893cd8ca0ab73636f72655f6c696d69740181ac7069636b75705f74696d657291cd012c",
        ),
        ("server/resumed", "81a7726573756d65649407010263"),
        (
            "server/rejected",
            "81a872656a65637465649304ac726174655f6c696d69746564bc6f7665722031323020636f6d6d616e647320706572207365636f6e64",
        ),
        (
            "server/snapshot",
            "81a8736e617073686f749378279192029c81a6706c617965729201a3616e6181a3706f7392ffcd9c4081a376656c9264d09c81a26870924bc081a268709200ccf081a573636f726592030181a8636f6f6c646f776e91cc8781aa70726f6a656374696c65930279ccd381a67069636b7570911981a5696e707574911181a56d6174636893cd8ca0ab73636f72655f6c696d69740181ac7069636b75705f74696d657291cd012c",
        ),
        (
            "server/match_ended",
            "81ab6d617463685f656e64656492aa74696d655f6c696d6974c0",
        ),
        ("server/pong", "81a4706f6e679109"),
        (
            "server/error",
            "81a56572726f7292cd0fa0b970726f746f636f6c5f76657273696f6e5f6d69736d61746368",
        ),
        (
            "spectator/player_joined",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ad706c617965725f6a6f696e6564930102a3616e61",
        ),
        (
            "spectator/player_left",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ab706c617965725f6c656674920102",
        ),
        (
            "spectator/player_spawned",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ae706c617965725f737061776e65649302cd01f4cd9a4c",
        ),
        (
            "spectator/player_steered",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ae706c617965725f737465657265649302d0ba46",
        ),
        (
            "spectator/projectile_fired",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381b070726f6a656374696c655f6669726564960a020102cd019000",
        ),
        (
            "spectator/player_hit",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381aa706c617965725f68697494030a1932",
        ),
        (
            "spectator/player_killed",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ad706c617965725f6b696c6c6564930302ccf1",
        ),
        (
            "spectator/projectile_expired",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381b270726f6a656374696c655f65787069726564910b",
        ),
        (
            "spectator/pickup_spawned",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ae7069636b75705f737061776e6564940c64ccc819",
        ),
        (
            "spectator/pickup_collected",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381b07069636b75705f636f6c6c6563746564930c0264",
        ),
        (
            "spectator/player_drifted",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ae706c617965725f64726966746564940205fb08",
        ),
        (
            "spectator/match_ended",
            "81a47469636b9379cf0123456789abcdef919605297901a572756c657381ab6d617463685f656e64656492ab73636f72655f6c696d697401",
        ),
        (
            "spectator/command_event",
            "81a47469636b9379cf0123456789abcdef91960529790181a7636f6d6d616e6492010381ae706c617965725f73746565726564930232ec",
        ),
        ("spectator/live", "81a46c6976659129"),
        ("spectator/ended", "81a5656e64656491cd2328"),
        (
            "spectator/quiet_tick",
            "81a47469636b937acffedcba987654321090",
        ),
    ];
    let mut actual: Vec<(String, String)> = Vec::new();
    actual.extend(
        client_messages()
            .iter()
            .map(|(n, m)| (format!("client/{n}"), hex_of(m))),
    );
    actual.extend(
        server_messages()
            .iter()
            .map(|(n, m)| (format!("server/{n}"), hex_of(m))),
    );
    actual.extend(
        spectator_messages()
            .iter()
            .map(|(n, m)| (format!("spectator/{n}"), hex_of(m))),
    );
    let mut report = String::new();
    for (name, hex) in &actual {
        match golden.iter().find(|(g, _)| g == name) {
            Some((_, want)) if want == hex => {}
            Some((_, want)) => {
                report.push_str(&format!("{name}: pinned {want}\n{name}: now    {hex}\n"))
            }
            None => report.push_str(&format!("        (\"{name}\", \"{hex}\"),\n")),
        }
    }
    assert!(
        golden.len() == actual.len(),
        "every sample should have pinned bytes; missing:\n{report}"
    );
    assert!(report.is_empty(), "the wire format drifted:\n{report}");
}

/// Feed `bytes` to every decoder; none may panic, and each must return an error.
fn assert_refused(label: &str, bytes: &[u8]) -> Vec<DecodeError> {
    let limits = DecodeLimits {
        max_bytes: usize::MAX,
        max_depth: 16,
    };
    let errors = vec![
        decode_with::<ClientMessage>(bytes, limits).err(),
        decode_with::<ServerMessage>(bytes, limits).err(),
        decode_with::<SpectatorMessage>(bytes, limits).err(),
        decode_with::<SimSnapshot>(bytes, limits).err(),
    ];
    errors
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.unwrap_or_else(|| panic!("{label}: decoder {i} should refuse {}", hex::encode(bytes)))
        })
        .collect()
}

#[test]
fn truncated_messages_are_refused_at_every_cut() {
    let mut cuts = 0;
    let mut all: Vec<Vec<u8>> = Vec::new();
    all.extend(
        client_messages()
            .iter()
            .map(|(_, m)| encode(m).expect("encodes")),
    );
    all.extend(
        server_messages()
            .iter()
            .map(|(_, m)| encode(m).expect("encodes")),
    );
    all.extend(
        spectator_messages()
            .iter()
            .map(|(_, m)| encode(m).expect("encodes")),
    );
    for bytes in &all {
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            let limits = DecodeLimits::TRUSTED;
            let c = decode_with::<ClientMessage>(prefix, limits);
            let s = decode_with::<ServerMessage>(prefix, limits);
            let p = decode_with::<SpectatorMessage>(prefix, limits);
            assert!(
                c.is_err() && s.is_err() && p.is_err(),
                "a prefix of {cut} bytes should not decode"
            );
            cuts += 1;
        }
    }
    assert!(
        cuts > 500,
        "the sweep should try many cut points, tried {cuts}"
    );
    let err =
        decode::<ClientMessage>(&encode(&ClientMessage::Leave).expect("encodes")[..3]).unwrap_err();
    assert!(
        matches!(err, DecodeError::Truncated { .. }),
        "a cut string should say truncated, got {err:?}"
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for levels in [17, 100, 1_000, 100_000] {
        for opener in [0x91u8, 0x81] {
            // Arrays of one element, or maps of one entry whose key is 0 and value nests on.
            let mut bytes = Vec::new();
            for _ in 0..levels {
                bytes.push(opener);
                if opener == 0x81 {
                    bytes.push(0x00);
                }
            }
            bytes.push(0xc0);
            assert_refused("deep nesting", &bytes);
            // And nested inside an otherwise valid envelope, where serde may skip it.
            let mut wrapped = vec![0x81, 0xa5];
            wrapped.extend_from_slice(b"hello");
            wrapped.push(0x92);
            wrapped.push(0x01);
            wrapped.extend_from_slice(&bytes);
            assert_refused("deep nesting in hello", &wrapped);
        }
    }
    let mut bytes = vec![0x91; 1_000];
    bytes.push(0xc0);
    assert_eq!(
        decode_with::<serde::de::IgnoredAny>(&bytes, DecodeLimits::TRUSTED).unwrap_err(),
        DecodeError::TooDeep { max: 16 },
        "1,000 levels of nesting should be refused as too deep"
    );
}

#[test]
fn huge_declared_lengths_are_refused_without_allocating() {
    let corpus: &[(&str, &[u8])] = &[
        ("array32", &[0xdd, 0xff, 0xff, 0xff, 0xff]),
        ("map32", &[0xdf, 0xff, 0xff, 0xff, 0xff]),
        ("str32", &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']),
        ("bin32", &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]),
        ("ext32", &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]),
        // {"command": [1, [...4294967295 elements]]}
        (
            "inner array32",
            &[
                0x81, 0xa7, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0x92, 0x01, 0xdd, 0xff, 0xff,
                0xff, 0xff,
            ],
        ),
        // {"hello": [1, str32 of 4294967295 bytes]}
        (
            "inner str32",
            &[
                0x81, 0xa5, b'h', b'e', b'l', b'l', b'o', 0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
    ];
    for (label, bytes) in corpus {
        assert_refused(label, bytes);
    }
}

#[test]
fn unknown_tags_and_wrong_types_are_typed_errors() {
    let unknown_variant = encode(&std::collections::BTreeMap::from([(
        "teleport",
        vec![1, 2],
    )]))
    .expect("encodes");
    let err = decode::<ClientMessage>(&unknown_variant).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Invalid { detail, .. } if detail.contains("teleport")),
        "an unknown variant should be named in the error, got {err:?}"
    );
    // {"hello": ["one", "demo"]}: a string where the version number belongs.
    let wrong_type = encode(&std::collections::BTreeMap::from([(
        "hello",
        vec!["one", "demo"],
    )]))
    .expect("encodes");
    let err = decode::<ClientMessage>(&wrong_type).unwrap_err();
    assert!(
        matches!(err, DecodeError::WrongType { .. }),
        "a string for a number should be a wrong type, got {err:?}"
    );
    // Reserved marker 0xc1, a bare nil, an empty input, trailing bytes, invalid UTF-8.
    assert_refused("reserved marker", &[0xc1]);
    assert_refused("nil", &[0xc0]);
    assert_refused("empty", &[]);
    let mut trailing = encode(&ClientMessage::Leave).expect("encodes");
    trailing.push(0x00);
    assert!(matches!(
        decode::<ClientMessage>(&trailing).unwrap_err(),
        DecodeError::TrailingBytes { extra: 1, .. }
    ));
    assert_refused(
        "bad utf8",
        &[
            0x81, 0xa5, b'h', b'e', b'l', b'l', b'o', 0x92, 0x01, 0xa2, 0xff, 0xfe,
        ],
    );
    // A negative number where an unsigned id belongs; a too-large number for u32.
    assert_refused(
        "negative id",
        &[0x81, 0xa3, b'a', b'c', b'k', 0x92, 0xff, 0x01],
    );
    assert_refused(
        "u64 for u32",
        &[
            0x81, 0xa3, b'a', b'c', b'k', 0x92, 0xcf, 1, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ],
    );
}

#[test]
fn frames_over_the_client_limit_are_refused_before_decoding() {
    let big = ClientMessage::Join {
        match_id: None,
        name: "x".repeat(5000),
    };
    let bytes = encode(&big).expect("encodes");
    assert!(matches!(
        decode::<ClientMessage>(&bytes).unwrap_err(),
        DecodeError::TooLarge { max: 4096, .. }
    ));
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        ".{0,40}".prop_map(|name| Command::Join { name }),
        Just(Command::Leave),
        (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(|(e, vx, vy)| Command::Move {
            entity: EntityId(e),
            vx,
            vy
        }),
        (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(|(e, dx, dy)| Command::Fire {
            entity: EntityId(e),
            dx,
            dy
        }),
        (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(|(e, dx, dy)| Command::Drift {
            entity: EntityId(e),
            dx,
            dy
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_commands_round_trip(id in any::<u32>(), command in arb_command()) {
        let message = ClientMessage::Command { id: CommandId(id), command };
        let bytes = encode(&message).expect("encodes");
        let back: ClientMessage = decode_with(&bytes, DecodeLimits::TRUSTED).expect("decodes");
        prop_assert_eq!(back, message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<ClientMessage>(&bytes);
        let _ = decode::<ServerMessage>(&bytes);
        let _ = decode::<SpectatorMessage>(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(index in 0usize..11, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let messages = client_messages();
        let mut bytes = encode(&messages[index % messages.len()].1).expect("encodes");
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let _ = decode::<ClientMessage>(&bytes);
    }
}

/// A server keeps hundreds of ticks of events per match (the spectator ring, the resume
/// window) and queues commands by the thousand, so the enums stay as narrow as their built-in
/// variants: a game's own value is boxed, not inline.
#[cfg(target_pointer_width = "64")]
#[test]
fn values_kept_by_the_thousand_stay_narrow() {
    use std::mem::size_of;
    assert!(size_of::<Event>() <= 72, "Event: {}", size_of::<Event>());
    assert!(
        size_of::<Command>() <= 24,
        "Command: {}",
        size_of::<Command>()
    );
    assert!(
        size_of::<ComponentValue>() <= 32,
        "ComponentValue: {}",
        size_of::<ComponentValue>()
    );
}
