//! Which instructions the CPU path's inner loops use, picked at run time: AVX-512 VPOPCNTDQ (one
//! vector popcount per 8 words), AVX2 (nibble-table popcount with `vpshufb`, as AVX2 has no
//! vector popcount), scalar `popcnt`, or portable Rust (`u64::count_ones`, which compiles to
//! NEON `cnt` on aarch64 and to a bit-twiddling sequence on x86 without `popcnt`). Every level
//! computes the same integers; tests run each one the machine has.

use std::fmt;

use crate::error::{Error, Result};

/// An instruction-set level of the CPU path's kernels, from slowest to fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, no target features: runs everywhere.
    Portable,
    /// x86-64 scalar `popcnt` (the portable loop compiled with it).
    Popcnt,
    /// x86-64 AVX2: 256-bit XOR, popcount by nibble lookup (`vpshufb`) and `vpsadbw`.
    Avx2,
    /// x86-64 AVX-512F + VPOPCNTDQ: 512-bit XOR and `vpopcntq`.
    Avx512,
}

impl Isa {
    /// Every level, slowest first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Popcnt, Isa::Avx2, Isa::Avx512];

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The levels this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The fastest level this CPU can run.
    ///
    /// ```
    /// use bnn_transfer::cpu::Isa;
    /// let best = Isa::best();
    /// assert!(best.is_available() && Isa::available().contains(&best));
    /// assert!(Isa::Portable.is_available()); // everywhere
    /// ```
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// The level named by `BNN_CPU_ISA` (`portable`, `popcnt`, `avx2`, `avx512`) when set, else the
    /// best one; an unknown or unavailable name is an error that lists what this CPU has.
    pub fn from_env() -> Result<Isa> {
        match std::env::var("BNN_CPU_ISA") {
            Ok(name) if !name.is_empty() => Isa::parse(&name),
            _ => Ok(Isa::best()),
        }
    }

    /// The level called `name`, if this CPU has it.
    pub fn parse(name: &str) -> Result<Isa> {
        let isa = Isa::ALL
            .into_iter()
            .find(|i| i.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                Error::Config(format!(
                    "BNN_CPU_ISA={name}: unknown instruction set; this CPU has {}",
                    Isa::list(&Isa::available())
                ))
            })?;
        isa.require()
    }

    /// `Ok(self)` if this CPU can run the level, else an error naming what it has.
    pub fn require(self) -> Result<Isa> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(Error::Config(format!(
                "this CPU cannot run the {self} kernels; it has {}",
                Isa::list(&Isa::available())
            )))
        }
    }

    /// Lower-case name, as `BNN_CPU_ISA` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Popcnt => "popcnt",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Register width of the popcount loop in bits (portable code is vectorised by the compiler
    /// over the baseline's 128-bit registers: SSE2 on x86-64, NEON on aarch64).
    pub fn vector_bits(self) -> u32 {
        match self {
            Isa::Portable => 128,
            Isa::Popcnt => 64,
            Isa::Avx2 => 256,
            Isa::Avx512 => 512,
        }
    }

    fn list(isas: &[Isa]) -> String {
        isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_is_always_there_and_best_is_available() {
        assert!(Isa::Portable.is_available());
        assert!(Isa::best().is_available());
        assert!(Isa::available().contains(&Isa::best()));
        assert_eq!(Isa::parse("Portable").unwrap(), Isa::Portable);
        assert!(Isa::parse("sse9").is_err());
    }
}
