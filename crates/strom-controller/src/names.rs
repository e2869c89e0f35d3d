//! Topic name rules, as Kafka's `Topic.validate`.

use crate::ControllerError;

/// Longest topic name: 249 characters, so that `<topic>-<partition>` directory
/// names (plus a deletion suffix) stay under common 255-byte file name limits.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name: non-empty, not `.` or `..`, at most 249 characters of
/// ASCII letters, digits, `.`, `_` and `-`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(format!(
            "topic name cannot be \"{name}\""
        )));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(ControllerError::InvalidTopic(format!(
            "topic name is longer than the maximum of {MAX_TOPIC_NAME_LEN} characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "topic name '{name}' is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Kafka refuses a topic whose name differs from an existing one only by `.`
/// versus `_`, because metric names would collide.
pub(crate) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_legal_names_and_refuses_the_rest() {
        for ok in ["a", "quickstart-events", "A.b_c-1", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "with space",
            "slash/x",
            "ü",
            &"x".repeat(250),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
