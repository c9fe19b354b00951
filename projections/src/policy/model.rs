//! The domain types of a region-year policy: validated, so that the rules in
//! `rules` and `hardship` never meet a reversed period or a zero ratio.

use ledger::event::{Funder, Relation};
use ledger::{Date, Money, RegionCode};

/// 地区年度政策: the figures and coverage rules of one pooling region (统筹区)
/// for one coverage year (参保年度), as one document publishes them.
///
/// Built only by [`Policy::from_toml`](crate::policy::Policy::from_toml), so
/// every value in it has passed validation. Two policies are equal when their
/// canonical forms are equal: comments and key order in the TOML do not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub(crate) region: RegionCode,
    pub(crate) region_name: String,
    pub(crate) coverage_year: u16,
    pub(crate) scope: Option<String>,
    pub(crate) source: Source,
    pub(crate) premium: Premium,
    /// Groups that pay the year in one payment when not everyone does.
    pub(crate) in_one_payment_for: Vec<GroupOnePayment>,
    pub(crate) coverage: Period,
    pub(crate) concentrated: Option<Concentrated>,
    pub(crate) sporadic: Option<Sporadic>,
    pub(crate) interrupted: Option<Interrupted>,
    pub(crate) employee_transfer: Option<EmployeeTransfer>,
    pub(crate) newborn: Option<Newborn>,
    pub(crate) hardship: Option<Hardship>,
    pub(crate) assessment: Option<AssessmentRules>,
    pub(crate) family_account: Option<FamilyAccount>,
}

impl Policy {
    /// The canonical identity of the document: (region, coverage year).
    pub fn key(&self) -> (RegionCode, u16) {
        (self.region, self.coverage_year)
    }

    pub fn region(&self) -> RegionCode {
        self.region
    }

    pub fn region_name(&self) -> &str {
        &self.region_name
    }

    pub fn coverage_year(&self) -> u16 {
        self.coverage_year
    }

    /// What part of the region's residents the document is about, when not
    /// all (Shanxi 2022: 特殊人群, the special groups).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn premium(&self) -> &Premium {
        &self.premium
    }

    /// 一次性缴纳 for one group only (Guigang 2021: late newborns from 1 July).
    pub fn in_one_payment_for(&self) -> &[GroupOnePayment] {
        &self.in_one_payment_for
    }

    /// 待遇享受时间: the days a fully paid person-year can cover at most.
    pub fn coverage(&self) -> Period {
        self.coverage
    }

    /// The last covered day of the year (31 December unless stated).
    pub fn covered_until(&self) -> Date {
        self.coverage.until
    }

    pub fn concentrated(&self) -> Option<&Concentrated> {
        self.concentrated.as_ref()
    }

    pub fn sporadic(&self) -> Option<&Sporadic> {
        self.sporadic.as_ref()
    }

    pub fn interrupted(&self) -> Option<&Interrupted> {
        self.interrupted.as_ref()
    }

    pub fn employee_transfer(&self) -> Option<&EmployeeTransfer> {
        self.employee_transfer.as_ref()
    }

    pub fn newborn(&self) -> Option<&Newborn> {
        self.newborn.as_ref()
    }

    pub fn hardship(&self) -> Option<&Hardship> {
        self.hardship.as_ref()
    }

    pub fn assessment(&self) -> Option<&AssessmentRules> {
        self.assessment.as_ref()
    }

    /// 职工医保个人账户家庭共济代缴 rules; `None`: the source says nothing.
    pub fn family_account(&self) -> Option<FamilyAccount> {
        self.family_account
    }

    /// Shanxi 2022: 一旦按正常模块办理缴费,将无法再办理特殊缴费. When true, a
    /// person who has paid through the normal path can no longer use the
    /// special (assessed, subsidised) path for this year. The projection
    /// enforces it; the policy only says whether it holds.
    pub fn special_path_closes_after_normal_payment(&self) -> bool {
        self.assessment.as_ref().is_some_and(|a| a.special_path_closes_after_normal_payment)
    }
}

/// Where the figures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub title: String,
    pub publisher: Option<String>,
    pub published_on: Option<Date>,
    pub url: Option<String>,
    /// The copy of the page the figures were read from.
    pub file: Option<String>,
}

/// 缴费标准 of the year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Premium {
    /// 个人缴费标准: individual contribution standard.
    pub individual: Money,
    /// 财政补助标准: fiscal subsidy per person. `None`: not published.
    pub fiscal_subsidy: Option<Money>,
    /// The full premium a sporadic payer pays, when the source states it.
    pub full: Option<Money>,
    /// 由参保人员按年度一次性足额缴纳: the year's premium is paid in one
    /// payment. A year paid in parts still counts its money, with a note.
    pub in_one_payment: bool,
}

/// 一次性缴纳 required of one group of payers: a payment made as a member of
/// `group`, on a day within `paid`, is to pay the year in one payment
/// (Guigang 2021: 新生儿在2021年7月1日至2021年12月31日参保缴费,且出生超过三个月才
/// 缴纳的,其个人缴费应为个人一次性缴纳...合计费用). A year paid in parts still
/// counts its money, with a note, as under `Premium::in_one_payment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOnePayment {
    pub group: PayerGroup,
    pub paid: OpenPeriod,
}

/// Who is to pay the year in one payment, for a payment made on some day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnePayment {
    /// Everyone (`premium.in_one_payment`: 由参保人员按年度一次性足额缴纳).
    Everyone,
    /// A group the payer is in that day (`premium.in_one_payment_for`).
    Group(GroupOnePayment),
}

/// A group of payers a requirement can name: how the policy sees the
/// payment (its class), or a certified hardship group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayerGroup {
    /// Paying in the concentrated period (or its hardship extension).
    Concentrated,
    /// 零星缴费.
    Sporadic,
    /// 新生儿, within the window or after it.
    Newborn,
    /// 新生儿 paying within the window from birth.
    NewbornInWindow,
    /// 新生儿 paying after the window (出生超过三个月才缴纳的).
    NewbornLate,
    /// 中断缴费 payers back after the policy's gap.
    Interrupted,
    /// 职工医保转城乡居民.
    EmployeeTransfer,
    /// 困难人员: a certified hardship group this year.
    Hardship,
}

/// A run of calendar days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub from: Date,
    pub until: Date,
}

impl Period {
    pub fn contains(self, date: Date) -> bool {
        self.from <= date && date <= self.until
    }

    pub fn overlaps(self, other: Period) -> bool {
        self.from <= other.until && other.from <= self.until
    }
}

/// A run of payment dates, either end open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenPeriod {
    pub from: Option<Date>,
    pub until: Option<Date>,
}

impl OpenPeriod {
    pub fn contains(self, date: Date) -> bool {
        self.from.is_none_or(|from| from <= date) && self.until.is_none_or(|until| date <= until)
    }

    pub fn overlaps(self, other: OpenPeriod) -> bool {
        let starts_before_other_ends = match (self.from, other.until) {
            (Some(from), Some(until)) => from <= until,
            _ => true,
        };
        let other_starts_before_self_ends = match (other.from, self.until) {
            (Some(from), Some(until)) => from <= until,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_self_ends
    }
}

/// 集中征缴期: concentrated collection period(s), before the coverage year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concentrated {
    /// In date order, not overlapping.
    pub periods: Vec<Period>,
    /// Guigang 2021: 部分城乡居民缴费有困难的,可延迟至2021年2月底. Persons with a
    /// certified hardship group may still pay as in the period until then.
    pub extended_until_for_hardship: Option<Date>,
    pub coverage: CoverageStart,
}

/// 零星缴费: sporadic payment after the concentrated period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sporadic {
    /// The stated window; `None`: the day after the last concentrated period
    /// to the end of the coverage year.
    pub window: Option<Period>,
    /// What a payment after the concentrated period owes, by payment date;
    /// also used by interrupted payers, employee transfers and late newborns.
    pub premium: Vec<PremiumBand>,
    pub coverage: CoverageStart,
    /// Persons the source exempts from this rule without saying what applies
    /// to them instead (Bijie 2025: 除新生儿、困难人员等特殊人群外).
    pub exempt: Vec<Exemption>,
}

/// What payments within `paid` owe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PremiumBand {
    pub paid: OpenPeriod,
    pub pays: Pays,
}

/// Which standard a payment owes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pays {
    /// 个人缴费部分 only.
    Individual,
    /// 个人缴费标准和政府补助标准之和: individual + fiscal subsidy.
    Full,
}

/// Persons a sporadic rule does not apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exemption {
    /// 新生儿.
    Newborn,
    /// 困难人员: anyone with a certified hardship group this year.
    Hardship,
}

/// 中断缴费: payers back after a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// "中断缴费1年以上": at least this many coverage years unpaid between the
    /// last paid year and this one (以上 includes the number itself).
    pub min_gap_years: u16,
    pub coverage: CoverageStart,
}

/// 职工医保转城乡居民: left employee insurance and joined resident insurance in
/// the same calendar year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmployeeTransfer {
    pub coverage: CoverageStart,
}

/// 新生儿参保: newborns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Newborn {
    /// Paying within it gets `in_window_coverage` at `pays`.
    pub window: Window,
    pub pays: Pays,
    pub in_window_coverage: CoverageStart,
    /// After the window; `None`: not stated.
    pub late_coverage: Option<CoverageStart>,
    /// 补缴: a child born in the coverage year may still pay it in the next
    /// year, within the window, and be covered from birth.
    pub back_payment: bool,
    /// 预参保登记 not paid within it becomes void (作废).
    pub pre_registration_lapse: Option<Window>,
}

/// A span counted from a day (birth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// "出生三个月以内".
    Months(u8),
    /// "自出生之日起90天内".
    Days(u16),
}

/// When cover starts, as a kind of rule with its parameters. The first day
/// is computed in one place: `rules::first_covered_day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoverageStart {
    /// 从1月1日起: the first day of the coverage year.
    CoverageYearStart,
    /// 待遇等待期: the payment date is day 1; the first covered day is the
    /// payment date + `waiting_days` (Liupanshui 60 "不含60日", Bijie 90).
    WaitingDays { waiting_days: u16 },
    /// The 1st of the month `months_after` months after the payment month:
    /// 0 = 缴费当月 (payment month), 1 = 次月 (next month), 3 = 第3个月.
    MonthStart { months_after: u8 },
    /// 从出生之日起: the date of birth.
    FromBirth,
}

/// 资助参保: hardship subsidies towards the individual part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hardship {
    /// In the document's order, which breaks ties between equal subsidies.
    pub groups: Vec<HardshipGroup>,
    pub county_classes: Vec<CountyClass>,
}

/// One hardship group (困难群体) of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardshipGroup {
    /// Stable code, as in `HardshipCertified.group` (e.g. `extreme_poverty`).
    pub id: String,
    /// The Chinese name in the source (特困人员).
    pub name: String,
    pub subsidy: Subsidy,
    /// Who bears which part; the tranches sum to the subsidy.
    pub tranches: Vec<Tranche>,
}

/// How much of the individual part a group gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subsidy {
    Amount(Money),
    /// 全额资助: the whole individual standard.
    Full,
    /// 不再享受资助: listed, but no longer subsidised.
    None,
}

/// A part of a subsidy with one way of sharing it among funders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tranche {
    pub amount: TrancheAmount,
    pub funding: Funding,
}

/// A tranche's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrancheAmount {
    Amount(Money),
    /// The whole individual standard.
    Full,
}

/// Who bears a tranche.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Funding {
    /// One ratio everywhere (one funder: that funder alone).
    Ratio(Ratio),
    /// A ratio by the class of the person's county (Liupanshui 2021: 5:2:3
    /// in first-class poor counties, the county alone in 钟山区).
    ByCountyClass(Vec<CountyClassRatio>),
    /// The source does not say (e.g. "按2020年度政府分担比例不变"); the note
    /// quotes it. Such money stays unallocated.
    Unstated(String),
}

/// The ratio that applies in one class of counties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountyClassRatio {
    pub county_class: String,
    pub ratio: Ratio,
}

/// A named set of counties (县级行政区).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountyClass {
    pub id: String,
    pub name: String,
    pub counties: Vec<County>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct County {
    pub code: RegionCode,
    pub name: String,
}

/// 核定: the office assesses what a subsidised person owes (Shanxi 2022).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssessmentRules {
    /// 一旦按正常模块办理缴费,将无法再办理特殊缴费.
    pub special_path_closes_after_normal_payment: bool,
    /// 建议缴费人在核定后次日再进行缴费: advice, not a rule (1 = the next day).
    pub advised_payment_delay_days: Option<u16>,
}

/// 职工医保个人账户家庭共济代缴 (Bijie 2025): paying resident premiums from an
/// employee's medical-insurance personal account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyAccount {
    /// 外省职工医保个人账户不能代缴贵州省居民医保费;贵州省职工医保个人账户也不能
    /// 代缴外省居民医保费: only accounts of the region's province pay its
    /// premiums, and that province's accounts pay no other province's.
    pub same_province_only: bool,
    /// 整体流程一般可在3天内结束: an application still in flight this many days
    /// after it was submitted is stuck. `None`: not stated.
    pub processing_days: Option<u16>,
    /// Whom an account may pay for in this year: Bijie allowed direct family
    /// (直系亲属) from 2024 and near relatives (近亲属) in 2025. `None`: not
    /// stated, every near relative.
    pub relations: Option<Relations>,
}

/// A set of relations (近亲属 and narrower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relations(u16);

impl Relations {
    pub fn contains(self, relation: Relation) -> bool {
        self.0 & (1 << relation as u16) != 0
    }

    pub fn insert(&mut self, relation: Relation) {
        self.0 |= 1 << relation as u16;
    }

    /// In the order of [`crate::family::RELATIONS`].
    pub fn iter(self) -> impl Iterator<Item = Relation> {
        crate::family::RELATIONS.into_iter().map(|(relation, _, _)| relation).filter(move |r| self.contains(*r))
    }
}

/// Longest stated processing time of a proxy application, in days.
pub const MAX_PROCESSING_DAYS: u16 = 366;

/// Shares of a sum among funders, e.g. province:city:county 5:2:3. Every
/// share is positive and each funder appears once, in [`Funder`] order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    shares: Vec<(Funder, u32)>,
}

/// Why shares are not a ratio.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RatioError {
    #[error("a ratio needs at least one funder")]
    Empty,
    #[error("the share of `{}` is 0: leave the funder out instead", funder_key(.0))]
    ZeroShare(Funder),
    #[error("`{}` appears twice", funder_key(.0))]
    Duplicate(Funder),
    #[error("the shares add up to more than {MAX_RATIO_TOTAL}")]
    TooLarge,
}

/// The key of a funder in a ratio table (`province`, `county`, …).
pub fn funder_key(funder: &Funder) -> &str {
    match funder {
        Funder::Province => "province",
        Funder::City => "city",
        Funder::County => "county",
        Funder::MedicalAssistanceFund => "medical_assistance_fund",
        Funder::Other(name) => name,
    }
}

/// Largest sum of a ratio's shares (ratios in the sources are 5:2:3).
pub const MAX_RATIO_TOTAL: u32 = 10_000;

impl Ratio {
    pub fn new(mut shares: Vec<(Funder, u32)>) -> Result<Ratio, RatioError> {
        if shares.is_empty() {
            return Err(RatioError::Empty);
        }
        if let Some((funder, _)) = shares.iter().find(|(_, share)| *share == 0) {
            return Err(RatioError::ZeroShare(funder.clone()));
        }
        shares.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = shares.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(RatioError::Duplicate(pair[0].0.clone()));
        }
        let total: u64 = shares.iter().map(|(_, share)| u64::from(*share)).sum();
        if total > u64::from(MAX_RATIO_TOTAL) {
            return Err(RatioError::TooLarge);
        }
        Ok(Ratio { shares })
    }

    /// One funder bears everything.
    pub fn alone(funder: Funder) -> Ratio {
        Ratio { shares: vec![(funder, 1)] }
    }

    pub fn shares(&self) -> &[(Funder, u32)] {
        &self.shares
    }

    pub fn total(&self) -> u32 {
        self.shares.iter().map(|(_, share)| share).sum()
    }
}
