//! TOML text → [`PolicyFile`] → [`Policy`], explicitly, validating as it
//! goes. Every error names the field and, where the parser kept the span,
//! the line.

use super::error::{PolicyError, Problem};
use super::file::{
    AmountWord, BandFile, ByClassFile, ConcentratedFile, CountyClassFile, ExemptionFile, FamilyAccountFile, GroupFile,
    HardshipFile, NewbornFile, PayerGroupFile, PaysFile, PeriodFile, PolicyFile, PremiumFile, RatioFile, RuleFile,
    SporadicFile, TrancheFile, WindowFile,
};
use super::model::{
    AssessmentRules, Concentrated, County, CountyClass, CountyClassRatio, CoverageStart, EmployeeTransfer, Exemption,
    FamilyAccount, Funding, GroupOnePayment, Hardship, HardshipGroup, Interrupted, Newborn, OpenPeriod, PayerGroup,
    Pays, Period, Policy, Premium, PremiumBand, Ratio, Relations, Source, Sporadic, Subsidy, Tranche, TrancheAmount,
    Window, MAX_PROCESSING_DAYS,
};
use ledger::event::{Funder, MAX_DOCUMENT_BYTES};
use ledger::{Date, Money, RegionCode};
use std::ops::Range;
use toml::value::Datetime;
use toml::Spanned;

/// Limits on lists in a document, far above any real policy.
const MAX_PERIODS: usize = 8;
const MAX_BANDS: usize = 8;
const MAX_GROUPS: usize = 64;
const MAX_TRANCHES: usize = 8;
const MAX_COUNTY_CLASSES: usize = 16;
const MAX_COUNTIES: usize = 64;
const MAX_TEXT_BYTES: usize = 512;

/// Province-level codes of GB/T 2260 (the first two digits of a region).
const PROVINCES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63,
    64, 65, 71, 81, 82,
];

pub(crate) fn parse(text: &str) -> Result<Policy> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(PolicyError::TooLarge { size_bytes: text.len(), limit_bytes: MAX_DOCUMENT_BYTES });
    }
    let file = deserialize(text)?;
    Converter::new(text, &file)?.policy(file)
}

fn deserialize(text: &str) -> Result<PolicyFile> {
    let deserializer = toml::Deserializer::parse(text).map_err(|error| syntax(text, String::new(), &error))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = field_path(error.path());
        syntax(text, field, error.inner())
    })
}

/// `premium.individual`, `concentrated.periods[1].from`: the path serde
/// followed, without the span wrappers' private keys.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut field = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__") {
                    continue;
                }
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    field
}

fn syntax(text: &str, field: String, error: &toml::de::Error) -> PolicyError {
    let position = error.span().map(|span| line_column(text, span.start));
    PolicyError::Syntax {
        field,
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        message: error.message().trim().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let line_start = bytes[..offset].iter().rposition(|&b| b == b'\n').map_or(0, |nl| nl + 1);
    let line = bytes[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&bytes[line_start..offset]).chars().count() + 1;
    (line, column)
}

struct Converter<'a> {
    text: &'a str,
    region: RegionCode,
    coverage_year: u16,
}

type Result<T> = std::result::Result<T, PolicyError>;

impl<'a> Converter<'a> {
    fn new(text: &'a str, file: &PolicyFile) -> Result<Converter<'a>> {
        let region = region(text, &file.region)?;
        let coverage_year = coverage_year(text, &file.coverage_year)?;
        Ok(Converter { text, region, coverage_year })
    }

    fn invalid(&self, field: impl Into<String>, span: Range<usize>, problem: Problem) -> PolicyError {
        invalid_at(self.text, field, span, problem)
    }

    fn policy(&self, file: PolicyFile) -> Result<Policy> {
        let premium = self.premium(&file.premium)?;
        let in_one_payment_for = self.in_one_payment_for(&file.premium)?;
        let coverage = self.coverage(file.coverage.as_ref())?;
        let concentrated = file.concentrated.as_ref().map(|c| self.concentrated(c)).transpose()?;
        let sporadic = file.sporadic.as_ref().map(|s| self.sporadic(s, concentrated.as_ref())).transpose()?;
        let interrupted = match &file.interrupted {
            Some(i) => {
                if i.min_gap_years < 1 {
                    let span = i.coverage.span();
                    return Err(self.invalid("interrupted.min_gap_years", span, Problem::TooSmall { min: 1 }));
                }
                Some(Interrupted {
                    min_gap_years: i.min_gap_years,
                    coverage: self.rule("interrupted.coverage", &i.coverage)?,
                })
            }
            None => None,
        };
        let employee_transfer = file
            .employee_transfer
            .as_ref()
            .map(|t| self.rule("employee_transfer.coverage", &t.coverage).map(|coverage| EmployeeTransfer { coverage }))
            .transpose()?;
        let newborn = file.newborn.as_ref().map(|n| self.newborn(n)).transpose()?;
        let hardship = file.hardship.as_ref().map(|h| self.hardship(h, premium.individual)).transpose()?;
        let assessment = file.assessment.as_ref().map(|a| AssessmentRules {
            special_path_closes_after_normal_payment: a.special_path_closes_after_normal_payment,
            advised_payment_delay_days: a.advised_payment_delay_days,
        });
        let family_account = file.family_account.as_ref().map(|f| self.family_account(f)).transpose()?;
        Ok(Policy {
            region: self.region,
            region_name: self.text_field("region_name", &file.region_name)?,
            coverage_year: self.coverage_year,
            scope: file.scope.as_deref().map(|s| self.text_field("scope", s)).transpose()?,
            source: self.source(&file)?,
            premium,
            in_one_payment_for,
            coverage,
            concentrated,
            sporadic,
            interrupted,
            employee_transfer,
            newborn,
            hardship,
            assessment,
            family_account,
        })
    }

    fn family_account(&self, value: &Spanned<FamilyAccountFile>) -> Result<FamilyAccount> {
        let file = value.get_ref();
        if let Some(days) = file.processing_days {
            let field = "family_account.processing_days";
            if days < 1 {
                return Err(self.invalid(field, value.span(), Problem::TooSmall { min: 1 }));
            }
            if days > MAX_PROCESSING_DAYS {
                return Err(self.invalid(
                    field,
                    value.span(),
                    Problem::TooLarge { max: u32::from(MAX_PROCESSING_DAYS) },
                ));
            }
        }
        let relations = match &file.relations {
            None => None,
            Some(names) => {
                let field = "family_account.relations";
                let mut relations = Relations::default();
                for name in names.get_ref() {
                    let relation = crate::family::parse_relation(name)
                        .map_err(|reason| self.invalid(field, names.span(), Problem::Relation(reason)))?;
                    if relations.contains(relation) {
                        return Err(self.invalid(field, names.span(), Problem::Duplicate(name.clone())));
                    }
                    relations.insert(relation);
                }
                if relations == Relations::default() {
                    return Err(self.invalid(field, names.span(), Problem::Choose("name at least one relation")));
                }
                Some(relations)
            }
        };
        Ok(FamilyAccount {
            same_province_only: file.same_province_only,
            processing_days: file.processing_days,
            relations,
        })
    }

    /// A free-text field. Plain strings keep no span here, so the error
    /// names the field only.
    fn text_field(&self, field: &str, value: &str) -> Result<String> {
        let refuse = |problem| PolicyError::Invalid { field: field.into(), line: None, problem };
        if value.trim().is_empty() {
            return Err(refuse(Problem::Empty));
        }
        if value.len() > MAX_TEXT_BYTES {
            return Err(refuse(Problem::TooLong { limit_bytes: MAX_TEXT_BYTES }));
        }
        Ok(value.to_string())
    }

    fn source(&self, file: &PolicyFile) -> Result<Source> {
        let source = &file.source;
        let optional = |field: &str, value: &Option<String>| -> Result<Option<String>> {
            value.as_deref().map(|v| self.text_field(field, v)).transpose()
        };
        Ok(Source {
            title: self.text_field("source.title", &source.title)?,
            publisher: optional("source.publisher", &source.publisher)?,
            published_on: source.published_on.as_ref().map(|d| self.date("source.published_on", d)).transpose()?,
            url: optional("source.url", &source.url)?,
            file: optional("source.file", &source.file)?,
        })
    }

    fn premium(&self, premium: &Spanned<PremiumFile>) -> Result<Premium> {
        let PremiumFile { individual, fiscal_subsidy, full, in_one_payment, in_one_payment_for: _ } = premium.get_ref();
        let (individual, fiscal_subsidy) = (*individual, *fiscal_subsidy);
        if let (Some(full), Some(fiscal)) = (full, fiscal_subsidy) {
            if individual.checked_add(fiscal) != Some(*full.get_ref()) {
                let problem = Problem::FullPremiumMismatch { full: *full.get_ref(), individual, fiscal };
                return Err(self.invalid("premium.full", full.span(), problem));
            }
        }
        Ok(Premium {
            individual,
            fiscal_subsidy,
            full: full.as_ref().map(|f| *f.get_ref()),
            in_one_payment: *in_one_payment,
        })
    }

    /// `[[premium.in_one_payment_for]]`: groups that pay in one payment, on
    /// payments within their dates (the same group's dates never overlap).
    fn in_one_payment_for(&self, premium: &Spanned<PremiumFile>) -> Result<Vec<GroupOnePayment>> {
        let files = &premium.get_ref().in_one_payment_for;
        if files.is_empty() {
            return Ok(Vec::new());
        }
        if premium.get_ref().in_one_payment {
            let problem = Problem::Choose("`in_one_payment = true` already asks it of everyone: leave the groups out");
            return Err(self.invalid("premium.in_one_payment_for", premium.span(), problem));
        }
        if files.len() > MAX_BANDS {
            return Err(self.invalid("premium.in_one_payment_for", premium.span(), Problem::TooMany(MAX_BANDS)));
        }
        let mut rules: Vec<GroupOnePayment> = Vec::with_capacity(files.len());
        for (index, value) in files.iter().enumerate() {
            let field = format!("premium.in_one_payment_for[{index}]");
            let file = value.get_ref();
            let paid = self.paid_period(&field, value.span(), &file.paid_from, &file.paid_until)?;
            let group = payer_group(file.group);
            if let Some(other) = rules.iter().position(|r| r.group == group && r.paid.overlaps(paid)) {
                let problem = Problem::Overlap { other: format!("premium.in_one_payment_for[{other}]") };
                return Err(self.invalid(field, value.span(), problem));
            }
            rules.push(GroupOnePayment { group, paid });
        }
        Ok(rules)
    }

    /// `FIELD.paid_from` and `FIELD.paid_until`: a period of payment days,
    /// either end open, never reversed.
    fn paid_period(
        &self,
        field: &str,
        span: Range<usize>,
        from: &Option<Spanned<Datetime>>,
        until: &Option<Spanned<Datetime>>,
    ) -> Result<OpenPeriod> {
        let date = |end: &str, d: &Option<Spanned<Datetime>>| -> Result<Option<Date>> {
            d.as_ref().map(|d| self.date(&format!("{field}.paid_{end}"), d)).transpose()
        };
        let paid = OpenPeriod { from: date("from", from)?, until: date("until", until)? };
        if let (Some(from), Some(until)) = (paid.from, paid.until) {
            if from > until {
                return Err(self.invalid(field, span, Problem::PeriodReversed { from, until }));
            }
        }
        Ok(paid)
    }

    fn date(&self, field: &str, value: &Spanned<Datetime>) -> Result<Date> {
        let datetime = value.get_ref();
        let date = match (datetime.date, datetime.time, datetime.offset) {
            (Some(d), None, None) => Date::ymd(i32::from(d.year), u32::from(d.month), u32::from(d.day)),
            _ => None,
        };
        date.ok_or_else(|| self.invalid(field, value.span(), Problem::NotADate(datetime.to_string())))
    }

    fn year_start(&self, year: u16) -> Date {
        Date::ymd(i32::from(year), 1, 1).expect("1 January exists in every validated year")
    }

    fn year_end(&self, year: u16) -> Date {
        Date::ymd(i32::from(year), 12, 31).expect("31 December exists in every validated year")
    }

    /// A period, not reversed, and inside `allowed` (a coverage-year check).
    fn period(&self, field: &str, value: &Spanned<PeriodFile>, allowed: Period) -> Result<Period> {
        let file = value.get_ref();
        let from = self.date(&format!("{field}.from"), &file.from)?;
        let until = self.date(&format!("{field}.until"), &file.until)?;
        if from > until {
            return Err(self.invalid(field, value.span(), Problem::PeriodReversed { from, until }));
        }
        for (end, date, span) in [("from", from, file.from.span()), ("until", until, file.until.span())] {
            if !allowed.contains(date) {
                let problem = Problem::YearMismatch {
                    expected: self.coverage_year,
                    found: format!("{date} (allowed {}..{})", allowed.from, allowed.until),
                };
                return Err(self.invalid(format!("{field}.{end}"), span, problem));
            }
        }
        Ok(Period { from, until })
    }

    /// Days on which payments for the year may be made: from 1 January of
    /// the year before (concentrated periods run in the autumn before).
    fn payment_days(&self) -> Period {
        Period { from: self.year_start(self.coverage_year - 1), until: self.year_end(self.coverage_year) }
    }

    fn coverage(&self, coverage: Option<&Spanned<PeriodFile>>) -> Result<Period> {
        let year = Period { from: self.year_start(self.coverage_year), until: self.year_end(self.coverage_year) };
        match coverage {
            Some(value) => self.period("coverage", value, year),
            None => Ok(year),
        }
    }

    fn concentrated(&self, file: &ConcentratedFile) -> Result<Concentrated> {
        let coverage = self.rule("concentrated.coverage", &file.coverage)?;
        let span = file.coverage.span();
        if file.periods.is_empty() {
            return Err(self.invalid("concentrated.periods", span, Problem::Empty));
        }
        if file.periods.len() > MAX_PERIODS {
            return Err(self.invalid("concentrated.periods", span, Problem::TooMany(MAX_PERIODS)));
        }
        let mut periods: Vec<Period> = Vec::with_capacity(file.periods.len());
        for (index, value) in file.periods.iter().enumerate() {
            let field = format!("concentrated.periods[{index}]");
            let period = self.period(&field, value, self.payment_days())?;
            if let Some(other) = periods.iter().position(|p| p.overlaps(period)) {
                let problem = Problem::Overlap { other: format!("concentrated.periods[{other}]") };
                return Err(self.invalid(field, value.span(), problem));
            }
            periods.push(period);
        }
        periods.sort();
        let extended_until_for_hardship =
            file.extended_until_for_hardship.as_ref().map(|d| self.extension(d, &periods)).transpose()?;
        Ok(Concentrated { periods, extended_until_for_hardship, coverage })
    }

    fn extension(&self, value: &Spanned<Datetime>, periods: &[Period]) -> Result<Date> {
        let field = "concentrated.extended_until_for_hardship";
        let date = self.date(field, value)?;
        let last_end = periods.last().map(|p| p.until);
        if last_end.is_some_and(|end| date <= end) || !self.payment_days().contains(date) {
            let problem = Problem::YearMismatch {
                expected: self.coverage_year,
                found: format!("{date} (must fall after the last period and within the coverage year)"),
            };
            return Err(self.invalid(field, value.span(), problem));
        }
        Ok(date)
    }

    fn sporadic(&self, file: &SporadicFile, concentrated: Option<&Concentrated>) -> Result<Sporadic> {
        let window =
            file.window.as_ref().map(|w| self.period("sporadic.window", w, self.payment_days())).transpose()?;
        if let (Some(window), Some(concentrated), Some(value)) = (window, concentrated, file.window.as_ref()) {
            if let Some(index) = concentrated.periods.iter().position(|p| p.overlaps(window)) {
                let problem = Problem::Overlap { other: format!("concentrated.periods[{index}]") };
                return Err(self.invalid("sporadic.window", value.span(), problem));
            }
        }
        let mut exempt: Vec<Exemption> = file.exempt.iter().map(|e| exemption(*e)).collect();
        exempt.sort();
        exempt.dedup();
        Ok(Sporadic {
            window,
            premium: self.bands(&file.premium, file.coverage.span())?,
            coverage: self.rule("sporadic.coverage", &file.coverage)?,
            exempt,
        })
    }

    fn bands(&self, files: &[Spanned<BandFile>], span: Range<usize>) -> Result<Vec<PremiumBand>> {
        if files.is_empty() {
            return Err(self.invalid("sporadic.premium", span, Problem::Empty));
        }
        if files.len() > MAX_BANDS {
            return Err(self.invalid("sporadic.premium", span, Problem::TooMany(MAX_BANDS)));
        }
        let mut bands: Vec<PremiumBand> = Vec::with_capacity(files.len());
        for (index, value) in files.iter().enumerate() {
            let field = format!("sporadic.premium[{index}]");
            let file = value.get_ref();
            let paid = self.paid_period(&field, value.span(), &file.paid_from, &file.paid_until)?;
            if let Some(other) = bands.iter().position(|b| b.paid.overlaps(paid)) {
                let problem = Problem::Overlap { other: format!("sporadic.premium[{other}]") };
                return Err(self.invalid(field, value.span(), problem));
            }
            bands.push(PremiumBand { paid, pays: pays(file.pays) });
        }
        Ok(bands)
    }

    /// A coverage-start rule: the kind is code, the parameters data.
    fn rule(&self, field: &str, value: &Spanned<RuleFile>) -> Result<CoverageStart> {
        const KNOWN: &str = "coverage_year_start, waiting_days, month_start, from_birth";
        let file = value.get_ref();
        let kind = file.kind.as_str();
        let missing =
            |parameter| self.invalid(field, value.span(), Problem::MissingParameter { kind: kind.into(), parameter });
        let unexpected = |parameter| {
            self.invalid(field, value.span(), Problem::UnexpectedParameter { kind: kind.into(), parameter })
        };
        let rule = match kind {
            "coverage_year_start" => CoverageStart::CoverageYearStart,
            "from_birth" => CoverageStart::FromBirth,
            "waiting_days" => {
                CoverageStart::WaitingDays { waiting_days: file.waiting_days.ok_or_else(|| missing("waiting_days"))? }
            }
            "month_start" => {
                CoverageStart::MonthStart { months_after: file.months_after.ok_or_else(|| missing("months_after"))? }
            }
            _ => {
                let problem = Problem::UnknownKind { kind: kind.into(), known: KNOWN };
                return Err(self.invalid(field, value.span(), problem));
            }
        };
        if file.waiting_days.is_some() && !matches!(rule, CoverageStart::WaitingDays { .. }) {
            return Err(unexpected("waiting_days"));
        }
        if file.months_after.is_some() && !matches!(rule, CoverageStart::MonthStart { .. }) {
            return Err(unexpected("months_after"));
        }
        Ok(rule)
    }

    fn window(&self, field: &str, value: &Spanned<WindowFile>) -> Result<Window> {
        let file = value.get_ref();
        let window = match (file.months, file.days) {
            (Some(months), None) => Window::Months(months),
            (None, Some(days)) => Window::Days(days),
            _ => {
                return Err(self.invalid(field, value.span(), Problem::Choose("give exactly one of `months`, `days`")))
            }
        };
        if matches!(window, Window::Months(0) | Window::Days(0)) {
            return Err(self.invalid(field, value.span(), Problem::TooSmall { min: 1 }));
        }
        Ok(window)
    }

    fn newborn(&self, file: &NewbornFile) -> Result<Newborn> {
        Ok(Newborn {
            window: self.window("newborn.window", &file.window)?,
            pays: pays(file.pays),
            in_window_coverage: self.rule("newborn.in_window_coverage", &file.in_window_coverage)?,
            late_coverage: file.late_coverage.as_ref().map(|r| self.rule("newborn.late_coverage", r)).transpose()?,
            back_payment: file.back_payment,
            pre_registration_lapse: file
                .pre_registration_lapse
                .as_ref()
                .map(|w| self.window("newborn.pre_registration_lapse", w))
                .transpose()?,
        })
    }

    fn hardship(&self, file: &HardshipFile, individual: Money) -> Result<Hardship> {
        if file.county_classes.len() > MAX_COUNTY_CLASSES {
            let span = file.county_classes[MAX_COUNTY_CLASSES].span();
            return Err(self.invalid("hardship.county_classes", span, Problem::TooMany(MAX_COUNTY_CLASSES)));
        }
        let mut county_classes: Vec<CountyClass> = Vec::with_capacity(file.county_classes.len());
        for (index, value) in file.county_classes.iter().enumerate() {
            let class = self.county_class(index, value, &county_classes)?;
            county_classes.push(class);
        }
        if file.groups.is_empty() || file.groups.len() > MAX_GROUPS {
            let problem = if file.groups.is_empty() { Problem::Empty } else { Problem::TooMany(MAX_GROUPS) };
            return Err(PolicyError::Invalid { field: "hardship.groups".into(), line: None, problem });
        }
        let mut groups: Vec<HardshipGroup> = Vec::with_capacity(file.groups.len());
        for (index, value) in file.groups.iter().enumerate() {
            let group = self.group(index, value, individual, &county_classes)?;
            if groups.iter().any(|g| g.id == group.id) {
                let field = format!("hardship.groups[{index}].id");
                return Err(self.invalid(field, value.span(), Problem::Duplicate(group.id)));
            }
            groups.push(group);
        }
        Ok(Hardship { groups, county_classes })
    }

    fn county_class(
        &self,
        index: usize,
        value: &Spanned<CountyClassFile>,
        seen: &[CountyClass],
    ) -> Result<CountyClass> {
        let field = format!("hardship.county_classes[{index}]");
        let file = value.get_ref();
        if seen.iter().any(|c| c.id == file.id) {
            return Err(self.invalid(format!("{field}.id"), value.span(), Problem::Duplicate(file.id.clone())));
        }
        if file.counties.is_empty() || file.counties.len() > MAX_COUNTIES {
            let problem = if file.counties.is_empty() { Problem::Empty } else { Problem::TooMany(MAX_COUNTIES) };
            return Err(self.invalid(format!("{field}.counties"), value.span(), problem));
        }
        let mut counties: Vec<County> = Vec::with_capacity(file.counties.len());
        for (n, county) in file.counties.iter().enumerate() {
            let county_field = format!("{field}.counties[{n}]");
            let code = self.county_code(&county_field, county)?;
            let elsewhere = seen.iter().flat_map(|c| &c.counties).chain(&counties).any(|c| c.code == code);
            if elsewhere {
                return Err(self.invalid(county_field, county.span(), Problem::Duplicate(code.to_string())));
            }
            let name = self.text_field(&format!("{county_field}.name"), &county.get_ref().name)?;
            counties.push(County { code, name });
        }
        Ok(CountyClass {
            id: self.text_field(&format!("{field}.id"), &file.id)?,
            name: self.text_field(&format!("{field}.name"), &file.name)?,
            counties,
        })
    }

    /// A county-level code (last two digits not 00) inside the region.
    fn county_code(&self, field: &str, value: &Spanned<super::file::CountyFile>) -> Result<RegionCode> {
        let text = &value.get_ref().code;
        let refuse = || {
            let problem = Problem::CountyOutsideRegion { code: text.clone(), region: self.region };
            self.invalid(format!("{field}.code"), value.span(), problem)
        };
        let code: RegionCode = text.parse().map_err(|_| refuse())?;
        let region = self.region.code();
        let prefix_digits: u32 = if region.is_multiple_of(10_000) { 10_000 } else { 100 };
        if code.code() / prefix_digits != region / prefix_digits || code.code().is_multiple_of(100) {
            return Err(refuse());
        }
        Ok(code)
    }

    fn group(
        &self,
        index: usize,
        value: &Spanned<GroupFile>,
        individual: Money,
        classes: &[CountyClass],
    ) -> Result<HardshipGroup> {
        let field = format!("hardship.groups[{index}]");
        let file = value.get_ref();
        let subsidy = match *file.subsidy.get_ref() {
            AmountWord::Amount(amount) => Subsidy::Amount(amount),
            AmountWord::Full => Subsidy::Full,
            AmountWord::None => Subsidy::None,
        };
        let amount = subsidy_amount(subsidy, individual);
        if amount > individual {
            let problem = Problem::SubsidyAboveStandard { subsidy: amount, individual };
            return Err(self.invalid(format!("{field}.subsidy"), file.subsidy.span(), problem));
        }
        if let Some(stated) = &file.person_pays {
            let (person_pays, expected) = (*stated.get_ref(), individual.saturating_sub(amount));
            if person_pays != expected {
                let problem = Problem::PersonPaysMismatch { person_pays, individual, subsidy: amount, expected };
                return Err(self.invalid(format!("{field}.person_pays"), stated.span(), problem));
            }
        }
        let tranches = self.group_tranches(&field, value, subsidy, individual, classes)?;
        Ok(HardshipGroup {
            id: self.text_field(&format!("{field}.id"), &file.id)?,
            name: self.text_field(&format!("{field}.name"), &file.name)?,
            subsidy,
            tranches,
        })
    }

    /// The group's tranches: its own list, or its whole subsidy as one.
    fn group_tranches(
        &self,
        field: &str,
        value: &Spanned<GroupFile>,
        subsidy: Subsidy,
        individual: Money,
        classes: &[CountyClass],
    ) -> Result<Vec<Tranche>> {
        let file = value.get_ref();
        let own = FundingView {
            ratio: &file.ratio,
            by_county_class: &file.by_county_class,
            unstated: &file.funding_unstated,
        };
        let Some(list) = &file.tranches else {
            if subsidy == Subsidy::None && own.count() == 0 {
                return Ok(Vec::new());
            }
            let amount = match subsidy {
                Subsidy::Full => TrancheAmount::Full,
                Subsidy::Amount(money) => TrancheAmount::Amount(money),
                Subsidy::None => TrancheAmount::Amount(Money::ZERO),
            };
            let funding = self.funding(field, value.span(), own, classes)?;
            return Ok(vec![Tranche { amount, funding }]);
        };
        if own.count() != 0 {
            let problem = Problem::Choose("give either `tranches` or one funding for the whole subsidy, not both");
            return Err(self.invalid(field, value.span(), problem));
        }
        if list.is_empty() || list.len() > MAX_TRANCHES {
            let problem = if list.is_empty() { Problem::Empty } else { Problem::TooMany(MAX_TRANCHES) };
            return Err(self.invalid(format!("{field}.tranches"), value.span(), problem));
        }
        let tranches = list
            .iter()
            .enumerate()
            .map(|(n, tranche)| self.tranche(&format!("{field}.tranches[{n}]"), tranche, classes))
            .collect::<Result<Vec<Tranche>>>()?;
        let sum = tranches
            .iter()
            .try_fold(Money::ZERO, |sum, t| sum.checked_add(tranche_amount(t.amount, individual)))
            .unwrap_or(Money::from_fen(Money::MAX_FEN).unwrap_or(Money::ZERO));
        let whole = subsidy_amount(subsidy, individual);
        if sum != whole {
            let problem = Problem::TranchesDoNotSum { sum, subsidy: whole };
            return Err(self.invalid(format!("{field}.tranches"), value.span(), problem));
        }
        Ok(tranches)
    }

    fn tranche(&self, field: &str, value: &Spanned<TrancheFile>, classes: &[CountyClass]) -> Result<Tranche> {
        let file = value.get_ref();
        let amount = match file.amount {
            AmountWord::Amount(money) => TrancheAmount::Amount(money),
            AmountWord::Full => TrancheAmount::Full,
            AmountWord::None => {
                let problem = Problem::Choose("a tranche is an amount or `full`, not `none`");
                return Err(self.invalid(format!("{field}.amount"), value.span(), problem));
            }
        };
        let view = FundingView {
            ratio: &file.ratio,
            by_county_class: &file.by_county_class,
            unstated: &file.funding_unstated,
        };
        Ok(Tranche { amount, funding: self.funding(field, value.span(), view, classes)? })
    }

    fn funding(
        &self,
        field: &str,
        span: Range<usize>,
        view: FundingView<'_>,
        classes: &[CountyClass],
    ) -> Result<Funding> {
        if view.count() != 1 {
            let problem = Problem::Choose("give exactly one of `ratio`, `by_county_class`, `funding_unstated`");
            return Err(self.invalid(field, span, problem));
        }
        if let Some(ratio) = view.ratio {
            return self.ratio(&format!("{field}.ratio"), ratio).map(Funding::Ratio);
        }
        if let Some(note) = view.unstated {
            return self.text_field(&format!("{field}.funding_unstated"), note).map(Funding::Unstated);
        }
        let list = view.by_county_class.as_deref().unwrap_or_default();
        if list.is_empty() {
            return Err(self.invalid(format!("{field}.by_county_class"), span, Problem::Empty));
        }
        let mut ratios: Vec<CountyClassRatio> = Vec::with_capacity(list.len());
        for (n, entry) in list.iter().enumerate() {
            ratios.push(self.class_ratio(&format!("{field}.by_county_class[{n}]"), entry, classes, &ratios)?);
        }
        Ok(Funding::ByCountyClass(ratios))
    }

    fn class_ratio(
        &self,
        field: &str,
        value: &Spanned<ByClassFile>,
        classes: &[CountyClass],
        seen: &[CountyClassRatio],
    ) -> Result<CountyClassRatio> {
        let file = value.get_ref();
        let class = &file.county_class;
        if !classes.iter().any(|c| &c.id == class) {
            return Err(self.invalid(
                format!("{field}.county_class"),
                value.span(),
                Problem::UnknownCountyClass(class.clone()),
            ));
        }
        if seen.iter().any(|r| &r.county_class == class) {
            return Err(self.invalid(format!("{field}.county_class"), value.span(), Problem::Duplicate(class.clone())));
        }
        Ok(CountyClassRatio { county_class: class.clone(), ratio: self.ratio(&format!("{field}.ratio"), &file.ratio)? })
    }

    fn ratio(&self, field: &str, value: &Spanned<RatioFile>) -> Result<Ratio> {
        let file = value.get_ref();
        let shares: Vec<(Funder, u32)> = [
            (Funder::Province, file.province),
            (Funder::City, file.city),
            (Funder::County, file.county),
            (Funder::MedicalAssistanceFund, file.medical_assistance_fund),
        ]
        .into_iter()
        .filter_map(|(funder, share)| share.map(|share| (funder, share)))
        .collect();
        Ratio::new(shares).map_err(|error| self.invalid(field, value.span(), Problem::Ratio(error)))
    }
}

fn invalid_at(text: &str, field: impl Into<String>, span: Range<usize>, problem: Problem) -> PolicyError {
    PolicyError::Invalid { field: field.into(), line: Some(line_column(text, span.start).0), problem }
}

/// A pooling region: a real province, at prefecture or province level.
fn region(text: &str, region: &Spanned<String>) -> Result<RegionCode> {
    let refuse = || invalid_at(text, "region", region.span(), Problem::Region(region.get_ref().clone()));
    let code: RegionCode = region.get_ref().parse().map_err(|_| refuse())?;
    let known_province = PROVINCES.contains(&(code.code() / 10_000));
    if !known_province || !code.code().is_multiple_of(100) {
        return Err(refuse());
    }
    Ok(code)
}

fn coverage_year(text: &str, year: &Spanned<i64>) -> Result<u16> {
    let value = *year.get_ref();
    match u16::try_from(value) {
        Ok(y) if (2000..=2100).contains(&y) => Ok(y),
        _ => Err(invalid_at(text, "coverage_year", year.span(), Problem::Year(value))),
    }
}

/// The funding fields of a group or a tranche.
#[derive(Clone, Copy)]
struct FundingView<'f> {
    ratio: &'f Option<Spanned<RatioFile>>,
    by_county_class: &'f Option<Vec<Spanned<ByClassFile>>>,
    unstated: &'f Option<String>,
}

impl FundingView<'_> {
    fn count(self) -> usize {
        usize::from(self.ratio.is_some())
            + usize::from(self.by_county_class.is_some())
            + usize::from(self.unstated.is_some())
    }
}

fn pays(file: PaysFile) -> Pays {
    match file {
        PaysFile::Individual => Pays::Individual,
        PaysFile::Full => Pays::Full,
    }
}

fn exemption(file: ExemptionFile) -> Exemption {
    match file {
        ExemptionFile::Newborn => Exemption::Newborn,
        ExemptionFile::Hardship => Exemption::Hardship,
    }
}

/// A group's subsidy in money: `full` is the individual standard.
fn payer_group(file: PayerGroupFile) -> PayerGroup {
    match file {
        PayerGroupFile::Concentrated => PayerGroup::Concentrated,
        PayerGroupFile::Sporadic => PayerGroup::Sporadic,
        PayerGroupFile::Newborn => PayerGroup::Newborn,
        PayerGroupFile::NewbornInWindow => PayerGroup::NewbornInWindow,
        PayerGroupFile::NewbornLate => PayerGroup::NewbornLate,
        PayerGroupFile::Interrupted => PayerGroup::Interrupted,
        PayerGroupFile::EmployeeTransfer => PayerGroup::EmployeeTransfer,
        PayerGroupFile::Hardship => PayerGroup::Hardship,
    }
}

pub(crate) fn subsidy_amount(subsidy: Subsidy, individual: Money) -> Money {
    match subsidy {
        Subsidy::Amount(amount) => amount,
        Subsidy::Full => individual,
        Subsidy::None => Money::ZERO,
    }
}

pub(crate) fn tranche_amount(amount: TrancheAmount, individual: Money) -> Money {
    match amount {
        TrancheAmount::Amount(money) => money,
        TrancheAmount::Full => individual,
    }
}
