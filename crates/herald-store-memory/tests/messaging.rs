//! The messaging use cases against the memory store: vote rules and the replace rule, inbound
//! idempotency, and session status changes with their `session.status` events.

mod support;

use herald_domain::event::{EventType, Me};
use herald_domain::message::MessageContent;
use herald_domain::messaging::{
    EngineAnswer, EngineReport, Inbound, InboundEvent, IncomingMessage, IncomingVote, VoteRequest,
};
use herald_domain::ports::{Clock, EngineError, StatusReport};
use herald_domain::session::SessionStatus;
use herald_domain::DomainError;
use herald_store_memory::{block_on, FakeEngine, Harness};
use support::*;

const CHAT: &str = "group@g.us";
const SENDER: &str = "15550002222@c.us";

fn request(options: &[&str]) -> VoteRequest {
    VoteRequest {
        chat: CHAT.into(),
        sender: SENDER.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// A harness with a working session of `org_a` and a poll in it.
fn with_poll(
    options: &[&str],
    selectable: u32,
) -> (Harness, herald_domain::Principal, String, String) {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let poll = poll_in(&h.gateway, &me, &session, CHAT, SENDER, options, selectable);
    (h, me, session.id.to_string(), poll)
}

fn vote(
    h: &Harness,
    me: &herald_domain::Principal,
    session: &str,
    poll: &str,
    options: &[&str],
) -> Result<(), DomainError> {
    block_on(h.gateway.vote(me, session, poll, request(options))).map(drop)
}

fn my_vote(h: &Harness, me: &herald_domain::Principal, session: &str, poll: &str) -> Vec<String> {
    block_on(h.gateway.poll_tally(me, session, poll, CHAT, SENDER))
        .unwrap()
        .my_vote
}

#[test]
fn an_option_the_poll_does_not_have_is_refused_and_nothing_is_stored() {
    let (h, me, session, poll) = with_poll(&["Pizza", "Sushi"], 0);
    let before = h.store.event_count();
    let answer = vote(&h, &me, &session, &poll, &["Tacos"]);
    assert!(matches!(answer, Err(DomainError::Rule(m)) if m.contains("Tacos")));
    assert_eq!(h.store.event_count(), before, "no poll.vote event");
    assert!(my_vote(&h, &me, &session, &poll).is_empty());
}

#[test]
fn more_selections_than_the_poll_allows_are_refused() {
    let (h, me, session, poll) = with_poll(&["A", "B", "C"], 2);
    assert!(matches!(
        vote(&h, &me, &session, &poll, &["A", "B", "C"]),
        Err(DomainError::Rule(_))
    ));
    vote(&h, &me, &session, &poll, &["A", "C"]).unwrap();
    assert_eq!(my_vote(&h, &me, &session, &poll), ["A", "C"]);
}

#[test]
fn a_single_choice_poll_takes_one_option() {
    let (h, me, session, poll) = with_poll(&["Yes", "No"], 1);
    assert!(matches!(
        vote(&h, &me, &session, &poll, &["Yes", "No"]),
        Err(DomainError::Rule(_))
    ));
    assert!(matches!(
        vote(&h, &me, &session, &poll, &["Yes", "Yes"]),
        Err(DomainError::Rule(_))
    ));
    vote(&h, &me, &session, &poll, &["No"]).unwrap();
    assert_eq!(my_vote(&h, &me, &session, &poll), ["No"]);
}

#[test]
fn a_new_vote_replaces_the_previous_one_and_an_empty_one_clears_it() {
    let (h, me, session, poll) = with_poll(&["Pizza", "Sushi"], 1);
    vote(&h, &me, &session, &poll, &["Pizza"]).unwrap();
    vote(&h, &me, &session, &poll, &["Sushi"]).unwrap();
    let tally = block_on(h.gateway.poll_tally(&me, &session, &poll, CHAT, SENDER)).unwrap();
    let counts: Vec<(String, u32)> = tally
        .options
        .iter()
        .map(|o| (o.name.clone(), o.votes))
        .collect();
    assert_eq!(counts, [("Pizza".into(), 0), ("Sushi".into(), 1)]);
    assert_eq!(tally.voters.len(), 1);
    assert_eq!(tally.my_vote, ["Sushi"]);
    vote(&h, &me, &session, &poll, &[]).unwrap();
    let tally = block_on(h.gateway.poll_tally(&me, &session, &poll, CHAT, SENDER)).unwrap();
    assert!(tally.voters.is_empty() && tally.my_vote.is_empty());
    assert_eq!(
        types(&h)
            .iter()
            .filter(|t| **t == EventType::PollVote)
            .count(),
        3,
        "every vote, the clearing one too, is published"
    );
}

#[test]
fn voting_on_a_text_message_is_a_rule_violation() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let inbound = Inbound {
        id: None,
        event: InboundEvent::Message(IncomingMessage {
            id: "TEXT1".into(),
            chat: CHAT.into(),
            sender: SENDER.into(),
            from_me: false,
            timestamp: Some(5),
            content: MessageContent::Text {
                body: Some("hi".into()),
            },
        }),
    };
    block_on(h.gateway.ingest(&me, &session.id.to_string(), inbound)).unwrap();
    assert!(matches!(
        vote(&h, &me, &session.id.to_string(), "TEXT1", &["A"]),
        Err(DomainError::Rule(m)) if m.contains("not a poll")
    ));
}

#[test]
fn someone_elses_vote_is_strict_inbound_and_lenient_from_the_engines_webhook() {
    let (h, me, session, poll) = with_poll(&["A", "B"], 1);
    let incoming = |selected: &[&str]| IncomingVote {
        poll_id: poll.clone(),
        poll_chat: CHAT.into(),
        poll_sender: SENDER.into(),
        vote_id: None,
        voter: "15550003333@c.us".into(),
        selected: selected.iter().map(|s| s.to_string()).collect(),
        timestamp: None,
    };
    let strict = Inbound {
        id: None,
        event: InboundEvent::PollVote(incoming(&["C"])),
    };
    assert!(matches!(
        block_on(h.gateway.ingest(&me, &session, strict)),
        Err(DomainError::Rule(_))
    ));
    // Through the engine's webhook the network already decided: published, but not counted.
    let engine_session = block_on(h.gateway.get_session(&me, &session))
        .unwrap()
        .engine_session;
    let answer = block_on(h.gateway.accept_engine_report(
        &engine_session,
        None,
        EngineReport::PollVote(incoming(&["C"])),
    ))
    .unwrap();
    assert!(matches!(answer, EngineAnswer::Accepted(_)));
    let tally = block_on(h.gateway.poll_tally(&me, &session, &poll, CHAT, SENDER)).unwrap();
    assert!(tally.voters.is_empty());
    // A valid one counts.
    block_on(h.gateway.accept_engine_report(
        &engine_session,
        None,
        EngineReport::PollVote(incoming(&["B"])),
    ))
    .unwrap();
    let tally = block_on(h.gateway.poll_tally(&me, &session, &poll, CHAT, SENDER)).unwrap();
    assert_eq!(tally.voters[0].options, ["B"]);
}

#[test]
fn the_same_inbound_key_twice_is_one_event() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let before = h.store.event_count();
    let first = text_in(&h.gateway, &me, &session, Some("wamid.1"), "hello").unwrap();
    let again = text_in(&h.gateway, &me, &session, Some("wamid.1"), "hello").unwrap();
    assert_eq!(first, again);
    assert_eq!(
        h.store.event_count(),
        before + 2,
        "one message and one message.any, once"
    );
    // Without a key every report counts.
    text_in(&h.gateway, &me, &session, None, "hello").unwrap();
    text_in(&h.gateway, &me, &session, None, "hello").unwrap();
    assert_eq!(h.store.event_count(), before + 6);
}

#[test]
fn inbound_keys_are_scoped_to_their_session() {
    let h = Harness::new();
    let me = admin("org_a");
    let one = working_session(&h, &me, "one");
    h.engine.starts_with(vec![StatusReport::new(
        SessionStatus::Working,
        Some(Me {
            id: "15550000002@c.us".into(),
        }),
    )]);
    let two = block_on(h.gateway.create_session(&me, "two", None)).unwrap();
    let a = text_in(&h.gateway, &me, &one, Some("k"), "x").unwrap();
    let b = text_in(&h.gateway, &me, &two, Some("k"), "x").unwrap();
    assert_ne!(a, b);
}

#[test]
fn an_inbound_key_must_be_one_to_256_characters() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    for bad in [String::new(), "k".repeat(257)] {
        match text_in(&h.gateway, &me, &session, Some(&bad), "x") {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "id"),
            other => panic!("expected a 422 on id, got {other:?}"),
        }
    }
    text_in(&h.gateway, &me, &session, Some(&"k".repeat(256)), "x").unwrap();
}

#[test]
fn an_engine_report_repeated_under_its_key_is_a_duplicate() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let ack = || EngineReport::Ack(h.store.appended()[0].payload.clone());
    let first = block_on(h.gateway.accept_engine_report(
        &session.engine_session,
        Some("ack-1".into()),
        ack(),
    ))
    .unwrap();
    let EngineAnswer::Accepted(id) = first else {
        panic!("expected the first report accepted, got {first:?}");
    };
    let again = block_on(h.gateway.accept_engine_report(
        &session.engine_session,
        Some("ack-1".into()),
        ack(),
    ))
    .unwrap();
    assert_eq!(again, EngineAnswer::Duplicate(id));
    let unknown = block_on(h.gateway.accept_engine_report("nobody", None, ack())).unwrap();
    assert_eq!(unknown, EngineAnswer::Ignored("unknown session"));
}

#[test]
fn creating_a_session_logs_each_status_it_goes_through() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let statuses: Vec<String> = h
        .store
        .appended()
        .iter()
        .filter(|e| e.event == EventType::SessionStatus && e.session == Some(session.id))
        .map(|e| e.payload["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["STARTING", "WORKING"]);
    let last = h.store.appended().pop().unwrap();
    assert_eq!(last.me.map(|m| m.id), Some(FakeEngine::ACCOUNT.to_owned()));
    assert!(h.listener.heard().iter().all(|l| l == "committed org_a"));
}

#[test]
fn a_session_the_engine_refuses_is_kept_failed_with_the_reason() {
    let h = Harness::new();
    let me = admin("org_a");
    h.engine
        .fail_next(EngineError::Unavailable("no answer".into()));
    let session = block_on(h.gateway.create_session(&me, "sales", None)).unwrap();
    assert_eq!(session.status, SessionStatus::Failed);
    let last = h.store.appended().pop().unwrap();
    assert_eq!(last.event, EventType::SessionStatus);
    assert_eq!(last.payload["status"], "FAILED");
    assert!(last.payload["reason"]
        .as_str()
        .unwrap()
        .contains("no answer"));
    // Restarted, it follows the engine again.
    let restarted = block_on(h.gateway.restart_session(&me, &session.id.to_string())).unwrap();
    assert_eq!(restarted.status, SessionStatus::Working);
    let stored = block_on(h.gateway.get_session(&me, &session.id.to_string())).unwrap();
    assert_eq!(stored.status, SessionStatus::Working);
}

#[test]
fn a_reported_status_change_is_stored_with_its_event() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    h.time.advance(1_000);
    let report = Inbound {
        id: Some("status-1".into()),
        event: InboundEvent::SessionStatus(StatusReport::new(SessionStatus::ScanQr, None)),
    };
    let id = block_on(h.gateway.ingest(&me, &session.id.to_string(), report)).unwrap();
    let event = h.store.appended().into_iter().find(|e| e.id == id).unwrap();
    assert_eq!(event.event, EventType::SessionStatus);
    assert_eq!(event.payload["status"], "SCAN_QR");
    let stored = block_on(h.gateway.get_session(&me, &session.id.to_string())).unwrap();
    assert_eq!(stored.status, SessionStatus::ScanQr);
    assert_eq!(stored.updated_at, h.time.now_ms());
    assert_eq!(
        block_on(h.gateway.session_qr(&me, &session.id.to_string())).unwrap(),
        format!("qr:{}", session.engine_session)
    );
}

#[test]
fn a_second_session_on_the_same_engine_session_is_a_conflict() {
    let h = Harness::new();
    let me = admin("org_a");
    block_on(h.gateway.create_session(&me, "one", Some("default"))).unwrap();
    assert!(matches!(
        block_on(
            h.gateway
                .create_session(&admin("org_b"), "two", Some("default"))
        ),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn deleting_a_session_takes_its_messages_and_votes_along() {
    let (h, me, session, poll) = with_poll(&["A", "B"], 1);
    vote(&h, &me, &session, &poll, &["A"]).unwrap();
    block_on(h.gateway.delete_session(&me, &session)).unwrap();
    assert!(h.engine.calls().iter().any(|c| c.starts_with("stop")));
    assert!(matches!(
        block_on(h.gateway.poll_tally(&me, &session, &poll, CHAT, SENDER)),
        Err(DomainError::NotFound("session"))
    ));
    assert!(matches!(
        block_on(h.gateway.delete_session(&me, &session)),
        Err(DomainError::NotFound("session"))
    ));
}
