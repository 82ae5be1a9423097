//! docs/PROTOCOL.md is what client authors in other languages work from, so its examples are
//! checked against the codec: each example's hex must decode as its stated type, re-encode to
//! the same bytes, and equal its JSON form.

#[allow(dead_code)]
mod samples;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tickforge_protocol::{
    ClientMessage, DecodeLimits, ServerMessage, SpectatorMessage, decode_with, encode,
};

struct Example {
    name: String,
    ty: String,
    hex: String,
    json: String,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = doc.lines().peekable();
    let mut name = None;
    let mut ty = None;
    let mut hex = None;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("#### Example: ") {
            name = Some(rest.trim().to_string());
            ty = None;
            hex = None;
        } else if let Some(rest) = line.strip_prefix("Type: ") {
            ty = Some(rest.trim().to_string());
        } else if line.trim() == "```hex" || line.trim() == "```json" {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.trim() == "```" {
                    break;
                }
                body.push_str(inner.trim());
                body.push('\n');
            }
            if line.trim() == "```hex" {
                hex = Some(body);
            } else if let (Some(n), Some(t), Some(h)) = (name.take(), ty.take(), hex.take()) {
                out.push(Example {
                    name: n,
                    ty: t,
                    hex: h,
                    json: body,
                });
            }
        }
    }
    out
}

fn check<T: Serialize + DeserializeOwned>(example: &Example) {
    let hex: String = example
        .hex
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let bytes = hex::decode(&hex)
        .unwrap_or_else(|e| panic!("{}: the hex should be valid: {e}", example.name));
    let value: T = decode_with(&bytes, DecodeLimits::TRUSTED).unwrap_or_else(|e| {
        panic!(
            "{}: the documented bytes should decode as {}: {e}",
            example.name, example.ty
        )
    });
    assert_eq!(
        encode(&value).expect("encodes"),
        bytes,
        "{}: re-encoding should give the documented bytes",
        example.name
    );
    let documented: serde_json::Value = serde_json::from_str(&example.json)
        .unwrap_or_else(|e| panic!("{}: the JSON should parse: {e}", example.name));
    let actual = serde_json::to_value(&value).expect("serializes to JSON");
    assert_eq!(
        actual, documented,
        "{}: the JSON form should match the decoded message",
        example.name
    );
}

#[test]
fn protocol_doc_examples_match_the_codec() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md should exist");
    let examples = examples(&doc);
    assert!(
        examples.len() >= 9,
        "PROTOCOL.md should have at least 9 checked examples, found {}",
        examples.len()
    );
    for example in &examples {
        match example.ty.as_str() {
            "ClientMessage" => check::<ClientMessage>(example),
            "ServerMessage" => check::<ServerMessage>(example),
            "SpectatorMessage" => check::<SpectatorMessage>(example),
            other => panic!("{}: unknown example type {other}", example.name),
        }
    }
    println!("{} PROTOCOL.md examples checked", examples.len());
}

/// The tick frames of section 18, `#### Tick frame: NAME` with a hex block each, are the sample
/// frames the encoder writes (and which tests/compact.rs decodes).
#[test]
fn protocol_doc_tick_frames_are_the_encoders() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md should exist");
    let mut documented = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("#### Tick frame: ") else {
            continue;
        };
        let hex: String = lines
            .by_ref()
            .skip_while(|l| l.trim() != "```hex")
            .skip(1)
            .take_while(|l| l.trim() != "```")
            .collect::<String>()
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect();
        documented.push((name.trim().to_string(), hex));
    }
    let frames = samples::sample_frames();
    assert_eq!(
        documented.len(),
        frames.len(),
        "section 18 should show every sample tick frame"
    );
    for ((name, hex), (sample, bytes, _, _)) in documented.iter().zip(&frames) {
        assert_eq!(name, sample, "the tick frames in sample order");
        assert_eq!(
            *hex,
            hex::encode(bytes),
            "tick frame {name}: the documented bytes"
        );
    }
}
