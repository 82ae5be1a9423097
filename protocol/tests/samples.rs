//! One sample of every message kind, shared by the codec tests.

use tickforge_protocol::*;

pub fn event(kind: EventKind) -> Event {
    Event {
        match_id: MatchId(5),
        seq: Seq(41),
        tick: Tick(121),
        v: EVENT_SCHEMA_VERSION,
        cause: Cause::Rules,
        kind,
    }
}

pub fn client_messages() -> Vec<(&'static str, ClientMessage)> {
    vec![
        (
            "hello",
            ClientMessage::Hello {
                protocol: 2,
                client: "demo".into(),
            },
        ),
        (
            "join",
            ClientMessage::Join {
                match_id: Some(MatchId(7)),
                name: "ana".into(),
            },
        ),
        (
            "quick_join",
            ClientMessage::Join {
                match_id: None,
                name: "bo".into(),
            },
        ),
        (
            "cmd_join",
            ClientMessage::Command {
                id: CommandId(1),
                command: Command::Join { name: "ana".into() },
            },
        ),
        (
            "cmd_leave",
            ClientMessage::Command {
                id: CommandId(2),
                command: Command::Leave,
            },
        ),
        (
            "cmd_move",
            ClientMessage::Command {
                id: CommandId(3),
                command: Command::Move {
                    entity: EntityId(2),
                    vx: 50,
                    vy: -20,
                },
            },
        ),
        (
            "cmd_fire",
            ClientMessage::Command {
                id: CommandId(4),
                command: Command::Fire {
                    entity: EntityId(2),
                    dx: 1,
                    dy: 0,
                },
            },
        ),
        (
            "cmd_drift",
            ClientMessage::Command {
                id: CommandId(70_000),
                command: Command::Drift {
                    entity: EntityId(300),
                    dx: -1000,
                    dy: 1000,
                },
            },
        ),
        (
            "resume",
            ClientMessage::Resume {
                token: "tok".into(),
                last_tick: Tick(120),
                last_seq: Seq(99),
            },
        ),
        ("ping", ClientMessage::Ping { nonce: u64::MAX }),
        ("leave", ClientMessage::Leave),
    ]
}

pub fn all_components() -> Vec<ComponentValue> {
    vec![
        ComponentValue::Player {
            player: PlayerId(1),
            name: "ana".into(),
        },
        ComponentValue::Position { x: -1, y: 40_000 },
        ComponentValue::Velocity { vx: 100, vy: -100 },
        ComponentValue::Health {
            hp: 75,
            respawn_at: None,
        },
        ComponentValue::Health {
            hp: 0,
            respawn_at: Some(Tick(240)),
        },
        ComponentValue::Score {
            kills: 3,
            deaths: 1,
        },
        ComponentValue::Cooldown {
            ready_at: Tick(135),
        },
        ComponentValue::Projectile {
            shooter: EntityId(2),
            fired_at: Tick(121),
            expires_at: Tick(211),
        },
        ComponentValue::Pickup { heal: 25 },
        ComponentValue::LastInput {
            input: CommandId(17),
        },
        ComponentValue::MatchState {
            ends_at: Tick(36_000),
            ended: Some(EndReason::ScoreLimit),
            winner: Some(PlayerId(1)),
        },
        ComponentValue::PickupTimer { next_at: Tick(300) },
    ]
}

pub fn server_messages() -> Vec<(&'static str, ServerMessage)> {
    let snapshot = Snapshot {
        tick: Tick(120),
        seq: Seq(39),
        entities: vec![EntityState {
            id: EntityId(2),
            components: all_components(),
        }],
    };
    vec![
        (
            "welcome",
            ServerMessage::Welcome {
                protocol: 2,
                server: "tickforge".into(),
            },
        ),
        (
            "joined",
            ServerMessage::Joined {
                match_id: MatchId(7),
                player: PlayerId(1),
                entity: EntityId(2),
                tick_rate_hz: 60,
                resume_token: "tok".into(),
                game: "drift".into(),
                rules: GameConfig::Drift(DriftConfig::default()),
                components: vec!["player".into(), "pos".into(), "input".into()],
                snapshot: snapshot.clone(),
            },
        ),
        (
            "resumed",
            ServerMessage::Resumed {
                match_id: MatchId(7),
                player: PlayerId(1),
                entity: EntityId(2),
                from_seq: Seq(99),
            },
        ),
        (
            "rejected",
            ServerMessage::Rejected {
                id: CommandId(4),
                rule: Rule::RateLimited,
                detail: "over 120 commands per second".into(),
            },
        ),
        ("snapshot", ServerMessage::Snapshot(snapshot)),
        (
            "match_ended",
            ServerMessage::MatchEnded {
                reason: EndReason::TimeLimit,
                winner: None,
            },
        ),
        ("pong", ServerMessage::Pong { nonce: 9 }),
        (
            "error",
            ServerMessage::Error {
                code: 4000,
                reason: "protocol_version_mismatch".into(),
            },
        ),
    ]
}

pub fn all_event_kinds() -> Vec<EventKind> {
    vec![
        EventKind::PlayerJoined {
            player: PlayerId(1),
            entity: EntityId(2),
            name: "ana".into(),
        },
        EventKind::PlayerLeft {
            player: PlayerId(1),
            entity: EntityId(2),
        },
        EventKind::PlayerSpawned {
            entity: EntityId(2),
            x: 500,
            y: 39_500,
        },
        EventKind::PlayerSteered {
            entity: EntityId(2),
            vx: -70,
            vy: 70,
        },
        EventKind::ProjectileFired {
            projectile: EntityId(10),
            shooter: EntityId(2),
            x: 1,
            y: 2,
            vx: 400,
            vy: 0,
        },
        EventKind::PlayerHit {
            target: EntityId(3),
            projectile: EntityId(10),
            damage: 25,
            hp_left: 50,
        },
        EventKind::PlayerKilled {
            victim: EntityId(3),
            killer: Some(EntityId(2)),
            respawn_at: Tick(241),
        },
        EventKind::ProjectileExpired {
            projectile: EntityId(11),
        },
        EventKind::PickupSpawned {
            pickup: EntityId(12),
            x: 100,
            y: 200,
            heal: 25,
        },
        EventKind::PickupCollected {
            pickup: EntityId(12),
            entity: EntityId(2),
            hp_after: 100,
        },
        EventKind::PlayerDrifted {
            entity: EntityId(2),
            dx: 5,
            dy: -5,
            input: CommandId(8),
        },
        EventKind::MatchEnded {
            reason: EndReason::ScoreLimit,
            winner: Some(PlayerId(1)),
        },
    ]
}

pub fn spectator_messages() -> Vec<(&'static str, SpectatorMessage)> {
    let mut out: Vec<(&'static str, SpectatorMessage)> = all_event_kinds()
        .into_iter()
        .map(|kind| {
            let name = EventKind::NAMES
                .iter()
                .copied()
                .find(|n| *n == kind.name())
                .expect("a kind of the reference games");
            (
                name,
                SpectatorMessage::Tick {
                    tick: Tick(121),
                    hash: StateHash(0x0123_4567_89ab_cdef),
                    events: vec![event(kind)],
                },
            )
        })
        .collect();
    out.push((
        "command_event",
        SpectatorMessage::Tick {
            tick: Tick(121),
            hash: StateHash(0x0123_4567_89ab_cdef),
            events: vec![Event {
                cause: Cause::Command {
                    player: PlayerId(1),
                    id: CommandId(3),
                },
                ..event(EventKind::PlayerSteered {
                    entity: EntityId(2),
                    vx: 50,
                    vy: -20,
                })
            }],
        },
    ));
    out.push((
        "quiet_tick",
        SpectatorMessage::Tick {
            tick: Tick(122),
            hash: StateHash(0xfedc_ba98_7654_3210),
            events: vec![],
        },
    ));
    out.push(("live", SpectatorMessage::Live { seq: Seq(41) }));
    out.push((
        "ended",
        SpectatorMessage::Ended {
            last_seq: Seq(9000),
        },
    ));
    out
}

/// The component table of the tick-frame samples (drift's, and arena's velocity and health).
pub fn sample_table() -> compact::ComponentTable {
    compact::ComponentTable::new(["player", "pos", "vel", "hp", "input"]).expect("a table")
}

/// The world the tick-frame samples start from: two players, entities 2 and 3.
pub fn sample_start() -> Snapshot {
    Snapshot {
        tick: Tick(120),
        seq: Seq(39),
        entities: vec![
            EntityState {
                id: EntityId(2),
                components: vec![
                    ComponentValue::Player {
                        player: PlayerId(1),
                        name: "ana".into(),
                    },
                    ComponentValue::Position { x: 1000, y: 2000 },
                    ComponentValue::LastInput {
                        input: CommandId(7),
                    },
                ],
            },
            EntityState {
                id: EntityId(3),
                components: vec![
                    ComponentValue::Player {
                        player: PlayerId(2),
                        name: "bo".into(),
                    },
                    ComponentValue::Position { x: 5000, y: 500 },
                    ComponentValue::LastInput {
                        input: CommandId(3),
                    },
                ],
            },
        ],
    }
}

/// Tick frames, each encoded against the world the previous one left (from
/// [`sample_start`]): name, the player's part, and the delta.
pub fn tick_frames() -> Vec<(&'static str, compact::PlayerPart, Delta)> {
    let pos = |x, y| ComponentValue::Position { x, y };
    let input = |i| ComponentValue::LastInput {
        input: CommandId(i),
    };
    vec![
        (
            "quiet",
            compact::PlayerPart::default(),
            Delta {
                tick: Tick(121),
                seq: Seq(39),
                changed: vec![],
                removed: vec![],
            },
        ),
        (
            "drift",
            compact::PlayerPart {
                acks: vec![CommandId(8)],
                ..Default::default()
            },
            Delta {
                tick: Tick(122),
                seq: Seq(41),
                changed: vec![
                    EntityState {
                        id: EntityId(2),
                        components: vec![pos(1005, 1995), input(8)],
                    },
                    EntityState {
                        id: EntityId(3),
                        components: vec![pos(4880, 620), input(4)],
                    },
                ],
                removed: vec![],
            },
        ),
        (
            "spawn_and_remove",
            compact::PlayerPart {
                acks: vec![CommandId(9), CommandId(10)],
                duplicates: vec![compact::Duplicate {
                    id: CommandId(8),
                    tick: Tick(122),
                }],
                rejections: vec![compact::Rejected {
                    id: CommandId(11),
                    rule: Rule::SpeedLimit,
                    detail: "too fast".into(),
                }],
            },
            Delta {
                tick: Tick(123),
                seq: Seq(43),
                changed: vec![EntityState {
                    id: EntityId(9),
                    components: vec![
                        pos(-40, 70),
                        ComponentValue::Velocity { vx: 400, vy: 0 },
                        ComponentValue::Health {
                            hp: 100,
                            respawn_at: None,
                        },
                    ],
                }],
                removed: vec![EntityId(3)],
            },
        ),
        (
            "motion",
            compact::PlayerPart::default(),
            Delta {
                tick: Tick(124),
                seq: Seq(43),
                changed: vec![
                    EntityState {
                        id: EntityId(2),
                        components: vec![pos(1010, 1990)],
                    },
                    EntityState {
                        id: EntityId(9),
                        components: vec![
                            pos(350, 80),
                            ComponentValue::Velocity { vx: 390, vy: 10 },
                        ],
                    },
                ],
                removed: vec![],
            },
        ),
    ]
}

/// Encode the sample frames in order, from the sample world.
pub fn sample_frames() -> Vec<(&'static str, Vec<u8>, compact::PlayerPart, Delta)> {
    let mut world = compact::World::new(sample_table());
    world
        .apply_snapshot(&sample_start())
        .expect("the start fits");
    let mut seq = sample_start().seq;
    tick_frames()
        .into_iter()
        .map(|(name, part, delta)| {
            let mut body = Vec::new();
            world.encode_delta(&delta, &mut body).expect("encodes");
            let mut frame = Vec::new();
            let events = delta.seq.0 - seq.0;
            seq = delta.seq;
            compact::write_tick_frame(&mut frame, &part, delta.tick, events, &body);
            (name, frame, part, delta)
        })
        .collect()
}
