//! Why a config was refused.

use alloc::string::String;

/// A config that axvm refuses, naming the field so the user knows which line to fix.
///
/// Field names are the TOML paths of the ArceOS hypervisor's config format
/// (`kernel.memory_regions[1]`, `base.phys_cpu_ids`), since that is what users edit.
///
/// ```
/// use axvm::ConfigError;
/// let err = ConfigError::invalid("base.cpu_num", "must be at least 1");
/// assert_eq!(err.field(), Some("base.cpu_num"));
/// assert_eq!(err.to_string(), "config field `base.cpu_num`: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field holds a value axvm cannot use.
    #[error("config field `{field}`: {problem}")]
    Invalid {
        /// The TOML path of the field.
        field: String,
        /// What is wrong and, where it helps, how to fix it.
        problem: String,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// The parser's explanation (it names the key).
        message: String,
    },
}

impl ConfigError {
    /// An error about `field`.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field this error is about, when it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Parse { .. } => None,
        }
    }
}
