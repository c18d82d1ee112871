//! A guest console for one of several VMs: whole lines on stdout, each prefixed with the
//! VM's name, so the consoles of VMs running at once never mix within a line.

use std::io::Write;

/// The longest line kept back waiting for its newline; a guest printing more without one
/// has it shown in pieces of this size, so its console costs bounded memory.
const LONGEST_LINE: usize = 4096;

/// Writes what it is given to stdout line by line, each line prefixed with `[NAME] `.
/// A line is written whole (under stdout's lock) once its newline comes; what is left
/// without one is written, ended by a newline, when the writer is dropped.
///
/// ```text
/// let mut console = PrefixedLines::new("vm-a");
/// console.write_all(b"hello\nwor")?; // prints "[vm-a] hello\n"
/// drop(console);                      // prints "[vm-a] wor\n"
/// ```
pub struct PrefixedLines {
    prefix: Vec<u8>,
    partial: Vec<u8>,
}

impl PrefixedLines {
    /// The console of VM `name`.
    pub fn new(name: &str) -> Self {
        Self {
            prefix: format!("[{name}] ").into_bytes(),
            partial: Vec::new(),
        }
    }

    fn emit(&self, line: &[u8]) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&self.prefix)?;
        stdout.write_all(line)?;
        if line.last() != Some(&b'\n') {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()
    }
}

impl Write for PrefixedLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line_end = start + end + 1;
            self.emit(&self.partial[start..line_end])?;
            start = line_end;
        }
        while self.partial.len() - start >= LONGEST_LINE {
            self.emit(&self.partial[start..start + LONGEST_LINE])?;
            start += LONGEST_LINE;
        }
        self.partial.drain(..start);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // A partial line stays back: its end may come with the next write.
        std::io::stdout().flush()
    }
}

impl Drop for PrefixedLines {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let _ = self.emit(&self.partial);
        }
    }
}
