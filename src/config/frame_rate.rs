//! Frame rates as exact rationals.
//!
//! Film and video run at integer rates (24, 25, 30…) and at the NTSC rates,
//! which are not the decimals people write for them: "23.976" means exactly
//! 24000/1001 frames per second. Frame arithmetic on a float drifts over a
//! long cut (a 10,000-scene project is hours of frames), so a rate is kept
//! as `numerator/denominator` and every conversion between time and frames
//! is done in integers.
//!
//! A config may write the rate as an integer (`24`), as one of the four
//! NTSC decimals (`23.976`, `29.97`, `47.952`, `59.94`), or as a string
//! `"N/D"` (`"24000/1001"`). Integer rates read exactly as before, so their
//! configs keep their run ids.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Highest rate accepted, in frames per second.
pub const MAX_FPS: u64 = 240;

/// The NTSC rates by the decimal people write for them.
const NTSC: [(f64, u32); 4] = [
    (23.976, 24000),
    (29.97, 30000),
    (47.952, 48000),
    (59.94, 60000),
];

/// An exact frame rate, `numerator / denominator` frames per second, in
/// lowest terms. Written (in artifacts) as the string `"24000/1001"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub numerator: u32,
    pub denominator: u32,
}

impl FrameRate {
    /// `n` frames per second.
    pub const fn integer(n: u32) -> Self {
        FrameRate {
            numerator: n,
            denominator: 1,
        }
    }

    /// `numerator/denominator` in lowest terms, if it is a rate this tool
    /// accepts (at least 1 and at most [`MAX_FPS`] frames per second, as an
    /// integer rate must be: a render plan's whole `fps` is never 0).
    pub fn new(numerator: u32, denominator: u32) -> Option<Self> {
        if numerator == 0 || denominator == 0 || numerator < denominator {
            return None;
        }
        if u64::from(numerator) > MAX_FPS * u64::from(denominator) {
            return None;
        }
        let g = gcd(numerator, denominator);
        Some(FrameRate {
            numerator: numerator / g,
            denominator: denominator / g,
        })
    }

    pub fn is_integer(self) -> bool {
        self.denominator == 1
    }

    /// The rate rounded to the nearest whole frame per second: the
    /// timebase an NTSC rate is named by (24 for 24000/1001).
    pub fn nominal(self) -> u32 {
        let (n, d) = (u64::from(self.numerator), u64::from(self.denominator));
        // Cannot exceed MAX_FPS, so it fits.
        ((n + d / 2) / d) as u32
    }

    /// Frames needed to show `ms` milliseconds, rounded up: a shot is
    /// never rendered shorter than it was boarded.
    pub fn frames_for_ms(self, ms: u64) -> u64 {
        let num = u128::from(ms) * u128::from(self.numerator);
        let den = 1000 * u128::from(self.denominator);
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }

    /// How long `frames` frames last, in whole milliseconds (rounded down).
    pub fn ms_for_frames(self, frames: u64) -> u64 {
        let num = u128::from(frames) * 1000 * u128::from(self.denominator);
        // A zero rate never passes `new`; `integer(0)` must not divide by it.
        u64::try_from(num / u128::from(self.numerator.max(1))).unwrap_or(u64::MAX)
    }
}

impl Default for FrameRate {
    fn default() -> Self {
        FrameRate::integer(24)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_integer() {
            write!(f, "{}", self.numerator)
        } else {
            write!(f, "{}/{}", self.numerator, self.denominator)
        }
    }
}

impl Serialize for FrameRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}/{}", self.numerator, self.denominator))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// What the config's `render.fps` may be, said in every refusal.
pub const ACCEPTED: &str = "an integer from 1 to 240, one of the NTSC rates 23.976, 29.97, 47.952 \
     and 59.94, or a string \"N/D\" from 1 to 240 such as \"24000/1001\"";

/// Parse the string form `"N/D"` (or `"N"`).
pub fn parse_str(s: &str) -> Option<FrameRate> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let digits = |t: &str| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(n) || !digits(d) {
        return None;
    }
    FrameRate::new(n.parse().ok()?, d.parse().ok()?)
}

/// An NTSC decimal, matched exactly as written (JSON numbers arrive as the
/// nearest double, which is what the literal here is too).
fn from_decimal(x: f64) -> Option<FrameRate> {
    if x.fract() == 0.0 && (1.0..=MAX_FPS as f64).contains(&x) {
        return Some(FrameRate::integer(x as u32));
    }
    NTSC.iter()
        .find(|(decimal, _)| *decimal == x)
        .and_then(|(_, n)| FrameRate::new(*n, 1001))
}

impl<'de> Deserialize<'de> for FrameRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = FrameRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ACCEPTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FrameRate, E> {
                u32::try_from(v)
                    .ok()
                    .and_then(|n| FrameRate::new(n, 1))
                    .ok_or_else(|| E::custom(format!("fps {v} is not {ACCEPTED}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FrameRate, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("fps {v} is not {ACCEPTED}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FrameRate, E> {
                from_decimal(v).ok_or_else(|| E::custom(format!("fps {v} is not {ACCEPTED}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FrameRate, E> {
                parse_str(v).ok_or_else(|| E::custom(format!("fps \"{v}\" is not {ACCEPTED}")))
            }
        }
        deserializer.deserialize_any(RateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_reads_as_the_exact_rational() {
        let read = |json: &str| serde_json::from_str::<FrameRate>(json).ok();
        assert_eq!(read("24"), Some(FrameRate::integer(24)));
        assert_eq!(read("24.0"), Some(FrameRate::integer(24)));
        for (decimal, exact) in [
            ("23.976", (24000, 1001)),
            ("29.97", (30000, 1001)),
            ("47.952", (48000, 1001)),
            ("59.94", (60000, 1001)),
        ] {
            let want = FrameRate::new(exact.0, exact.1);
            assert_eq!(read(decimal), want, "{decimal}");
            assert_eq!(read(&format!("\"{}/{}\"", exact.0, exact.1)), want);
        }
        assert_eq!(read("\"48/2\""), Some(FrameRate::integer(24)));
        for bad in [
            "0",
            "241",
            "-24",
            "23.97",
            "25.5",
            "\"24000/0\"",
            "\"0/1\"",
            "\"x\"",
            "\"1/2/3\"",
            "\"241/1\"",
            "\"1/3\"",
            "\"1/1001\"",
            "null",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn frame_arithmetic_is_exact_over_a_long_cut() {
        let ntsc = FrameRate::new(24000, 1001).unwrap();
        // 1001 seconds at 24000/1001 is exactly 24000 frames; a float rate
        // of 23.976 would give 23999.976 and round either way.
        assert_eq!(ntsc.frames_for_ms(1_001_000), 24_000);
        assert_eq!(ntsc.ms_for_frames(24_000), 1_001_000);
        // Ten hours of 4-second shots, summed shot by shot, equal the
        // whole computed at once to the frame.
        let per_shot = ntsc.frames_for_ms(4_004);
        assert_eq!(per_shot, 96);
        assert_eq!(per_shot * 9_000, ntsc.frames_for_ms(4_004 * 9_000));
        assert_eq!(ntsc.nominal(), 24);
        assert_eq!(FrameRate::new(30000, 1001).unwrap().nominal(), 30);
        assert_eq!(FrameRate::integer(25).frames_for_ms(1), 1);
        assert_eq!(FrameRate::integer(24).ms_for_frames(48), 2000);
    }
}
