//! `tickforge-replay` as a user runs it: a child process on real files.

mod common;

use common::{fixtures, replay, text};
use std::fs;
use std::path::Path;
use tickforge_protocol::{Event, EventKind, Record};
use tickforge_server::log::format::{self, DEFAULT_MAX_RECORD_BYTES};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every fixture of every released format version, with what it must contain.
const FIXTURES: &[(&str, u64, u64, u64)] = &[
    // (file, ticks, events, rejections)
    ("v1/arena-6p-900t.tfr", 900, 634, 180),
    ("v1/drift-8p-300t.tfr", 300, 2400, 0),
];

#[test]
fn every_fixture_of_every_version_still_loads_and_verifies() {
    let mut found: Vec<String> = Vec::new();
    for version in fs::read_dir(fixtures()).expect("fixtures exist") {
        for file in fs::read_dir(version.expect("entry").path()).expect("a version dir") {
            let path = file.expect("entry").path();
            let rel = path
                .strip_prefix(fixtures())
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            found.push(rel);
        }
    }
    found.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|f| f.0.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "every fixture file should be listed here with its expected contents"
    );
    for (file, ticks, events, rejections) in FIXTURES {
        let path = fixtures().join(file);
        let out = replay(&["verify", p(&path)]);
        assert!(out.status.success(), "{file} should verify: {}", text(&out));
        let summary = text(&out);
        assert!(
            summary.contains(&format!("{ticks} ticks, {events} events")),
            "{file}: {summary}"
        );
        let i = tickforge_replay::inspect(&path).expect("inspects");
        assert_eq!(
            (i.ticks, i.events, i.rejections),
            (*ticks, *events, *rejections),
            "{file} contents"
        );
        assert!(
            i.clean_close && !i.damaged,
            "{file} should be clean: {}",
            i.health
        );
    }
}

/// Rewrite `from` into `to` with `change` applied to every event record (no footer).
fn rewrite(from: &Path, to: &Path, mut change: impl FnMut(&mut Event) -> bool) -> usize {
    let bytes = fs::read(from).expect("reads");
    let (header, mut at) = format::decode_header(&bytes).expect("header");
    let mut out = Vec::new();
    format::encode_header(&header, &mut out);
    let mut changed = 0;
    while at < bytes.len() {
        let frame =
            format::check_frame(&bytes[at..], at as u64, DEFAULT_MAX_RECORD_BYTES).expect("valid");
        let mut record = format::decode_frame(frame, at as u64, 1).expect("decodes");
        at += frame.size;
        if let Record::Event(e) = &mut record
            && change(e)
        {
            changed += 1;
        }
        if !matches!(record, Record::Index(_)) {
            format::encode_record(&record, &mut out);
        }
        if frame.kind == Record::INDEX {
            break;
        }
    }
    fs::write(to, out).expect("writes");
    changed
}

#[test]
fn an_altered_event_fails_verification_naming_the_tick_and_components() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tampered = dir.path().join("tampered.tfr");
    let changed = rewrite(
        &fixtures().join("v1/drift-8p-300t.tfr"),
        &tampered,
        |e| match &mut e.kind {
            EventKind::PlayerDrifted { dx, .. } if e.tick.0 == 150 && e.seq.0 % 8 == 3 => {
                *dx += 1;
                true
            }
            _ => false,
        },
    );
    assert_eq!(changed, 1, "exactly one event should be altered");
    let out = replay(&["verify", p(&tampered)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a tampered file should fail verification: {}",
        text(&out)
    );
    let said = text(&out);
    assert!(
        said.contains("DIVERGES at tick 150"),
        "verify should name the tick: {said}"
    );
    assert!(
        said.contains("components that differ: pos"),
        "verify should name the component: {said}"
    );

    // An altered steer in the arena shows up at the same tick, in the velocity.
    let arena = dir.path().join("arena.tfr");
    let mut done = false;
    rewrite(
        &fixtures().join("v1/arena-6p-900t.tfr"),
        &arena,
        |e| match &mut e.kind {
            EventKind::PlayerSteered { vx, .. } if e.tick.0 >= 400 && !done => {
                *vx = -*vx + 1;
                done = true;
                true
            }
            _ => false,
        },
    );
    let out = replay(&["verify", p(&arena)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("vel"),
        "the velocity should be named: {}",
        text(&out)
    );

    // And diff points at the same tick.
    let out = replay(&[
        "diff",
        p(&fixtures().join("v1/drift-8p-300t.tfr")),
        p(&tampered),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("first divergence at tick 150"),
        "{}",
        text(&out)
    );
    // The tampered file kept the recorded hashes, so what differs is the event itself.
    assert!(
        text(&out).contains("\"dx\":76"),
        "diff should show the altered event: {}",
        text(&out)
    );
}

#[test]
fn diff_of_a_file_with_itself_is_identical() {
    let f = fixtures().join("v1/arena-6p-900t.tfr");
    let out = replay(&["diff", p(&f), p(&f)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("identical: 900 ticks"),
        "{}",
        text(&out)
    );
}

#[test]
fn seek_prints_the_world_at_a_tick_as_json() {
    let f = fixtures().join("v1/arena-6p-900t.tfr");
    let out = replay(&["seek", p(&f), "--tick", "450"]);
    assert!(out.status.success(), "{}", text(&out));
    let world: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(world["tick"], 450);
    let players = world["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter(|e| {
            e["components"]
                .as_array()
                .is_some_and(|c| c.iter().any(|v| v.get("player").is_some()))
        });
    assert_eq!(
        players.count(),
        6,
        "six players should be in the world: {world}"
    );
    let expected = tickforge_replay::seek(&f, tickforge_protocol::Tick(450)).expect("seeks");
    assert_eq!(world, serde_json::to_value(&expected).expect("json"));

    let out = replay(&["seek", p(&f), "--tick", "901"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("ends at tick 900"), "{}", text(&out));
}

#[test]
fn export_filters_by_kind_and_tick_range() {
    let f = fixtures().join("v1/arena-6p-900t.tfr");
    let out = replay(&["export", p(&f), "--kind", "player_killed"]);
    assert!(out.status.success(), "{}", text(&out));
    let kills: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    assert_eq!(kills.len(), 7);
    assert!(kills.iter().all(|e| e.kind.name() == "player_killed"));

    let out = replay(&[
        "export",
        p(&f),
        "--from-tick",
        "301",
        "--to-tick",
        "360",
        "--rejections",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l.get("rejected").is_some()),
        "rejections should be included"
    );
    let ticks: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.get("rejected").unwrap_or(l)["tick"]
                .as_u64()
                .expect("tick")
        })
        .collect();
    assert!(
        ticks.iter().all(|t| (301..=360).contains(t)),
        "only ticks 301..=360: {ticks:?}"
    );
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "events in a range are contiguous"
    );

    let out = replay(&["export", p(&f), "--kind", "teleported"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("kinds are: player_joined"),
        "{}",
        text(&out)
    );
}

#[test]
fn recover_cuts_a_crashed_file_and_it_then_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = fs::read(fixtures().join("v1/drift-8p-300t.tfr")).expect("reads");
    let crashed = dir.path().join("crashed.tfr");
    fs::write(&crashed, &bytes[..bytes.len() - 5_000]).expect("writes");
    let inspect = replay(&["inspect", p(&crashed)]);
    assert!(
        text(&inspect).contains("health      damaged tail at offset="),
        "{}",
        text(&inspect)
    );
    let out = replay(&["recover", p(&crashed)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cut back to tick"), "{}", text(&out));
    assert!(
        dir.path().join("crashed.tfr.damaged-1").exists(),
        "a copy of the damaged file is kept"
    );
    let out = replay(&["verify", p(&crashed)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = replay(&["recover", p(&crashed)]);
    assert!(text(&out).contains("nothing to recover"), "{}", text(&out));
}

#[test]
fn unreadable_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.tfr");
    fs::write(&junk, b"hello, world").expect("writes");
    let out = replay(&["verify", p(&junk)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not a tickforge replay file"),
        "{}",
        text(&out)
    );
    let out = replay(&["inspect", p(&dir.path().join("missing.tfr"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing.tfr"), "{}", text(&out));
    let out = replay(&["--help"]);
    assert!(
        text(&out).contains("Examples:"),
        "help should show examples"
    );
}
