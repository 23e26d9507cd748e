//! The README agrees with the binary: every setting is in its table, every command and document
//! is mentioned, and its walk-throughs can be run again (fresh addresses, every answer printed on
//! its own line). The walk-throughs themselves were run twice against `moltflow serve`; this keeps
//! later edits to the same rules.

use moltflow_app::config::settings::SETTINGS;

const README: &str = include_str!("../../../README.md");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn shell_blocks() -> Vec<&'static str> {
    README.split("```sh\n").skip(1).filter_map(|b| b.split("```").next()).collect()
}

#[test]
fn every_setting_is_in_the_configuration_table() {
    for s in SETTINGS {
        let row = format!("| `{}` |", s.variable());
        assert!(README.contains(&row), "README's configuration table lacks {}", s.variable());
    }
}

#[test]
fn every_command_and_document_is_mentioned() {
    for command in ["moltflow serve", "moltflow migrate", "moltflow hash-bench", "moltflow serve --help"] {
        assert!(README.contains(command), "README does not mention `{command}`");
    }
    for entry in std::fs::read_dir(format!("{ROOT}/docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            assert!(README.contains(&format!("](docs/{name})")), "README does not link docs/{name}");
        }
    }
    let license = std::fs::read_to_string(format!("{ROOT}/LICENSE")).expect("a LICENSE file");
    assert!(license.starts_with("MIT License") && license.contains("MoltFlow Admin developers"));
    assert!(README.contains("](LICENSE)"));
}

#[test]
fn walk_throughs_register_fresh_addresses_and_print_every_answer_on_its_own_line() {
    let blocks = shell_blocks();
    assert!(blocks.len() >= 6, "{}", blocks.len());
    for block in blocks {
        // Each address's local part is built from a shell value (a timestamp), so a second run
        // does not meet `409 email_taken`.
        for (before, _) in block.match_indices("@example.com").map(|(i, m)| (&block[..i], m)) {
            let local = before.rsplit(['"', '\'']).next().unwrap_or_default();
            let spliced = before.ends_with('\'') || local.contains('$');
            assert!(spliced, "a fixed address in a walk-through: {}", &before[before.len().saturating_sub(60)..]);
        }
        // A command that prints its answer ends it with a newline (`-w`); others save it to a file.
        let joined = block.replace("\\\n", " ");
        for command in joined.lines().map(str::trim).filter(|l| l.starts_with("curl ")) {
            let saved = command.contains(" > ") || command.contains(" -o ");
            assert!(saved || command.contains(" -w '"), "prints without a newline: {command}");
        }
    }
}
