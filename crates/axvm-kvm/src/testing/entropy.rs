//! Where the fuzz harnesses get their choices: a seeded generator for the repeatable runs of
//! `cargo test`, or the bytes of a cargo-fuzz input, which the fuzzer mutates with coverage
//! feedback. A harness written against [`Entropy`] runs unchanged under both.

/// A source of choices for a fuzz harness.
pub trait Entropy {
    /// `len` (1..=8) bytes' worth of choice, little-endian (a byte source that has run out
    /// answers zeros).
    fn bytes(&mut self, len: usize) -> u64;

    /// A full 64-bit choice.
    fn next(&mut self) -> u64 {
        self.bytes(8)
    }

    /// A choice in `0..n` (`n` > 0), drawn from as few bytes as `n` needs, so that a fuzzer
    /// sees one input byte per small decision.
    fn below(&mut self, n: u64) -> u64 {
        let len = match n {
            0..=0x100 => 1,
            0x101..=0x1_0000 => 2,
            0x1_0001..=0xffff_ffff => 4,
            _ => 8,
        };
        self.bytes(len) % n.max(1)
    }

    /// True `k` times in `n`.
    fn chance(&mut self, k: u64, n: u64) -> bool {
        self.below(n) < k
    }

    /// One of `items` (not empty).
    fn pick<T: Copy>(&mut self, items: &[T]) -> T
    where
        Self: Sized,
    {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A tiny xorshift64* generator: the seeded runs' source, no dependency.
///
/// ```
/// use axvm_kvm::testing::entropy::{Entropy, SeededRng};
/// let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
/// assert_eq!(a.next(), b.next());
/// assert!(a.below(10) < 10);
/// ```
pub struct SeededRng(u64);

impl SeededRng {
    /// The generator of `seed` (nearby seeds start far apart).
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds start far apart (and never at 0).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }
}

impl Entropy for SeededRng {
    fn bytes(&mut self, len: usize) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let value = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        match len {
            0 => 0,
            1..=7 => value >> (64 - 8 * len),
            _ => value,
        }
    }
}

/// A fuzzer's input read front to back; zeros once it runs out, so every input is a case.
///
/// ```
/// use axvm_kvm::testing::entropy::{Entropy, FuzzBytes};
/// let mut input = FuzzBytes::new(&[0x34, 0x12, 7]);
/// assert_eq!(input.bytes(2), 0x1234);
/// assert_eq!(input.below(5), 2);
/// assert_eq!(input.next(), 0);
/// assert!(input.is_empty());
/// ```
pub struct FuzzBytes<'a>(&'a [u8]);

impl<'a> FuzzBytes<'a> {
    /// A source reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Up to `len` raw bytes of the input (fewer when it runs out).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        head
    }
}

impl Entropy for FuzzBytes<'_> {
    fn bytes(&mut self, len: usize) -> u64 {
        let mut buf = [0u8; 8];
        let taken = self.take(len.min(8));
        buf[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(buf)
    }
}

/// The default first seed of a seeded run.
const DEFAULT_SEED: u64 = 0x05ee_da11_ce0f_b10c;

/// The number in environment variable `name` (decimal, or hex after `0x`).
fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The seeds of a seeded run's cases: `AXVM_FUZZ_ITERATIONS` (default
/// `default_iterations`) of them from `AXVM_FUZZ_SEED` (default a fixed seed), so a failure
/// names the seed that reproduces it.
pub fn seeds(default_iterations: u64) -> impl Iterator<Item = u64> {
    let base = env_u64("AXVM_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let iterations = env_u64("AXVM_FUZZ_ITERATIONS").unwrap_or(default_iterations);
    (0..iterations).map(move |i| base ^ i)
}
