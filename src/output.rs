//! Standard output for the commands' answers. A reader that stops early
//! (`yibao history ID | head -3`, a closed pipe) ends the command quietly
//! with exit 0 — what was asked was answered as far as anyone reads — where
//! `println!` would panic (exit 101). Any other failure to write is exit 3
//! with the reason. Facts are appended and acknowledged before anything is
//! printed about them, so stopping here loses nothing.

use std::fmt;
use std::io::{self, Write};

/// `println!` for answers: see the module comment.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for answers: see the module comment.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// Writes to standard output, or ends the process (see the module comment).
pub fn write(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args) {
        stopped(&error);
    }
}

/// A write to standard output failed: exit 0 for a reader that went away,
/// else exit 3 naming the reason.
pub fn stopped(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {error}");
    std::process::exit(i32::from(crate::exit::FAILURE));
}

/// `Ok` for a closed pipe (the reader stopped reading), else the error:
/// for answers written through a handle (`log`, `export`).
pub fn ignore_broken_pipe(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error)
    }
}
