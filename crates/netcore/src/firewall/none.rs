//! The `none` backend (Docker's `--iptables=false`): no rules at all.

use super::{Batch, FirewallBackend, State};
use crate::error::Result;

pub struct NoFirewall;

impl FirewallBackend for NoFirewall {
    fn name(&self) -> &'static str {
        "none"
    }

    fn init(&self, _netns: Option<&str>) -> Result<bool> {
        Ok(false)
    }

    fn apply(&self, _netns: Option<&str>, _batch: &Batch) -> Result<()> {
        Ok(())
    }

    fn state(&self, _netns: Option<&str>) -> Result<State> {
        Ok(State {
            base_intact: true,
            ..State::default()
        })
    }

    fn reset(&self, _netns: Option<&str>) -> Result<()> {
        Ok(())
    }
}
