//! The match core, tick by tick, with no tokio and no sockets: data-driven cases in
//! `tests/testdata/core/*.txt`, in the style of raft-rs's `testdata/`. Each case is a command
//! (and, for `tick`, its inputs on the lines after it), a `----` line, and what the core must
//! answer, up to a blank line:
//!
//! ```text
//! new game=drift players=2 grace=3 slow=2 window=4 idle=100
//! join c1 ana            # a join for connection c1, decided at the next tick
//! tick                   # one tick; its inputs follow, one a line:
//! c1 p1 #1 drift e1 10 0 #   a command: connection, player, id, what
//! deliver c1 full        #   how c1 fared with the last tick (full, roomy, busy, closed)
//! resume c2 p1 3 12      # p1 resumes on c2 from tick 3, seq 12
//! detach p1 c1 · leave p1 c1 · snapshot
//! ```
//!
//! `TICKFORGE_REWRITE=1 cargo test -p tickforge-server --test match_core` writes what the core
//! answers back into the files (then read the diff).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use tickforge_protocol::{
    ArenaConfig, Command, CommandId, DriftConfig, EntityId, EventKind, GameConfig, MatchId,
    PlayerId, Seq, ServerMessage, Tick, decode_server,
};
use tickforge_server::matches::Inbound;
use tickforge_server::matches::core::{CoreConfig, Delivered, Ending, MatchCore, TickInput};
use tickforge_server::sim::MatchSetup;

/// A core under test, with what the harness remembers between commands.
struct Harness {
    core: MatchCore,
    /// Resume tokens of seated players, from their `Joined`.
    tokens: BTreeMap<PlayerId, String>,
    delivered: Vec<(u64, Delivered)>,
}

fn args(words: &[&str]) -> BTreeMap<String, String> {
    words
        .iter()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> T {
    text.trim_start_matches(['c', 'p', 'e', '#', 't'])
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {text:?} is not a number"))
}

fn new_core(words: &[&str]) -> Harness {
    let a = args(words);
    let get = |k: &str, d: u64| a.get(k).map_or(d, |v| number(v, k));
    let players = get("players", 4) as u32;
    let game = match a.get("game").map(String::as_str).unwrap_or("drift") {
        "arena" => GameConfig::Arena(ArenaConfig {
            max_players: players,
            time_limit_ticks: get("time_limit", 36_000),
            ..ArenaConfig::default()
        }),
        _ => GameConfig::Drift(DriftConfig {
            max_players: players,
            ..DriftConfig::default()
        }),
    };
    let setup = MatchSetup {
        match_id: MatchId(1),
        seed: 1,
        tick_rate_hz: 60,
        game,
    };
    let sim = tickforge_server::game::builtin()
        .sim(&setup)
        .expect("the game builds");
    let config = CoreConfig {
        resume_window_ticks: get("window", 10) as usize,
        grace_ticks: get("grace", 30),
        slow_ticks: get("slow", 5),
        idle_ticks: get("idle", 600),
        snapshot_every_ticks: get("snapshots", 0),
        token_key: [7; 32],
    };
    Harness {
        core: MatchCore::new(MatchId(1), sim, config).expect("the core builds"),
        tokens: BTreeMap::new(),
        delivered: Vec::new(),
    }
}

/// A command line of a tick's inputs: `c1 p1 #3 drift e1 10 0` (or `move`, `fire`, `leave`).
fn inbound(line: &str) -> Inbound {
    let w: Vec<&str> = line.split_whitespace().collect();
    let int = |i: usize| -> i32 { number(w.get(i).copied().unwrap_or("0"), "a value") };
    let entity = || EntityId(number(w.get(4).copied().unwrap_or("e0"), "an entity"));
    let command = match w.get(3).copied() {
        Some("drift") => Command::Drift {
            entity: entity(),
            dx: int(5),
            dy: int(6),
        },
        Some("move") => Command::Move {
            entity: entity(),
            vx: int(5),
            vy: int(6),
        },
        Some("fire") => Command::Fire {
            entity: entity(),
            dx: int(5),
            dy: int(6),
        },
        Some("leave") => Command::Leave,
        other => panic!("unknown command {other:?} in {line:?}"),
    };
    Inbound {
        conn: number(w[0], "a connection"),
        player: PlayerId(number(w[1], "a player")),
        id: CommandId(number(w[2], "a command id")),
        command,
    }
}

/// One frame to a client, as a short line.
fn describe(frame: &Bytes) -> String {
    match decode_server(frame) {
        Ok(ServerMessage::Tick(t)) => {
            // The delta's first varint is its number of changed entities.
            let changed = t
                .delta
                .iter()
                .take_while(|b| *b & 0x80 != 0)
                .count()
                .eq(&0)
                .then(|| t.delta.first().copied().unwrap_or(0))
                .map_or("many".to_string(), |n| n.to_string());
            let mut line = format!("tick t{} ({changed} changed)", t.tick.0);
            for id in &t.acks {
                line.push_str(&format!(" ack #{}", id.0));
            }
            for d in &t.duplicates {
                line.push_str(&format!(" dup #{} t{}", d.id.0, d.tick.0));
            }
            for r in &t.rejections {
                line.push_str(&format!(" rejected #{} {}", r.id.0, r.rule.as_str()));
            }
            line
        }
        Ok(ServerMessage::Snapshot(s)) => {
            format!("snapshot t{} ({} entities)", s.tick.0, s.entities.len())
        }
        Ok(ServerMessage::Rejected { id, rule, .. }) => {
            format!("rejected #{} {}", id.0, rule.as_str())
        }
        Ok(ServerMessage::MatchEnded { reason, winner }) => format!(
            "match_ended {reason:?} winner {}",
            winner.map_or("none".into(), |p| p.to_string())
        ),
        Ok(ServerMessage::Resumed {
            player, from_seq, ..
        }) => {
            format!("resumed {player} from #{}", from_seq.0)
        }
        Ok(ServerMessage::Joined { player, entity, .. }) => format!("joined {player} {entity}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("undecodable frame: {e}"),
    }
}

fn event(kind: &EventKind) -> String {
    match kind {
        EventKind::PlayerJoined { player, entity, .. } => {
            format!("player_joined {player} {entity}")
        }
        EventKind::PlayerLeft { player, entity } => format!("player_left {player} {entity}"),
        EventKind::PlayerDrifted {
            entity,
            dx,
            dy,
            input,
        } => format!("player_drifted {entity} ({dx},{dy}) #{}", input.0),
        EventKind::MatchEnded { reason, winner } => format!(
            "match_ended {reason:?} {}",
            winner.map_or("none".into(), |p| p.to_string())
        ),
        other => other.name().to_string(),
    }
}

impl Harness {
    fn run(&mut self, command: &str, input: &[&str]) -> String {
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut out = String::new();
        match words[0] {
            "join" => {
                let player = self
                    .core
                    .join(number(words[1], "a connection"), words[2].into());
                writeln!(out, "{player} joining on {}", words[1]).ok();
            }
            "deliver" => {
                let state = match words[2] {
                    "full" => Delivered::Full,
                    "roomy" => Delivered::Roomy,
                    "busy" => Delivered::Busy,
                    "closed" => Delivered::Closed,
                    other => panic!("unknown delivery {other:?}"),
                };
                self.delivered
                    .push((number(words[1], "a connection"), state));
                writeln!(out, "ok").ok();
            }
            "detach" | "leave" => {
                let player = PlayerId(number(words[1], "a player"));
                let conn = number(words[2], "a connection");
                if words[0] == "detach" {
                    self.core.detach(player, conn);
                } else {
                    self.core.leave(player, conn);
                }
                writeln!(out, "ok").ok();
            }
            "resume" => {
                let player = PlayerId(number(words[2], "a player"));
                let token = self.tokens.get(&player).cloned().unwrap_or_default();
                let last_tick = Tick(number(words[3], "a tick"));
                let last_seq = Seq(number(words[4], "a seq"));
                match self.core.resume(
                    number(words[1], "a connection"),
                    &token,
                    last_tick,
                    last_seq,
                ) {
                    Ok(r) => {
                        let frames: Vec<String> = r.frames.iter().map(describe).collect();
                        writeln!(out, "resumed: {}", frames.join(", ")).ok();
                        if let Some(old) = r.replaced {
                            writeln!(out, "replaced c{old}").ok();
                        }
                    }
                    Err(e) => {
                        writeln!(out, "refused: {e}").ok();
                    }
                }
            }
            "snapshot" => {
                let s = self.core.snapshot();
                writeln!(
                    out,
                    "snapshot t{} ({} entities)",
                    s.tick.0,
                    s.entities.len()
                )
                .ok();
            }
            "tick" => {
                let mut commands = Vec::new();
                for line in input {
                    if let Some(rest) = line.strip_prefix("deliver ") {
                        let words: Vec<&str> = rest.split_whitespace().collect();
                        let state = match words[1] {
                            "full" => Delivered::Full,
                            "roomy" => Delivered::Roomy,
                            "busy" => Delivered::Busy,
                            _ => Delivered::Closed,
                        };
                        self.delivered
                            .push((number(words[0], "a connection"), state));
                    } else {
                        commands.push(inbound(line));
                    }
                }
                let output = self.core.tick(TickInput {
                    commands,
                    delivered: std::mem::take(&mut self.delivered),
                    reserved: 0,
                });
                let records = &output.records;
                writeln!(
                    out,
                    "tick {}: {} events, {} rejections{}",
                    output.tick.0,
                    records.events.len(),
                    records.rejections.len(),
                    if output.stats.duplicates > 0 {
                        format!(", {} duplicates", output.stats.duplicates)
                    } else {
                        String::new()
                    }
                )
                .ok();
                for e in &records.events {
                    writeln!(out, "  #{} {}", e.seq.0, event(&e.kind)).ok();
                }
                for r in &records.rejections {
                    writeln!(
                        out,
                        "  rejected {} #{} {}",
                        r.player,
                        r.id.0,
                        r.rule.as_str()
                    )
                    .ok();
                }
                for send in &output.sends {
                    let frames: Vec<String> = send.frames.iter().map(describe).collect();
                    writeln!(out, "  c{}: {}", send.conn, frames.join(", ")).ok();
                }
                for join in &output.joins {
                    match &join.result {
                        Ok((seat, joined)) => {
                            if let Ok(ServerMessage::Joined { resume_token, .. }) =
                                decode_server(joined)
                            {
                                self.tokens.insert(seat.player, resume_token);
                            }
                            writeln!(out, "  c{} {}", join.conn, describe(joined)).ok();
                        }
                        Err(e) => {
                            writeln!(out, "  c{} refused: {e}", join.conn).ok();
                        }
                    }
                }
                for (conn, code, reason) in &output.closes {
                    writeln!(out, "  close c{conn}: {} {}", code.code(), reason).ok();
                }
                match output.ended {
                    Some(Ending::Over { reason, winner }) => {
                        writeln!(
                            out,
                            "  ended: {reason:?}, winner {}",
                            winner.map_or("none".into(), |p| p.to_string())
                        )
                        .ok();
                    }
                    Some(Ending::Idle) => {
                        writeln!(out, "  ended: idle").ok();
                    }
                    None => {}
                }
            }
            other => panic!("unknown command {other:?}"),
        }
        out
    }
}

/// Run every case of one file; return the file as it would be with the answers the core gave.
fn run_file(text: &str) -> (String, Vec<String>) {
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut harness: Option<Harness> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            i += 1;
            continue;
        }
        // The command, its input lines, `----`, the expected answer up to a blank line.
        let command = line;
        let mut input = Vec::new();
        i += 1;
        while i < lines.len() && lines[i] != "----" {
            input.push(lines[i]);
            i += 1;
        }
        i += 1;
        let mut expected = String::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        let actual = if command.starts_with("new") {
            let words: Vec<&str> = command.split_whitespace().collect();
            harness = Some(new_core(&words[1..]));
            "ok\n".to_string()
        } else {
            harness
                .as_mut()
                .unwrap_or_else(|| panic!("{command:?} before any `new`"))
                .run(command, &input)
        };
        if actual != expected {
            failures.push(format!(
                "{command}\n{}\n---- expected:\n{expected}---- got:\n{actual}",
                input.join("\n")
            ));
        }
        rewritten.push_str(command);
        rewritten.push('\n');
        for l in &input {
            rewritten.push_str(l);
            rewritten.push('\n');
        }
        rewritten.push_str("----\n");
        rewritten.push_str(&actual);
    }
    (rewritten, failures)
}

#[test]
fn the_core_answers_every_case_in_testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/core");
    let rewrite = std::env::var("TICKFORGE_REWRITE").is_ok_and(|v| v == "1");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the testdata directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the cases should be there: {files:?}");
    let mut failed = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("reads");
        let (rewritten, failures) = run_file(&text);
        if rewrite {
            std::fs::write(&path, rewritten).expect("rewrites");
        } else {
            for f in failures {
                failed.push(format!("{}:\n{f}", path.display()));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
