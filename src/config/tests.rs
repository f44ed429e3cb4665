//! Loading tests: every error class names its key path.

use super::*;
