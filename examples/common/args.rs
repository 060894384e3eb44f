//! Tiny flag parsing shared by the examples: `--name value` pairs,
//! switches and positional arguments. `-h`/`--help` prints the usage; an
//! unknown flag, a missing value or a wrong number of positional arguments
//! prints it to stderr and exits with status 2.

use std::ops::RangeInclusive;
use std::process::exit;
use std::str::FromStr;

/// The process arguments, checked against what the example knows.
pub struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    /// Parses the process arguments: `valued` flags take the next argument
    /// as their value, `switches` take none, and no positional argument is
    /// allowed. `usage` is the example's usage text, printed for `--help`
    /// (stdout, exit 0) and on a bad command line (stderr, exit 2).
    #[allow(dead_code)]
    pub fn from_env(usage: &str, valued: &[&str], switches: &[&str]) -> Args {
        Self::with_positional(usage, valued, switches, 0..=0)
    }

    /// As [`from_env`](Self::from_env), with `positional` arguments that
    /// are not flags allowed (how many).
    pub fn with_positional(
        usage: &str,
        valued: &[&str],
        switches: &[&str],
        positional: RangeInclusive<usize>,
    ) -> Args {
        let fail = |problem: String| -> ! {
            eprint!("{problem}\n{usage}");
            exit(2)
        };
        let mut given = std::env::args().skip(1);
        let mut args = Args {
            flags: Vec::new(),
            positional: Vec::new(),
        };
        while let Some(arg) = given.next() {
            if arg == "-h" || arg == "--help" {
                print!("{usage}");
                exit(0);
            }
            if switches.contains(&arg.as_str()) {
                args.flags.push((arg, None));
            } else if valued.contains(&arg.as_str()) {
                match given.next() {
                    Some(value) => args.flags.push((arg, Some(value))),
                    None => fail(format!("{arg} needs a value")),
                }
            } else if arg.starts_with('-') {
                fail(format!("unknown argument {arg:?}"));
            } else {
                args.positional.push(arg);
            }
        }
        if !positional.contains(&args.positional.len()) {
            fail(match args.positional.first() {
                Some(first) if *positional.end() == 0 => format!("unknown argument {first:?}"),
                _ => "wrong number of arguments".into(),
            });
        }
        args
    }

    /// Whether the switch `name` was given.
    #[allow(dead_code)]
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(flag, _)| flag == name)
    }

    /// The value of the last `name`, parsed, or `default`. Exits with a
    /// message on a value that does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.flags.iter().rev().find(|(flag, _)| flag == name) {
            Some((_, Some(raw))) => raw.parse().unwrap_or_else(|_| {
                eprintln!("bad value {raw:?} for {name}");
                exit(2)
            }),
            _ => default,
        }
    }

    /// Every value given for `name`, in order (for flags that repeat).
    #[allow(dead_code)]
    pub fn values(&self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(flag, _)| flag == name)
            .filter_map(|(_, value)| value.clone())
            .collect()
    }

    /// The arguments that are not flags, in order.
    #[allow(dead_code)]
    pub fn positional(&self) -> &[String] {
        &self.positional
    }
}
