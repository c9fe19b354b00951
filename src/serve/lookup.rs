//! The person store for lookups: caught up by one reader of the log at a
//! time, and the coverage answer serialized straight into the response
//! body.
//!
//! The answer's keys are in alphabetical order at every level, as the
//! first version of the service gave them (it built `serde_json::Value`
//! trees, whose maps are sorted). Building those trees cost more than
//! deriving the figures; these wrappers write the same bytes directly.
//! Each wrapper destructures its type without `..`, so a new field is a
//! compile error here until it is placed in the answer.

use super::error::ApiError;
use super::App;
use anyhow::Result;
use chrono::Datelike;
use ledger::sync::lock_plain;
use ledger::{Date, Money};
use operations::coverage::{CoverageAnswer, PersonListed, YearEntry, YearFigures};
use projections::coverage::{Paid, Refunds, SplitView};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, TryLockError};

/// Bytes of a typical answer: one allocation for most lookups.
const ANSWER_CAPACITY: usize = 2048;
/// Records a read folds on its own thread; a longer gap goes to a blocking
/// task.
const INLINE_CATCH_UP_RECORDS: u64 = 256;

/// Who reads the log for the person store. One catch-up reads at a time;
/// the others wait for it to be folded (woken together) and then usually
/// find their records folded: concurrent posts share one read.
#[derive(Default)]
pub struct CatchUp {
    reading: Mutex<bool>,
    folded: Condvar,
}

/// The claim to read: released (and the waiters woken) when dropped, also
/// when the read failed or panicked.
struct Reading<'a>(&'a CatchUp);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        *lock_plain(&self.0.reading) = false;
        self.0.folded.notify_all();
    }
}

impl App {
    fn position(&self) -> Result<u64> {
        Ok(self.persons.tip()?.position)
    }

    /// Catches up until the person store reflects position `upto` at least
    /// (see `CatchUp`).
    pub(super) fn catch_up_to(&self, upto: u64) -> Result<()> {
        loop {
            if self.position()? >= upto {
                return Ok(());
            }
            let mut reading = lock_plain(&self.catching_up.reading);
            if *reading {
                // Then look again: that read may have stopped short of `upto`.
                drop(self.catching_up.folded.wait_while(reading, |reading| *reading));
                continue;
            }
            *reading = true;
            drop(reading);
            let _reading = Reading(&self.catching_up);
            return self.fold_pending(upto);
        }
    }

    /// Folds the records up to `upto` into the person store; reads wait
    /// for it (see `persons.rs`). The caller holds the claim to read.
    fn fold_pending(&self, upto: u64) -> Result<()> {
        let log = self.store.log().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        self.persons.catch_up(&*log, upto)?;
        Ok(())
    }

    /// Before a read that found the person store behind `head`. While another
    /// catch-up is reading, the read is answered from what is folded: every
    /// acknowledged write was folded before it was acknowledged, so the
    /// answer misses only writes still in flight. A short gap is folded on
    /// this thread, a long one in a blocking task.
    pub(super) async fn catch_up_for_read(self: &Arc<Self>, head: u64, behind: u64) -> Result<(), ApiError> {
        if behind <= INLINE_CATCH_UP_RECORDS {
            let claimed = match self.catching_up.reading.try_lock() {
                Ok(mut reading) if !*reading => {
                    *reading = true;
                    true
                }
                Ok(_) | Err(TryLockError::WouldBlock) => false,
                // A plain flag: poison is harmless (`ledger::sync`).
                Err(TryLockError::Poisoned(poisoned)) => {
                    let mut reading = poisoned.into_inner();
                    !std::mem::replace(&mut *reading, true)
                }
            };
            if !claimed {
                return Ok(());
            }
            let _reading = Reading(&self.catching_up);
            return self.fold_pending(head).map_err(|e| ApiError::internal(&e));
        }
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || app.catch_up_to(head))
            .await
            .map_err(|e| ApiError::internal(&anyhow::anyhow!("catch-up task failed: {e}")))?
            .map_err(|e| ApiError::internal(&e))
    }
}

/// `answer` as the service writes it: `{"head_hash", "log_position",
/// "person", "years"}`, keys sorted at every level.
pub fn body(answer: &CoverageAnswer) -> serde_json::Result<Vec<u8>> {
    // Without `..`: a new field of the answer is placed here before it compiles.
    let CoverageAnswer { head_hash, log_position, person, years } = answer;
    let sorted = Sorted {
        head_hash,
        log_position: *log_position,
        person: SortedPerson(person),
        years: years.iter().map(SortedEntry).collect(),
    };
    let mut body = Vec::with_capacity(ANSWER_CAPACITY);
    serde_json::to_writer(&mut body, &sorted)?;
    Ok(body)
}

#[derive(Serialize)]
struct Sorted<'a> {
    head_hash: &'a str,
    log_position: u64,
    person: SortedPerson<'a>,
    years: Vec<SortedEntry<'a>>,
}

/// `{"covered_on": [day, bool] | null, "year": {...}}`.
struct SortedEntry<'a>(&'a YearEntry);

impl Serialize for SortedEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let YearEntry { covered_on, year } = self.0;
        let mut out = serializer.serialize_struct("YearEntry", 2)?;
        out.serialize_field("covered_on", &covered_on.map(|(day, covered)| (Day(day), covered)))?;
        out.serialize_field("year", &SortedYear(year))?;
        out.end()
    }
}

/// The person as registered, IDs masked, without the birth date.
struct SortedPerson<'a>(&'a PersonListed);

impl Serialize for SortedPerson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let PersonListed { basis, former, id, name, region, registered, registered_on, voided_on } = self.0;
        let mut out = serializer.serialize_struct("Person", 8)?;
        out.serialize_field("basis", basis)?;
        out.serialize_field("former", former)?;
        out.serialize_field("id", id)?;
        out.serialize_field("name", name)?;
        out.serialize_field("region", region)?;
        out.serialize_field("registered", registered)?;
        out.serialize_field("registered_on", &registered_on.map(Day))?;
        out.serialize_field("voided_on", &voided_on.map(Day))?;
        out.end()
    }
}

/// A person-year as `yibao coverage --json` gives it, keys sorted, the ID
/// masked.
struct SortedYear<'a>(&'a YearFigures);

impl Serialize for SortedYear<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let YearFigures {
            amount_due,
            awaiting,
            coverage_year,
            covered_from,
            covered_until,
            excess,
            fiscal_subsidy,
            in_flight,
            net_received,
            notes,
            outstanding,
            paid,
            payment_class,
            person,
            policy_region,
            premium_due,
            proxy_returned,
            refunds,
            state,
            subsidy_due,
            subsidy_split,
        } = self.0;
        let mut out = serializer.serialize_struct("PersonYear", 21)?;
        out.serialize_field("amount_due", &amount_due.as_ref().map(Yuan))?;
        out.serialize_field("awaiting", awaiting)?;
        out.serialize_field("coverage_year", coverage_year)?;
        out.serialize_field("covered_from", &covered_from.map(Day))?;
        out.serialize_field("covered_until", &covered_until.map(Day))?;
        out.serialize_field("excess", &Yuan(excess))?;
        out.serialize_field("fiscal_subsidy", &fiscal_subsidy.as_ref().map(Yuan))?;
        out.serialize_field("in_flight", &Yuan(in_flight))?;
        out.serialize_field("net_received", &Yuan(net_received))?;
        out.serialize_field("notes", notes)?;
        out.serialize_field("outstanding", &outstanding.as_ref().map(Yuan))?;
        out.serialize_field("paid", &SortedPaid(paid))?;
        out.serialize_field("payment_class", payment_class)?;
        out.serialize_field("person", person)?;
        out.serialize_field("policy_region", policy_region)?;
        out.serialize_field("premium_due", &premium_due.as_ref().map(Yuan))?;
        out.serialize_field("proxy_returned", &Yuan(proxy_returned))?;
        out.serialize_field("refunds", &SortedRefunds(refunds))?;
        out.serialize_field("state", state)?;
        out.serialize_field("subsidy_due", &Yuan(subsidy_due))?;
        out.serialize_field("subsidy_split", &subsidy_split.as_ref().map(SortedSplit))?;
        out.end()
    }
}

struct SortedPaid<'a>(&'a Paid);

impl Serialize for SortedPaid<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Paid { by_self, by_other, by_collector, by_proxy, subsidy, subsidy_total, total } = self.0;
        let mut out = serializer.serialize_struct("Paid", 7)?;
        out.serialize_field("by_collector", &Yuan(by_collector))?;
        out.serialize_field("by_other", &Yuan(by_other))?;
        out.serialize_field("by_proxy", &Yuan(by_proxy))?;
        out.serialize_field("by_self", &Yuan(by_self))?;
        out.serialize_field("subsidy", &ByFunder(subsidy))?;
        out.serialize_field("subsidy_total", &Yuan(subsidy_total))?;
        out.serialize_field("total", &Yuan(total))?;
        out.end()
    }
}

struct SortedRefunds<'a>(&'a Refunds);

impl Serialize for SortedRefunds<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Refunds { to_channel, to_personal_account, to_funders, to_funders_by_funder, total, unapplied } = self.0;
        let mut out = serializer.serialize_struct("Refunds", 6)?;
        out.serialize_field("to_channel", &Yuan(to_channel))?;
        out.serialize_field("to_funders", &Yuan(to_funders))?;
        out.serialize_field("to_funders_by_funder", &ByFunder(to_funders_by_funder))?;
        out.serialize_field("to_personal_account", &Yuan(to_personal_account))?;
        out.serialize_field("total", &Yuan(total))?;
        out.serialize_field("unapplied", &Yuan(unapplied))?;
        out.end()
    }
}

struct SortedSplit<'a>(&'a SplitView);

impl Serialize for SortedSplit<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let SplitView { group, amount, parts, unallocated } = self.0;
        let mut out = serializer.serialize_struct("SplitView", 4)?;
        out.serialize_field("amount", &Yuan(amount))?;
        out.serialize_field("group", group)?;
        out.serialize_field("parts", &ByFunder(parts))?;
        out.serialize_field("unallocated", &Yuan(unallocated))?;
        out.end()
    }
}

/// Money as its `Display` writes it ("280.00"), without the formatter.
struct Yuan<'a>(&'a Money);

impl Serialize for Yuan<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fen = self.0.fen();
        if fen < 0 {
            return self.0.serialize(serializer);
        }
        let mut text = Digits::default();
        text.number(fen / 100, 1);
        text.push(b'.');
        text.number(fen % 100, 2);
        serializer.serialize_str(text.as_str())
    }
}

struct ByFunder<'a>(&'a BTreeMap<String, Money>);

impl Serialize for ByFunder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(funder, amount)| (funder, Yuan(amount))))
    }
}

/// A date as its `Display` writes it ("2021-01-01"), without the formatter.
#[derive(Clone, Copy)]
struct Day(Date);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let day = self.0 .0;
        if !(0..=9999).contains(&day.year()) {
            return self.0.serialize(serializer);
        }
        let mut text = Digits::default();
        text.number(i64::from(day.year()), 4);
        text.push(b'-');
        text.number(i64::from(day.month()), 2);
        text.push(b'-');
        text.number(i64::from(day.day()), 2);
        serializer.serialize_str(text.as_str())
    }
}

/// ASCII text of a few numbers, on the stack.
#[derive(Default)]
struct Digits {
    bytes: [u8; 32],
    len: usize,
}

impl Digits {
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// A non-negative number, zero-padded to `width` digits.
    fn number(&mut self, value: i64, width: usize) {
        let mut reversed = [0u8; 20];
        let mut n = value.unsigned_abs();
        let mut len = 0;
        while n > 0 || len < width {
            reversed[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
        }
        for &digit in reversed[..len].iter().rev() {
            self.push(digit);
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Identity, NewEvent, OpenMode, SledLog};
    use operations::coverage::{self, CoverageQuery};
    use projections::coverage::Coverage;
    use projections::Projection;
    use serde_json::{json, Value};

    /// The answer as the service first built it: `Value` trees, whose maps
    /// sort their keys.
    fn as_values(coverage: &Coverage, person: &Identity, on: Option<Date>) -> Value {
        let summary = coverage.person(person).expect("a known person");
        let years: Vec<Value> = coverage
            .years_of(person)
            .iter()
            .filter_map(|&year| coverage.person_year_as_of(person, year, on).expect("every figure is money"))
            .map(|view| {
                let mut year = serde_json::to_value(&view).expect("a view as JSON");
                year.as_object_mut().expect("an object").insert("person".into(), view.person.masked().into());
                json!({ "year": year, "covered_on": on.map(|day| (day.to_string(), view.is_covered_on(day))) })
            })
            .collect();
        json!({
            "person": {
                "id": summary.current.masked(),
                "former": summary.former.iter().map(Identity::masked).collect::<Vec<_>>(),
                "registered": summary.registered,
                "name": summary.name,
                "region": summary.region,
                "registered_on": summary.registered_on,
                "basis": summary.basis,
                "voided_on": summary.voided_on,
            },
            "years": years,
            "log_position": coverage.position(),
            "head_hash": hex::encode(coverage.head_hash()),
        })
    }

    #[test]
    fn money_and_days_are_written_as_their_display() {
        for fen in [0, 5, 99, 100, 28_000, 123_456_789, -150, i64::MAX] {
            let money = Money::from_fen(fen).unwrap_or(Money::ZERO);
            let direct = serde_json::to_string(&Yuan(&money)).expect("JSON");
            assert_eq!(direct, serde_json::to_string(&money).expect("JSON"), "{fen} fen");
        }
        for text in ["2021-01-01", "0999-12-31", "1940-02-29", "9999-12-31"] {
            let day: Date = text.parse().expect("a date");
            assert_eq!(serde_json::to_string(&Day(day)).expect("JSON"), format!("\"{text}\""));
        }
    }

    /// The direct writer gives the bytes of the answer type's serde form
    /// with its keys sorted (what `yibao coverage --json` prints), and that
    /// form has the fields and values the service first gave.
    #[test]
    fn the_direct_answer_has_the_bytes_of_the_answer_type() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SledLog::open(dir.path(), OpenMode::Create).expect("a new ledger");
        let mut persons = Vec::new();
        let events: Vec<NewEvent> = yibao::generate::facts(7, 400)
            .inspect(|event| {
                if let ledger::Event::PersonRegisteredV1(registered) = event {
                    persons.push(registered.person.clone());
                }
            })
            .map(|event| NewEvent::fact(event, "test"))
            .collect();
        log.append_blocking(events).expect("appended");
        let mut coverage = Coverage::new();
        coverage.catch_up(&log).expect("caught up");
        assert!(coverage.position() > 0);
        let on = Some("2021-03-01".parse().expect("a date"));
        for person in &persons {
            for on in [None, on] {
                let query = CoverageQuery { person: person.clone(), year: None, on };
                let typed = coverage::answer(&coverage, &query).expect("an answer");
                let direct = body(&typed).expect("written");
                let serde_form = serde_json::to_value(&typed).expect("JSON");
                let expected = serde_json::to_vec(&serde_form).expect("JSON");
                assert_eq!(String::from_utf8_lossy(&direct), String::from_utf8_lossy(&expected));
                assert_eq!(serde_form, as_values(&coverage, person, on), "the answer's fields changed");
            }
        }
    }
}
