//! Tiny flag parsing shared by the examples: `--name value` pairs.

use std::str::FromStr;

/// The process arguments as `--flag value` pairs.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// Whether `--name` was given.
    #[allow(dead_code)]
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// The value after `--name`, parsed, or `default`. Exits with a message
    /// on a value that does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.0.iter().position(|a| a == name) {
            None => default,
            Some(i) => {
                let raw = self.0.get(i + 1).map(String::as_str).unwrap_or("");
                raw.parse().unwrap_or_else(|_| {
                    eprintln!("bad value {raw:?} for {name}");
                    std::process::exit(2)
                })
            }
        }
    }
}

#[allow(dead_code)]
impl Args {
    /// Checks the arguments against what the example knows: `-h`/`--help`
    /// prints `usage` (exit 0); an unknown flag, a flag without its value,
    /// or a number of positional arguments outside `positional` prints it
    /// to stderr and exits with status 2.
    pub fn check(
        &self,
        usage: &str,
        valued: &[&str],
        switches: &[&str],
        positional: std::ops::RangeInclusive<usize>,
    ) {
        let fail = |problem: String| -> ! {
            eprint!("{problem}\n{usage}");
            std::process::exit(2)
        };
        let mut given = self.0.iter();
        let mut count = 0;
        while let Some(arg) = given.next() {
            if arg == "-h" || arg == "--help" {
                print!("{usage}");
                std::process::exit(0);
            }
            if valued.contains(&arg.as_str()) {
                if given.next().is_none() {
                    fail(format!("{arg} needs a value"));
                }
            } else if arg.starts_with('-') && !switches.contains(&arg.as_str()) {
                fail(format!("unknown argument {arg:?}"));
            } else if !arg.starts_with('-') {
                count += 1;
            }
        }
        if !positional.contains(&count) {
            fail("wrong number of arguments".into());
        }
    }

    /// The arguments that are neither flags nor their values, in order.
    pub fn positional(&self, valued: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut given = self.0.iter();
        while let Some(arg) = given.next() {
            if valued.contains(&arg.as_str()) {
                given.next();
            } else if !arg.starts_with('-') {
                out.push(arg.clone());
            }
        }
        out
    }

    /// Every value given for `name`, in order (for flags that repeat).
    pub fn values(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut given = self.0.iter();
        while let Some(arg) = given.next() {
            if arg == name {
                out.extend(given.next().cloned());
            }
        }
        out
    }
}
