//! What a deployment keeps of messages (`retention.mode`), read by the
//! edge (what scrollback answers, when inbox items go) and by the history
//! writer (whether bodies are written).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// Scrollback from the history store, for `retention.history_days`.
    #[default]
    History,
    /// WhatsApp's rule: an inbox item goes once every device of its user
    /// confirmed it; the history keeps metadata only, and scrollback is
    /// what the devices keep.
    UntilDelivered,
}
