//! A flush the guest saw complete is on the disk: `axvm run` of the virtio guest in its
//! durability mode (`virtio.durability=N`: write block k, flush, print `virtio: flushed k`),
//! killed with SIGKILL after a random number of `flushed` lines; every block whose flush
//! was printed must then be in the disk file exactly, and no sector may hold anything but
//! its old contents or its block.
//!
//! A SIGKILL loses no page cache, so this proves the ordering a guest relies on (the
//! device completes a flush only after the writes before it reached the file, and the
//! used entry only after that), not that `fdatasync` reaches the platter: that needs a
//! power cut, which a test cannot make.
//!
//! The kill counts come from a seed, `AXVM_DURABILITY_SEED` or else the clock; every
//! failure message names it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{replace, require_kvm, Scratch, DEADLINE};

/// Blocks the guest writes per run.
const BLOCKS: u64 = 200;
const SECTOR: usize = 512;
/// What each sector of the disk holds before the guest runs.
const OLD_BYTE: u8 = 0xa5;

/// Block `k` as the guest writes it (guests/virtio/src/blk.rs `durability_block`): the text
/// `block <k>` and a newline, then from byte i on the letter `b'a' + (k + i) % 26`.
fn durability_block(k: u64) -> Vec<u8> {
    let mut block = format!("block {k}\n").into_bytes();
    let text = block.len();
    block.extend((text..SECTOR).map(|i| b'a' + ((k + i as u64) % 26) as u8));
    block
}

/// The virtio guest's config with only `vda` (on `disk.img`) and the durability mode.
fn config() -> String {
    let mut text = axvm_guests::VIRTIO_CONFIG.to_string();
    for row in [
        "    [\"net0\", 0xd000_1000, 0x1000, 6, 0xE2, []],   # virtio-net\n",
        "    [\"hvc0\", 0xd000_2000, 0x1000, 7, 0xE3, []],   # virtio-console\n",
        "net0 = { net = \"switch:lan\" }",
    ] {
        text = replace(&text, row, "");
    }
    replace(
        &text,
        "cmdline = \"console=ttyS0\"",
        &format!("cmdline = \"console=ttyS0 virtio.durability={BLOCKS}\""),
    )
}

/// A seeded xorshift64: the kill counts.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("AXVM_DURABILITY_SEED")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1
}

/// Starts `axvm run` on the config in `scratch`, its stdout lines arriving on the channel.
fn start(scratch: &Scratch) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("run")
        .arg(scratch.path("vm.toml"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start axvm");
    let stdout = child.stdout.take().expect("piped");
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// The block number of a `virtio: flushed <k>` line.
fn flushed(line: &str) -> Option<u64> {
    line.trim_end()
        .strip_prefix("virtio: flushed ")?
        .parse()
        .ok()
}

/// One run killed after `kill_after` flushed lines; returns the flushed blocks it printed
/// (all of them: lines still in the pipe after the kill count too) and its console.
fn run_and_kill(scratch: &Scratch, kill_after: u64, seed: u64) -> (Vec<u64>, Vec<String>) {
    let (mut child, lines) = start(scratch);
    let mut console = Vec::new();
    let mut seen = Vec::new();
    while (seen.len() as u64) < kill_after {
        match lines.recv_timeout(DEADLINE) {
            Ok(line) => {
                seen.extend(flushed(&line));
                console.push(line);
            }
            // axvm ended (the guest finished or failed) before the kill point.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("seed {seed}: no output for {DEADLINE:?}; console: {console:#?}");
            }
        }
    }
    // SIGKILL: no chance to flush or clean up.
    let _ = child.kill();
    let status = child.wait().expect("cannot wait for axvm");
    for line in lines.iter() {
        seen.extend(flushed(&line));
        console.push(line);
    }
    let killed = {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(SIGKILL)
    };
    assert!(
        killed || status.success(),
        "seed {seed}: axvm ended with {status} before the kill; console: {console:#?}"
    );
    (seen, console)
}

/// SIGKILL's number (POSIX fixes it at 9).
const SIGKILL: i32 = 9;

/// Checks the disk after a run that printed `flushed` for `seen`.
fn check_disk(disk: &[u8], seen: &[u64], seed: u64, kill_after: u64) {
    for (k, want) in seen.iter().enumerate() {
        assert_eq!(
            *want, k as u64,
            "seed {seed}: flushed lines out of order: {seen:?}"
        );
    }
    for k in 0..BLOCKS {
        let at = k as usize * SECTOR;
        let sector = &disk[at..at + SECTOR];
        let block = durability_block(k);
        if (k as usize) < seen.len() {
            assert!(
                sector == &block[..],
                "seed {seed} (killed after {kill_after} flushes): block {k} was reported \
                 flushed but the disk holds {:?}",
                String::from_utf8_lossy(&sector[..32])
            );
        } else {
            assert!(
                sector == &block[..] || sector.iter().all(|&b| b == OLD_BYTE),
                "seed {seed}: sector {k} is neither its old contents nor block {k}: {:?}",
                String::from_utf8_lossy(&sector[..32])
            );
        }
    }
}

fn flushed_blocks_survive_sigkill() {
    require_kvm();
    let seed = seed();
    let mut rng = Rng(seed);
    for round in 0..3 {
        let scratch = Scratch::new("durability");
        scratch.copy_image(axvm_guests::VIRTIO_PATH, "virtio");
        scratch.write("vm.toml", config());
        scratch.write("disk.img", vec![OLD_BYTE; 2 * BLOCKS as usize * SECTOR]);
        let kill_after = 1 + rng.below(BLOCKS - 1);
        let (seen, console) = run_and_kill(&scratch, kill_after, seed);
        assert!(
            seen.len() as u64 >= kill_after.min(BLOCKS),
            "seed {seed} round {round}: killed after {kill_after} but saw {} flushes; \
             console: {console:#?}",
            seen.len()
        );
        let disk = std::fs::read(scratch.path("disk.img")).expect("disk");
        check_disk(&disk, &seen, seed, kill_after);
        // The rest of the disk was never the guest's to write.
        let rest = &disk[BLOCKS as usize * SECTOR..];
        assert!(
            rest.iter().all(|&b| b == OLD_BYTE),
            "seed {seed}: beyond the blocks"
        );
    }
}

fn an_uninterrupted_run_writes_every_block() {
    require_kvm();
    let scratch = Scratch::new("durability-all");
    scratch.copy_image(axvm_guests::VIRTIO_PATH, "virtio");
    scratch.write("vm.toml", config());
    scratch.write("disk.img", vec![OLD_BYTE; 2 * BLOCKS as usize * SECTOR]);
    let output = common::run(&scratch.path("vm.toml"));
    assert_eq!(output.code(), 0, "{output:#?}");
    assert!(
        output
            .stdout
            .contains(&format!("virtio: durability ok: {BLOCKS} blocks")),
        "{output:#?}"
    );
    let seen: Vec<u64> = output.stdout.lines().filter_map(flushed).collect();
    assert_eq!(seen, (0..BLOCKS).collect::<Vec<_>>());
    let disk = std::fs::read(scratch.path("disk.img")).expect("disk");
    check_disk(&disk, &seen, 0, BLOCKS);
}

axvm_test_harness::main!(
    an_uninterrupted_run_writes_every_block,
    flushed_blocks_survive_sigkill
);
