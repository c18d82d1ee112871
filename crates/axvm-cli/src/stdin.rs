//! The guest console's input: the user's stdin, unless it is /dev/null.

use std::fs::File;
use std::io::Read;

/// Stdin, unless it is /dev/null (or closed): what the user types or pipes in reaches the
/// guest's serial console. A /dev/null stdin (`< /dev/null`, a service) gives no input at
/// all rather than an immediate end of file, and starts no thread.
pub fn stdin_as_console_input() -> Option<Box<dyn Read + Send>> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd().try_clone_to_owned().ok()?;
    let opened = File::from(fd).metadata().ok()?;
    let is_null = std::fs::metadata("/dev/null")
        .is_ok_and(|null| null.dev() == opened.dev() && null.ino() == opened.ino());
    (!is_null).then(|| Box::new(stdin) as Box<dyn Read + Send>)
}
