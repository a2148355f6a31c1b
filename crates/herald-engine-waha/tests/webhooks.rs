//! WAHA's webhooks, as the WAHA double posts them to the URL the client configured, pass the
//! signature check and translate into the Herald events the engine promises; tampered ones,
//! duplicates and older envelopes are recognised.

use herald_domain::event::Me;
use herald_domain::message::MessageContent;
use herald_domain::session::SessionStatus;
use herald_engine_waha::{
    translate, EngineEvent, Ignored, Outcome, Secret, SignatureError, Translation, WahaClient,
    WahaConfig, WebhookVerifier,
};
use herald_testkit::waha::{VoteSpec, WahaDouble};
use herald_testkit::{eventually, Behaviour, Received, Receiver};
use serde_json::json;
use std::time::Duration;

const HOOK_KEY: &str = "hook-key-3d8e";
const SESSION: &str = "01J9ZX8K2QHV0M3T6R7P4N5W8C";
const ME: &str = "11111111111@c.us";
const ALICE: &str = "22222222222@c.us";

struct Setup {
    double: WahaDouble,
    client: WahaClient,
    receiver: Receiver,
    verifier: WebhookVerifier,
}

async fn setup() -> Setup {
    let double = WahaDouble::start().await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let public_url = format!("http://{}", receiver.addr);
    let config = WahaConfig::new(&double.url(), &public_url, Secret::new(HOOK_KEY)).unwrap();
    assert_eq!(
        config.events_url(),
        format!("{public_url}/api/v1/engines/waha/events")
    );
    Setup {
        double,
        client: WahaClient::new(config),
        receiver,
        verifier: WebhookVerifier::new(Secret::new(HOOK_KEY)),
    }
}

impl Setup {
    async fn received(&self, count: usize) -> Vec<Received> {
        eventually("WAHA's webhooks", Duration::from_secs(10), || async {
            let all = self.receiver.received();
            (all.len() >= count).then_some(all)
        })
        .await
    }

    fn check(&self, received: &Received) -> Translation {
        self.verifier
            .verify_headers(&received.headers, &received.body)
            .expect("signed as WAHA signs");
        translate(&received.body).expect("translates")
    }
}

fn event(t: &Translation) -> &EngineEvent {
    match &t.outcome {
        Outcome::Event(e) => e,
        Outcome::Ignored(why) => panic!("ignored: {why:?}"),
    }
}

#[tokio::test]
async fn every_event_waha_sends_translates_as_promised() {
    let s = setup().await;
    s.client.ensure_session(SESSION).await.unwrap();
    s.double.walk_to_working(SESSION, "2@qr", ME).await;
    let sent = s
        .client
        .send_text(SESSION, ALICE, "hi from Herald", None)
        .await
        .unwrap();
    let inbound = s.double.inbound_text(SESSION, ALICE, "hello Herald").await;
    let poll = s
        .double
        .inbound_poll(SESSION, ALICE, "Lunch?", &["Pizza", "Sushi"], false)
        .await;
    let own = s
        .double
        .own_text(SESSION, ALICE, "typed on the phone")
        .await;
    s.double.ack(SESSION, &sent, ALICE, 3).await;
    let vote = VoteSpec {
        poll_id: poll.id.clone(),
        chat: ALICE.into(),
        poll_from_me: false,
        voter: ALICE.into(),
        selected: vec!["Sushi".into()],
    };
    s.double.vote(SESSION, &vote).await;
    s.double.failed_vote(SESSION, &vote).await;
    s.double
        .emit_unsubscribed(
            SESSION,
            "presence.update",
            json!({"id": ALICE, "presences": []}),
        )
        .await;

    let all: Vec<Translation> = s.received(13).await.iter().map(|r| s.check(r)).collect();
    assert_eq!(all.len(), 13);
    assert!(all.iter().all(|t| t.engine_session == SESSION));
    let status = |t: &Translation| match event(t) {
        EngineEvent::SessionStatus(change) => (change.report.status, change.report.me.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(status(&all[0]), (SessionStatus::Starting, None));
    assert_eq!(status(&all[1]), (SessionStatus::ScanQr, None));
    let me = Some(Me { id: ME.into() });
    assert_eq!(status(&all[2]), (SessionStatus::Working, me.clone()));
    assert_eq!(all[2].me, me);

    let EngineEvent::OwnMessage(echo) = event(&all[3]) else {
        panic!("{:?}", all[3])
    };
    assert_eq!(
        (echo.id.as_str(), echo.chat.as_str(), echo.sender.as_str()),
        (sent.as_str(), ALICE, ME)
    );
    let EngineEvent::Message(message) = event(&all[4]) else {
        panic!("{:?}", all[4])
    };
    assert_eq!(
        (message.id.as_str(), message.sender.as_str()),
        (inbound.id.as_str(), ALICE)
    );
    assert_eq!(
        message.content,
        MessageContent::Text {
            body: Some("hello Herald".into())
        }
    );
    assert_eq!(all[5].outcome, Outcome::Ignored(Ignored::OthersMessageAny));
    let EngineEvent::Message(poll_message) = event(&all[6]) else {
        panic!("{:?}", all[6])
    };
    let MessageContent::Poll(p) = &poll_message.content else {
        panic!("not a poll")
    };
    assert_eq!(
        (p.question(), p.options(), p.selectable_count()),
        ("Lunch?", &["Pizza".to_owned(), "Sushi".to_owned()][..], 1)
    );
    assert_eq!(all[7].outcome, Outcome::Ignored(Ignored::OthersMessageAny));
    let EngineEvent::OwnMessage(own_message) = event(&all[8]) else {
        panic!("{:?}", all[8])
    };
    assert_eq!(own_message.id, own.id);
    let EngineEvent::Ack(ack) = event(&all[9]) else {
        panic!("{:?}", all[9])
    };
    assert_eq!(
        ack.payload(),
        json!({"id": sent, "chat": ALICE, "ack": 3, "ackName": "READ"})
    );
    let EngineEvent::PollVote(v) = event(&all[10]) else {
        panic!("{:?}", all[10])
    };
    assert_eq!(
        (v.poll_id.as_str(), v.voter.as_str(), v.selected.as_slice()),
        (poll.id.as_str(), ALICE, &["Sushi".to_owned()][..])
    );
    let EngineEvent::PollVoteFailed(f) = event(&all[11]) else {
        panic!("{:?}", all[11])
    };
    assert!(f.selected.is_empty());
    assert_eq!(
        all[12].outcome,
        Outcome::Ignored(Ignored::EventType("presence.update".into()))
    );
    // Every event WAHA sent once has a key of its own.
    let keys: std::collections::HashSet<_> =
        all.iter().map(|t| t.dedup_key.clone().unwrap()).collect();
    assert_eq!(keys.len(), all.len());
}

#[tokio::test]
async fn duplicates_share_a_key_and_tampering_is_caught() {
    let s = setup().await;
    s.client.ensure_session(SESSION).await.unwrap();
    s.double.pair(SESSION, ME).await;
    let inbound = s.double.inbound_text(SESSION, ALICE, "once").await;
    let delivery = inbound.emissions[0].delivery();
    assert!(s.double.resend(delivery).await.acknowledged());
    let all = s.received(5).await;
    let first = s.check(&all[2]);
    let again = s.check(&all[4]);
    assert_eq!(first.dedup_key, again.dedup_key);
    assert_eq!(first.payload_key, again.payload_key);
    assert_ne!(
        all[2].headers["x-webhook-request-id"],
        all[4].headers["x-webhook-request-id"]
    );

    let mut tampered = all[2].body.to_vec();
    let at = tampered.windows(4).position(|w| w == b"once").unwrap();
    tampered[at..at + 4].copy_from_slice(b"ONCE");
    assert_eq!(
        s.verifier.verify_headers(&all[2].headers, &tampered),
        Err(SignatureError::Mismatch)
    );
    let stranger = WebhookVerifier::new(Secret::new("someone-else"));
    assert_eq!(
        stranger.verify_headers(&all[2].headers, &all[2].body),
        Err(SignatureError::Mismatch)
    );
}

#[tokio::test]
async fn older_wahas_envelopes_dedup_by_the_payload() {
    let s = setup().await;
    s.client.ensure_session(SESSION).await.unwrap();
    s.double.pair(SESSION, ME).await;
    s.double.set_legacy_envelopes(true);
    let inbound = s.double.inbound_text(SESSION, ALICE, "old style").await;
    assert!(inbound.emissions[0].envelope.get("id").is_none());
    let all = s.received(4).await;
    let t = s.check(&all[2]);
    assert_eq!(t.dedup_key, t.payload_key);
    assert_eq!(
        t.dedup_key.clone().unwrap(),
        format!("message:[\"{}\"]", inbound.id)
    );
    let EngineEvent::Message(m) = event(&t) else {
        panic!()
    };
    assert!(m.timestamp.is_some(), "dated by the message's own seconds");
}
