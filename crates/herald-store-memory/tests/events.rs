//! The event log's use cases against the memory store: paging in log order, organization
//! isolation, filters, and the read-your-writes wait for events not settled yet.

mod support;

use async_trait::async_trait;
use herald_domain::event::EventType;
use herald_domain::events_log::{LogFilter, SETTLE_PAUSE_MS, SETTLE_WAIT_MS};
use herald_domain::ports::{Clock, Pause};
use herald_domain::{DomainError, EventId, Principal};
use herald_store_memory::{block_on, Harness, ManualTime, MemoryStore};
use std::sync::{Arc, OnceLock};
use support::*;

/// `org_a`'s session with `n` text messages reported after it came up; their `message` event
/// ids, oldest first.
fn messages(h: &Harness, me: &Principal, n: usize) -> Vec<EventId> {
    let session = working_session(h, me, "sales");
    (0..n)
        .map(|i| text_in(&h.gateway, me, &session, None, &format!("m{i}")).unwrap())
        .collect()
}

fn only_messages() -> LogFilter {
    LogFilter {
        session: None,
        types: Some(vec![EventType::Message]),
    }
}

#[test]
fn pages_follow_the_log_order_and_resume_after_their_cursor() {
    let h = Harness::new();
    let me = admin("org_a");
    let sent = messages(&h, &me, 5);
    let mut seen = Vec::new();
    let mut since: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = block_on(
            h.gateway
                .list_events(&me, since.as_deref(), only_messages(), 2),
        )
        .unwrap();
        pages += 1;
        assert!(page.events.len() <= 2);
        seen.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            Some(next) => since = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, sent);
    assert_eq!(pages, 3);
    // Resuming after any event gives exactly what followed it.
    let after_second =
        block_on(
            h.gateway
                .list_events(&me, Some(&sent[1].to_string()), only_messages(), 200),
        )
        .unwrap();
    let rest: Vec<EventId> = after_second.events.iter().map(|e| e.id).collect();
    assert_eq!(rest, sent[2..]);
}

#[test]
fn the_whole_log_holds_every_logged_event_in_the_order_written() {
    let h = Harness::new();
    let me = admin("org_a");
    messages(&h, &me, 2);
    let page = block_on(h.gateway.list_events(&me, None, LogFilter::default(), 200)).unwrap();
    let kinds: Vec<EventType> = page.events.iter().map(|e| e.event).collect();
    assert_eq!(kinds, types(&h));
    assert!(page
        .events
        .windows(2)
        .all(|w| w[0].position < w[1].position));
    // Each entry is the exact envelope delivered to webhooks.
    let first = &h.store.appended()[0];
    assert_eq!(page.events[0].envelope, first.to_json());
}

#[test]
fn an_organization_sees_only_its_own_events() {
    let h = Harness::new();
    let ours = admin("org_a");
    let theirs = admin("org_b");
    let our_ids = messages(&h, &ours, 2);
    let their_session = working_session(&h, &theirs, "theirs");
    let their_id = text_in(&h.gateway, &theirs, &their_session, None, "secret").unwrap();
    let page = block_on(
        h.gateway
            .list_events(&ours, None, LogFilter::default(), 200),
    )
    .unwrap();
    assert!(page
        .events
        .iter()
        .all(|e| e.organization_id.as_str() == "org_a"));
    assert!(!page.events.iter().any(|e| e.id == their_id));
    let page = block_on(h.gateway.list_events(&ours, None, only_messages(), 200)).unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        our_ids
    );
    // Another organization's event id is no cursor: it is not found.
    assert!(matches!(
        block_on(h.gateway.list_events(
            &ours,
            Some(&their_id.to_string()),
            LogFilter::default(),
            10
        )),
        Err(DomainError::NotFound("event"))
    ));
    assert!(matches!(
        block_on(h.gateway.log_position(&ours, "evt_garbage")),
        Err(DomainError::NotFound("event"))
    ));
}

#[test]
fn filters_select_by_session_and_type() {
    let h = Harness::new();
    let me = admin("org_a");
    let one = working_session(&h, &me, "one");
    h.engine.starts_with(Vec::new());
    let two = block_on(h.gateway.create_session(&me, "two", None)).unwrap();
    text_in(&h.gateway, &me, &one, None, "a").unwrap();
    text_in(&h.gateway, &me, &two, None, "b").unwrap();
    let of_two = LogFilter {
        session: Some(two.id),
        types: None,
    };
    let page = block_on(h.gateway.list_events(&me, None, of_two, 200)).unwrap();
    let kinds: Vec<EventType> = page.events.iter().map(|e| e.event).collect();
    assert_eq!(
        kinds,
        [
            EventType::SessionStatus,
            EventType::Message,
            EventType::MessageAny
        ]
    );
    assert!(page.events.iter().all(|e| e.session == Some(two.id)));
}

#[test]
fn a_page_holds_one_to_two_hundred_events() {
    let h = Harness::new();
    let me = admin("org_a");
    for limit in [0, 201] {
        match block_on(
            h.gateway
                .list_events(&me, None, LogFilter::default(), limit),
        ) {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "limit"),
            other => panic!("expected a 422 on limit, got {other:?}"),
        }
    }
    assert!(matches!(
        block_on(
            h.gateway
                .list_events(&caller("org_a", "send"), None, LogFilter::default(), 0)
        ),
        Err(DomainError::Forbidden(_))
    ));
}

#[test]
fn a_settled_read_does_not_wait_when_everything_is_settled() {
    let h = Harness::new();
    let me = admin("org_a");
    messages(&h, &me, 1);
    let page = block_on(
        h.gateway
            .list_events_settled(&me, None, only_messages(), 10),
    )
    .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(h.time.pauses(), 0);
}

/// A pause that settles the store's log after a few pauses, as an older transaction would by
/// committing while the read waits.
struct SettlesAfter {
    time: Arc<ManualTime>,
    store: OnceLock<Arc<MemoryStore>>,
    pauses_left: std::sync::Mutex<u32>,
}

#[async_trait]
impl Pause for SettlesAfter {
    async fn pause(&self, ms: u64) {
        self.time.pause(ms).await;
        let mut left = self.pauses_left.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.store.get().expect("wired").settle();
        }
    }
}

#[test]
fn a_settled_read_waits_for_events_committed_before_it() {
    let time = Arc::new(ManualTime::new());
    let pause = Arc::new(SettlesAfter {
        time: time.clone(),
        store: OnceLock::new(),
        pauses_left: std::sync::Mutex::new(3),
    });
    let h = Harness::with_pause(time.clone(), pause.clone());
    pause.store.set(h.store.clone()).ok();
    let me = admin("org_a");
    let settled = messages(&h, &me, 1);
    h.store.hold_settling();
    let session = block_on(h.gateway.list_sessions(&me)).unwrap().remove(0);
    let late = text_in(&h.gateway, &me, &session, None, "late").unwrap();
    // Without waiting the late event is not there yet.
    let quick = block_on(h.gateway.list_events(&me, None, only_messages(), 10)).unwrap();
    assert_eq!(
        quick.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        settled
    );
    assert!(quick.unsettled.is_some());
    let page = block_on(
        h.gateway
            .list_events_settled(&me, None, only_messages(), 10),
    )
    .unwrap();
    let ids: Vec<EventId> = page.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [settled[0], late]);
    assert!(page.unsettled.is_none());
    assert_eq!(time.pauses(), 3);
}

#[test]
fn a_settled_read_gives_up_after_its_wait() {
    let h = Harness::new();
    let me = admin("org_a");
    let settled = messages(&h, &me, 1);
    h.store.hold_settling();
    let session = block_on(h.gateway.list_sessions(&me)).unwrap().remove(0);
    text_in(&h.gateway, &me, &session, None, "stuck").unwrap();
    let started = h.time.now_ms();
    let page = block_on(
        h.gateway
            .list_events_settled(&me, None, only_messages(), 10),
    )
    .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        settled
    );
    assert!(page.unsettled.is_some(), "still unsettled, and said so");
    assert_eq!(h.time.now_ms() - started, SETTLE_WAIT_MS);
    assert_eq!(h.time.pauses(), SETTLE_WAIT_MS as u64 / SETTLE_PAUSE_MS);
}

#[test]
fn a_settled_read_with_a_later_page_does_not_wait() {
    let h = Harness::new();
    let me = admin("org_a");
    messages(&h, &me, 3);
    h.store.hold_settling();
    let session = block_on(h.gateway.list_sessions(&me)).unwrap().remove(0);
    text_in(&h.gateway, &me, &session, None, "stuck").unwrap();
    let page = block_on(h.gateway.list_events_settled(&me, None, only_messages(), 2)).unwrap();
    assert!(page.next_cursor.is_some());
    assert_eq!(h.time.pauses(), 0);
}
