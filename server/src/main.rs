//! `tickforge-server`: the server with the reference games, arena and drift. (A game's own
//! server binary runs the same command line with its games: [`tickforge_server::cli::main`].)

fn main() -> anyhow::Result<()> {
    tickforge_server::cli::main(tickforge_server::game::builtin())
}
