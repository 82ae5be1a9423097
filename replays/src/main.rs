//! `tickforge-replay`: inspect, verify, seek, diff, export, record and recover replay files of
//! the reference games. (A game's own binary runs the same command line with its games:
//! [`tickforge_replay::cli::main`].)

fn main() -> std::process::ExitCode {
    tickforge_replay::cli::main(tickforge_server::game::builtin())
}
