//! The compact state kept per person: the facts of each person-year reduced
//! to what the figures need. Nothing here is a conclusion; amounts due,
//! states and coverage dates are derived from it on demand (`view`), against
//! the policy in force at the time of the question.
//!
//! Sizes: a person-year that paid once is a [`YearState`] (40 bytes) and one
//! [`Contribution`] (32 bytes); everything rarer (hardship, refunds, proxy
//! applications, notes) hangs off one boxed [`YearExtra`].

pub(crate) use crate::family::ProxyState;
use ledger::event::{EnrolmentBasis, Funder};
use ledger::{Date, Identity, Money, RegionCode};
use serde::{Deserialize, Serialize};

/// Index of a person in `Coverage::persons`.
pub(crate) type PersonId = u32;

/// Most notes kept for one person-year; later ones are counted, not kept.
pub(crate) const MAX_NOTES_PER_YEAR: usize = 32;

/// One person, under all the identities they were known by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersonState {
    /// The identity the person is known by now (after any conversion).
    pub current: Identity,
    /// Earlier identities (a newborn's other certificate), oldest first.
    pub former: Vec<Identity>,
    /// `None`: facts arrived for an identity never registered.
    pub registration: Option<Registration>,
    /// 预参保登记作废: the day a PreRegistrationVoided fact says.
    pub voided_on: Option<Date>,
    /// Another person record this one was merged into (an identity
    /// conversion onto an identity that already had facts). Kept empty.
    pub merged_into: Option<PersonId>,
    /// In coverage-year order.
    pub years: Vec<YearState>,
}

/// 参保登记: what the registration says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub name: Box<str>,
    pub region: RegionCode,
    pub birth_date: Date,
    pub registered_on: Date,
    pub basis: EnrolmentBasis,
}

/// The facts of one person-year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct YearState {
    pub coverage_year: u16,
    /// Money in from the person's side, in log order.
    pub contributions: Vec<Contribution>,
    pub extra: Option<Box<YearExtra>>,
}

/// Money in for the person's part: a payment, or a credited proxy payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Contribution {
    /// Of (channel, channel_ref); for a proxy payment, of ("proxy", id).
    pub fingerprint: u64,
    pub amount: Money,
    /// Business date (UTC+8).
    pub on: Date,
    pub source: Source,
    /// Log position of the fact, which orders same-day money.
    pub position: u64,
}

/// Who paid a contribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Source {
    /// 自主缴费.
    Myself,
    /// 代他人缴费.
    Other,
    /// 代收代办.
    Collector,
    /// 职工医保个人账户代缴.
    Proxy,
}

/// The rarer facts of a person-year.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct YearExtra {
    /// Certified hardship groups (group ids), each once.
    pub hardship_groups: Vec<Box<str>>,
    /// The latest accepted 核定 (assessment).
    pub assessment: Option<Assessed>,
    pub grants: Vec<Grant>,
    pub refunds: Vec<Refund>,
    pub proxies: Vec<ProxyApplication>,
    /// Decisions taken while folding (refused assessments, ignored
    /// duplicates, odd proxy transitions), in log order.
    pub notes: Vec<Box<str>>,
    pub n_notes_dropped: u32,
}

/// 核定: what the office assessed a subsidised person owes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Assessed {
    pub group: Box<str>,
    pub subsidy: Money,
    pub amount_due: Money,
    pub on: Date,
    pub position: u64,
}

/// 资助参保: a subsidy granted, by funder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub group: Box<str>,
    pub parts: Vec<(Funder, Money)>,
    pub on: Date,
    pub position: u64,
}

/// Money returned, with the payment it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refund {
    pub refund_ref: Box<str>,
    pub channel: Box<str>,
    pub channel_ref: Box<str>,
    pub amount: Money,
    pub destination: Destination,
    pub on: Date,
    pub position: u64,
}

/// Where refunded money went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Destination {
    Channel,
    PersonalAccount,
    Funders,
}

/// 代缴申请: a proxy payment from an employee's personal account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProxyApplication {
    pub application_id: Box<str>,
    pub amount: Money,
    pub submitted_on: Date,
    /// The lifecycle's table (`family::lifecycle`) moves it.
    pub status: ProxyState,
}

impl PersonState {
    pub fn new(current: Identity) -> PersonState {
        PersonState {
            current,
            former: Vec::new(),
            registration: None,
            voided_on: None,
            merged_into: None,
            years: Vec::new(),
        }
    }

    pub fn year(&self, coverage_year: u16) -> Option<&YearState> {
        self.years.binary_search_by_key(&coverage_year, |y| y.coverage_year).ok().map(|index| &self.years[index])
    }

    /// The person-year, created empty in year order if new.
    pub fn year_mut(&mut self, coverage_year: u16) -> &mut YearState {
        let index = match self.years.binary_search_by_key(&coverage_year, |y| y.coverage_year) {
            Ok(index) => index,
            Err(index) => {
                self.years.insert(index, YearState { coverage_year, contributions: Vec::new(), extra: None });
                index
            }
        };
        &mut self.years[index]
    }

    /// Whether `fingerprint` names a contribution of any year already.
    pub fn has_contribution(&self, fingerprint: u64) -> Option<(u16, u64)> {
        self.years.iter().find_map(|year| {
            year.contributions.iter().find(|c| c.fingerprint == fingerprint).map(|c| (year.coverage_year, c.position))
        })
    }

    /// Moves every fact of `other` into this person (identity conversion onto
    /// an identity that already had facts).
    pub fn absorb(&mut self, other: PersonState) {
        if self.registration.is_none() {
            self.registration = other.registration;
        }
        self.voided_on = self.voided_on.or(other.voided_on);
        for year in other.years {
            let target = self.year_mut(year.coverage_year);
            target.contributions.extend(year.contributions);
            target.contributions.sort_by_key(|c| c.position);
            if let Some(extra) = year.extra {
                target.extra_mut().absorb(*extra);
            }
        }
    }
}

impl YearState {
    pub fn extra(&self) -> Option<&YearExtra> {
        self.extra.as_deref()
    }

    pub fn extra_mut(&mut self) -> &mut YearExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Adds a note explaining a decision taken while folding.
    pub fn note(&mut self, text: String) {
        let extra = self.extra_mut();
        if extra.notes.len() < MAX_NOTES_PER_YEAR {
            extra.notes.push(text.into_boxed_str());
        } else {
            extra.n_notes_dropped = extra.n_notes_dropped.saturating_add(1);
        }
    }
}

impl YearExtra {
    fn absorb(&mut self, other: YearExtra) {
        for group in other.hardship_groups {
            if !self.hardship_groups.contains(&group) {
                self.hardship_groups.push(group);
            }
        }
        let newer = match (&self.assessment, &other.assessment) {
            (Some(mine), Some(theirs)) => theirs.position > mine.position,
            (None, Some(_)) => true,
            _ => false,
        };
        if newer {
            self.assessment = other.assessment;
        }
        self.grants.extend(other.grants);
        self.grants.sort_by_key(|g| g.position);
        self.refunds.extend(other.refunds);
        self.refunds.sort_by_key(|r| r.position);
        self.proxies.extend(other.proxies);
        self.notes.extend(other.notes);
        self.notes.truncate(MAX_NOTES_PER_YEAR);
        self.n_notes_dropped = self.n_notes_dropped.saturating_add(other.n_notes_dropped);
    }
}

/// A stable 64-bit fingerprint of a (channel, reference) pair: SM3, first 8
/// bytes. Stable across processes and builds, so checkpoints and digests
/// agree.
pub(crate) fn fingerprint(channel: &str, reference: &str) -> u64 {
    let mut bytes = Vec::with_capacity(channel.len() + reference.len() + 1);
    bytes.extend_from_slice(channel.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(reference.as_bytes());
    let digest = ledger::envelope::sm3(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The channel name under which proxy payments are fingerprinted, so that a
/// refund naming the application id finds them.
pub(crate) const PROXY_CHANNEL: &str = "proxy";

/// A figure of a person-year that is not an amount of money: negative, or
/// beyond [`Money::MAX_FEN`]. Sums of amounts never go negative and
/// refunds are never applied beyond what they return, so this is a defect
/// of the fold or of the derivation, never of the facts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "person-year {person} {coverage_year}: {figure} comes to {fen} fen, which is not an amount of money (0 to {max} fen)",
    max = Money::MAX_FEN
)]
pub struct MoneyOutOfRange {
    /// Masked.
    pub person: String,
    pub coverage_year: u16,
    /// The figure and the amounts it was computed from.
    pub figure: String,
    pub fen: i64,
}

/// Fen to money; anything else is an error naming the person-year, the
/// figure and its amounts (`figure` is asked for only then).
pub(crate) fn money(
    fen: i64,
    person: &Identity,
    coverage_year: u16,
    figure: impl FnOnce() -> String,
) -> Result<Money, MoneyOutOfRange> {
    Money::from_fen(fen).ok_or_else(|| MoneyOutOfRange {
        person: person.masked(),
        coverage_year,
        figure: figure(),
        fen,
    })
}

/// What `have_fen` lacks of `want_fen`, zero when it lacks nothing. Not a
/// clamp: the other side of the difference is a figure of its own
/// (outstanding against excess), so nothing is lost. Differences of
/// amounts stay within money's range.
pub(crate) fn shortfall(want_fen: i64, have_fen: i64) -> Money {
    Money::from_fen(want_fen.saturating_sub(have_fen).clamp(0, Money::MAX_FEN)).unwrap_or(Money::ZERO)
}

/// A sum of amounts (each at least zero, so the sum is too), saturating
/// at the largest amount: a fabricated log could exceed it, real ones never.
pub(crate) fn sum(amounts: impl IntoIterator<Item = Money>) -> Money {
    let max = Money::from_fen(Money::MAX_FEN).unwrap_or(Money::ZERO);
    amounts.into_iter().fold(Money::ZERO, |total, amount| total.checked_add(amount).unwrap_or(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A person-year that paid once costs a YearState and a Contribution
    /// (plus the Vec's heap block): keep them small.
    #[test]
    fn per_person_year_state_stays_small() {
        assert!(std::mem::size_of::<YearState>() <= 40, "{}", std::mem::size_of::<YearState>());
        assert!(std::mem::size_of::<Contribution>() <= 32, "{}", std::mem::size_of::<Contribution>());
        assert!(std::mem::size_of::<PersonState>() <= 160, "{}", std::mem::size_of::<PersonState>());
    }

    #[test]
    fn a_negative_figure_is_an_error_naming_the_person_year_and_the_amounts() {
        let born = chrono::NaiveDate::from_ymd_opt(1985, 3, 12).expect("a date");
        let person = Identity::resident(RegionCode::new(520502).expect("a region"), born, 7);
        let error = money(-150, &person, 2021, || "net received (paid 2.00 less refunds 3.50)".into())
            .expect_err("negative money");
        let text = error.to_string();
        assert!(text.contains(&person.masked()) && !text.contains(&person.to_string()), "{text}");
        assert!(
            text.contains("2021") && text.contains("paid 2.00 less refunds 3.50") && text.contains("-150 fen"),
            "{text}"
        );
        assert!(money(Money::MAX_FEN + 1, &person, 2021, String::new).is_err());
        assert_eq!(money(0, &person, 2021, String::new), Ok(Money::ZERO));
    }

    proptest::proptest! {
        /// Outstanding and excess are the two sides of one difference.
        #[test]
        fn shortfalls_of_both_sides_make_the_difference(a in 0..=Money::MAX_FEN, b in 0..=Money::MAX_FEN) {
            proptest::prop_assert_eq!(shortfall(a, b).fen() - shortfall(b, a).fen(), a - b);
            proptest::prop_assert!(shortfall(a, b) == Money::ZERO || shortfall(b, a) == Money::ZERO);
        }
    }

    #[test]
    fn fingerprints_are_stable_and_separate_channel_from_reference() {
        assert_eq!(fingerprint("wechat", "WX1"), fingerprint("wechat", "WX1"));
        assert_ne!(fingerprint("wechat", "WX1"), fingerprint("wechatW", "X1"));
        assert_ne!(fingerprint("wechat", "WX1"), fingerprint("alipay", "WX1"));
    }
}
