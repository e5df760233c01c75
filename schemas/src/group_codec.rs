//! How a group's state is stored: a version byte, then postcard of the
//! state, then (since version 2) its invites and (since 3) the users an
//! admin removed. Every older version still decodes.

use super::GroupState;

impl GroupState {
    /// The stored form: a version byte, then postcard of the state, then
    /// (since version 2) postcard of its invites, (since 3) the removed.
    pub fn encode(&self) -> Vec<u8> {
        let out = postcard::to_extend(self, vec![STATE_VERSION]).expect("group state serializes");
        let out = postcard::to_extend(&self.invites, out).expect("invites serialize");
        postcard::to_extend(&self.removed, out).expect("removed serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupState, String> {
        let e = |e: postcard::Error| e.to_string();
        match bytes.split_first() {
            Some((1, body)) => postcard::from_bytes(body).map_err(e),
            Some((2, body)) => {
                let (mut state, rest): (GroupState, _) =
                    postcard::take_from_bytes(body).map_err(e)?;
                state.invites = postcard::from_bytes(rest).map_err(e)?;
                Ok(state)
            }
            Some((&STATE_VERSION, body)) => {
                let (mut state, rest): (GroupState, _) =
                    postcard::take_from_bytes(body).map_err(e)?;
                let (invites, rest) = postcard::take_from_bytes(rest).map_err(e)?;
                state.invites = invites;
                state.removed = postcard::from_bytes(rest).map_err(e)?;
                Ok(state)
            }
            Some((v, _)) => Err(format!("unknown group state version {v}")),
            None => Err("empty group state".into()),
        }
    }
}

/// 1: without invites; 2: invites after the rest; 3: then the users an
/// admin removed.
const STATE_VERSION: u8 = 3;
