//! Output file names for rotation, as tcpdump makes them.
//!
//! With `-G`, the `-w` name is a strftime pattern expanded at the start of
//! each interval. The subset understood is `%Y %y %m %d %j %H %M %S %s %F %T
//! %z %Z %%`, always in UTC: a capture box's local time zone is rarely what
//! the analyst wants, and local time repeats an hour each autumn, which
//! would make `-G 3600 -w 'cap-%H.pcap'` overwrite a file. An unknown
//! conversion is refused up front rather than written out literally.
//!
//! With `-C`, a counter is appended: `name`, `name1`, `name2`, …; with `-C`
//! and `-W N` the counter is zero-padded to the digits of N-1 and cycles,
//! `name0` … `name{N-1}`, like tcpdump's ring buffer.

use std::fmt::Write as _;

/// Why a file name pattern cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A conversion outside the supported subset.
    #[error(
        "the file name has %{0}, which is not supported: use %Y %y %m %d %j %H %M %S %s %F %T %z %Z or %%"
    )]
    Unsupported(char),
    /// A lone `%` at the end.
    #[error("the file name ends with a lone %: write %% for a percent sign")]
    Trailing,
}

/// Makes the name of each file of a rotated output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileNamer {
    pattern: String,
    /// Expand strftime conversions (`-G` given).
    timed: bool,
    /// Zero-padded width of the counter (0: no counter on the first file).
    digits: usize,
}

impl FileNamer {
    /// A namer for `pattern`; `timed` when rotating by time, `ring` the
    /// `-W` file count when it bounds a `-C` ring. Checks the pattern.
    pub fn new(pattern: &str, timed: bool, ring: Option<u32>) -> Result<Self, PatternError> {
        if timed {
            strftime_utc(pattern, 0, &mut String::new())?;
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            timed,
            digits: ring.map_or(0, |n| decimal_digits(n.saturating_sub(1))),
        })
    }

    /// The name of file `index` of the interval starting at `unix_secs`.
    pub fn name(&self, unix_secs: i64, index: u32) -> String {
        let mut name = String::with_capacity(self.pattern.len() + 16);
        if self.timed {
            // Checked in `new`: the pattern expands for any time.
            let _ = strftime_utc(&self.pattern, unix_secs, &mut name);
        } else {
            name.push_str(&self.pattern);
        }
        if index != 0 || self.digits != 0 {
            let _ = write!(name, "{index:0width$}", width = self.digits);
        }
        name
    }
}

impl FileNamer {
    /// Whether `name` is a name this namer could give a file, at any time
    /// and (when `counted`, i.e. with `-C`) with any counter: used to make
    /// sure a rotated output can never overwrite the file being read.
    /// Conservative: `%s` and `%Y` match any decimal number, a counter any.
    pub fn could_name(&self, name: &str, counted: bool) -> bool {
        let mut tokens = Vec::new();
        if self.timed {
            let mut chars = self.pattern.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    tokens.push(NameToken::Char(c));
                    continue;
                }
                let fixed: &[NameToken] = match chars.next() {
                    Some('Y' | 's') => &[NameToken::Number],
                    Some('y' | 'm' | 'd' | 'H' | 'M' | 'S') => &[NameToken::Digits(2)],
                    Some('j') => &[NameToken::Digits(3)],
                    Some('F') => &[
                        NameToken::Number,
                        NameToken::Char('-'),
                        NameToken::Digits(2),
                        NameToken::Char('-'),
                        NameToken::Digits(2),
                    ],
                    Some('T') => &[
                        NameToken::Digits(2),
                        NameToken::Char(':'),
                        NameToken::Digits(2),
                        NameToken::Char(':'),
                        NameToken::Digits(2),
                    ],
                    Some('z') => &[NameToken::Char('+'), NameToken::Digits(4)],
                    Some('Z') => &[
                        NameToken::Char('U'),
                        NameToken::Char('T'),
                        NameToken::Char('C'),
                    ],
                    // `%%`, and what `new` refused (never reached).
                    _ => &[NameToken::Char('%')],
                };
                tokens.extend_from_slice(fixed);
            }
        } else {
            tokens.extend(self.pattern.chars().map(NameToken::Char));
        }
        if counted {
            tokens.push(match self.digits {
                0 => NameToken::Counter,
                n => NameToken::Digits(n),
            });
        }
        let name: Vec<char> = name.chars().collect();
        matches_tokens(&tokens, &name)
    }
}

/// One piece of a file name pattern, for [`FileNamer::could_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameToken {
    /// This character.
    Char(char),
    /// Exactly this many decimal digits.
    Digits(usize),
    /// A decimal number, maybe negative (`%s`, `%Y`).
    Number,
    /// Nothing, or a decimal number (tcpdump's `-C` counter).
    Counter,
}

/// Whether `name` matches `tokens` (backtracking over the variable-length
/// numbers; names are short).
fn matches_tokens(tokens: &[NameToken], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    let digits = name.iter().take_while(|c| c.is_ascii_digit()).count();
    match *first {
        NameToken::Char(c) => name.first() == Some(&c) && matches_tokens(rest, &name[1..]),
        NameToken::Digits(n) => digits >= n && matches_tokens(rest, &name[n..]),
        NameToken::Counter => (0..=digits).any(|n| matches_tokens(rest, &name[n..])),
        NameToken::Number => {
            let sign = usize::from(name.first() == Some(&'-'));
            let digits = name[sign..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            (1..=digits).any(|n| matches_tokens(rest, &name[sign + n..]))
        }
    }
}

/// Digits of `n` in decimal, 0 for 0 (tcpdump's width for a ring of n+1 files).
fn decimal_digits(mut n: u32) -> usize {
    let mut digits = 0;
    while n > 0 {
        digits += 1;
        n /= 10;
    }
    digits
}

/// Appends `pattern` with its strftime conversions expanded for `unix_secs` (UTC).
pub fn strftime_utc(pattern: &str, unix_secs: i64, out: &mut String) -> Result<(), PatternError> {
    let t = UtcTime::from_unix(unix_secs);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Writing into a String cannot fail.
        let _ = match chars.next().ok_or(PatternError::Trailing)? {
            'Y' => write!(out, "{}", t.year),
            'y' => write!(out, "{:02}", t.year.rem_euclid(100)),
            'm' => write!(out, "{:02}", t.month),
            'd' => write!(out, "{:02}", t.day),
            'j' => write!(out, "{:03}", t.day_of_year),
            'H' => write!(out, "{:02}", t.hour),
            'M' => write!(out, "{:02}", t.minute),
            'S' => write!(out, "{:02}", t.second),
            's' => write!(out, "{unix_secs}"),
            'F' => write!(out, "{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            'z' => write!(out, "+0000"),
            'Z' => write!(out, "UTC"),
            '%' => write!(out, "%"),
            other => return Err(PatternError::Unsupported(other)),
        };
    }
    Ok(())
}

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    day_of_year: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl UtcTime {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        // Days before each month in a common year.
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = BEFORE[month as usize - 1] + day + u32::from(leap && month > 2);
        Self {
            year,
            month,
            day,
            day_of_year,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }
}

/// (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01,
/// in the proleptic Gregorian calendar. Counts in 400-year eras of
/// 146 097 days, with years starting on 1 March so that the leap day is
/// the last day of a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pattern: &str, secs: i64) -> String {
        let mut out = String::new();
        strftime_utc(pattern, secs, &mut out).expect("supported pattern");
        out
    }

    #[test]
    fn conversions_match_gnu_date_in_utc() {
        // `TZ=UTC date -d @1700000000 '+%Y%m%d-%H%M%S %y %j %F %T %s %z %Z %%'`
        assert_eq!(
            expand("%Y%m%d-%H%M%S %y %j %F %T %s %z %Z %%", 1_700_000_000),
            "20231114-221320 23 318 2023-11-14 22:13:20 1700000000 +0000 UTC %"
        );
        assert_eq!(expand("cap-%F", 0), "cap-1970-01-01");
        // A leap day, the last day of a leap year, and a day before 1970.
        assert_eq!(expand("%F %j", 951_782_400), "2000-02-29 060");
        assert_eq!(expand("%F %j", 1_735_603_200), "2024-12-31 366");
        assert_eq!(expand("%F %T", -1), "1969-12-31 23:59:59");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Day counts must be consecutive dates: compare with a naive walk.
        let mut date = (1900i64, 1u32, 1u32);
        let start = -25_567; // 1900-01-01
        for days in start..start + 146_097 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (y, m, d) = date;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                28 + u32::from(leap),
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            date = if d < len[m as usize - 1] {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn unsupported_conversions_are_refused() {
        assert_eq!(
            FileNamer::new("cap-%Q.pcap", true, None),
            Err(PatternError::Unsupported('Q'))
        );
        assert_eq!(
            FileNamer::new("cap-%", true, None),
            Err(PatternError::Trailing)
        );
        // Without -G the name is taken literally, as tcpdump does.
        let namer = FileNamer::new("cap-%Q", false, None).expect("literal");
        assert_eq!(namer.name(0, 0), "cap-%Q");
    }

    #[test]
    fn could_name_recognizes_every_name_a_rotation_gives() {
        let plain = FileNamer::new("out.pcap", false, None).expect("name");
        assert!(plain.could_name("out.pcap", false));
        assert!(!plain.could_name("out.pcap1", false), "no -C: no counter");
        for n in [0, 1, 9, 10, 12345] {
            assert!(plain.could_name(&plain.name(0, n), true), "{n}");
        }
        assert!(!plain.could_name("out.pcapx", true));
        assert!(!plain.could_name("in.pcap", true));
        let ring = FileNamer::new("r.pcap", false, Some(100)).expect("name");
        assert!(ring.could_name("r.pcap07", true));
        assert!(!ring.could_name("r.pcap7", true));
        let timed =
            FileNamer::new("c-%Y%m%d-%H%M%S-%s-%F-%T%z%Z%%.pcap", true, None).expect("name");
        for secs in [0, 1_700_000_000, -86_400] {
            let name = timed.name(secs, 0);
            assert!(timed.could_name(&name, false), "{name}");
            assert!(timed.could_name(&timed.name(secs, 3), true), "{name}");
            assert!(!timed.could_name(&format!("{name}x"), true), "{name}");
        }
        assert!(!timed.could_name("c-2023.pcap", true));
    }

    #[test]
    fn counters_follow_tcpdump() {
        let plain = FileNamer::new("out.pcap", false, None).expect("name");
        assert_eq!(plain.name(0, 0), "out.pcap");
        assert_eq!(plain.name(0, 1), "out.pcap1");
        assert_eq!(plain.name(0, 12), "out.pcap12");
        let ring = FileNamer::new("out.pcap", false, Some(3)).expect("name");
        assert_eq!(ring.name(0, 0), "out.pcap0");
        assert_eq!(ring.name(0, 2), "out.pcap2");
        let wide = FileNamer::new("out.pcap", false, Some(100)).expect("name");
        assert_eq!(wide.name(0, 7), "out.pcap07");
        let single = FileNamer::new("out.pcap", false, Some(1)).expect("name");
        assert_eq!(single.name(0, 0), "out.pcap");
        let timed = FileNamer::new("cap-%H%M.pcapng", true, None).expect("name");
        assert_eq!(timed.name(3600 + 120, 0), "cap-0102.pcapng");
        assert_eq!(timed.name(3600 + 120, 2), "cap-0102.pcapng2");
    }
}
