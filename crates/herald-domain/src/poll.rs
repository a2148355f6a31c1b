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

/// What a voter's complete selection does to their standing vote: a non-empty selection
/// replaces it, an empty one clears it. Votes never accumulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoteChange {
    /// The voter's selection becomes exactly these options.
    Replace(Vec<String>),
    /// The voter no longer has a vote.
    Clear,
}

impl VoteChange {
    /// The change a complete selection makes (already checked with [`Poll::check_selection`]).
    pub fn from_selection(selection: Vec<String>) -> Self {
        if selection.is_empty() {
            Self::Clear
        } else {
            Self::Replace(selection)
        }
    }

    /// The voter's selection after the change (`[]` when cleared).
    pub fn options(&self) -> &[String] {
        match self {
            Self::Replace(options) => options,
            Self::Clear => &[],
        }
    }
}

/// The standing votes on one poll, at most one selection per voter: the model of what the
/// store keeps, and what a tally is computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollVotes {
    voters: Vec<VoterSelection>,
}

impl PollVotes {
    /// Standing votes as stored; an empty selection (which the store never keeps) counts as none.
    pub fn new(voters: Vec<VoterSelection>) -> Self {
        let mut votes = Self::default();
        for v in voters {
            votes.apply(
                &v.voter,
                VoteChange::from_selection(v.options),
                v.updated_at,
            );
        }
        votes
    }

    /// Applies one voter's change: their previous selection is replaced, or removed when cleared.
    pub fn apply(&mut self, voter: &str, change: VoteChange, at: Millis) {
        self.voters.retain(|v| v.voter != voter);
        if let VoteChange::Replace(options) = change {
            self.voters.push(VoterSelection {
                voter: voter.to_owned(),
                options,
                updated_at: at,
            });
            self.voters.sort_by(|a, b| a.voter.cmp(&b.voter));
        }
    }

    /// Each voter's current selection, ordered by voter.
    pub fn voters(&self) -> &[VoterSelection] {
        &self.voters
    }

    /// What `voter` currently has selected (`[]` when they have no vote).
    pub fn selection_of(&self, voter: &str) -> &[String] {
        self.voters
            .iter()
            .find(|v| v.voter == voter)
            .map_or(&[], |v| v.options.as_slice())
    }

    /// Per-option counts of the current selections, in the poll's order.
    pub fn tally(&self, poll: &Poll) -> Vec<OptionCount> {
        tally(poll, &self.voters)
    }
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

    // A vote's options are the complete set of choices the voter wants selected: they replace
    // the previous vote rather than adding to it, an empty array clears it, and a single-choice
    // poll takes exactly one option.

    #[test]
    fn a_vote_replaces_the_previous_vote_rather_than_adding_to_it() {
        let p = poll(0);
        let mut votes = PollVotes::default();
        votes.apply("me", VoteChange::from_selection(strings(&["Pizza"])), 1);
        votes.apply(
            "me",
            VoteChange::from_selection(strings(&["Sushi", "Tacos"])),
            2,
        );
        assert_eq!(votes.selection_of("me"), strings(&["Sushi", "Tacos"]));
        let counts: Vec<u32> = votes.tally(&p).iter().map(|c| c.votes).collect();
        assert_eq!(counts, [0, 1, 1]);
        assert_eq!(votes.voters().len(), 1);
        assert_eq!(votes.voters()[0].updated_at, 2);
    }

    #[test]
    fn an_empty_array_clears_the_vote() {
        let p = poll(1);
        assert!(p.check_selection(&[]).is_ok());
        let mut votes = PollVotes::default();
        votes.apply("me", VoteChange::from_selection(strings(&["Pizza"])), 1);
        votes.apply("me", VoteChange::from_selection(vec![]), 2);
        assert_eq!(votes.selection_of("me"), Vec::<String>::new());
        assert!(votes.voters().is_empty());
        assert!(votes.tally(&p).iter().all(|c| c.votes == 0));
    }

    #[test]
    fn each_voter_has_their_own_vote() {
        let p = poll(1);
        let mut votes = PollVotes::default();
        votes.apply("bob", VoteChange::from_selection(strings(&["Sushi"])), 1);
        votes.apply("amy", VoteChange::from_selection(strings(&["Sushi"])), 2);
        votes.apply("bob", VoteChange::from_selection(strings(&["Pizza"])), 3);
        let counts: Vec<u32> = votes.tally(&p).iter().map(|c| c.votes).collect();
        assert_eq!(counts, [1, 1, 0]);
        let order: Vec<&str> = votes.voters().iter().map(|v| v.voter.as_str()).collect();
        assert_eq!(order, ["amy", "bob"]);
    }

    #[test]
    fn a_single_choice_poll_refuses_two_options_and_keeps_the_standing_vote() {
        let p = poll(1);
        let mut votes = PollVotes::default();
        votes.apply("me", VoteChange::from_selection(strings(&["Tacos"])), 1);
        let second = strings(&["Tacos", "Pizza"]);
        if p.check_selection(&second).is_ok() {
            votes.apply("me", VoteChange::from_selection(second), 2);
        }
        assert_eq!(votes.selection_of("me"), strings(&["Tacos"]));
    }

    #[test]
    fn every_refusal_is_a_rule_about_the_target_not_a_malformed_request() {
        // 400, never 422: the request is well-formed, the poll is what it breaks.
        let p = poll(1);
        for bad in [
            strings(&["Ramen"]),
            strings(&["Pizza", "Pizza"]),
            strings(&["Pizza", "Sushi"]),
        ] {
            assert!(is_rule(p.check_selection(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn stored_empty_selections_count_as_no_vote() {
        let votes = PollVotes::new(vec![VoterSelection {
            voter: "x".into(),
            options: vec![],
            updated_at: 1,
        }]);
        assert!(votes.voters().is_empty());
    }

    proptest::proptest! {
        /// Law: after any sequence of valid votes, the tally counts exactly each voter's last
        /// selection, and a voter whose last selection was empty counts for nothing.
        #[test]
        fn the_tally_counts_each_voters_last_selection(
            casts in proptest::collection::vec((0usize..4, proptest::sample::subsequence(vec![0usize, 1, 2], 0..=3)), 0..40)
        ) {
            let p = poll(0);
            let names = ["Pizza", "Sushi", "Tacos"];
            let mut votes = PollVotes::default();
            let mut last: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, (voter, picks)) in casts.iter().enumerate() {
                let selection: Vec<String> = picks.iter().map(|k| names[*k].to_string()).collect();
                proptest::prop_assert!(p.check_selection(&selection).is_ok());
                votes.apply(&format!("v{voter}"), VoteChange::from_selection(selection), i as i64);
                last.insert(*voter, picks.clone());
            }
            let expected: Vec<u32> = (0..3)
                .map(|k| last.values().filter(|picks| picks.contains(&k)).count() as u32)
                .collect();
            let counts: Vec<u32> = votes.tally(&p).iter().map(|c| c.votes).collect();
            proptest::prop_assert_eq!(counts, expected);
            let voters_with_votes = last.values().filter(|picks| !picks.is_empty()).count();
            proptest::prop_assert_eq!(votes.voters().len(), voters_with_votes);
        }
    }
}
