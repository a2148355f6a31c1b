//! Polls and votes. A poll has 2 to 12 unique, non-empty choices and a `selectableCount`
//! (0 = any number, 1 = single choice). A vote is the voter's *complete* selection: it replaces
//! their previous one, and an empty selection clears it. The tally is derived from the current
//! selections only, so it always sums to what voters have chosen now.

use crate::error::DomainError;
use crate::Millis;
use serde::Serialize;

/// A poll's question and choices; always valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Poll {
    question: String,
    options: Vec<String>,
    selectable_count: u32,
}

impl Poll {
    /// Most choices a poll may have.
    pub const MAX_OPTIONS: usize = 12;

    /// Checks a poll to send or store; 422 naming the field otherwise.
    pub fn new(
        question: String,
        options: Vec<String>,
        selectable_count: u32,
    ) -> Result<Self, DomainError> {
        if question.trim().is_empty() {
            return Err(DomainError::invalid(
                "question",
                "question must not be empty",
            ));
        }
        if !(2..=Self::MAX_OPTIONS).contains(&options.len()) {
            return Err(DomainError::invalid(
                "options",
                "options must hold 2 to 12 choices",
            ));
        }
        if options.iter().any(|o| o.trim().is_empty()) {
            return Err(DomainError::invalid(
                "options",
                "options must not be empty strings",
            ));
        }
        if has_duplicates(&options) {
            return Err(DomainError::invalid("options", "options must be unique"));
        }
        if selectable_count as usize > options.len() {
            return Err(DomainError::invalid(
                "selectableCount",
                "selectableCount must be between 0 and the number of options",
            ));
        }
        Ok(Self {
            question,
            options,
            selectable_count,
        })
    }

    /// The question.
    pub fn question(&self) -> &str {
        &self.question
    }

    /// The choices, in order.
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// 0 = any number of choices; otherwise the most a voter may select.
    pub fn selectable_count(&self) -> u32 {
        self.selectable_count
    }

    /// Checks a complete selection against this poll (400 on a rule broken): every option one
    /// of the poll's choices (exact text), none repeated, and no more than `selectableCount`
    /// when that is above 0. An empty selection (a cleared vote) always passes.
    pub fn check_selection(&self, selection: &[String]) -> Result<(), DomainError> {
        if let Some(unknown) = selection.iter().find(|o| !self.options.contains(o)) {
            return Err(DomainError::Rule(format!(
                "option `{unknown}` is not one of the poll's choices"
            )));
        }
        if has_duplicates(selection) {
            return Err(DomainError::Rule("an option appears more than once".into()));
        }
        if self.selectable_count > 0 && selection.len() > self.selectable_count as usize {
            return Err(DomainError::Rule(format!(
                "this poll allows at most {} selected option(s)",
                self.selectable_count
            )));
        }
        Ok(())
    }
}

fn has_duplicates(items: &[String]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].contains(a))
}

/// One voter's current selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoterSelection {
    /// Who voted.
    pub voter: String,
    /// What they chose.
    pub options: Vec<String>,
    /// When they last changed it.
    pub updated_at: Millis,
}

/// How many current selections name one option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptionCount {
    /// The choice.
    pub name: String,
    /// Current votes for it.
    pub votes: u32,
}

/// Counts the current selections per option, in the poll's order. Voters with an empty
/// selection (cleared votes) count for nothing.
pub fn tally(poll: &Poll, voters: &[VoterSelection]) -> Vec<OptionCount> {
    poll.options
        .iter()
        .map(|name| OptionCount {
            name: name.clone(),
            votes: voters.iter().filter(|v| v.options.contains(name)).count() as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn poll(selectable: u32) -> Poll {
        Poll::new(
            "Lunch?".into(),
            strings(&["Pizza", "Sushi", "Tacos"]),
            selectable,
        )
        .unwrap()
    }

    fn is_rule(result: Result<(), DomainError>) -> bool {
        matches!(result, Err(DomainError::Rule(_)))
    }

    #[test]
    fn a_poll_needs_two_to_twelve_unique_non_empty_choices() {
        assert!(Poll::new("q".into(), strings(&["a"]), 1).is_err());
        assert!(Poll::new("q".into(), strings(&["a", "a"]), 1).is_err());
        assert!(Poll::new("q".into(), strings(&["a", " "]), 1).is_err());
        assert!(Poll::new("q".into(), (0..13).map(|i| i.to_string()).collect(), 1).is_err());
        assert!(Poll::new("q".into(), strings(&["a", "b"]), 3).is_err());
        assert!(Poll::new(" ".into(), strings(&["a", "b"]), 1).is_err());
        assert!(Poll::new("q".into(), strings(&["a", "b"]), 0).is_ok());
    }

    #[test]
    fn a_single_choice_poll_takes_exactly_one_option_or_none() {
        let p = poll(1);
        assert!(p.check_selection(&strings(&["Sushi"])).is_ok());
        assert!(p.check_selection(&[]).is_ok());
        assert!(is_rule(p.check_selection(&strings(&["Sushi", "Pizza"]))));
    }

    #[test]
    fn an_option_must_match_a_choice_exactly() {
        let p = poll(0);
        assert!(is_rule(p.check_selection(&strings(&["sushi"]))));
        assert!(is_rule(p.check_selection(&strings(&["Sushi "]))));
        assert!(is_rule(p.check_selection(&strings(&["Ramen"]))));
    }

    #[test]
    fn duplicates_and_too_many_options_are_refused() {
        assert!(is_rule(
            poll(0).check_selection(&strings(&["Sushi", "Sushi"]))
        ));
        assert!(is_rule(
            poll(2).check_selection(&strings(&["Sushi", "Pizza", "Tacos"]))
        ));
        assert!(poll(0)
            .check_selection(&strings(&["Sushi", "Pizza", "Tacos"]))
            .is_ok());
    }

    #[test]
    fn the_tally_counts_only_current_selections() {
        let p = poll(0);
        let voters = vec![
            VoterSelection {
                voter: "a".into(),
                options: strings(&["Pizza", "Sushi"]),
                updated_at: 1,
            },
            VoterSelection {
                voter: "b".into(),
                options: strings(&["Sushi"]),
                updated_at: 1,
            },
            VoterSelection {
                voter: "c".into(),
                options: vec![],
                updated_at: 1,
            },
        ];
        let counts: Vec<u32> = tally(&p, &voters).iter().map(|c| c.votes).collect();
        assert_eq!(counts, [1, 2, 0]);
    }
}
