//! The canonical form of a policy: the document rebuilt from the domain
//! type, without comments, in fixed key order. Equal policies have equal
//! canonical forms and digests, so loading the same file twice is a no-op
//! and a changed figure shows as a changed digest (an amendment).

use super::file::{
    AmountWord, AssessmentFile, BandFile, ByClassFile, ConcentratedFile, CountyClassFile, CountyFile,
    EmployeeTransferFile, ExemptionFile, FamilyAccountFile, GroupFile, HardshipFile, InterruptedFile, NewbornFile,
    OnePaymentFile, PayerGroupFile, PaysFile, PeriodFile, PolicyFile, PremiumFile, RatioFile, RuleFile, SourceFile,
    SporadicFile, TrancheFile, WindowFile,
};
use super::model::{
    County, CountyClass, CoverageStart, Exemption, Funding, GroupOnePayment, Hardship, HardshipGroup, Newborn,
    PayerGroup, Pays, Period, Policy, PremiumBand, Ratio, Sporadic, Subsidy, Tranche, TrancheAmount, Window,
};
use chrono::Datelike;
use ledger::event::Funder;
use ledger::Date;
use sm3::{Digest, Sm3};
use toml::value::Datetime;
use toml::Spanned;

impl Policy {
    /// The document in canonical TOML; [`Policy::from_toml`] of it gives
    /// back an equal policy.
    pub fn to_canonical_toml(&self) -> String {
        toml::to_string(&self.to_file()).expect("a policy's file form has only TOML-representable values")
    }

    /// SM3 of the canonical form: equal for equal content.
    pub fn content_digest(&self) -> [u8; 32] {
        Sm3::digest(self.to_canonical_toml().as_bytes()).into()
    }

    fn to_file(&self) -> PolicyFile {
        PolicyFile {
            region: plain(self.region.to_string()),
            region_name: self.region_name.clone(),
            coverage_year: plain(i64::from(self.coverage_year)),
            scope: self.scope.clone(),
            source: SourceFile {
                title: self.source.title.clone(),
                publisher: self.source.publisher.clone(),
                published_on: self.source.published_on.map(date),
                url: self.source.url.clone(),
                file: self.source.file.clone(),
            },
            premium: plain(PremiumFile {
                individual: self.premium.individual,
                fiscal_subsidy: self.premium.fiscal_subsidy,
                full: self.premium.full.map(plain),
                in_one_payment: self.premium.in_one_payment,
                in_one_payment_for: self.in_one_payment_for.iter().map(one_payment).collect(),
            }),
            coverage: Some(period(self.coverage)),
            concentrated: self.concentrated.as_ref().map(|c| ConcentratedFile {
                periods: c.periods.iter().copied().map(period).collect(),
                extended_until_for_hardship: c.extended_until_for_hardship.map(date),
                coverage: rule(c.coverage),
            }),
            sporadic: self.sporadic.as_ref().map(sporadic),
            interrupted: self
                .interrupted
                .map(|i| InterruptedFile { min_gap_years: i.min_gap_years, coverage: rule(i.coverage) }),
            employee_transfer: self.employee_transfer.map(|t| EmployeeTransferFile { coverage: rule(t.coverage) }),
            newborn: self.newborn.map(newborn),
            hardship: self.hardship.as_ref().map(hardship),
            assessment: self.assessment.map(|a| AssessmentFile {
                special_path_closes_after_normal_payment: a.special_path_closes_after_normal_payment,
                advised_payment_delay_days: a.advised_payment_delay_days,
            }),
            family_account: self.family_account.map(|f| {
                plain(FamilyAccountFile {
                    same_province_only: f.same_province_only,
                    processing_days: f.processing_days,
                    relations: f.relations.map(|relations| {
                        let names = relations.iter().map(|r| crate::family::relation_name(r).to_string()).collect();
                        plain(names)
                    }),
                })
            }),
        }
    }
}

fn one_payment(rule: &GroupOnePayment) -> Spanned<OnePaymentFile> {
    let group = match rule.group {
        PayerGroup::Concentrated => PayerGroupFile::Concentrated,
        PayerGroup::Sporadic => PayerGroupFile::Sporadic,
        PayerGroup::Newborn => PayerGroupFile::Newborn,
        PayerGroup::NewbornInWindow => PayerGroupFile::NewbornInWindow,
        PayerGroup::NewbornLate => PayerGroupFile::NewbornLate,
        PayerGroup::Interrupted => PayerGroupFile::Interrupted,
        PayerGroup::EmployeeTransfer => PayerGroupFile::EmployeeTransfer,
        PayerGroup::Hardship => PayerGroupFile::Hardship,
    };
    plain(OnePaymentFile { group, paid_from: rule.paid.from.map(date), paid_until: rule.paid.until.map(date) })
}

fn sporadic(value: &Sporadic) -> SporadicFile {
    let band = |b: &PremiumBand| {
        plain(BandFile { paid_from: b.paid.from.map(date), paid_until: b.paid.until.map(date), pays: pays(b.pays) })
    };
    SporadicFile {
        window: value.window.map(period),
        coverage: rule(value.coverage),
        exempt: value.exempt.iter().map(|e| exemption(*e)).collect(),
        premium: value.premium.iter().map(band).collect(),
    }
}

fn newborn(value: Newborn) -> NewbornFile {
    NewbornFile {
        window: window(value.window),
        pays: pays(value.pays),
        in_window_coverage: rule(value.in_window_coverage),
        late_coverage: value.late_coverage.map(rule),
        back_payment: value.back_payment,
        pre_registration_lapse: value.pre_registration_lapse.map(window),
    }
}

fn hardship(value: &Hardship) -> HardshipFile {
    let county = |k: &County| plain(CountyFile { code: k.code.to_string(), name: k.name.clone() });
    let class = |c: &CountyClass| {
        plain(CountyClassFile {
            id: c.id.clone(),
            name: c.name.clone(),
            counties: c.counties.iter().map(county).collect(),
        })
    };
    HardshipFile {
        county_classes: value.county_classes.iter().map(class).collect(),
        groups: value.groups.iter().map(group).collect(),
    }
}

fn plain<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn date(value: Date) -> Spanned<Datetime> {
    let date = toml::value::Date {
        year: u16::try_from(value.year()).expect("dates come from TOML dates, whose years are u16"),
        month: u8::try_from(value.0.month()).expect("a month is 1..=12"),
        day: u8::try_from(value.0.day()).expect("a day is 1..=31"),
    };
    plain(Datetime { date: Some(date), time: None, offset: None })
}

fn period(value: Period) -> Spanned<PeriodFile> {
    plain(PeriodFile { from: date(value.from), until: date(value.until) })
}

fn rule(value: CoverageStart) -> Spanned<RuleFile> {
    plain(match value {
        CoverageStart::CoverageYearStart => RuleFile { kind: "coverage_year_start".into(), ..RuleFile::default() },
        CoverageStart::FromBirth => RuleFile { kind: "from_birth".into(), ..RuleFile::default() },
        CoverageStart::WaitingDays { waiting_days } => {
            RuleFile { kind: "waiting_days".into(), waiting_days: Some(waiting_days), ..RuleFile::default() }
        }
        CoverageStart::MonthStart { months_after } => {
            RuleFile { kind: "month_start".into(), months_after: Some(months_after), ..RuleFile::default() }
        }
    })
}

fn window(value: Window) -> Spanned<WindowFile> {
    plain(match value {
        Window::Months(months) => WindowFile { months: Some(months), days: None },
        Window::Days(days) => WindowFile { months: None, days: Some(days) },
    })
}

fn pays(value: Pays) -> PaysFile {
    match value {
        Pays::Individual => PaysFile::Individual,
        Pays::Full => PaysFile::Full,
    }
}

fn exemption(value: Exemption) -> ExemptionFile {
    match value {
        Exemption::Newborn => ExemptionFile::Newborn,
        Exemption::Hardship => ExemptionFile::Hardship,
    }
}

fn group(value: &HardshipGroup) -> Spanned<GroupFile> {
    let subsidy = match value.subsidy {
        Subsidy::Amount(amount) => AmountWord::Amount(amount),
        Subsidy::Full => AmountWord::Full,
        Subsidy::None => AmountWord::None,
    };
    // Always written as tranches: one canonical shape whatever the input's.
    let tranches = (!value.tranches.is_empty()).then(|| value.tranches.iter().map(tranche).collect());
    plain(GroupFile {
        id: value.id.clone(),
        name: value.name.clone(),
        subsidy: plain(subsidy),
        person_pays: None,
        ratio: None,
        by_county_class: None,
        funding_unstated: None,
        tranches,
    })
}

fn tranche(value: &Tranche) -> Spanned<TrancheFile> {
    let amount = match value.amount {
        TrancheAmount::Amount(amount) => AmountWord::Amount(amount),
        TrancheAmount::Full => AmountWord::Full,
    };
    let mut file = TrancheFile { amount, ratio: None, by_county_class: None, funding_unstated: None };
    match &value.funding {
        Funding::Ratio(r) => file.ratio = Some(ratio(r)),
        Funding::Unstated(note) => file.funding_unstated = Some(note.clone()),
        Funding::ByCountyClass(list) => {
            file.by_county_class = Some(
                list.iter()
                    .map(|r| plain(ByClassFile { county_class: r.county_class.clone(), ratio: ratio(&r.ratio) }))
                    .collect(),
            )
        }
    }
    plain(file)
}

fn ratio(value: &Ratio) -> Spanned<RatioFile> {
    let mut file = RatioFile::default();
    for (funder, share) in value.shares() {
        let slot = match funder {
            Funder::Province => &mut file.province,
            Funder::City => &mut file.city,
            Funder::County => &mut file.county,
            Funder::MedicalAssistanceFund => &mut file.medical_assistance_fund,
            Funder::Other(_) => continue,
        };
        *slot = Some(*share);
    }
    plain(file)
}
