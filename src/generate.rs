//! A synthetic prefecture-year: 六盘水 Liupanshui, coverage year 2021, under
//! its published policy. Each person's facts are a pure function of the
//! seed and the person's index, so a run is reproducible and any slice of
//! persons can be made alone.
//!
//! The mix: about 81 % pay the individual part in the concentrated period
//! (some paid for by relatives or through village collectors), 7 % pay the
//! full premium later (sporadic), 5 % register and never pay, 3 % are
//! hardship cases (certified, assessed, subsidised, paying the rest), 2 %
//! are paid for from a relative's employee personal account (one in ten of
//! those applications fails and the money goes back), 1 % are newborns
//! (pre-registered with a birth certificate, converted to a resident ID,
//! paid in the window; one in ten never paid and voided), and 0.5 % pay
//! twice and get the second payment refunded.

use chrono::{Days, NaiveDate};
use ledger::event::{
    EnrolmentBasis, FamilyBindingCreated, Funder, HardshipAssessed, HardshipCertified, IdentityConverted, Payer,
    PaymentReceived, PaymentRef, PersonRegistered, PolicyPublished, PreRegistrationVoided, ProxyCredited, ProxyFailed,
    ProxyProcessing, ProxyReturned, ProxySubmitted, RefundDestination, RefundIssued, Relation, SubsidyGranted,
    SubsidyPart,
};
use ledger::{BeijingTime, Date, Event, Identity, Money, RegionCode};

/// The policy the generated facts follow.
pub const POLICY: &str = include_str!("../fixtures/policies/liupanshui-2021.toml");
const REGION: u32 = 520200;
const YEAR: u16 = 2021;
/// 钟山区, 六枝特区, 水城区, 盘州市.
const COUNTIES: [u32; 4] = [520201, 520203, 520204, 520281];
const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "龙", "罗"];
const GIVEN: [&str; 10] = ["明", "华", "芳", "军", "丽", "强", "敏", "静", "勇", "艳"];
const BIRTH_DAYS: u64 = 29_000;
const INDIVIDUAL_FEN: i64 = 28_000;
const FULL_FEN: i64 = 83_000;

/// What kind of case a person is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    InPeriod,
    Sporadic,
    Unpaid,
    Hardship,
    Proxy,
    Newborn,
    Refunded,
}

/// The case of person `index`: fixed shares per thousand.
pub fn case_of(seed: u64, index: u64) -> Case {
    match mix(seed, index, 0) % 1000 {
        0..=29 => Case::Hardship,
        30..=39 => Case::Newborn,
        40..=59 => Case::Proxy,
        60..=64 => Case::Refunded,
        65..=134 => Case::Sporadic,
        135..=184 => Case::Unpaid,
        _ => Case::InPeriod,
    }
}

/// The policy event, then every person's facts in order.
pub fn facts(seed: u64, persons: u64) -> impl Iterator<Item = Event> {
    let policy = Event::PolicyPublishedV1(PolicyPublished {
        region: region(REGION),
        coverage_year: YEAR,
        source: "liupanshui-2021.toml".into(),
        document: POLICY.into(),
    });
    std::iter::once(policy).chain((0..persons).flat_map(move |index| person_facts(seed, index)))
}

/// splitmix64 of (seed, index, salt): independent draws per person.
fn mix(seed: u64, index: u64, salt: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn region(code: u32) -> RegionCode {
    RegionCode::new(code).expect("generator region codes are valid")
}

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("generator dates are valid")
}

fn plus_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days)).unwrap_or(date)
}

/// An instant on `date` at a time of day drawn from `draw`, China time.
fn at(date: NaiveDate, draw: u64) -> BeijingTime {
    let seconds = 8 * 3600 + (draw % (12 * 3600)) as i64;
    let midnight_utc = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp();
    BeijingTime((midnight_utc - 8 * 3600 + seconds) * 1_000_000)
}

fn fen(amount: i64) -> Money {
    Money::from_fen(amount).expect("generator amounts are valid")
}

/// A person's county, birth date and resident ID: unique per index below
/// 4 × 29,000 × 1,000 (born 1940..2019).
fn resident(index: u64, birth: Option<NaiveDate>) -> (RegionCode, NaiveDate, Identity) {
    let county = region(COUNTIES[(index % COUNTIES.len() as u64) as usize]);
    let per_county = index / COUNTIES.len() as u64;
    let birth = birth.unwrap_or_else(|| plus_days(day(1940, 1, 1), per_county % BIRTH_DAYS));
    let sequence = (per_county / BIRTH_DAYS % 1000) as u16;
    (county, birth, Identity::resident(county, birth, sequence))
}

/// Born 2021-01-01..2021-09-30: the birth day and sequence come from the
/// index, so newborn IDs are distinct below 4 × 273 × 1,000 persons.
fn newborn(index: u64) -> (RegionCode, NaiveDate, Identity) {
    const BIRTH_DAYS_2021: u64 = 273;
    let county = region(COUNTIES[(index % COUNTIES.len() as u64) as usize]);
    let per_county = index / COUNTIES.len() as u64;
    let born = plus_days(day(2021, 1, 1), per_county % BIRTH_DAYS_2021);
    let sequence = (per_county / BIRTH_DAYS_2021 % 1000) as u16;
    (county, born, Identity::resident(county, born, sequence))
}

/// A plausible Chinese name for person `index`: 12 surnames × 100 given
/// names, a pure function of the index (the benchmarks use it too).
pub fn name(index: u64) -> String {
    let n = index as usize;
    let given = |k: usize| GIVEN[n / k % GIVEN.len()];
    format!("{}{}{}", SURNAMES[n % SURNAMES.len()], given(SURNAMES.len()), given(SURNAMES.len() * GIVEN.len()))
}

fn registration(index: u64, person: &Identity, county: RegionCode, birth: NaiveDate, on: NaiveDate) -> Event {
    Event::PersonRegisteredV1(PersonRegistered {
        person: person.clone(),
        name: name(index),
        region: county,
        birth_date: Date(birth),
        registered_on: Date(on),
        basis: EnrolmentBasis::Standard,
    })
}

fn payment(person: &Identity, amount_fen: i64, paid_at: BeijingTime, reference: String, payer: Payer) -> Event {
    let channel = match reference.as_bytes().first() {
        Some(b'W') => "wechat",
        Some(b'A') => "alipay",
        Some(b'C') => "village_collector",
        Some(b'S') => "tax_hall",
        _ => "bank",
    };
    Event::PaymentReceivedV1(PaymentReceived {
        person: person.clone(),
        coverage_year: YEAR,
        amount: fen(amount_fen),
        channel: channel.into(),
        channel_ref: reference,
        payer,
        paid_at,
    })
}

/// A day in the concentrated period 2020-11-16..2021-03-31 (136 days).
fn in_period_day(draw: u64) -> NaiveDate {
    plus_days(day(2020, 11, 16), draw % 136)
}

fn person_facts(seed: u64, index: u64) -> Vec<Event> {
    let draw = |salt: u64| mix(seed, index, salt);
    let case = case_of(seed, index);
    if case == Case::Newborn {
        return newborn_facts(seed, index);
    }
    let (county, birth, person) = resident(index, None);
    let registered_on = in_period_day(draw(1));
    let mut facts = vec![registration(index, &person, county, birth, registered_on)];
    let paid_on = plus_days(registered_on, draw(2) % 20).min(day(2021, 3, 31));
    let paid_at = at(paid_on, draw(3));
    let prefix = ["W", "A", "B", "S"][(draw(4) % 4) as usize];
    let reference = format!("{prefix}{seed:04}{index:010}");
    match case {
        Case::InPeriod => {
            let payer = match draw(5) % 100 {
                0..=4 => Payer::Other(resident(index + 1, None).2),
                5..=7 => Payer::Collector(format!("{county}村级代办员")),
                _ => Payer::Myself,
            };
            let reference =
                if matches!(payer, Payer::Collector(_)) { format!("C{seed:04}{index:010}") } else { reference };
            facts.push(payment(&person, INDIVIDUAL_FEN, paid_at, reference, payer));
        }
        Case::Sporadic => {
            let late = plus_days(day(2021, 4, 1), draw(6) % 244);
            facts.push(payment(&person, FULL_FEN, at(late, draw(3)), reference, Payer::Myself));
        }
        Case::Unpaid => {}
        Case::Hardship => facts.extend(hardship_facts(seed, index, &person, county, paid_on, reference)),
        Case::Proxy => facts.extend(proxy_facts(seed, index, &person, paid_on, reference)),
        Case::Refunded => {
            facts.push(payment(&person, INDIVIDUAL_FEN, paid_at, reference.clone(), Payer::Myself));
            let second = format!("C{seed:04}{index:010}");
            let twice_at = at(plus_days(paid_on, 1), draw(7));
            facts.push(payment(&person, INDIVIDUAL_FEN, twice_at, second.clone(), Payer::Collector("代办员".into())));
            facts.push(Event::RefundIssuedV1(RefundIssued {
                person: person.clone(),
                coverage_year: YEAR,
                refund_ref: format!("TK{seed:04}{index:010}"),
                payment: PaymentRef { channel: "village_collector".into(), channel_ref: second },
                amount: fen(INDIVIDUAL_FEN),
                destination: RefundDestination::OriginalChannel,
                refunded_at: at(plus_days(paid_on, 15), draw(8)),
                reason: "重复缴费".into(),
            }));
        }
        Case::Newborn => {}
    }
    facts
}

/// Hardship groups of Liupanshui 2021 and how often each occurs among
/// hardship cases: (group, subsidy in fen, parts by funder).
fn hardship_group(draw: u64, county: RegionCode) -> (&'static str, i64, Vec<SubsidyPart>) {
    let part = |funder: Funder, amount_fen: i64| SubsidyPart { funder, amount: fen(amount_fen) };
    match draw % 10 {
        0..=5 => {
            // 140: 120 as in 2020 (ratio not published), 20 by county class.
            let unstated = part(Funder::Other("按2020年度政府分担比例".into()), 12_000);
            let added = if county.code() == 520201 {
                vec![part(Funder::County, 2_000)]
            } else {
                vec![part(Funder::Province, 1_000), part(Funder::City, 400), part(Funder::County, 600)]
            };
            ("registered_poor", 14_000, std::iter::once(unstated).chain(added).collect())
        }
        6 => ("family_planning_special", INDIVIDUAL_FEN, vec![part(Funder::County, INDIVIDUAL_FEN)]),
        7 => ("orphan", INDIVIDUAL_FEN, vec![part(Funder::MedicalAssistanceFund, INDIVIDUAL_FEN)]),
        _ => ("extreme_poverty_support", INDIVIDUAL_FEN, vec![part(Funder::MedicalAssistanceFund, INDIVIDUAL_FEN)]),
    }
}

fn hardship_facts(
    seed: u64,
    index: u64,
    person: &Identity,
    county: RegionCode,
    paid_on: NaiveDate,
    reference: String,
) -> Vec<Event> {
    let (group, subsidy_fen, parts) = hardship_group(mix(seed, index, 10), county);
    let certified_on = day(2020, 11, 10);
    let assessed_on = plus_days(certified_on, 3);
    let mut facts = vec![
        Event::HardshipCertifiedV1(HardshipCertified {
            person: person.clone(),
            coverage_year: YEAR,
            group: group.into(),
            certified_by: "六盘水市民政局".into(),
            certified_on: Date(certified_on),
        }),
        Event::HardshipAssessedV1(HardshipAssessed {
            person: person.clone(),
            coverage_year: YEAR,
            group: group.into(),
            subsidy: fen(subsidy_fen),
            amount_due: fen(INDIVIDUAL_FEN - subsidy_fen),
            assessed_on: Date(assessed_on),
        }),
        Event::SubsidyGrantedV1(SubsidyGranted {
            person: person.clone(),
            coverage_year: YEAR,
            group: group.into(),
            parts,
            granted_on: Date(plus_days(assessed_on, 1)),
        }),
    ];
    if subsidy_fen < INDIVIDUAL_FEN {
        let paid_on = paid_on.max(plus_days(assessed_on, 1));
        let paid_at = at(paid_on, mix(seed, index, 11));
        facts.push(payment(person, INDIVIDUAL_FEN - subsidy_fen, paid_at, reference, Payer::Myself));
    }
    facts
}

/// An employee (not insured here) binds the person and pays from the
/// personal account; one application in ten fails and is returned, and
/// the person then pays in the period.
fn proxy_facts(seed: u64, index: u64, member: &Identity, paid_on: NaiveDate, reference: String) -> Vec<Event> {
    let holder = resident(index + 100_000_000, Some(day(1975, 1, 1) + Days::new(index % 9_000))).2;
    let application_id = format!("LPS-DJ-{seed:04}-{index:010}");
    let submitted_at = at(paid_on, mix(seed, index, 20));
    let later = |days: u64| at(plus_days(paid_on, days), mix(seed, index, 21 + days));
    let mut facts = vec![
        Event::FamilyBindingCreatedV1(FamilyBindingCreated {
            holder: holder.clone(),
            account_province: region(520000),
            member: member.clone(),
            relation: [Relation::Child, Relation::Parent, Relation::Spouse][(index % 3) as usize],
            bound_on: Date(plus_days(paid_on, 0)),
        }),
        Event::ProxySubmittedV1(ProxySubmitted {
            application_id: application_id.clone(),
            holder: holder.clone(),
            member: member.clone(),
            coverage_year: YEAR,
            amount: fen(INDIVIDUAL_FEN),
            at: submitted_at,
        }),
        Event::ProxyProcessingV1(ProxyProcessing { application_id: application_id.clone(), at: later(1) }),
    ];
    if mix(seed, index, 22).is_multiple_of(10) {
        facts.push(Event::ProxyFailedV1(ProxyFailed {
            application_id: application_id.clone(),
            reason: "参保信息不匹配".into(),
            at: later(2),
        }));
        facts.push(Event::ProxyReturnedV1(ProxyReturned { application_id, amount: fen(INDIVIDUAL_FEN), at: later(3) }));
        let retry_on = plus_days(paid_on, 4).min(day(2021, 3, 31));
        facts.push(payment(member, INDIVIDUAL_FEN, at(retry_on, mix(seed, index, 23)), reference, Payer::Myself));
    } else {
        facts.push(Event::ProxyCreditedV1(ProxyCredited { application_id, at: later(2) }));
    }
    facts
}

/// Born in 2021, pre-registered at the hospital with a birth certificate,
/// converted to a resident ID, and paid (individual part) within 3 months;
/// one in ten is never paid and the pre-registration is voided.
fn newborn_facts(seed: u64, index: u64) -> Vec<Event> {
    let (county, born, person) = newborn(index);
    let certificate: Identity =
        format!("other:LPS-CS-{seed:04}-{index:010}").parse().expect("birth certificate numbers are valid");
    let mut facts = vec![Event::PersonRegisteredV1(PersonRegistered {
        person: certificate.clone(),
        name: name(index),
        region: county,
        birth_date: Date(born),
        registered_on: Date(plus_days(born, 1)),
        basis: EnrolmentBasis::NewbornPreRegistration,
    })];
    if mix(seed, index, 31).is_multiple_of(10) {
        facts.push(Event::PreRegistrationVoidedV1(PreRegistrationVoided {
            person: certificate,
            voided_on: Date(plus_days(born, 95)),
            reason: "出生3个月内未缴费".into(),
        }));
        return facts;
    }
    let converted_on = plus_days(born, 20 + mix(seed, index, 32) % 40);
    facts.push(Event::IdentityConvertedV1(IdentityConverted {
        from: certificate,
        to: person.clone(),
        converted_on: Date(converted_on),
    }));
    let paid_at = at(plus_days(converted_on, 3), mix(seed, index, 33));
    facts.push(payment(&person, INDIVIDUAL_FEN, paid_at, format!("W{seed:04}{index:010}"), Payer::Myself));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_valid_reproducible_and_keys_distinct() {
        let first: Vec<Event> = facts(7, 3_000).collect();
        let again: Vec<Event> = facts(7, 3_000).collect();
        assert!(first == again, "the same seed gives other facts");
        let mut keys = std::collections::HashSet::new();
        for event in &first {
            assert!(event.validate().is_ok(), "{event:?}: {:?}", event.validate());
            let key = event.natural_key().unwrap_or_else(|| ledger::log::content_key(event));
            assert!(keys.insert(key.clone()), "idempotency key {key} repeats");
        }
        let cases: std::collections::HashSet<_> = (0..3_000).map(|i| format!("{:?}", case_of(7, i))).collect();
        assert_eq!(cases.len(), 7, "every case occurs in 3,000 persons: {cases:?}");
    }
}
