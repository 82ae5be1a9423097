//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`). They live here so that the
//! corpora kept in `fuzz/corpus/` are replayed by a plain `cargo test`
//! (`tests/tests/fuzz_corpus.rs`) through exactly the code the fuzzer ran. Each must never
//! panic, whatever the bytes.

use tickforge_protocol::{
    ClientMessage, Command, CommandId, DecodeLimits, EntityId, GameConfig, MatchId, PlayerId,
    ServerMessage, SpectatorMessage, decode_with, encode,
};
use tickforge_server::log::format::DEFAULT_MAX_RECORD_BYTES;
use tickforge_server::log::scan;
use tickforge_server::sim::{CommandInput, MatchSetup};

/// The decoder with the server's client limits: every input is a message or a typed error,
/// and whatever decodes re-encodes to something that decodes to the same message.
pub fn decode_message(bytes: &[u8]) {
    let limits = DecodeLimits::CLIENT;
    if let Ok(message) = decode_with::<ClientMessage>(bytes, limits) {
        let again = encode(&message).expect("a decoded message encodes");
        let back: ClientMessage =
            decode_with(&again, DecodeLimits::TRUSTED).expect("and decodes again");
        assert_eq!(back, message, "decode ∘ encode is the identity");
    }
    let _ = decode_with::<ServerMessage>(bytes, limits);
    let _ = decode_with::<SpectatorMessage>(bytes, limits);
}

/// Commands decoded from the bytes, from players 1–4 (some joined, some not), against a live
/// arena or drift world: the validator never panics, rejected commands leave the world as it
/// was, and the world stays deterministic (a twin fed the same commands agrees).
pub fn validate_commands(bytes: &[u8]) {
    let Some((&selector, rest)) = bytes.split_first() else {
        return;
    };
    let game = if selector % 2 == 0 { "arena" } else { "drift" };
    let setup = MatchSetup {
        match_id: MatchId(1),
        seed: u64::from(selector),
        tick_rate_hz: 60,
        game: GameConfig::default_for(game).expect("known"),
    };
    let games = tickforge_server::game::builtin();
    let (mut sim, mut twin) = (
        games.sim(&setup).expect("builds"),
        games.sim(&setup).expect("builds"),
    );
    let joins: Vec<CommandInput> = (1..=3)
        .map(|p| CommandInput {
            player: PlayerId(p),
            id: CommandId(0),
            command: Command::Join {
                name: format!("p{p}"),
            },
        })
        .collect();
    sim.run_tick(joins.clone());
    twin.run_tick(joins);
    for (n, chunk) in rest.chunks(13).enumerate() {
        if chunk.len() < 13 {
            break;
        }
        let word =
            |i: usize| i32::from_le_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]]);
        let player = PlayerId(u32::from(chunk[0] % 5));
        let entity = EntityId(u32::from(chunk[1] % 16));
        let (a, b) = (word(2) % 400, word(6) % 400);
        let command = match chunk[10] % 6 {
            0 => Command::Move {
                entity,
                vx: a,
                vy: b,
            },
            1 => Command::Fire {
                entity,
                dx: a,
                dy: b,
            },
            2 => Command::Drift {
                entity,
                dx: word(2),
                dy: word(6),
            },
            3 => Command::Leave,
            4 => Command::Join {
                name: String::from_utf8_lossy(&chunk[11..]).into_owned(),
            },
            _ => Command::Move {
                entity,
                vx: word(2),
                vy: word(6),
            },
        };
        let input = CommandInput {
            player,
            id: CommandId(n as u32 + 1),
            command,
        };
        let a = sim.run_tick(vec![input.clone()]);
        let b = twin.run_tick(vec![input]);
        assert_eq!(a, b, "two worlds fed the same command agree");
        if !a.rejections.is_empty() {
            assert!(
                a.events.iter().all(|e| e.cause.is_derived()),
                "a rejected command makes no event"
            );
        }
    }
}

/// Scanning and reading arbitrary bytes as a replay file never panics; what it reports as whole
/// ticks reads back.
pub fn recover_log(bytes: &[u8]) {
    let Ok(s) = scan::scan(bytes, DEFAULT_MAX_RECORD_BYTES) else {
        return;
    };
    assert!(
        s.whole_end as usize <= bytes.len(),
        "the cut point is inside the file"
    );
    assert!(
        s.header_end <= s.whole_end,
        "whole ticks come after the header"
    );
    if let Ok(again) = scan::scan(&bytes[..s.whole_end as usize], DEFAULT_MAX_RECORD_BYTES) {
        assert_eq!(
            again.last_tick, s.last_tick,
            "cutting at the last whole tick keeps every whole tick"
        );
        assert!(again.damage.is_none(), "what is kept has no damage");
    }
}

/// The records of a short recorded arena match (ticks 1..=120, snapshots every 40), after its
/// header and without its footer; [`seek_header`] puts a fuzzed header in front of them.
fn recorded_ticks() -> &'static [u8] {
    use std::sync::OnceLock;
    use tickforge_server::headless::{self, HeadlessMatch};
    use tickforge_server::log::{FsyncPolicy, LogConfig};
    static TICKS: OnceLock<Vec<u8>> = OnceLock::new();
    TICKS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("base.tfr");
        let spec = HeadlessMatch {
            setup: MatchSetup {
                match_id: MatchId(1),
                seed: 5,
                tick_rate_hz: 60,
                game: GameConfig::default_for("arena").expect("known"),
            },
            players: 4,
            ticks: 120,
            bot_seed: 5,
        };
        let log = LogConfig {
            fsync: FsyncPolicy::Never,
            snapshot_every_ticks: 40,
            ..LogConfig::default()
        };
        headless::record(&spec, &path, log, 0, |_| {}).expect("records");
        let bytes = std::fs::read(&path).expect("reads");
        let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
        bytes[s.header_end as usize..s.whole_end as usize].to_vec()
    })
}

/// Header payloads to start fuzzing [`seek_header`] from: the recorded match's own, and the
/// same with other games and settings.
pub fn seek_header_seeds() -> Vec<Vec<u8>> {
    use tickforge_protocol::{REPLAY_FORMAT_VERSION, ReplayHeader};
    let base = ReplayHeader {
        format_version: REPLAY_FORMAT_VERSION,
        protocol_version: tickforge_protocol::PROTOCOL_VERSION,
        game: "arena".into(),
        rules_version: 1,
        match_id: MatchId(1),
        seed: 5,
        tick_rate_hz: 60,
        config: GameConfig::default_for("arena").expect("known"),
        created_at_unix_ms: 0,
        snapshot_every_ticks: 40,
        hash_parts: Vec::new(),
    };
    let mut small = GameConfig::default_for("arena").expect("known");
    if let GameConfig::Arena(c) = &mut small {
        c.width_mm = 1001;
        c.player_radius_mm = 500;
        c.time_limit_ticks = 60;
    }
    let headers = [
        base.clone(),
        ReplayHeader {
            game: "drift".into(),
            config: GameConfig::default_for("drift").expect("known"),
            ..base.clone()
        },
        ReplayHeader {
            config: small,
            ..base.clone()
        },
        ReplayHeader {
            tick_rate_hz: 0,
            ..base
        },
    ];
    headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut seed = vec![i as u8 * 37];
            seed.extend(encode(h).expect("a header encodes"));
            seed
        })
        .collect()
}

/// A replay file whose header payload is the fuzzer's (after a first byte that picks the tick
/// and whether the file has a footer), followed by a real match's records: opening it,
/// seeking in it and verifying it never panic, and a seek that succeeds answers the tick that
/// was asked for.
pub fn seek_header(bytes: &[u8]) {
    use tickforge_server::log::{ReplayReader, Replayer, format, replay};
    let Some((&choice, payload)) = bytes.split_first() else {
        return;
    };
    let Ok(len) = u32::try_from(payload.len()) else {
        return;
    };
    let mut file = Vec::with_capacity(payload.len() + 64 * 1024);
    file.extend_from_slice(format::MAGIC);
    let version = tickforge_protocol::REPLAY_FORMAT_VERSION.to_le_bytes();
    let mut crc = crc32c::crc32c(&version);
    crc = crc32c::crc32c_append(crc, &len.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    file.extend_from_slice(&version);
    file.extend_from_slice(&len.to_le_bytes());
    file.extend_from_slice(&crc.to_le_bytes());
    file.extend_from_slice(payload);
    file.extend_from_slice(recorded_ticks());
    if choice & 1 == 1
        && let Ok(s) = scan::scan(&file, DEFAULT_MAX_RECORD_BYTES)
    {
        let end = s.whole_end;
        file.truncate(end as usize);
        format::encode_footer(&s.index(), end, &mut file);
    }
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
    }
    let path = DIR.with(|d| d.path().join("fuzzed.tfr"));
    std::fs::write(&path, &file).expect("writes the fuzzed file");
    let tick = tickforge_protocol::Tick(u64::from(choice >> 1));
    let games = tickforge_server::game::builtin();
    if let Ok(world) = replay::seek(&path, tick, &games) {
        assert_eq!(world.tick, tick, "a seek answers the tick asked for");
    }
    if let Ok(mut reader) = ReplayReader::open(&path)
        && let Ok(mut replayer) = Replayer::new(reader.header(), &games)
        && let Ok(ticks) = reader.ticks()
    {
        for t in ticks.take(40) {
            let Ok(t) = t else { break };
            if replayer.apply_tick(&t).is_err() {
                break;
            }
        }
    }
}
