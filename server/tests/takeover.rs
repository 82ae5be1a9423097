//! A match core rebuilt from another core's records (a cluster takeover), with no I/O: it
//! continues exactly as the original would, knows its players' resume tokens, answers a
//! command sent again as a duplicate, re-sends the deltas a client missed byte for byte, and
//! gives a snapshot to a client that saw ticks the records do not hold.

use tickforge_protocol::{
    Command, CommandId, DriftConfig, GameConfig, MatchId, PlayerId, Seq, ServerMessage, Tick,
    TickEnd, decode_server,
};
use tickforge_server::log::TickRecords;
use tickforge_server::matches::Inbound;
use tickforge_server::matches::core::{CoreConfig, MatchCore, TickInput, TickOutput};
use tickforge_server::sim::MatchSetup;

const ID: MatchId = MatchId(9);

fn core() -> MatchCore {
    let setup = MatchSetup {
        match_id: ID,
        seed: 5,
        tick_rate_hz: 60,
        game: GameConfig::Drift(DriftConfig::default()),
    };
    let sim = tickforge_server::game::builtin()
        .sim(&setup)
        .expect("drift builds");
    let config = CoreConfig {
        resume_window_ticks: 20,
        grace_ticks: 600,
        slow_ticks: 60,
        idle_ticks: 6000,
        snapshot_every_ticks: 10,
        token_key: [3; 32],
    };
    MatchCore::new(ID, sim, config).expect("the core builds")
}

fn drift(player: u32, id: u32, tick: u64) -> Inbound {
    Inbound {
        player: PlayerId(player),
        conn: u64::from(player),
        id: CommandId(id),
        command: Command::Drift {
            entity: tickforge_protocol::EntityId(player),
            dx: (tick % 7) as i32 - 3,
            dy: (tick % 5) as i32 - 2,
        },
    }
}

fn records(output: &TickOutput) -> TickRecords {
    let b = &output.records;
    TickRecords {
        tick: b.tick,
        offset: 0,
        next_offset: 0,
        events: b.events.clone(),
        rejections: b.rejections.clone(),
        end: TickEnd {
            tick: b.tick,
            hash: b.hash,
            parts: b.parts.clone(),
        },
        snapshot: b.snapshot.as_deref().cloned(),
    }
}

/// The names of a core's state-hash parts, as a replay header lists them.
fn part_names(core: &MatchCore) -> Vec<String> {
    core.sim()
        .hash_part_names()
        .into_iter()
        .map(String::from)
        .collect()
}

#[test]
fn a_core_rebuilt_from_the_records_continues_exactly() {
    let mut original = core();
    let parts = part_names(&original);
    original.join(1, "ana".into());
    original.join(2, "bo".into());
    let mut recorded = Vec::new();
    let mut deltas = Vec::new();
    let mut tokens = Vec::new();
    let mut next_id = [1u32, 1u32];
    for t in 1..=40u64 {
        let mut commands = Vec::new();
        if t > 1 {
            for p in 1..=2u32 {
                // Entities: drift gives each player an entity of their own; look it up.
                let mut c = drift(p, next_id[p as usize - 1], t);
                if let Command::Drift { entity, .. } = &mut c.command {
                    *entity = original.sim().player_entity(PlayerId(p)).expect("seated");
                }
                next_id[p as usize - 1] += 1;
                commands.push(c);
            }
        }
        let output = original.tick(TickInput {
            commands,
            ..TickInput::default()
        });
        for join in &output.joins {
            let (_, joined) = join.result.as_ref().expect("seated");
            if let Ok(ServerMessage::Joined { resume_token, .. }) = decode_server(joined) {
                tokens.push(resume_token);
            }
        }
        recorded.push(records(&output));
        deltas.push((output.tick, output.delta.clone()));
    }
    assert_eq!(tokens.len(), 2);

    let mut taken = core();
    for t in &recorded {
        taken
            .replay(t, &parts)
            .expect("every recorded tick re-applies");
    }
    taken.moved();
    assert_eq!(taken.last_tick(), Tick(40));
    assert_eq!(taken.players(), 2);

    // Player 1 saw tick 30: it gets ticks 31..=40, exactly the frames the original sent.
    let seq_at_30 = recorded[29].events.last().map_or_else(
        || {
            recorded[..30]
                .iter()
                .flat_map(|t| &t.events)
                .last()
                .map_or(Seq(0), |e| e.seq)
        },
        |e| e.seq,
    );
    let resumed = taken
        .resume(11, &tokens[0], Tick(30), seq_at_30)
        .expect("the token holds on the new owner");
    let sent: Vec<&[u8]> = resumed.frames[1..].iter().map(|f| f.as_ref()).collect();
    let expected: Vec<&[u8]> = deltas[30..].iter().map(|(_, d)| d.as_ref()).collect();
    assert_eq!(sent, expected, "the missed deltas, byte for byte");

    // Player 2 saw tick 43 from the old owner, which the records never got: a snapshot.
    let resumed = taken
        .resume(12, &tokens[1], Tick(43), Seq(1000))
        .expect("resumes");
    assert!(matches!(
        decode_server(resumed.frames.last().expect("frames")),
        Ok(ServerMessage::Snapshot(s)) if s.tick == Tick(40)
    ));

    // A command decided before the move, sent again, is a duplicate; new ones apply, and both
    // cores, given the same inputs, hash the same.
    let entity = taken.sim().player_entity(PlayerId(1)).expect("seated");
    let mut again = drift(1, next_id[0] - 1, 41);
    if let Command::Drift { entity: e, .. } = &mut again.command {
        *e = entity;
    }
    again.conn = 11;
    let mut fresh = drift(1, next_id[0], 41);
    if let Command::Drift { entity: e, .. } = &mut fresh.command {
        *e = entity;
    }
    fresh.conn = 11;
    let after = taken.tick(TickInput {
        commands: vec![again, fresh],
        ..TickInput::default()
    });
    assert_eq!(
        after.stats.duplicates, 1,
        "the command sent again is a duplicate"
    );
    let mut fresh = drift(1, next_id[0], 41);
    if let Command::Drift { entity: e, .. } = &mut fresh.command {
        *e = entity;
    }
    let same = original.tick(TickInput {
        commands: vec![fresh],
        ..TickInput::default()
    });
    assert_eq!(after.records.hash, same.records.hash);
}

#[test]
fn a_record_that_does_not_re_simulate_is_refused() {
    let mut original = core();
    let parts = part_names(&original);
    original.join(1, "ana".into());
    let mut recorded: Vec<TickRecords> = (0..5)
        .map(|_| records(&original.tick(TickInput::default())))
        .collect();
    recorded[3].end.hash = tickforge_protocol::StateHash(recorded[3].end.hash.0 ^ 1);
    let mut taken = core();
    let mut failed = None;
    for t in &recorded {
        if let Err(d) = taken.replay(t, &parts) {
            failed = Some(d.tick);
            break;
        }
    }
    assert_eq!(failed, Some(Tick(4)));
}
