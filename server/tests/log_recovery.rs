//! Recovery: a torn or damaged tail is cut back to the last whole tick (with a copy of the
//! damaged file kept); corruption followed by valid records is refused unless repair is asked
//! for; appending after recovery works.

mod common;

use std::fs;
use std::path::Path;
use tickforge_protocol::{Record, Tick};
use tickforge_server::log::format::{self, DEFAULT_MAX_RECORD_BYTES};
use tickforge_server::log::recover::{self, RecoverMode};
use tickforge_server::log::scan;
use tickforge_server::log::{LogError, LogWriter, ReplayReader, TickBatch};

/// A crashed-looking file: a recorded match with its footer removed. Returns its bytes and,
/// per tick, the end of the tick including its snapshot if it has one.
fn crashed_file(dir: &Path, ticks: u64) -> (Vec<u8>, Vec<u64>) {
    let (bytes, ends, _) = crashed_file_with_tick_ends(dir, ticks);
    (bytes, ends)
}

/// As [`crashed_file`], plus the end of each tick's `TickEnd` record (before any snapshot).
fn crashed_file_with_tick_ends(dir: &Path, ticks: u64) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    let spec = common::spec("arena", 4, ticks, 21);
    let (path, _) = common::record(dir, "full.tfr", &spec, 25);
    let bytes = fs::read(&path).expect("reads");
    let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    let footer = s.footer_offset.expect("the recorded file has a footer") as usize;
    let bytes = bytes[..footer].to_vec();
    // The end offset of every whole tick (after its snapshot, if any).
    let mut ends = Vec::new();
    let mut tick_ends = Vec::new();
    let mut at = s.header_end as usize;
    while at < bytes.len() {
        let frame =
            format::check_frame(&bytes[at..], at as u64, DEFAULT_MAX_RECORD_BYTES).expect("valid");
        at += frame.size;
        if frame.kind == Record::TICK_END {
            tick_ends.push(at as u64);
            ends.push(at as u64);
        } else if frame.kind == Record::SNAPSHOT {
            ends.pop();
            ends.push(at as u64);
        }
    }
    (bytes, ends, tick_ends)
}

#[test]
fn truncation_at_every_byte_of_the_last_three_ticks_recovers_the_whole_ticks() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A tick is whole once its TickEnd is; the snapshot after it is kept only if whole too.
    let (bytes, ends, tick_ends) = crashed_file_with_tick_ends(dir.path(), 100);
    assert_eq!(ends.len(), 100);
    let start = ends[ends.len() - 4] as usize;
    let path = dir.path().join("cut.tfr");
    let mut tried = 0;
    for cut in start..=bytes.len() {
        fs::write(&path, &bytes[..cut]).expect("writes");
        let recovery = recover::recover(&path, RecoverMode::Normal, DEFAULT_MAX_RECORD_BYTES)
            .unwrap_or_else(|e| panic!("a file cut at {cut} should recover: {e}"));
        let whole = tick_ends.iter().filter(|end| **end as usize <= cut).count();
        let full_end = ends[whole - 1];
        let expected_len = if full_end as usize <= cut {
            full_end
        } else {
            tick_ends[whole - 1]
        };
        let whole = whole as u64;
        assert_eq!(
            recovery.scan.last_tick,
            Tick(whole),
            "cut at {cut}: the last whole tick"
        );
        assert_eq!(
            fs::metadata(&path).expect("exists").len(),
            expected_len,
            "cut at {cut}: the file ends at the tick's end"
        );
        assert_eq!(
            &fs::read(&path).expect("reads")[..],
            &bytes[..expected_len as usize],
            "cut at {cut}: a prefix remains"
        );
        assert_eq!(
            recovery.kept_copy.is_some(),
            cut as u64 != expected_len,
            "cut at {cut}: a copy is kept only if bytes were dropped"
        );
        if let Some(copy) = &recovery.kept_copy {
            assert_eq!(
                fs::read(copy).expect("copy reads"),
                &bytes[..cut],
                "the copy keeps the damaged file as found"
            );
            fs::remove_file(copy).expect("removes");
        }
        tried += 1;
    }
    println!(
        "tail truncation sweep: {tried} cut points over the last 3 ticks, all recovered to whole ticks"
    );
    assert!(
        tried > 100,
        "the sweep should try every byte of three ticks, tried {tried}"
    );
}

#[test]
fn every_single_bit_flip_in_the_last_record_is_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bytes, ends) = crashed_file(dir.path(), 40);
    let last_start = ends[ends.len() - 2] as usize;
    // The last record is the last tick's TickEnd: find where it starts.
    let mut at = last_start;
    let mut record_start = at;
    while at < bytes.len() {
        record_start = at;
        at += format::check_frame(&bytes[at..], at as u64, DEFAULT_MAX_RECORD_BYTES)
            .expect("valid")
            .size;
    }
    let path = dir.path().join("flip.tfr");
    let mut flips = 0;
    for bit in record_start * 8..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let s = scan::scan(&damaged, DEFAULT_MAX_RECORD_BYTES).expect("scans");
        assert!(
            s.damage.is_some(),
            "flipping bit {bit} of the last record should be detected"
        );
        assert_eq!(
            s.last_tick,
            Tick(39),
            "flipping bit {bit}: the damaged last tick should not count"
        );
        fs::write(&path, &damaged).expect("writes");
        let recovery = recover::recover(&path, RecoverMode::Normal, DEFAULT_MAX_RECORD_BYTES)
            .expect("recovers");
        assert_eq!(recovery.cut_at, Some(ends[38]));
        flips += 1;
    }
    println!("{flips} single-bit flips in the last record, all detected");
}

#[test]
fn a_zeroed_sector_is_detected_and_mid_file_damage_needs_repair() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bytes, ends) = crashed_file(dir.path(), 200);
    let sector = (ends[100] as usize / 512) * 512;
    let mut damaged = bytes.clone();
    damaged[sector..sector + 512].fill(0);
    let path = dir.path().join("zeroed.tfr");
    fs::write(&path, &damaged).expect("writes");

    let s = scan::scan(&damaged, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    let damage = s.damage.as_ref().expect("the zeroed sector is detected");
    assert!(
        damage.offset as usize <= sector + 512,
        "the damage is found at or before the sector's end"
    );
    assert!(
        damage.resumes_at.is_some(),
        "valid records follow the sector"
    );

    let err = recover::recover(&path, RecoverMode::Normal, DEFAULT_MAX_RECORD_BYTES)
        .expect_err("must refuse");
    let message = err.to_string();
    assert!(matches!(err, LogError::CorruptMidFile { .. }), "{message}");
    assert!(
        message.contains(&format!("offset={}", damage.offset)) && message.contains("--repair"),
        "the error should name the offset and the way out: {message}"
    );
    assert_eq!(
        fs::read(&path).expect("reads"),
        damaged,
        "a refused file is left untouched"
    );
    assert!(
        ReplayReader::open(&path)
            .expect("reading still works")
            .health()
            .damage
            .is_some()
    );

    let repaired = recover::recover(&path, RecoverMode::Repair, DEFAULT_MAX_RECORD_BYTES)
        .expect("repair cuts");
    let cut = repaired.cut_at.expect("cut");
    assert!(cut as usize <= sector, "repair cuts before the damage");
    assert_eq!(
        fs::read(&path).expect("reads"),
        &bytes[..cut as usize],
        "what remains is an undamaged prefix"
    );
    assert_eq!(
        fs::read(repaired.kept_copy.expect("a copy")).expect("reads"),
        damaged,
        "the damaged file is kept"
    );
}

#[test]
fn a_corrupt_record_in_the_middle_is_refused_naming_offset_and_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut bytes, ends) = crashed_file(dir.path(), 60);
    let at = ends[29] as usize + 9; // inside the first record of tick 31
    bytes[at] ^= 0x40;
    let path = dir.path().join("mid.tfr");
    fs::write(&path, &bytes).expect("writes");
    let err = recover::recover(&path, RecoverMode::Normal, DEFAULT_MAX_RECORD_BYTES)
        .expect_err("must refuse");
    let message = err.to_string();
    assert!(
        message.contains(&format!("offset={}", ends[29])),
        "names the record's offset: {message}"
    );
    assert!(
        message.contains("tick before it is 30 (seq "),
        "names the last good tick and seq: {message}"
    );
}

#[test]
fn appending_after_recovery_continues_the_match() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = common::spec("arena", 4, 80, 21);
    let (bytes, ends) = crashed_file(dir.path(), 80);
    let path = dir.path().join("resume.tfr");
    // Torn in the middle of tick 61.
    fs::write(&path, &bytes[..ends[59] as usize + 17]).expect("writes");
    let (writer, recovery) = LogWriter::open_append(&path, RecoverMode::Normal, common::config(25))
        .expect("recovers and opens");
    assert_eq!(recovery.scan.last_tick, Tick(60));
    assert!(recovery.kept_copy.is_some());
    // Re-run the match and append ticks 61..=80, as a restarted server would.
    let mut sim = tickforge_server::game::builtin()
        .sim(&spec.setup)
        .expect("builds");
    let mut bots = tickforge_server::headless::ScriptedBots::new(
        &spec.setup.game,
        spec.players,
        spec.bot_seed,
    );
    for _ in 0..80 {
        let commands = bots.commands(&sim);
        let report = sim.run_tick(commands);
        if report.tick > Tick(60) {
            let snapshot = writer.snapshot_due(report.tick).then(|| sim.snapshot());
            writer
                .append_blocking(TickBatch::from_report(report, snapshot))
                .expect("appends");
        }
    }
    writer.close().expect("closes");
    let full = fs::read(dir.path().join("full.tfr")).expect("reads");
    let again = fs::read(&path).expect("reads");
    assert_eq!(
        again, full,
        "recovered and continued, the file should equal the uninterrupted recording"
    );
}

/// A file of `len` bytes: a real match's first ticks, then damage crafted so that every tenth
/// byte starts a candidate record a quarter of the file long with a known kind, which the
/// search for a valid record after damage must consider.
fn crafted_tail(len: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut bytes, _) = crashed_file(dir.path(), 10);
    // A length, a stored checksum, a known kind, filler.
    let quarter = (len as u32 / 4).to_le_bytes();
    let pattern = [
        quarter[0],
        quarter[1],
        quarter[2],
        0x00,
        0xAB,
        0xCD,
        0xEF,
        0x01,
        Record::TICK_END,
        0x00,
    ];
    while bytes.len() < len {
        bytes.push(pattern[bytes.len() % pattern.len()]);
    }
    bytes
}

/// The shortest of three timings of a scan of `bytes`.
fn scan_time(bytes: &[u8]) -> std::time::Duration {
    (0..3)
        .map(|_| {
            #[expect(clippy::disallowed_methods, reason = "a test times a scan")]
            let started = std::time::Instant::now();
            let s = scan::scan(bytes, DEFAULT_MAX_RECORD_BYTES).expect("scans");
            assert!(s.damage.is_some(), "the crafted tail is damage");
            assert_eq!(s.last_tick, Tick(10), "the real ticks before it are whole");
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn the_search_for_valid_records_after_damage_is_linear() {
    // Checking each candidate's checksum over its own bytes took four times longer per doubling
    // (37 s for 4 MiB); the search must grow with the size of the file, not its square.
    let small = crafted_tail(512 * 1024);
    let large = crafted_tail(4 * 1024 * 1024);
    let (t_small, t_large) = (scan_time(&small), scan_time(&large));
    println!("crafted damage: 512 KiB scanned in {t_small:?}, 4 MiB in {t_large:?}");
    assert!(
        t_large < t_small * 24 + std::time::Duration::from_millis(200),
        "8× the bytes should take about 8× as long, not 64×: {t_small:?} then {t_large:?}"
    );
    assert!(
        t_large < std::time::Duration::from_secs(30),
        "4 MiB of crafted damage scans in seconds: {t_large:?}"
    );
    // The search still finds a real record after damage.
    let dir = tempfile::tempdir().expect("temp dir");
    let (bytes, ends) = crashed_file(dir.path(), 40);
    let mut damaged = bytes.clone();
    let hole = ends[10] as usize;
    damaged[hole..hole + 40].fill(0x5A);
    let s = scan::scan(&damaged, DEFAULT_MAX_RECORD_BYTES).expect("scans");
    let damage = s.damage.expect("damage found");
    let resumes = damage.resumes_at.expect("valid records follow the damage");
    assert!(
        resumes > hole as u64 && resumes < ends[12],
        "the first valid record after the damage is found ({resumes}, the damage is at {hole})"
    );
    format::check_frame(
        &damaged[resumes as usize..],
        resumes,
        DEFAULT_MAX_RECORD_BYTES,
    )
    .expect("and it is a whole record");
}
