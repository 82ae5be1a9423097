//! Writes the tick frames of a real arena match, for client benchmarks in other languages
//! (clients/ts/bench/decode.ts reads them):
//! `cargo run --release -p tickforge-benches --bin tick-frames -- PLAYERS TICKS OUT`
//!
//! The file: a u32 (little-endian) length and that many bytes of MessagePack
//! `[components, snapshot]` (the component table and the start, as `Joined` gives them), then
//! per tick a u32 length and the tick frame a player with no answers receives.

use tickforge_benches::{arena_inputs, arena_with};
use tickforge_protocol::compact::{ComponentTable, PlayerPart, World, write_tick_frame};
use tickforge_protocol::encode;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [players, ticks, out] = args.as_slice() else {
        anyhow::bail!("usage: tick-frames PLAYERS TICKS OUT");
    };
    let (players, ticks): (u32, u32) = (players.parse()?, ticks.parse()?);
    let mut sim = arena_with(players);
    let names = sim.public_components();
    let mut world = World::new(ComponentTable::new(names.clone())?);
    let start = sim.client_snapshot();
    world.apply_snapshot(&start)?;
    let mut file = Vec::new();
    let head = encode(&(names, start))?;
    file.extend_from_slice(&(head.len() as u32).to_le_bytes());
    file.extend_from_slice(&head);
    let (mut bytes, mut seq) = (0usize, sim.client_snapshot().seq.0);
    for t in 1..=ticks {
        let inputs = arena_inputs(&sim, players, t);
        sim.run_tick(inputs);
        let delta = sim.take_delta();
        let mut encoded = Vec::new();
        world.encode_delta(&delta, &mut encoded)?;
        let mut frame = Vec::new();
        write_tick_frame(
            &mut frame,
            &PlayerPart::default(),
            delta.tick,
            delta.seq.0 - seq,
            &encoded,
        );
        seq = delta.seq.0;
        bytes += frame.len();
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&frame);
    }
    std::fs::write(out, &file)?;
    println!(
        "{ticks} ticks of arena with {players} players: {:.1} bytes per frame, written to {out}",
        bytes as f64 / f64::from(ticks)
    );
    Ok(())
}
