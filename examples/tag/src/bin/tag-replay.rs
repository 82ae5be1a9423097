//! `tag-replay`: tickforge's replay tool (inspect, verify, seek, diff, export, recover) for tag
//! matches as well as the reference games'.

fn main() -> std::process::ExitCode {
    tickforge_replay::cli::main(tickforge_example_tag::games())
}
