//! `tag-server`: tickforge's server, every flag of it, with tag beside the reference games.
//! `tag-server --game tag` makes tag the quick-join game.

fn main() -> anyhow::Result<()> {
    tickforge_server::cli::main(tickforge_example_tag::games())
}
