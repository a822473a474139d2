//! The fingerprint that names feature caches and identifies backbones: 64-bit FNV-1a over
//! length-delimited pieces. Bottom-level (no crate imports), so loaders and caches can share it.

/// 64-bit FNV-1a, the fingerprint of caches and backbones (not cryptographic: it names files).
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    /// Mixes `bytes` in, length-delimited.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
        // Length-delimited, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= bytes.len() as u64;
        self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        self
    }
    /// Mixes a string's bytes in.
    pub fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }
    /// Mixes `v` in (8 bytes, little-endian).
    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    /// The 64-bit value.
    pub fn value(self) -> u64 {
        self.0
    }
    /// The fingerprint as 16 hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}
