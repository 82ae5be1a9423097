//! The fuzz corpora in `fuzz/corpus/`, replayed through the targets' own code by a plain
//! `cargo test`: every input the fuzzer found interesting (and every crash it ever found,
//! once fixed) stays a regression test.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{} should exist: {e}", dir.display()))
    {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("reads");
        run(&bytes);
        n += 1;
    }
    assert!(n > 0, "the {target} corpus should not be empty");
    n
}

#[test]
fn decode_message_corpus() {
    println!(
        "{} inputs",
        replay("decode_message", tickforge_tests::fuzz::decode_message)
    );
}

#[test]
fn validate_commands_corpus() {
    println!(
        "{} inputs",
        replay(
            "validate_commands",
            tickforge_tests::fuzz::validate_commands
        )
    );
}

#[test]
fn recover_log_corpus() {
    println!(
        "{} inputs",
        replay("recover_log", tickforge_tests::fuzz::recover_log)
    );
}

#[test]
fn seek_header_corpus() {
    for seed in tickforge_tests::fuzz::seek_header_seeds() {
        tickforge_tests::fuzz::seek_header(&seed);
    }
    println!(
        "{} inputs",
        replay("seek_header", tickforge_tests::fuzz::seek_header)
    );
}

/// Writes the seeds of the `seek_header` corpus (`cargo test --test fuzz_corpus -- --ignored`),
/// for when the header's shape changes.
#[test]
#[ignore = "writes the seek_header seed corpus"]
fn write_seek_header_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/seek_header");
    std::fs::create_dir_all(&dir).expect("creates the corpus directory");
    for (i, seed) in tickforge_tests::fuzz::seek_header_seeds()
        .iter()
        .enumerate()
    {
        std::fs::write(dir.join(format!("seed-{i}")), seed).expect("writes a seed");
    }
}
