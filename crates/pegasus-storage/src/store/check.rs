//! Filters, check_and_set checks and integer parsing, with Pegasus's exact rules.

use pegasus_core::rrdb::{CasCheckType, FilterType};

/// Whether a filter type is one the server knows.
pub(crate) fn filter_supported(t: FilterType) -> bool {
    !matches!(t, FilterType::Unknown(_))
}

/// Pegasus's `validate_filter`: an empty pattern matches everything; anywhere = substring,
/// prefix, postfix.
pub(crate) fn matches_filter(t: FilterType, pattern: &[u8], value: &[u8]) -> bool {
    match t {
        FilterType::NoFilter => true,
        _ if pattern.is_empty() => true,
        _ if value.len() < pattern.len() => false,
        FilterType::MatchAnywhere => value.windows(pattern.len()).any(|w| w == pattern),
        FilterType::MatchPrefix => value.starts_with(pattern),
        FilterType::MatchPostfix => value.ends_with(pattern),
        FilterType::Unknown(_) => false,
    }
}

/// Parses a decimal `i64` the way Pegasus's `buf2int64` (absl `SimpleAtoi`) does: ASCII
/// whitespace around the number is allowed, one optional sign, at least one digit, base 10,
/// no overflow.
pub(crate) fn parse_i64(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Result of evaluating a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckOutcome {
    Passed,
    Failed,
    /// An integer check met a value or operand that is not an integer.
    InvalidArgument,
}

/// Whether a check type is one the server knows.
pub(crate) fn check_type_supported(t: CasCheckType) -> bool {
    !matches!(t, CasCheckType::Unknown(_))
}

fn outcome(passed: bool) -> CheckOutcome {
    if passed {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Failed
    }
}

/// Pegasus's `validate_check`. `value` is `None` when the record is absent or expired.
pub(crate) fn evaluate_check(
    t: CasCheckType,
    operand: &[u8],
    value: Option<&[u8]>,
) -> CheckOutcome {
    use CasCheckType as C;
    match t {
        C::NoCheck => CheckOutcome::Passed,
        C::ValueNotExist => outcome(value.is_none()),
        C::ValueNotExistOrEmpty => outcome(value.is_none_or(<[u8]>::is_empty)),
        C::ValueExist => outcome(value.is_some()),
        C::ValueNotEmpty => outcome(value.is_some_and(|v| !v.is_empty())),
        C::ValueMatchAnywhere | C::ValueMatchPrefix | C::ValueMatchPostfix => {
            let Some(v) = value else {
                return CheckOutcome::Failed;
            };
            let filter = match t {
                C::ValueMatchAnywhere => FilterType::MatchAnywhere,
                C::ValueMatchPrefix => FilterType::MatchPrefix,
                _ => FilterType::MatchPostfix,
            };
            outcome(matches_filter(filter, operand, v))
        }
        C::ValueBytesLess
        | C::ValueBytesLessOrEqual
        | C::ValueBytesEqual
        | C::ValueBytesGreaterOrEqual
        | C::ValueBytesGreater => {
            let Some(v) = value else {
                return CheckOutcome::Failed;
            };
            outcome(compare_passes(t, v.cmp(operand)))
        }
        C::ValueIntLess
        | C::ValueIntLessOrEqual
        | C::ValueIntEqual
        | C::ValueIntGreaterOrEqual
        | C::ValueIntGreater => {
            let Some(v) = value else {
                return CheckOutcome::Failed;
            };
            let (Some(v), Some(o)) = (parse_i64(v), parse_i64(operand)) else {
                return CheckOutcome::InvalidArgument;
            };
            outcome(compare_passes(t, v.cmp(&o)))
        }
        C::Unknown(_) => CheckOutcome::InvalidArgument,
    }
}

fn compare_passes(t: CasCheckType, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    use CasCheckType as C;
    match t {
        C::ValueBytesLess | C::ValueIntLess => ord == Less,
        C::ValueBytesLessOrEqual | C::ValueIntLessOrEqual => ord != Greater,
        C::ValueBytesEqual | C::ValueIntEqual => ord == Equal,
        C::ValueBytesGreaterOrEqual | C::ValueIntGreaterOrEqual => ord != Less,
        C::ValueBytesGreater | C::ValueIntGreater => ord == Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_follows_simple_atoi() {
        assert_eq!(parse_i64(b"123"), Some(123));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b" 42\n"), Some(42));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b" "), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"12a"), None);
        assert_eq!(parse_i64(b"0x10"), None);
        assert_eq!(parse_i64(b"1 2"), None);
        assert_eq!(parse_i64(b"+-1"), None);
    }

    #[test]
    fn filters_match_like_pegasus() {
        assert!(matches_filter(FilterType::NoFilter, b"x", b"abc"));
        assert!(matches_filter(FilterType::MatchPrefix, b"", b"abc"));
        assert!(matches_filter(FilterType::MatchAnywhere, b"bc", b"abcd"));
        assert!(!matches_filter(FilterType::MatchAnywhere, b"bd", b"abcd"));
        assert!(matches_filter(FilterType::MatchPrefix, b"ab", b"abcd"));
        assert!(!matches_filter(FilterType::MatchPrefix, b"bc", b"abcd"));
        assert!(matches_filter(FilterType::MatchPostfix, b"cd", b"abcd"));
        assert!(!matches_filter(FilterType::MatchPostfix, b"abcde", b"abcd"));
    }
}
