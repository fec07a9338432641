//! Node lists as the batch systems write them: pure parsers.
//!
//! [`expand_hostlist`] expands a Slurm host list, [`parse_nodefile`] reads
//! the text of a PBS node file. They take text and return host names; the
//! shell reads the environment variables and files they come from, and
//! picks which one applies.
//!
//! Host lists are expanded the way Slurm 22.05's `scontrol show hostnames`
//! does: items are separated by commas (or whitespace) outside brackets,
//! empty items are skipped, a bracket group holds comma-separated numbers
//! and `lo-hi` ranges, the width of `lo` sets the zero padding, several
//! groups in one name are a cartesian product (first group outermost), and
//! text after the last group is refused. Duplicates are kept. Unlike
//! Slurm (which prints something odd for them), unbalanced brackets, an
//! open range (`a[1-]`) and an empty list are errors.

/// Largest number of hosts one host list may expand to.
pub const MAX_HOSTS: usize = 1 << 20;

/// A host list that cannot be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostlistError {
    #[error("the host list is empty")]
    Empty,
    #[error("host list {list:?}: unbalanced brackets in {item:?}")]
    Unbalanced { list: String, item: String },
    #[error("host list {list:?}: range {range:?} in {item:?} is reversed (the first number must not be larger than the second)")]
    ReversedRange {
        list: String,
        item: String,
        range: String,
    },
    #[error(
        "host list {list:?}: {range:?} in {item:?} is not a number or a range of numbers like 1-4"
    )]
    NotNumeric {
        list: String,
        item: String,
        range: String,
    },
    #[error("host list {list:?}: text {suffix:?} after the last bracket group of {item:?} is not supported (Slurm refuses it too)")]
    TextAfterBrackets {
        list: String,
        item: String,
        suffix: String,
    },
    #[error("host list {list:?} expands to more than {MAX_HOSTS} hosts")]
    TooManyHosts { list: String },
}

/// Expands a Slurm host list (`nid[001-004,010],login1`) into host names.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>, HostlistError> {
    let mut hosts = Vec::new();
    for item in split_items(list).map_err(|item| HostlistError::Unbalanced {
        list: list.to_owned(),
        item,
    })? {
        expand_item(list, &item, &mut hosts)?;
        if hosts.len() > MAX_HOSTS {
            return Err(HostlistError::TooManyHosts {
                list: list.to_owned(),
            });
        }
    }
    if hosts.is_empty() {
        return Err(HostlistError::Empty);
    }
    Ok(hosts)
}

/// Splits on commas and whitespace outside brackets; skips empty items.
/// `Err(item)` when brackets do not balance.
fn split_items(list: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for character in list.chars() {
        match character {
            '[' => {
                depth += 1;
                current.push(character);
            }
            ']' => {
                if depth == 0 {
                    current.push(character);
                    return Err(current);
                }
                depth -= 1;
                current.push(character);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut current)),
            c if c.is_whitespace() && depth == 0 => items.push(std::mem::take(&mut current)),
            _ => current.push(character),
        }
    }
    if depth != 0 {
        return Err(current);
    }
    items.push(current);
    Ok(items.into_iter().filter(|item| !item.is_empty()).collect())
}

/// One piece of a host name: literal text or the numbers of a bracket group.
enum Piece {
    Text(String),
    Numbers(Vec<String>),
}

fn expand_item(list: &str, item: &str, hosts: &mut Vec<String>) -> Result<(), HostlistError> {
    let unbalanced = || HostlistError::Unbalanced {
        list: list.to_owned(),
        item: item.to_owned(),
    };
    let mut pieces = Vec::new();
    let mut rest = item;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|at| open + at)
            .ok_or_else(unbalanced)?;
        let inside = &rest[open + 1..close];
        if inside.contains('[') {
            return Err(unbalanced());
        }
        pieces.push(Piece::Text(rest[..open].to_owned()));
        pieces.push(Piece::Numbers(expand_group(list, item, inside)?));
        rest = &rest[close + 1..];
    }
    let has_groups = !pieces.is_empty();
    if has_groups && !rest.is_empty() {
        return Err(HostlistError::TextAfterBrackets {
            list: list.to_owned(),
            item: item.to_owned(),
            suffix: rest.to_owned(),
        });
    }
    if !has_groups {
        hosts.push(rest.to_owned());
        return Ok(());
    }
    // Cartesian product, first group outermost.
    let mut names = vec![String::new()];
    for piece in pieces {
        names = match piece {
            Piece::Text(text) => names.into_iter().map(|name| name + &text).collect(),
            Piece::Numbers(numbers) => {
                if names.len().saturating_mul(numbers.len()) > MAX_HOSTS {
                    return Err(HostlistError::TooManyHosts {
                        list: list.to_owned(),
                    });
                }
                names
                    .iter()
                    .flat_map(|name| numbers.iter().map(move |number| format!("{name}{number}")))
                    .collect()
            }
        };
    }
    hosts.extend(names);
    Ok(())
}

/// Expands the inside of one bracket group (`001-004,010`).
fn expand_group(list: &str, item: &str, inside: &str) -> Result<Vec<String>, HostlistError> {
    let not_numeric = |range: &str| HostlistError::NotNumeric {
        list: list.to_owned(),
        item: item.to_owned(),
        range: range.to_owned(),
    };
    let is_number = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let mut numbers = Vec::new();
    for range in inside.split(',') {
        let (low_text, high_text) = match range.split_once('-') {
            Some((low, high)) => (low, high),
            None => (range, range),
        };
        if !is_number(low_text) || !is_number(high_text) {
            return Err(not_numeric(range));
        }
        let low: u64 = low_text.parse().map_err(|_| not_numeric(range))?;
        let high: u64 = high_text.parse().map_err(|_| not_numeric(range))?;
        if low > high {
            return Err(HostlistError::ReversedRange {
                list: list.to_owned(),
                item: item.to_owned(),
                range: range.to_owned(),
            });
        }
        if high - low >= MAX_HOSTS as u64 {
            return Err(HostlistError::TooManyHosts {
                list: list.to_owned(),
            });
        }
        let width = low_text.len();
        numbers.extend((low..=high).map(|number| format!("{number:0width$}")));
    }
    Ok(numbers)
}

/// A line of a node file that is not a host name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct NodefileError {
    /// The line's number, from 1.
    pub line: usize,
    pub error: protocol::NodeNameError,
}

/// Host names from a PBS node file: lines trimmed, blanks skipped,
/// duplicates removed (PBS repeats a host once per slot), order kept. A
/// line that is not a host name (`g1 --evil-flag`) is an error naming the
/// line, so nothing from the file reaches a launcher's arguments.
pub fn parse_nodefile(text: &str) -> Result<Vec<String>, NodefileError> {
    let mut seen = std::collections::HashSet::new();
    let mut nodes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        protocol::limits::check_host_name(name).map_err(|error| NodefileError {
            line: index + 1,
            error,
        })?;
        if seen.insert(name) {
            nodes.push(name.to_owned());
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host lists and what `scontrol show hostnames` (Slurm 22.05) prints
    /// for them, one host per line. `None`: scontrol prints nothing on
    /// stdout ("Invalid hostlist" on stderr) and we return an error.
    const SCONTROL_TABLE: &[(&str, Option<&[&str]>)] = &[
        (
            "nid[001-004,010],login1",
            Some(&["nid001", "nid002", "nid003", "nid004", "nid010", "login1"]),
        ),
        ("n[8-11]", Some(&["n8", "n9", "n10", "n11"])),
        ("a[1-2]b[1-2]", Some(&["a1b1", "a1b2", "a2b1", "a2b2"])),
        ("x[08-11]", Some(&["x08", "x09", "x10", "x11"])),
        ("a[01-3]", Some(&["a01", "a02", "a03"])),
        ("a[00-02]", Some(&["a00", "a01", "a02"])),
        ("a[0-0]", Some(&["a0"])),
        ("a[9-11]", Some(&["a9", "a10", "a11"])),
        ("a[1,3,5]", Some(&["a1", "a3", "a5"])),
        ("a,,b", Some(&["a", "b"])),
        (" a , b ", Some(&["a", "b"])),
        ("a b", Some(&["a", "b"])),
        ("a[1-2],a[1-2]", Some(&["a1", "a2", "a1", "a2"])),
        ("n[1-3],m", Some(&["n1", "n2", "n3", "m"])),
        (
            "x[1-2,5]y[1-2]",
            Some(&["x1y1", "x1y2", "x2y1", "x2y2", "x5y1", "x5y2"]),
        ),
        ("a[1-2][3-4]", Some(&["a13", "a14", "a23", "a24"])),
        (
            "rack[1-2]-node[01-02]",
            Some(&[
                "rack1-node01",
                "rack1-node02",
                "rack2-node01",
                "rack2-node02",
            ]),
        ),
        ("login1", Some(&["login1"])),
        ("a[3-1]", None),
        ("a[1-x]", None),
        ("a[]", None),
        ("a[-2]", None),
        ("c[1-2]-ib", None),
        ("x[0-1]y[5-6]z", None),
        ("a[[1-2]]", None),
        ("a[1-2]]", None),
    ];

    #[test]
    fn expansion_matches_the_scontrol_table() {
        for (list, expected) in SCONTROL_TABLE {
            let actual = expand_hostlist(list);
            match expected {
                Some(hosts) => assert_eq!(
                    actual.as_deref().ok(),
                    Some(
                        hosts
                            .iter()
                            .map(|h| h.to_string())
                            .collect::<Vec<_>>()
                            .as_slice()
                    ),
                    "host list {list:?}: {actual:?}"
                ),
                None => assert!(actual.is_err(), "host list {list:?} must fail: {actual:?}"),
            }
        }
    }

    #[test]
    fn errors_are_typed_and_name_the_problem() {
        // The list, a fragment of the message, the variant (by its name).
        let cases = [
            ("", "empty", "Empty"),
            (" , ", "empty", "Empty"),
            ("a[1-2", "unbalanced", "Unbalanced"),
            ("a1-2]", "unbalanced", "Unbalanced"),
            ("a[[1-2]]", "unbalanced", "Unbalanced"),
            (
                "a[3-1]",
                "\"3-1\" in \"a[3-1]\" is reversed",
                "ReversedRange",
            ),
            ("a[1-x]", "\"1-x\"", "NotNumeric"),
            ("a[1-]", "not a number", "NotNumeric"),
            ("a[]", "not a number", "NotNumeric"),
            ("c[1-2]-ib", "\"-ib\"", "TextAfterBrackets"),
            ("a[0-99999999]", "more than", "TooManyHosts"),
            ("a[0-9999]b[0-9999]", "more than", "TooManyHosts"),
        ];
        for (list, fragment, variant) in cases {
            let error = expand_hostlist(list).expect_err(list);
            assert!(
                error.to_string().contains(fragment),
                "{list:?}: {error} does not contain {fragment:?}"
            );
            let debug = format!("{error:?}");
            assert!(
                debug == variant || debug.starts_with(&format!("{variant} ")),
                "{list:?}: {debug} is not {variant}"
            );
        }
    }

    #[test]
    fn nodefile_is_trimmed_deduplicated_and_ordered() {
        assert_eq!(
            parse_nodefile("n2\n n1 \n\nn2\n\tn3\nn1\n"),
            Ok(vec!["n2".to_owned(), "n1".to_owned(), "n3".to_owned()])
        );
        assert_eq!(parse_nodefile("\n  \n"), Ok(Vec::new()));
    }

    #[test]
    fn a_node_file_line_that_is_not_a_host_name_is_an_error_naming_the_line() {
        let error = parse_nodefile("g0\ng1 --evil-flag\n").expect_err("not a host name");
        assert_eq!(error.line, 2);
        assert_eq!(
            error.to_string(),
            "line 2: node name \"g1 --evil-flag\" is not a host name: \
             only letters, digits, hyphens and dots are allowed"
        );
        assert_eq!(
            parse_nodefile("\n-rf\n").map_err(|error| error.line),
            Err(2)
        );
    }

    /// Runs the real `scontrol show hostnames` (package `slurm-client`) on
    /// every case of [`SCONTROL_TABLE`]: it needs no controller, only a
    /// minimal `SLURM_CONF`.
    #[test]
    fn scontrol_agrees_with_the_table() {
        let temp = tempfile::tempdir().expect("tempdir");
        let conf = temp.path().join("slurm.conf");
        std::fs::write(&conf, "ClusterName=rhtex-test\nSlurmctldHost=localhost\n")
            .expect("write slurm.conf");
        for (list, expected) in SCONTROL_TABLE {
            let output = std::process::Command::new("scontrol")
                .args(["show", "hostnames", list])
                .env("SLURM_CONF", &conf)
                .output()
                .unwrap_or_else(|error| {
                    panic!("cannot run scontrol ({error}): install it with `apt-get install -y slurm-client`")
                });
            let stdout = String::from_utf8_lossy(&output.stdout);
            let printed: Vec<&str> = stdout.lines().collect();
            let expected: Vec<&str> = expected.map(|hosts| hosts.to_vec()).unwrap_or_default();
            assert_eq!(
                printed,
                expected,
                "scontrol show hostnames {list:?} (stderr: {})",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
