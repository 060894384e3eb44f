//! Tiny flag parsing shared by the examples: `--name value` pairs and
//! switches. `-h`/`--help` prints the usage; an unknown flag or a missing
//! value prints it to stderr and exits with status 2.

use std::process::exit;
use std::str::FromStr;

/// The process arguments, checked against the flags the example knows.
pub struct Args(Vec<(String, Option<String>)>);

impl Args {
    /// Parses the process arguments: `valued` flags take the next argument
    /// as their value, `switches` take none. `usage` is the example's usage
    /// text, printed for `--help` (stdout, exit 0) and on a bad command line
    /// (stderr, exit 2).
    pub fn from_env(usage: &str, valued: &[&str], switches: &[&str]) -> Args {
        let mut given = std::env::args().skip(1);
        let mut parsed = Vec::new();
        while let Some(arg) = given.next() {
            if arg == "-h" || arg == "--help" {
                print!("{usage}");
                exit(0);
            }
            if switches.contains(&arg.as_str()) {
                parsed.push((arg, None));
                continue;
            }
            let problem = if !valued.contains(&arg.as_str()) {
                format!("unknown argument {arg:?}")
            } else if let Some(value) = given.next() {
                parsed.push((arg, Some(value)));
                continue;
            } else {
                format!("{arg} needs a value")
            };
            eprint!("{problem}\n{usage}");
            exit(2);
        }
        Args(parsed)
    }

    /// Whether the switch `name` was given.
    #[allow(dead_code)]
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|(flag, _)| flag == name)
    }

    /// The value of the last `name`, parsed, or `default`. Exits with a
    /// message on a value that does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.0.iter().rev().find(|(flag, _)| flag == name) {
            Some((_, Some(raw))) => raw.parse().unwrap_or_else(|_| {
                eprintln!("bad value {raw:?} for {name}");
                exit(2)
            }),
            _ => default,
        }
    }
}
