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
