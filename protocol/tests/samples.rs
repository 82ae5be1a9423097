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
                protocol: 1,
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

pub fn sample_delta() -> Delta {
    Delta {
        tick: Tick(121),
        seq: Seq(40),
        changed: vec![EntityState {
            id: EntityId(2),
            components: vec![ComponentValue::Position { x: 1500, y: -300 }],
        }],
        removed: vec![EntityId(9)],
    }
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
                protocol: 1,
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
            "ack",
            ServerMessage::Ack {
                id: CommandId(3),
                tick: Tick(120),
                duplicate: false,
            },
        ),
        (
            "rejected",
            ServerMessage::Rejected {
                id: CommandId(4),
                rule: Rule::Cooldown,
                detail: "cooling down".into(),
            },
        ),
        ("delta", ServerMessage::Delta(sample_delta())),
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
            (name, SpectatorMessage::Event(event(kind)))
        })
        .collect();
    out.push((
        "command_event",
        SpectatorMessage::Event(Event {
            cause: Cause::Command {
                player: PlayerId(1),
                id: CommandId(3),
            },
            ..event(EventKind::PlayerSteered {
                entity: EntityId(2),
                vx: 50,
                vy: -20,
            })
        }),
    ));
    out.push((
        "tick_end",
        SpectatorMessage::TickEnd {
            tick: Tick(121),
            hash: StateHash(0x0123_4567_89ab_cdef),
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
