//! The two migration trees stay in step: `migrations/sqlite` and `migrations/postgres` hold the same
//! files, byte for byte, except the few listed in [`DIFFERENCES`], each with its reason; those are
//! equal once the edits listed for them cut out what only one backend says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One edit of a file's text before the comparison.
enum Edit {
    /// Every occurrence of the text, removed (a clause only one backend has).
    Remove(&'static str),
    /// Every line starting with the text (after indentation), removed (a comment about it).
    RemoveLines(&'static str),
    /// Every block of lines from one starting with `from` through the next one ending with
    /// `through`, removed (a statement only one backend can write this way).
    RemoveBlocks { from: &'static str, through: &'static str },
}

/// A file whose two versions differ, why, and what to cut from each so that they are equal.
struct Difference {
    file: &'static str,
    why: &'static str,
    sqlite: &'static [Edit],
    postgres: &'static [Edit],
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        file: "0004_usage.sql",
        why: "SQLite keeps the usage tables WITHOUT ROWID (rows in the primary-key b-tree: one write \
              per event instead of two); PostgreSQL has no such clause",
        sqlite: &[Edit::RemoveLines("-- WITHOUT ROWID:"), Edit::Remove(" WITHOUT ROWID")],
        postgres: &[],
    },
    Difference {
        file: "0005_tenant.sql",
        why: "consent records are append-only through triggers: SQLite writes the refusal in the \
              trigger body (RAISE(ABORT)), PostgreSQL needs a PL/pgSQL function for it",
        sqlite: &[Edit::RemoveBlocks { from: "CREATE TRIGGER consent_records_", through: "END;" }],
        postgres: &[
            Edit::RemoveBlocks {
                from: "CREATE FUNCTION consent_records_append_only()",
                through: "$$ LANGUAGE plpgsql;",
            },
            Edit::RemoveBlocks {
                from: "CREATE TRIGGER consent_records_no_change",
                through: "EXECUTE FUNCTION consent_records_append_only();",
            },
        ],
    },
];

fn tree(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend)
}

fn names(backend: &str) -> BTreeSet<String> {
    std::fs::read_dir(tree(backend))
        .unwrap_or_else(|e| panic!("migrations/{backend}: {e}"))
        .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn read(backend: &str, file: &str) -> String {
    std::fs::read_to_string(tree(backend).join(file)).unwrap_or_else(|e| panic!("migrations/{backend}/{file}: {e}"))
}

/// `text` with `edits` applied and runs of blank lines made one; panics if an edit finds nothing
/// (the list would describe a difference that is no longer there).
fn normalised(text: &str, edits: &[Edit], at: &str) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        let before = text.clone();
        text = match edit {
            Edit::Remove(token) => text.replace(token, ""),
            Edit::RemoveLines(prefix) => {
                text.lines().filter(|l| !l.trim_start().starts_with(prefix)).map(|l| format!("{l}\n")).collect()
            }
            Edit::RemoveBlocks { from, through } => {
                let mut kept = String::new();
                let mut inside = false;
                for line in text.lines() {
                    if !inside && line.trim_start().starts_with(from) {
                        inside = true;
                    }
                    if inside {
                        inside = !line.trim_end().ends_with(through);
                    } else {
                        kept.push_str(line);
                        kept.push('\n');
                    }
                }
                assert!(!inside, "{at}: a block from {from:?} never reaches {through:?}");
                kept
            }
        };
        let what = match edit {
            Edit::Remove(s) | Edit::RemoveLines(s) | Edit::RemoveBlocks { from: s, .. } => s,
        };
        assert!(text != before, "{at}: the edit {what:?} found nothing to cut; update DIFFERENCES");
    }
    let mut out = String::new();
    for line in text.lines() {
        if !(line.trim().is_empty() && out.ends_with("\n\n")) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

#[test]
fn both_backends_have_the_same_migrations() {
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert_eq!(sqlite, postgres, "a migration exists for one backend only");
    assert!(sqlite.len() >= 9, "{sqlite:?}");
}

#[test]
fn migrations_are_identical_on_both_backends_except_the_listed_differences() {
    for file in names("sqlite") {
        let (sqlite, postgres) = (read("sqlite", &file), read("postgres", &file));
        match DIFFERENCES.iter().find(|d| d.file == file) {
            None => assert!(
                sqlite == postgres,
                "{file} differs between the backends: make the two equal, or list the difference \
                 (with its reason) in DIFFERENCES"
            ),
            Some(d) => {
                assert_ne!(sqlite, postgres, "{file} is identical on both backends now: take it out of DIFFERENCES");
                assert!(!d.why.is_empty());
                let s = normalised(&sqlite, d.sqlite, &format!("sqlite/{file}"));
                let p = normalised(&postgres, d.postgres, &format!("postgres/{file}"));
                assert!(
                    s == p,
                    "{file} differs beyond what DIFFERENCES allows ({}):\n--- sqlite\n{s}\n--- postgres\n{p}",
                    d.why
                );
            }
        }
    }
    for d in DIFFERENCES {
        assert!(names("sqlite").contains(d.file), "DIFFERENCES names {}, which is no migration", d.file);
    }
}

#[test]
fn the_comparison_notices_a_change_on_one_side() {
    let d = &DIFFERENCES[0];
    let sqlite = read("sqlite", d.file).replace("quantity    BIGINT", "quantity    INTEGER");
    let postgres = read("postgres", d.file);
    assert_ne!(normalised(&sqlite, d.sqlite, "sqlite"), normalised(&postgres, d.postgres, "postgres"));
}
