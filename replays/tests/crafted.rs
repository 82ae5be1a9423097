//! Crafted replay files: settings out of range, ids at their limits, a footer that lies, a
//! trailer that points into the header. Every tool gives a clear error (or reads the file
//! anyway, where it can) and never panics; `seek` answers the tick asked for or fails; `verify`
//! never passes a file whose index its records do not bear out.
//!
//! Run in release too (`cargo test --release -p tickforge-replay --test crafted`): integer
//! overflow panics in a debug build and wraps in a release one, and both are caught here.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{replay, text};

use tickforge_protocol::{
    EntityId, EventKind, GameConfig, Record, ReplayHeader, ReplayIndex, Tick,
};
use tickforge_server::log::format::{self, DEFAULT_MAX_RECORD_BYTES};
use tickforge_server::log::scan;

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("v1").join(name)
}

/// Rewrites a footer: (the index to write, the offset its trailer names).
type FooterFn<'a> = &'a dyn Fn(&mut ReplayIndex, u64) -> (ReplayIndex, u64);

/// A change to a header, with what the refusal must name.
type HeaderCase = (&'static str, Box<dyn Fn(&mut ReplayHeader)>, &'static str);

/// The records of `from` (header changed by `header`, each record by `record`), written to
/// `to` with a footer computed afresh, or with `footer` instead when given.
fn craft(
    from: &Path,
    to: &Path,
    header: impl FnOnce(&mut ReplayHeader),
    mut record: impl FnMut(&mut Record),
    footer: Option<FooterFn<'_>>,
) {
    let bytes = fs::read(from).expect("reads");
    let (mut h, mut at) = format::decode_header(&bytes).expect("header");
    header(&mut h);
    let mut out = Vec::new();
    format::encode_header(&h, &mut out);
    while at < bytes.len() {
        let frame =
            format::check_frame(&bytes[at..], at as u64, DEFAULT_MAX_RECORD_BYTES).expect("valid");
        let mut r = format::decode_frame(frame, at as u64, 1).expect("decodes");
        at += frame.size;
        if matches!(r, Record::Index(_)) {
            break;
        }
        record(&mut r);
        format::encode_record(&r, &mut out);
    }
    let s = scan::scan(&out, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    let mut index = s.index();
    let end = s.whole_end;
    let (index, offset) = match footer {
        Some(f) => f(&mut index, end),
        None => (index, end),
    };
    out.truncate(end as usize);
    format::encode_record(&Record::Index(index), &mut out);
    format::encode_trailer(offset, &mut out);
    fs::write(to, out).expect("writes");
}

fn keep(_: &mut Record) {}

fn assert_refused(out: &Output, what: &str, mentions: &str) {
    let t = text(out);
    assert!(!out.status.success(), "{what}: should fail: {t}");
    assert!(
        !t.contains("panicked"),
        "{what}: a clear error, not a panic: {t}"
    );
    assert!(
        t.contains(mentions),
        "{what}: the error should mention {mentions:?}: {t}"
    );
}

#[test]
fn out_of_range_settings_in_a_header_are_refused_like_post_matches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: Vec<HeaderCase> = vec![
        (
            "arena narrower than a player",
            Box::new(|h| {
                if let GameConfig::Arena(c) = &mut h.config {
                    c.width_mm = 10;
                }
            }),
            "width_mm",
        ),
        (
            "arena radius at i32::MAX",
            Box::new(|h| {
                if let GameConfig::Arena(c) = &mut h.config {
                    c.player_radius_mm = i32::MAX;
                }
            }),
            "player_radius_mm",
        ),
        (
            "arena with a time limit of u64::MAX",
            Box::new(|h| {
                if let GameConfig::Arena(c) = &mut h.config {
                    c.time_limit_ticks = u64::MAX;
                }
            }),
            "time_limit_ticks",
        ),
        (
            "no tick rate",
            Box::new(|h| h.tick_rate_hz = 0),
            "tick_rate_hz",
        ),
    ];
    for (what, change, mentions) in cases {
        let path = dir.path().join("crafted.tfr");
        craft(&fixture("arena-6p-900t.tfr"), &path, change, keep, None);
        let path = path.to_str().expect("utf-8");
        assert_refused(&replay(&["seek", path, "--tick", "450"]), what, mentions);
        assert_refused(&replay(&["verify", path]), what, mentions);
    }
    let path = dir.path().join("drift.tfr");
    craft(
        &fixture("drift-8p-300t.tfr"),
        &path,
        |h| {
            if let GameConfig::Drift(c) = &mut h.config {
                c.width_mm = 0;
            }
        },
        keep,
        None,
    );
    let path = path.to_str().expect("utf-8");
    assert_refused(
        &replay(&["seek", path, "--tick", "100"]),
        "drift of width 0",
        "width_mm",
    );
}

#[test]
fn events_at_the_limits_of_their_ids_are_errors_or_divergences_not_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ids.tfr");
    craft(
        &fixture("arena-6p-900t.tfr"),
        &path,
        |_| {},
        |r| {
            if let Record::Event(e) = r
                && let EventKind::PlayerJoined { entity, .. } = &mut e.kind
            {
                *entity = EntityId(u32::MAX);
            }
        },
        None,
    );
    let p = path.to_str().expect("utf-8");
    for args in [
        vec!["verify", p],
        vec!["seek", p, "--tick", "899"],
        vec!["inspect", p],
    ] {
        let out = replay(&args);
        assert!(!text(&out).contains("panicked"), "{args:?}: {}", text(&out));
    }
}

#[test]
fn a_footer_that_lies_about_its_snapshots_or_ticks_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The index names the snapshot of tick 600 as one of tick 0.
    let path = dir.path().join("snapshot.tfr");
    craft(
        &fixture("arena-6p-900t.tfr"),
        &path,
        |_| {},
        keep,
        Some(&|index: &mut ReplayIndex, end| {
            let mut index = index.clone();
            for s in &mut index.snapshots {
                s.0 = Tick(0);
            }
            index.snapshots.truncate(1);
            (index, end)
        }),
    );
    let p = path.to_str().expect("utf-8");
    let out = replay(&["seek", p, "--tick", "100"]);
    let t = text(&out);
    assert!(
        !out.status.success() || t.contains("\"tick\": 100"),
        "seek answers tick 100 or fails, never another tick: {t}"
    );
    assert!(!t.contains("panicked"), "{t}");

    // The index promises 900 ticks, and there are none (the footer right after the header).
    let path = dir.path().join("empty.tfr");
    let bytes = fs::read(fixture("arena-6p-900t.tfr")).expect("reads");
    let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    // A footer that is consistent in itself (no snapshot it names is out of place).
    let lying = ReplayIndex {
        snapshots: Vec::new(),
        ..s.index()
    };
    let mut out = bytes[..s.header_end as usize].to_vec();
    format::encode_record(&Record::Index(lying.clone()), &mut out);
    format::encode_trailer(s.header_end, &mut out);
    fs::write(&path, out).expect("writes");
    let p = path.to_str().expect("utf-8");
    let inspect = tickforge_replay::inspect(&path).expect("inspects");
    assert_eq!(inspect.ticks, 900, "the index claims 900 ticks");
    let verify = replay(&["verify", p]);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "verify fails a file whose ticks are missing: {}",
        text(&verify)
    );
    assert!(text(&verify).contains("900 ticks"), "{}", text(&verify));
    assert_refused(
        &replay(&["seek", p, "--tick", "450"]),
        "missing ticks",
        "tick 450",
    );

    // The index sits over bytes that are not records.
    let path = dir.path().join("garbage.tfr");
    let mut out = bytes[..s.header_end as usize].to_vec();
    out.extend(std::iter::repeat_n(0xA5u8, 4000));
    let at = out.len() as u64;
    format::encode_record(&Record::Index(lying), &mut out);
    format::encode_trailer(at, &mut out);
    fs::write(&path, out).expect("writes");
    let p = path.to_str().expect("utf-8");
    assert_eq!(
        replay(&["verify", p]).status.code(),
        Some(1),
        "garbage under a footer is corrupt"
    );
    let seek = replay(&["seek", p, "--tick", "450"]);
    assert!(!seek.status.success(), "{}", text(&seek));
    assert!(!text(&seek).contains("panicked"), "{}", text(&seek));
}

#[test]
fn a_trailer_pointing_into_the_header_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trailer.tfr");
    craft(
        &fixture("arena-6p-900t.tfr"),
        &path,
        |_| {},
        keep,
        Some(&|index: &mut ReplayIndex, _end| (index.clone(), 12)),
    );
    let p = path.to_str().expect("utf-8");
    let out = replay(&["verify", p]);
    assert!(
        out.status.success(),
        "the ticks are intact and verify: {}",
        text(&out)
    );
    assert!(text(&out).contains("900 ticks"), "{}", text(&out));
    let seek = replay(&["seek", p, "--tick", "450"]);
    assert!(seek.status.success(), "{}", text(&seek));
}
