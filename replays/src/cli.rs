//! The `tickforge-replay` command line, as a function: [`main`] runs it with the games it is
//! given, so a game developer's own binary gets every subcommand for their game in a few
//! lines:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     // The reference games, plus your own: `.with("tag", tag::Tag)`.
//!     tickforge_replay::cli::main(tickforge_server::game::builtin())
//! }
//! ```

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{DiffOutcome, ExportFilter, player_label};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tickforge_protocol::{EventKind, GameConfig, MatchId, Tick};
use tickforge_server::headless::{self, HeadlessMatch};
use tickforge_server::log::format::DEFAULT_MAX_RECORD_BYTES;
use tickforge_server::log::recover::{self, RecoverMode};
use tickforge_server::log::{FsyncPolicy, LogConfig};
use tickforge_server::sim::{Games, MatchSetup};

#[derive(Parser, Debug)]
#[command(
    name = "tickforge-replay",
    version,
    about = "Inspect, verify, seek, diff, export and record tickforge replay files",
    after_help = "Examples:
  tickforge-replay record --game arena --players 16 --ticks 36000 --out match.tfr
  tickforge-replay inspect match.tfr
  tickforge-replay verify match.tfr
  tickforge-replay seek match.tfr --tick 18000 > world.json
  tickforge-replay diff before.tfr after.tfr
  tickforge-replay export match.tfr --from-tick 100 --to-tick 200 --kind player_hit
  tickforge-replay recover crashed.tfr
  tickforge-replay project data/replays --db data/read-models.sqlite --rebuild
  tickforge-replay fetch --nats nats://127.0.0.1:4222 --match 7 --out match-000007.tfr

Exit codes: 0 success; 1 the replay diverges, differs or is corrupt; 2 bad usage or unreadable file."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Cluster mode: write match ID's replay file from the JetStream event stream, whichever
    /// nodes it ran on (every tick checked for order; `verify` the file to re-simulate it).
    #[command(
        after_help = "Example:\n  tickforge-replay fetch --nats nats://127.0.0.1:4222 --match 7 --out m7.tfr && tickforge-replay verify m7.tfr"
    )]
    Fetch {
        /// A NATS server of the cluster.
        #[arg(long)]
        nats: String,
        /// The match id.
        #[arg(long = "match")]
        match_id: u64,
        /// The replay file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Project replay files into the read models (docs/QUERIES.md) without re-simulating:
    /// each match from its checkpoint on, so a run killed midway loses and double-counts
    /// nothing when run again. `--rebuild` drops every read model first (how a schema change
    /// is applied).
    #[command(
        after_help = "Examples:\n  tickforge-replay project data/replays --db data/read-models.sqlite --rebuild\n  tickforge-replay project match-000007.tfr --db read-models.sqlite\n  tickforge-replay project --nats nats://127.0.0.1:4222 --db postgres://tf@db/reads --rebuild"
    )]
    Project {
        /// A replay directory (every match-*.tfr in it), or one replay file.
        #[arg(required_unless_present = "nats", conflicts_with = "nats")]
        source: Option<PathBuf>,
        /// Instead of files: a NATS server of a cluster; every match of its stream is read
        /// from its first message (and closed if the directory says it ended).
        #[arg(long)]
        nats: Option<String>,
        /// The read models: a SQLite file (created if missing) or a PostgreSQL URL
        /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE). Stop the server that writes
        /// them first, or use another database.
        #[arg(long)]
        db: String,
        /// Drop every read model and project from scratch.
        #[arg(long)]
        rebuild: bool,
        /// Print one JSON object of totals.
        #[arg(long)]
        json: bool,
    },
    /// Header, counts per event kind, ticks, duration, players, rejections and file health.
    #[command(after_help = "Example:\n  tickforge-replay inspect match.tfr --json")]
    Inspect {
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-simulate the match from its header and events and compare every tick's state hash.
    /// Exits 0 if every tick matches, 1 naming the first divergent tick and what differs.
    #[command(after_help = "Example:\n  tickforge-replay verify match.tfr")]
    Verify { file: PathBuf },
    /// Print the whole world at the end of a tick as JSON (through the nearest snapshot).
    #[command(
        after_help = "Example:\n  tickforge-replay seek match.tfr --tick 1800 | jq '.entities | length'"
    )]
    Seek {
        file: PathBuf,
        #[arg(long)]
        tick: u64,
    },
    /// Find the first tick where two replays diverge, and say how. Exits 1 if they differ.
    #[command(after_help = "Example:\n  tickforge-replay diff a.tfr b.tfr")]
    Diff { a: PathBuf, b: PathBuf },
    /// Print events as JSON lines, optionally filtered by tick range and kind.
    #[command(
        after_help = "Examples:\n  tickforge-replay export match.tfr --kind player_killed\n  tickforge-replay export match.tfr --from-tick 600 --to-tick 660 --rejections"
    )]
    Export {
        file: PathBuf,
        #[arg(long)]
        from_tick: Option<u64>,
        #[arg(long)]
        to_tick: Option<u64>,
        /// Only events of this kind (repeatable), e.g. player_hit.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Also print rejected commands (the audit trail) as {"rejected": …} lines.
        #[arg(long)]
        rejections: bool,
    },
    /// Play a headless match with scripted bots and record it, for fixtures and demos.
    #[command(
        after_help = "Example:\n  tickforge-replay record --game drift --players 8 --ticks 600 --seed 7 --out drift.tfr"
    )]
    Record {
        #[arg(long, default_value = "arena")]
        game: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        players: u32,
        #[arg(long, default_value_t = 3600)]
        ticks: u64,
        #[arg(long, default_value_t = 60)]
        tick_rate: u32,
        #[arg(long, default_value_t = 1)]
        match_id: u64,
        /// Game settings as JSON, overriding the defaults of --game, e.g.
        /// '{"width_mm": 8000, "height_mm": 8000}'. Unnamed settings keep their defaults.
        #[arg(long)]
        config: Option<String>,
        /// Take a full snapshot every this many ticks (0 = none).
        #[arg(long, default_value_t = 600)]
        snapshot_every: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a crashed or damaged file whole again: cut it back to its last whole tick, keeping
    /// a copy of the file as found beside it.
    #[command(
        after_help = "Example:\n  tickforge-replay recover crashed.tfr\n  tickforge-replay recover damaged.tfr --repair"
    )]
    Recover {
        file: PathBuf,
        /// Also cut at corruption that valid records follow (they are dropped; the copy keeps them).
        #[arg(long)]
        repair: bool,
    },
}

/// Parse the command line and run it, re-simulating matches of `games`; the exit code is as
/// `--help` states.
pub fn main(games: Games) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    match run(Cli::parse(), &games) {
        Ok(code) => code,
        // A file that contradicts itself is corrupt: exit 1, like damage or a divergence.
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<crate::ToolError>(),
                    Some(crate::ToolError::Corrupt(_))
                )
            }) =>
        {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What a `project` run projected.
#[derive(Default)]
struct Projected {
    /// Files, or matches of the stream, read.
    read: usize,
    /// Matches with new ticks.
    matches: u64,
    ticks: u64,
    events: u64,
    /// Seconds of play the new ticks are.
    play_s: f64,
}

impl Projected {
    fn add(&mut self, match_ticks: u64, events: u64, tick_rate_hz: u32) {
        self.ticks += match_ticks;
        self.events += events;
        self.play_s += match_ticks as f64 / f64::from(tick_rate_hz.max(1));
        self.matches += u64::from(match_ticks > 0);
    }
}

/// `tickforge-replay project`: from replay files, or from a cluster's stream.
fn project(
    source: Option<&Path>,
    nats: Option<&str>,
    db: &str,
    rebuild: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use tickforge_projections::{Projector, SqlStore, Target};

    let db = Target::parse(db);
    // A rebuild starts from empty tables, whatever their schema version was: it is how a
    // schema is changed.
    let mut store = if rebuild {
        SqlStore::open_emptied(&db)?
    } else {
        SqlStore::open(&db)?
    };
    store.bulk()?;
    let mut projector = Projector::new(store);
    let started = std::time::Instant::now();
    let (done, what) = match (source, nats) {
        (Some(source), None) => (project_files(&mut projector, source)?, "files"),
        (None, Some(url)) => (
            project_stream(&mut projector, url)?,
            "matches of the stream",
        ),
        _ => bail!("give a replay directory or file, or --nats URL for a cluster's stream"),
    };
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "source": if nats.is_some() { "stream" } else { "files" },
                "read": done.read,
                "matches_changed": done.matches,
                "ticks": done.ticks,
                "events": done.events,
                "seconds": elapsed,
                "events_per_second": done.events as f64 / elapsed,
                "real_time_factor": done.play_s / elapsed,
            })
        );
    } else {
        println!(
            "projected {} {what} into {db}: {} new ticks of {} matches, {} events ({:.0} events/s, {:.0}x real time)",
            done.read,
            done.ticks,
            done.matches,
            done.events,
            done.events as f64 / elapsed,
            done.play_s / elapsed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Project the replay files of `source` (a directory, or one file).
fn project_files(
    projector: &mut tickforge_projections::Projector<tickforge_projections::SqlStore>,
    source: &Path,
) -> anyhow::Result<Projected> {
    use tickforge_server::projection::project_file;
    let files: Vec<PathBuf> = if source.is_dir() {
        tickforge_server::matches::replay_files(source)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        vec![source.to_path_buf()]
    };
    if files.is_empty() {
        bail!(
            "{} holds no replay files (match-NNNNNN.tfr): give the server's replay directory, e.g. data/replays",
            source.display()
        );
    }
    // The bar counts bytes of the files: what the work is.
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bytes(total, "projecting");
    let mut done = Projected {
        read: files.len(),
        ..Projected::default()
    };
    let mut done_bytes = 0u64;
    for file in &files {
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let outcome = project_file(projector, file, None, &mut |at| {
            if let Some(bar) = &bar {
                bar.set_position(done_bytes + at.min(len));
            }
        })
        .with_context(|| format!("projecting {}", file.display()))?;
        projector
            .commit()
            .with_context(|| format!("committing {}", file.display()))?;
        projector.close(outcome.match_id);
        done_bytes += len;
        done.add(outcome.ticks, outcome.events, outcome.tick_rate_hz);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(done)
}

/// Project every match of a cluster's stream at `url`, each read whole, checked, from its
/// first message. A match is closed when its records end it or the directory says it ended.
fn project_stream(
    projector: &mut tickforge_projections::Projector<tickforge_projections::SqlStore>,
    url: &str,
) -> anyhow::Result<Projected> {
    use tickforge_server::cluster::takeover::{StreamReader, read_match};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reader = runtime
        .block_on(StreamReader::connect(url))
        .with_context(|| format!("connecting to {url}"))?;
    let ids = runtime
        .block_on(reader.match_ids())
        .with_context(|| format!("listing the matches of {url}"))?;
    let bar = progress(ids.len() as u64, "projecting matches");
    let mut done = Projected {
        read: ids.len(),
        ..Projected::default()
    };
    for (n, id) in ids.iter().enumerate() {
        let recorded = runtime
            .block_on(read_match(&reader.stream, *id))
            .with_context(|| format!("reading match {} from {url}", id.0))?;
        let ended = runtime.block_on(reader.ended(*id));
        projector.open(&recorded.header)?;
        let applied = tickforge_server::projection::apply_ticks(projector, id.0, &recorded.ticks)?
            .map_err(|gap| anyhow::anyhow!("{gap}"))?;
        if ended || applied.ended {
            let _ = projector.finish(id.0);
        }
        projector
            .commit()
            .with_context(|| format!("committing match {}", id.0))?;
        projector.close(id.0);
        done.add(applied.ticks, applied.events, recorded.header.tick_rate_hz);
        if let Some(bar) = &bar {
            bar.set_position(n as u64 + 1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(done)
}

/// A bar over `total` ticks, on a terminal and for work long enough to watch.
fn progress(total: u64, what: &str) -> Option<ProgressBar> {
    bar(
        total,
        2_000,
        what,
        "{msg} [{bar:40}] {pos}/{len} ticks ({per_sec}, {eta} left)",
    )
}

/// A bar over `total` bytes of files.
fn progress_bytes(total: u64, what: &str) -> Option<ProgressBar> {
    bar(
        total,
        1 << 20,
        what,
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    )
}

fn bar(total: u64, at_least: u64, what: &str, template: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || total < at_least {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn run(cli: Cli, games: &Games) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Fetch {
            nats,
            match_id,
            out,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let id = MatchId(match_id);
            let recorded = runtime
                .block_on(tickforge_server::cluster::takeover::fetch_match(&nats, id))
                .with_context(|| format!("reading match {match_id} from {nats}"))?;
            let ticks = recorded.ticks.len();
            let config = LogConfig {
                fsync: FsyncPolicy::Never,
                snapshot_every_ticks: recorded.header.snapshot_every_ticks,
                ..LogConfig::default()
            };
            let writer = tickforge_server::log::LogWriter::create(&out, &recorded.header, config)
                .with_context(|| format!("creating {}", out.display()))?;
            for t in recorded.ticks {
                writer.append_blocking(tickforge_server::cluster::records::batch_of(t))?;
            }
            writer.close()?;
            println!(
                "wrote {}: match {match_id}, {ticks} ticks from the event stream",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { file, json } => {
            let i =
                crate::inspect(&file).with_context(|| format!("inspecting {}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                let h = &i.header;
                println!(
                    "file        {} ({} bytes), format v{}, protocol v{}",
                    file.display(),
                    i.file_bytes,
                    h.format_version,
                    h.protocol_version
                );
                println!(
                    "match       {} · {} (rules v{}) · seed {} · {} Hz · created at {} ms since the epoch",
                    h.match_id,
                    h.game,
                    h.rules_version,
                    h.seed,
                    h.tick_rate_hz,
                    h.created_at_unix_ms
                );
                println!(
                    "ticks       1..={} ({:.1} s of play), last seq {}",
                    i.ticks, i.duration_s, i.last_seq
                );
                println!(
                    "snapshots   {} (every {} ticks)",
                    i.snapshots, h.snapshot_every_ticks
                );
                println!(
                    "players     {}",
                    i.players
                        .keys()
                        .map(|p| player_label(*p, &i.players))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                println!("events      {}", i.events);
                for (kind, n) in &i.events_by_kind {
                    println!("  {kind:<20} {n}");
                }
                println!("rejections  {}", i.rejections);
                for (rule, n) in &i.rejections_by_rule {
                    println!("  {rule:<20} {n}");
                }
                println!("health      {}", i.health);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Project {
            source,
            nats,
            db,
            rebuild,
            json,
        } => project(source.as_deref(), nats.as_deref(), &db, rebuild, json),
        Cmd::Verify { file } => {
            let (header, index, _) =
                crate::summary(&file).with_context(|| format!("opening {}", file.display()))?;
            let bar = progress(index.last_tick.0, "verifying");
            let started = std::time::Instant::now();
            let outcome = crate::verify_with(&file, games, |tick, _| {
                if let Some(bar) = &bar {
                    bar.set_position(tick.0);
                }
            })
            .with_context(|| format!("verifying {}", file.display()))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let elapsed = started.elapsed().as_secs_f64().max(1e-9);
            match outcome {
                Ok(v) => {
                    let play_s = v.ticks as f64 / f64::from(header.tick_rate_hz.max(1));
                    println!(
                        "verified {}: {} ticks, {} events, {} snapshots; every tick's state hash matches ({:.0} ticks/s, {:.0}x real time)",
                        file.display(),
                        v.ticks,
                        v.events,
                        v.snapshots_checked,
                        v.ticks as f64 / elapsed,
                        play_s / elapsed
                    );
                    let health = crate::describe_health(&v.health);
                    if v.health
                        .damage
                        .as_ref()
                        .is_some_and(|d| d.resumes_at.is_some())
                    {
                        println!("but the file is {health}");
                        return Ok(ExitCode::from(1));
                    }
                    if !v.health.clean_close {
                        println!("note: {health}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(d) => {
                    println!(
                        "{}: DIVERGES at tick {}: {}",
                        file.display(),
                        d.tick.0,
                        d.detail
                    );
                    if !d.parts.is_empty() {
                        println!("components that differ: {}", d.parts.join(", "));
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Seek { file, tick } => {
            let world = crate::seek_with(&file, Tick(tick), games)
                .with_context(|| format!("seeking {} to tick {tick}", file.display()))?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &world)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Diff { a, b } => {
            let (notes, outcome) = crate::diff(&a, &b).context("comparing replays")?;
            for note in &notes {
                println!("headers differ: {note}");
            }
            match outcome {
                DiffOutcome::Same { a_ticks, b_ticks } if a_ticks == b_ticks => {
                    println!("identical: {a_ticks} ticks, every event and hash the same");
                    Ok(if notes.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                DiffOutcome::Same { a_ticks, b_ticks } => {
                    println!(
                        "the same for {} ticks; then A has {a_ticks} ticks and B has {b_ticks}",
                        a_ticks.min(b_ticks)
                    );
                    Ok(ExitCode::from(1))
                }
                DiffOutcome::Diverged { tick, how } => {
                    println!("first divergence at tick {}:", tick.0);
                    for line in how {
                        println!("  {line}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Export {
            file,
            from_tick,
            to_tick,
            kinds,
            rejections,
        } => {
            if let Some(unknown) = kinds
                .iter()
                .find(|k| !EventKind::NAMES.contains(&k.as_str()))
            {
                bail!(
                    "unknown event kind {unknown:?}; kinds are: {}",
                    EventKind::NAMES.join(", ")
                );
            }
            let filter = ExportFilter {
                from_tick: from_tick.map(Tick),
                to_tick: to_tick.map(Tick),
                kinds,
                rejections,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match crate::export(&file, &filter, &mut out) {
                Ok(_) => {}
                Err(crate::ToolError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e).with_context(|| format!("exporting {}", file.display())),
            }
            match out.flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Record {
            game,
            seed,
            players,
            ticks,
            tick_rate,
            match_id,
            config,
            snapshot_every,
            out,
        } => {
            let config = match (GameConfig::default_for(&game), config) {
                (None, _) => bail!("unknown game {game:?}: use --game arena or --game drift"),
                (Some(default), None) => default,
                (Some(_), Some(json)) => {
                    let wrapped = format!("{{\"{game}\": {json}}}");
                    serde_json::from_str::<GameConfig>(&wrapped)
                        .with_context(|| format!("--config is not valid {game} settings: {json}"))?
                }
            };
            if tick_rate == 0 {
                bail!("--tick-rate must be at least 1");
            }
            let spec = HeadlessMatch {
                setup: MatchSetup {
                    match_id: MatchId(match_id),
                    seed,
                    tick_rate_hz: tick_rate,
                    game: config,
                },
                players,
                ticks,
                bot_seed: seed,
            };
            let log = LogConfig {
                fsync: FsyncPolicy::Never,
                snapshot_every_ticks: snapshot_every,
                ..LogConfig::default()
            };
            let created = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let bar = progress(ticks, "recording");
            let index = headless::record(&spec, &out, log, created, |r| {
                if let Some(bar) = &bar {
                    bar.set_position(r.tick.0);
                }
            })
            .with_context(|| format!("recording into {}", out.display()))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!(
                "recorded {}: {} ticks, {} events, {} rejections, {} snapshots",
                out.display(),
                index.last_tick.0,
                index.events,
                index.rejections,
                index.snapshots.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Recover { file, repair } => {
            let mode = if repair {
                RecoverMode::Repair
            } else {
                RecoverMode::Normal
            };
            match recover::recover(&file, mode, DEFAULT_MAX_RECORD_BYTES) {
                Ok(r) => {
                    match (r.cut_at, &r.kept_copy) {
                        (Some(at), Some(copy)) => println!(
                            "{}: cut back to tick {} (seq {}) at offset {at}; {} bytes dropped; the file as found is kept at {}",
                            file.display(),
                            r.scan.last_tick.0,
                            r.scan.last_seq.0,
                            r.scan.file_len - at,
                            copy.display()
                        ),
                        _ => println!(
                            "{}: nothing to recover ({})",
                            file.display(),
                            if r.scan.footer.is_some() {
                                "closed cleanly"
                            } else {
                                "every tick is whole"
                            }
                        ),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ tickforge_server::log::LogError::CorruptMidFile { .. }) => {
                    println!("{e}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e).with_context(|| format!("recovering {}", file.display())),
            }
        }
    }
}
