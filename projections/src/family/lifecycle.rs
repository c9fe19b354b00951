//! The lifecycle of a proxy application (代缴申请), as the person sees it:
//! 申请成功 (submitted) → 受理中 (processing) → 缴费到账成功 (credited), or
//! → 受理失败 (failed) → 原渠道返还 (returned to the personal account).
//!
//! [`next`] is the one transition table: the decision before appending
//! (`decide`) and the folds of the family and coverage projections all ask
//! it. Decision: a channel may report the outcome without the 受理中 step,
//! so credited and failed are legal straight from submitted.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an application stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProxyState {
    /// 申请成功.
    Submitted,
    /// 受理中.
    Processing,
    /// 缴费到账成功: only now is the premium paid.
    Credited,
    /// 受理失败: the money is to go back to the personal account.
    Failed,
    /// 原渠道返还: the money is back in the personal account.
    Returned,
}

impl ProxyState {
    /// Submitted or processing: the money may still arrive.
    pub fn in_flight(self) -> bool {
        matches!(self, ProxyState::Submitted | ProxyState::Processing)
    }

    /// Credited or returned: nothing more happens to the application.
    pub fn is_final(self) -> bool {
        matches!(self, ProxyState::Credited | ProxyState::Returned)
    }

    /// The state as the person reads it in the app.
    pub fn chinese(self) -> &'static str {
        match self {
            ProxyState::Submitted => "申请成功",
            ProxyState::Processing => "受理中",
            ProxyState::Credited => "缴费到账成功",
            ProxyState::Failed => "受理失败",
            ProxyState::Returned => "原渠道返还",
        }
    }
}

impl fmt::Display for ProxyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ProxyState::Submitted => "submitted",
            ProxyState::Processing => "processing",
            ProxyState::Credited => "credited",
            ProxyState::Failed => "failed",
            ProxyState::Returned => "returned",
        };
        write!(f, "{name} ({})", self.chinese())
    }
}

/// A step after submission: each is one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyStep {
    Processing,
    Credited,
    Failed,
    Returned,
}

impl ProxyStep {
    /// The state the step leads to.
    pub fn target(self) -> ProxyState {
        match self {
            ProxyStep::Processing => ProxyState::Processing,
            ProxyStep::Credited => ProxyState::Credited,
            ProxyStep::Failed => ProxyState::Failed,
            ProxyStep::Returned => ProxyState::Returned,
        }
    }
}

impl fmt::Display for ProxyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ProxyStep::Processing => "processing",
            ProxyStep::Credited => "credited",
            ProxyStep::Failed => "failed",
            ProxyStep::Returned => "returned",
        };
        f.write_str(name)
    }
}

/// A step the lifecycle does not allow from the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{step} is not allowed: the application is {current}{}", hint(*.current, *.step))]
pub struct IllegalTransition {
    pub current: ProxyState,
    pub step: ProxyStep,
}

fn hint(current: ProxyState, step: ProxyStep) -> &'static str {
    match (current, step) {
        (ProxyState::Submitted | ProxyState::Processing, ProxyStep::Returned) => {
            "; money goes back only after 受理失败 (failed)"
        }
        (ProxyState::Credited, _) => "; a credited payment is final (refund it with `yibao refund` instead)",
        (ProxyState::Failed, _) => "; a failed application can only be returned to the personal account",
        (ProxyState::Returned, _) => "; the money is back in the personal account: submit a new application",
        _ => "",
    }
}

/// The transition table. Pure.
pub fn next(current: ProxyState, step: ProxyStep) -> Result<ProxyState, IllegalTransition> {
    use ProxyState as S;
    use ProxyStep as P;
    match (current, step) {
        (S::Submitted, P::Processing | P::Credited | P::Failed) => Ok(step.target()),
        (S::Processing, P::Credited | P::Failed) => Ok(step.target()),
        (S::Failed, P::Returned) => Ok(S::Returned),
        _ => Err(IllegalTransition { current, step }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [ProxyState; 5] =
        [ProxyState::Submitted, ProxyState::Processing, ProxyState::Credited, ProxyState::Failed, ProxyState::Returned];
    const STEPS: [ProxyStep; 4] = [ProxyStep::Processing, ProxyStep::Credited, ProxyStep::Failed, ProxyStep::Returned];

    #[test]
    fn the_table() {
        let allowed: Vec<(ProxyState, ProxyStep)> = STATES
            .iter()
            .flat_map(|&state| STEPS.iter().map(move |&step| (state, step)))
            .filter(|&(state, step)| next(state, step).is_ok())
            .collect();
        assert_eq!(
            allowed,
            vec![
                (ProxyState::Submitted, ProxyStep::Processing),
                (ProxyState::Submitted, ProxyStep::Credited),
                (ProxyState::Submitted, ProxyStep::Failed),
                (ProxyState::Processing, ProxyStep::Credited),
                (ProxyState::Processing, ProxyStep::Failed),
                (ProxyState::Failed, ProxyStep::Returned),
            ]
        );
    }

    #[test]
    fn final_states_take_no_step_and_refusals_name_the_state() {
        for step in STEPS {
            assert!(next(ProxyState::Credited, step).is_err());
            assert!(next(ProxyState::Returned, step).is_err());
        }
        let error = next(ProxyState::Processing, ProxyStep::Returned).expect_err("returned before failed");
        assert!(error.to_string().contains("processing (受理中)"), "{error}");
        let error = next(ProxyState::Failed, ProxyStep::Credited).expect_err("credited after failed");
        assert!(error.to_string().contains("failed (受理失败)"), "{error}");
    }
}
