//! docs/GAMES.md teaches from this crate's code: every block there that starts with
//! `// examples/tag/FILE` must stand, line for line, in that file, so the tutorial cannot
//! drift from a game that builds and passes its tests.

use std::path::Path;

#[test]
fn every_snippet_of_games_md_is_in_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../../docs/GAMES.md")).expect("GAMES.md");
    let mut checked = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```rust") {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some(source) = block
            .first()
            .and_then(|l| l.strip_prefix("// examples/tag/"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(root.join(source))
            .unwrap_or_else(|e| panic!("GAMES.md quotes {source}, which cannot be read: {e}"));
        let file: Vec<&str> = text.lines().map(str::trim_end).collect();
        let snippet: Vec<&str> = block[1..].iter().map(|l| l.trim_end()).collect();
        assert!(
            file.windows(snippet.len()).any(|w| w == snippet.as_slice()),
            "this snippet of GAMES.md is not (or no longer) in examples/tag/{source}:\n{}",
            snippet.join("\n")
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "GAMES.md should quote the example throughout ({checked} blocks)"
    );
}
