//! The log round trip: what a match writes is what a reader reads back, tick by tick; the
//! replay re-simulates to the same hashes; a closed file can be appended to.

mod common;

use tickforge_protocol::{Record, Tick};
use tickforge_server::headless;
use tickforge_server::log::{LogWriter, RecoverMode, ReplayReader, Replayer, TickBatch};

#[test]
fn what_is_written_is_read_back_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = common::spec("arena", 6, 900, 11);
    let (path, index) = common::record(dir.path(), "m.tfr", &spec, 100);
    let played = headless::play(&spec).expect("plays");

    let mut reader = ReplayReader::open(&path).expect("opens");
    assert!(
        reader.health().clean_close,
        "a closed file should have its footer"
    );
    assert_eq!(
        reader.index(),
        &index,
        "the footer should hold the index the writer returned"
    );
    assert_eq!(index.last_tick, Tick(900));
    assert_eq!(index.events, played.events.len() as u64);
    assert_eq!(index.rejections, played.rejections.len() as u64);
    assert_eq!(
        index.snapshots.iter().map(|(t, _)| t.0).collect::<Vec<_>>(),
        (1..=9).map(|n| n * 100).collect::<Vec<_>>()
    );

    let ticks: Vec<_> = reader
        .ticks()
        .expect("reads")
        .collect::<Result<_, _>>()
        .expect("every tick reads");
    let events: Vec<_> = ticks.iter().flat_map(|t| t.events.clone()).collect();
    let rejections: Vec<_> = ticks.iter().flat_map(|t| t.rejections.clone()).collect();
    let hashes: Vec<_> = ticks.iter().map(|t| (t.tick, t.end.hash)).collect();
    assert_eq!(
        events, played.events,
        "the file's events should be the match's, in order"
    );
    assert_eq!(
        rejections, played.rejections,
        "the audit trail should be complete"
    );
    assert_eq!(
        hashes, played.hashes,
        "every tick's hash should be recorded"
    );

    let mut replayer = Replayer::new(reader.header(), &tickforge_server::game::builtin())
        .expect("header is usable");
    for tick in &ticks {
        replayer
            .apply_tick(tick)
            .unwrap_or_else(|d| panic!("re-simulation should agree: {d}"));
    }
}

#[test]
fn seeking_through_a_snapshot_gives_the_same_world() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = common::spec("arena", 6, 650, 3);
    let (path, _) = common::record(dir.path(), "m.tfr", &spec, 200);
    let mut reader = ReplayReader::open(&path).expect("opens");
    let (snap_tick, offset) = reader
        .snapshot_before(Tick(530))
        .expect("a snapshot at or before 530");
    assert_eq!(snap_tick, Tick(400));
    let snapshot = reader.read_snapshot(offset).expect("snapshot reads");
    let mut replayer = Replayer::from_snapshot(
        reader.header(),
        &snapshot,
        &tickforge_server::game::builtin(),
    )
    .expect("restores");
    for tick in reader.ticks_from(offset).expect("reads") {
        let tick = tick.expect("reads");
        if tick.tick > Tick(530) {
            break;
        }
        replayer.apply_tick(&tick).expect("agrees");
    }
    let mut direct = tickforge_server::game::builtin()
        .sim(&spec.setup)
        .expect("builds");
    let mut bots = headless::ScriptedBots::new(&spec.setup.game, spec.players, spec.bot_seed);
    for _ in 0..530 {
        let commands = bots.commands(&direct);
        direct.run_tick(commands);
    }
    assert_eq!(
        replayer.sim().snapshot(),
        direct.snapshot(),
        "seeking to 530 should give the world of tick 530"
    );
}

#[test]
fn a_closed_file_can_be_appended_to_and_reread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = common::spec("drift", 4, 120, 5);
    let (path, _) = common::record(dir.path(), "m.tfr", &spec, 50);
    let before = common::ticks(&path);

    // Continue the same match for 30 more ticks into the same file.
    let (writer, recovery) = LogWriter::open_append(&path, RecoverMode::Normal, common::config(50))
        .expect("opens to append");
    assert!(recovery.cut_at.is_none(), "a clean file needs no cut");
    let mut sim = tickforge_server::game::builtin()
        .sim(&spec.setup)
        .expect("builds");
    let mut bots = headless::ScriptedBots::new(&spec.setup.game, spec.players, spec.bot_seed);
    for _ in 0..150 {
        let commands = bots.commands(&sim);
        let report = sim.run_tick(commands);
        if report.tick > Tick(120) {
            writer
                .append_blocking(TickBatch::from_report(report, None))
                .expect("appends");
        }
    }
    let index = writer.close().expect("closes");
    assert_eq!(index.last_tick, Tick(150));
    let after = common::ticks(&path);
    assert_eq!(after.len(), 150, "the file should now hold 150 ticks");
    assert_eq!(
        &after[..120],
        &before[..],
        "the first 120 ticks are unchanged"
    );
    let mut replayer = Replayer::new(
        ReplayReader::open(&path).expect("opens").header(),
        &tickforge_server::game::builtin(),
    )
    .expect("usable");
    for tick in &after {
        replayer
            .apply_tick(tick)
            .expect("the appended file verifies");
    }
    let reader = ReplayReader::open(&path).expect("opens");
    assert!(reader.health().clean_close);
    let _ = Record::INDEX;
}

#[test]
fn a_new_file_never_overwrites_an_old_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = common::spec("drift", 2, 10, 1);
    let (path, _) = common::record(dir.path(), "m.tfr", &spec, 0);
    let err = headless::record(&spec, &path, common::config(0), 0, |_| {})
        .expect_err("must not overwrite");
    assert!(
        err.to_string().contains("already exists"),
        "the error should say why: {err}"
    );
}
