//! I/O failure injection: the Nth write or fsync fails (an error, or a panic in the writer
//! thread), for every N over a short match. The writer stops and says so (no tick is taken
//! after the failure), and what reached the file reopens cleanly: whole ticks only, a prefix of
//! the match, verifying tick by tick.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tickforge_protocol::{ReplayIndex, Tick};
use tickforge_server::headless::{self, ScriptedBots};
use tickforge_server::log::format::{self, DEFAULT_MAX_RECORD_BYTES};
use tickforge_server::log::{
    FsyncPolicy, LogConfig, LogError, LogFile, LogWriter, Replayer, TickBatch, scan,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    WriteError,
    SyncError,
    WritePanic,
    SyncPanic,
}

/// A file that fails its `n`th write or sync, and keeps what was written before.
#[derive(Clone)]
struct FaultyFile {
    bytes: Arc<Mutex<Vec<u8>>>,
    fault: Fault,
    n: usize,
    writes: usize,
    syncs: usize,
}

impl LogFile for FaultyFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writes += 1;
        if self.writes == self.n {
            match self.fault {
                Fault::WriteError => return Err(std::io::Error::other("injected write failure")),
                Fault::WritePanic => panic!("injected panic in write"),
                _ => {}
            }
        }
        self.bytes
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.syncs += 1;
        if self.syncs == self.n {
            match self.fault {
                Fault::SyncError => return Err(std::io::Error::other("injected fsync failure")),
                Fault::SyncPanic => panic!("injected panic in fsync"),
                _ => {}
            }
        }
        Ok(())
    }
}

const TICKS: u64 = 40;

/// Run a short match into a faulty file; returns the bytes left and the tick the writer failed
/// at (as the caller saw it).
fn run(fault: Fault, n: usize) -> (Vec<u8>, Option<Tick>, Vec<TickBatch>) {
    let spec = common::spec("arena", 3, TICKS, 5);
    let mut sim = tickforge_server::game::builtin()
        .sim(&spec.setup)
        .expect("builds");
    let header = headless::header_for(&sim, 0, 10);
    let mut head = Vec::new();
    format::encode_header(&header, &mut head);
    let bytes = Arc::new(Mutex::new(head.clone()));
    let file = FaultyFile {
        bytes: bytes.clone(),
        fault,
        n,
        writes: 0,
        syncs: 0,
    };
    // One tick per write: the caller waits for each tick to be durable, like a slow match.
    let config = LogConfig {
        fsync: FsyncPolicy::PerTick,
        snapshot_every_ticks: 10,
        queue_ticks: 1,
        ..LogConfig::default()
    };
    let writer = LogWriter::start(
        Box::new(file),
        PathBuf::from("<faulty>"),
        head.len() as u64,
        ReplayIndex::default(),
        config,
    );
    let mut durability = writer.durability();
    let mut bots = ScriptedBots::new(&spec.setup.game, spec.players, spec.bot_seed);
    let mut stopped_at = None;
    let mut batches = Vec::new();
    for _ in 0..TICKS {
        let commands = bots.commands(&sim);
        let report = sim.run_tick(commands);
        let snapshot = writer.snapshot_due(report.tick).then(|| sim.snapshot());
        let batch = TickBatch::from_report(report, snapshot);
        batches.push(batch.clone());
        let tick = batch.tick;
        match writer.append_blocking(batch) {
            Ok(()) => {}
            Err(LogError::WriterStopped { .. }) => {
                stopped_at = Some(tick);
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        // Wait until this tick is durable or the writer has failed.
        let _ = wait_durable(&mut durability, tick);
    }
    let closed = writer.close();
    if stopped_at.is_none() && closed.is_err() {
        stopped_at = Some(Tick(TICKS + 1));
    }
    let bytes = bytes.lock().expect("not poisoned").clone();
    (bytes, stopped_at, batches)
}

/// Wait (polling, no runtime) until `tick` is durable or the writer failed or stopped.
fn wait_durable(
    durability: &mut tokio::sync::watch::Receiver<tickforge_server::log::Durability>,
    tick: Tick,
) -> bool {
    for _ in 0..2000 {
        let d = durability.borrow().clone();
        if d.durable_tick >= tick {
            return true;
        }
        if d.failed.is_some() || durability.has_changed().is_err() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    false
}

#[test]
fn every_injected_write_and_fsync_failure_stops_the_writer_and_leaves_a_clean_prefix() {
    // The injected panics are expected: keep them out of the test output.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("injected panic") {
            default(info);
        }
    }));
    let mut cases = 0;
    for fault in [
        Fault::WriteError,
        Fault::SyncError,
        Fault::WritePanic,
        Fault::SyncPanic,
    ] {
        for n in 1..=(TICKS as usize + 1) {
            let (bytes, stopped_at, batches) = run(fault, n);
            let failed = n <= TICKS as usize + 1 && stopped_at.is_some();
            let s = scan::scan(&bytes, DEFAULT_MAX_RECORD_BYTES)
                .expect("the header was written before any fault");
            assert!(
                s.damage.as_ref().is_none_or(|d| d.resumes_at.is_none()),
                "{fault:?} at op {n}: a failure may only tear the tail"
            );
            // The file's ticks are exactly the first ticks of the match, and they verify.
            let path = std::env::temp_dir().join(format!(
                "tickforge-fault-{}-{fault:?}-{n}.tfr",
                std::process::id()
            ));
            std::fs::write(&path, &bytes[..s.whole_end as usize]).expect("writes");
            let ticks = common::ticks(&path);
            let _ = std::fs::remove_file(&path);
            for (got, want) in ticks.iter().zip(&batches) {
                assert_eq!(
                    (got.tick, &got.events, got.end.hash),
                    (want.tick, &want.events, want.hash),
                    "{fault:?} at op {n}"
                );
            }
            let mut replayer = Replayer::new(&s.header, &tickforge_server::game::builtin())
                .expect("usable header");
            for t in &ticks {
                replayer.apply_tick(t).unwrap_or_else(|d| {
                    panic!("{fault:?} at op {n}: the prefix should verify: {d}")
                });
            }
            if n <= TICKS as usize {
                assert!(
                    failed,
                    "{fault:?} at op {n}: the writer should have stopped and said so"
                );
                let stopped = stopped_at.expect("stopped");
                assert!(
                    s.last_tick < stopped,
                    "{fault:?} at op {n}: no tick after the failure is accepted"
                );
            }
            cases += 1;
        }
    }
    println!(
        "{cases} injected failures (write/fsync × error/panic × every op of a {TICKS}-tick match): all stopped cleanly"
    );
}
