//! A small matcher for `subscribed_topic_regex`.
//!
//! Kafka evaluates the regex with RE2/J and requires it to match the whole
//! topic name. No regex crate is available to this workspace, so this module
//! implements the subset of RE2 that topic subscriptions use in practice, with
//! RE2's full-match semantics and linear-time matching (a set-of-states
//! simulation, no backtracking):
//!
//! - literal characters, and `\` escapes of any punctuation (`\.`, `\-`, `\\`);
//! - `.` (any character), `\d`, `\w`, `\s` and their negations `\D`, `\W`, `\S`;
//! - character classes `[a-z0-9_.-]`, negated `[^...]`, with the escapes above;
//! - the quantifiers `*`, `+`, `?` after a single atom (lazy forms `*?`, `+?`,
//!   `??` are accepted: laziness does not change what a full match accepts);
//! - top-level alternation `a|b`, and `^` / `$` at the start / end of a branch.
//!
//! Anything else — groups `( )`, counted repetition `{n,m}`, other escapes —
//! is refused with INVALID_REGULAR_EXPRESSION even where RE2 would accept it.
//! This is a deviation from Kafka, stated in the module docs of `consumer`.

use strom_protocol::ErrorCode;

use super::MAX_REGEX_BYTES;

/// One character test.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    /// Ranges (inclusive); `negated` inverts.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Char(x) => *x == c,
            Atom::Any => c != '\n',
            Atom::Class { ranges, negated } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quant {
    One,
    Star,
    Optional,
}

/// A compiled pattern: one or more alternatives, each a sequence of atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRegex {
    branches: Vec<Vec<(Atom, Quant)>>,
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];

impl TopicRegex {
    /// Compiles `pattern`, or INVALID_REGULAR_EXPRESSION.
    pub fn parse(pattern: &str) -> Result<Self, ErrorCode> {
        if pattern.len() > MAX_REGEX_BYTES {
            return Err(ErrorCode::InvalidRegularExpression);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut branches = Vec::new();
        let mut start = 0;
        let mut in_class = false;
        let mut i = 0;
        // Split on top-level `|` (not escaped, not inside a class).
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 1,
                '[' if !in_class => in_class = true,
                ']' if in_class => in_class = false,
                '|' if !in_class => {
                    branches.push(parse_branch(&chars[start..i])?);
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        branches.push(parse_branch(&chars[start..])?);
        Ok(Self { branches })
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.branches.iter().any(|b| branch_matches(b, name))
    }
}

fn parse_branch(chars: &[char]) -> Result<Vec<(Atom, Quant)>, ErrorCode> {
    let bad = ErrorCode::InvalidRegularExpression;
    let mut chars = chars;
    if chars.first() == Some(&'^') {
        chars = &chars[1..];
    }
    if chars.last() == Some(&'$') && !ends_with_escape(chars) {
        chars = &chars[..chars.len() - 1];
    }
    let mut out: Vec<(Atom, Quant)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let atom = match c {
            '.' => Atom::Any,
            '\\' => {
                let e = *chars.get(i).ok_or(bad)?;
                i += 1;
                escape(e)?
            }
            '[' => {
                let (atom, next) = parse_class(chars, i)?;
                i = next;
                atom
            }
            '*' | '+' | '?' => {
                let Some(last) = out.last_mut() else {
                    return Err(bad);
                };
                if last.1 != Quant::One {
                    return Err(bad); // `a**` and friends: RE2 rejects them too
                }
                match c {
                    '*' => last.1 = Quant::Star,
                    '?' => last.1 = Quant::Optional,
                    _ => {
                        let atom = last.0.clone();
                        out.push((atom, Quant::Star));
                    }
                }
                // Lazy variants accept the same full matches.
                if chars.get(i) == Some(&'?') {
                    i += 1;
                }
                continue;
            }
            '(' | ')' | '{' | '}' | ']' | '^' | '$' | '|' => return Err(bad),
            other => Atom::Char(other),
        };
        out.push((atom, Quant::One));
    }
    Ok(out)
}

/// Whether the final `$` is escaped (`\$` is a literal dollar).
fn ends_with_escape(chars: &[char]) -> bool {
    let backslashes = chars[..chars.len() - 1]
        .iter()
        .rev()
        .take_while(|&&c| c == '\\')
        .count();
    backslashes % 2 == 1
}

fn escape(e: char) -> Result<Atom, ErrorCode> {
    let class = |ranges: &[(char, char)], negated| Atom::Class {
        ranges: ranges.to_vec(),
        negated,
    };
    Ok(match e {
        'd' => class(DIGIT, false),
        'D' => class(DIGIT, true),
        'w' => class(WORD, false),
        'W' => class(WORD, true),
        's' => class(SPACE, false),
        'S' => class(SPACE, true),
        c if c.is_ascii_punctuation() => Atom::Char(c),
        _ => return Err(ErrorCode::InvalidRegularExpression),
    })
}

/// Parses a class after its `[`; returns the atom and the index after `]`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Atom, usize), ErrorCode> {
    let bad = ErrorCode::InvalidRegularExpression;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or(bad)?;
        i += 1;
        if c == ']' && !first {
            break;
        }
        first = false;
        let lo = match c {
            '\\' => {
                let e = *chars.get(i).ok_or(bad)?;
                i += 1;
                match escape(e)? {
                    Atom::Char(x) => x,
                    Atom::Class {
                        ranges: r,
                        negated: false,
                    } => {
                        ranges.extend(r);
                        continue;
                    }
                    _ => return Err(bad),
                }
            }
            '[' => return Err(bad), // POSIX classes ([:alpha:]) are not supported
            c => c,
        };
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars
                    .get(i)
                    .filter(|c| c.is_ascii_punctuation())
                    .ok_or(bad)?;
                i += 1;
            }
            if hi < lo {
                return Err(bad);
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok((Atom::Class { ranges, negated }, i))
}

/// Set-of-states simulation: state k means "atoms before k are matched".
fn branch_matches(atoms: &[(Atom, Quant)], name: &str) -> bool {
    let n = atoms.len();
    let mut current = vec![false; n + 1];
    add_state(atoms, &mut current, 0);
    for c in name.chars() {
        let mut next = vec![false; n + 1];
        for k in 0..n {
            if current[k] && atoms[k].0.matches(c) {
                match atoms[k].1 {
                    Quant::Star => add_state(atoms, &mut next, k),
                    Quant::One | Quant::Optional => add_state(atoms, &mut next, k + 1),
                }
            }
        }
        if !next.iter().any(|&s| s) {
            return false;
        }
        current = next;
    }
    current[n]
}

/// Adds state `k` and every state reachable from it without input.
fn add_state(atoms: &[(Atom, Quant)], states: &mut [bool], mut k: usize) {
    loop {
        states[k] = true;
        if k < atoms.len() && atoms[k].1 != Quant::One {
            k += 1;
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        TopicRegex::parse(pattern).unwrap().is_match(name)
    }

    #[test]
    fn full_match_semantics() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders-1"));
        assert!(!m("^orders", "orders-1"), "RE2/J requires a full match");
        assert!(m("orders.*", "orders-1"));
        assert!(m("orders.*", "orders"));
        assert!(!m("orders.+", "orders"));
        assert!(m("^orders-.*$", "orders-eu"));
        assert!(m(".*-events", "user-events"));
        assert!(!m(".*-events", "user-events-x"));
    }

    #[test]
    fn classes_escapes_quantifiers_alternation() {
        assert!(m("topic\\.[0-9]+", "topic.42"));
        assert!(!m("topic\\.[0-9]+", "topicx42"));
        assert!(!m("topic\\.[0-9]+", "topic."));
        assert!(m("t\\d\\d?", "t1"));
        assert!(m("t\\d\\d?", "t12"));
        assert!(!m("t\\d\\d?", "t123"));
        assert!(m("[^_].*", "a"));
        assert!(!m("[^_].*", "__consumer_offsets"));
        assert!(m("a|b.*", "bcd"));
        assert!(m("a|b.*", "a"));
        assert!(!m("a|b.*", "ab"));
        assert!(m("[a-c-]x", "-x"));
        assert!(m("\\w+", "abc_09"));
        assert!(m("x.*?y", "xaaay"));
        assert!(m("cost\\$", "cost$"));
    }

    #[test]
    fn unsupported_or_invalid_patterns_are_refused() {
        for p in [
            "(a|b)", "a{2}", "*a", "[a-", "a**", "\\q", "[z-a]", "a$b", "x^",
        ] {
            assert_eq!(
                TopicRegex::parse(p),
                Err(ErrorCode::InvalidRegularExpression),
                "{p}"
            );
        }
        assert!(TopicRegex::parse(&"a".repeat(MAX_REGEX_BYTES + 1)).is_err());
    }
}
