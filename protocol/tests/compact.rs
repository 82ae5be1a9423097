//! Protocol 2's tick frames: golden bytes pin them; encode∘decode of any sequence of deltas
//! reproduces the world exactly; crafted frames give typed errors, never a panic, a hang or an
//! allocation past their size, and leave the world as it was.

#[allow(dead_code)]
mod samples;

use proptest::prelude::*;
use samples::*;
use tickforge_protocol::compact::{self, ComponentTable, PlayerPart, TickFrame, World};

use tickforge_protocol::*;

/// Golden bytes. A change here is a wire-format change: bump PROTOCOL_VERSION and update §9
/// of docs/PROTOCOL.md, which shows these frames byte by byte.
#[test]
fn golden_bytes_pin_the_tick_frames() {
    let golden: &[(&str, &str)] = &[
        ("quiet", "1079000000"),
        ("drift", "117a020108020002003242e11d91002f50"),
        (
            "spawn_and_remove",
            "177b0202090001087a0117930bab73706565645f6c696d6974a8746f6f206661737401010903dce1896054800c40200300",
        ),
        ("motion", "107c0002000203130c4181905098050a"),
    ];
    let mut report = String::new();
    let frames = sample_frames();
    for (name, frame, _, _) in &frames {
        let hex = hex::encode(frame);
        match golden.iter().find(|(g, _)| g == name) {
            Some((_, want)) if *want == hex => {}
            Some((_, want)) => {
                report.push_str(&format!("{name}: pinned {want}\n{name}: now    {hex}\n"))
            }
            None => report.push_str(&format!("        (\"{name}\", \"{hex}\"),\n")),
        }
    }
    assert!(
        golden.len() == frames.len(),
        "every sample frame should have pinned bytes; missing:\n{report}"
    );
    assert!(report.is_empty(), "the tick frame drifted:\n{report}");
}

#[test]
fn the_sample_frames_decode_to_what_was_encoded() {
    let mut world = World::new(sample_table());
    world
        .apply_snapshot(&sample_start())
        .expect("the start fits");
    let mut seq = sample_start().seq;
    for (name, frame, part, delta) in sample_frames() {
        let ServerMessage::Tick(read) = decode_server(&frame).expect("a tick frame") else {
            panic!("{name}: not read as a tick frame");
        };
        assert_eq!(read.tick, delta.tick, "{name}");
        assert_eq!(read.acks, part.acks, "{name}");
        assert_eq!(read.duplicates, part.duplicates, "{name}");
        assert_eq!(read.rejections, part.rejections, "{name}");
        seq = Seq(seq.0 + read.events);
        let back = world
            .decode_delta(&read.delta, read.tick, seq)
            .expect("decodes");
        assert_eq!(back, delta, "{name}");
    }
    // Entity 3 was removed; 9 arrived with a position, a velocity and health, then moved by
    // its new velocity (its position sent against that motion).
    assert_eq!(world.len(), 2);
    assert_eq!(
        world.get_named(EntityId(9), "vel"),
        Some(&ComponentValue::Velocity { vx: 390, vy: 10 })
    );
    assert_eq!(
        world.get_named(EntityId(9), "pos"),
        Some(&ComponentValue::Position { x: 350, y: 80 })
    );
}

#[test]
fn a_drift_tick_of_eight_players_fits_forty_bytes() {
    // The load benchmark's tick: eight players, each stepping up to ±120 mm an axis and
    // acknowledged once.
    let table = ComponentTable::new(["player", "pos", "input"]).expect("a table");
    let mut world = World::new(table);
    let start: Vec<EntityState> = (1..=8)
        .map(|i| EntityState {
            id: EntityId(i),
            components: vec![
                ComponentValue::Player {
                    player: PlayerId(i),
                    name: format!("bot{i}"),
                },
                ComponentValue::Position {
                    x: 30_000 + i as i32 * 977,
                    y: 20_000,
                },
                ComponentValue::LastInput {
                    input: CommandId(5000),
                },
            ],
        })
        .collect();
    world.reset(&start).expect("fits");
    let delta = Delta {
        tick: Tick(40_000),
        seq: Seq(320_008),
        changed: (1..=8)
            .map(|i| EntityState {
                id: EntityId(i),
                components: vec![
                    ComponentValue::Position {
                        x: 30_000 + i as i32 * 977 + [120, -120, 7, -64][i as usize % 4],
                        y: 20_000 - [-119, 100, 64, -3][i as usize % 4],
                    },
                    ComponentValue::LastInput {
                        input: CommandId(5001),
                    },
                ],
            })
            .collect(),
        removed: vec![],
    };
    let mut body = Vec::new();
    world.encode_delta(&delta, &mut body).expect("encodes");
    let mut frame = Vec::new();
    let part = PlayerPart {
        acks: vec![CommandId(5001)],
        ..Default::default()
    };
    compact::write_tick_frame(&mut frame, &part, delta.tick, 8, &body);
    assert!(
        frame.len() <= 40,
        "{} bytes: {}",
        frame.len(),
        hex::encode(&frame)
    );
}

#[test]
fn every_cut_of_a_frame_is_refused_and_leaves_the_world_alone() {
    let frames = sample_frames();
    let (_, frame, _, _) = &frames[2];
    let mut world = World::new(sample_table());
    world.apply_snapshot(&sample_start()).expect("fits");
    // The world the third frame applies to.
    for (_, f, _, d) in &frames[..2] {
        let ServerMessage::Tick(t) = decode_server(f).expect("reads") else {
            panic!()
        };
        world
            .decode_delta(&t.delta, d.tick, d.seq)
            .expect("decodes");
    }
    let before = world.clone();
    for cut in 1..frame.len() {
        let outcome = decode_server(&frame[..cut]).and_then(|m| match m {
            ServerMessage::Tick(t) => world.decode_delta(&t.delta, t.tick, Seq(0)).map(|_| ()),
            _ => Ok(()),
        });
        assert!(
            outcome.is_err(),
            "a frame cut at {cut} of {} was taken",
            frame.len()
        );
        assert_eq!(
            world, before,
            "a refused frame changed the world (cut at {cut})"
        );
    }
}

#[test]
fn crafted_counts_are_refused_without_allocating() {
    let mut world = World::new(sample_table());
    world.apply_snapshot(&sample_start()).expect("fits");
    // Four billion changed entities in three bytes; as many removed ones; a width of 100 bits.
    for body in [
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01],
        vec![0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01],
        vec![0x02, 0x00, 0x01, 0x64],
        vec![0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ] {
        assert!(
            world.decode_delta(&body, Tick(121), Seq(0)).is_err(),
            "{} was taken",
            hex::encode(&body)
        );
    }
    let mut frame = vec![compact::TICK_FRAME | 0x07, 0x01, 0x00];
    frame.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_server(&frame).is_err());
}

/// One entity's public components, drawn at random.
fn arb_components() -> impl Strategy<Value = Vec<ComponentValue>> {
    (
        proptest::option::of((any::<u32>(), "[a-z]{0,6}")),
        proptest::option::of((any::<i32>(), any::<i32>())),
        proptest::option::of((-500i32..500, -500i32..500)),
        proptest::option::of((any::<i32>(), proptest::option::of(any::<u64>()))),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(player, pos, vel, hp, input)| {
            let mut out = Vec::new();
            if let Some((p, name)) = player {
                out.push(ComponentValue::Player {
                    player: PlayerId(p),
                    name,
                });
            }
            if let Some((x, y)) = pos {
                out.push(ComponentValue::Position { x, y });
            }
            if let Some((vx, vy)) = vel {
                out.push(ComponentValue::Velocity { vx, vy });
            }
            if let Some((hp, respawn)) = hp {
                out.push(ComponentValue::Health {
                    hp,
                    respawn_at: respawn.map(Tick),
                });
            }
            if let Some(i) = input {
                out.push(ComponentValue::LastInput {
                    input: CommandId(i),
                });
            }
            out
        })
}

/// A sequence of deltas over entity ids 0..40: each changes some entities' components and
/// removes some.
/// One drawn delta: (entity id, its changed components) pairs, and the ids removed.
type DrawnDelta = (Vec<(u32, Vec<ComponentValue>)>, Vec<u32>);

fn arb_deltas() -> impl Strategy<Value = Vec<DrawnDelta>> {
    proptest::collection::vec(
        (
            proptest::collection::btree_map(0u32..40, arb_components(), 0..12)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
            proptest::collection::btree_set(0u32..40, 0..4)
                .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
        ),
        1..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_reproduces_every_delta_and_the_world(deltas in arb_deltas()) {
        let mut server = World::new(sample_table());
        let mut client = World::new(sample_table());
        // A client that keeps only the world (a bot), decoding without building the delta.
        let mut quiet = World::new(sample_table());
        for (t, (changed, removed)) in deltas.into_iter().enumerate() {
            let changed: Vec<_> = changed.into_iter().filter(|(_, c)| !c.is_empty()).collect();
            let changed_ids: Vec<EntityId> = changed.iter().map(|(id, _)| EntityId(*id)).collect();
            let delta = Delta {
                tick: Tick(t as u64 + 1),
                seq: Seq(t as u64),
                changed: changed
                    .into_iter()
                    .map(|(id, components)| EntityState { id: EntityId(id), components })
                    .collect(),
                removed: removed
                    .into_iter()
                    .map(EntityId)
                    .filter(|id| server.states().iter().any(|e| e.id == *id) || changed_ids.contains(id))
                    .collect(),
            };
            let mut body = Vec::new();
            server.encode_delta(&delta, &mut body).expect("encodes");
            let mut frame = Vec::new();
            compact::write_tick_frame(&mut frame, &PlayerPart::default(), delta.tick, 1, &body);
            let ServerMessage::Tick(TickFrame { delta: read, .. }) = decode_server(&frame).expect("reads") else {
                panic!("not a tick frame");
            };
            let back = client.decode_delta(&read, delta.tick, delta.seq).expect("decodes");
            quiet.apply_delta(&read).expect("applies");
            prop_assert_eq!(&back, &delta);
            prop_assert_eq!(&client, &server);
            prop_assert_eq!(&quiet, &server);
        }
    }

    #[test]
    fn mutated_frames_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), which in 0usize..3) {
        let frames = sample_frames();
        let mut world = World::new(sample_table());
        world.apply_snapshot(&sample_start()).expect("fits");
        let mut bytes = frames[which].1.clone();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        if let Ok(ServerMessage::Tick(t)) = decode_server(&bytes) {
            let _ = world.decode_delta(&t.delta, t.tick, Seq(0));
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut world = World::new(sample_table());
        world.apply_snapshot(&sample_start()).expect("fits");
        let _ = world.decode_delta(&bytes, Tick(121), Seq(0));
        let mut frame = vec![compact::TICK_FRAME | 7];
        frame.extend(&bytes);
        let _ = decode_server(&frame);
    }
}
