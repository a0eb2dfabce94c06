//! Which leads a condition can match, decided from the conditions alone: whether it matches
//! every lead, no lead, or only leads another condition matches too. `rules check` (and
//! every load of the rules) uses it to refuse rules that can never match because earlier
//! rules take all their leads.
//!
//! Sound, not complete: `true` is a proof over every possible lead; `false` means "not
//! shown" (e.g. ranges over a text field, or conditions on different fields that happen to
//! be related). The property test in tests.rs holds `implies` to that over random leads.

use super::condition::{Condition, FieldRef};

/// Distributing `all` over alternatives (`any`, `in` lists) multiplies the cases; past this
/// many a containment is not looked for (it is then not reported, never wrongly reported).
const MAX_CASES: usize = 1024;

impl Condition {
    /// Holds for every lead (`when` omitted, `all = []`, `not = { any = [] }`, ...).
    pub(crate) fn matches_every_lead(&self) -> bool {
        match self {
            Condition::Always => true,
            Condition::All(cs) => cs.iter().all(Condition::matches_every_lead),
            Condition::Any(cs) => cs.iter().any(Condition::matches_every_lead),
            Condition::Not(c) => c.matches_no_lead(),
            _ => false,
        }
    }

    /// Holds for no lead (`any = []`, `in = []`, `min` above `max`, ...).
    pub(crate) fn matches_no_lead(&self) -> bool {
        match self {
            Condition::Always => false,
            Condition::All(cs) => cs.iter().any(Condition::matches_no_lead),
            Condition::Any(cs) => cs.iter().all(Condition::matches_no_lead),
            Condition::Not(c) => c.matches_every_lead(),
            Condition::In(_, values) => values.is_empty(),
            Condition::Prefix(_, prefixes) => prefixes.is_empty(),
            Condition::Range {
                min: Some(min),
                max: Some(max),
                ..
            } => min > max,
            _ => false,
        }
    }

    /// Every lead this condition holds for, `other` holds for too (see the module doc).
    pub(crate) fn implies(&self, other: &Condition) -> bool {
        if other.matches_every_lead() || self.matches_no_lead() || self == other {
            return true;
        }
        if let Condition::All(ys) = other {
            return ys.iter().all(|y| self.implies(y));
        }
        if let Some(cases) = self.alternatives() {
            return cases.iter().all(|case| case.implies(other));
        }
        if let Condition::All(xs) = self {
            if xs.iter().any(|x| x.implies(other)) {
                return true;
            }
        }
        if let Condition::Any(ys) = other {
            return ys.iter().any(|y| self.implies(y));
        }
        leaf_implies(self, other)
    }

    /// The condition as the cases it is made of, when it is one: `any` is its members, an
    /// `in` list of several values is one `in` per value, and `all` with such a member is
    /// that member's cases each beside the rest. `None` for a single case (or too many).
    fn alternatives(&self) -> Option<Vec<Condition>> {
        match self {
            Condition::Any(cs) => Some(cs.clone()),
            Condition::In(field, values) if values.len() > 1 => Some(
                values
                    .iter()
                    .map(|v| Condition::In(field.clone(), vec![v.clone()]))
                    .collect(),
            ),
            Condition::All(xs) => {
                let (at, cases) = xs
                    .iter()
                    .enumerate()
                    .find_map(|(i, x)| Some((i, x.alternatives()?)))?;
                let product = xs
                    .iter()
                    .map(|x| x.alternatives().map_or(1, |c| c.len().max(1)))
                    .try_fold(1usize, |n, c| n.checked_mul(c))?;
                if product > MAX_CASES {
                    return None;
                }
                Some(
                    cases
                        .into_iter()
                        .map(|case| {
                            let mut rest = xs.clone();
                            rest[at] = case;
                            Condition::All(rest)
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

impl Condition {
    /// Reads `company.country` values the way leads are read: ingest normalises "Germany",
    /// "DEU" or "uk" to the ISO 3166-1 alpha-2 code, so a rule's `United States` becomes
    /// `US` (or it could never match). Returns a note per value changed (the code it is
    /// read as) and per value that is no country at all (it never matches).
    pub(crate) fn normalise_countries(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        self.normalise_countries_into(&mut notes);
        notes
    }

    fn normalise_countries_into(&mut self, notes: &mut Vec<String>) {
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs
                .iter_mut()
                .for_each(|c| c.normalise_countries_into(notes)),
            Condition::Not(c) => c.normalise_countries_into(notes),
            Condition::Equals(FieldRef::Country, value) => normalise_country(value, notes),
            Condition::In(FieldRef::Country, values) => {
                values.iter_mut().for_each(|v| normalise_country(v, notes))
            }
            _ => {}
        }
    }
}

/// One `company.country` value as leads carry it, with a note when it changed or is none.
fn normalise_country(value: &mut String, notes: &mut Vec<String>) {
    match crate::validation::normalize_country(value) {
        // Comparisons ignore case: `de` matches `DE` as written.
        Some(code) if code.eq_ignore_ascii_case(value) => {}
        Some(code) => {
            notes.push(format!(
                "company.country `{value}` is read as `{code}`, the ISO 3166-1 code leads carry: write `{code}`"
            ));
            *value = code;
        }
        None => notes.push(format!(
            "company.country `{value}` never matches: it is no country, leads carry ISO 3166-1 codes such as `DE`, `US`, `GB`"
        )),
    }
}

/// One comparison implying another, on the same field.
fn leaf_implies(a: &Condition, b: &Condition) -> bool {
    if let (Condition::Not(x), Condition::Not(y)) = (a, b) {
        return y.implies(x);
    }
    // A field that is missing matches no comparison: every comparison implies `exists`,
    // and `exists = false` excludes them all.
    if let Condition::Not(y) = b {
        return matches!(a, Condition::Exists(f, false) if y.implies(&Condition::Exists(f.clone(), true)));
    }
    let Some(field) = compared_field(a) else {
        return false;
    };
    if compared_field(b) != Some(field) {
        return false;
    }
    match (a, b) {
        (_, Condition::Exists(_, true)) => !matches!(a, Condition::Exists(_, false)),
        (Condition::Exists(_, x), Condition::Exists(_, y)) => x == y,
        (Condition::Prefix(_, ps), Condition::Prefix(_, qs)) => ps
            .iter()
            .all(|p| qs.iter().any(|q| starts_with_ignore_case(p, q))),
        (
            Condition::Range { min, max, .. },
            Condition::Range {
                min: bmin,
                max: bmax,
                ..
            },
        ) => {
            bmin.is_none_or(|b| min.is_some_and(|a| a >= b))
                && bmax.is_none_or(|b| max.is_some_and(|a| a <= b))
        }
        _ => match single_value(a) {
            // The one value a lead must have: does it pass `b`?
            Some(value) => match b {
                Condition::Equals(_, v) => v.eq_ignore_ascii_case(value),
                Condition::In(_, vs) => vs.iter().any(|v| v.eq_ignore_ascii_case(value)),
                Condition::Prefix(_, ps) => ps.iter().any(|p| starts_with_ignore_case(value, p)),
                Condition::Range { min, max, .. } => value
                    .parse::<f64>()
                    .is_ok_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
                _ => false,
            },
            None => false,
        },
    }
}

fn compared_field(c: &Condition) -> Option<&FieldRef> {
    match c {
        Condition::Equals(f, _)
        | Condition::In(f, _)
        | Condition::Prefix(f, _)
        | Condition::Exists(f, _)
        | Condition::Range { field: f, .. } => Some(f),
        _ => None,
    }
}

/// `equals = V` or `in = [V]`: the one value a matching lead has.
fn single_value(c: &Condition) -> Option<&str> {
    match c {
        Condition::Equals(_, v) => Some(v),
        Condition::In(_, vs) if vs.len() == 1 => vs.first().map(String::as_str),
        _ => None,
    }
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::lead::{Company, Lead, LeadId};
    use crate::scoring::Score;

    fn leaf() -> impl Strategy<Value = Condition> {
        let country = || FieldRef::Country;
        let values = prop::collection::vec(
            prop::sample::select(vec!["DE", "de", "AT", "CH", "FR", ""]),
            0..4,
        )
        .prop_map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        let bound = prop::option::of(prop::sample::select(vec![0.0, 50.0, 250.0, 1000.0]));
        prop_oneof![
            values
                .clone()
                .prop_map(move |v| Condition::In(country(), v)),
            prop::sample::select(vec!["DE", "at", "FR"])
                .prop_map(move |v| Condition::Equals(FieldRef::Country, v.to_owned())),
            (bound.clone(), bound).prop_map(|(min, max)| Condition::Range {
                field: FieldRef::Employees,
                min,
                max
            }),
            prop::sample::select(vec!["250", "1000", "abc"])
                .prop_map(|v| Condition::Equals(FieldRef::Employees, v.to_owned())),
            prop::collection::vec(prop::sample::select(vec!["8", "80", "81", "1", ""]), 0..3)
                .prop_map(|v| Condition::Prefix(
                    FieldRef::PostalCode,
                    v.into_iter().map(str::to_owned).collect()
                )),
            prop::collection::vec(prop::sample::select(vec!["80331", "8", "10115"]), 0..3)
                .prop_map(|v| Condition::In(
                    FieldRef::PostalCode,
                    v.into_iter().map(str::to_owned).collect()
                )),
            any::<bool>().prop_map(|e| Condition::Exists(FieldRef::PostalCode, e)),
            any::<bool>().prop_map(|e| Condition::Exists(FieldRef::Employees, e)),
            any::<bool>().prop_map(|e| Condition::Exists(FieldRef::Custom("plan".into()), e)),
            Just(Condition::Always),
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        leaf().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Condition::All),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Condition::Any),
                inner.prop_map(|c| Condition::Not(Box::new(c))),
            ]
        })
    }

    fn lead() -> impl Strategy<Value = Lead> {
        (
            prop::sample::select(vec!["DE", "AT", "CH", "FR", ""]),
            prop::option::of(prop::sample::select(vec![
                0u32, 49, 50, 250, 999, 1000, 5000,
            ])),
            prop::sample::select(vec!["80331", "81000", "10115", "8", ""]),
            any::<bool>(),
        )
            .prop_map(|(country, employees, postal_code, plan)| Lead {
                id: LeadId::from("l"),
                received_at: chrono::DateTime::UNIX_EPOCH,
                source: Default::default(),
                contact: Default::default(),
                company: Company {
                    country: country.into(),
                    postal_code: postal_code.into(),
                    employees,
                    ..Company::default()
                },
                engagement: Default::default(),
                custom: if plan {
                    [("plan".to_owned(), "enterprise".to_owned())].into()
                } else {
                    Default::default()
                },
            })
    }

    fn score() -> Score {
        Score {
            points: 0,
            band: String::new(),
            qualified: true,
            fast_lane: false,
            contributions: vec![],
            model_version: String::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// What `rules check` refuses must be true of every lead: a condition said to imply
        /// another never holds where the other does not; "every lead" and "no lead" hold.
        #[test]
        fn containment_is_never_claimed_wrongly(a in condition(), b in condition(), leads in prop::collection::vec(lead(), 16)) {
            let implies = a.implies(&b);
            for lead in &leads {
                let (ha, hb) = (a.holds(lead, &score()), b.holds(lead, &score()));
                prop_assert!(!implies || !ha || hb, "{a:?} => {b:?} claimed, {lead:?}");
                prop_assert!(!a.matches_every_lead() || ha, "{a:?} every lead, {lead:?}");
                prop_assert!(!a.matches_no_lead() || !ha, "{a:?} no lead, {lead:?}");
            }
        }

        /// Containment is found for the forms a RevOps admin writes: the same conditions
        /// with a narrower value list, or a narrower range, next to any others.
        #[test]
        fn a_narrower_copy_of_a_rule_is_found(extra in prop::collection::vec(leaf(), 0..3), narrow in prop::sample::select(vec![vec!["DE"], vec!["AT", "CH"], vec!["CH", "DE", "AT"]])) {
            let wide = Condition::All(
                std::iter::once(Condition::In(FieldRef::Country, vec!["DE".into(), "AT".into(), "CH".into()]))
                    .chain(extra.iter().cloned())
                    .collect(),
            );
            let narrow = Condition::All(
                std::iter::once(Condition::In(FieldRef::Country, narrow.iter().map(|v| (*v).to_owned()).collect()))
                    .chain(extra.iter().cloned())
                    .collect(),
            );
            prop_assert!(narrow.implies(&wide));
        }
    }

    #[test]
    fn every_lead_and_no_lead_in_their_written_forms() {
        let any_of = |cs: Vec<Condition>| Condition::Any(cs);
        assert!(Condition::All(vec![]).matches_every_lead());
        assert!(Condition::Not(Box::new(any_of(vec![]))).matches_every_lead());
        assert!(any_of(vec![]).matches_no_lead());
        assert!(Condition::In(FieldRef::Country, vec![]).matches_no_lead());
        assert!(!Condition::In(FieldRef::Country, vec!["DE".into()]).matches_every_lead());
    }
}
